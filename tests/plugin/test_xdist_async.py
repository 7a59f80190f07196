"""The fixtures under pytest-xdist (a cluster and a port per worker) and pytest-asyncio."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_each_xdist_worker_has_its_own_cluster_and_port(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import os
        import pytest
        from e2b import Sandbox
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.parametrize("n", range(6))
        def test_sdk(kruise_e2b, n, tmp_path_factory):
            sbx = Sandbox.create()
            assert sbx.commands.run("echo ok").stdout == "ok\\n"
            worker = os.environ["PYTEST_XDIST_WORKER"]
            marks = tmp_path_factory.getbasetemp().parent / "ports"
            marks.mkdir(exist_ok=True)
            (marks / f"{worker}-{n}").write_text(kruise_e2b.url)
            sbx.kill()
            if n == 0:
                Sandbox.create()  # left behind: reported by the controller

        @pytest.mark.parametrize("n", [2, 3])
        def test_benchmark(delivery_benchmark, n):
            delivery_benchmark(Burst(n)).assert_latency()
        """
    )
    result = suite.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    # One report directory for the run, as without xdist, not one per worker.
    reports = list(suite.path.glob("**/*.csv"))
    assert len(reports) == 2
    assert {p.parent.name for p in reports} == {"kruise-agents"}
    assert not list(suite.path.glob("**/popen-gw*/kruise-agents"))
    result.stdout.fnmatch_lines(
        [
            "*kruise-agents: sandboxes left behind, killed at teardown*",
            "*test_sdk[[]0]: 1 killed: default--base-* (running)",
            "*kruise-agents: delivery benchmarks*",
            "*test_benchmark*burst-2-e2b*",
        ]
    )
    ports = list(suite.path.parent.glob("**/ports/*"))
    by_worker: dict[str, set[str]] = {}
    for mark in ports:
        by_worker.setdefault(mark.name.split("-")[0], set()).add(mark.read_text())
    assert len(by_worker) == 2, "both workers ran tests"
    urls = [next(iter(u)) for u in by_worker.values()]
    assert all(len(u) == 1 for u in by_worker.values()), "one server per worker"
    assert urls[0] != urls[1]


def test_async_sdk_with_pytest_asyncio(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio
        import pytest
        from e2b import AsyncSandbox

        @pytest.mark.asyncio
        async def test_async_sandbox(kruise_e2b, kruise_clock):
            sbx = await AsyncSandbox.create(timeout=60)
            results = await asyncio.gather(*(sbx.commands.run(f"echo {i}") for i in range(3)))
            assert [r.stdout for r in results] == ["0\\n", "1\\n", "2\\n"]
            kruise_clock.advance(61)
            assert not await sbx.is_running()

        @pytest.mark.asyncio
        async def test_concurrent_creates(kruise_e2b, kruise_cluster):
            boxes = await asyncio.gather(*(AsyncSandbox.create() for _ in range(3)))
            assert len({b.sandbox_id for b in boxes}) == 3
            assert all(r.warm for r in kruise_cluster.records)
            await asyncio.gather(*(b.kill() for b in boxes))
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=2)
    assert "left behind" not in result.stdout.str()

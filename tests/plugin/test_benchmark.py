"""``delivery_benchmark`` on the test's fake cluster: warm, cold once drained, slow under a fault."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_warm_delivery_is_sub_second_with_the_default_profile(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_warm(delivery_benchmark):
            result = delivery_benchmark(Burst(3))
            assert len(result.warm) == 3 and not result.cold
            assert result.stats(warm=True).p99 < 1.0
            result.assert_latency()
        """
    )
    reports = suite.path / "reports"
    result = suite.runpytest(f"--kruise-report-dir={reports}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- kruise-agents: delivery benchmarks -*",
            "test / run * claims  warm  cold  fail  w.p50  w.p90  w.p99  w.max all.p99  zones g/g/c*",
            "*::test_warm [[]burst-3-e2b]      3     3     0     0 * 3/0/0",
            "    sim seed=0 profile=openkruise-head (virtual time): *.csv *.json",
        ]
    )
    stem = "test_warm_delivery_is_sub_second_with_the_default_profile.py_test_warm-burst-3-e2b"
    rows = list(csv.DictReader((reports / f"{stem}.csv").read_text().splitlines()))
    assert [r["is_warm"] for r in rows] == ["true"] * 3
    assert all(float(r["e2e_ms"]) < 1000 for r in rows)
    assert {"locked_ms", "runtime_initialized_ms", "delivered_ms"} <= set(rows[0])
    summary = json.loads((reports / f"{stem}.json").read_text())
    assert summary["warm"] == 3 and summary["latency_s"]["warm"]["p99"] < 1.0


def test_cold_deliveries_are_reported_apart_once_the_pool_is_drained(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_drain(delivery_benchmark):
            result = delivery_benchmark(Burst(6))  # the pools hold 3
            assert (len(result.warm), len(result.cold), len(result.failed)) == (3, 3, 0)
            assert min(result.latencies(warm=False)) > max(result.latencies(warm=True))
            result.assert_latency()  # the warm ones still are sub-second
            assert result.zones(warm=False)["cold"] == 3
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_drain [[]burst-6-e2b]      6     3     3     0 *"])
    # docs/plugin.md shows this run's row (seed 0, virtual time: the same figures every run).
    doc = (Path(__file__).resolve().parents[2] / "docs" / "plugin.md").read_text()
    shown = next(line for line in doc.splitlines() if "test_drain [burst-6-e2b]" in line)
    printed = next(line for line in result.outlines if "test_drain [burst-6-e2b]" in line)
    assert printed.split("]")[1].split() == shown.split("]")[1].split()


def test_the_assertion_fails_readably_when_a_latency_fault_slows_warm_delivery(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_slow(delivery_benchmark, kruise_faults):
            kruise_faults.inject("api_latency", latency="1.5s", selector={"verb": "update"})
            result = delivery_benchmark(Burst(3))
            assert len(result.warm) == 3
            result.assert_latency()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *AssertionError: delivery benchmark 'burst-3-e2b' (sim seed=0 "
            "profile=openkruise-head, virtual time): p99 of 3 warm deliveries is *s, "
            "not under 1.000 s",
            "E *3 claims: 3 delivered (3 warm, 0 cold), 0 failed",
            "E *warm: p50 *",
            "E *slow: #* default--base-* warm *: *locked +1.*",
        ]
    )
    # The helper's own frame is hidden: the traceback ends at the test's call.
    assert "def assert_latency" not in result.stdout.str()


def test_sandboxclaim_path_and_a_rate(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst, Rate

        @pytest.mark.kruise(pools={"base": 10})
        def test_paths(delivery_benchmark):
            claims = delivery_benchmark(Burst(3, path="sandboxclaim"))
            assert len(claims.warm) == 3
            steady = delivery_benchmark(Rate(2, 3), name="steady")
            assert len(steady.deliveries) == 6
            assert [d.requested for d in steady.deliveries] == pytest.approx(
                [0, 0.5, 1, 1.5, 2, 2.5]
            )
            assert [r.name for r in delivery_benchmark.results] == ["burst-3-sandboxclaim", "steady"]
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*[[]burst-3-sandboxclaim]*", "*[[]steady]*"])


def test_against_a_live_e2b_server_url(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_live(delivery_benchmark, kruise_e2b):
            result = delivery_benchmark(Burst(2), url=kruise_e2b.url, api_key=kruise_e2b.api_key)
            assert result.clock == "wall" and result.target == kruise_e2b.url
            assert len(result.delivered) == 2
            assert all(set(d.phases) == {"created", "first_command"} for d in result.deliveries)
            assert kruise_e2b.sandboxes() == {}  # measured, then killed
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["    http://127.0.0.1:* (wall time): *"])


def test_a_live_run_takes_the_documented_domain_and_deadline(suite: pytest.Pytester) -> None:
    """docs/plugin.md: against a live server the fixture takes ``run_on_server``'s
    ``sandbox_url``, ``domain`` and ``deadline_s`` and passes them on (a deadline too short for
    any claim fails the claim; a bad one is refused, naming it). Without ``url`` they have no
    use: each is refused, naming it, and nothing runs."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        def test_live(delivery_benchmark, kruise_e2b):
            live = dict(url=kruise_e2b.url, api_key=kruise_e2b.api_key)
            result = delivery_benchmark(
                Burst(1), **live, sandbox_url=kruise_e2b.url, domain="example.com", deadline_s=30
            )
            assert result.clock == "wall" and len(result.delivered) == 1
            hurried = delivery_benchmark(Burst(1), **live, deadline_s=1e-6)
            assert len(hurried.failed) == 1 and hurried.delivered == []
            kruise_e2b.reap()  # the sandbox its client gave up on, if the server made it
            with pytest.raises(ValueError, match="deadline_s: must be a positive finite number"):
                delivery_benchmark(Burst(1), **live, deadline_s=0)
            assert len(delivery_benchmark.results) == 2

        @pytest.mark.parametrize(
            "given",
            [
                {"deadline_s": 30},
                {"domain": "example.com"},
                {"sandbox_url": "http://x"},
                {"api_key": "k"},
            ],
        )
        def test_live_only(delivery_benchmark, given):
            (name,) = given
            with pytest.raises(ValueError, match=f"{name}: only with url="):
                delivery_benchmark(Burst(1), **given)
            assert delivery_benchmark.results == []
        """
    )
    suite.runpytest().assert_outcomes(passed=5)


def test_file_names_never_collide_across_the_session(suite: pytest.Pytester) -> None:
    """Parameters that read alike once made safe (``a/b``, ``a b``, ``a:b``) still get their own files."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.parametrize("label", ["a/b", "a b", "a:b", "a_b"])
        def test_collide(delivery_benchmark, label):
            delivery_benchmark(Burst(1), name=label)
            delivery_benchmark(Burst(1), name=label.replace("a", "a_"))
        """
    )
    reports = suite.path / "reports"
    result = suite.runpytest(f"--kruise-report-dir={reports}")
    result.assert_outcomes(passed=4)
    names = sorted(p.name for p in reports.glob("*.json"))
    assert len(names) == 8, names
    labels = {json.loads((reports / n).read_text())["name"] for n in names}
    assert labels == {"a/b", "a b", "a:b", "a_b", "a_/b", "a_ b", "a_:b", "a__b"}


def test_the_stem_of_a_plain_test_is_its_node_id_made_safe() -> None:
    """Readable names stay as they were; a lossy one gets a hash of the whole node id."""
    from pytest_kruise_agents.plugin.benchmark import file_stem

    assert file_stem("tests/test_app.py::test_drain") == "tests_test_app.py_test_drain"
    assert file_stem("t.py::test[a/b]") != file_stem("t.py::test[a:b]")
    assert file_stem("t.py::test[a/b]").startswith("t.py_test_a_b-")
    long = "t.py::test_" + "x" * 300
    assert len(file_stem(long)) == 120 and file_stem(long) != file_stem(long + "y")


def test_tests_that_read_alike_once_made_safe_get_a_hash_each() -> None:
    """``a/test_b.py`` and ``a_test_b.py``, or a class and a function, read the same once the
    separators are ``_``: when the run holds both, both stems carry a hash of their node id."""
    from pytest_kruise_agents.plugin.benchmark import clashing_stems, file_stem

    ids = [
        "test_stem.py::TestA::test_x",
        "test_stem.py::TestA_test_x",
        "a/test_b.py::test_x",
        "a_test_b.py::test_x",
        "tests/test_app.py::test_drain",
    ]
    clashes = clashing_stems(ids)
    stems = [file_stem(i, clashes) for i in ids]
    assert len(set(stems)) == len(ids)
    assert stems[0].startswith("test_stem.py_TestA_test_x-") and stems[0] != stems[1]
    assert stems[2].startswith("a_test_b.py_test_x-") and stems[2] != stems[3]
    assert stems[4] == "tests_test_app.py_test_drain"  # no other test reads so: kept readable


def test_xdist_workers_sharing_a_report_directory_never_overwrite_each_other(
    suite: pytest.Pytester,
) -> None:
    """Two tests whose node ids read alike, run on two workers into one directory: two files each."""
    body = """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.xdist_group("{group}")
        def test_x(delivery_benchmark):
            delivery_benchmark(Burst(1))
        """
    suite.mkpydir("test_a")
    (suite.path / "test_a" / "test_b.py").write_text(textwrap.dedent(body.format(group="one")))
    (suite.path / "test_a_test_b.py").write_text(textwrap.dedent(body.format(group="two")))
    reports = suite.path / "reports"
    result = suite.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", f"--kruise-report-dir={reports}"
    )
    result.assert_outcomes(passed=2)
    names = sorted(p.name for p in reports.glob("*.json"))
    assert len(names) == 2, names
    assert all(n.startswith("test_a_test_b.py_test_x-") for n in names), names
    assert not [n for n in names if n.endswith("-2.json")], "told apart by the stem, not by luck"


def test_under_dist_each_every_workers_run_of_a_test_has_its_own_files(
    suite: pytest.Pytester,
) -> None:
    """``--dist each`` runs every test on every worker: the worker id tells their files apart."""
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_x(delivery_benchmark):
            delivery_benchmark(Burst(1))
        """
    )
    reports = suite.path / "reports"
    result = suite.runpytest_subprocess(
        "-n", "2", "--dist", "each", "-p", "no:cacheprovider", f"--kruise-report-dir={reports}"
    )
    result.assert_outcomes(passed=2)
    stem = "test_under_dist_each_every_workers_run_of_a_test_has_its_own_files.py_test_x"
    names = sorted(p.name for p in reports.glob("*.json"))
    assert names == [f"{stem}-burst-1-e2b-gw0.json", f"{stem}-burst-1-e2b-gw1.json"]


def test_with_a_realtime_clock_the_benchmark_runs_on_the_wall_clock(suite: pytest.Pytester) -> None:
    """``clock="realtime:N"``: the run waits for the realtime driver, never puts the cluster's
    clock ahead of the wall clock (a create after it would wait), and says so in the reports."""
    suite.makepyfile(
        """
        import time
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.kruise(clock="realtime:20", pools={"base": 1})
        def test_realtime(delivery_benchmark, kruise_clock, kruise_backend):
            start = kruise_clock.now()
            result = delivery_benchmark(Burst(2))  # one cold: seconds of virtual time
            with kruise_backend.locked() as cluster:
                moved = cluster.now - start
                # The virtual time the wall clock reads now, which the model may lag, never
                # lead (the wall time since start would count a lag at start as a lead).
                behind = kruise_backend._virtual_at(time.monotonic()) - cluster.now
            assert result.clock == "realtime" and len(result.cold) == 1
            assert moved > 1.0 and behind >= 0
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["    sim seed=0 profile=openkruise-head (realtime clock): *.csv *"]
    )


def test_the_benchmark_kills_its_sandboxes_so_they_are_not_the_tests_leaks(
    suite: pytest.Pytester,
) -> None:
    """On the fake cluster, the E2B path's sandboxes are killed once measured."""
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_with_e2b(delivery_benchmark, kruise_e2b):
            result = delivery_benchmark(Burst(2))
            assert len(result.delivered) == 2
            assert kruise_e2b.sandboxes() == {}
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    assert "left behind" not in result.stdout.str()


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
def test_a_run_stopped_midway_leaves_its_claims_out_of_the_tests_leftovers(
    suite: pytest.Pytester, path: str
) -> None:
    """A timeout stops the run with claims in flight: they are killed at teardown, but they
    are not the test's leftovers. The alarm fails the test as pytest-timeout's signal method
    does (``pytest.fail`` from a SIGALRM handler)."""
    suite.makepyfile(
        f"""
        import signal
        import pytest
        from e2b import Sandbox
        from pytest_kruise_agents.delivery import Rate

        def timeout(signum, frame):
            pytest.fail("Timeout (>1.0s)")

        def test_stopped(kruise_e2b, delivery_benchmark):
            Sandbox.create()  # the test's own leftover
            signal.signal(signal.SIGALRM, timeout)
            signal.setitimer(signal.ITIMER_REAL, 1.0)
            try:
                with pytest.raises(pytest.fail.Exception):
                    delivery_benchmark(Rate(20, 3600, path="{path}"))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
            assert len(kruise_e2b.sandboxes()) > 2  # the run's, in flight, and the test's
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r".*::test_stopped: 1 killed: default--base-\w+ \(running\)$"])


def test_a_url_that_is_not_an_http_url_is_refused_before_anything_runs(
    suite: pytest.Pytester,
) -> None:
    """``url=""`` would measure E2B's cloud with the caller's key; a bare ``host:port`` would
    fail each claim. Both are refused first, naming ``url`` (not the missing key), and
    write no files."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.parametrize("url", ["", "127.0.0.1:8080"])
        def test_url(delivery_benchmark, monkeypatch, url):
            monkeypatch.delenv("E2B_API_KEY", raising=False)
            with pytest.raises(ValueError, match="url: must be an http:// or https:// URL"):
                delivery_benchmark(Burst(1), url=url)
            with pytest.raises(TypeError, match="workload: must be a Burst or a Rate"):
                delivery_benchmark("burst")
            assert delivery_benchmark.results == []
        """
    )
    reports = suite.path / "reports"
    result = suite.runpytest(f"--kruise-report-dir={reports}")
    result.assert_outcomes(passed=2)
    assert not reports.exists() or not any(reports.iterdir())


def test_a_template_no_pool_could_have_is_refused_before_the_cluster_is_made(
    suite: pytest.Pytester,
) -> None:
    """A template that is no SandboxSet name is refused naming ``template``, before the
    test's cluster is built (``--setup-show`` shows no ``kruise_backend``)."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        def test_bad_template(delivery_benchmark):
            with pytest.raises(ValueError, match="template"):
                delivery_benchmark(Burst(1, template="Not_A_Pool"))
            assert delivery_benchmark.results == []
        """
    )
    result = suite.runpytest("--setup-show")
    result.assert_outcomes(passed=1)
    assert "kruise_backend" not in result.stdout.str()


def test_a_name_that_is_not_a_string_is_refused_before_anything_runs(
    suite: pytest.Pytester,
) -> None:
    """``name`` labels the files and the summary: one that is no ``str`` is refused naming
    ``name``, with the fixture's other checks, before the test's cluster is made (no
    ``kruise_backend`` in ``--setup-show``) and before any file is written."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.parametrize("name", [5, b"run", ["run"]])
        def test_name(delivery_benchmark, name):
            with pytest.raises(TypeError, match="name: must be a str, got "):
                delivery_benchmark(Burst(1), name=name)
            assert delivery_benchmark.results == []
        """
    )
    reports = suite.path / "reports"
    result = suite.runpytest(f"--kruise-report-dir={reports}", "--setup-show")
    result.assert_outcomes(passed=3)
    assert "kruise_backend" not in result.stdout.str()
    assert not reports.exists()


def test_a_result_its_files_cannot_hold_is_kept_and_the_error_names_the_option(
    suite: pytest.Pytester,
) -> None:
    """The report directory is checked at start; should it become unwritable after all (here a
    file put in its place), the run is not lost: it is in ``results`` and in the terminal
    summary, and the error names ``--kruise-report-dir``, not only pathlib's path."""
    reports = suite.path / "reports"
    suite.makepyfile(
        f"""
        import pytest
        from pathlib import Path
        from pytest_kruise_agents.delivery import Burst

        def test_blocked(delivery_benchmark):
            Path({str(reports)!r}).write_text("in the way")
            with pytest.raises(OSError, match="^the report directory [(]--kruise-report-dir[)]: "):
                delivery_benchmark(Burst(2))
            (result,) = delivery_benchmark.results
            assert len(result.delivered) == 2 and result.files == ()
        """
    )
    result = suite.runpytest(f"--kruise-report-dir={reports}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_blocked [[]burst-2-e2b]      2     2     0     0 *"])


def test_a_live_runs_api_key_is_taken_as_given_and_checked_before_anything_is_sent(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``api_key`` falls back to ``E2B_API_KEY`` only when not given: an empty one is refused,
    not replaced by the exported key, and one that is no ``str`` (or a ``domain`` that is
    none) is refused naming it, not sent to fail each claim."""
    monkeypatch.setenv("E2B_API_KEY", "exported-key")
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        @pytest.mark.parametrize(
            ("given", "error", "message"),
            [
                ({"api_key": ""}, ValueError, "api_key: must not be empty"),
                ({"api_key": 5}, TypeError, "api_key: must be a str, got 5"),
                ({"domain": 5}, TypeError, "domain: must be a str, got 5"),
            ],
        )
        def test_key(delivery_benchmark, given, error, message):
            with pytest.raises(error, match=message):
                delivery_benchmark(Burst(1), url="http://127.0.0.1:9", **given)
            assert delivery_benchmark.results == []
        """
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_a_run_name_already_written_gets_a_number(suite: pytest.Pytester) -> None:
    """docs/plugin.md: a name already written in the session gets ``-2``, ``-3``, ...: the
    first run keeps the plain name."""
    suite.makepyfile(
        """
        from pytest_kruise_agents.delivery import Burst

        def test_thrice(delivery_benchmark):
            for _ in range(3):
                delivery_benchmark(Burst(1))
        """
    )
    reports = suite.path / "reports"
    suite.runpytest(f"--kruise-report-dir={reports}").assert_outcomes(passed=1)
    stem = "test_a_run_name_already_written_gets_a_number.py_test_thrice-burst-1-e2b"
    assert sorted(p.name for p in reports.glob("*.json")) == [
        f"{stem}-2.json",
        f"{stem}-3.json",
        f"{stem}.json",
    ]


def test_a_live_run_with_no_key_and_an_empty_e2b_api_key_says_one_is_required(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``E2B_API_KEY=`` (set to nothing) is no key: the error says one is required, as when
    the variable is unset, before anything is sent."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.delivery import Burst

        def test_key(delivery_benchmark, monkeypatch):
            monkeypatch.setenv("E2B_API_KEY", "")
            message = "^api_key: required with url [(]or set E2B_API_KEY[)]$"
            with pytest.raises(ValueError, match=message):
                delivery_benchmark(Burst(1), url="http://127.0.0.1:9")
            monkeypatch.delenv("E2B_API_KEY")
            with pytest.raises(ValueError, match=message):
                delivery_benchmark(Burst(1), url="http://127.0.0.1:9")
            assert delivery_benchmark.results == []
        """
    )
    suite.runpytest().assert_outcomes(passed=1)

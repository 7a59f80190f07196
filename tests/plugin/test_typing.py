"""A typed downstream suite type-checks as the docs promise, with plain ``mypy --strict``.

One mypy run (through :func:`mypy.api.run`, with no config and no pydantic plugin: what
a downstream project that merely installs the package gets) checks two files:

- ``typed_suite.py`` uses the public API the way docs/plugin.md and the README show it
  and must type-check cleanly; ``assert_type`` pins what each call is typed as;
- ``mistakes.py`` holds one mistake per line, each marked with the error mypy must report
  there (a misspelt field, a misspelt keyword, a call the Backend protocol does not have).

The cache lives under the project's ``.mypy_cache`` (its own directory, apart from
``make typecheck``'s), so that only the first run pays for checking the dependencies.
The run is in-process and sets ``MYPY_CONFIG_FILE_DIR``: the environment is put back.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_kruise_agents.plugin as plugin
from tests.mypy_run import run_mypy

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".mypy_cache" / "tests-plugin-typing"

TYPED_SUITE = '''
from __future__ import annotations

from pathlib import Path
from typing import assert_type

import e2b

from pytest_kruise_agents.api import Pod, Sandbox, SandboxClaim, SandboxSet, SandboxTemplate
from pytest_kruise_agents.api.manifest import KubeObject
from pytest_kruise_agents.backends import Backend
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.delivery import Burst, DeliveryResult
from pytest_kruise_agents.plugin import (
    Cluster,
    ClusterSpec,
    DeliveryBenchmark,
    E2BSandboxFactory,
    KruiseClock,
    KruiseE2B,
    KruiseFaults,
    SandboxClaimFactory,
    SandboxSetFactory,
    SimBackend,
)
from simulator.latency import Exponential, Fixed, LogNormal, Uniform


class Agent(e2b.Sandbox):
    """An SDK subclass, as e2b_code_interpreter.Sandbox is."""

    def ask(self) -> int:
        return 42


class AsyncAgent(e2b.AsyncSandbox):
    pass


def kinds(cluster: Cluster, kind: str) -> None:
    assert_type(cluster.get("sbx", "a"), Sandbox)
    assert_type(cluster.get("Sandbox", "a"), Sandbox)
    assert_type(cluster.get("sandboxes.agents.kruise.io", "a"), Sandbox)
    assert_type(cluster.get("sbs", "a"), SandboxSet)
    assert_type(cluster.get("sbc", "a", "team-a"), SandboxClaim)
    assert_type(cluster.get("sbt", "a"), SandboxTemplate)
    assert_type(cluster.get("pods.v1", "a"), Pod)
    assert_type(cluster.get(kind, "a"), KubeObject)
    assert_type(cluster.list("sbx"), list[Sandbox])
    assert_type(cluster.list("sandboxsets", None, labels={"a": "b"}), list[SandboxSet])
    assert_type(cluster.list(kind), list[KubeObject])
    available: int = cluster.get("sbs", "base").status.available_replicas
    print(available)


def backend_kinds(seam: Backend, sim: SimBackend, kind: str) -> None:
    # A backend's get and list are typed by the kind as the Cluster's are.
    assert_type(seam.get("sbx", "a"), Sandbox)
    assert_type(seam.get("SandboxSet", "a"), SandboxSet)
    assert_type(seam.get("sbc", "a", "team-a"), SandboxClaim)
    assert_type(seam.get("sandboxtemplates.agents.kruise.io", "a"), SandboxTemplate)
    assert_type(seam.get("po", "a"), Pod)
    assert_type(seam.get(kind, "a"), KubeObject)
    assert_type(seam.list("sbc"), list[SandboxClaim])
    assert_type(seam.list(kind, "team-a"), list[KubeObject])
    assert_type(sim.get("sbs", "a"), SandboxSet)
    assert_type(sim.list("pods"), list[Pod])
    assert_type(sim.list(kind), list[KubeObject])
    ready: int = seam.get("sbs", "base").status.available_replicas
    print(ready)


def creates(cluster: Cluster) -> None:
    proc = cluster.submit_create(
        "base",
        namespace="default",
        user="00000000-0000-4000-8000-000000000001",
        timeout=60,
        metadata={"userId": "alice"},
        env_vars={"A": "1"},
        auto_pause=True,
        volume_mounts=[{"name": "v", "mountPath": "/data"}],
        allow_internet_access=False,
    )
    proc.interrupt()
    results = cluster.create_sandboxes(2, "base", timeout=60, metadata={"userId": "alice"})
    assert_type(results, list[Sandbox | ClaimError])
    rec = cluster.last_record()
    assert rec.latency is not None
    print(round(rec.latency, 3))


def latencies() -> None:
    # docs/profiles-and-faults.md: the distributions by their own fields only.
    assert Exponential(mean=2.0).mean() == 2.0
    assert LogNormal(median=5, p99=30, cap=60).mu > 0
    assert Fixed(value=0.1).mean() < Uniform(low=0.1, high=0.5).mean()


def test_fixtures(
    kruise_cluster: Cluster,
    kruise_backend: SimBackend,
    kruise_e2b: KruiseE2B,
    kruise_clock: KruiseClock,
    kruise_faults: KruiseFaults,
    sandboxset: SandboxSetFactory,
    sandbox_claim: SandboxClaimFactory,
    e2b_sandbox: E2BSandboxFactory,
    delivery_benchmark: DeliveryBenchmark,
    kruise_options: ClusterSpec,
) -> None:
    assert_type(e2b_sandbox(), e2b.Sandbox)
    assert_type(e2b_sandbox("base", cls=Agent), Agent)
    assert e2b_sandbox(cls=Agent).ask() == 42
    with kruise_backend.locked() as cluster:
        assert_type(cluster, Cluster)
    result = delivery_benchmark(
        Burst(1),
        url=kruise_e2b.url,
        api_key=kruise_e2b.api_key,
        sandbox_url=kruise_e2b.url,
        domain="example.com",
        deadline_s=30,
    )
    assert_type(result, DeliveryResult)
    assert_type(result.write_csv("out/run.csv"), Path)
    assert_type(result.write_json(Path("out") / "run.json"), Path)
    assert_type(sandboxset("agents", replicas=2), SandboxSet)
    assert_type(sandbox_claim("base"), SandboxClaim)
    kruise_clock.advance(1)
    kruise_faults.clear()
    print(kruise_options.seed)


async def test_async(e2b_sandbox: E2BSandboxFactory) -> None:
    assert_type(await e2b_sandbox.acreate(), e2b.AsyncSandbox)
    assert_type(await e2b_sandbox.acreate(cls=AsyncAgent), AsyncAgent)
'''

MISTAKES = """
from pytest_kruise_agents.backends import Backend
from pytest_kruise_agents.plugin import Cluster, E2BSandboxFactory


def mistakes(cluster: Cluster, seam: Backend, e2b_sandbox: E2BSandboxFactory) -> None:
    print(cluster.get("sbs", "base").status.availble_replicas)  # E: attr-defined
    text: str = cluster.get("sbs", "base").status.available_replicas  # E: assignment
    print(cluster.list("sbx")[0].spec.replicas)  # E: attr-defined
    cluster.submit_create("base", timout=60)  # E: call-arg
    cluster.create_sandboxes(2, "base", timout=60)  # E: call-arg
    e2b_sandbox(cls=int)  # E: type-var
    with seam.locked():  # E: attr-defined
        pass
    print(seam.get("sbs", "base").status.availble_replicas)  # E: attr-defined
    print(seam.list("sbx")[0].spec.replicas)  # E: attr-defined
    print(text)
"""

_ERROR = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def _expected(source: str) -> set[tuple[int, str]]:
    """``(line, code)`` for each line of ``source`` marked ``# E: <code>``."""
    return {
        (number, line.rsplit("# E: ", 1)[1].strip())
        for number, line in enumerate(source.splitlines(), start=1)
        if "# E: " in line
    }


def test_a_typed_downstream_suite_type_checks_and_its_mistakes_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = textwrap.dedent(TYPED_SUITE).lstrip()
    mistakes = textwrap.dedent(MISTAKES).lstrip()
    (tmp_path / "typed_suite.py").write_text(suite)
    (tmp_path / "mistakes.py").write_text(mistakes)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")  # not the project's: no pydantic plugin
    monkeypatch.chdir(tmp_path)  # the package is found installed, as downstream finds it
    environment = dict(os.environ)
    limit = sys.getrecursionlimit()
    out, err, _ = run_mypy(
        [
            *("--strict", "--config-file", "mypy.ini", "--cache-dir", str(CACHE)),
            *("--no-error-summary", "--hide-error-context", "typed_suite.py", "mistakes.py"),
        ]
    )
    # Later tests see what they saw before: the environment, the recursion limit.
    assert dict(os.environ) == environment and sys.getrecursionlimit() == limit
    assert err == ""
    errors = [m for m in map(_ERROR.match, out.splitlines()) if m]
    assert [m.string for m in errors if m["file"] != "mistakes.py"] == []
    seen = {(int(m["line"]), m["code"]) for m in errors}
    assert seen == _expected(mistakes), out


def test_every_fixtures_type_is_exported_by_the_plugin() -> None:
    """docs/plugin.md, "Annotating fixtures": each type in ``__all__`` and importable."""
    types = {
        "Cluster": "simulator.cluster",
        "ClusterFactory": "pytest_kruise_agents.plugin.factories",
        "SimBackend": "pytest_kruise_agents.backends.sim",
        "KruiseE2B": "pytest_kruise_agents.plugin.server",
        "KruiseClock": "pytest_kruise_agents.plugin.clock",
        "KruiseFaults": "pytest_kruise_agents.plugin.faults",
        "SandboxSetFactory": "pytest_kruise_agents.plugin.factories",
        "SandboxClaimFactory": "pytest_kruise_agents.plugin.factories",
        "E2BSandboxFactory": "pytest_kruise_agents.plugin.factories",
        "DeliveryBenchmark": "pytest_kruise_agents.plugin.benchmark",
        "ClusterSpec": "pytest_kruise_agents.plugin.marker",
    }
    for name, module in types.items():
        assert name in plugin.__all__
        assert getattr(plugin, name).__module__ == module
    with pytest.raises(AttributeError, match="has no attribute 'KruiseE2b'"):
        plugin.KruiseE2b  # type: ignore[attr-defined]  # noqa: B018


def test_the_annotated_example_of_the_docs_passes(suite: pytest.Pytester) -> None:
    """docs/plugin.md's "Annotating fixtures" example runs as written, and each fixture's
    value is an instance of the type it is annotated with."""
    text = (ROOT / "docs" / "plugin.md").read_text()
    start = text.index("### Annotating fixtures")
    (example,) = re.findall(
        r"```python\n(.*?)```", text[start : text.index("\n### ", start + 1)], re.S
    )
    check = """
        import pytest
        import pytest_kruise_agents.plugin as plugin

        FIXTURES = {
            "kruise_cluster": plugin.Cluster, "kruise_backend": plugin.SimBackend,
            "kruise_e2b": plugin.KruiseE2B, "kruise_clock": plugin.KruiseClock,
            "kruise_faults": plugin.KruiseFaults, "sandboxset": plugin.SandboxSetFactory,
            "sandbox_claim": plugin.SandboxClaimFactory, "e2b_sandbox": plugin.E2BSandboxFactory,
            "delivery_benchmark": plugin.DeliveryBenchmark, "kruise_options": plugin.ClusterSpec,
            "kruise_cluster_factory": plugin.ClusterFactory,
        }

        @pytest.mark.parametrize("name", sorted(FIXTURES))
        def test_value_type(request, name):
            assert isinstance(request.getfixturevalue(name), FIXTURES[name])
        """
    suite.makepyfile(test_example=example, test_values=textwrap.dedent(check))
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=12)

"""docs/planning.md and scenarios/README.md stay true to the code and the scenario files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from simulator.planning import arrivals, scenario
from simulator.planning.loading import parse_scenario
from simulator.planning.runner import run_once

from .conftest import ROOT, SCENARIOS

DOC = ROOT / "docs" / "planning.md"
README = SCENARIOS / "README.md"

MODELS: list[type[BaseModel]] = [
    scenario.Scenario,
    scenario.ClusterSpec,
    scenario.NodeGroup,
    scenario.PoolSpec,
    scenario.WorkloadSpec,
    scenario.ClaimSpec,
    scenario.FaultSpec,
    scenario.Goals,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_scenario_field_is_documented(model: type[BaseModel]) -> None:
    """Each field of the scenario models is named in docs/planning.md."""
    text = DOC.read_text()
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert not missing, f"{model.__name__}: undocumented fields {missing}"


def test_every_arrival_kind_is_documented() -> None:
    """Each arrival kind has its row."""
    text = DOC.read_text()
    kinds = [
        m.model_fields["kind"].default
        for m in (
            arrivals.PoissonArrivals,
            arrivals.ConstantArrivals,
            arrivals.BurstArrivals,
            arrivals.DiurnalArrivals,
            arrivals.TraceArrivals,
        )
    ]
    assert all(f"| `{kind}` |" in text for kind in kinds)


def test_every_scenario_is_in_the_readme_table() -> None:
    """scenarios/README.md has a row for each scenario file, and no row for a missing one."""
    rows = re.findall(r"^\| \[`([\w-]+)\.yaml`\]", README.read_text(), re.MULTILINE)
    assert sorted(rows) == sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


def test_the_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in "From Python" runs as written, from the repository root."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    assert Path(os.getcwd()) == ROOT


_RECYCLING = """
name: recycling
seed: 1
replications: 1
duration: 2m
cluster: {profile: PROFILE}
pools:
  - manifest: |
      apiVersion: agents.kruise.io/v1alpha1
      kind: SandboxSet
      metadata: {name: base}
      spec:
        replicas: 4
        runtimes: [{name: agent-runtime}]
        template:
          metadata:
            annotations: {agents.kruise.io/cleanup-enabled: "CLEANUP"}
          spec:
            containers: [{name: c, image: "python:3.12"}]
workloads:
  - template: base
    arrivals: {kind: poisson, rate: 1}
    hold: 10s
    claim: {path: PATH}
"""


def _pool_figures(path: str, cleanup: str, profile: str = "openkruise-head") -> dict[str, object]:
    text = _RECYCLING.replace("PROFILE", profile).replace("CLEANUP", cleanup).replace("PATH", path)
    return dict(run_once(parse_scenario(text)).pools["default/base"])


def test_the_page_says_once_which_workloads_recycle_as_a_run_does() -> None:
    """A ``cleanup-enabled`` pool recycles what an E2B workload kills (on HEAD; v0.3.0's kill
    deletes), never what a SandboxClaim workload deletes: said in ``pools``, and not denied
    under "What is not modelled".

    Before, that section said recycling played no part in the workloads, which the
    ``pools`` passage and the runs contradicted.
    """
    assert _pool_figures("e2b", "true") != _pool_figures("e2b", "false")
    assert _pool_figures("sandboxclaim", "true") == _pool_figures("sandboxclaim", "false")
    old = "openkruise-v0.3.0"
    assert _pool_figures("e2b", "true", old) == _pool_figures("e2b", "false", old)

    text = DOC.read_text()
    pools = text.split("### `pools` (`PoolSpec`)", 1)[1].split("\n### ", 1)[0]
    said = " ".join(pools.split())
    assert "makes the sandboxes an E2B workload holds go back to the pool" in said
    assert "not on `openkruise-v0.3.0`, whose kill deletes" in said
    assert (
        "A SandboxClaim workload releases a sandbox by deleting it, so its sandboxes are never "
        "recycled" in said
    )
    not_modelled = text.split("## What is not modelled", 1)[1]
    assert "recycl" not in not_modelled.lower()

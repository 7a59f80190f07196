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


def _commands_table() -> dict[str, str]:
    """The first cell of each row of the Commands table, by the command it starts with."""
    text = DOC.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")]
    return {cell.strip("`").split()[0]: cell for cell in cells}


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_every_option_of_a_planning_command_is_in_its_row(command: str) -> None:
    """The Commands table's row of each command names every option ``--help`` gives it; a row
    that ends with ``...`` leaves out only the options it shares with ``simulate``'s row."""
    import typer.main

    from pytest_kruise_agents.cli import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    options = [o for p in click_command.params for o in p.opts if o.startswith("--")]
    assert "--seed" in options
    rows = _commands_table()
    row, shared = rows[command], rows["simulate"]
    flags = set(re.findall(r"--[\w-]+", row))
    missing = [o for o in options if o not in flags]
    if missing:
        assert row.endswith("...`"), f"{command}: {missing} not in its row"
        assert [o for o in missing if o not in re.findall(r"--[\w-]+", shared)] == []
    assert flags <= set(options), f"{command}: the row names options it does not take"


def test_quick_plan_is_documented_with_every_parameter_and_its_result() -> None:
    """The section "From Python" names each parameter of ``quick_plan`` and each field of its
    result."""
    import inspect

    from simulator.planning import QuickPlan, quick_plan

    text = DOC.read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    spans = re.findall(r"`[^`]+`", prose)
    names = [*inspect.signature(quick_plan).parameters, *QuickPlan.__dataclass_fields__]
    missing = [n for n in names if not any(re.search(rf"\b{n}\b", s) for s in spans)]
    assert missing == []

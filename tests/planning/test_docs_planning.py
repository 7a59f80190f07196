"""docs/planning.md and scenarios/README.md stay true to the code and the scenario files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from simulator.planning import arrivals, scenario

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

"""quick_plan: the short capacity plan ``make demo`` ends with."""

from __future__ import annotations

from pathlib import Path

from pytest_kruise_agents.demo import POOL_YAML
from simulator.planning import quick_plan


def test_quick_plan_of_the_demo_pool(tmp_path: Path) -> None:
    """A few lines naming the pool, Erlang's and the simulated answers, and the report's path."""
    qp = quick_plan(POOL_YAML, rate=1.0, duration=60.0, replications=1, out_dir=tmp_path)
    assert qp.report == tmp_path / "report.html" and qp.report.exists()
    assert (tmp_path / "summary.json").exists()
    lines = qp.text.splitlines()
    assert lines[0].startswith("Capacity plan for pool default/base")
    assert any(line.strip().startswith("Erlang-B:") for line in lines)
    (simulated,) = [line for line in lines if line.strip().startswith("simulated:")]
    # One replication: no interval, and the answer says how sure it is.
    assert "over 1 replication, one replication: no interval (" in simulated
    assert lines[-1] == f"  report: {qp.report}"
    assert qp.result.answer is not None

"""Every shipped scenario runs (shortened to a twentieth) and shows what its README line says."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.planning.loading import load_scenario
from simulator.planning.overrides import apply_overrides
from simulator.planning.runner import run_once
from simulator.planning.scenario import Scenario

from .conftest import SCENARIOS

CLAIMS = 150
"""About this many claims per shortened run: the whole set runs in seconds."""


def shorten(scenario: Scenario) -> Scenario:
    """Times, bursts and pools scaled down to about :data:`CLAIMS` claims (at most 5%)."""
    expected = sum(wl.arrivals.expected(0, scenario.horizon) for wl in scenario.workloads)
    return scenario.shortened(min(0.05, max(0.002, CLAIMS / max(expected, 1.0))))


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_scenario_runs_shortened(path: Path) -> None:
    """The scenario (and the last point of its own sweep) runs to the end and delivers claims."""
    full = load_scenario(path)
    points = [shorten(full)]
    for axis, values in full.sweep.items():
        points.append(shorten(apply_overrides(full, [(axis, values[-1])])))
    for point in points:
        result = run_once(point)
        assert not result.interrupted
        assert result.metrics["claims"] and result.metrics["claims"] > 0
        assert result.metrics["delivered"] and result.metrics["delivered"] > 0
        assert len(result.series["t"]) > 10


def test_no_stock_waits_or_creates() -> None:
    """Waiting claims are never cold but retry; creating claims never retry but some are cold."""
    scenario = load_scenario(SCENARIOS / "no-stock.yaml").shortened(0.2)
    waiting = run_once(scenario)
    creating = run_once(
        apply_overrides(scenario, [("workloads[0].claim.create_on_no_stock", True)])
    )
    assert waiting.metrics["cold_share"] == 0 and waiting.metrics["waited_share"] > 0  # type: ignore[operator]
    assert creating.metrics["cold_share"] > 0 and creating.metrics["waited_share"] == 0  # type: ignore[operator]
    assert waiting.metrics["latency_p99"] > creating.metrics["latency_p99"]  # type: ignore[operator]


def test_node_loss_takes_the_nodes_capacity() -> None:
    """Losing a node mid-burst removes what it held: the requested CPU drops when the fault opens."""
    scenario = load_scenario(SCENARIOS / "node-loss.yaml").shortened(0.2)
    result = run_once(scenario)
    t = result.series["t"]
    cpu = result.series["node_cpu"]
    start = scenario.faults[0].start
    before = max(c for x, c in zip(t, cpu, strict=True) if start - 1 <= x < start)
    after = min(c for x, c in zip(t, cpu, strict=True) if start <= x <= start + 1)
    assert after < before

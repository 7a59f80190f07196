"""Scenarios small enough to run in a fraction of a second, shared by the planning tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.planning.loading import parse_scenario
from simulator.planning.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

TINY = """\
name: tiny
seed: 4
replications: 2
duration: 40s
warmup: 5s
cluster: {nodes: 2}
pools:
  - {name: base, replicas: 4}
workloads:
  - template: base
    arrivals: {kind: poisson, rate: 2}
    hold: exp(10s)
goals: {slo: p99<1s, max_cold: 5%}
"""
"""About 80 claims per run: a fraction of a second each."""


def instant_latencies(refill: str = "exp(2s)") -> dict[str, object]:
    """Every step instant except the pod creation: the pool is an Erlang system of refill L."""
    from simulator.profile import LATENCY_DOCS

    lat: dict[str, object] = dict.fromkeys(LATENCY_DOCS, 0)
    lat["pod.create"] = refill
    return lat


@pytest.fixture
def tiny_text() -> str:
    """The tiny scenario as YAML."""
    return TINY


@pytest.fixture
def tiny() -> Scenario:
    """The tiny scenario, validated."""
    return parse_scenario(TINY, source="tiny.yaml")


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    """The tiny scenario written to a file."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path

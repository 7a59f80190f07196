"""A scenario's faults: refused when the file is read, by the rules of every other reader of faults.

The server config and the ``@pytest.mark.kruise`` marker read the same faults;
the scenario refuses what they refuse, under the same field path and for the
same reason, and accepts what they accept. Whatever only a run could find out
(a window past the clock's end) is refused at load too, naming the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kruise_agents.e2b.config import ConfigError, parse_config
from pytest_kruise_agents.plugin.marker import ClusterSpec
from pytest_kruise_agents.plugin.recipe import RecipeBook, RecipeError
from simulator.latency import parse_latency
from simulator.planning.errors import ScenarioError
from simulator.planning.loading import load_scenario, parse_scenario
from simulator.planning.overrides import apply_overrides

from .conftest import TINY

_MARKER = "@pytest.mark.kruise "


def _with_fault(fault: str) -> str:
    """TINY (two nodes) with one fault, written in flow style on line 14."""
    return TINY.replace("goals:", f"faults:\n  - {fault}\ngoals:")


def _load_error(text: str, tmp_path: Path) -> ScenarioError:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def _scenario_refusal(fault: dict[str, Any]) -> tuple[str, str] | None:
    data = yaml.safe_load(TINY)
    data["faults"] = [fault]
    try:
        parse_scenario(data, source="s.yaml")
    except ScenarioError as exc:
        return exc.path, exc.reason
    return None


def _config_refusal(fault: dict[str, Any]) -> tuple[str, str] | None:
    try:
        parse_config({"nodes": 2, "faults": [fault]}, source="cluster.yaml")
    except ConfigError as exc:
        return exc.field, exc.reason
    return None


def _marker_refusal(fault: dict[str, Any]) -> tuple[str, str] | None:
    try:
        RecipeBook().recipe(ClusterSpec(nodes=2, faults=json.dumps([fault])))
    except RecipeError as exc:
        path, _, why = str(exc).removeprefix(_MARKER).partition(": ")
        return path, why
    return None


_READERS = {"scenario": _scenario_refusal, "config": _config_refusal, "marker": _marker_refusal}


@pytest.mark.parametrize("reader", sorted(_READERS))
@pytest.mark.parametrize(
    ("fault", "path", "reason"),
    [
        pytest.param(
            {"kind": "controller_stall", "duration": 10, "count": 3},
            "faults[0].count",
            "a fault of kind 'controller_stall' takes no count: it holds its component",
            id="stall-count",
        ),
        pytest.param(
            {"kind": "node_loss", "count": 2, "selector": {"node": "node-1"}},
            "faults[0].count",
            "a node_loss with a node selector loses that one node, got count 2",
            id="node-loss-count",
        ),
        pytest.param({"kind": "pod_kill", "count": 0}, "faults[0].count", "1", id="count-0"),
        pytest.param({"kind": "meteor"}, "faults[0].kind", "'controller_stall'", id="kind"),
        pytest.param(
            {"kind": "api_error", "probability": 2}, "faults[0].probability", "1", id="probability"
        ),
        pytest.param(
            {"kind": "api_error", "code": 200},
            "faults[0].code",
            "a fault of kind 'api_error' answers 429 or a 5xx status, got 200",
            id="code",
        ),
        pytest.param(
            {"kind": "api_latency"},
            "faults[0].latency",
            "a fault of kind 'api_latency' needs a latency",
            id="latency-missing",
        ),
        pytest.param(
            {"kind": "api_error", "latency": "1s"},
            "faults[0].latency",
            "a fault of kind 'api_error' takes no latency",
            id="latency-unused",
        ),
        pytest.param(
            {"kind": "api_latency", "latency": {"kind": "gamma"}},
            "faults[0].latency",
            "unknown kind 'gamma'",
            id="latency-mapping-kind",
        ),
        pytest.param(
            {"kind": "api_latency", "latency": {"kind": "uniform", "low": "2s", "high": "1s"}},
            "faults[0].latency",
            "invalid latency",
            id="latency-mapping-bounds",
        ),
        pytest.param(
            {"kind": "api_latency", "latency": "exp(-1s)"},
            "faults[0].latency",
            "mean: must be greater than 0",
            id="latency-text",
        ),
        pytest.param(
            {"kind": "api_conflict", "start": -1}, "faults[0].start", "0", id="start-negative"
        ),
        pytest.param(
            {"kind": "api_conflict", "duration": 0}, "faults[0].duration", "0", id="duration-0"
        ),
        pytest.param(
            {"kind": "api_conflict", "selector": {"verb": "create"}},
            "faults[0].selector",
            "never matches verb='create'",
            id="selector-value-of-kind",
        ),
        pytest.param(
            {"kind": "watch_lag", "latency": "1s", "selector": {"informer": "manager"}},
            "faults[0].selector",
            "informer='manager' names nothing",
            id="selector-value",
        ),
        pytest.param(
            {"kind": "node_loss", "selector": {"node": "node-9"}},
            "faults[0].selector.node",
            "no node named 'node-9' (nodes: node-1, node-2)",
            id="selector-node",
        ),
        pytest.param(
            {"kind": "api_error", "colour": "red"}, "faults[0].colour", "unknown field", id="extra"
        ),
    ],
)
def test_a_bad_fault_is_refused_alike_by_every_reader(
    reader: str, fault: dict[str, Any], path: str, reason: str
) -> None:
    """The scenario, the server config and the marker refuse the fault at the same field, why said.

    A fault the scenario let through used to be refused only once the run
    injected it (a controller_stall with a count: a raw pydantic traceback
    after "1 run(s) started").
    """
    refusal = _READERS[reader](fault)

    assert refusal is not None, f"{reader} accepted {fault}"
    assert refusal[0] == path
    assert reason in refusal[1]


@pytest.mark.parametrize("reader", sorted(_READERS))
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            {
                "kind": "api_latency",
                "latency": {"kind": "uniform", "low": "100ms", "high": "200ms"},
            },
            id="latency-mapping",
        ),
        pytest.param({"kind": "watch_lag", "latency": {"kind": "exp", "mean": 2}}, id="alias"),
        pytest.param({"kind": "api_latency", "latency": 0.25}, id="latency-seconds"),
        pytest.param({"kind": "node_loss", "count": 2}, id="node-loss-count"),
        pytest.param({"kind": "pod_kill", "count": 3, "selector": {"node": "node-2"}}, id="kill"),
        pytest.param({"kind": "controller_stall", "duration": "10s"}, id="stall"),
    ],
)
def test_a_fault_every_reader_accepts_is_accepted_by_the_scenario(
    reader: str, fault: dict[str, Any]
) -> None:
    assert _READERS[reader](fault) is None


def test_a_fault_latency_in_mapping_form_is_the_latency_its_text_form_is() -> None:
    """docs/profiles-and-faults.md: a fault's latency takes a mapping with ``kind`` in a scenario too."""
    mapping = _with_fault("{kind: api_latency, latency: {kind: uniform, low: 100ms, high: 200ms}}")

    (fault,) = parse_scenario(mapping).faults

    assert fault.to_fault(0.0).latency == parse_latency("uniform(100ms, 200ms)")


@pytest.mark.parametrize(
    ("fault", "path", "reason"),
    [
        pytest.param(
            "{kind: controller_stall, start: 5s, duration: 10s, count: 3}",
            "faults[0].count",
            "a fault of kind 'controller_stall' takes no count",
            id="count",
        ),
        pytest.param(
            "{kind: api_conflict, start: 1e15}",
            "faults[0].start",
            "must be at most 2.48481e+11 (9900-01-24T23:59:59Z, where the clock stops): "
            "a fault starting later could never act, got 1e+15",
            id="start-past-the-clock",
        ),
        pytest.param(
            "{kind: api_conflict, start: 2.4e11, duration: 1e10}",
            "faults[0].duration",
            "must end the fault's window by 9900-01-24T23:59:59Z, where the clock stops",
            id="window-past-the-clock",
        ),
        pytest.param(
            "{kind: api_conflict, start: 5s, duration: 1e-300}",
            "faults[0].duration",
            "must be at least 3.637978807091713e-12 s at a start of 21605 s (the clock's step "
            "there), got 1e-300: the window would close as it opens, as with 0 (a start the "
            "run may give it: it injects the faults once the pools are full",
            id="window-closing-as-it-opens",
        ),
    ],
)
def test_a_fault_a_run_would_refuse_is_refused_at_load_naming_file_and_line(
    fault: str, path: str, reason: str, tmp_path: Path
) -> None:
    """docs/planning.md: a bad scenario is one message naming the file and line, before any run.

    Before, these loaded, and ``simulate`` failed once the pools had filled
    (a window past the clock's end: a message with no file or line).
    """
    err = _load_error(_with_fault(fault), tmp_path)

    assert err.source.endswith("bad.yaml")
    assert err.line == 14
    assert (err.path, err.reason[: len(reason)]) == (path, reason)


def test_an_override_that_makes_a_fault_bad_is_refused_naming_it() -> None:
    """``--set`` is read as the file is: a count no stall takes is refused before any run."""
    base = parse_scenario(_with_fault("{kind: controller_stall, duration: 10s}"))

    with pytest.raises(ScenarioError) as info:
        apply_overrides(base, [("faults[0].count", 3)])

    assert info.value.source.startswith("--set")
    assert info.value.path == "faults[0].count"
    assert "takes no count" in info.value.reason


def test_a_faults_latest_start_counts_the_fill_of_every_pool() -> None:
    """The run injects the faults once every pool is full, each taking up to 6 h: with two
    pools a start of 5 s may come 12 h later, where the clock's step (7.3e-12 s) swallows a
    2.5e-12 s window that one pool's 6 h (a step of 3.6e-12 s) still opens."""
    fault = "{kind: api_conflict, start: 5s, duration: 2.5e-12}"
    parse_scenario(_with_fault(fault))  # one pool: accepted
    two_pools = _with_fault(fault).replace(
        "  - {name: base, replicas: 4}\n",
        "  - {name: base, replicas: 4}\n  - {name: more, replicas: 1}\n",
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(two_pools)
    assert info.value.path == "faults[0].duration"
    assert "at a start of 43205 s" in info.value.reason

"""Scenario files drawn by Hypothesis: every bad one is one clear error, every good one runs.

A valid scenario is changed at one or two of its fields (a value of any kind:
text, numbers huge and tiny, NaN, lists, mappings, YAML's odd scalars) and read
as YAML text and as a mapping. Whatever is drawn, reading it either gives a
:class:`Scenario` or raises one :class:`ScenarioError` that names a field path
and a reason in plain words (no pydantic wording, no other exception). A
typo's suggestion names a field of the typo's own section. The examples are
derandomized (the same every run); ``KRUISE_MACHINE_HUNT=1`` and
``KRUISE_MACHINE_EXAMPLES`` (see ``tests/machines.py``) turn the properties
into a hunt.
"""

from __future__ import annotations

import copy
import csv
import difflib
import io
import json
import math
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from rich.console import Console

from simulator.planning.arrivals import PoissonArrivals
from simulator.planning.commands import RunOptions, simulate_command
from simulator.planning.errors import ScenarioError
from simulator.planning.executors import Executor, ProcessExecutor, SerialExecutor
from simulator.planning.loading import parse_scenario
from simulator.planning.metrics import RunResult
from simulator.planning.outputs import summary_payload, write_outputs
from simulator.planning.overrides import apply_overrides
from simulator.planning.scenario import (
    ClaimSpec,
    ClusterSpec,
    FaultSpec,
    Goals,
    PoolSpec,
    Scenario,
    WorkloadSpec,
)
from simulator.planning.study import Point, PointSummary, run_points
from tests.machines import machine_settings

BASE: dict[str, Any] = {
    "name": "fuzz",
    "seed": 1,
    "replications": 1,
    "duration": 20,
    "warmup": 2,
    "cluster": {"nodes": 2, "profile": "openkruise-head"},
    "pools": [{"name": "base", "replicas": 2}],
    "workloads": [
        {
            "template": "base",
            "arrivals": {"kind": "poisson", "rate": 1},
            "hold": "exp(5s)",
            "claim": {"path": "e2b"},
        }
    ],
    "faults": [{"kind": "node_loss", "start": 5, "duration": 5, "selector": {"node": "node-2"}}],
    "goals": {"slo": "p99<1s", "max_cold": "5%"},
    "sweep": {"pools.base.replicas": [1, 2]},
}
"""A small valid scenario: two nodes, one pool, Poisson claims, a node loss, goals, a sweep."""

FieldPath = tuple[str | int, ...]

FIELDS: list[FieldPath] = [
    ("name",),
    ("description",),
    ("seed",),
    ("replications",),
    ("duration",),
    ("warmup",),
    ("drain",),
    ("sample_interval",),
    ("claims_csv",),
    ("cluster",),
    ("cluster", "profile"),
    ("cluster", "nodes"),
    ("cluster", "latencies"),
    ("cluster", "latencies", "image.pull"),
    ("cluster", "knobs", "create_qps"),
    ("pools", 0),
    ("pools", 0, "name"),
    ("pools", 0, "replicas"),
    ("pools", 0, "cpu"),
    ("pools", 0, "memory"),
    ("pools", 0, "image"),
    ("pools", 0, "runtimes"),
    ("pools", 0, "cpu_limit"),
    ("workloads", 0, "template"),
    ("workloads", 0, "hold"),
    ("workloads", 0, "user"),
    ("workloads", 0, "arrivals"),
    ("workloads", 0, "arrivals", "kind"),
    ("workloads", 0, "arrivals", "rate"),
    ("workloads", 0, "claim", "path"),
    ("workloads", 0, "claim", "create_on_no_stock"),
    ("workloads", 0, "claim", "claim_timeout"),
    ("workloads", 0, "claim", "timeout"),
    ("workloads", 0, "claim", "replicas"),
    ("workloads", 0, "claim", "csi_mounts"),
    ("workloads", 0, "claim", "metadata"),
    ("faults", 0, "kind"),
    ("faults", 0, "start"),
    ("faults", 0, "duration"),
    ("faults", 0, "probability"),
    ("faults", 0, "selector"),
    ("faults", 0, "latency"),
    ("faults", 0, "count"),
    ("goals", "slo"),
    ("goals", "max_cold"),
    ("goals", "max_failed"),
    ("sweep", "pools.base.replicas"),
    ("sweep", "duration"),
    ("sweep", "workloads[0].arrivals.rate"),
]
"""Fields of :data:`BASE` a draw may change (or add: ``sample_interval``, ``drain``, ...)."""

ODD_TEXT = [
    "", " ", "0", "-1", "1e309", "nan", "inf", "1s", "0s", "-5s", "5m", "1h30m", "1:30",
    "300/min", "0/min", "-3/s", "3/x", "exp(1s)", "exp(-1s)", "uniform(2s, 1s)", "forever",
    "y", "n", "on", "~", "null", "p99<1s", "p100<1s", "p99<0s", "1%", "100%", "-1%",
    "openkruise-v0.3.0", "nope", "base", "node-1", "poisson", "diurnal", "trace",
    "sandboxclaim", "500m", "1Gi", "-1Gi", "0x10", "1_000", ".5", "1e-320", "é",
]  # fmt: skip
"""Text that means something somewhere in a scenario, or nearly does."""

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_TEXT),
    st.text(max_size=5),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "kind", "rate", "name", "at"]), st.integers(-2, 2)),
)

PYDANTIC_WORDS = re.compile(
    r"Value error|Input should|input_value|input_type|type=|errors\.pydantic|Traceback|<class"
)
"""Wording of pydantic or of Python, which a scenario's author should never read."""


def _set(data: dict[str, Any], path: FieldPath, value: Any) -> bool:
    """Set the field at ``path`` (a missing mapping on the way is added); False if an
    earlier change put something else than a mapping or list on the way."""
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)):
        node[path[-1]] = value  # type: ignore[index]
        return True
    return False


def _dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _line(text: str, path: FieldPath) -> int:
    """The 1-based line where the value at ``path`` starts in the YAML ``text``."""
    node = yaml.compose(text)
    for part in path:
        if isinstance(part, int):
            assert isinstance(node, yaml.SequenceNode)
            node = node.value[part]
        else:
            assert isinstance(node, yaml.MappingNode)
            node = next(v for k, v in node.value if k.value == part)
    assert node is not None
    return int(node.start_mark.line) + 1


def _read(data: dict[str, Any], as_yaml: bool) -> tuple[Scenario | None, ScenarioError | None]:
    source: str | dict[str, Any] = yaml.safe_dump(data, allow_unicode=True) if as_yaml else data
    try:
        return parse_scenario(source, source="fuzz.yaml"), None
    except ScenarioError as exc:
        return None, exc


@machine_settings(120, 1)
@given(
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=2),
    as_yaml=st.booleans(),
)
def test_any_scenario_is_read_or_refused_with_one_clear_error(
    changes: list[tuple[FieldPath, Any]], as_yaml: bool
) -> None:
    """Whatever a field holds, reading the file gives a scenario or one ``ScenarioError``.

    The error names the file, a field path, and a reason without pydantic's words; when the
    path is the field changed, its line (YAML text) is that field's line in the file.
    """
    data = copy.deepcopy(BASE)
    for path, value in changes:
        if not _set(data, path, value):
            return
    scenario, error = _read(data, as_yaml)
    if error is None:
        assert scenario is not None
        return
    text = str(error)
    assert text.startswith("fuzz.yaml"), text
    assert error.reason.strip(), text
    assert not PYDANTIC_WORDS.search(text), text
    if len(changes) == 1 and error.path == _dotted(changes[0][0]) and as_yaml:
        assert error.line == _line(yaml.safe_dump(data, allow_unicode=True), changes[0][0]), text


SECTIONS: dict[FieldPath, type[BaseModel]] = {
    (): Scenario,
    ("cluster",): ClusterSpec,
    ("pools", 0): PoolSpec,
    ("workloads", 0): WorkloadSpec,
    ("workloads", 0, "arrivals"): PoissonArrivals,
    ("workloads", 0, "claim"): ClaimSpec,
    ("faults", 0): FaultSpec,
    ("goals",): Goals,
}
"""The sections of :data:`BASE` that are models (unknown keys are refused there)."""


def _fields_of(section: FieldPath) -> list[str]:
    """The fields the section at ``section`` of :data:`BASE` accepts, as its model says."""
    return sorted(SECTIONS[section].model_fields)


ALL_FIELDS = sorted({name for model in SECTIONS.values() for name in model.model_fields})


@st.composite
def typos(draw: st.DrawFn) -> tuple[FieldPath, str]:
    """A section and a key one edit away from a field of any section (a likely typo)."""
    section = draw(st.sampled_from(sorted(SECTIONS, key=len)))
    word = draw(st.sampled_from(ALL_FIELDS))
    i = draw(st.integers(0, len(word)))
    edit = draw(st.sampled_from(["drop", "add", "swap"]))
    if edit == "drop" and len(word) > 1 and i < len(word):
        key = word[:i] + word[i + 1 :]
    elif edit == "swap" and i + 1 < len(word):
        key = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    else:
        key = word[:i] + draw(st.sampled_from("aeiosx_")) + word[i:]
    return section, key


@machine_settings(80, 1)
@given(typo=typos())
def test_a_typo_is_refused_and_its_suggestion_is_a_field_of_its_section(
    typo: tuple[FieldPath, str],
) -> None:
    """An unknown key is refused by its path; the field "did you mean" names is valid there.

    Suggested from every field of the file, ``replica`` in a workload read "did you mean
    'replicas'?", a field of ``claim``, which the workload then refused as "a field of
    another section".
    """
    section, key = typo
    here = _fields_of(section)
    if key in here:
        return  # the edit made another field of the section
    data = copy.deepcopy(BASE)
    node: Any = data
    for part in section:
        node = node[part]
    node[key] = 1
    _, error = _read(data, as_yaml=True)
    assert error is not None
    assert error.path == _dotted((*section, key)), str(error)
    suggestion = re.fullmatch(r"unknown field \(did you mean '([^']+)'\?\)", error.reason)
    if suggestion is not None:
        assert suggestion.group(1) in here, str(error)
    elif key not in ALL_FIELDS:
        assert error.reason == "unknown field", str(error)
        assert not difflib.get_close_matches(key, here, n=1), str(error)
    if key in ALL_FIELDS:
        assert "a field of another section" in error.reason, str(error)


def test_a_typo_next_to_a_field_of_another_section_suggests_none() -> None:
    """``replica`` in a workload: no field of a workload is close, so no suggestion.

    It used to say "did you mean 'replicas'?" (a field of ``claim``), which the workload
    then refused in turn.
    """
    data = copy.deepcopy(BASE)
    data["workloads"][0]["replica"] = 3
    data["pools"][0]["templat"] = "base"
    _, error = _read(data, as_yaml=True)
    assert error is not None
    assert (error.path, error.reason) == ("pools[0].templat", "unknown field")
    del data["pools"][0]["templat"]
    _, error = _read(data, as_yaml=True)
    assert error is not None
    assert (error.path, error.reason) == ("workloads[0].replica", "unknown field")
    data["workloads"][0]["claim"]["replica"] = 3
    del data["workloads"][0]["replica"]
    _, error = _read(data, as_yaml=True)
    assert error is not None
    assert error.reason == "unknown field (did you mean 'replicas'?)"


def test_the_base_scenario_is_valid() -> None:
    """The scenario the draws change is itself valid (so a refusal is the change's)."""
    scenario, error = _read(copy.deepcopy(BASE), as_yaml=True)
    assert error is None and scenario is not None
    assert math.isclose(scenario.horizon, 22.0)


# Outputs: the files agree with the runs in memory, and with each other.


@st.composite
def small_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A scenario of a few seconds: one or two pools, any claim path, maybe a fault, a sweep."""
    path = draw(st.sampled_from(["e2b", "sandboxclaim"]))
    claim: dict[str, Any] = {
        "path": path,
        "create_on_no_stock": draw(st.booleans()),
        "claim_timeout": draw(st.sampled_from([2, 5])),
    }
    if path == "sandboxclaim":
        claim["replicas"] = draw(st.integers(1, 3))
    arrivals = draw(
        st.sampled_from(
            [
                {"kind": "poisson", "rate": 2},
                {"kind": "constant", "rate": 1.5},
                {
                    "kind": "bursts",
                    "bursts": [{"at": 1, "count": 5, "over": 2}, {"at": 6, "count": 3}],
                },
            ]
        )
    )
    data: dict[str, Any] = {
        "name": "drawn",
        "seed": draw(st.integers(0, 2**32)),
        "replications": draw(st.integers(1, 2)),
        "duration": draw(st.sampled_from([4, 9])),
        "warmup": draw(st.sampled_from([0, 2.5])),
        "drain": 30,
        "cluster": {
            "nodes": 2,
            "profile": draw(st.sampled_from(["openkruise-head", "openkruise-v0.3.0"])),
        },
        "pools": [{"name": "base", "replicas": draw(st.integers(0, 4))}],
        "workloads": [
            {
                "template": "base",
                "arrivals": arrivals,
                "hold": draw(st.sampled_from(["exp(5s)", "3s", "forever"])),
                "claim": claim,
            }
        ],
        "faults": draw(
            st.sampled_from(
                [
                    [],
                    [
                        {
                            "kind": "node_loss",
                            "start": 2,
                            "duration": 3,
                            "selector": {"node": "node-1"},
                        }
                    ],
                    [{"kind": "pod_start_failure", "probability": 0.5}],
                ]
            )
        ),
    }
    if draw(st.booleans()):
        data["sample_interval"] = draw(st.sampled_from([0.5, 3]))
    if draw(st.booleans()):
        data["pools"].append({"name": "other", "replicas": 1})
        data["workloads"].append(
            {"template": "other", "arrivals": {"kind": "poisson", "rate": 0.5}, "hold": "2s"}
        )
    return data


HUNTING = bool(os.environ.get("KRUISE_MACHINE_HUNT"))
"""Hunting (see ``tests/machines.py``): the runs are repeated on two worker processes."""


def _figures(run: RunResult) -> tuple[Any, ...]:
    """Everything a run reports but its wall-clock and CPU times."""
    return (
        run.replication,
        run.seed,
        run.point,
        run.metrics,
        run.pools,
        run.failures,
        run.series,
        run.warm_q,
        run.cold_q,
        run.claims,
    )


def _as_written(value: Any) -> Any:
    """A figure as ``summary.json`` writes it: JSON has no infinity (an unbounded
    percentile of all claims is ``null``, see docs/planning.md)."""
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    return value


def _nearest_rank(values: list[float], q: float) -> float | None:
    ranked = sorted(values)
    return ranked[max(1, math.ceil(q / 100 * len(ranked))) - 1] if ranked else None


def _check_files_against_runs(out: Path, summaries: list[PointSummary]) -> None:
    """``summary.json`` holds each run's figures as in memory; ``claims.csv`` adds up to them."""
    written = json.loads((out / "summary.json").read_text())
    assert [p["labels"] for p in written["points"]] == [s.labels for s in summaries]
    with (out / "claims.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    axes = list(summaries[0].labels)
    by_run: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        by_run.setdefault((*(row[a] for a in axes), row["replication"]), []).append(row)
    counted = 0
    for point, summary in zip(written["points"], summaries, strict=True):
        for file_run, run in zip(point["runs"], summary.runs, strict=True):
            assert file_run["metrics"] == _as_written(run.metrics), run
            assert file_run["pools"] == _as_written(run.pools), run
            assert file_run["failures"] == run.failures
            key = (*(str(summary.labels[a]) for a in axes), str(run.replication))
            mine = by_run.get(key, [])
            counted += len(mine)
            assert len(mine) == run.metrics["claims"], key
            delivered = [r for r in mine if r["delivered"]]
            assert len(delivered) == run.metrics["delivered"], key
            not_delivered = Counter(r["error"] for r in mine if not r["delivered"])
            assert dict(not_delivered) == {k: v for k, v in run.failures.items() if v}, key
            latencies = [float(r["latency"]) for r in delivered]
            for q in (50, 90, 99):
                want = run.metrics[f"latency_p{q}"]
                got = _nearest_rank(latencies, q)
                assert (got is None) == (want is None), key
                assert got is None or math.isclose(got, want or 0.0, rel_tol=1e-12), key
            cold = [r for r in delivered if r["warm"] == "False"]
            if delivered:
                assert math.isclose(len(cold) / len(delivered), run.metrics["cold_share"] or 0.0)
            no_stock = sum(r["cold_reason"] == "NoStock" for r in delivered)
            assert no_stock == run.metrics["cold_no_stock"], key
            for pool, figures in run.pools.items():
                assert sum(r["pool"] == pool for r in mine) == figures["claims"], (key, pool)
    assert counted == len(rows)


@machine_settings(5, 1, shrink=False)
@given(data=small_scenarios(), sweep=st.booleans())
def test_the_files_written_agree_with_the_runs_in_memory(
    data: dict[str, Any], sweep: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``summary.json`` and ``claims.csv`` as the commands write them hold what the runs measured.

    The same points run again give the same runs (all but wall and CPU times), claims and
    all; hunting, the second time on two worker processes.

    Each run's figures, pools and failures are those of the run in memory; the rows of
    ``claims.csv`` of a run count its claims, deliveries and failures by reason, give its
    latency percentiles (nearest rank), its cold share and the claims of each pool.
    """
    scenario = parse_scenario(data, source="drawn.yaml")
    sizes = [scenario.pools[0].replicas or 0]
    if sweep:
        sizes.append(sizes[0] + 2)
    points = [
        Point({"pools.base.replicas": n}, apply_overrides(scenario, [("pools.base.replicas", n)]))
        for n in sizes
    ]
    summaries, partial = run_points(
        points, SerialExecutor(), stop=threading.Event(), keep_claims=True
    )
    assert not partial
    # The same seeds give the same runs again: here, or (hunting) on two worker processes.
    again: Executor = ProcessExecutor(2) if HUNTING else SerialExecutor()
    try:
        repeated, _ = run_points(points, again, stop=threading.Event(), keep_claims=True)
    finally:
        again.close()
    assert [[_figures(r) for r in s.runs] for s in repeated] == [
        [_figures(r) for r in s.runs] for s in summaries
    ]
    out = tmp_path_factory.mktemp("out")
    payload = summary_payload(
        "sweep",
        scenario,
        "drawn.yaml",
        summaries,
        executor="serial",
        interrupted=False,
        axes=["pools.base.replicas"],
    )
    write_outputs(out, payload, "<html></html>", summaries)
    _check_files_against_runs(out, summaries)


def _without_wall_time(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary.json`` without the figures that differ between identical runs (docs/planning.md:
    only the wall time differs): each run's ``wall_s`` and ``cpu_s``."""
    for point in summary["points"]:
        for run in point["runs"]:
            del run["wall_s"], run["cpu_s"]
    return summary


def test_a_rerun_into_the_same_folder_writes_the_same_files_and_drops_its_claims_csv(
    tmp_path: Path,
) -> None:
    """The same scenario and seed, run again into the folder of the first run without
    ``claims.csv``: the same ``summary.json`` (but for wall and CPU times), a byte-identical
    ``report.html``, and the earlier ``claims.csv`` removed, as docs/planning.md says.
    """
    scenario = tmp_path / "drawn.yaml"
    data = copy.deepcopy(BASE)
    del data["sweep"]
    data["claims_csv"] = True
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    first = simulate_command(str(scenario), RunOptions(out=out), Console(file=io.StringIO()))
    assert first == 0
    assert sorted(p.name for p in out.iterdir()) == ["claims.csv", "report.html", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    report = (out / "report.html").read_bytes()
    again = RunOptions(out=out, sets=["claims_csv=false"])
    assert simulate_command(str(scenario), again, Console(file=io.StringIO())) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.json"]
    rerun = json.loads((out / "summary.json").read_text())
    assert _without_wall_time(rerun) == _without_wall_time(summary)
    assert (out / "report.html").read_bytes() == report

"""The files a planning command writes: ``summary.json`` and, optionally, ``claims.csv``.

Every file of an earlier run into the same folder is replaced or removed:
``report.html`` carries its plots inline, and a ``claims.csv`` this run does
not write is deleted.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.planning.analytic import AnalyticEstimate
from simulator.planning.errors import PlanningError
from simulator.planning.plan import Goal, PlanResult
from simulator.planning.scenario import Scenario
from simulator.planning.study import PointSummary, UnfitPoint, profiles_ran
from simulator.records import PHASES

__all__ = [
    "check_out_dir",
    "remove_claims_csv",
    "summary_payload",
    "write_claims_csv",
    "write_summary",
]


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def summary_payload(
    command: str,
    scenario: Scenario,
    source: str,
    summaries: Sequence[PointSummary],
    *,
    executor: str,
    interrupted: bool,
    plan: PlanResult | None = None,
    analytic: Sequence[AnalyticEstimate] = (),
    axes: Sequence[str] = (),
    goals: Sequence[Goal] = (),
    limits: Sequence[str] = (),
    unfit: Sequence[UnfitPoint] = (),
) -> dict[str, Any]:
    """Everything a command measured, JSON-ready.

    ``points`` holds the points that ran; ``does_not_fit`` the points whose
    pools never filled on the nodes (their labels and the reason), which have
    no figures.
    """
    try:
        version = importlib.metadata.version("pytest-kruise-agents")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        version = "unknown"
    payload: dict[str, Any] = _clean(
        {
            "command": command,
            "generator": f"pytest-kruise-agents {version}",
            "scenario": {
                "name": scenario.name,
                "file": source,
                "description": scenario.description,
                "seed": scenario.seed,
                "replications": scenario.replications,
                "duration_s": scenario.duration,
                "warmup_s": scenario.warmup,
                "profile": profiles_ran(scenario, summaries),
            },
            "executor": executor,
            "interrupted": interrupted,
            "axes": list(axes),
            "points": [s.as_dict() for s in summaries],
            "does_not_fit": [u.as_dict() for u in unfit],
            "analytic": [a.as_dict() for a in analytic],
            "goals": [g.as_dict() for g in goals],
            "limits": list(limits),
            "plan": None if plan is None else plan.as_dict(),
        }
    )
    return payload


def check_out_dir(out_dir: Path) -> None:
    """Raise :class:`PlanningError` if ``out_dir`` cannot be a folder to write in.

    Checked before the runs, which would otherwise end in a traceback with
    nothing written.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise PlanningError(f"--out: {out_dir}: is a file, not a folder")
        return
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PlanningError(f"--out: {out_dir}: {parent} is a file, not a folder")
            return


def write_summary(out_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``summary.json``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


_COLUMNS = (
    "workload",
    "pool",
    "requested",
    "delivered",
    "latency",
    "warm",
    "attempts",
    "error",
    *(p for p in PHASES if p not in ("requested", "delivered")),
)


def write_claims_csv(out_dir: Path, summaries: Sequence[PointSummary]) -> Path | None:
    """Write ``claims.csv``: one row per claim (times in seconds from the workload start).

    Columns: the point's labels, ``replication``, then the claim's workload,
    pool, times, warm/cold, attempts, error and each phase. Return None when
    no run kept its claims (``plan`` without an answer): then no file is
    written and the ``claims.csv`` of an earlier run into ``out_dir`` is removed.
    """
    rows: list[dict[str, Any]] = []
    label_cols: dict[str, None] = {}
    for s in summaries:
        label_cols.update(dict.fromkeys(s.labels))
        for run in s.runs:
            for claim in run.claims or []:
                rows.append({**s.labels, "replication": run.replication, **claim})
    if not rows:
        remove_claims_csv(out_dir)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "claims.csv"
    columns = [*label_cols, "replication", *_COLUMNS]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return path


def remove_claims_csv(out_dir: Path) -> None:
    """Remove the ``claims.csv`` an earlier run left in ``out_dir``, if any.

    A command that writes no claims must not leave an older file next to its
    new ``summary.json``, where it would read as this run's claims.
    """
    (out_dir / "claims.csv").unlink(missing_ok=True)

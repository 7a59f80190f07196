"""The files a planning command writes: ``summary.json`` and, optionally, ``claims.csv``.

Every file of an earlier run into the same folder is replaced or removed:
``report.html`` carries its plots inline, and a ``claims.csv`` this run does
not write is deleted. Each file is written whole or not at all (a temporary
file renamed over it), and :func:`write_outputs` removes the earlier run's
files before it writes any: whatever stops a command part-way, no file of an
earlier run is left next to one of this run.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import json
import math
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from simulator.planning.analytic import AnalyticEstimate
from simulator.planning.errors import PlanningError
from simulator.planning.plan import Goal, PlanResult
from simulator.planning.scenario import Scenario
from simulator.planning.study import PointSummary, UnfitPoint, profiles_ran, ran_by_point
from simulator.records import PHASES

__all__ = [
    "OUTPUT_FILES",
    "check_out_dir",
    "remove_claims_csv",
    "replacing",
    "summary_payload",
    "write_claims_csv",
    "write_outputs",
    "write_summary",
]

OUTPUT_FILES = ("summary.json", "claims.csv", "report.html")
"""The files a command writes into its ``--out`` folder (``claims.csv`` only when asked)."""


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
                "replications": ran_by_point(scenario, summaries, "replications"),
                "duration_s": ran_by_point(scenario, summaries, "duration"),
                "warmup_s": ran_by_point(scenario, summaries, "warmup"),
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


def check_out_dir(out_dir: Path, field: str = "--out") -> None:
    """Raise :class:`PlanningError` if ``out_dir`` cannot be a folder to write in.

    Its message names ``field``: the command line's option, or a function's argument.

    Checked before the runs, which would otherwise end in a traceback with
    nothing written: the folder (and its missing parents) is created and a
    file written in it, then both are removed again, so a refusal, or a
    bad input found later, leaves no trace.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise PlanningError(f"{field}: {out_dir}: is a file, not a folder")
        _check_names_free(out_dir, field)
        foreign = _not_a_runs(out_dir)
        if foreign:
            raise PlanningError(
                f"{field}: {out_dir}: holds {', '.join(foreign)} that no kruise-agents run wrote "
                "(a command replaces only an earlier run's files): choose another folder, "
                "or move them away"
            )
    else:
        for parent in out_dir.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise PlanningError(f"{field}: {out_dir}: {parent} is a file, not a folder")
                break
    created: list[Path] = []
    try:
        for folder in [*reversed(out_dir.parents), out_dir]:
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        with tempfile.TemporaryFile(dir=out_dir, prefix=".kruise-agents-probe-"):
            pass
    except OSError as exc:
        raise PlanningError(f"{field}: {out_dir}: cannot write there: {_why(exc)}") from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _check_names_free(out_dir: Path, field: str = "--out") -> None:
    """Raise :class:`PlanningError` if a name of :data:`OUTPUT_FILES` in ``out_dir`` is no file.

    A folder there (``claims.csv/``) can be neither removed nor replaced: found only
    while writing, after the runs, it would stop the write half-way through the
    removal of an earlier run's files.
    """
    for name in OUTPUT_FILES:
        path = out_dir / name
        if path.exists() and not path.is_file():
            raise PlanningError(
                f"{field}: {out_dir}: {name} is a folder, not a file "
                f"(a command writes its {name} there)"
                if path.is_dir()
                else f"{field}: {out_dir}: {name} is not a file (a command writes its {name} there)"
            )


def _not_a_runs(out_dir: Path) -> list[str]:
    """The files of :data:`OUTPUT_FILES` in ``out_dir`` that are not an earlier run's, sorted.

    A run writes its ``summary.json`` first (after removing the earlier run's three
    files), so the files beside a run's ``summary.json`` are that run's; without one,
    none is. A user's own ``claims.csv`` in the folder (``--out .``) must not be
    deleted as if a run had left it.
    """
    present = sorted(name for name in OUTPUT_FILES if (out_dir / name).exists())
    if not present or _is_a_runs_summary(out_dir / "summary.json"):
        return []
    return present


def _is_a_runs_summary(path: Path) -> bool:
    """Whether ``path`` is a ``summary.json`` a command wrote (its ``command`` and ``points``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, a folder, unreadable, not UTF-8, not JSON
        return False
    return isinstance(data, dict) and data.get("command") in _COMMANDS and "points" in data


_COMMANDS = ("simulate", "plan", "sweep")


def _why(exc: OSError) -> str:
    """The system's reason, without the path the message already names."""
    return exc.strerror or str(exc)


@contextlib.contextmanager
def replacing(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    A reader (or a later run) sees the old file or the whole new one, never a
    half-written one; on an error the temporary file is removed and ``path``
    is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    # Not mkstemp: its files are private (0600); this one gets the umask's
    # mode, as the file it replaces had.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_summary(out_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``summary.json``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.json"
    with replacing(path) as fh:
        fh.write(json.dumps(_finite(payload), indent=2, sort_keys=False) + "\n")
    return path


def _finite(value: Any) -> Any:
    """``value`` with every infinite number as None: JSON has no infinity.

    Only a percentile of all claims is unbounded (it fell on claims never
    delivered); ``json`` would write ``Infinity``, which strict readers refuse.
    """
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
    # Appended, not placed beside ``warm``: readers of older files index the columns above.
    "cold_reason",
)


def write_claims_csv(out_dir: Path, summaries: Sequence[PointSummary]) -> Path | None:
    """Write ``claims.csv``: one row per claim (times in seconds from the workload start).

    Columns: the point's labels, ``replication``, then the claim's workload,
    pool, times, warm/cold, attempts, error, each phase, and why a cold claim
    was created (``cold_reason``: ``NoStock`` or ``AllCandidatesPicked``; empty
    for a warm or undelivered claim). Return None when
    no run kept its claims (``plan`` without an answer): then no file is
    written and the ``claims.csv`` of an earlier run into ``out_dir`` is removed.
    Runs that kept their claims and had none (no arrival in the measured window)
    write the header alone: the table asked for, empty.
    """
    rows: list[dict[str, Any]] = []
    label_cols: dict[str, None] = {}
    kept = False
    for s in summaries:
        label_cols.update(dict.fromkeys(s.labels))
        for run in s.runs:
            kept = kept or run.claims is not None
            for claim in run.claims or []:
                rows.append({**s.labels, "replication": run.replication, **claim})
    if not kept:
        remove_claims_csv(out_dir)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "claims.csv"
    columns = [*label_cols, "replication", *_COLUMNS]
    with replacing(path, newline="") as fh:
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


def write_outputs(
    out_dir: Path,
    payload: dict[str, Any],
    report_html: str,
    claims: Sequence[PointSummary] | None = None,
) -> list[Path]:
    """Write a command's files into ``out_dir``; return their paths (``summary.json`` first).

    The files of an earlier run (:data:`OUTPUT_FILES`) are removed first,
    then ``summary.json``, ``claims.csv`` (when ``claims`` is given and a run
    kept its claims) and ``report.html`` are written, each whole. Any error
    of the file system is one :class:`PlanningError` naming ``--out``.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Checked again (the folder may have changed during the runs) before any removal.
        _check_names_free(out_dir)
        for name in OUTPUT_FILES:
            (out_dir / name).unlink(missing_ok=True)
        files = [write_summary(out_dir, payload)]
        csv_path = write_claims_csv(out_dir, claims) if claims is not None else None
        if csv_path is not None:
            files.append(csv_path)
        report = out_dir / "report.html"
        with replacing(report) as fh:
            fh.write(report_html)
        files.append(report)
    except OSError as exc:
        raise PlanningError(f"--out: {out_dir}: cannot write the results: {_why(exc)}") from None
    return files

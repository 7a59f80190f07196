"""The delivery benchmark's result: per-claim records, warm/cold split, percentiles, zones.

Quality zones are agent-sandbox's (its runtime-class benchmarks): **green**
<= 500 ms, **grey** <= 1 s, **cold** > 1 s. Percentiles interpolate
linearly between the two nearest ranks (numpy's default), so the p99 of
fewer than 100 samples lies between the two slowest.

On the fake cluster a delivery's latency is the model's virtual time from the
request to delivery, and ``warm`` says whether the sandbox came from the warm
pool; against a live server the latency is wall-clock time from the create
call to the first successful command, and ``warm`` follows agent-sandbox's
fixed 1 s threshold (the E2B API does not say where a sandbox came from).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeGuard

from pytest_kruise_agents.delivery.workload import Workload

__all__ = [
    "GREEN_S",
    "GREY_S",
    "PHASE_ORDER",
    "WARM_THRESHOLD_S",
    "ZONES",
    "Delivery",
    "DeliveryResult",
    "LatencyStats",
    "check_name",
    "clock_words",
    "percentile",
    "zone_of",
]

GREEN_S: Final = 0.5
"""Deliveries up to this many seconds are in the green zone."""
GREY_S: Final = 1.0
"""Deliveries up to this many seconds (and over :data:`GREEN_S`) are grey; slower ones are cold."""
WARM_THRESHOLD_S: Final = 1.0
"""Live runs call a delivery warm when it took at most this long (agent-sandbox's fixed rule)."""

PHASE_ORDER: Final = (
    "worker_acquired",
    "picked",
    "locked",
    "ready",
    "runtime_initialized",
    "mounted",
    "delivered",
    "failed",
    "created",
    "first_command",
)
"""Phase names in the order a claim passes them: the model's, then the live runner's."""


def check_name(name: object) -> str | None:
    """``name`` if it can label a run (``None``: the workload's name); else ``TypeError`` naming it.

    The runners call it before anything is drawn, run or sent: the label is
    read only once the run is over (its result, its report files), and a bad
    one would then have cost the whole run.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: must be a str, got {name!r}")
    return name


def clock_words(clock: str) -> str:
    """How reports name a result's clock: ``virtual time``, ``wall time``, ``realtime clock``."""
    # A realtime run's latencies are still the model's (virtual) times; only its pace differs.
    return "realtime clock" if clock == "realtime" else f"{clock} time"


Zone = Literal["green", "grey", "cold"]
ZONES: Final[tuple[Zone, ...]] = ("green", "grey", "cold")


def zone_of(latency: float) -> Zone:
    """The quality zone of a delivery latency in seconds."""
    if latency <= GREEN_S:
        return "green"
    if latency <= GREY_S:
        return "grey"
    return "cold"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated; NaN when empty.

    A ``q`` that is no number (a bool included) is a ``TypeError`` naming it; one outside
    0..100 (or NaN), a ``ValueError``.
    """
    if not _is_number(q):
        raise TypeError(f"q: must be a number within 0..100, got {q!r}")
    if not 0 <= q <= 100:
        raise ValueError(f"q: must be within 0..100, got {q!r}")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


_percentile = percentile  # DeliveryResult.assert_latency has a parameter of that name


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Count and percentiles of a set of delivery latencies, in seconds (NaN when empty)."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencyStats:
        """The stats of ``values``."""
        return cls(
            count=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            max=max(values) if values else math.nan,
        )

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly: NaN becomes ``None``."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self._items()
        }

    def _items(self) -> Iterable[tuple[str, float | int]]:
        return (
            ("count", self.count),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("max", self.max),
        )

    def describe(self) -> str:
        """``p50 0.182 s, p90 0.240 s, p99 0.301 s, max 0.305 s``."""
        if not self.count:
            return "none"
        return ", ".join(f"{k} {_s(v)}" for k, v in self._items() if k != "count")


def _s(seconds: float) -> str:
    return f"{seconds:.3f} s"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claim of the run.

    :param index: 1-based, in request order.
    :param requested: seconds from the start of the run to the request.
    :param latency: seconds from request to delivery (``None`` if it failed).
    :param warm: from the warm pool (``None`` if unknown or failed).
    :param phases: phase name → seconds after the request (the fake cluster's
        claim phases; ``created`` and ``first_command`` against a live server).
    """

    index: int
    path: str
    template: str
    requested: float
    latency: float | None
    warm: bool | None
    sandbox_id: str | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    retries: int = 0
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether a sandbox was delivered."""
        return self.latency is not None

    @property
    def zone(self) -> Zone | None:
        """The quality zone of the latency (``None`` if it failed)."""
        return None if self.latency is None else zone_of(self.latency)


@dataclass(frozen=True)
class DeliveryResult:
    """What a delivery benchmark run measured (see the module docstring).

    :param name: the run's label (the workload's, unless given).
    :param target: what was measured, e.g. ``sim seed=0 profile=openkruise-head``.
    :param clock: ``virtual`` (model time, as fast as the model runs), ``realtime``
        (model time, on a realtime backend whose clock follows the wall clock) or ``wall``.
    """

    name: str
    workload: Workload
    target: str
    clock: Literal["virtual", "realtime", "wall"]
    deliveries: tuple[Delivery, ...]
    files: tuple[Path, ...] = ()
    """The CSV and JSON files written for this run, if any."""

    def __repr__(self) -> str:
        """Name, target and counts: the deliveries (thousands of them) stay in ``deliveries``."""
        return (
            f"<DeliveryResult {self.name!r} {self.target} clock={self.clock}: "
            f"{len(self.deliveries)} claims, {len(self.delivered)} delivered "
            f"({len(self.warm)} warm, {len(self.cold)} cold), {len(self.failed)} failed>"
        )

    def __str__(self) -> str:
        """``print(result)`` gives :meth:`describe`'s lines."""
        return self.describe()

    # -- subsets ------------------------------------------------------------------------

    @property
    def delivered(self) -> list[Delivery]:
        """Claims that got a sandbox."""
        return [d for d in self.deliveries if d.delivered]

    @property
    def failed(self) -> list[Delivery]:
        """Claims that did not."""
        return [d for d in self.deliveries if not d.delivered]

    @property
    def warm(self) -> list[Delivery]:
        """Deliveries from the warm pool."""
        return [d for d in self.delivered if d.warm]

    @property
    def cold(self) -> list[Delivery]:
        """Deliveries created on no stock (or slower than 1 s, live)."""
        return [d for d in self.delivered if d.warm is False]

    def latencies(self, warm: bool | None = None) -> list[float]:
        """Delivery latencies: all (``None``), warm only (``True``) or cold only (``False``)."""
        _check_warm(warm)
        picked = self.delivered if warm is None else (self.warm if warm else self.cold)
        return [d.latency for d in picked if d.latency is not None]

    def stats(self, warm: bool | None = None) -> LatencyStats:
        """p50/p90/p99/max of :meth:`latencies`."""
        return LatencyStats.of(self.latencies(warm))

    def zones(self, warm: bool | None = None) -> dict[str, int]:
        """How many deliveries fall in each quality zone."""
        counts: dict[str, int] = dict.fromkeys(ZONES, 0)
        for latency in self.latencies(warm):
            counts[zone_of(latency)] += 1
        return counts

    # -- the assertion ------------------------------------------------------------------

    def assert_latency(
        self,
        *,
        below: float = 1.0,
        percentile: float = 99,
        warm: bool | None = True,
        allow_failures: bool = False,
    ) -> None:
        """Fail unless the ``percentile`` of the chosen deliveries is under ``below`` seconds.

        The default is the warm-pool promise: p99 of warm deliveries under
        1 s. ``warm=None`` checks every delivery, ``warm=False`` the cold ones.
        Failed claims fail the check too unless ``allow_failures``. Measured on
        a live server (``clock == "wall"``), warm and cold cannot be told apart
        (the server does not say which): a delivery is called warm when it
        took at most a second, so checking only those would hardly ever fail, and
        ``warm=True`` (the default, or given) checks every delivery instead.
        """
        __tracebackhide__ = True
        _check_assertion(below, percentile, warm, allow_failures)
        if warm is True and self.clock == "wall":
            warm = None
        subset = {True: "warm ", False: "cold ", None: ""}[warm]
        values = self.latencies(warm)
        # "p99 of 3 warm deliveries", "p99 of all 3 deliveries"
        counted = f"{len(values)} {subset}deliveries" if subset else f"all {len(values)} deliveries"
        problems: list[str] = []
        if self.failed and not allow_failures:
            first = self.failed[0]
            problems.append(
                f"{len(self.failed)} of {len(self.deliveries)} claims failed "
                f"(first: #{first.index}: {first.error})"
            )
        if not values:
            problems.append(f"no {subset}deliveries to measure")
        else:
            got = _percentile(values, percentile)
            if not got < below:
                problems.append(f"p{percentile:g} of {counted} is {_s(got)}, not under {_s(below)}")
        if problems:
            raise AssertionError(
                f"delivery benchmark {self.name!r} ({self.target}, {clock_words(self.clock)}): "
                + "; ".join(problems)
                + "\n"
                + self.describe(slowest=3)
            )

    # -- reports -------------------------------------------------------------------------

    def describe(self, *, slowest: int = 0) -> str:
        """A few lines for people: counts, warm/cold stats, zones, and the slowest claims."""
        lines = [
            f"{len(self.deliveries)} claims: {len(self.delivered)} delivered "
            f"({len(self.warm)} warm, {len(self.cold)} cold), {len(self.failed)} failed",
            f"  warm: {self.stats(True).describe()}",
            f"  cold: {self.stats(False).describe()}",
            f"  all:  {self.stats().describe()}",
            "  zones: " + ", ".join(f"{z} {n}" for z, n in self.zones().items()),
        ]
        if slowest:
            worst = sorted(self.delivered, key=lambda d: d.latency or 0.0, reverse=True)
            for d in worst[:slowest]:
                steps = ", ".join(f"{p} +{t:.3f}" for p, t in d.phases.items())
                kind = "warm" if d.warm else "cold"
                lines.append(
                    f"  slow: #{d.index} {d.sandbox_id} {kind} {_s(d.latency or 0)}: {steps}"
                )
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """The JSON summary (also what the terminal summary shows)."""
        return {
            "name": self.name,
            "workload": _workload_dict(self.workload),
            "target": self.target,
            "clock": self.clock,
            "claims": len(self.deliveries),
            "delivered": len(self.delivered),
            "failed": len(self.failed),
            "warm": len(self.warm),
            "cold": len(self.cold),
            "latency_s": {
                "warm": self.stats(True).as_dict(),
                "cold": self.stats(False).as_dict(),
                "all": self.stats().as_dict(),
            },
            "zones": {
                "thresholds_s": {"green": GREEN_S, "grey": GREY_S},
                "all": self.zones(),
                "warm": self.zones(True),
                "cold": self.zones(False),
            },
            "errors": _error_counts(self.failed),
            "files": [str(p) for p in self.files],
        }

    def phase_names(self) -> list[str]:
        """Every phase that occurs, in the order claims pass them (the CSV's phase columns)."""
        seen: dict[str, None] = {}
        for d in self.deliveries:
            seen.update(dict.fromkeys(d.phases))
        known = [p for p in PHASE_ORDER if p in seen]
        return known + [p for p in seen if p not in PHASE_ORDER]

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per claim (request time, latency, warm, zone, each phase in ms); return the file.

        :param path: the CSV file to write (a ``str`` or a path-like), replaced if
            it exists; missing parent directories are made.
        """
        file = _file_path(path)
        phases = self.phase_names()
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(
                [
                    "index",
                    "path",
                    "template",
                    "sandbox_id",
                    "requested_s",
                    "e2e_ms",
                    "is_warm",
                    "zone",
                    "retries",
                    *(f"{p}_ms" for p in phases),
                    "error",
                ]
            )
            for d in self.deliveries:
                out.writerow(
                    [
                        d.index,
                        d.path,
                        d.template,
                        d.sandbox_id or "",
                        f"{d.requested:.6f}",
                        "" if d.latency is None else f"{d.latency * 1000:.3f}",
                        "" if d.warm is None else str(d.warm).lower(),
                        d.zone or "",
                        d.retries,
                        *("" if p not in d.phases else f"{d.phases[p] * 1000:.3f}" for p in phases),
                        d.error or "",
                    ]
                )
        return file

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the :meth:`summary` as JSON; return the file.

        :param path: the JSON file to write (a ``str`` or a path-like), replaced if
            it exists; missing parent directories are made.
        """
        file = _file_path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        return file


def _file_path(path: object) -> Path:
    """``path`` as a :class:`Path`, refused (naming ``path``) unless it names a file."""
    # Checked here, not left to Path(): "" would be "." (a directory, which open()
    # refuses with a less telling error), and a wrong type would not be named.
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path: must be a file path (str or os.PathLike), got {path!r}")
    if not path:
        raise ValueError("path: must name a file, got ''")
    return Path(path)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_warm(warm: object) -> None:
    # Compared by identity: 1 and 0 would pass as True and False, "yes" as neither.
    if warm is not True and warm is not False and warm is not None:
        raise TypeError(f"warm: must be True, False or None, got {warm!r}")


def _check_assertion(
    below: object, percentile: object, warm: object, allow_failures: object
) -> None:
    """Refuse a bad parameter of :meth:`DeliveryResult.assert_latency`, naming it."""
    __tracebackhide__ = True
    if not _is_number(below):
        raise TypeError(f"below: must be a positive number of seconds, got {below!r}")
    if not below > 0:  # NaN fails too
        raise ValueError(f"below: must be a positive number of seconds, got {below!r}")
    if not _is_number(percentile):
        raise TypeError(f"percentile: must be a number within 0..100, got {percentile!r}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile: must be a number within 0..100, got {percentile!r}")
    _check_warm(warm)
    if not isinstance(allow_failures, bool):
        raise TypeError(f"allow_failures: must be True or False, got {allow_failures!r}")


def _workload_dict(workload: Workload) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(workload).__name__.lower()}
    for name in workload.__slots__:
        out[name] = getattr(workload, name)
    return out


def _error_counts(failed: Iterable[Delivery]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in failed:
        key = d.error or "unknown"
        counts[key] = counts.get(key, 0) + 1
    return counts

"""Arrival processes: when claims arrive, as seconds from the start of the workload.

Five shapes, each a pydantic model tagged by ``kind`` in a scenario file:

``poisson``   exponential gaps at ``rate`` per second (the Erlang assumption);
``constant``  one claim every ``1/rate`` seconds;
``bursts``    ``count`` claims at ``at``, spread evenly over ``over`` (0: all at once);
``diurnal``   a Poisson process whose rate follows a day: a cosine ``curve``
              (mean, amplitude, period, peak) or a piecewise ``table`` of
              ``[time, rate]`` rows repeated every period;
``trace``     a replay of a CSV trace of arrival time, template and hold time.

Rates are numbers per second or strings such as ``"300/min"`` or ``"2/s"``.
Every draw comes from the generator handed to :meth:`times`, so a seed fixes
the arrivals.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from simulator.latency import Seconds, parse_seconds
from simulator.planning.errors import FieldError

__all__ = [
    "MAX_ARRIVALS_PER_RUN",
    "Arrivals",
    "Burst",
    "BurstArrivals",
    "ConstantArrivals",
    "DiurnalArrivals",
    "PoissonArrivals",
    "Rate",
    "RatePoint",
    "TraceArrivals",
    "TraceFormatError",
    "TraceRow",
    "load_trace",
    "parse_rate",
]

MAX_ARRIVALS_PER_RUN = 10_000_000
"""The most arrivals one workload may draw in a run (warm-up and duration).

Ten times the largest run benchmarked (1,000,000 claims, about 1.8 GiB and an
hour of wall time): more would not end on this kind of machine, and a rate far
beyond it leaves gaps between arrivals below the float resolution of the clock,
which then stops (the run would never end).
"""

_PER = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(value: Any) -> float:
    """Claims per second from a number or ``"<n>/s"``, ``"<n>/min"``, ``"<n>/h"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as 5 or '300/min', got {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str):
        number, sep, unit = value.strip().partition("/")
        try:
            rate = float(number)
        except ValueError:
            raise ValueError(f"expected a rate such as 5 or '300/min', got {value!r}") from None
        if sep:
            per = _PER.get(unit.strip())
            if per is None:
                raise ValueError(f"unknown rate unit {unit.strip()!r}: use /s, /min or /h")
            rate /= per
    else:
        raise ValueError(f"expected a rate such as 5 or '300/min', got {value!r}")
    if not math.isfinite(rate):
        raise ValueError(f"expected a finite rate, got {value!r}")
    return rate


Rate = Annotated[float, BeforeValidator(parse_rate)]
"""Claims per second; accepts numbers and ``"<n>/min"``-style strings."""


class _Model(BaseModel):
    # Strict, as the scenario's models: ``count: true`` is no burst of 1.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PoissonArrivals(_Model):
    """A Poisson process: exponential gaps of mean ``1/rate``."""

    kind: Literal["poisson"] = "poisson"
    rate: Rate = Field(gt=0)
    """Claims per second."""

    def times(self, rng: random.Random, horizon: float) -> Iterator[tuple[float, TraceRow | None]]:
        """Arrival times in ``[0, horizon)``, increasing."""
        t = rng.expovariate(self.rate)
        while t < horizon:
            yield t, None
            t += rng.expovariate(self.rate)

    def expected(self, start: float, end: float) -> float:
        """Expected arrivals in ``[start, end)``."""
        return self.rate * max(0.0, end - start)

    def draws(self, horizon: float) -> tuple[str, float]:
        """The field that sets how many arrivals a run draws in ``[0, horizon)``, and about how many."""
        return "rate", self.expected(0.0, horizon)

    def shortened(self, factor: float) -> PoissonArrivals:
        """The same process (a shorter run simply sees fewer arrivals)."""
        return self


class ConstantArrivals(_Model):
    """One claim every ``1/rate`` seconds, the first at ``1/rate``."""

    kind: Literal["constant"] = "constant"
    rate: Rate = Field(gt=0)
    """Claims per second."""

    def times(self, rng: random.Random, horizon: float) -> Iterator[tuple[float, TraceRow | None]]:
        """Arrival times in ``[0, horizon)``, increasing."""
        k = 1
        while (t := k / self.rate) < horizon:
            yield t, None
            k += 1

    def expected(self, start: float, end: float) -> float:
        """Expected arrivals in ``[start, end)``."""
        return self.rate * max(0.0, end - start)

    def draws(self, horizon: float) -> tuple[str, float]:
        """The field that sets how many arrivals a run draws in ``[0, horizon)``, and about how many."""
        return "rate", self.expected(0.0, horizon)

    def shortened(self, factor: float) -> ConstantArrivals:
        """The same process."""
        return self


class Burst(_Model):
    """``count`` claims starting at ``at``, spread evenly over ``over`` seconds."""

    at: Seconds = Field(ge=0)
    count: int = Field(ge=1)
    over: Seconds = Field(default=0.0, ge=0)


class BurstArrivals(_Model):
    """Bursts of claims at given times (and nothing in between)."""

    kind: Literal["bursts"] = "bursts"
    bursts: list[Burst] = Field(min_length=1)

    def _all(self) -> list[float]:
        out: list[float] = []
        for b in self.bursts:
            step = b.over / b.count
            out.extend(b.at + i * step for i in range(b.count))
        out.sort()
        return out

    def times(self, rng: random.Random, horizon: float) -> Iterator[tuple[float, TraceRow | None]]:
        """Arrival times in ``[0, horizon)``, increasing."""
        for t in self._all():
            if t >= horizon:
                return
            yield t, None

    def expected(self, start: float, end: float) -> float:
        """Arrivals in ``[start, end)``."""
        return float(sum(1 for t in self._all() if start <= t < end))

    def draws(self, horizon: float) -> tuple[str, float]:
        """The field that sets how many arrivals a run draws in ``[0, horizon)``, and at most how many.

        Counted from the bursts, not their times: a count too large to list is refused
        before anything lists it.
        """
        return "bursts", float(sum(b.count for b in self.bursts if b.at < horizon))

    def peak_rate(self) -> float:
        """Claims per second within the densest burst (infinite for one that arrives at once)."""
        return max(b.count / b.over if b.over > 0 else math.inf for b in self.bursts)

    def shortened(self, factor: float) -> BurstArrivals:
        """Times and counts scaled by ``factor`` (counts at least 1)."""
        return BurstArrivals(
            bursts=[
                Burst(at=b.at * factor, count=max(1, round(b.count * factor)), over=b.over * factor)
                for b in self.bursts
            ]
        )


class RatePoint(_Model):
    """One row of a diurnal table: from ``at`` (time of day) the rate is ``rate``."""

    at: Seconds = Field(ge=0)
    rate: Rate = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        # ``[8h, 10]`` is the short form of ``{at: 8h, rate: 10}``.
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError("a table row is [time, rate]")
            return {"at": value[0], "rate": value[1]}
        return value


_CURVE_ONLY = ("amplitude", "peak")
"""A diurnal curve's fields that a table has no use for (``shape`` is a table's alone)."""


class DiurnalArrivals(_Model):
    """A Poisson process whose rate follows the time of day (thinning of a faster process).

    Either a ``curve``, ``rate(t) = mean * (1 + amplitude * cos(2π (t - peak) / period))``,
    or a ``table`` of ``[time, rate]`` rows, piecewise constant (``shape: step``)
    or linearly interpolated (``shape: linear``), repeated every ``period``.
    ``start`` is the time of day at the start of the workload.
    """

    kind: Literal["diurnal"] = "diurnal"
    mean: Rate | None = Field(default=None, gt=0)
    """Mean claims per second of the curve."""
    amplitude: float = Field(default=0.5, ge=0, le=1)
    """Relative swing of the curve around its mean (0 = flat, 1 = down to zero)."""
    peak: Seconds = Field(default=14 * 3600.0, ge=0)
    """Time of day of the curve's maximum."""
    table: list[RatePoint] | None = None
    """Piecewise rates by time of day, instead of a curve."""
    shape: Literal["step", "linear"] = "step"
    period: Seconds = Field(default=24 * 3600.0, gt=0)
    """Length of a day; a shorter period compresses the day."""
    start: Seconds = Field(default=0.0, ge=0)
    """Time of day when the workload starts."""

    @model_validator(mode="before")
    @classmethod
    def _no_other_forms_fields(cls, value: Any) -> Any:
        # A field of the other form would be ignored without a word: refused by name.
        if isinstance(value, dict):
            if value.get("table") is not None and value.get("mean") is None:
                for name in _CURVE_ONLY:
                    if name in value:
                        raise FieldError(name, "belongs to a curve (mean), not to a table")
            elif value.get("mean") is not None and "shape" in value:
                raise FieldError("shape", "belongs to a table, not to a curve (mean)")
        return value

    @model_serializer(mode="wrap")
    def _only_its_forms_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The other form's fields (their defaults) are left out, so that a dump reads back.
        data = handler(self)
        if isinstance(data, dict):
            for name in _CURVE_ONLY if self.table is not None else ("shape",):
                data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _one_form(self) -> DiurnalArrivals:
        if (self.mean is None) == (self.table is None):
            raise ValueError("give either a curve (mean, amplitude, peak) or a table, not both")
        if self.table is not None:
            if not self.table:
                raise FieldError("table", "must have at least one row")
            times = [p.at for p in self.table]
            if times != sorted(times) or len(set(times)) != len(times):
                raise FieldError("table", "times must increase")
            if times[-1] >= self.period:
                raise FieldError("table", f"times must be below the period ({self.period:g}s)")
            if max(p.rate for p in self.table) <= 0:
                raise FieldError("table", "at least one rate must be > 0")
        return self

    def rate_at(self, t: float) -> float:
        """The rate (per second) ``t`` seconds after the workload started."""
        day = (self.start + t) % self.period
        if self.mean is not None:
            phase = 2 * math.pi * (day - self.peak) / self.period
            return self.mean * (1 + self.amplitude * math.cos(phase))
        table = self.table or []
        idx = -1
        for i, p in enumerate(table):
            if p.at <= day:
                idx = i
        prev = table[idx]  # idx -1 wraps to the last row of the previous day
        if self.shape == "step":
            return prev.rate
        nxt = table[(idx + 1) % len(table)]
        t0 = prev.at if idx >= 0 else prev.at - self.period
        t1 = nxt.at if nxt.at > t0 else nxt.at + self.period
        if t1 <= t0:
            return prev.rate
        return prev.rate + (nxt.rate - prev.rate) * (day - t0) / (t1 - t0)

    def max_rate(self) -> float:
        """The largest rate of the day (the thinning envelope)."""
        if self.mean is not None:
            return self.mean * (1 + self.amplitude)
        return max(p.rate for p in self.table or [])

    def draws(self, horizon: float) -> tuple[str, float]:
        """The field that sets how many candidates a run draws in ``[0, horizon)``, and about how many.

        Thinning draws candidates at the day's largest rate, whatever the mean.
        """
        return "mean" if self.mean is not None else "table", self.max_rate() * horizon

    def times(self, rng: random.Random, horizon: float) -> Iterator[tuple[float, TraceRow | None]]:
        """Arrival times in ``[0, horizon)`` by Lewis-Shedler thinning, increasing."""
        top = self.max_rate()
        t = rng.expovariate(top)
        while t < horizon:
            # Draw the acceptance whatever the outcome, so that the stream of
            # draws does not depend on the rate (common random numbers).
            if rng.random() * top < self.rate_at(t):
                yield t, None
            t += rng.expovariate(top)

    def expected(self, start: float, end: float) -> float:
        """Expected arrivals in ``[start, end)`` (numerical integral of the rate)."""
        if end <= start:
            return 0.0
        steps = max(200, int((end - start) / self.period * 2000))
        h = (end - start) / steps
        return h * math.fsum(self.rate_at(start + (i + 0.5) * h) for i in range(steps))

    def shortened(self, factor: float) -> DiurnalArrivals:
        """The same day, compressed by ``factor``."""
        table = (
            None
            if self.table is None
            else [RatePoint(at=p.at * factor, rate=p.rate) for p in self.table]
        )
        return self.model_copy(
            update={
                "period": self.period * factor,
                "peak": self.peak * factor,
                "start": self.start * factor,
                "table": table,
            }
        )


class TraceRow(_Model):
    """One arrival of a trace: time from the start, and optionally template, namespace, hold."""

    time: float = Field(ge=0)
    template: str | None = None
    namespace: str | None = None
    hold: float | None = Field(default=None, ge=0)


class TraceArrivals(_Model):
    """A replay of ``file``: a CSV with a header and columns ``time``, ``template``, ``hold``.

    ``time`` (required) is seconds or a duration from the start of the
    workload; ``template`` (and an optional ``namespace``) names the pool,
    else the workload's; ``hold`` (seconds or a duration; empty: the
    workload's hold distribution) is how long the sandbox is kept. The path
    is relative to the scenario file. ``rows`` is filled from the file when
    the scenario is loaded; a scenario that writes it is refused.
    """

    kind: Literal["trace"] = "trace"
    file: str = Field(min_length=1)
    rows: list[TraceRow] = Field(default_factory=list)

    def times(self, rng: random.Random, horizon: float) -> Iterator[tuple[float, TraceRow | None]]:
        """The trace's arrivals in ``[0, horizon)``, in time order."""
        for row in self.rows:
            if row.time >= horizon:
                return
            yield row.time, row

    def expected(self, start: float, end: float) -> float:
        """Arrivals in ``[start, end)``."""
        return float(sum(1 for r in self.rows if start <= r.time < end))

    def draws(self, horizon: float) -> tuple[str, float]:
        """The field that sets how many arrivals a run replays in ``[0, horizon)``, and how many."""
        return "file", self.expected(0.0, horizon)

    def shortened(self, factor: float) -> TraceArrivals:
        """The first ``factor`` of the trace's span."""
        if not self.rows:
            return self
        cut = self.rows[-1].time * factor
        return self.model_copy(update={"rows": [r for r in self.rows if r.time <= cut]})


Arrivals: TypeAlias = Annotated[
    PoissonArrivals | ConstantArrivals | BurstArrivals | DiurnalArrivals | TraceArrivals,
    Field(discriminator="kind"),
]
"""Any arrival process; ``kind`` tells which."""


class TraceFormatError(ValueError):
    """A bad trace row: ``line`` (1-based) and ``column`` say where."""

    def __init__(self, line: int, column: str, reason: str) -> None:
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(f"line {line}: {column}: {reason}")


def load_trace(path: Path, *, template_required: bool = False) -> list[TraceRow]:
    """Read a trace CSV (see :class:`TraceArrivals`); rows sorted by time.

    Raise :class:`OSError` when unreadable and :class:`TraceFormatError`
    naming the line and column of the first bad value. ``template_required``:
    the workload names no template, so every row must.
    """
    rows: list[TraceRow] = []
    # utf-8-sig: a BOM (Excel's "CSV UTF-8") is skipped, as the YAML reader skips one;
    # kept, it would be part of the first column's name.
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "time" not in fields:
            raise TraceFormatError(1, "time", "required column missing from the header")
        unknown = [f for f in fields if f not in ("time", "template", "namespace", "hold")]
        if unknown:
            raise TraceFormatError(
                1, unknown[0], "unknown column (known: time, template, namespace, hold)"
            )
        twice = [f for i, f in enumerate(fields) if f in fields[:i]]
        if twice:
            # DictReader would keep the last copy's values and drop the others unseen.
            raise TraceFormatError(1, twice[0], "column given twice in the header")
        for raw in reader:
            line = reader.line_num
            if None in raw:
                # DictReader files the surplus fields under None, as a list.
                extra = raw[None]
                count = len(fields) + (len(extra) if isinstance(extra, list) else 1)
                raise TraceFormatError(line, "row", f"{count} fields, the header has {len(fields)}")
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            try:
                t = parse_seconds(row["time"])
            except ValueError as exc:
                raise TraceFormatError(line, "time", str(exc)) from None
            if t < 0:
                raise TraceFormatError(line, "time", f"must be >= 0, got {row['time']!r}")
            hold: float | None = None
            if row.get("hold"):
                try:
                    hold = parse_seconds(row["hold"])
                except ValueError as exc:
                    raise TraceFormatError(line, "hold", str(exc)) from None
                if hold < 0:
                    raise TraceFormatError(line, "hold", f"must be >= 0, got {row['hold']!r}")
            if template_required and not row.get("template"):
                raise TraceFormatError(line, "template", "empty, and the workload gives none")
            rows.append(
                TraceRow(
                    time=t,
                    template=row.get("template") or None,
                    namespace=row.get("namespace") or None,
                    hold=hold,
                )
            )
    rows.sort(key=lambda r: r.time)
    return rows

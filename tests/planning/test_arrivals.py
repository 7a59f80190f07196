"""Arrival processes: each shape delivers the arrivals it promises, the same ones for the same seed."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from simulator.planning.arrivals import (
    Burst,
    BurstArrivals,
    ConstantArrivals,
    DiurnalArrivals,
    PoissonArrivals,
    RatePoint,
    TraceArrivals,
    TraceFormatError,
    TraceRow,
    load_trace,
    parse_rate,
)


def _times(process: object, horizon: float, seed: int = 1) -> list[float]:
    return [t for t, _ in process.times(random.Random(seed), horizon)]  # type: ignore[attr-defined]


def test_rates_in_units() -> None:
    """Rates are per second; '/min' and '/h' convert; nonsense is refused with the reason."""
    assert parse_rate(3) == 3.0
    assert parse_rate("90/min") == 1.5
    assert parse_rate("7200/h") == 2.0
    for bad, why in [
        ("fast", "expected a rate"),
        ("3/week", "unknown rate unit"),
        (True, "expected a rate"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_rate(bad)


def test_poisson_count_and_gaps() -> None:
    """About rate x horizon arrivals, increasing, with exponential gaps (mean 1/rate, CV 1)."""
    times = _times(PoissonArrivals(rate=5), 2000.0)
    assert times == sorted(times)
    assert len(times) == pytest.approx(10_000, rel=0.03)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    sd = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert mean == pytest.approx(0.2, rel=0.03)
    assert sd / mean == pytest.approx(1.0, rel=0.05)
    assert _times(PoissonArrivals(rate=5), 50.0, seed=9) == _times(
        PoissonArrivals(rate=5), 50.0, seed=9
    )
    assert _times(PoissonArrivals(rate=5), 50.0, seed=9) != _times(
        PoissonArrivals(rate=5), 50.0, seed=10
    )


def test_constant_is_evenly_spaced() -> None:
    """One arrival every 1/rate seconds, the first at 1/rate, none at the horizon."""
    assert _times(ConstantArrivals(rate=2), 3.0) == [0.5, 1.0, 1.5, 2.0, 2.5]


def test_bursts_arrive_at_their_times() -> None:
    """Each burst's count arrives from its time, spread evenly over its span; the horizon cuts."""
    process = BurstArrivals(
        bursts=[Burst(at=10, count=4, over=2), Burst(at=1, count=2), Burst(at=100, count=5)]
    )
    assert _times(process, 50.0) == [1.0, 1.0, 10.0, 10.5, 11.0, 11.5]
    assert process.expected(0, 50) == 6.0


def test_diurnal_curve_follows_the_day() -> None:
    """Thinning gives the curve's mean rate, with more arrivals around the peak than at the trough."""
    day = DiurnalArrivals(mean=2.0, amplitude=0.8, period=1000, peak=250)
    times = _times(day, 10_000.0)
    assert len(times) == pytest.approx(20_000, rel=0.03)
    near_peak = sum(1 for t in times if abs((t % 1000) - 250) < 100)
    near_trough = sum(1 for t in times if abs((t % 1000) - 750) < 100)
    assert near_peak > 5 * near_trough
    assert day.rate_at(250) == pytest.approx(3.6)
    assert day.expected(0, 1000) == pytest.approx(2000, rel=1e-3)


def test_diurnal_table_step_and_linear() -> None:
    """A table is piecewise constant (step) or interpolated (linear), and wraps around the day."""
    table = [RatePoint(at=0, rate=1), RatePoint(at=60, rate=5)]
    step = DiurnalArrivals(table=table, period=120)
    linear = DiurnalArrivals(table=table, period=120, shape="linear")
    assert [step.rate_at(t) for t in (0, 59, 60, 119, 120)] == [1, 1, 5, 5, 1]
    assert [linear.rate_at(t) for t in (0, 30, 60, 90)] == pytest.approx([1, 3, 5, 3])
    times = _times(step, 12_000.0)
    first_half = sum(1 for t in times if t % 120 < 60)
    assert (len(times) - first_half) / first_half == pytest.approx(5.0, rel=0.08)


def test_diurnal_needs_one_form() -> None:
    """A curve or a table, not both, not neither."""
    with pytest.raises(ValueError, match="either a curve"):
        DiurnalArrivals()
    with pytest.raises(ValueError, match="either a curve"):
        DiurnalArrivals(mean=1, table=[RatePoint(at=0, rate=1)])


def test_trace_replays_rows_until_the_horizon() -> None:
    """A trace yields its rows in order and stops at the horizon."""
    rows = [TraceRow(time=t, template="base") for t in (0.5, 1.0, 7.0)]
    process = TraceArrivals(file="x.csv", rows=rows)
    assert [(t, r.template if r else None) for t, r in process.times(random.Random(1), 5.0)] == [
        (0.5, "base"),
        (1.0, "base"),
    ]
    assert process.shortened(0.5).rows == rows[:2]


def test_a_trace_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A CSV saved as "CSV UTF-8" (Excel) starts with a BOM: its first column is still ``time``."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbftime,template,hold\r\n2,base,10s\r\n1,base,\r\n")
    rows = load_trace(path)
    assert [(r.time, r.template, r.hold) for r in rows] == [
        (1.0, "base", None),
        (2.0, "base", 10.0),
    ]


def test_a_diurnal_table_is_refused_past_its_day_or_without_any_claim() -> None:
    """A row at the period itself is the next day's midnight (times must be below it), and a
    table of zero rates would never claim: both are refused naming the table."""
    with pytest.raises(ValueError, match=r"times must be below the period \(120s\)"):
        DiurnalArrivals(table=[RatePoint(at=0, rate=1), RatePoint(at=120, rate=5)], period=120)
    with pytest.raises(ValueError, match="at least one rate must be > 0"):
        DiurnalArrivals(table=[RatePoint(at=0, rate=0), RatePoint(at=60, rate=0)], period=120)


def test_a_burst_counts_toward_a_runs_arrivals_only_when_it_starts_within_it() -> None:
    """The bursts at 1 s and 10 s start within 50 s: 6 draws; the one at 100 s never comes."""
    process = BurstArrivals(
        bursts=[Burst(at=10, count=4, over=2), Burst(at=1, count=2), Burst(at=100, count=5)]
    )
    assert process.draws(50.0) == ("bursts", 6.0)


def test_a_shortened_trace_keeps_the_row_at_its_cut() -> None:
    """Half of a trace spanning 8 s keeps its rows up to 4 s, the row at 4 s included."""
    rows = [TraceRow(time=t, template="base") for t in (1.0, 4.0, 8.0)]
    assert TraceArrivals(file="x.csv", rows=rows).shortened(0.5).rows == rows[:2]


@pytest.mark.parametrize(("row", "column"), [("-1,base,30s", "time"), ("1,base,-30s", "hold")])
def test_a_negative_trace_time_or_hold_names_its_line_and_column(
    row: str, column: str, tmp_path: Path
) -> None:
    """A time or hold below zero is a bad value of that column on that line."""
    path = tmp_path / "t.csv"
    path.write_text(f"time,template,hold\n0,base,\n{row}\n")
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert (info.value.line, info.value.column) == (3, column)
    assert info.value.reason.startswith("must be >= 0, got '-")


def test_a_trace_row_at_the_horizon_is_past_the_run() -> None:
    """Arrivals are in ``[0, horizon)``: a row at the horizon itself is not replayed."""
    rows = [TraceRow(time=t, template="base") for t in (1.0, 5.0)]
    process = TraceArrivals(file="x.csv", rows=rows)
    assert [t for t, _ in process.times(random.Random(1), 5.0)] == [1.0]


def test_a_diurnal_tables_expected_arrivals_follow_its_steps() -> None:
    """1/s until 50 s, then 5/s until the 120 s day ends: 400 claims a day, 50 in its first
    50 s (the integral is fine enough to place a step that falls between coarse points)."""
    day = DiurnalArrivals(table=[RatePoint(at=0, rate=1), RatePoint(at=50, rate=5)], period=120)
    assert day.expected(0, 120) == pytest.approx(400, rel=0.005)
    assert day.expected(0, 50) == pytest.approx(50, rel=0.005)

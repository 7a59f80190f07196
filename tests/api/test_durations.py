"""Go duration strings: what ``time.ParseDuration`` accepts, and ``Duration.String()``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api.durations import (
    format_duration,
    parse_duration,
    parse_duration_nanos,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("1h30m", 5400.0),
        ("-1.5s", -1.5),
        ("+250ms", 0.25),
        (".5m", 30.0),
        ("1h0m0.001s", 3600.001),
    ],
)
def test_go_duration_strings_parse(text: str, seconds: float) -> None:
    """Signs, fractions and several unit parts, as Go reads them."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty duration"),
        ("30", "expected <number><unit> parts"),
        ("1d", "expected <number><unit> parts"),
        ("2562048h", "out of range (at most 2562047h47m16s)"),
        ("99999999999h", "out of range"),
        (" 30s", "expected <number><unit> parts"),
        ("30s\n", "expected <number><unit> parts"),
        ("\u0663\u0660s", "expected <number><unit> parts"),
        ("\uff13s", "expected <number><unit> parts"),
    ],
)
def test_what_go_refuses_is_a_value_error(text: str, reason: str) -> None:
    """No unit, an unknown unit, more than an int64 of nanoseconds, surrounding blanks (Go does not
    trim) or digits other than ASCII ones: ValueError saying which."""
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "micros"), [("1ns", 1), ("-1ns", -1), ("499ns", 1), ("1499ns", 1)]
)
def test_a_duration_under_a_microsecond_is_never_zero(text: str, micros: int) -> None:
    """Go keeps 1ns positive: "reserve-failed-sandbox-for: 1ns" reserves, it does not delete."""
    assert parse_duration(text) == timedelta(microseconds=micros)


def test_the_longest_go_duration_still_parses() -> None:
    """2562047h is within range (Go's limit is 2562047h47m16.854775807s)."""
    assert parse_duration("2562047h") == timedelta(hours=2562047)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0s"),
        (30, "30s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (1.5, "1.5s"),
        (0.25, "250ms"),
        (90.123456, "1m30.123456s"),
        (3725.000001, "1h2m5.000001s"),
        (0.0015, "1.5ms"),
        (0.0005, "500µs"),
        (0.000001, "1µs"),
        (-1.5, "-1.5s"),
    ],
)
def test_durations_format_as_go_prints_them(value: float, text: str) -> None:
    """``Duration.String()``: hours, minutes and seconds with every digit, or ms/µs under a second."""
    assert format_duration(timedelta(seconds=value)) == text


@given(st.timedeltas(min_value=timedelta(hours=-100_000), max_value=timedelta(hours=100_000)))
def test_a_formatted_duration_reads_back_as_the_same_value(value: timedelta) -> None:
    """Dump then apply keeps a duration exactly (to the microsecond)."""
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("100ns", 100),
        ("123.4us", 123_400),
        ("1.5ns", 1),  # Go drops what is below a nanosecond
        ("-1h0.000000001s", -3_600_000_000_001),
        ("0", 0),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_durations_parse_to_exact_nanoseconds(text: str, nanos: int) -> None:
    """parse_duration_nanos keeps what a timedelta's microseconds would round away."""
    assert parse_duration_nanos(text) == nanos


def test_nanoseconds_refuse_what_go_refuses() -> None:
    """The same syntax and range as parse_duration."""
    for bad in ("", "1", "1e3ms", "2562047h47m16.854775808s"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration_nanos(bad)


@pytest.mark.parametrize(("text", "micros"), [("1500ns", 2), ("-1500ns", -2), ("2499ns", 2)])
def test_a_duration_rounds_to_the_nearest_microsecond_ties_away_from_zero(
    text: str, micros: int
) -> None:
    """Half a microsecond rounds away from zero, whatever the sign."""
    assert parse_duration(text) == timedelta(microseconds=micros)


@pytest.mark.parametrize("text", ["1us", "1\u00b5s", "1\u03bcs"])
def test_a_microsecond_has_three_spellings(text: str) -> None:
    """Go reads ``us``, the micro sign (U+00B5) and the Greek mu (U+03BC) alike."""
    assert parse_duration_nanos(text) == 1_000


@pytest.mark.parametrize("text", ["-", "+"])
def test_a_sign_alone_is_no_duration(text: str) -> None:
    """Go's ``ParseDuration("-")`` fails: a sign needs a number and a unit after it."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_nanos(text)


def test_fraction_digits_count_down_to_the_nanosecond_of_an_hour() -> None:
    """A tenth fraction digit of hours is 360ns (1e-10 h): it is kept, as Go keeps it."""
    assert parse_duration_nanos("0.0000000001h") == 360
    assert parse_duration_nanos("1.0000000000001h") == 3_600_000_000_000  # 0.36ns: dropped


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(seconds=1), "1s"),
        (timedelta(microseconds=999), "999µs"),
        (timedelta(microseconds=999_999), "999.999ms"),
    ],
)
def test_a_whole_unit_is_written_in_that_unit(value: timedelta, text: str) -> None:
    """``Duration.String()`` moves to ms at exactly 1ms and to s at exactly 1s."""
    assert format_duration(value) == text

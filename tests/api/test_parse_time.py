"""``parse_time``: the lenient reading of a time, for Python callers and ``startedAfter``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pytest_kruise_agents.api.base import parse_time

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02t03:04:05Z",
        "2026-01-02T03:04:05z",
        "2026-01-02t03:04:05z",
        "2026-01-02T04:04:05+01:00",
        " 2026-01-02T03:04:05Z ",
    ],
    ids=["upper", "lower-t", "lower-z", "lower-both", "offset", "blanks"],
)
def test_every_rfc3339_date_time_is_read(text: str) -> None:
    """RFC 3339 §5.6 lets "T" and "Z" be lower case: each form reads as the same instant."""
    assert parse_time(text) == AT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02", datetime(2026, 1, 2, tzinfo=UTC)),
        ("2026-01-02 03:04:05", AT),
        ("2026-01-02T03:04:05", AT),
        ("2026-01-02T03:04", AT - timedelta(seconds=5)),
        ("2026-01-02T04:04:05+0100", AT),
        ("20260102T030405Z", AT),
        ("2026-01-02T03:04:05.123456789Z", AT + timedelta(microseconds=123456)),
    ],
    ids=["date", "space", "no-offset", "no-seconds", "offset-no-colon", "basic", "nanoseconds"],
)
def test_what_fromisoformat_reads_besides_is_read_as_documented(
    text: str, expected: datetime
) -> None:
    """Lenient on purpose (the docstring lists these): a time without an offset is UTC."""
    assert parse_time(text) == expected


def test_a_datetime_is_taken_as_is_in_utc() -> None:
    """An aware datetime is converted to UTC; a naive one is taken as UTC."""
    east = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time(east) == AT and parse_time(east).tzinfo is UTC
    assert parse_time(AT.replace(tzinfo=None)) == AT


@pytest.mark.parametrize("value", ["", "z", "yesterday", "2026-13-01T00:00:00Z", 1767323045])
def test_anything_else_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_time(value)


def test_a_time_without_an_offset_is_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not the local time: a machine nine hours east of UTC reads the same instant."""
    monkeypatch.setenv("TZ", "JST-9")  # a POSIX zone string: no tz database needed
    time.tzset()
    try:
        assert parse_time("2026-01-02T03:04:05") == AT
        assert parse_time(AT.replace(tzinfo=None)) == AT
    finally:
        monkeypatch.undo()
        time.tzset()

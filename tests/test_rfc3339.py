"""RFC 3339 §5.6 ``date-time``: exactly the grammar Go and the SDKs parse, no wider ISO 8601."""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_kruise_agents.rfc3339 import parse_rfc3339

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("2026-01-02T03:04:05Z", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        # RFC 3339 §5.6 NOTE: "T" and "Z" may be lower case.
        ("2026-01-02t03:04:05z", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.5Z", dt.datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        # Any number of fraction digits (Go writes nine); past microseconds they are dropped.
        ("2026-01-02T03:04:05.123456789Z", dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (
            "2026-01-02T03:04:05+05:30",
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        ),
        ("2026-01-02T03:04:05-00:00", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", dt.datetime(2024, 2, 29, tzinfo=UTC)),
        # A leap second is the second after :59.
        ("2016-12-31T23:59:60Z", dt.datetime(2017, 1, 1, tzinfo=UTC)),
    ],
)
def test_an_rfc_3339_date_time_is_parsed(text: str, wanted: dt.datetime) -> None:
    """Both cases of "T" and "Z", any fraction, offsets and leap seconds, as §5.6 writes them."""
    assert parse_rfc3339(text) == wanted


@pytest.mark.parametrize(
    "text",
    [
        "20260102T030405Z",  # ISO 8601 basic format
        "2026-W01-5T03:04:05Z",  # ISO 8601 week date
        "2026-002T03:04:05Z",  # ISO 8601 ordinal date
        "2026-01-02T03:04:05",  # no offset
        "2026-01-02 03:04:05Z",  # space, not T
        "2026-01-02T03:04Z",  # no seconds
        "2026-01-02T03:04:05.Z",  # an empty fraction
        "2026-01-02T03:04:05,5Z",  # comma fraction
        "2026-01-02T03:04:05+0530",  # offset without colon
        "2026-01-02T03:04:05+05",  # offset without minutes
        "2026-01-02T03:04:05UTC",
        "2026-1-2T3:4:5Z",  # digits missing
        "2026-13-02T03:04:05Z",  # month 13
        "2026-02-30T03:04:05Z",  # no such day
        "2025-02-29T00:00:00Z",  # not a leap year
        "2026-01-02T24:00:00Z",  # hour 24
        "2026-01-02T03:60:00Z",  # minute 60
        "2026-01-02T03:04:61Z",  # second 61
        "2026-01-02T03:04:05+24:00",  # offset hour 24
        "2026-01-02T03:04:05Z ",  # trailing space
        "\uff12\uff10\uff12\uff16-01-02T03:04:05Z",  # full-width digits
        "",
    ],
)
def test_what_is_not_an_rfc_3339_date_time_is_a_value_error(text: str) -> None:
    """Wider ISO 8601 forms and out-of-range fields: ValueError, as Go's time.RFC3339 refuses."""
    with pytest.raises(ValueError, match=r"not of the form|out of range|leap second|must be in"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-01-02t03:04:05Z", "upper-case T and Z"),
        ("2026-01-02T03:04:05z", "upper-case T and Z"),
        ("2016-12-31T23:59:60Z", "second out of range"),
    ],
)
def test_go_s_rfc3339_is_narrower(text: str, reason: str) -> None:
    """What ``metav1.Time`` refuses though RFC 3339 allows it: lower-case T/Z, a leap second."""
    assert parse_rfc3339(text) is not None
    with pytest.raises(ValueError, match=reason):
        parse_rfc3339(text, go=True)

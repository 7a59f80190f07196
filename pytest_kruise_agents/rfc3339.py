"""RFC 3339 §5.6 ``date-time`` text, exactly that grammar (not ISO 8601 at large).

Standard library only: the models read manifest times with it, and the
conformance suite, which runs in an SDK's own environment without this
project's dependencies, reads the server's timestamps with it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["parse_rfc3339"]

_DATE_TIME: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<frac>[0-9]+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_hour>[0-9]{2}):(?P<off_minute>[0-9]{2}))"
)
"""RFC 3339 §5.6 ``date-time`` ("T" and "Z" may be lower case, §5.6 NOTE); the ranges of
its fields are checked by :mod:`datetime`."""

_LEAP_SECOND: Final = 60


def parse_rfc3339(text: str, *, go: bool = False) -> dt.datetime:
    """The aware instant ``text`` names; :class:`ValueError` saying why if it is not one.

    ``go`` narrows the grammar to what Go's ``time.Parse(time.RFC3339, ...)``
    takes (``metav1.Time``): an upper-case ``T`` and ``Z``, and no leap second.

    ``datetime.fromisoformat`` also takes a bare date, a space for the "T", no
    offset, basic (``20260102T030405Z``) and week (``2026-W01-5T...``) forms,
    all of which RFC 3339 parsers (Go's ``time.RFC3339``, JavaScript's
    ``new Date()``) refuse.
    """
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        raise ValueError("not of the form YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm)")
    if go:
        if text[10] != "T" or m["utc"] == "z":
            raise ValueError("Go's time.RFC3339 wants an upper-case T and Z")
        if int(m["second"]) == _LEAP_SECOND:
            raise ValueError("second out of range (Go's time.RFC3339 has no leap second)")
    try:
        return _date_time(m)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None


def _zone(m: re.Match[str]) -> dt.timezone:
    """The offset of a :data:`_DATE_TIME` match (``ValueError`` when out of range)."""
    if m["utc"]:
        return dt.UTC
    hours, minutes = int(m["off_hour"]), int(m["off_minute"])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {m['sign']}{m['off_hour']}:{m['off_minute']} out of range")
    offset = dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(-offset if m["sign"] == "-" else offset)


def _date_time(m: re.Match[str]) -> dt.datetime:
    """The instant of a :data:`_DATE_TIME` match (``ValueError`` for a field out of range)."""
    second = int(m["second"])
    leap = second == _LEAP_SECOND
    micro = int((m["frac"] or "")[:6].ljust(6, "0"))
    parsed = dt.datetime(
        int(m["year"]),
        int(m["month"]),
        int(m["day"]),
        int(m["hour"]),
        int(m["minute"]),
        second - 1 if leap else second,
        micro,
        _zone(m),
    )
    if leap:
        # A leap second ends a UTC day (23:59:60Z); datetime has no second 60: the next one.
        utc = parsed.astimezone(dt.UTC)
        if (utc.hour, utc.minute) != (23, 59):
            raise ValueError("a leap second is only 23:59:60 UTC")
        parsed += dt.timedelta(seconds=1)
    return parsed

"""Go ``time.Duration`` strings (``"1m"``, ``"1h30m"``, ``"-1s"``) as :class:`timedelta` or exact nanoseconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from pytest_kruise_agents.api.problems import brief

__all__ = [
    "MAX_DURATION",
    "OUT_OF_RANGE",
    "format_duration",
    "parse_duration",
    "parse_duration_nanos",
]

_UNIT_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# ASCII digits only: Go reads '0'..'9', where Python's \d also takes other scripts' digits.
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)


_MAX_NANOS = 2**63 - 1
"""The longest Go ``time.Duration``, in nanoseconds."""
MAX_DURATION: Final = timedelta(microseconds=_MAX_NANOS // 1000)
"""The longest Go ``time.Duration`` a :class:`timedelta` holds (2562047h47m16.854775s)."""
OUT_OF_RANGE: Final = "out of range (at most 2562047h47m16s)"
"""Why a duration longer than :data:`MAX_DURATION` is refused (Go's ParseDuration's limit)."""


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string; raise :class:`ValueError` naming the problem.

    Accepts what ``time.ParseDuration`` accepts: an optional sign, then one or
    more ``<number><unit>`` parts (units ns, us, ms, s, m, h), or ``"0"``; no
    surrounding whitespace (``metav1.Duration`` hands the JSON string to Go untrimmed).
    Rounded to the microsecond, but never to zero: ``"1ns"`` is one microsecond.
    """
    nanos = parse_duration_nanos(text)
    sign = -1 if nanos < 0 else 1
    # To timedelta's microseconds, to the nearest (ties away from zero); a duration that
    # is not zero stays so ("1ns" is positive in Go: a check "> 0" must still pass).
    micros = max((abs(nanos) + 500) // 1000, 1 if nanos else 0)
    return timedelta(microseconds=sign * micros)


def parse_duration_nanos(text: str) -> int:
    """Parse a Go duration string to integer nanoseconds, exactly as ``time.ParseDuration``.

    The same syntax and errors as :func:`parse_duration`, without rounding
    to a :class:`timedelta`'s microseconds: ``"100ns"`` is 100, ``"1.5us"`` 1500.
    Digits below a nanosecond are dropped, as Go drops them.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '30s' or '1m', got {brief(text)}")
    s = text
    if not s:
        raise ValueError("empty duration")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    pos = 0
    total = 0  # nanoseconds, in integers as Go counts them: no float rounding
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(
                f"invalid duration {brief(text)}: expected <number><unit> parts with units "
                "ns, us, ms, s, m, h"
            )
        whole, _, frac = m.group(1).partition(".")
        whole = whole.lstrip("0")
        if len(whole) > 19:  # beyond an int64 of nanoseconds in any unit
            raise ValueError(f"invalid duration {brief(text)}: {OUT_OF_RANGE}")
        frac = frac[:18]  # later digits are below a nanosecond of any unit
        unit = _UNIT_NANOS[m.group(2)]
        total += int(whole or "0") * unit + int(frac or "0") * unit // 10 ** len(frac)
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {brief(text)}")
    if total > _MAX_NANOS:
        # Go's Duration is int64 nanoseconds: ParseDuration refuses more (about 2562047h).
        raise ValueError(f"invalid duration {brief(text)}: {OUT_OF_RANGE}")
    return sign * total


def format_duration(value: timedelta) -> str:
    """Format like Go's ``Duration.String()``: ``1h0m0s``, ``1m30.123456s``, ``1.5s``, ``500µs``, ``0s``.

    Exact to the microsecond (a :class:`timedelta`'s resolution), so that a
    dumped duration reads back as the same value.
    """
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    nanos = abs(micros) * 1000
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        # Under a second Go picks the unit that keeps an integer part.
        if nanos < 1_000_000:
            return f"{sign}{_decimal(nanos, 3)}µs"
        return f"{sign}{_decimal(nanos, 6)}ms"
    seconds = f"{_decimal(nanos % 60_000_000_000, 9)}s"
    minutes_total = nanos // 60_000_000_000
    hours, minutes = divmod(minutes_total, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def _decimal(value: int, places: int) -> str:
    """``value / 10**places`` written exactly, trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(value, 10**places)
    digits = f"{frac:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)

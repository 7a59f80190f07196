"""Go ``time.Duration`` strings (``"1m"``, ``"1h30m"``, ``"-1s"``) as :class:`timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


_MAX_SECONDS = (2**63 - 1) / 1e9
"""The longest Go ``time.Duration``, in seconds."""


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string; raise :class:`ValueError` naming the problem.

    Accepts what ``time.ParseDuration`` accepts: an optional sign, then one or
    more ``<number><unit>`` parts (units ns, us, ms, s, m, h), or ``"0"``.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string like '30s' or '1m', got {text!r}")
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(
                f"invalid duration {text!r}: expected <number><unit> parts with units "
                "ns, us, ms, s, m, h"
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    if total > _MAX_SECONDS:
        # Go's Duration is int64 nanoseconds: ParseDuration refuses more (about 2562047h).
        raise ValueError(f"invalid duration {text!r}: out of range (at most 2562047h47m16s)")
    return timedelta(seconds=sign * total)


def format_duration(value: timedelta) -> str:
    """Format like Go's ``Duration.String()``: ``1h0m0s``, ``1m0s``, ``30s``, ``1.5s``, ``0s``."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 1:
        ms = total * 1000
        return f"{sign}{ms:g}ms"
    hours, rem = divmod(total, 3600)
    minutes, seconds = divmod(rem, 60)
    sec = f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{sec}"
    if minutes:
        return f"{sign}{int(minutes)}m{sec}"
    return f"{sign}{sec}"

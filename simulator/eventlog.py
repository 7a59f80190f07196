"""The event log: what happened in the model, in order, in virtual time.

Determinism is checked on this log: the same seed and the same calls give the
same lines, byte for byte. Nothing here reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pytest_kruise_agents.api.errors import InvalidError

__all__ = ["Event", "EventLog"]


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the log: virtual time, a dotted kind, and a short detail."""

    time: float
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.time:.6f} {self.kind} {_one_line(self.detail)}"


def _one_line(text: str) -> str:
    """``text`` with each character that is not printable (a line break above all) escaped.

    Details quote what callers sent (a template name, a fault id): one with a
    newline would otherwise split its event into two lines, the second a
    forged event.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class EventLog:
    """An append-only list of :class:`Event`.

    ``enabled=False`` turns logging into a no-op for long benchmark runs, where
    a million-claim log would dominate memory.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._events: list[Event] = []

    def add(self, time: float, kind: str, detail: str) -> None:
        """Append one event (if enabled)."""
        if self.enabled:
            self._events.append(Event(time, kind, detail))

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        """Counts and the time span, not the lines (``text()`` has them)."""
        if not self.enabled:
            return "<EventLog off>"
        if not self._events:
            return "<EventLog: 0 events>"
        first, last = self._events[0].time, self._events[-1].time
        return f"<EventLog: {len(self._events):,} events, t={first:g}..{last:g}s>"

    def of_kind(self, prefix: str) -> list[Event]:
        """Events whose kind starts with ``prefix``; :class:`InvalidError` if it is no string."""
        if not isinstance(prefix, str):
            raise InvalidError("prefix", f"must be a string, got {prefix!r}")
        return [e for e in self._events if e.kind.startswith(prefix)]

    def text(self) -> str:
        """The whole log as text, one event per line."""
        return "".join(f"{e}\n" for e in self._events)

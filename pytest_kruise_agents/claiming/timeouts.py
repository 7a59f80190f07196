"""Timeout arithmetic: E2B create/timeout/connect/pause/resume times and the controller's timers.

Implements reference §6.5, §4 step 6 and §9 item 10: every shutdown or pause
time is truncated to whole seconds in UTC, and "forever" is 100 years, not
infinity. Every time is clamped to :data:`LATEST`, the last second a timestamp can
hold: a virtual clock moved near the year 9999 must not make "forever" unwritable.
A sandbox with neither ``shutdownTime`` nor ``pauseTime`` never times
out, and no timeout update gives it one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import (
    MAX_DURATION,
    OUT_OF_RANGE,
    format_duration,
    parse_duration,
)
from pytest_kruise_agents.api.e2b import MAX_TIMEOUT_S, MIN_CREATE_TIMEOUT_S
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxPhase
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.recycle import recycle_ended

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "FOREVER",
    "LATEST",
    "MAX_TIMEOUT_S",
    "MIN_CREATE_TIMEOUT_S",
    "MIN_RESUME_TIMEOUT_S",
    "PAUSE_WAIT_S",
    "TIMER_EPSILON_S",
    "TimerAction",
    "check_pause_retention",
    "create_times",
    "effective_end",
    "extend_only_times",
    "format_retention",
    "later",
    "parse_retention",
    "pause_retention",
    "pause_times",
    "paused_retention",
    "resume_times",
    "set_timeout_times",
    "should_extend",
    "timer_action",
    "truncate",
    "validate_create_timeout",
    "validate_timeout_update",
    "whole_seconds",
]

FOREVER: Final = timedelta(days=36500)
"""Upstream's "forever": 100 years."""

LATEST: Final = datetime.max.replace(microsecond=0, tzinfo=UTC)
"""The last whole second a timestamp can hold (9999-12-31T23:59:59Z).

Go's ``time.Time`` reaches further; a Python ``datetime`` stops here, so every
time this module computes is clamped to it rather than overflowing.
"""

DEFAULT_TIMEOUT_S: Final = 300
"""Default sandbox lifetime of ``POST /sandboxes`` (seconds)."""
MIN_RESUME_TIMEOUT_S: Final = 300
"""``--e2b-min-resume-timeout`` default: floor of the timeout a resume sets (seconds)."""
PAUSE_WAIT_S: Final = 60.0
"""``POST /pause`` waits at most this long for ``SandboxPaused=True`` (seconds)."""

TIMER_EPSILON_S: Final = 0.001
"""Requeue delay when a timer is due exactly now.

Upstream deletes once ``now`` is *after* ``shutdownTime``; a wall clock has
always moved on by the next reconcile, a virtual clock has not, so a requeue of
zero would spin at the same instant.
"""


def truncate(dt: datetime) -> datetime:
    """``dt`` in UTC truncated to whole seconds (a naive ``dt`` is taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


def whole_seconds(dt: datetime | None) -> datetime | None:
    """A stored shutdown or pause time as it is compared: without a fraction of a second.

    The model writes only whole seconds; one applied by hand (an edited
    Sandbox) keeps its fraction in the store, and upstream compares it
    truncated (§9 item 10). Cheaper than :func:`truncate`: stored times are UTC.
    (:func:`~pytest_kruise_agents.claiming.state.sandbox_state`, on the hottest
    path, does the same inline.)
    """
    if dt is None or not dt.microsecond:
        return dt
    return dt.replace(microsecond=0)


def later(dt: datetime, delta: timedelta) -> datetime:
    """``truncate(dt + delta)``, or :data:`LATEST` if that would be later (or past the calendar)."""
    start = truncate(dt)
    if delta >= LATEST - start:
        return LATEST
    return truncate(dt + delta)


def validate_create_timeout(seconds: int, *, max_timeout_s: int = MAX_TIMEOUT_S) -> None:
    """Reject a create ``timeout`` outside ``[30, max]`` seconds with a 400 naming ``timeout``."""
    if not MIN_CREATE_TIMEOUT_S <= seconds <= max_timeout_s:
        raise BadRequestError(
            f"timeout: must be between {MIN_CREATE_TIMEOUT_S} and {max_timeout_s} seconds, "
            f"got {seconds}",
            field="timeout",
        )


def validate_timeout_update(seconds: int, *, max_timeout_s: int = MAX_TIMEOUT_S) -> None:
    """Reject a ``POST /timeout`` ``timeout`` outside ``[1, max]`` seconds with a 400."""
    if not 1 <= seconds <= max_timeout_s:
        raise BadRequestError(
            f"timeout: must be between 1 and {max_timeout_s} seconds, got {seconds}",
            field="timeout",
        )


def create_times(
    now: datetime,
    timeout_s: int,
    *,
    auto_pause: bool,
    never_timeout: bool,
    paused_retention: timedelta | None,
) -> tuple[datetime | None, datetime | None]:
    """``(shutdownTime, pauseTime)`` of a newly claimed sandbox (``computeTimeoutOptions``).

    Never-timeout: neither. Auto-pause: ``pauseTime = now + timeout`` and
    ``shutdownTime = pauseTime + retention`` (default forever). Otherwise
    ``shutdownTime = now + timeout`` only.
    """
    if never_timeout:
        return None, None
    end = later(now, timedelta(seconds=timeout_s))
    if auto_pause:
        retention = paused_retention if paused_retention is not None else FOREVER
        return later(end, retention), end
    return end, None


def effective_end(sbx: Sandbox) -> datetime | None:
    """When the sandbox stops running: ``pauseTime``, else ``shutdownTime``, in whole seconds."""
    if sbx.spec.pause_time is not None:
        return whole_seconds(sbx.spec.pause_time)
    return whole_seconds(sbx.spec.shutdown_time)


def format_retention(retention: timedelta) -> str:
    """The annotation form of a paused retention: ``forever`` or a Go duration."""
    if retention >= FOREVER:
        return "forever"
    return format_duration(retention)


def parse_retention(value: str, *, field: str = keys.ANN_RESERVE_PAUSED_DURATION) -> timedelta:
    """Parse ``forever`` or a positive Go duration; raise :class:`BadRequestError` otherwise."""
    text = value.strip()
    if text == "forever":
        return FOREVER
    try:
        retention = parse_duration(text)
    except ValueError as exc:
        raise BadRequestError(f"{field}: {exc}", field=field) from exc
    if retention <= timedelta(0):
        raise BadRequestError(
            f"{field}: must be 'forever' or a positive duration, got {value!r}", field=field
        )
    return retention


def paused_retention(sbx: Sandbox) -> timedelta:
    """How long a paused sandbox is kept, from its retention annotation (default forever).

    An unparsable annotation counts as absent: it was validated when written,
    and a controller must not wedge on a hand-edited value.
    """
    value = sbx.metadata.annotations.get(keys.ANN_RESERVE_PAUSED_DURATION)
    if value is None:
        return FOREVER
    try:
        return parse_retention(value)
    except BadRequestError:
        return FOREVER


def check_pause_retention(retention: timedelta | None) -> None:
    """Refuse a pause's given ``retention`` (a 400 naming ``retention``) unless it is positive
    and a Go ``time.Duration`` holds it, as the header's own parse does (``None``: none given).

    Named as every duration here reads (Go's ``-1.5s``), not as Python's timedelta.
    """
    if retention is None:
        return
    if retention <= timedelta(0):
        raise BadRequestError(
            f"retention: must be a positive duration, got {format_duration(retention)}",
            field="retention",
        )
    if retention > MAX_DURATION:
        raise BadRequestError(
            f"retention: {OUT_OF_RANGE}, got {format_duration(retention)}", field="retention"
        )


def pause_retention(header: str | None, sbx: Sandbox) -> timedelta:
    """Retention for ``POST /pause``: the header, else the persisted annotation, else forever.

    A malformed header is a 400 naming the header.
    """
    if header is not None and header.strip():
        return parse_retention(header, field="x-e2b-kruise-reserve-paused-sandbox-duration")
    return paused_retention(sbx)


def _is_never_timeout(sbx: Sandbox) -> bool:
    return sbx.spec.shutdown_time is None and sbx.spec.pause_time is None


def set_timeout_times(
    sbx: Sandbox, now: datetime, timeout_s: int
) -> tuple[datetime | None, datetime | None]:
    """``(shutdownTime, pauseTime)`` after ``POST /timeout`` (UpdatePolicyAlways: may shorten).

    A never-timeout sandbox keeps no times. An auto-pause sandbox (``pauseTime``
    set) moves ``pauseTime`` to ``now + timeout`` and ``shutdownTime`` to
    ``pauseTime + retention``; any other moves ``shutdownTime`` to ``now + timeout``.
    """
    if _is_never_timeout(sbx):
        return None, None
    end = later(now, timedelta(seconds=timeout_s))
    if sbx.spec.pause_time is not None:
        return later(end, paused_retention(sbx)), end
    return end, None


def should_extend(sbx: Sandbox, shutdown: datetime | None, pause: datetime | None) -> bool:
    """Whether the new times end later than the sandbox's current effective end (ExtendOnly)."""
    new_end = pause if pause is not None else shutdown
    current = effective_end(sbx)
    if new_end is None or current is None:
        return False
    return new_end > current


def extend_only_times(
    sbx: Sandbox, now: datetime, timeout_s: int
) -> tuple[datetime | None, datetime | None]:
    """``(shutdownTime, pauseTime)`` after ``POST /connect``'s ExtendOnly update: never shortens.

    Returns the new times when they end later than the current effective end,
    else the sandbox's current times unchanged.
    """
    shutdown, pause = set_timeout_times(sbx, now, timeout_s)
    if should_extend(sbx, shutdown, pause):
        return shutdown, pause
    return sbx.spec.shutdown_time, sbx.spec.pause_time


def pause_times(
    sbx: Sandbox, now: datetime, retention: timedelta
) -> tuple[datetime | None, datetime | None]:
    """``(shutdownTime, pauseTime)`` written by ``POST /pause``.

    Only a sandbox with a ``shutdownTime`` changes: ``shutdownTime = now +
    retention``, and ``pauseTime`` becomes the same value if it was set.
    """
    if sbx.spec.shutdown_time is None:
        return sbx.spec.shutdown_time, sbx.spec.pause_time
    end = later(now, retention)
    return end, (end if sbx.spec.pause_time is not None else None)


def resume_times(
    sbx: Sandbox, now: datetime, timeout_s: int, *, min_resume_s: int = MIN_RESUME_TIMEOUT_S
) -> tuple[datetime | None, datetime | None]:
    """``(shutdownTime, pauseTime)`` written with ``paused=false`` on resume.

    Like :func:`set_timeout_times` with the timeout floored at
    ``--e2b-min-resume-timeout`` (300 s by default).
    """
    return set_timeout_times(sbx, now, max(timeout_s, min_resume_s))


@dataclass(frozen=True)
class TimerAction:
    """What the Sandbox controller's timer check decides.

    ``delete`` the sandbox; ``pause`` it (set ``spec.paused`` and write
    ``shutdown_time``/``pause_time``); ``requeue`` after ``after`` seconds; or
    ``none`` (no timer pending, or timers do not apply in this phase).
    """

    kind: Literal["delete", "pause", "requeue", "none"]
    after: float | None = None
    shutdown_time: datetime | None = None
    pause_time: datetime | None = None


def _timers_apply(sbx: Sandbox) -> bool:
    # §4 steps 3-4: deletion and terminal phases return before the timer check.
    if sbx.metadata.deletion_timestamp is not None:
        return False
    phase = sbx.status.phase
    if phase in (SandboxPhase.FAILED, SandboxPhase.SUCCEEDED):
        return False
    if phase == SandboxPhase.RECYCLING:
        # Skipped while recycling, unless the recycle failed or timed out.
        return recycle_ended(sbx)
    return True


def timer_action(sbx: Sandbox, now: datetime) -> TimerAction:
    """The Sandbox controller's timer decision at ``now`` (reference §4 step 6).

    ``shutdownTime`` passed deletes, except that a not-yet-paused sandbox with
    the paused-retention annotation whose ``pauseTime`` is due pauses first.
    ``pauseTime`` due on a running sandbox pauses it; with the retention
    annotation and a ``shutdownTime``, both times become ``now + retention``.
    Otherwise requeue at the earliest pending timer. Both times are compared,
    and the requeue computed, in whole seconds (§9 item 10); a pause without
    the retention annotation writes them back as stored.
    """
    if not _timers_apply(sbx):
        return TimerAction("none")
    shutdown = whole_seconds(sbx.spec.shutdown_time)
    pause = whole_seconds(sbx.spec.pause_time)
    paused = bool(sbx.spec.paused)
    has_retention = keys.ANN_RESERVE_PAUSED_DURATION in sbx.metadata.annotations
    pause_due = pause is not None and not paused and pause <= now

    if shutdown is not None and shutdown < now and not (has_retention and pause_due):
        return TimerAction("delete")
    if pause_due:
        new_shutdown, new_pause = sbx.spec.shutdown_time, sbx.spec.pause_time
        if has_retention and shutdown is not None:
            new_shutdown = new_pause = later(now, paused_retention(sbx))
        return TimerAction("pause", shutdown_time=new_shutdown, pause_time=new_pause)

    delays = []
    if shutdown is not None:
        delays.append((shutdown - now).total_seconds())
    if pause is not None and not paused:
        # A paused sandbox's past pauseTime is not a pending timer.
        delays.append((pause - now).total_seconds())
    if not delays:
        return TimerAction("none")
    return TimerAction("requeue", after=max(min(delays), TIMER_EPSILON_S))

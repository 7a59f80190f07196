"""Specification of the timeout arithmetic (reference §6.5, §4 step 6, §9 item 10)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import MAX_DURATION
from pytest_kruise_agents.api.meta import Condition
from pytest_kruise_agents.api.sandbox import SandboxPhase
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.timeouts import (
    DEFAULT_TIMEOUT_S,
    FOREVER,
    LATEST,
    MAX_TIMEOUT_S,
    MIN_CREATE_TIMEOUT_S,
    MIN_RESUME_TIMEOUT_S,
    PAUSE_WAIT_S,
    TimerAction,
    check_pause_retention,
    create_times,
    effective_end,
    extend_only_times,
    format_retention,
    parse_retention,
    pause_retention,
    pause_times,
    paused_retention,
    resume_times,
    set_timeout_times,
    should_extend,
    timer_action,
    truncate,
    validate_create_timeout,
    validate_timeout_update,
)

from .builders import NOW, make_sandbox

FRACTIONAL_NOW = NOW + timedelta(microseconds=750_000)
RETENTION = {keys.ANN_RESERVE_PAUSED_DURATION: "1h"}


def test_constants() -> None:
    """The E2B timeout bounds and "forever" are upstream's numbers."""
    assert timedelta(days=36500) == FOREVER
    assert (DEFAULT_TIMEOUT_S, MIN_CREATE_TIMEOUT_S, MAX_TIMEOUT_S) == (300, 30, 2_592_000)
    assert MIN_RESUME_TIMEOUT_S == 300
    assert PAUSE_WAIT_S == 60.0  # POST /pause waits at most a minute for SandboxPaused


def test_truncate_drops_sub_seconds_and_normalises_to_utc() -> None:
    """Truncation keeps whole seconds in UTC; a naive time is taken as UTC."""
    plus2 = datetime(2026, 8, 1, 14, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert truncate(plus2) == datetime(2026, 8, 1, 12, 0, 0, tzinfo=UTC)
    assert truncate(plus2).tzinfo == UTC
    assert truncate(datetime(2026, 1, 1, 0, 0, 1, 5)) == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


@given(st.datetimes(timezones=st.just(UTC)))
def test_truncate_is_idempotent_and_never_later(dt: datetime) -> None:
    """Truncating twice changes nothing, and never moves a time forward."""
    t = truncate(dt)
    assert truncate(t) == t
    assert t <= dt and dt - t < timedelta(seconds=1)


@pytest.mark.parametrize("seconds", [30, 300, 2_592_000])
def test_create_timeout_bounds_accepted(seconds: int) -> None:
    """Create timeouts from 30 s to 30 days are accepted."""
    validate_create_timeout(seconds)


@pytest.mark.parametrize("seconds", [0, 29, 2_592_001, -5])
def test_create_timeout_out_of_bounds_is_a_400_naming_timeout(seconds: int) -> None:
    """A create timeout outside [30, max] is a BadRequest naming the field timeout."""
    with pytest.raises(BadRequestError, match=r"^timeout: ") as info:
        validate_create_timeout(seconds)
    assert info.value.field == "timeout"
    assert info.value.code == 400


def test_create_timeout_max_is_configurable() -> None:
    """The upper bound follows --e2b-max-timeout."""
    validate_create_timeout(600, max_timeout_s=600)
    with pytest.raises(BadRequestError):
        validate_create_timeout(601, max_timeout_s=600)


def test_timeout_update_accepts_one_second() -> None:
    """POST /timeout accepts 1 s up to the max, but not 0."""
    validate_timeout_update(1)
    with pytest.raises(BadRequestError):
        validate_timeout_update(0)


def test_create_times_plain() -> None:
    """A plain create sets only shutdownTime = now + timeout, truncated."""
    assert create_times(
        FRACTIONAL_NOW, 300, auto_pause=False, never_timeout=False, paused_retention=None
    ) == (NOW + timedelta(seconds=300), None)


def test_create_times_auto_pause_defaults_to_forever_retention() -> None:
    """Auto-pause sets pauseTime = now + timeout and shutdownTime = pauseTime + 100 years."""
    shutdown, pause = create_times(
        FRACTIONAL_NOW, 60, auto_pause=True, never_timeout=False, paused_retention=None
    )
    assert pause == NOW + timedelta(seconds=60)
    assert shutdown == pause + FOREVER


def test_create_times_auto_pause_with_retention() -> None:
    """Auto-pause with a retention keeps the paused sandbox that long."""
    shutdown, pause = create_times(
        NOW, 60, auto_pause=True, never_timeout=False, paused_retention=timedelta(hours=1)
    )
    assert (shutdown, pause) == (NOW + timedelta(seconds=3660), NOW + timedelta(seconds=60))


def test_create_times_never_timeout_wins() -> None:
    """never-timeout sets no times at all, even with auto-pause."""
    assert create_times(
        NOW, 60, auto_pause=True, never_timeout=True, paused_retention=timedelta(hours=1)
    ) == (None, None)


def test_effective_end_prefers_pause_time() -> None:
    """The effective end is pauseTime when set, else shutdownTime, else none."""
    a = NOW + timedelta(minutes=1)
    b = NOW + timedelta(minutes=2)
    assert effective_end(make_sandbox(shutdown=b, pause_time=a)) == a
    assert effective_end(make_sandbox(shutdown=b)) == b
    assert effective_end(make_sandbox()) is None


def test_effective_end_counts_in_whole_seconds() -> None:
    """The end a sandbox stops running at has no hand-written fraction of a second (§9 item 10)."""
    fraction = timedelta(microseconds=900_000)
    assert effective_end(make_sandbox(pause_time=NOW + fraction)) == NOW
    assert effective_end(make_sandbox(shutdown=NOW + fraction)) == NOW


def test_retention_parsing() -> None:
    """Retention is "forever" or a positive Go duration, formatted back the same way."""
    assert parse_retention("forever") == FOREVER
    assert parse_retention("1h30m") == timedelta(minutes=90)
    assert format_retention(FOREVER) == "forever"
    assert format_retention(timedelta(minutes=90)) == "1h30m0s"
    for bad in ("0s", "-1h", "soon", ""):
        with pytest.raises(BadRequestError):
            parse_retention(bad)


def test_paused_retention_from_annotation() -> None:
    """The persisted annotation sets the retention; absent or garbage means forever."""
    assert paused_retention(make_sandbox(annotations=RETENTION)) == timedelta(hours=1)
    assert paused_retention(make_sandbox()) == FOREVER
    bad = {keys.ANN_RESERVE_PAUSED_DURATION: "banana"}
    assert paused_retention(make_sandbox(annotations=bad)) == FOREVER


def test_pause_retention_header_beats_annotation() -> None:
    """For POST /pause the header wins over the annotation; a bad header is a 400."""
    sbx = make_sandbox(annotations=RETENTION)
    assert pause_retention("2h", sbx) == timedelta(hours=2)
    assert pause_retention(None, sbx) == timedelta(hours=1)
    with pytest.raises(BadRequestError, match="x-e2b-kruise-reserve-paused-sandbox-duration"):
        pause_retention("nope", sbx)


def test_a_blank_pause_retention_header_is_no_header() -> None:
    """A header of blanks is absent (an HTTP server trims a header's value): the annotation's
    retention applies, else forever, rather than a 400 for an empty duration."""
    assert pause_retention("  ", make_sandbox(annotations=RETENTION)) == timedelta(hours=1)
    assert pause_retention("", make_sandbox()) == FOREVER


def test_set_timeout_may_shorten() -> None:
    """POST /timeout always applies, even when the new end is earlier."""
    sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(hours=1))
    assert set_timeout_times(sbx, FRACTIONAL_NOW, 10) == (NOW + timedelta(seconds=10), None)


def test_set_timeout_leaves_never_timeout_sandboxes_alone() -> None:
    """A sandbox without shutdown and pause times never gets one from POST /timeout."""
    assert set_timeout_times(make_sandbox(owned=False), NOW, 10) == (None, None)


def test_set_timeout_on_auto_pause_sandbox_moves_both() -> None:
    """An auto-pause sandbox moves pauseTime and keeps shutdownTime = pauseTime + retention."""
    sbx = make_sandbox(
        owned=False,
        annotations=RETENTION,
        pause_time=NOW + timedelta(minutes=5),
        shutdown=NOW + timedelta(minutes=65),
    )
    shutdown, pause = set_timeout_times(sbx, NOW, 600)
    assert pause == NOW + timedelta(seconds=600)
    assert shutdown == pause + timedelta(hours=1)


def test_extend_only_never_shortens() -> None:
    """Connect's ExtendOnly update keeps a later end and extends an earlier one."""
    later = make_sandbox(owned=False, shutdown=NOW + timedelta(hours=1))
    assert extend_only_times(later, NOW, 60) == (NOW + timedelta(hours=1), None)
    earlier = make_sandbox(owned=False, shutdown=NOW + timedelta(seconds=30))
    assert extend_only_times(earlier, NOW, 60) == (NOW + timedelta(seconds=60), None)


def test_an_equal_end_is_no_extension_and_rewrites_no_time() -> None:
    """ExtendOnly extends only to a *later* end: a connect whose new pauseTime equals the
    current one keeps both stored times, so the shutdownTime a longer retention gave (5 h
    after the pause) is not cut to the annotation's 1 h."""
    pause = NOW + timedelta(seconds=120)
    sbx = make_sandbox(
        owned=False, annotations=RETENTION, pause_time=pause, shutdown=pause + timedelta(hours=5)
    )
    assert extend_only_times(sbx, NOW, 120) == (pause + timedelta(hours=5), pause)


def test_no_time_extends_a_never_timeout_sandbox() -> None:
    """A sandbox with neither time never times out, and no ExtendOnly update gives it an end."""
    forever = make_sandbox(owned=False)
    assert not should_extend(forever, NOW + timedelta(hours=1), None)
    assert not should_extend(forever, NOW + FOREVER, NOW + timedelta(hours=1))
    assert extend_only_times(forever, NOW, 60) == (None, None)


def test_extend_only_compares_effective_ends() -> None:
    """ExtendOnly compares pauseTime for an auto-pause sandbox, not its far shutdownTime."""
    sbx = make_sandbox(owned=False, pause_time=NOW + timedelta(seconds=30), shutdown=NOW + FOREVER)
    shutdown, pause = extend_only_times(sbx, NOW, 120)
    assert pause == NOW + timedelta(seconds=120)
    assert shutdown == pause + FOREVER


@given(
    current=st.integers(min_value=1, max_value=10_000),
    timeout=st.integers(min_value=1, max_value=10_000),
)
def test_extend_only_end_is_monotonic(current: int, timeout: int) -> None:
    """After ExtendOnly the effective end is never earlier than before."""
    sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(seconds=current))
    shutdown, _ = extend_only_times(sbx, NOW, timeout)
    assert shutdown is not None
    assert shutdown == NOW + timedelta(seconds=max(current, timeout))


def test_pause_times_only_with_shutdown_time() -> None:
    """POST /pause sets shutdownTime = now + retention, and pauseTime too only if it was set."""
    plain = make_sandbox(owned=False, shutdown=NOW + timedelta(minutes=5))
    assert pause_times(plain, FRACTIONAL_NOW, timedelta(hours=1)) == (
        NOW + timedelta(hours=1),
        None,
    )
    auto = make_sandbox(owned=False, shutdown=NOW + FOREVER, pause_time=NOW + timedelta(minutes=5))
    assert pause_times(auto, NOW, timedelta(hours=1)) == (
        NOW + timedelta(hours=1),
        NOW + timedelta(hours=1),
    )
    never = make_sandbox(owned=False)
    assert pause_times(never, NOW, timedelta(hours=1)) == (None, None)


def test_resume_floors_the_timeout_at_300_seconds() -> None:
    """Resume uses at least --e2b-min-resume-timeout (300 s)."""
    sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(hours=1))
    assert resume_times(sbx, NOW, 10) == (NOW + timedelta(seconds=300), None)
    assert resume_times(sbx, NOW, 900) == (NOW + timedelta(seconds=900), None)
    assert resume_times(sbx, NOW, 10, min_resume_s=60) == (NOW + timedelta(seconds=60), None)


NEAR_THE_END = datetime(9999, 12, 31, 23, 0, 0, 500_000, tzinfo=UTC)
"""A clock moved close to the last date a Kubernetes timestamp (a datetime) can hold."""


def test_latest_is_the_last_whole_second_a_datetime_holds() -> None:
    """Times past the year 9999 cannot be written: the arithmetic stops at its last second."""
    assert datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) == LATEST


def test_times_near_the_end_of_the_calendar_stop_at_latest() -> None:
    """Upstream's "forever" (100 years), or a timeout, past the year 9999 ends at :data:`LATEST`.

    The arithmetic is pure: however near the end of the calendar ``now`` is,
    a create or a pause gets its times, kept until the last representable second.
    """
    far = NEAR_THE_END - timedelta(days=365 * 80)
    assert create_times(far, 60, auto_pause=True, never_timeout=False, paused_retention=None) == (
        LATEST,
        truncate(far) + timedelta(seconds=60),
    )
    assert create_times(
        NEAR_THE_END, 7200, auto_pause=False, never_timeout=False, paused_retention=None
    ) == (LATEST, None)
    auto = make_sandbox(owned=False, shutdown=LATEST, pause_time=NEAR_THE_END)
    assert pause_times(auto, far, FOREVER) == (LATEST, LATEST)
    assert set_timeout_times(auto, NEAR_THE_END, 7200) == (LATEST, LATEST)
    plain = make_sandbox(owned=False, shutdown=NEAR_THE_END)
    assert resume_times(plain, NEAR_THE_END, 7200) == (LATEST, None)


def test_a_pause_timer_near_the_end_of_the_calendar_stops_at_latest() -> None:
    """The controller's "now + retention" on an auto-pause is clamped too."""
    due = truncate(NEAR_THE_END)
    sbx = make_sandbox(
        owned=False,
        shutdown=due + timedelta(minutes=10),
        pause_time=due,
        annotations={keys.ANN_RESERVE_PAUSED_DURATION: "forever"},
    )
    action = timer_action(sbx, NEAR_THE_END)
    assert action == TimerAction("pause", shutdown_time=LATEST, pause_time=LATEST)


class TestTimerAction:
    """The Sandbox controller's timer decision (§4 step 6)."""

    def test_no_timers_means_nothing_to_do(self) -> None:
        """A sandbox without times has no timer."""
        assert timer_action(make_sandbox(owned=False), NOW) == TimerAction("none")

    def test_passed_shutdown_deletes(self) -> None:
        """A shutdownTime in the past deletes the sandbox."""
        sbx = make_sandbox(owned=False, shutdown=NOW - timedelta(seconds=1))
        assert timer_action(sbx, NOW).kind == "delete"

    def test_shutdown_exactly_now_requeues_a_hair_later(self) -> None:
        """At shutdownTime exactly nothing is deleted yet; the requeue is positive."""
        action = timer_action(make_sandbox(owned=False, shutdown=NOW), NOW)
        assert action.kind == "requeue"
        assert action.after is not None and 0 < action.after <= 0.001

    def test_requeue_at_earliest_timer(self) -> None:
        """Without a due timer the controller requeues at the earliest of pause and shutdown."""
        sbx = make_sandbox(
            owned=False,
            pause_time=NOW + timedelta(seconds=30),
            shutdown=NOW + timedelta(seconds=90),
        )
        assert timer_action(sbx, NOW) == TimerAction("requeue", after=30.0)

    def test_a_due_pause_with_retention_gives_no_shutdown_time_to_a_sandbox_without_one(
        self,
    ) -> None:
        """The retention moves both times only when a shutdownTime is set (§4 step 6): a
        sandbox with a pauseTime alone is paused with its times as stored, and still has
        no shutdownTime."""
        sbx = make_sandbox(owned=False, annotations=RETENTION, pause_time=NOW)
        assert timer_action(sbx, NOW) == TimerAction("pause", shutdown_time=None, pause_time=NOW)

    def test_due_pause_pauses_and_keeps_times_without_retention_annotation(self) -> None:
        """pauseTime reached on a running sandbox pauses it; times are kept."""
        sbx = make_sandbox(owned=False, pause_time=NOW, shutdown=NOW + timedelta(hours=2))
        action = timer_action(sbx, NOW)
        assert action.kind == "pause"
        assert (action.shutdown_time, action.pause_time) == (NOW + timedelta(hours=2), NOW)

    def test_times_count_in_whole_seconds(self) -> None:
        """Hand-written fractions of a second are dropped before comparing (§9 item 10, as
        upstream's ``pkg/utils/timeout`` truncates): a shutdownTime or pauseTime of
        10:00:00.9 is due just after 10:00:00, and the requeue waits for that."""
        fraction = timedelta(microseconds=900_000)
        hair = timedelta(microseconds=1)
        dying = make_sandbox(owned=False, shutdown=NOW + fraction)
        assert timer_action(dying, NOW - timedelta(seconds=2)) == TimerAction("requeue", after=2.0)
        assert timer_action(dying, NOW + hair).kind == "delete"
        pausing = make_sandbox(
            owned=False,
            pause_time=NOW + fraction,
            shutdown=NOW + timedelta(hours=1, microseconds=5),
        )
        assert timer_action(pausing, NOW - timedelta(seconds=2)) == TimerAction(
            "requeue", after=2.0
        )
        action = timer_action(pausing, NOW)
        assert action.kind == "pause"
        # The pause writes the times back as they were written.
        assert (action.shutdown_time, action.pause_time) == (
            NOW + timedelta(hours=1, microseconds=5),
            NOW + fraction,
        )

    def test_due_pause_with_retention_sets_both_times(self) -> None:
        """With the retention annotation, pausing sets both times to now + retention."""
        sbx = make_sandbox(
            owned=False,
            annotations=RETENTION,
            pause_time=NOW - timedelta(seconds=5),
            shutdown=NOW + timedelta(hours=2),
        )
        action = timer_action(sbx, FRACTIONAL_NOW)
        assert action.kind == "pause"
        assert action.shutdown_time == action.pause_time == NOW + timedelta(hours=1)

    def test_retention_annotation_pauses_before_deleting(self) -> None:
        """Past both times, a not-yet-paused sandbox with the annotation is paused, not deleted."""
        sbx = make_sandbox(
            owned=False,
            annotations=RETENTION,
            pause_time=NOW - timedelta(minutes=2),
            shutdown=NOW - timedelta(minutes=1),
        )
        action = timer_action(sbx, NOW)
        assert action.kind == "pause"
        assert action.shutdown_time == NOW + timedelta(hours=1)

    def test_without_retention_annotation_passed_shutdown_deletes_first(self) -> None:
        """Past both times without the annotation, deletion wins."""
        sbx = make_sandbox(
            owned=False,
            pause_time=NOW - timedelta(minutes=2),
            shutdown=NOW - timedelta(minutes=1),
        )
        assert timer_action(sbx, NOW).kind == "delete"

    def test_already_paused_sandbox_is_not_paused_again(self) -> None:
        """A paused sandbox ignores its past pauseTime and waits for shutdownTime."""
        sbx = make_sandbox(
            owned=False,
            paused=True,
            annotations=RETENTION,
            pause_time=NOW - timedelta(minutes=2),
            shutdown=NOW + timedelta(minutes=58),
        )
        assert timer_action(sbx, NOW) == TimerAction("requeue", after=58 * 60.0)
        expired = sbx.model_copy(deep=True)
        expired.spec.shutdown_time = NOW - timedelta(seconds=1)
        assert timer_action(expired, NOW).kind == "delete"

    @pytest.mark.parametrize("phase", [SandboxPhase.FAILED, SandboxPhase.SUCCEEDED])
    def test_terminal_phases_skip_timers(self, phase: SandboxPhase) -> None:
        """Failed and Succeeded sandboxes return before the timer check."""
        sbx = make_sandbox(owned=False, phase=phase, shutdown=NOW - timedelta(hours=1))
        assert timer_action(sbx, NOW).kind == "none"

    def test_deleted_sandbox_skips_timers(self) -> None:
        """A sandbox being deleted is finalised, not timed."""
        sbx = make_sandbox(owned=False, deleted=True, shutdown=NOW - timedelta(hours=1))
        assert timer_action(sbx, NOW).kind == "none"

    def test_recycling_skips_timers_unless_failed(self) -> None:
        """Timers wait while recycling, and apply again once recycling failed or timed out."""
        sbx = make_sandbox(
            owned=False, phase=SandboxPhase.RECYCLING, shutdown=NOW - timedelta(hours=1)
        )
        assert timer_action(sbx, NOW).kind == "none"
        sbx.status.conditions.append(
            Condition(type="Recycling", status="False", reason="RecyclingTimeout")
        )
        assert timer_action(sbx, NOW).kind == "delete"


@pytest.mark.parametrize(
    ("retention", "reason"),
    [
        (timedelta(0), "retention: must be a positive duration, got 0s"),
        (timedelta(hours=2562048), "retention: out of range (at most 2562047h47m16s), got "),
    ],
)
def test_a_pause_retention_is_positive_and_fits_a_go_duration(
    retention: timedelta, reason: str
) -> None:
    """The header's own rule, for a retention given as a timedelta; forever and None pass."""
    with pytest.raises(BadRequestError, match=f"^{re.escape(reason)}") as err:
        check_pause_retention(retention)
    assert err.value.field == "retention"
    check_pause_retention(FOREVER)
    check_pause_retention(None)


def test_the_longest_go_duration_is_a_valid_pause_retention() -> None:
    """A retention of exactly the longest Go duration (2562047h47m16.854775s) fits one."""
    check_pause_retention(MAX_DURATION)

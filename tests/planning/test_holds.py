"""Hold times and the E2B timeout a workload's claims are created with (``simulator.planning.holds``)."""

from __future__ import annotations

import pytest

from simulator.planning.holds import parse_hold, sandbox_timeout


@pytest.mark.parametrize(
    ("hold", "explicit", "timeout"),
    [
        (90.0, None, 120),  # the hold plus 30 s: the client's kill, not the timeout, ends it
        (89.2, None, 120),  # a part of a second counts whole
        (0.0, None, 30),  # never below the create's 30 s minimum
        (40 * 86400.0, None, 30 * 86400),  # never above its 30 days
        (90.0, 600.0, 600),  # the scenario's own timeout wins
        (None, None, None),  # held forever: the profile's default timeout
    ],
)
def test_a_sandbox_outlives_its_hold_within_the_creates_bounds(
    hold: float | None, explicit: float | None, timeout: int | None
) -> None:
    """docs/planning.md: ``timeout`` defaults to the hold + 30 s, from 30 s to 30 days."""
    assert sandbox_timeout(hold, explicit) == timeout


@pytest.mark.parametrize("text", ["forever", "none", " Forever ", None])
def test_a_hold_of_forever_or_none_never_kills(text: str | None) -> None:
    """``forever`` (or ``none``, or null) is a sandbox its client never kills."""
    hold = parse_hold(text)
    assert hold.dist is None and hold.mean() is None and str(hold) == "forever"


def test_a_hold_is_any_latency_spec() -> None:
    """``90s`` is a fixed hold; ``exp(2m)`` one of mean 120 s."""
    assert parse_hold("90s").mean() == pytest.approx(90.0)
    assert parse_hold("exp(2m)").mean() == pytest.approx(120.0)

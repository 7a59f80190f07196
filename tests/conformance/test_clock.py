"""The suite finds the server's admin clock when there is one, and uses the wall clock otherwise."""

from __future__ import annotations

import httpx

from pytest_kruise_agents.conformance.clock import ServerClock

from .conftest import ADMIN_KEY, REALTIME_SPEED, USER_KEY, serve


def test_the_admin_clock_is_detected_with_the_admin_key_only() -> None:
    with serve(clock="virtual") as url:
        refused = ServerClock.detect(url, [USER_KEY])
        assert (refused.mode, refused.refused) == ("wall", 403)
        # The report and every timing failure say why time may not pass.
        assert refused.describe().startswith("wall clock: GET /_kruise/clock refused the keys")
        assert "--admin-key" in refused.describe()
        clock = ServerClock.detect(url, [None, USER_KEY, ADMIN_KEY])
        assert (clock.mode, clock.key) == ("virtual", ADMIN_KEY)
        assert clock.describe() == "virtual (admin clock)"
    with serve(clock="realtime", speed=REALTIME_SPEED) as url:
        clock = ServerClock.detect(url, [ADMIN_KEY])
        assert (clock.mode, clock.speed) == ("realtime", REALTIME_SPEED)


def test_a_server_without_an_admin_clock_runs_on_the_wall_clock() -> None:
    clock = ServerClock.detect("http://127.0.0.1:9", [ADMIN_KEY], timeout=2)
    assert (clock.mode, clock.describe()) == ("wall", "wall clock")


def test_waiting_on_a_virtual_clock_moves_it_instead_of_sleeping() -> None:
    with serve(clock="virtual") as url:
        clock = ServerClock.detect(url, [ADMIN_KEY])
        seen: list[str] = []

        def now() -> str:
            body = httpx.get(url + "/_kruise/clock", headers={"X-API-Key": ADMIN_KEY}).json()
            seen.append(body["now"])
            return str(body["now"])

        start = now()
        assert clock.wait_for(lambda: now() > start, 30)
        assert seen[1] > start  # the first poll after the advance already saw the new time


def test_server_seconds_bound_the_time_a_server_lets_pass() -> None:
    assert ServerClock("http://x", None, "realtime", REALTIME_SPEED).server_seconds(0.5) == 10
    assert ServerClock("http://x", None, "wall").server_seconds(3) == 3
    assert ServerClock("http://x", ADMIN_KEY, "virtual").server_seconds(1) == 5


def test_server_seconds_since_a_mark_read_the_admin_clock_when_there_is_one() -> None:
    """A virtual clock moved 40 s (a cold create) counts 40 s, however little wall time passed;
    without an admin clock the bound comes from the wall clock."""
    with serve(clock="virtual") as url:
        clock = ServerClock.detect(url, [ADMIN_KEY])
        mark = clock.mark()
        assert mark.server is not None
        clock.advance(40)
        assert 40 <= clock.server_seconds_since(mark) < 45
    wall = ServerClock("http://127.0.0.1:9", None, "wall")
    mark = wall.mark()
    assert mark.server is None
    assert 0 <= wall.server_seconds_since(mark) < 5

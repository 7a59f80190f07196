"""The suite finds the server's admin clock when there is one, and uses the wall clock otherwise."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from pytest_kruise_agents.conformance.clock import ServerClock

from .conftest import ADMIN_KEY, REALTIME_SPEED, USER_KEY, serve

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


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


def _clock_answering(body: dict[str, object]) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware answering ``GET /_kruise/clock`` with ``body``."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def answered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/_kruise/clock":
                data = json.dumps(body).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                return
            await app(scope, receive, send)

        return answered

    return wrap


@pytest.mark.parametrize("speed", [0, -3, True, "fast", None])
def test_a_clock_speed_that_is_no_positive_number_is_taken_as_one(speed: object) -> None:
    """A speed of 0 would divide every wait by zero; a negative one would never wait."""
    with serve(wrap=_clock_answering({"mode": "realtime", "speed": speed})) as url:
        clock = ServerClock.detect(url, [ADMIN_KEY])
    assert (clock.mode, clock.speed) == ("realtime", 1.0)


def test_a_clock_mode_the_suite_does_not_know_is_the_wall_clock() -> None:
    with serve(wrap=_clock_answering({"mode": "wall", "speed": 5})) as url:
        clock = ServerClock.detect(url, [ADMIN_KEY])
    assert (clock.mode, clock.key, clock.describe()) == ("wall", None, "wall clock")


def test_the_admin_clock_is_found_at_the_root_of_an_api_url_with_the_kruise_prefix() -> None:
    with serve(clock="virtual") as url:
        clock = ServerClock.detect(url + "/kruise/api/", [ADMIN_KEY])
    assert (clock.mode, clock.api_url) == ("virtual", url)


def test_without_a_key_the_admin_clock_of_a_server_without_auth_is_asked_without_one() -> None:
    with serve(clock="virtual", auth=False) as url:
        clock = ServerClock.detect(url, [None])
    assert (clock.mode, clock.key) == ("virtual", "")


def test_the_grace_past_a_deadline_is_longest_on_the_wall_clock() -> None:
    """Controllers of a server whose clock the suite cannot read may lag behind it."""
    assert ServerClock("http://x", None, "wall").grace == 30.0
    assert ServerClock("http://x", ADMIN_KEY, "realtime", 20).grace == 10.0
    assert ServerClock("http://x", ADMIN_KEY, "virtual").grace == 10.0


def test_advancing_a_realtime_clock_sleeps_its_share_and_no_time_at_all_for_none() -> None:
    fast = ServerClock("http://127.0.0.1:9", ADMIN_KEY, "realtime", REALTIME_SPEED)
    started = time.monotonic()
    fast.advance(REALTIME_SPEED * 0.2)  # 0.2 s of wall time
    fast.advance(0)
    ServerClock("http://127.0.0.1:9", None, "wall").advance(-1)  # not a sleep of -1 s
    ServerClock("http://127.0.0.1:9", ADMIN_KEY, "virtual").advance(0)  # no request at all
    assert 0.2 <= time.monotonic() - started < 1.5

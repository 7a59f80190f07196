"""Letting server time pass: the server's admin clock when it offers one, else the wall clock.

Timeout-dependent checks must wait only as long as they must. A server may
offer this project's admin clock (``GET /_kruise/clock`` answering
``{"mode": "virtual"|"realtime", "speed"?: x}``, ``POST /_kruise/clock/advance``):
in virtual mode the suite moves time on purpose, in realtime mode it knows
how fast server time runs. Without one (any other answer) server time is
the wall clock. The clock is detected, never required.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import httpx

from pytest_kruise_agents.conformance.target import KRUISE_PREFIX

__all__ = ["CLOCK_PATH", "ClockMark", "ServerClock"]

CLOCK_PATH: Final = "/_kruise/clock"

_POLL_S: Final = 0.05
_GRACE_VIRTUAL_S: Final = 10.0
"""Virtual seconds a virtual clock is stepped past a deadline (controllers react within it)."""
_VIRTUAL_STEP_S: Final = 0.5
_GRACE_ADMIN_S: Final = 10.0
"""Wall seconds to wait past a deadline on a realtime server whose speed the suite knows."""
_GRACE_WALL_S: Final = 30.0
"""... and on a server without an admin clock (its controllers may lag)."""


@dataclass(frozen=True)
class ClockMark:
    """A moment as the suite saw it: the wall clock, and the server's own clock if it can read it."""

    wall: float
    server: float | None


@dataclass
class ServerClock:
    """How server time passes for the suite (see the module docstring)."""

    api_url: str
    key: str | None
    mode: Literal["virtual", "realtime", "wall"] = "wall"
    speed: float = 1.0
    refused: int | None = None
    """The HTTP status (401/403) with which the server's admin clock refused every key tried:
    the server has one, and on a virtual clock time will not pass without its admin key."""

    @classmethod
    def detect(cls, api_url: str, keys: list[str | None], *, timeout: float = 10.0) -> ServerClock:
        """Ask ``GET /_kruise/clock`` with each key in turn (with none if no key is given);
        the wall clock if none works.

        The admin clock is at the server's root: a trailing ``/kruise/api`` of
        ``api_url`` (the OpenKruise form of the API URL) is dropped.
        """
        api_url = api_url.rstrip("/").removesuffix(KRUISE_PREFIX)
        given = [k for k in keys if k]
        refused: int | None = None
        # No key at all: a server with auth disabled may still offer its clock.
        for key in given or [""]:
            headers = {"X-API-Key": key} if key else {}
            try:
                resp = httpx.get(api_url + CLOCK_PATH, headers=headers, timeout=timeout)
                if resp.status_code in (401, 403):
                    refused = resp.status_code
                body = resp.json() if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                continue
            if not isinstance(body, dict) or body.get("mode") not in ("virtual", "realtime"):
                continue
            speed = body.get("speed", 1.0)
            if not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0:
                speed = 1.0
            return cls(api_url, key, body["mode"], float(speed))
        return cls(api_url, None, refused=refused)

    def describe(self) -> str:
        """``virtual (admin clock)``, ``realtime x20 (admin clock)`` or ``wall clock``.

        A wall clock chosen because the admin clock refused the keys says so: a
        timing check that fails then is the key's doing, not the server's.
        """
        if self.mode == "virtual":
            return "virtual (admin clock)"
        if self.mode == "realtime":
            return f"realtime x{self.speed:g} (admin clock)"
        if self.refused is not None:
            return (
                f"wall clock: GET {CLOCK_PATH} refused the keys given (HTTP {self.refused}); "
                "if the server's clock is virtual, time passes only with its admin key "
                "(--admin-key or KRUISE_ADMIN_KEY, or --kruise-conformance-admin-key under pytest)"
            )
        return "wall clock"

    @property
    def grace(self) -> float:
        """Seconds to keep polling once server time has passed a deadline."""
        if self.mode == "virtual":
            return _GRACE_VIRTUAL_S
        return _GRACE_WALL_S if self.mode == "wall" else _GRACE_ADMIN_S

    def server_seconds(self, wall: float) -> float:
        """At most how many server seconds pass in ``wall`` wall seconds.

        A virtual clock moves only when requests make it (by a few seconds at
        most outside :meth:`advance`); the others move ``speed`` times the wall clock.
        """
        if self.mode == "virtual":
            return max(5.0, wall)
        return wall * self.speed

    def server_now(self) -> float | None:
        """The server's time (POSIX seconds) from ``GET /_kruise/clock``; ``None`` without
        an admin clock or when it does not answer with an RFC 3339 ``now``."""
        if self.mode == "wall":
            return None
        headers = {"X-API-Key": self.key} if self.key else {}
        try:
            resp = httpx.get(self.api_url + CLOCK_PATH, headers=headers, timeout=10)
            now = resp.json().get("now") if resp.status_code == 200 else None
            if not isinstance(now, str):
                return None
            return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    def mark(self) -> ClockMark:
        """Now, to measure later with :meth:`server_seconds_since`."""
        return ClockMark(time.monotonic(), self.server_now())

    def server_seconds_since(self, mark: ClockMark) -> float:
        """At most how many server seconds have passed since ``mark``.

        Read from the server's clock when it can be read: a virtual clock moves
        as far as the requests in between made it (a cold create moves it tens
        of seconds), which no wall-clock bound can tell. Else :meth:`server_seconds`.
        """
        now = self.server_now() if mark.server is not None else None
        if mark.server is not None and now is not None:
            return max(0.0, now - mark.server)
        return self.server_seconds(time.monotonic() - mark.wall)

    def advance(self, seconds: float) -> None:
        """Make ``seconds`` of server time pass: advance a virtual clock, else sleep."""
        if seconds <= 0:
            return
        if self.mode == "virtual":
            resp = httpx.post(
                self.api_url + CLOCK_PATH + "/advance",
                headers={"X-API-Key": self.key or ""},
                json={"seconds": seconds},
                timeout=60,
            )
            if resp.status_code != 200:
                raise RuntimeError(
                    f"POST {CLOCK_PATH}/advance: expected HTTP 200, but saw HTTP "
                    f"{resp.status_code} {resp.text[:200]}"
                )
            return
        time.sleep(seconds / self.speed)

    def wait_for(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Let ``seconds`` of server time pass and poll ``condition`` until it holds.

        Returns as soon as ``condition()`` is true, and ``False`` once the
        grace period after the deadline has passed: a virtual clock is
        advanced to the deadline at once, then in half-second steps for ten
        virtual seconds; otherwise polling starts right away and lasts
        :attr:`grace` wall seconds past the deadline.
        """
        if self.mode == "virtual":
            # Virtual time stands still between requests: step it through the grace period.
            self.advance(seconds)
            for _ in range(int(_GRACE_VIRTUAL_S / _VIRTUAL_STEP_S)):
                if condition():
                    return True
                self.advance(_VIRTUAL_STEP_S)
            return condition()
        deadline = time.monotonic() + seconds / self.speed + self.grace
        while True:
            if condition():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)

"""A sandbox's life through the real SDK: info, timeout, pause, connect, resume, kill."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException, SandboxNotFoundException

from pytest_kruise_agents.backends import Caller, CreateRequest, SandboxView, SimBackend

from .conftest import ALICE, Served, eventually, serve


def test_get_info_describes_the_sandbox(server: Served) -> None:
    sbx = Sandbox.create(template="code-interpreter-v1", timeout=120, **server.sdk())

    info = Sandbox.get_info(sbx.sandbox_id, **server.sdk())

    assert info.sandbox_id == sbx.sandbox_id
    assert info.template_id == "code-interpreter-v1"
    assert info.cpu_count == 2 and info.memory_mb == 2048  # the pool's limits
    assert info.envd_version == "0.6.13"
    assert (info.end_at - info.started_at).total_seconds() == 120


def test_set_timeout_then_advancing_the_clock_kills_the_sandbox(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())

    sbx.set_timeout(60)
    server.advance(59)
    assert sbx.get_info().state.value == "running"
    server.advance(2)

    with pytest.raises(SandboxNotFoundException):
        sbx.get_info()
    assert sbx.kill() is False
    listed = Sandbox.list(**server.sdk()).next_items()
    assert sbx.sandbox_id not in [s.sandbox_id for s in listed]


def test_set_timeout_can_shorten_and_extend(server: Served) -> None:
    sbx = Sandbox.create(template="base", timeout=600, **server.sdk())
    start = sbx.get_info().started_at

    sbx.set_timeout(100)
    short = sbx.get_info().end_at
    sbx.set_timeout(1000)
    long = sbx.get_info().end_at

    assert (short - start).total_seconds() == pytest.approx(100, abs=2)
    assert (long - start).total_seconds() == pytest.approx(1000, abs=2)


def test_timeout_and_connect_bodies_match_keys_whatever_their_case(server: Served) -> None:
    sbx = Sandbox.create(template="base", timeout=600, **server.sdk())
    start = sbx.get_info().started_at

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/timeout", json={"Timeout": 100})
    assert r.status_code == 204, r.text
    assert (sbx.get_info().end_at - start).total_seconds() == pytest.approx(100, abs=2)
    for path in (f"/sandboxes/{sbx.sandbox_id}/connect", f"/v2/sandboxes/{sbx.sandbox_id}/connect"):
        r = server.request("POST", path, json={"TIMEOUT": 1000})
        assert r.status_code == 200, r.text
        assert (sbx.get_info().end_at - start).total_seconds() == pytest.approx(1000, abs=2)


def test_set_timeout_of_a_gone_sandbox_is_not_found(server: Served) -> None:
    with pytest.raises(SandboxNotFoundException):
        Sandbox.set_timeout("default--base-nosuch", 60, **server.sdk())


def test_auto_pause_at_the_timeout_then_connect_resumes(server: Served) -> None:
    sbx = Sandbox.create(
        template="base", timeout=60, lifecycle={"on_timeout": "pause"}, **server.sdk()
    )

    server.advance(61)
    assert sbx.get_info().state.value == "paused"
    assert not sbx.is_running()

    resumed = Sandbox.connect(sbx.sandbox_id, **server.sdk())

    assert resumed.sandbox_id == sbx.sandbox_id
    info = resumed.get_info()
    assert info.state.value == "running"
    # Resuming floors the timeout at 300 s (the manager's min resume timeout).
    assert (info.end_at - server.backend.now()).total_seconds() >= 299


def test_connect_answers_201_when_resuming_and_200_when_running(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())
    path = f"/v2/sandboxes/{sbx.sandbox_id}/connect"

    running = server.request("POST", path, json={"timeout": 60})
    sbx.pause()
    resumed = server.request("POST", path, json={})

    assert running.status_code == 200, running.text
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["sandboxID"] == sbx.sandbox_id
    assert resumed.json()["envdAccessToken"]


def test_connect_on_a_running_sandbox_only_extends(server: Served) -> None:
    sbx = Sandbox.create(template="base", timeout=600, **server.sdk())
    end = sbx.get_info().end_at

    Sandbox.connect(sbx.sandbox_id, timeout=60, **server.sdk())
    assert sbx.get_info().end_at == end
    Sandbox.connect(sbx.sandbox_id, timeout=3600, **server.sdk())
    assert sbx.get_info().end_at > end


def test_the_v1_connect_route_needs_a_timeout(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())
    path = f"/sandboxes/{sbx.sandbox_id}/connect"

    assert server.request("POST", path, json={"timeout": 300}).status_code == 200
    missing = server.request("POST", path, json={})
    assert missing.status_code == 400
    assert missing.json()["message"].startswith("timeout: ")


def test_pausing_a_paused_sandbox_answers_204_and_changes_nothing(server: Served) -> None:
    """Reference §6.5: a paused sandbox is pausable, so the SDK's ``pause()`` returns True
    again (E2B answers 409, for which it returns False); the sandbox keeps its end."""
    sbx = Sandbox.create(template="base", **server.sdk())

    assert sbx.pause() is True
    end = sbx.get_info().end_at
    server.advance(30)
    assert sbx.pause() is True
    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/pause", json={})
    assert r.status_code == 204, r.text
    info = sbx.get_info()
    assert info.state.value == "paused" and info.end_at == end


def test_a_second_pause_sent_while_the_first_waits_waits_for_it_too(tmp_path: Path) -> None:
    """Two SDK pauses of one sandbox, the second sent while the first still waits for the
    pod to stop: both return True, the second only once the sandbox is paused."""
    backend = SimBackend.default(seed=8, replicas=1, clock="realtime")
    thread, served = serve(tmp_path, backend=backend)
    try:
        sbx = Sandbox.create(template="base", **served.sdk())
        name = sbx.sandbox_id.split("--", 1)[1]

        def pause() -> bool:
            paused = Sandbox.pause(sbx.sandbox_id, **served.sdk())
            stored = backend.get("Sandbox", name)
            conds = {c["type"]: c["status"] for c in stored.to_dict()["status"]["conditions"]}
            return paused and conds.get("SandboxPaused") == "True"

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(pause)
            eventually(
                lambda: backend.get("Sandbox", name).to_dict()["spec"].get("paused") is True,
                "the first pause wrote spec.paused",
            )
            assert not first.done()
            second = pool.submit(pause)
            assert first.result(60) is True
            assert second.result(60) is True
        assert sbx.get_info().state.value == "paused"
    finally:
        thread.stop()
        backend.close()


def test_a_paused_sandbox_keeps_its_timeout_until_it_is_resumed(server: Served) -> None:
    sbx = Sandbox.create(template="base", timeout=60, **server.sdk())
    sbx.pause()

    server.advance(120)

    assert sbx.get_info().state.value == "paused"  # paused retention is forever


def test_the_deprecated_resume_route_answers_204(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/resume", json={"timeout": 300})

    assert r.status_code == 204, r.text
    assert sbx.get_info().state.value == "running"


@pytest.mark.parametrize(
    ("body", "lasts"),
    [
        (None, 300),
        ({}, 300),
        ({"timeout": None}, 300),
        ({"timeout": 0}, 300),
        ({"timeout": 900}, 900),
    ],
    ids=["no-body", "empty", "null", "zero", "900"],
)
def test_resume_takes_a_zero_timeout_as_none_given(
    server: Served, body: dict[str, Any] | None, lasts: int
) -> None:
    """Go's decoder cannot tell ``0`` from absent: both resume for the default 300 s."""
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/resume", json=body)

    assert r.status_code == 204, r.text
    info = sbx.get_info()
    assert info.state.value == "running"
    assert (info.end_at - server.backend.now()).total_seconds() == pytest.approx(lasts, abs=2)


def test_resume_floors_a_short_timeout_at_the_min_resume_timeout(server: Served) -> None:
    """docs/fidelity.md: a ``/resume`` timeout under 300 s is floored at
    ``--e2b-min-resume-timeout`` (300 s) when the resume is written, as connect's is; the
    short timeout that follows never shortens it (ExtendOnly), so the sandbox lives about
    300 s, less the few seconds its pod took to start again."""
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()
    asked = server.backend.now()

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/resume", json={"timeout": 5})

    assert r.status_code == 204, r.text
    info = sbx.get_info()
    assert info.state.value == "running"
    assert 290 < (info.end_at - asked).total_seconds() <= 300 + 1


@pytest.mark.parametrize("timeout", [-3, 2_592_001, 99_999_999])
def test_resume_with_a_timeout_out_of_range_is_a_500_naming_it(
    server: Served, timeout: int
) -> None:
    """A body error on ``/resume`` answers 500, as a parse error does upstream (§6.5)."""
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/resume", json={"timeout": timeout})

    assert r.status_code == 500, r.text
    assert r.json()["field"] == "timeout"
    assert r.json()["message"] == (f"timeout: must be between 1 and 2592000 seconds, got {timeout}")
    assert sbx.get_info().state.value == "paused"  # nothing resumed


def test_a_bad_pause_retention_header_is_a_400_naming_it(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())

    r = server.request(
        "POST",
        f"/sandboxes/{sbx.sandbox_id}/pause",
        json={},
        headers={"x-e2b-kruise-reserve-paused-sandbox-duration": "a while"},
    )

    assert r.status_code == 400
    assert r.json()["message"].startswith("x-e2b-kruise-reserve-paused-sandbox-duration")
    assert sbx.get_info().state.value == "running"


def test_kill_returns_true_then_false(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())

    assert sbx.kill() is True
    assert Sandbox.kill(sbx.sandbox_id, **server.sdk()) is False
    with pytest.raises(SandboxNotFoundException):
        sbx.get_info()


def test_kill_answers_204(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())

    r = server.request("DELETE", f"/sandboxes/{sbx.sandbox_id}")

    assert r.status_code == 204
    assert r.content == b""


def test_a_timeout_of_an_expired_sandbox_is_not_a_success(server: Served) -> None:
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()

    # Upstream: the sandbox must be running; any error but 404 answers 500.
    with pytest.raises(SandboxException) as info:
        sbx.set_timeout(60)
    assert str(info.value).startswith("500: ")


REALTIME_SPEED = 20.0
"""Virtual seconds per wall second of the realtime test: a 30 s timeout lasts 1.5 wall seconds."""


def test_in_realtime_mode_the_timeout_fires_on_the_wall_clock(tmp_path: Path) -> None:
    """A 30 s timeout at speed 20 ends the sandbox about 1.5 wall seconds after the create.

    Bounded from both sides on the wall clock, loosely enough for a loaded machine:
    it is gone no sooner than half its wall lifetime after the create was sent (a
    claim may start on a clock a driver tick behind the wall), and well before the
    30 wall seconds a timeout ignoring the speed would take. A slow client only
    moves its observations later, which neither bound can fail on; a sandbox
    already gone at the first look is fine as long as that look came late enough.
    """
    timeout = 30
    lifetime = timeout / REALTIME_SPEED
    backend = SimBackend.default(seed=8, replicas=1, clock="realtime", speed=REALTIME_SPEED)
    thread, served = serve(tmp_path, backend=backend)
    try:
        sent = time.monotonic()
        sbx = Sandbox.create(template="base", timeout=timeout, **served.sdk())
        while _alive(sbx):
            alive = time.monotonic() - sent
            assert alive < 20, f"alive {alive:.1f} s after the create, lifetime {lifetime} s"
            time.sleep(0.05)
        gone = time.monotonic() - sent
        # Seen gone only after the timeout fired: no sooner than the lifetime allows.
        assert gone >= lifetime / 2, f"gone {gone:.2f} s after the create, lifetime {lifetime} s"
    finally:
        thread.stop()
        backend.close()


def _alive(sbx: Sandbox) -> bool:
    try:
        sbx.get_info()
    except SandboxNotFoundException:
        return False
    return True


@pytest.mark.parametrize("clock", ["realtime", "virtual"])
def test_a_connect_whose_client_gives_up_stops_waiting(
    tmp_path: Path, clock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume is written, the sandbox cannot start; the client leaving ends the wait.

    Without the cancel the connect would wait its 10 minutes for a sandbox
    that never runs (its container keeps failing), holding a worker thread.
    The client sends the SDK's connect (``POST /v2/sandboxes/{id}/connect``,
    ``{}``) and closes its connection, as the SDK's ``request_timeout`` does,
    once the server is seen waiting: on the realtime clock once the resume is
    written, on the virtual one once the server has passed the connect on to
    the backend, whose model the test holds (so nothing is written). Whatever
    the machine's load, the client leaves while the connect waits.
    """
    backend = SimBackend.default(seed=4, replicas=2, clock=clock)  # type: ignore[arg-type]
    alice = Caller("default", "alice")
    view = backend.create_sandbox(alice, CreateRequest("base", timeout=3600))
    backend.pause(alice, view.sandbox_id)
    backend.inject("pod_start_failure")
    passed_on = threading.Event()
    connect = backend.connect

    def connect_seen(
        caller: Caller, sandbox_id: str, timeout: int | None
    ) -> tuple[SandboxView, bool]:
        passed_on.set()  # the server's worker calls it; the real connect runs
        return connect(caller, sandbox_id, timeout)

    monkeypatch.setattr(backend, "connect", connect_seen)

    def resumed() -> bool:
        with backend.locked() as cluster:
            return bool(cluster.log.of_kind("manager.resume"))

    thread, served = serve(tmp_path, backend=backend)
    host, port = served.url.removeprefix("http://").split(":")
    request = (
        f"POST /v2/sandboxes/{view.sandbox_id}/connect HTTP/1.1\r\nHost: {host}\r\n"
        f"X-API-Key: {ALICE}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    ).encode()
    try:
        with contextlib.ExitStack() as stack:
            if clock == "virtual":
                stack.enter_context(backend.locked())
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(request)
                if clock == "virtual":
                    assert passed_on.wait(timeout=30), "the server never passed the connect on"
                else:
                    eventually(resumed, "the connect writes the resume", within=30)
            # The connection closed, the server's loop notices it.
            eventually(lambda: thread.connections == 0, "the server sees the client go")
            if clock == "virtual":
                assert served.request("GET", "/health").status_code == 200  # a turn of its loop
        with backend.locked() as cluster:
            started = cluster.now

        def canceled() -> bool:
            with backend.locked() as cluster:
                return bool(cluster.log.of_kind("manager.canceled"))

        eventually(canceled, "the connect is cancelled", within=30)
        with backend.locked() as cluster:
            (event,) = cluster.log.of_kind("manager.canceled")
            assert event.detail == f"connect {view.sandbox_id}"
            # Virtual: the model was held until the client left, so nothing was written.
            assert bool(cluster.log.of_kind("manager.resume")) == (clock == "realtime")
            assert cluster.now - started < 60  # not the 600 s wait
    finally:
        thread.stop()
        backend.close()


def test_a_connect_at_the_instant_of_a_sandbox_end_is_shown_alike_by_get_info_and_list(
    server: Served,
) -> None:
    """A connect exactly at a sandbox's end may extend it while the Sandbox controller,
    deciding on a copy without that write, deletes it (upstream's race). The answer comes once
    the manager's cache has the deletion too: ``get_info`` and the list agree, not ``get_info``
    showing the sandbox running with its new end while the list leaves it out (the fourth
    sandbox here, on this seed)."""
    for i in range(4):
        sbx = Sandbox.create(template="base", timeout=(30, 60, 300, 600)[i], **server.sdk())
        end = sbx.get_info().end_at
        server.advance((end - server.backend.now()).total_seconds())
        with contextlib.suppress(SandboxNotFoundException):
            Sandbox.connect(sbx.sandbox_id, timeout=(None, 30, 600)[i % 3], **server.sdk())
        try:
            sbx.get_info()
            described = True
        except SandboxNotFoundException:
            described = False
        listed = [s.sandbox_id for s in Sandbox.list(**server.sdk()).next_items()]
        assert described == (sbx.sandbox_id in listed), i
        Sandbox.kill(sbx.sandbox_id, **server.sdk())
        server.advance(7)

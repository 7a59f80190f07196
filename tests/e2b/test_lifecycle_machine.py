"""A sandbox's lifecycle interleaved with envd use, as a Hypothesis state machine.

The rules make real SDK calls (``e2b``) over HTTP on 127.0.0.1 against one
server on the virtual clock: create (template, timeout, metadata, auto-pause),
kill, pause, connect, set_timeout, get_info, list (state and metadata queries,
every page), is_running, files and commands on a running sandbox, and moves of
the clock by drawn amounts, to just before, exactly onto and just past a
sandbox's end. A small model (each sandbox's state, end and files) is checked
after every rule: the SDK raises only the exception the docs name, describe,
list and ``is_running`` agree with the model and with each other, files
survive a pause, a sandbox gone stays gone, and the server logs no error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from e2b import Sandbox, SandboxQuery, SandboxState
from e2b.exceptions import (
    FileNotFoundException,
    SandboxException,
    SandboxNotFoundException,
)
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.machines import machine_settings

from .conftest import ALICE, LogErrors, Served, serve_logged

TEMPLATES = ("base", "code-interpreter-v1")
DIR = "/home/user/m"
MIN_RESUME_S = 300  # the manager's --e2b-min-resume-timeout
LAG = timedelta(seconds=1)
"""How long past its end the controller may not have acted yet: a sandbox may still show
running past its pauseTime, a kill may still find the route of one past its shutdownTime.
Its timer, its write and the watch that brings it to the manager take tens of milliseconds."""


# What a create draws (its initialize rule too).
TEMPLATE = st.sampled_from(TEMPLATES)
TIMEOUT = st.sampled_from([30, 31, 60, 299, 300, 600])
METADATA = st.dictionaries(
    st.sampled_from(["team", "job"]), st.sampled_from(["a", "b"]), max_size=2
)


@dataclass
class Box:
    """The model of one sandbox."""

    sid: str
    handle: Sandbox
    template: str
    metadata: dict[str, str]
    auto_pause: bool
    state: str  # "running", "paused" or "gone"
    end: datetime  # endAt while running
    files: dict[str, str] = field(default_factory=dict)
    dir_made: bool = False
    sleepers: set[int] = field(default_factory=lambda: {0})
    """How many background commands it may run: those started in its current life (a
    connect at the edge of an auto-pause may or may not have paused and resumed it)."""
    unsure_until: datetime | None = None
    """Until then the controller may still end it (paused or gone) at its old end: a write
    at the edge extended it while the controller decided on a copy without that write."""
    timed_out: bool = False  # gone at its end, not by a kill

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "state" and value != "running":
            # A pause or stop kills its commands; a resumed sandbox starts with none.
            object.__setattr__(self, "sleepers", {0})
        object.__setattr__(self, name, value)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class LifecycleMachine(RuleBasedStateMachine):
    """One example: sandboxes of team ``default`` (key alice) driven through the SDK."""

    served: ClassVar[Served]
    log: ClassVar[LogErrors]

    sandboxes = Bundle("sandboxes")

    def __init__(self) -> None:
        super().__init__()
        self.boxes: dict[str, Box] = {}
        self.gone: set[str] = set()

    # -- helpers ----------------------------------------------------------------------------

    @property
    def sdk(self) -> dict[str, Any]:
        return self.served.sdk(ALICE)

    def now(self) -> datetime:
        r = self.served.admin("GET", "/clock")
        assert r.status_code == 200, r.text
        return _parse(r.json()["now"])

    def live(self) -> list[Box]:
        return [b for b in self.boxes.values() if b.state != "gone"]

    def settle(self) -> None:
        """Move the model's states past the ends the clock has passed."""
        now = self.now()
        for box in self.live():
            if box.unsure_until is not None and box.state == "running":
                self.adopt(box)
                if now > box.unsure_until:
                    box.unsure_until = None
        for box in self.live():
            if box.state != "running" or now < box.end:
                continue
            if box.auto_pause and now - box.end > LAG:
                box.state = "paused"
                continue
            if not box.auto_pause and now > box.end:
                box.state = "gone"  # describe hides it from then on (derived state: dead)
                box.timed_out = True
                continue
            # Exactly at its end, or an auto-pause the controller may not have written yet:
            # either answer is right. Take describe's, then hold the rest to it.
            try:
                info = Sandbox.get_info(box.sid, **self.sdk)
            except SandboxNotFoundException:
                assert not box.auto_pause, f"{box.sid}: auto-pause at its end went away"
                box.state = "gone"
                box.timed_out = True
            else:
                box.state = info.state.value

    def adopt(self, box: Box) -> None:
        """Take describe's answer for a sandbox the controller may have ended at its old end."""
        try:
            info = Sandbox.get_info(box.sid, **self.sdk)
        except SandboxNotFoundException:
            box.state, box.timed_out = "gone", True
            return
        assert info.state.value != "paused" or box.auto_pause, (box.sid, "paused by itself")
        box.state = info.state.value

    def begin(self, sid: str) -> tuple[Box, bool]:
        """The sandbox, settled, and whether it is at the edge of its end.

        At the edge (running, its end less than :data:`LAG` away or reached, describe
        still showing it) a call that takes model time may cross the end: the controller's pause or the
        end itself lands while it runs, and the call's answer is that of a sandbox
        paused or gone. :meth:`crossed` checks that it really did.
        """
        self.settle()
        box = self.boxes[sid]
        unsure = box.unsure_until is not None
        return box, box.state == "running" and (unsure or self.now() >= box.end - LAG)

    def found_gone(self, box: Box, edge: bool) -> None:
        """After a call refused as for a gone sandbox: at the edge of its end, describe must
        agree; anywhere else it must have been gone already."""
        if edge:
            self.crossed(box, "gone")
        else:
            assert box.state == "gone", (box.sid, box.state)

    def crossed(self, box: Box, *states: str) -> None:
        """After a call at the edge answered as if the sandbox were in ``states``:
        describe must now show one of them."""
        try:
            info = Sandbox.get_info(box.sid, **self.sdk)
        except SandboxNotFoundException:
            box.state = "gone"
            box.timed_out = True
        else:
            box.state = info.state.value
        if box.state == "running" and box.unsure_until is not None:
            # The call read the API server's copy, which the controller ended; describe
            # reads the manager's cache, which has that within the watch lag.
            assert self.now() <= box.unsure_until, (box.sid, "never ended", states)
            return
        if box.state == "running" and box.auto_pause and "paused" in states:
            # The call read the API server's copy, paused by the controller; describe reads
            # the manager's cache, which has that write within the watch lag.
            assert self.now() <= box.end + LAG, (box.sid, "still running past its pause")
            return
        assert box.state in states, (box.sid, "answered as", states, "but is", box.state)

    # -- rules: the control plane -----------------------------------------------------------

    @initialize(
        target=sandboxes,
        template=TEMPLATE,
        timeout=TIMEOUT,
        metadata=METADATA,
        auto_pause=st.booleans(),
    )
    def start(self, template: str, timeout: int, metadata: dict[str, str], auto_pause: bool) -> Any:
        # One sandbox from the start: rules that need one are enabled in every example.
        self.log.records.clear()
        return self.create(
            template=template, timeout=timeout, metadata=metadata, auto_pause=auto_pause
        )

    # What rules are enabled and what they draw must not depend on the server's answers
    # (Hypothesis replays examples against a server whose history has moved on).
    @precondition(lambda self: len(self.boxes) < 6)
    @rule(
        target=sandboxes,
        template=TEMPLATE,
        timeout=TIMEOUT,
        metadata=METADATA,
        auto_pause=st.booleans(),
    )
    def create(
        self, template: str, timeout: int, metadata: dict[str, str], auto_pause: bool
    ) -> Any:
        before = self.now()
        kwargs: dict[str, Any] = {}
        if auto_pause:
            kwargs["lifecycle"] = {"on_timeout": "pause"}
        sbx = Sandbox.create(
            template=template, timeout=timeout, metadata=metadata, **kwargs, **self.sdk
        )
        info = sbx.get_info()
        assert info.state is SandboxState.RUNNING
        assert info.template_id == template
        assert (info.end_at - info.started_at).total_seconds() == timeout
        assert info.started_at <= self.now()
        assert info.started_at >= before.replace(microsecond=0)
        for k, v in metadata.items():
            assert info.metadata.get(k) == v, info.metadata
        box = Box(
            sid=sbx.sandbox_id,
            handle=sbx,
            template=template,
            metadata=dict(metadata),
            auto_pause=auto_pause,
            state="running",
            end=info.end_at,
        )
        assert box.sid not in self.boxes
        self.boxes[box.sid] = box
        self.settle()
        return box.sid

    @rule(sid=sandboxes)
    def kill(self, sid: str) -> None:
        box, edge = self.begin(sid)
        killed = Sandbox.kill(sid, **self.sdk)
        if edge and not killed:
            self.crossed(box, "gone")
        if killed and box.timed_out and self.now() - box.end <= LAG:
            # Past its end but not yet deleted by the controller: its route is still known,
            # and a kill of a known route whose sandbox is not viewable answers 204 (§6.2).
            pass
        else:
            assert killed is (box.state != "gone"), (sid, box.state)
        box.timed_out = False
        box.state = "gone"  # its id stays drawn: calls on a gone sandbox are rules too

    @rule(sid=sandboxes, beta=st.booleans())
    def pause(self, sid: str, beta: bool) -> None:
        box, edge = self.begin(sid)
        try:
            paused = box.handle.beta_pause() if beta else box.handle.pause()
        except SandboxNotFoundException:
            self.found_gone(box, edge)
            return
        assert box.state != "gone", f"{sid} paused after it was gone"
        assert paused is True  # upstream's 204 for an already paused one too
        box.state = "paused"

    @rule(sid=sandboxes, timeout=st.one_of(st.none(), st.sampled_from([1, 30, 299, 300, 301, 900])))
    def connect(self, sid: str, timeout: int | None) -> None:
        box, edge = self.begin(sid)
        before = self.now()
        try:
            sbx = Sandbox.connect(sid, timeout=timeout, **self.sdk)
        except SandboxNotFoundException:
            self.found_gone(box, edge)
            return
        assert box.state != "gone", f"{sid} connected after it was gone"
        seconds = 300 if timeout is None else timeout
        after = self.now()
        info = sbx.get_info()
        assert info.state is SandboxState.RUNNING
        start = before.replace(microsecond=0)
        floor = max(seconds, MIN_RESUME_S)
        resumed = (
            start + timedelta(seconds=floor) <= info.end_at <= after + timedelta(seconds=floor)
        )
        extended = info.end_at == box.end or (
            info.end_at > box.end
            and start + timedelta(seconds=seconds)
            <= info.end_at
            <= after + timedelta(seconds=seconds)
        )
        if box.state == "paused":
            assert resumed, (sid, before, after, info.end_at, floor)
        elif edge and box.auto_pause:
            # Its pause may land while the connect runs, which then resumes it.
            assert resumed or extended, (sid, before, after, box.end, info.end_at)
        else:
            assert extended, (sid, "connect may only extend", before, after, box.end, info.end_at)
        if box.state == "running" and edge:
            box.unsure_until = after + LAG
            if box.auto_pause and resumed:
                box.sleepers |= {0}  # paused at its end while the connect ran, then resumed
        elif box.state == "paused":
            box.sleepers = {0}
        box.end = info.end_at
        box.state = "running"
        box.handle = sbx

    @rule(sid=sandboxes, timeout=st.sampled_from([1, 2, 30, 120, 600]))
    def set_timeout(self, sid: str, timeout: int) -> None:
        box, edge = self.begin(sid)
        before = self.now()
        try:
            Sandbox.set_timeout(sid, timeout, **self.sdk)
        except SandboxNotFoundException:
            self.found_gone(box, edge)
            return
        except SandboxException as err:
            # docs/server.md: 500 for a paused one (upstream's "to follow E2B spec").
            assert "500" in str(err), (sid, err)
            if edge:
                self.crossed(box, "paused")
            else:
                assert box.state == "paused", (sid, box.state, err)
            return
        assert box.state == "running", (sid, box.state)
        after = self.now()
        lo = before.replace(microsecond=0) + timedelta(seconds=timeout)
        try:
            info = Sandbox.get_info(sid, **self.sdk)
        except SandboxNotFoundException:
            # A short timeout (cut to whole seconds) can end while the call waits for the
            # manager's cache to see its write.
            assert not box.auto_pause and after >= lo, (sid, before, after, timeout)
            box.state, box.timed_out = "gone", True
            return
        assert lo <= info.end_at <= after + timedelta(seconds=timeout), (sid, info.end_at)
        box.end = info.end_at
        if edge:
            box.unsure_until = after + LAG
        if info.state is SandboxState.PAUSED:
            assert box.auto_pause and after >= lo, (sid, before, after, timeout)
            box.state = "paused"

    @rule(seconds=st.sampled_from([0, 0.5, 1, 5, 29, 60, 301]))
    def advance(self, seconds: float) -> None:
        self.served.advance(seconds)
        self.settle()

    @rule(sid=sandboxes, offset=st.sampled_from([-1, 0, 0, 1]))
    def advance_to_an_end(self, sid: str, offset: int) -> None:
        box, _ = self.begin(sid)
        if box.state != "running":
            return  # only a running sandbox has an end to move to
        step = (box.end - self.now()).total_seconds() + offset
        if step >= 0:
            self.served.advance(step)
        self.settle()

    # -- rules: envd ------------------------------------------------------------------------

    @rule(
        sid=sandboxes,
        name=st.sampled_from(["a.txt", "b.txt"]),
        text=st.sampled_from(["", "x", "hello\nworld\n"]),
    )
    def write(self, sid: str, name: str, text: str) -> None:
        box = self.boxes[sid]
        self.settle()
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.files.write(f"{DIR}/{name}", text))
            return
        box.handle.files.write(f"{DIR}/{name}", text)
        box.files[name] = text
        box.dir_made = True

    @rule(sid=sandboxes, name=st.sampled_from(["a.txt", "b.txt"]))
    def read(self, sid: str, name: str) -> None:
        box = self.boxes[sid]
        self.settle()
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.files.read(f"{DIR}/{name}"))
            return
        if name in box.files:
            assert box.handle.files.read(f"{DIR}/{name}") == box.files[name]
        else:
            with pytest.raises(FileNotFoundException):
                box.handle.files.read(f"{DIR}/{name}")

    @rule(sid=sandboxes, name=st.sampled_from(["a.txt", "b.txt"]))
    def remove(self, sid: str, name: str) -> None:
        box = self.boxes[sid]
        self.settle()
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.files.remove(f"{DIR}/{name}"))
            return
        # A path that does not exist is removed without a word (envd's os.RemoveAll).
        box.handle.files.remove(f"{DIR}/{name}")
        box.files.pop(name, None)

    @rule(sid=sandboxes)
    def list_files(self, sid: str) -> None:
        box = self.boxes[sid]
        self.settle()
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.files.list(DIR))
            return
        if not box.dir_made:
            with pytest.raises(FileNotFoundException):
                box.handle.files.list(DIR)
            return
        names = sorted(e.name for e in box.handle.files.list(DIR))
        assert names == sorted(box.files), (sid, names, box.files)

    @rule(sid=sandboxes, name=st.sampled_from(["a.txt", "b.txt"]))
    def run_command(self, sid: str, name: str) -> None:
        box = self.boxes[sid]
        self.settle()
        # Absolute paths in command text are the host's (docs/fidelity.md): go by $HOME.
        cmd = f'cat "$HOME/m/{name}" 2>/dev/null; echo end:$?'
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.commands.run(cmd))
            return
        result = box.handle.commands.run(cmd)
        assert result.exit_code == 0, result
        want = f"{box.files[name]}end:0\n" if name in box.files else "end:1\n"
        assert result.stdout == want, (sid, result.stdout, want)

    @rule(sid=sandboxes)
    def start_sleeper(self, sid: str) -> None:
        box, _ = self.begin(sid)
        if box.state != "running":
            self.expect_not_running(
                box, lambda: box.handle.commands.run("sleep 600", background=True)
            )
            return
        # timeout=0: no deadline, the stop of its sandbox ends it.
        handle = box.handle.commands.run("sleep 600", background=True, timeout=0)
        handle.disconnect()
        box.sleepers = {n + 1 for n in box.sleepers}

    @rule(sid=sandboxes)
    def processes(self, sid: str) -> None:
        box, _ = self.begin(sid)
        if box.state != "running":
            self.expect_not_running(box, lambda: box.handle.commands.list())
            return
        listed = box.handle.commands.list()
        assert len(listed) in box.sleepers, (sid, listed, box.sleepers)
        box.sleepers = {len(listed)}

    def expect_not_running(self, box: Box, call: Any) -> None:
        """envd use of a paused or gone sandbox: the SDK's not-found family, nothing else."""
        with pytest.raises(SandboxException) as caught:
            call()
        assert (
            "not found" in str(caught.value).lower() or "not running" in str(caught.value).lower()
        ), (box.sid, box.state, type(caught.value), caught.value)

    # -- rules: reads -----------------------------------------------------------------------

    @rule(sid=sandboxes)
    def get_info(self, sid: str) -> None:
        self.settle()
        self.check_one(self.boxes[sid])

    @rule(sid=sandboxes)
    def is_running(self, sid: str) -> None:
        box = self.boxes[sid]
        self.settle()
        assert box.handle.is_running() is (box.state == "running"), (sid, box.state)

    @rule(
        states=st.sampled_from([None, ["running"], ["paused"], ["running", "paused"]]),
        metadata=st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["team", "job"]), st.sampled_from(["a", "b"]), min_size=1
            ),
        ),
        limit=st.sampled_from([None, 1, 2, 100]),
    )
    def list_sandboxes(
        self, states: list[str] | None, metadata: dict[str, str] | None, limit: int | None
    ) -> None:
        self.settle()
        query = SandboxQuery(
            state=None if states is None else [SandboxState(s) for s in states],
            metadata=metadata,
        )
        pager = Sandbox.list(query=query, limit=limit, **self.sdk)
        seen: list[Any] = []
        while pager.has_next:
            items = pager.next_items()
            assert limit is None or len(items) <= limit
            seen.extend(items)
        ids = [s.sandbox_id for s in seen]
        assert len(ids) == len(set(ids)), ids
        want_states = set(states or ["running", "paused"])
        want = {
            b.sid
            for b in self.live()
            if b.state in want_states
            and all(b.metadata.get(k) == v for k, v in (metadata or {}).items())
        }
        assert set(ids) == want, (set(ids) ^ want, states, metadata)
        for item in seen:
            box = self.boxes[item.sandbox_id]
            assert item.state.value == box.state, (box.sid, item.state, box.state)
            if box.state == "running":
                assert item.end_at == box.end, (box.sid, item.end_at, box.end)

    # -- checks after every rule -----------------------------------------------------------

    def check_one(self, box: Box) -> None:
        try:
            info = Sandbox.get_info(box.sid, **self.sdk)
        except SandboxNotFoundException:
            assert box.state == "gone", (box.sid, box.state, "describe says gone")
            return
        assert box.state != "gone", (box.sid, "describe shows a gone sandbox", info.state)
        assert info.state.value == box.state, (box.sid, info.state, box.state)
        if box.state == "running":
            assert info.end_at == box.end, (box.sid, info.end_at, box.end)

    @invariant()
    def agrees(self) -> None:
        if not self.boxes:
            return
        self.settle()
        for box in self.boxes.values():
            self.check_one(box)
        listed = {s.sandbox_id: s.state.value for s in Sandbox.list(**self.sdk).next_items()}
        assert listed == {b.sid: b.state for b in self.live()}, listed

    @invariant()
    def no_server_error(self) -> None:
        bad = [
            f"{r.name}: {r.getMessage()}"
            + (f"\n{logging.Formatter().formatException(r.exc_info)}" if r.exc_info else "")
            for r in self.log.records
        ]
        assert bad == [], "\n".join(bad)

    def teardown(self) -> None:
        for box in self.live():
            Sandbox.kill(box.sid, **self.sdk)
        for left in Sandbox.list(**self.sdk).next_items():
            Sandbox.kill(left.sandbox_id, **self.sdk)


@pytest.fixture
def machine_server(tmp_path: Path) -> Iterator[Served]:
    """One server for all the examples, with every warning it logs kept."""
    with serve_logged(tmp_path) as (served, log):
        LifecycleMachine.served = served
        LifecycleMachine.log = log
        yield served


def test_lifecycle_calls_interleaved_with_envd_use_agree_with_the_model(
    machine_server: Served,
) -> None:
    run_state_machine_as_test(
        LifecycleMachine,
        # No shrinking: each step is a real call (a shrink ran past 5 minutes); a failure
        # is reported with the steps of the example as it ran.
        settings=machine_settings(10, 20, shrink=False),
    )

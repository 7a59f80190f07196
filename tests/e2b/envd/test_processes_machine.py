"""envd's process API, as a Hypothesis state machine checked against a model of the processes.

The rules make real SDK calls (``e2b.Sandbox.commands`` and ``.pty``) over HTTP
on 127.0.0.1 against the fake envd, each example in a sandbox of its own, and
the commands are real host processes:

- start a background command that waits on its stdin: ``cat`` (echoes what it
  gets, ends with exit 0 when its stdin is closed), ``cat; sleep 600`` (runs on
  after: input to it is refused, ``failed_precondition``), ``read line; echo got:$line``
  (ends by itself once a whole line came, in one chunk or several), or ``sleep 600``
  started without stdin, each with its own env vars (a ``TAG``) and ``cwd`` (an
  empty one too); several at once too, up to :data:`BOUND` running;
- start a terminal (``pty.create``), type ``stty size`` into it (its output shows
  the size the model holds), resize it, ``exit`` it;
- ``commands.send_stdin`` (a handle's too, and ``stream_input``) and ``close_stdin``,
  ``pty.send_stdin`` and ``pty.stream_input``, ``commands.kill``/``pty.kill``/``handle.kill``,
  ``commands.connect``/``pty.connect`` (later output only) and ``disconnect``, on a running pid,
  an ended one or one that never was;
- run a command that ends by itself (``echo hi``; ``exit 3``), in the foreground
  or in the background and waited.

The model maps each running pid to its kind, the config ``commands.list()``
reports (``cmd``, ``args``, ``envs``, ``cwd``, ``tag``) and the handles attached
to it with the output each must have got. Every input that makes output is
followed by reading each handle until that output came, and every process a
rule ends is waited for through each of its handles (the exit code, the error
and the whole output are the model's), so the model stays exact: after each
step ``commands.list()`` is the running set. The answers to calls of the wrong
kind follow docs/server.md (``stdin`` input to a terminal and ``pty`` input to a
command: ``internal``; ``close_stdin`` of a terminal and ``resize`` of a command:
``failed_precondition``; input to a command without stdin or whose stdin was closed:
``failed_precondition``, docs/fidelity.md); a pid that runs no process is ``not_found`` everywhere, which
``kill`` answers ``False``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from e2b import CommandExitException, CommandHandle, NotFoundException, Sandbox, SandboxException
from e2b.exceptions import InvalidArgumentException
from e2b.sandbox.commands.command_handle import PtySize
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.e2b.envd.conftest import Envd
from tests.machines import machine_settings

Kind = Literal["cat", "drain", "reader", "sleep", "pty"]
SCRIPTS: dict[Kind, str] = {
    "cat": "cat",
    "drain": "cat; sleep 600",
    "reader": "read line; echo got:$line",
    "sleep": "sleep 600",
}
PTY_ARGS = ["-i", "-l"]
PTY_ENVS = {"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
BOUND = 10
"""The most processes the model keeps running at once."""
NEVER = 2**31 - 7
"""A pid no process has (above any ``pid_max``)."""

CWDS = st.sampled_from([None, "", "/tmp", "/home/user", "~"])
"""``""`` is sent as is (the field set, empty): envd runs it in the home and lists it so."""
TAGS = st.sampled_from([None, "a", "b"])
CHUNKS = st.sampled_from(["", "x", "hello\n", "a b", "\n", "ünï\n"])
SIZES = st.builds(PtySize, rows=st.sampled_from([5, 24, 40]), cols=st.sampled_from([20, 80, 132]))

Info = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], str | None, str | None]
"""A process as ``commands.list()`` reports it: cmd, args, envs (sorted), cwd, tag."""
Outcome = tuple[str, Any]


def outcome(call: Callable[[], Any]) -> Outcome:
    """Run an SDK call: ``("ok", value)`` or the kind of error it raised."""
    try:
        return "ok", call()
    except NotFoundException as exc:
        return "not_found", exc
    except InvalidArgumentException as exc:
        return "invalid", exc
    except SandboxException as exc:
        assert type(exc) is SandboxException, repr(exc)
        code = str(exc).split(":", 1)[0].removeprefix("Code.").lower()
        return code, exc


@dataclass
class Attached:
    """One handle on a process (the start's or a connect's) and what it must have got."""

    handle: CommandHandle
    stdout: str = ""
    """The stdout (or, on a terminal, the output since the last :meth:`read_until`) it got."""
    expected: str = ""
    """What the model says it got (a command's stdout; unused for a terminal)."""
    takes_input: bool = True
    """Whether the handle has ``send_stdin`` (a ``commands`` handle; ``pty`` ones have none)."""

    def caught_up(self, stdout: str) -> bool:
        """Whether ``stdout`` is as long as what the handle must have got."""
        return len(stdout) >= len(self.expected)


@dataclass
class Proc:
    """A running process as the model knows it."""

    kind: Kind
    info: Info
    handles: list[Attached] = field(default_factory=list)
    size: PtySize | None = None
    pending: str = ""
    """What a ``reader`` got of its line so far."""
    closed: bool = False
    """Whether its stdin was closed (a ``drain`` runs on)."""


def read_until(attached: Attached, done: Callable[[str], bool]) -> None:
    """Read ``attached``'s output until ``done`` holds for what it got."""
    if done(attached.stdout):
        return
    for stdout, _, pty in attached.handle:
        if stdout is not None:
            attached.stdout += stdout
        if pty is not None:
            attached.stdout += pty.decode(errors="replace")
        if done(attached.stdout):
            return
    raise AssertionError(f"the stream ended before its output came: {attached.stdout!r}")


class ProcessesMachine(RuleBasedStateMachine):
    """One example: a fresh sandbox's processes, driven through ``sbx.commands`` and ``sbx.pty``."""

    envd: ClassVar[Envd]
    examples: ClassVar[Iterator[int]] = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.sbx: Sandbox = self.envd.sandbox(f"sbx-procs-{next(self.examples)}")
        self.running: dict[int, Proc] = {}
        self.ended: list[int] = []
        """The pids of the processes that ended, in order (a pid the host handed out again is
        in it twice, and running again: the model asks :attr:`running` first)."""

    # -- the model ------------------------------------------------------------------------

    def pick(self, data: st.DataObject, kinds: tuple[Kind, ...] | None = None) -> int:
        """A pid: a running one (of ``kinds`` if there is one), an ended one, or one never used.

        Drawn by position in the model's order of starts and ends, never by the pids' numbers,
        which differ from run to run: Hypothesis replays and shrinks the same example so.
        """
        running = list(self.running)
        matching = [p for p in running if kinds is None or self.running[p].kind in kinds]
        groups = [g for g in (matching, running, self.ended) if g] + [[NEVER]]
        return data.draw(st.sampled_from(groups).flatmap(st.sampled_from), label="pid")

    def add(self, pid: int, proc: Proc) -> None:
        assert pid not in self.running, f"pid {pid} started twice"
        self.running[pid] = proc

    def finish(self, pid: int, exit_code: int, error: str | None = None) -> None:
        """Wait for ``pid``'s end through each of its handles: the model's exit and output."""
        proc = self.running.pop(pid)
        self.ended.append(pid)
        for attached in proc.handles:
            try:
                result = attached.handle.wait()
            except CommandExitException as exc:
                got: tuple[int, str | None, str] = (exc.exit_code, exc.error, exc.stdout)
            else:
                got = (result.exit_code, result.error, result.stdout)
            if proc.kind == "pty":
                assert got[:2] == (exit_code, error), got
            else:
                assert got == (exit_code, error, attached.expected), got

    @staticmethod
    def fails(got: Outcome, kind: str, words: str = "") -> None:
        assert got[0] == kind, f"expected {kind}, got {got[0]}: {got[1]!r}"
        assert words in str(got[1]), got[1]

    def start(self, kind: Kind, tag: str | None, cwd: str | None) -> tuple[int, Proc]:
        envs = {"TAG": tag} if tag is not None else {}
        handle = self.sbx.commands.run(
            SCRIPTS[kind],
            background=True,
            stdin=kind != "sleep",
            envs=envs,
            cwd=cwd,
            timeout=0,
        )
        info: Info = (
            "/bin/bash",
            ("-l", "-c", SCRIPTS[kind]),
            tuple(sorted(envs.items())),
            cwd,
            None,
        )
        proc = Proc(kind, info, [Attached(handle)])
        self.add(handle.pid, proc)
        return handle.pid, proc

    # -- rules: starting --------------------------------------------------------------------

    @precondition(lambda self: len(self.running) < BOUND)
    @rule(kind=st.sampled_from(["cat", "drain", "reader", "sleep"]), tag=TAGS, cwd=CWDS)
    def start_command(self, kind: Kind, tag: str | None, cwd: str | None) -> None:
        self.start(kind, tag, cwd)

    @precondition(lambda self: len(self.running) <= BOUND - 3)
    @rule(count=st.integers(2, 3), tag=TAGS, cwd=CWDS)
    def start_many(self, count: int, tag: str | None, cwd: str | None) -> None:
        """Several commands alike at once: each its own pid, each listed."""
        for _ in range(count):
            self.start("cat", tag, cwd)

    @precondition(lambda self: len(self.running) < BOUND)
    @rule(size=SIZES, tag=TAGS, cwd=CWDS)
    def start_pty(self, size: PtySize, tag: str | None, cwd: str | None) -> None:
        envs = {"TAG": tag} if tag is not None else {}
        handle = self.sbx.pty.create(size, envs=envs, cwd=cwd, timeout=0)
        shown = tuple(sorted({**envs, **PTY_ENVS}.items()))
        info: Info = ("/bin/bash", tuple(PTY_ARGS), shown, cwd, None)
        self.add(handle.pid, Proc("pty", info, [Attached(handle, takes_input=False)], size))

    @rule(code=st.sampled_from([0, 3]), background=st.booleans())
    def run_to_the_end(self, code: int, background: bool) -> None:
        """A command that ends by itself: ``CommandExitException`` for a code other than 0."""
        script = "echo hi" if code == 0 else f"echo hi; exit {code}"
        try:
            if background:
                handle = self.sbx.commands.run(script, background=True)
                assert handle.pid not in self.running
                self.ended.append(handle.pid)
                result = handle.wait()
            else:
                result = self.sbx.commands.run(script)
        except CommandExitException as exc:
            got: tuple[int, str | None, str] = (exc.exit_code, exc.error, exc.stdout)
        else:
            got = (result.exit_code, result.error, result.stdout)
        assert got == (code, f"exit status {code}" if code else None, "hi\n"), got

    # -- rules: input -------------------------------------------------------------------------

    @rule(data=st.data(), sent=CHUNKS, via=st.sampled_from(["commands", "handle", "stream"]))
    def send_stdin(self, data: st.DataObject, sent: str, via: str) -> None:
        """``commands.send_stdin``, a handle's ``send_stdin`` or ``commands.stream_input``."""
        pid = self.pick(data, ("cat", "drain", "reader"))
        proc = self.running.get(pid)
        feeders = [a for a in proc.handles if a.takes_input] if proc is not None else []
        if via == "handle" and feeders:
            got = outcome(lambda: feeders[0].handle.send_stdin(sent))
        elif via == "stream":
            got = outcome(lambda: self.sbx.commands.stream_input(pid, [sent]))
        else:
            got = outcome(lambda: self.sbx.commands.send_stdin(pid, sent))
        if proc is None:
            self.fails(got, "not_found")
        elif proc.kind == "pty":
            self.fails(got, "internal", "tty assigned to process")
        elif proc.kind == "sleep":
            self.fails(got, "failed_precondition", "without stdin")
        elif proc.closed:
            self.fails(got, "failed_precondition", f"stdin of process {pid} is closed")
        else:
            assert got == ("ok", None), got
            if proc.kind == "reader":
                proc.pending += sent
                if "\n" in proc.pending:
                    # `read` takes the first line (no blanks at its ends here); echo ends it.
                    for attached in proc.handles:
                        attached.expected += f"got:{proc.pending.split(chr(10))[0]}\n"
                    self.finish(pid, 0)
                return
            for attached in proc.handles:
                attached.expected += sent
                read_until(attached, attached.caught_up)
                assert attached.stdout == attached.expected

    @rule(data=st.data())
    def close_stdin(self, data: st.DataObject) -> None:
        pid = self.pick(data, ("cat", "drain", "reader"))
        proc = self.running.get(pid)
        got = outcome(lambda: self.sbx.commands.close_stdin(pid))
        if proc is None:
            self.fails(got, "not_found")
        elif proc.kind == "pty":
            self.fails(got, "failed_precondition", "Ctrl+D")
        else:
            assert got == ("ok", None), got
            if proc.kind in ("sleep", "drain"):
                proc.closed = True  # again, or with no stdin to close: no error; it runs on
                return
            if proc.kind == "reader":
                for attached in proc.handles:
                    # `read` finds EOF after what it got (its exit status 1), echo runs.
                    attached.expected += f"got:{proc.pending}\n"
            self.finish(pid, 0)

    @rule(data=st.data(), via=st.sampled_from(["commands", "pty", "handle"]))
    def kill(self, data: st.DataObject, via: str) -> None:
        pid = self.pick(data)
        proc = self.running.get(pid)
        if via == "handle" and proc is not None and proc.handles:
            killed = proc.handles[0].handle.kill()
        elif via == "pty":
            killed = self.sbx.pty.kill(pid)
        else:
            killed = self.sbx.commands.kill(pid)
        assert killed is (proc is not None)
        if proc is not None:
            self.finish(pid, -1, "signal: killed")

    # -- rules: terminals -----------------------------------------------------------------------

    def stty(self, pid: int, proc: Proc, stream: bool = False) -> None:
        """Type ``stty size``: every handle shows the size the model holds."""
        assert proc.size is not None
        if stream:
            self.sbx.pty.stream_input(pid, [b"stty ", b"size\n"])
        else:
            self.sbx.pty.send_stdin(pid, b"stty size\n")
        # The answer's line; the typed line (echoed, maybe wrapped with escapes) has no digits.
        shown = re.compile(rf"(?<![0-9;\[]){proc.size.rows} {proc.size.cols}\r\n")
        for attached in proc.handles:
            read_until(attached, lambda out: shown.search(out) is not None)
            attached.stdout = ""

    @rule(data=st.data(), kind=st.sampled_from(["stty", "exit"]), stream=st.booleans())
    def pty_send_stdin(self, data: st.DataObject, kind: str, stream: bool) -> None:
        """``pty.send_stdin`` or ``pty.stream_input``: ``stty size``, or ``exit`` (exit 0)."""
        pid = self.pick(data, ("pty",))
        proc = self.running.get(pid)
        if proc is None or proc.kind != "pty":
            if stream:
                got = outcome(lambda: self.sbx.pty.stream_input(pid, [b"stty size\n"]))
            else:
                got = outcome(lambda: self.sbx.pty.send_stdin(pid, b"stty size\n"))
            if proc is None:
                self.fails(got, "not_found")
            else:
                self.fails(got, "internal", "tty not assigned to process")
        elif kind == "stty":
            self.stty(pid, proc, stream)
        else:
            self.sbx.pty.send_stdin(pid, b"exit\n")
            self.finish(pid, 0)

    @rule(data=st.data(), size=SIZES)
    def pty_resize(self, data: st.DataObject, size: PtySize) -> None:
        pid = self.pick(data, ("pty",))
        proc = self.running.get(pid)
        got = outcome(lambda: self.sbx.pty.resize(pid, size))
        if proc is None:
            self.fails(got, "not_found")
        elif proc.kind != "pty":
            self.fails(got, "failed_precondition", "has no terminal")
        else:
            assert got == ("ok", None), got
            proc.size = size
            self.stty(pid, proc)

    # -- rules: attaching -----------------------------------------------------------------------

    @rule(data=st.data(), as_pty=st.booleans())
    def connect(self, data: st.DataObject, as_pty: bool) -> None:
        """A running process: a handle that gets its later output; any other pid: not found."""
        pid = self.pick(data)
        proc = self.running.get(pid)
        if as_pty:
            got = outcome(lambda: self.sbx.pty.connect(pid))
        else:
            got = outcome(lambda: self.sbx.commands.connect(pid))
        if proc is None:
            self.fails(got, "not_found")
            return
        assert got[0] == "ok", got
        assert got[1].pid == pid
        proc.handles.append(Attached(got[1], takes_input=not as_pty))

    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        """Leave one of a process's handles (never its last: its end is waited through one)."""
        held = [pid for pid, proc in self.running.items() if len(proc.handles) > 1]
        if not held:
            return
        proc = self.running[data.draw(st.sampled_from(held), label="pid")]
        index = data.draw(st.integers(0, len(proc.handles) - 1), label="handle")
        proc.handles.pop(index).handle.disconnect()

    # -- the check after every rule -------------------------------------------------------

    @invariant()
    def list_is_the_running_set(self) -> None:
        listed = {
            p.pid: (p.cmd, tuple(p.args), tuple(sorted(p.envs.items())), p.cwd, p.tag)
            for p in self.sbx.commands.list()
        }
        assert listed == {pid: proc.info for pid, proc in self.running.items()}

    def teardown(self) -> None:
        for pid in list(self.running):
            self.sbx.commands.kill(pid)
            for attached in self.running.pop(pid).handles:
                with contextlib.suppress(CommandExitException):
                    attached.handle.wait()


def test_process_calls_agree_with_a_model_of_the_sandbox_s_processes(envd: Envd) -> None:
    """Every answer of ``sbx.commands`` and ``sbx.pty`` is the model's, and so is
    ``commands.list()`` after each call.

    About 0.12 s an example on a quiet machine: 50 examples of 25 steps keep the
    test at 6 to 7 s. Derandomized: the same examples every run (the hunt that wrote
    it ran 60 to 100 examples of 30 steps under 14 seeds).
    """
    ProcessesMachine.envd = envd
    run_state_machine_as_test(
        ProcessesMachine,
        settings=machine_settings(50, 25),
    )

"""Specification of envd's ``process.Process`` through the real SDK's ``sbx.commands`` and ``sbx.pty``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import time
from typing import Literal

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b import (
    CommandExitException,
    InvalidArgumentException,
    SandboxException,
    SandboxUnreachableException,
    TimeoutException,
)
from e2b.envd.process import process_connect, process_pb
from e2b.sandbox.commands.command_handle import PtySize
from protobuf import Oneof

from pytest_kruise_agents.e2b.envd.processes import SUBSCRIPTION_EVENTS, ProcessTable
from tests.e2b.conftest import eventually
from tests.e2b.envd.conftest import Envd


def children(pid: int) -> list[int]:
    """The child pids of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as found:
            return [int(child) for child in found.read().split()]
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return []


def written(pid: int) -> int:
    """How many bytes ``pid`` has written so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return 0


def command_name(pid: int) -> str:
    """The executable name of ``pid`` ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return ""


def blocked_writing_a_pipe(pid: int) -> bool:
    """Whether ``pid`` sleeps in a write to a full pipe."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            return wchan.read().endswith("pipe_write")
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return False


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return False
    return state not in ("Z", "X")


def test_run_returns_stdout_stderr_and_the_exit_code(envd: Envd) -> None:
    result = envd.sandbox().commands.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code, result.error) == (
        "out\n",
        "err\n",
        0,
        None,
    )


def test_output_streams_to_callbacks_as_it_comes(envd: Envd) -> None:
    seen: list[str] = []
    envd.sandbox().commands.run("for i in 1 2 3; do echo $i; done", on_stdout=seen.append)
    assert "".join(seen) == "1\n2\n3\n"


def test_a_non_zero_exit_raises_with_the_status(envd: Envd) -> None:
    with pytest.raises(CommandExitException) as info:
        envd.sandbox().commands.run("echo partial; exit 3")
    assert (info.value.exit_code, info.value.stdout, info.value.error) == (
        3,
        "partial\n",
        "exit status 3",
    )


def test_the_command_runs_in_home_with_a_sandbox_environment(envd: Envd) -> None:
    ws = envd.workspace()
    out = envd.sandbox().commands.run('pwd; echo "$HOME|$USER|$E2B_SANDBOX_ID"').stdout
    assert out.splitlines() == [str(ws.home), f"{ws.home}|user|sbx-default"]


def test_a_command_runs_in_utc_and_c_utf8_not_the_hosts_zone_and_locale(
    envd: Envd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As E2B's images (UTC, a UTF-8 locale) and the sandbox's kernels; the request may say otherwise."""
    for name, value in {
        "TZ": "Asia/Kolkata",
        "LANG": "tr_TR.UTF-8",
        "LC_ALL": "tr_TR.UTF-8",
    }.items():
        monkeypatch.setenv(name, value)
    sbx = envd.sandbox()
    show = 'date +%z; echo "$TZ|$LANG|$LC_ALL"'

    assert sbx.commands.run(show).stdout == "+0000\nUTC|C.UTF-8|\n"
    assert sbx.commands.run(show, envs={"TZ": "Asia/Kolkata"}).stdout == (
        "+0530\nAsia/Kolkata|C.UTF-8|\n"
    )


def test_sandbox_env_vars_apply_and_request_envs_win(envd: Envd) -> None:
    envd.add("sbx-env", env_vars={"A": "sandbox", "B": "sandbox"})
    sbx = envd.sandbox("sbx-env")
    out = sbx.commands.run('echo "$A $B"', envs={"B": "request"}).stdout
    assert out == "sandbox request\n"


def test_cwd_is_a_mapped_sandbox_path(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.files.make_dir("/home/user/project/src")
    assert sbx.commands.run("pwd", cwd="/home/user/project/src").stdout == (
        f"{envd.workspace().home}/project/src\n"
    )
    assert sbx.commands.run("pwd", cwd="project").stdout.endswith("/home/user/project\n")


def test_a_cwd_is_listed_as_it_was_sent_an_empty_one_too(envd: Envd) -> None:
    """envd's ``List`` answers each process's config as its ``Start`` sent it: ``cwd="~"``
    lists ``"~"`` and an empty ``cwd`` (the SDK sends the field, set and empty) lists ``""``,
    while the command runs in the home. Before, the empty one was listed without a ``cwd``
    (the SDK's ``None``), as if none had been sent."""
    sbx = envd.sandbox()
    handles = {
        cwd: sbx.commands.run("pwd; cat", background=True, stdin=True, cwd=cwd) for cwd in ("", "~")
    }
    listed = {p.pid: p.cwd for p in sbx.commands.list()}
    assert listed == {handle.pid: cwd for cwd, handle in handles.items()}
    for handle in handles.values():
        handle.close_stdin()
        assert handle.wait().stdout == f"{envd.workspace().home}\n"


def test_a_fresh_sandbox_has_tmp(envd: Envd) -> None:
    """A command may run in ``/tmp`` of a sandbox nothing was done in yet, as in a real one."""
    sbx = envd.sandbox("sbx-fresh-tmp")

    assert (
        sbx.commands.run("pwd", cwd="/tmp").stdout
        == f"{envd.workspace('sbx-fresh-tmp').root}/tmp\n"
    )
    sbx.files.write("/tmp/note.txt", "x")
    assert sbx.files.read("/tmp/note.txt") == "x"


@pytest.mark.parametrize("cwd", ["/home/user/missing", "/home/user/a-file", "../../../.."])
def test_a_missing_or_escaping_cwd_is_refused(envd: Envd, cwd: str) -> None:
    """The error names the ``cwd``, not the program that could not start in it."""
    sbx = envd.sandbox()
    sbx.files.write("/home/user/a-file", "x")
    with pytest.raises(InvalidArgumentException, match=re.escape(repr(cwd))):
        sbx.commands.run("pwd", cwd=cwd)


def test_running_as_root_uses_roots_home(envd: Envd) -> None:
    out = envd.sandbox().commands.run('pwd; echo "$USER"', user="root").stdout
    assert out == f"{envd.workspace().root}/root\nroot\n"


def test_background_command_is_listed_then_killed(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 30", background=True, envs={"X": "1"}, cwd="/home/user")
    listed = {p.pid: p for p in sbx.commands.list()}
    assert handle.pid in listed
    info = listed[handle.pid]
    assert (info.cmd, info.args, info.envs, info.cwd) == (
        "/bin/bash",
        ["-l", "-c", "sleep 30"],
        {"X": "1"},
        "/home/user",
    )
    assert handle.kill()
    with pytest.raises(CommandExitException) as info_exc:
        handle.wait()
    assert (info_exc.value.exit_code, info_exc.value.error) == (-1, "signal: killed")
    assert handle.pid not in {p.pid for p in sbx.commands.list()}
    assert not alive(handle.pid)


def test_killing_an_unknown_pid_answers_false(envd: Envd) -> None:
    assert envd.sandbox().commands.kill(2**31 - 7) is False


def test_kill_reaches_the_whole_process_group(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 300 & echo $!; wait", background=True)
    child = int(next(iter(handle))[0] or "")
    assert alive(child)
    assert sbx.commands.kill(handle.pid)
    eventually(lambda: not alive(child), "the grandchild dies with its group")


def group_gone(pgid: int) -> bool:
    """Whether no process is left in process group ``pgid`` (its number is free again)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def take_pid(pid: int, tries: int = 50) -> subprocess.Popen[bytes] | None:
    """A ``sleep`` in a session of its own whose pid is the free ``pid``, or ``None``.

    Linux gives a new process the number after ``/proc/sys/kernel/ns_last_pid`` (writable
    by root); a process forked elsewhere in between may take it first, so this tries again.
    """
    for _ in range(tries):
        with open("/proc/sys/kernel/ns_last_pid", "w") as last:
            last.write(str(pid - 1))
        taken = subprocess.Popen(["sleep", "300"], start_new_session=True)
        if taken.pid == pid:
            return taken
        taken.kill()
        taken.wait()
    return None


@pytest.mark.skipif(
    not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK), reason="choosing a pid needs root"
)
def test_a_kill_after_the_command_was_reaped_spares_whatever_took_its_group_number(
    envd: Envd,
) -> None:
    """A command whose process ended (reaped) but whose output is still open is still listed
    and can be killed: only the processes of its group that carry the sandbox's marker are
    signalled, never a process of another sandbox or of the host that took the number.

    Here a daemon in a session of its own holds the command's output, so the command runs
    on; its process group is empty, and the host hands its number (the command's pid) to
    the next new process: a kernel or a command of another sandbox, which all lead groups
    of their own. The kill used to ``killpg`` that number, as a stop of the sandbox or the
    command's deadline did.
    """
    sbx = envd.sandbox()
    handle = sbx.commands.run("setsid sleep 300 & echo started", background=True)
    assert next(iter(handle))[0] == "started\n"
    eventually(lambda: group_gone(handle.pid), "the command's process group ends")
    assert handle.pid in {p.pid for p in sbx.commands.list()}, "its output is still open"
    taken = take_pid(handle.pid)
    if taken is None:
        pytest.skip("other processes kept taking the command's pid first")
    try:
        assert sbx.commands.kill(handle.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            taken.wait(timeout=2)  # a SIGKILL is sent before kill() returns
        assert taken.returncode is None, "the process that took the number was killed"
    finally:
        taken.kill()
        taken.wait()


def test_a_kill_after_the_command_was_reaped_reaches_what_is_left_of_its_group(
    envd: Envd,
) -> None:
    """A command whose process ended but whose child in its group holds its output is killed
    with that child, by the sandbox's marker the child carries."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 300 & echo $!", background=True)
    child = int(next(iter(handle))[0] or "")
    eventually(lambda: not alive(handle.pid), "the command's own process ends")
    assert alive(child) and handle.pid in {p.pid for p in sbx.commands.list()}
    assert sbx.commands.kill(handle.pid)
    eventually(lambda: not alive(child), "the child dies with its group")
    assert handle.wait().exit_code == 0  # its own process had ended well


@pytest.mark.skipif(
    not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK), reason="choosing a pid needs root"
)
def test_a_new_command_that_took_an_ended_one_s_pid_stays_listed_once_that_one_ends(
    envd: Envd,
) -> None:
    """Two commands of one sandbox may have had the same pid: the first's end forgets the
    first, never the second.

    The first ran on after its process was reaped (a daemon in a session of its own held
    its output), long enough for the host to give its pid to the second. The first's end
    used to drop the second from the table: not listed, not found by ``kill``, not killed
    by name at the sandbox's stop.
    """
    sbx = envd.sandbox()
    first = sbx.commands.run("setsid sleep 300 & echo $!", background=True)
    daemon = int(next(iter(first))[0] or "")
    eventually(lambda: group_gone(first.pid), "the first command's process group ends")
    second = None
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as last:
            last.write(str(first.pid - 1))
        second = sbx.commands.run("sleep 300", background=True)
        if second.pid == first.pid:
            break
        sbx.commands.kill(second.pid)
        second = None
    if second is None:
        pytest.skip("other processes kept taking the first command's pid")
    os.kill(daemon, signal.SIGKILL)
    assert first.wait().exit_code == 0  # its end is sent once the table forgot it
    assert second.pid in {p.pid for p in sbx.commands.list()}
    assert sbx.commands.kill(second.pid)
    with pytest.raises(CommandExitException):
        second.wait()


def test_a_background_command_survives_disconnect_and_can_be_reattached(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("read line; echo got $line", background=True, stdin=True)
    handle.disconnect()
    assert handle.pid in {p.pid for p in sbx.commands.list()}
    again = sbx.commands.connect(handle.pid)
    sbx.commands.send_stdin(handle.pid, "hello\n")
    assert again.wait().stdout == "got hello\n"


def test_stdin_can_be_sent_then_closed(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("one ")
    sbx.commands.stream_input(handle.pid, ["two ", b"three"])
    handle.close_stdin()
    assert handle.wait().stdout == "one two three"


def test_stdin_sent_after_it_was_closed_is_refused(envd: Envd) -> None:
    """Not dropped without a word: the caller learns the command no longer reads it."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("cat; sleep 30", background=True, stdin=True)
    handle.close_stdin()
    with pytest.raises(SandboxException, match=f"stdin of process {handle.pid} is closed"):
        handle.send_stdin("late")
    handle.kill()


def test_resizing_a_command_without_a_terminal_is_refused(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 30", background=True)
    with pytest.raises(SandboxException, match=f"process {handle.pid} has no terminal"):
        sbx.pty.resize(handle.pid, PtySize(rows=10, cols=20))
    handle.kill()


def test_stdin_takes_messages_far_larger_than_16_mib(envd: Envd) -> None:
    """connect-go reads messages of any size; envd's bound sits far above what users send."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("wc -c", background=True, stdin=True)
    handle.send_stdin(b"x" * (20 * 1024 * 1024))
    handle.close_stdin()
    assert handle.wait().stdout.strip() == str(20 * 1024 * 1024)


@pytest.mark.parametrize("via", ["send_stdin", "stream_input"])
def test_a_message_over_the_limit_is_refused_for_good_not_as_a_rate_limit(
    envd: Envd, small_messages: int, via: str
) -> None:
    """A retry cannot help: ``invalid_argument`` naming the limit, and the command reads nothing."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("wc -c", background=True, stdin=True)
    with pytest.raises(InvalidArgumentException, match=f"limit of {small_messages} bytes"):
        if via == "send_stdin":
            handle.send_stdin(b"x" * (small_messages + 1))
        else:
            sbx.commands.stream_input(handle.pid, [b"x" * (small_messages + 1)])
    handle.send_stdin(b"y" * 100)
    handle.close_stdin()
    assert handle.wait().stdout.strip() == "100"


def test_stdin_is_refused_when_the_command_was_started_without_it(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 30", background=True)
    with pytest.raises(SandboxException, match="without stdin"):
        handle.send_stdin("x")
    handle.kill()


def test_closing_stdin_that_is_closed_or_absent_answers_no_error(envd: Envd) -> None:
    """docs/fidelity.md (the references do not say what envd answers): a second
    ``close_stdin``, and one of a command started without stdin, succeed without a word and
    leave the command running; a PTY's is refused (``failed_precondition``: end a terminal's
    input with Ctrl+D)."""
    sbx = envd.sandbox()
    with_stdin = sbx.commands.run("cat; sleep 30", background=True, stdin=True)
    without = sbx.commands.run("sleep 30", background=True)
    terminal = sbx.pty.create(PtySize(rows=24, cols=80))
    with_stdin.close_stdin()
    with_stdin.close_stdin()
    without.close_stdin()
    with pytest.raises(SandboxException, match=r"has a terminal: send Ctrl\+D"):
        sbx.commands.close_stdin(terminal.pid)
    running = {p.pid for p in sbx.commands.list()}
    assert {with_stdin.pid, without.pid, terminal.pid} <= running
    for handle in (with_stdin, without, terminal):
        handle.kill()


def _start(envd: Envd, request: process_pb.StartRequest) -> int:
    """Start ``request`` with the bare Connect client (what no SDK sends); its pid."""
    rpc = process_connect.ProcessClientSync(envd.url)
    events = rpc.start(request, headers={"E2b-Sandbox-Id": "sbx-default"})
    first = next(iter(events))
    assert first.event is not None and first.event.event is not None
    assert first.event.event.field == "start"
    return int(first.event.event.value.pid)


def test_a_start_without_the_stdin_field_keeps_stdin_open(envd: Envd) -> None:
    """SDKs older than envd 0.3.0's ``stdin`` flag omit it: envd then keeps stdin open."""
    config = process_pb.ProcessConfig(cmd="/bin/sh", args=["-c", "head -c 2; echo"])
    pid = _start(envd, process_pb.StartRequest(process=config))
    sbx = envd.sandbox()
    handle = sbx.commands.connect(pid)
    sbx.commands.send_stdin(pid, "ok")
    assert handle.wait().stdout == "ok\n"


def test_a_tagged_command_is_listed_and_reached_by_its_tag(envd: Envd) -> None:
    config = process_pb.ProcessConfig(cmd="/bin/sleep", args=["30"])
    pid = _start(envd, process_pb.StartRequest(process=config, tag="web", stdin=False))
    rpc = process_connect.ProcessClientSync(envd.url)
    headers = {"E2b-Sandbox-Id": "sbx-default"}
    listed = rpc.list(process_pb.ListRequest(), headers=headers).processes
    assert [(p.pid, p.tag) for p in listed] == [(pid, "web")]
    by_tag = process_pb.ProcessSelector(selector=Oneof[Literal["tag"], str]("tag", "web"))
    rpc.send_signal(
        process_pb.SendSignalRequest(process=by_tag, signal=process_pb.Signal.SIGKILL),
        headers=headers,
    )
    eventually(lambda: envd.sandbox().commands.list() == [], "the tagged command was killed")


def test_stream_input_whose_first_event_is_not_start_is_an_invalid_argument(envd: Envd) -> None:
    rpc = process_connect.ProcessClientSync(envd.url)
    data = process_pb.StreamInputRequest(
        event=Oneof[Literal["data"], process_pb.StreamInputRequest.DataEvent](
            "data",
            process_pb.StreamInputRequest.DataEvent(
                input=process_pb.ProcessInput(input=Oneof[Literal["stdin"], bytes]("stdin", b"x"))
            ),
        )
    )
    with pytest.raises(ConnectError, match="the first event must be start") as info:
        rpc.stream_input(iter([data]), headers={"E2b-Sandbox-Id": "sbx-default"})
    assert info.value.code == Code.INVALID_ARGUMENT


def test_the_timeout_kills_the_command(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(TimeoutException):
        sbx.commands.run("echo started; sleep 30", timeout=0.3)
    eventually(lambda: not sbx.commands.list(), "the timed-out command is killed")


def test_a_background_command_is_killed_at_its_timeout_too(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("sleep 30", background=True, timeout=0.3)
    handle.disconnect()
    eventually(lambda: not alive(handle.pid), "the background command's deadline kills it")


def test_connecting_to_an_unknown_pid_is_not_found(envd: Envd) -> None:
    with pytest.raises(SandboxException, match="not found"):
        envd.sandbox().commands.connect(2**31 - 7)


def test_processes_of_one_sandbox_are_invisible_to_another(envd: Envd) -> None:
    mine = envd.sandbox("sbx-a").commands.run("sleep 30", background=True)
    other = envd.sandbox("sbx-b")
    assert other.commands.list() == []
    assert other.commands.kill(mine.pid) is False
    assert alive(mine.pid)
    mine.kill()


def test_an_unknown_command_is_refused(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(CommandExitException) as info:
        sbx.commands.run("no-such-command-kruise")
    assert info.value.exit_code == 127


def test_pty_runs_an_interactive_shell_with_its_size_and_resizes(envd: Envd) -> None:
    sbx = envd.sandbox()
    output = bytearray()
    terminal = sbx.pty.create(PtySize(rows=24, cols=80))
    sbx.pty.send_stdin(terminal.pid, b"stty size\n")
    for _, _, chunk in terminal:
        output.extend(chunk or b"")
        if b"24 80" in output:
            break
    sbx.pty.resize(terminal.pid, PtySize(rows=30, cols=100))
    sbx.pty.send_stdin(terminal.pid, b"stty size; exit\n")
    terminal.wait(on_pty=output.extend)
    assert b"24 80" in output
    assert b"30 100" in output.split(b"24 80", 1)[1]


@pytest.mark.parametrize(
    ("size", "shown"),
    [((0, 0), b"0 0"), ((65536 + 24, 65536 + 80), b"24 80")],
    ids=["no-size", "wraps-as-uint16"],
)
def test_a_pty_of_any_size_starts_as_envd_starts_it(
    envd: Envd, size: tuple[int, int], shown: bytes
) -> None:
    """A 0x0 window (the e2b CLI sends ``"size": {}`` when its output is piped or under
    ``script``) starts, and a size past 16 bits wraps, as envd's ``uint16(...)`` does.

    Before, both were refused with "cols and rows must be between 1 and 10000" and
    ``e2b sandbox connect | tee log`` could not open a terminal.
    """
    sbx = envd.sandbox()
    rows, cols = size
    output = bytearray()
    terminal = sbx.pty.create(PtySize(rows=rows, cols=cols))
    sbx.pty.send_stdin(terminal.pid, b"stty size; exit\n")
    terminal.wait(on_pty=output.extend)
    assert shown in output


def test_close_stdin_is_refused_on_a_pty(envd: Envd) -> None:
    sbx = envd.sandbox()
    terminal = sbx.pty.create(PtySize(rows=24, cols=80))
    with pytest.raises(SandboxException, match="Ctrl"):
        sbx.commands.close_stdin(terminal.pid)
    assert sbx.pty.kill(terminal.pid)


def terminal_fds() -> set[int]:
    """This process's open fds on a pty master: the terminals of the in-process envd."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") in ("/dev/ptmx", "/dev/pts/ptmx"):
                found.add(int(name))
    return found


def take_fds(numbers: set[int]) -> tuple[dict[int, socket.socket], list[socket.socket]]:
    """Open socket pairs until one end holds each of the free fds ``numbers``.

    Linux gives a new fd the lowest free number. Returns ``{number: the peer of the socket
    holding it}`` (what is written to ``number`` arrives there) and every socket opened.
    """
    taken: dict[int, socket.socket] = {}
    opened: list[socket.socket] = []
    while set(taken) < numbers and len(opened) < 512:
        first, second = socket.socketpair()
        opened += [first, second]
        for mine, peer in ((first, second), (second, first)):
            if mine.fileno() in numbers:
                taken[mine.fileno()] = peer
    return taken, opened


@pytest.mark.asyncio
async def test_pty_input_after_its_process_ended_reaches_no_other_file(envd: Envd) -> None:
    """Input streamed to a terminal whose process ended is refused (``failed_precondition``
    "the terminal is closed"), never written to the socket or file that took its fd number.

    The terminal's master is closed once its process is reaped, and the server's process
    hands that number to the next socket or file it opens. A ``pty.stream_input`` opened
    before the end still held the process: its input went to whatever took the number.
    Under load, a pause's stop closed the terminal while the client kept sending, the SDK's
    health probe opened a connection on the number, the server read the input as the start
    of the probe's request and answered 400 "Invalid HTTP request received.", and the SDK
    raised ``SandboxUnreachableException`` for a paused sandbox, not
    ``SandboxNotRunningException``.
    """
    sbx = envd.async_sandbox()
    before = terminal_fds()
    terminal = await sbx.pty.create(PtySize(rows=24, cols=80), on_data=lambda _: None, timeout=0)
    feed = sbx.pty.stream_input(terminal.pid, timeout=0)
    opened = terminal_fds() - before
    assert opened, "the terminal's master is an fd of this process"
    await feed.send(b"exit\n")
    await asyncio.wait_for(terminal.wait(), 10)  # its end: the process was reaped
    freed = opened - terminal_fds()
    assert freed, "the terminal's master was closed"
    taken, sockets = take_fds(freed)
    try:
        assert set(taken) == freed, "a socket holds each number the terminal freed"
        await feed.send(b"echo typed-after-the-end\n")
        # Closed, the stream has been read to its end: whatever was written, was written.
        (ended,) = await asyncio.gather(asyncio.wait_for(feed.close(), 10), return_exceptions=True)
        arrived = b""
        for peer in taken.values():
            peer.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                arrived += peer.recv(65536)
        assert arrived == b""
        assert isinstance(ended, SandboxException), repr(ended)
        assert "the terminal is closed" in str(ended)
    finally:
        for sock in sockets:
            sock.close()


WRONG_KIND = {
    "stdin": "error writing to stdin: tty assigned to process"
    " \u2014 input should be written to the pty, not the stdin",
    "pty": "error writing to tty: tty not assigned to process"
    " \u2014 input should be written to the stdin, not the tty",
}
"""envd's refusals (``internal``) of input of the wrong kind (its process handler's words)."""


@pytest.mark.parametrize("via", ["send_stdin", "stream_input"])
def test_stdin_input_to_a_terminal_is_refused_as_envd_refuses_it(envd: Envd, via: str) -> None:
    """``commands.send_stdin``/``stream_input`` send ``stdin`` input: a PTY process takes only
    ``pty`` input (``sbx.pty.send_stdin``), and its terminal sees nothing of it."""
    sbx = envd.sandbox()
    terminal = sbx.pty.create(PtySize(rows=24, cols=80))
    with pytest.raises(SandboxException, match=WRONG_KIND["stdin"]) as refused:
        if via == "send_stdin":
            sbx.commands.send_stdin(terminal.pid, "echo typed-as-stdin\n")
        else:
            sbx.commands.stream_input(terminal.pid, ["echo typed-as-stdin\n"])
    assert type(refused.value) is SandboxException
    output = bytearray()
    sbx.pty.send_stdin(terminal.pid, b"exit\n")
    terminal.wait(on_pty=output.extend)
    assert b"typed-as-stdin" not in output


@pytest.mark.parametrize("via", ["send_stdin", "stream_input"])
def test_pty_input_to_a_plain_command_is_refused_as_envd_refuses_it(envd: Envd, via: str) -> None:
    """``sbx.pty.send_stdin``/``stream_input`` send ``pty`` input: a command without a terminal
    takes only ``stdin`` input, even one started without stdin, and reads nothing of it."""
    sbx = envd.sandbox()
    handle = sbx.commands.run("cat", background=True, stdin=True)
    silent = sbx.commands.run("sleep 30", background=True)
    for pid in (handle.pid, silent.pid):
        with pytest.raises(SandboxException, match=WRONG_KIND["pty"]) as refused:
            if via == "send_stdin":
                sbx.pty.send_stdin(pid, b"typed-as-pty\n")
            else:
                sbx.pty.stream_input(pid, [b"typed-as-pty\n"])
        assert type(refused.value) is SandboxException
    silent.kill()
    handle.send_stdin("as stdin\n")
    handle.close_stdin()
    assert handle.wait().stdout == "as stdin\n"


def test_commands_really_are_host_processes(envd: Envd) -> None:
    handle = envd.sandbox().commands.run("sleep 30", background=True)
    assert os.getpgid(handle.pid) == handle.pid  # its own session and group
    handle.kill()


def test_a_command_ends_when_its_output_closes_not_just_when_it_exits(envd: Envd) -> None:
    sbx = envd.sandbox()
    sbx.commands.run("mkfifo gate")
    # The shell exits at once, but its background child still holds stdout.
    handle = sbx.commands.run("(read x < gate; echo child-done) & echo started", background=True)
    assert next(iter(handle))[0] == "started\n"
    assert handle.pid in {p.pid for p in sbx.commands.list()}
    sbx.commands.run("echo go > gate")
    assert handle.wait().stdout == "started\nchild-done\n"
    # With its output redirected, the same background child does not hold the command.
    daemon = int(sbx.commands.run("sleep 30 > /dev/null 2>&1 & echo $!").stdout)
    assert alive(daemon)
    os.kill(daemon, 9)


@pytest.mark.parametrize(
    ("envs", "says"),
    [
        ({"BAD": "a\0b"}, "process.envs.BAD: must not contain a NUL character"),
        ({"A=B": "1"}, "process.envs: invalid variable name 'A=B': a name must not contain '='"),
        ({"A\0": "1"}, "process.envs: invalid variable name 'A\\x00'"),
        ({"": "1"}, "process.envs: invalid variable name '': a name must not be empty"),
    ],
)
def test_an_env_var_no_process_can_carry_is_refused_naming_it(
    envd: Envd, envs: dict[str, str], says: str
) -> None:
    """One error naming the field and the key, not the spawn's bare "illegal environment
    variable name"; the sandbox's next command runs."""
    sbx = envd.sandbox()
    with pytest.raises(InvalidArgumentException) as info:
        sbx.commands.run("true", envs=envs)
    assert says in str(info.value)
    assert sbx.commands.run("echo ok").stdout == "ok\n"


def test_a_sandbox_env_var_no_process_can_carry_fails_commands_naming_it(envd: Envd) -> None:
    """The create and ``/init`` refuse such entries; one that came another way (a
    SandboxClaim's ``envVars``, the Python API) fails each command with an error naming it."""
    envd.add("sbx-poisoned", env_vars={"GOOD": "1", "A=B": "1"})
    with pytest.raises(SandboxException, match="FAILED_PRECONDITION") as info:
        envd.sandbox("sbx-poisoned").commands.run("true")
    assert "the sandbox's envVars: invalid variable name 'A=B'" in str(info.value)


def test_sigterm_lets_the_command_clean_up(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run(
        "trap 'echo cleaned; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        background=True,
    )
    assert next(iter(handle))[0] == "ready\n"  # the trap is set
    rpc = process_connect.ProcessClientSync(envd.url)
    rpc.send_signal(
        process_pb.SendSignalRequest(
            process=process_pb.ProcessSelector(
                selector=Oneof[Literal["pid"], int]("pid", handle.pid)
            ),
            signal=process_pb.Signal.SIGTERM,
        ),
        headers={"E2b-Sandbox-Id": "sbx-default"},
    )
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert (info.value.exit_code, info.value.stdout) == (7, "ready\ncleaned\n")


# 64 MiB: far more than the bounded buffers, socket buffers included, hold.
_FLOOD = 64 * 1024 * 1024
_FLOOD_CMD = f"head -c {_FLOOD} /dev/zero; touch flooded"


def _flooding_writer(handle_pid: int) -> int:
    """The pid of the command's ``head`` (``bash -l`` may run other children first)."""
    found: list[int] = []

    def started() -> bool:
        found[:] = [pid for pid in children(handle_pid) if command_name(pid) == "head"]
        return bool(found)

    eventually(started, "the command's shell starts head")
    return found[0]


def test_output_nobody_reads_stalls_the_command_instead_of_filling_the_server(
    envd: Envd,
) -> None:
    """envd's output channels block: a stream that is not read holds the command at its pipe.

    The handle of a background command is read only by ``wait()``; until then
    the server keeps a bounded amount of its output, and the command waits, as
    on E2B. Once nobody is attached (``disconnect``) its output is dropped and
    it runs on.
    """
    sbx = envd.sandbox()
    handle = sbx.commands.run(_FLOOD_CMD, background=True)
    writer = _flooding_writer(handle.pid)
    eventually(lambda: written(writer) > 0, "head writes")
    time.sleep(1)  # ample for head to write it all, were its pipe drained into memory
    assert blocked_writing_a_pipe(writer)
    assert written(writer) < _FLOOD // 4
    assert not (envd.workspace().home / "flooded").exists()

    handle.disconnect()
    eventually(lambda: (envd.workspace().home / "flooded").exists(), "the command runs on")


def test_a_reader_that_keeps_up_gets_all_the_output(envd: Envd) -> None:
    sbx = envd.sandbox()
    handle = sbx.commands.run("seq 1 300000", background=True)
    out = handle.wait().stdout
    assert out.count("\n") == 300000 and out.endswith("\n299999\n300000\n")


def test_a_stop_frees_the_output_a_stalled_stream_held(envd: Envd) -> None:
    """The stop kills the stalled command at once and drops what its stream had not sent."""
    sbx = envd.sandbox()
    handle = sbx.commands.run(_FLOOD_CMD, background=True)
    writer = _flooding_writer(handle.pid)
    (managed,) = envd.workspace().attachment(ProcessTable).processes()
    eventually(lambda: managed.pending_events() == SUBSCRIPTION_EVENTS, "the stream's queue fills")
    # The queue is full before the pipe behind it is: head still writes until the pipe fills.
    eventually(lambda: blocked_writing_a_pipe(writer), "head waits at its full pipe")
    envd.run(envd.workspaces.stop("sbx-default"), timeout=4)
    assert not alive(handle.pid) and not alive(writer)
    assert managed.pending_events() == 0
    # What was on the way still arrives; then the stream ends as the sandbox's connection does.
    with pytest.raises(SandboxUnreachableException, match="paused or killed"):
        handle.wait()


def test_a_quiet_stream_carries_keepalives_at_the_requested_interval(envd: Envd) -> None:
    rpc = process_connect.ProcessClientSync(envd.url)
    request = process_pb.StartRequest(
        process=process_pb.ProcessConfig(cmd="/bin/sh", args=["-c", "sleep 0.5; echo done"])
    )
    headers = {"E2b-Sandbox-Id": "sbx-default", "Keepalive-Ping-Interval": "0.1"}
    kinds = [
        response.event.event.field
        for response in rpc.start(request, headers=headers)
        if response.event is not None and response.event.event is not None
    ]
    assert kinds[0] == "start" and kinds[-2:] == ["data", "end"]
    assert set(kinds[1:-2]) == {"keepalive"}
    assert len(kinds[1:-2]) >= 2


def test_keepalives_come_at_most_every_tenth_of_a_second_whatever_the_client_asks(
    envd: Envd,
) -> None:
    """A ``Keepalive-Ping-Interval`` of a millisecond must not turn a quiet stream into a flood."""
    rpc = process_connect.ProcessClientSync(envd.url)
    request = process_pb.StartRequest(
        process=process_pb.ProcessConfig(cmd="/bin/sh", args=["-c", "sleep 0.5; echo done"])
    )
    headers = {"E2b-Sandbox-Id": "sbx-default", "Keepalive-Ping-Interval": "0.001"}
    kinds = [
        response.event.event.field
        for response in rpc.start(request, headers=headers)
        if response.event is not None and response.event.event is not None
    ]
    assert kinds[-2:] == ["data", "end"]
    assert 1 <= kinds.count("keepalive") <= 6  # 0.5 s of silence: about 5


@pytest.mark.parametrize("number", [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN])
def test_a_host_out_of_resources_at_spawn_is_an_internal_error_not_the_callers(
    envd: Envd, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """The host running out of descriptors, memory or processes is ``internal``
    (``SandboxException``), not ``InvalidArgumentException``, which would send the
    caller looking for a mistake in the command; the next command runs."""
    real = asyncio.create_subprocess_exec

    async def short_of_resources(*args: object, **kwargs: object) -> object:
        raise OSError(number, os.strerror(number))

    sbx = envd.sandbox()
    monkeypatch.setattr(asyncio, "create_subprocess_exec", short_of_resources)
    with pytest.raises(SandboxException, match="INTERNAL: failed to start") as info:
        sbx.commands.run("true")
    assert not isinstance(info.value, InvalidArgumentException)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", real)
    assert sbx.commands.run("echo ok").stdout == "ok\n"

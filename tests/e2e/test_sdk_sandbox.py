"""The unmodified e2b SDK against the fake cluster: commands and files in a claimed sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from e2b import CommandExitException, Sandbox, TimeoutException
from e2b.exceptions import SandboxException

from .conftest import Server


@pytest.fixture
def sbx(e2b_env: Server) -> Iterator[Sandbox]:
    sandbox = Sandbox.create(envs={"SANDBOX_LEVEL": "from-create"})
    yield sandbox
    sandbox.kill()


def test_command_stdout_stderr_and_exit_code(sbx: Sandbox) -> None:
    result = sbx.commands.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)
    with pytest.raises(CommandExitException) as err:
        sbx.commands.run("echo nope >&2; exit 3")
    assert err.value.exit_code == 3
    assert err.value.stderr == "nope\n"


def test_command_sees_create_and_call_env_vars_and_runs_in_home(sbx: Sandbox) -> None:
    result = sbx.commands.run(
        'echo "$SANDBOX_LEVEL $CALL_LEVEL"; pwd', envs={"CALL_LEVEL": "from-call"}
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "from-create from-call"
    assert lines[1].endswith("/home/user")


def test_background_command_is_listed_and_killed(sbx: Sandbox) -> None:
    handle = sbx.commands.run("sleep 30", background=True)
    assert handle.pid in [p.pid for p in sbx.commands.list()]
    assert handle.kill()
    deadline = time.monotonic() + 10
    while handle.pid in [p.pid for p in sbx.commands.list()] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.pid not in [p.pid for p in sbx.commands.list()]


def test_command_timeout_stops_the_process(sbx: Sandbox) -> None:
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 20", timeout=1)


def test_command_streams_output_to_callbacks(sbx: Sandbox) -> None:
    seen: list[str] = []
    sbx.commands.run("for i in 1 2 3; do echo $i; done", on_stdout=seen.append)
    assert "".join(seen) == "1\n2\n3\n"


def test_files_write_read_list_exists_rename_remove_make_dir(sbx: Sandbox) -> None:
    info = sbx.files.write("/home/user/notes/a.txt", "hello")
    assert info.path == "/home/user/notes/a.txt"
    assert sbx.files.read("/home/user/notes/a.txt") == "hello"
    assert sbx.commands.run("cat notes/a.txt").stdout == "hello"
    assert [e.name for e in sbx.files.list("/home/user/notes")] == ["a.txt"]
    assert sbx.files.exists("/home/user/notes/a.txt")
    sbx.files.rename("/home/user/notes/a.txt", "/home/user/notes/b.txt")
    assert not sbx.files.exists("/home/user/notes/a.txt")
    assert sbx.files.read("/home/user/notes/b.txt", format="bytes") == b"hello"
    assert sbx.files.make_dir("/home/user/empty")
    assert not sbx.files.make_dir("/home/user/empty")
    sbx.files.remove("/home/user/notes/b.txt")
    assert not sbx.files.exists("/home/user/notes/b.txt")


def test_paths_cannot_escape_the_workspace(sbx: Sandbox) -> None:
    with pytest.raises(SandboxException):
        sbx.files.read("/home/user/../../../../etc/passwd")
    # Commands see host paths (docs/fidelity.md); relative ones land in the workspace.
    sbx.commands.run("ln -s /etc etc-link")
    with pytest.raises(SandboxException):
        sbx.files.read("/home/user/etc-link/passwd")


def test_pause_keeps_files_and_connect_resumes(sbx: Sandbox) -> None:
    sbx.files.write("/home/user/keep.txt", "kept")
    assert sbx.pause()
    assert not sbx.is_running()
    resumed = Sandbox.connect(sbx.sandbox_id)
    assert resumed.is_running()
    assert resumed.files.read("/home/user/keep.txt") == "kept"


def test_kill_removes_the_sandbox_and_its_traffic_answers_502(e2b_env: Server) -> None:
    sandbox = Sandbox.create()
    sandbox.files.write("/home/user/x.txt", "x")
    assert sandbox.kill()
    assert not sandbox.is_running()
    assert not sandbox.kill()

"""``/contexts`` through the real SDK: create, list, restart, remove; lazy and shared kernel starts.

Also the lifecycle seam: the stop hook (pause, kill) stops a sandbox's kernels.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from e2b import NotFoundException, SandboxException, TimeoutException

from pytest_kruise_agents.e2b.interpreter import kernels
from tests.e2b.conftest import eventually
from tests.e2b.interpreter.conftest import Interpreter


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_nothing_runs_before_the_first_request(interpreter: Interpreter) -> None:
    """Listing a fresh sandbox's contexts starts no kernel and finds none."""
    sandbox = interpreter.sandbox("sbx-idle")
    assert sandbox.list_code_contexts() == []
    assert interpreter.app.contexts.kernel_pids("sbx-idle") == []


def test_a_created_context_has_its_own_state_and_cwd(interpreter: Interpreter) -> None:
    """A new context answers id, language and cwd, runs in that cwd and shares no variables."""
    workspace = interpreter.router.add("sbx-ctx")
    workspace.resolve("/home/user/project").mkdir(parents=True)
    sandbox = interpreter.sandbox("sbx-ctx")
    context = sandbox.create_code_context(cwd="/home/user/project")
    assert context.language == "python"
    assert context.cwd == "/home/user/project"

    sandbox.run_code("owner = 'default'")
    sandbox.run_code("owner = 'mine'", context=context)
    assert sandbox.run_code("owner").text == "'default'"
    assert sandbox.run_code("owner", context=context).text == "'mine'"
    cwd = sandbox.run_code("import os\nos.getcwd()", context=context).text
    assert cwd == repr(str(workspace.root / "home" / "user" / "project"))

    listed = {c.id: (c.language, c.cwd) for c in sandbox.list_code_contexts()}
    assert listed[context.id] == ("python", "/home/user/project")
    assert len(listed) == 2  # and the default context made by the first run_code


def test_restart_loses_the_state(interpreter: Interpreter) -> None:
    """Restarting a context gives it a fresh kernel: its variables are gone, it still runs.

    An execution running at the time ends with a DeadKernelError.
    """
    sandbox = interpreter.sandbox("sbx-restart")
    context = sandbox.create_code_context()
    sandbox.run_code("kept = 1", context=context)
    started = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(
            sandbox.run_code,
            "import time\nprint('started', flush=True)\ntime.sleep(120)",
            context=context,
            on_stdout=lambda _: started.set(),
        )
        assert started.wait(timeout=30)
        sandbox.restart_code_context(context)
        interrupted = busy.result(timeout=30)
    assert interrupted.error is not None and interrupted.error.name == "DeadKernelError"
    after = sandbox.run_code("kept", context=context)
    assert after.error is not None and after.error.name == "NameError"
    assert sandbox.run_code("'alive'", context=context).text == "'alive'"


def test_removing_a_context_stops_its_kernel(interpreter: Interpreter) -> None:
    """A removed context is unlisted, its kernel process is gone, and its id answers 404."""
    sandbox = interpreter.sandbox("sbx-remove")
    context = sandbox.create_code_context()
    [pid] = interpreter.app.contexts.kernel_pids("sbx-remove")
    sandbox.remove_code_context(context.id)
    assert sandbox.list_code_contexts() == []
    assert _gone(pid)
    with pytest.raises(NotFoundException):
        sandbox.run_code("1", context=context)
    with pytest.raises(NotFoundException):
        sandbox.remove_code_context(context)
    with pytest.raises(NotFoundException):
        sandbox.restart_code_context(context)


def test_contexts_are_per_sandbox(interpreter: Interpreter) -> None:
    """Another sandbox neither lists nor reaches a context by its id."""
    owner = interpreter.sandbox("sbx-owner")
    context = owner.create_code_context()
    stranger = interpreter.sandbox("sbx-stranger")
    assert stranger.list_code_contexts() == []
    with pytest.raises(NotFoundException):
        stranger.run_code("1", context=context)


def test_concurrent_first_runs_share_one_kernel(interpreter: Interpreter) -> None:
    """Simultaneous first run_code calls of a sandbox start one default kernel, not several."""
    sandbox = interpreter.sandbox("sbx-rush")
    started_before = interpreter.app.contexts.kernels_started
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(lambda n: sandbox.run_code(f"{n} * 10").text, range(4)))
    assert texts == ["0", "10", "20", "30"]
    assert interpreter.app.contexts.kernels_started == started_before + 1
    assert len(sandbox.list_code_contexts()) == 1
    assert len(interpreter.app.contexts.kernel_pids("sbx-rush")) == 1


def test_bad_context_requests_are_400(interpreter: Interpreter) -> None:
    """An unsupported language, a cwd the workspace refuses, or a wrong type: 400, nothing made."""
    sandbox = interpreter.sandbox("sbx-bad-ctx")
    with pytest.raises(SandboxException, match=r"400.*not supported"):
        sandbox.create_code_context(language="r")
    with pytest.raises(SandboxException, match=r"400.*cwd"):
        sandbox.create_code_context(cwd="/../outside")
    response = httpx.post(
        f"{interpreter.url}/contexts",
        headers=interpreter.headers("sbx-bad-ctx"),
        json={"cwd": 7},
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": "cwd: must be a string or null, got a number",
    }
    assert sandbox.list_code_contexts() == []


def test_the_stop_hook_stops_the_sandbox_kernels(interpreter: Interpreter) -> None:
    """Pause or kill (``Workspaces.stop``) ends every kernel of the sandbox and its contexts.

    The stop runs on another event loop than the server's, as it may in the
    real server; the next run_code starts a fresh kernel.
    """
    sandbox = interpreter.sandbox("sbx-stop")
    sandbox.run_code("lost = True")
    sandbox.create_code_context()
    pids = interpreter.app.contexts.kernel_pids("sbx-stop")
    assert len(pids) == 2

    interpreter.stop_sandbox("sbx-stop")

    assert all(_gone(pid) for pid in pids)
    assert interpreter.app.contexts.kernel_pids("sbx-stop") == []
    assert sandbox.list_code_contexts() == []
    after = sandbox.run_code("lost")
    assert after.error is not None and after.error.name == "NameError"


def test_a_kernel_that_exits_is_replaced(interpreter: Interpreter) -> None:
    """Code that ends the kernel process gets a DeadKernelError; the next run gets a fresh kernel."""
    sandbox = interpreter.sandbox("sbx-exit")
    sandbox.run_code("doomed = 1")
    died = sandbox.run_code("import os\nos._exit(3)")
    assert died.error is not None and died.error.name == "DeadKernelError"
    assert sandbox.run_code("'doomed' in globals()").text == "False"


@pytest.mark.parametrize("call", ["exit()", "quit()"])
def test_exit_ends_the_kernel_with_its_cell_and_the_next_cells_get_a_fresh_one(
    interpreter: Interpreter, call: str
) -> None:
    """``exit()`` asks ipykernel to end 0.1 s later, whatever the next cell is doing then.

    The cell that calls it ends without an error, and every cell after it runs in a new
    kernel, at once or later alike. Before, the next cell could still run in the ending
    kernel (its state still there) and the one after it, or itself if it was running at
    that instant, ended with a DeadKernelError.
    """
    sandbox = interpreter.sandbox(f"sbx-{call[:4]}")
    sandbox.run_code("kept = 1")
    for _ in range(2):
        ended = sandbox.run_code(call)
        assert ended.error is None
        # Runs past the instant the old kernel's loop stops: in it, this cell would die.
        after = sandbox.run_code("import time\ntime.sleep(0.3)\n'kept' in globals()")
        assert (after.error, after.text) == (None, "False")
        sandbox.run_code("kept = 1")


def test_exit_keep_kernel_keeps_the_kernel(interpreter: Interpreter) -> None:
    """``exit(keep_kernel=True)`` does not end the kernel (IPython's ``keepkernel``): state stays."""
    sandbox = interpreter.sandbox("sbx-exit-keep")
    sandbox.run_code("kept = 1")
    assert sandbox.run_code("exit(keep_kernel=True)").error is None
    after = sandbox.run_code("import time\ntime.sleep(0.3)\n'kept' in globals()")
    assert (after.error, after.text) == (None, "True")


def test_a_cell_whose_reply_the_kernel_cannot_send_ends_at_its_idle_status(
    interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell ends once the kernel has answered a later request, its own reply never sent.

    The server reads each cell's ``execute_reply`` (for ``exit()``), which ipykernel sends
    before the idle status, unless sending it fails: a payload it cannot serialize makes
    ipykernel log "Exception in message handler" and go idle without a reply. Before, such
    a cell waited ``REPLY_WAIT_SECONDS`` (10 s) for it; made an hour here, the run outlasts
    the client's 60 s. The kernel is not ended: its state stays.
    """
    monkeypatch.setattr(kernels, "REPLY_WAIT_SECONDS", 3600.0)
    sandbox = interpreter.sandbox("sbx-no-reply")
    sandbox.run_code("kept = 1")
    unsendable = (
        "get_ipython().payload_manager.write_payload({'source': 'x', 'data': object()})\n"
        "print('ran')"
    )
    ran = sandbox.run_code(unsendable, timeout=60, request_timeout=60)
    assert (ran.error, ran.logs.stdout) == (None, ["ran\n"])
    assert sandbox.run_code("'kept' in globals()").text == "True"


@pytest.mark.parametrize("cwd", ["/data/project", "/home/user/notes.txt"], ids=["missing", "file"])
def test_a_cwd_that_is_no_directory_is_kept_and_the_kernel_starts_in_home(
    interpreter: Interpreter, cwd: str
) -> None:
    """Upstream's server ``%cd``s the new kernel into the cwd: IPython prints why it cannot
    and stays where the kernel started. The context is made and answers the cwd asked for;
    nothing is created. Before, a missing cwd was created and a file answered 400."""
    sandbox_id = f"sbx-cwd-{cwd.rsplit('/', 1)[1]}"
    workspace = interpreter.router.add(sandbox_id)
    workspace.resolve("/home/user/notes.txt").write_text("not a directory")
    sandbox = interpreter.sandbox(sandbox_id)

    context = sandbox.create_code_context(cwd=cwd)

    assert context.cwd == cwd
    assert [c.cwd for c in sandbox.list_code_contexts()] == [cwd]
    started_in = sandbox.run_code("import os\nos.getcwd()", context=context).text
    assert started_in == repr(str(workspace.root / "home" / "user"))
    assert not workspace.resolve("/data").exists()
    assert workspace.resolve("/home/user/notes.txt").read_text() == "not a directory"


def test_a_restart_starts_in_the_cwd_once_it_exists(interpreter: Interpreter) -> None:
    """Each kernel start ``%cd``s again, as upstream's restart does."""
    workspace = interpreter.router.add("sbx-later-cwd")
    sandbox = interpreter.sandbox("sbx-later-cwd")
    context = sandbox.create_code_context(cwd="/home/user/later")
    workspace.resolve("/home/user/later").mkdir()

    sandbox.restart_code_context(context)

    started_in = sandbox.run_code("import os\nos.getcwd()", context=context).text
    assert started_in == repr(str(workspace.root / "home" / "user" / "later"))


KILLED = "killed while the request was in progress"


def test_a_kill_cuts_the_run_in_progress_and_the_runs_queued_behind_it(
    interpreter: Interpreter,
) -> None:
    """A sandbox killed during run_code drops its /execute connections, as E2B's teardown does.

    The SDK then finds the sandbox not running and raises its "sandbox was
    killed" TimeoutException, for the running cell and the one queued behind
    it alike, not an Execution with a DeadKernelError or a "not found" error.
    """
    sandbox = interpreter.sandbox("sbx-killed")
    sandbox.run_code("'warm'")
    started = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(
            sandbox.run_code,
            "import time\nprint('started', flush=True)\ntime.sleep(120)",
            on_stdout=lambda _: started.set(),
        )
        assert started.wait(timeout=30)
        queued = pool.submit(sandbox.run_code, "'queued'")
        # The second request waits behind the first (a fixed half second was not always
        # enough for it to arrive: after the kill it is the router's 502, no cut).
        eventually(lambda: interpreter.runs_waiting("sbx-killed") == 1, "the run is queued")
        interpreter.kill_sandbox("sbx-killed")
        for future in (running, queued):
            with pytest.raises(TimeoutException, match=KILLED):
                future.result(timeout=30)
    assert interpreter.app.contexts.kernel_pids("sbx-killed") == []


def test_a_kill_while_a_context_starts_its_kernel_says_the_sandbox_is_gone(
    interpreter: Interpreter,
) -> None:
    """create_code_context cut by a kill (or a timeout) raises the SDK's "sandbox gone" error.

    Before, it answered 404 "Context <id> not found" about the context being
    created, an id the client never saw: a caller could not tell the sandbox
    was gone and might retry for ever.
    """
    sandbox = interpreter.sandbox("sbx-killed-starting")
    contexts = interpreter.app.contexts
    before = contexts.kernels_started
    with ThreadPoolExecutor(max_workers=1) as pool:
        creating = pool.submit(sandbox.create_code_context)
        deadline = time.monotonic() + 30
        while contexts.kernels_started == before and time.monotonic() < deadline:
            time.sleep(0.01)  # the kernel is starting
        interpreter.kill_sandbox("sbx-killed-starting")
        with pytest.raises(TimeoutException, match="The sandbox was not found"):
            creating.result(timeout=30)
    assert interpreter.app.contexts.kernel_pids("sbx-killed-starting") == []


@pytest.mark.asyncio
async def test_a_kill_cuts_the_async_sdk_run_too(interpreter: Interpreter) -> None:
    """``AsyncSandbox.run_code`` reads the same cut connection and raises the same exception."""
    sandbox = interpreter.async_sandbox("sbx-killed-async")
    await sandbox.run_code("'warm'")
    started = asyncio.Event()

    async def on_stdout(_: object) -> None:
        started.set()

    running = asyncio.ensure_future(
        sandbox.run_code(
            "import time\nprint('s', flush=True)\ntime.sleep(120)", on_stdout=on_stdout
        )
    )
    await asyncio.wait_for(started.wait(), timeout=30)
    await asyncio.to_thread(interpreter.kill_sandbox, "sbx-killed-async")
    with pytest.raises(TimeoutException, match=KILLED):
        await asyncio.wait_for(running, timeout=30)


def test_a_context_without_a_cwd_works_in_home(interpreter: Interpreter) -> None:
    """No cwd, or an empty one, is ``/home/user``: answered, listed, and where the kernel runs.

    The default context made by the first run_code is listed with it too.
    """
    workspace = interpreter.router.add("sbx-home-cwd")
    sandbox = interpreter.sandbox("sbx-home-cwd")
    assert sandbox.create_code_context().cwd == "/home/user"
    response = httpx.post(
        f"{interpreter.url}/contexts",
        headers=interpreter.headers("sbx-home-cwd"),
        json={"cwd": "", "language": ""},
    )
    assert response.status_code == 200
    assert response.json()["cwd"] == "/home/user"
    assert response.json()["language"] == "python"
    assert sandbox.run_code("import os\nos.getcwd()").text == repr(str(workspace.home))
    assert [c.cwd for c in sandbox.list_code_contexts()] == ["/home/user"] * 3


def test_contexts_are_listed_oldest_first(interpreter: Interpreter) -> None:
    """``GET /contexts`` keeps the order the contexts were made in."""
    interpreter.router.add("sbx-order").resolve("/home/user/b").mkdir(parents=True)
    sandbox = interpreter.sandbox("sbx-order")
    made = [sandbox.create_code_context(cwd=cwd).id for cwd in ("/home/user/b", "/home/user")]
    assert [c.id for c in sandbox.list_code_contexts()] == made


def test_remove_and_restart_answer_200_null(interpreter: Interpreter) -> None:
    """On the wire, both answer ``200`` with the JSON body ``null``."""
    sandbox = interpreter.sandbox("sbx-null")
    context = sandbox.create_code_context()
    headers = interpreter.headers("sbx-null")
    restarted = httpx.post(
        f"{interpreter.url}/contexts/{context.id}/restart", headers=headers, timeout=60
    )
    assert (restarted.status_code, restarted.content) == (200, b"null")
    removed = httpx.delete(f"{interpreter.url}/contexts/{context.id}", headers=headers)
    assert (removed.status_code, removed.content) == (200, b"null")


def test_a_restart_answers_once_the_fresh_kernel_runs(interpreter: Interpreter) -> None:
    """The old kernel process is gone and a new one runs when restart returns, as upstream's
    restart does (a kernel that cannot start is reported by the restart, not later)."""
    sandbox = interpreter.sandbox("sbx-fresh")
    context = sandbox.create_code_context()
    [old] = interpreter.app.contexts.kernel_pids("sbx-fresh")
    sandbox.restart_code_context(context)
    [new] = interpreter.app.contexts.kernel_pids("sbx-fresh")
    assert new != old and _gone(old) and not _gone(new)


def test_a_removed_default_context_is_made_anew_by_the_next_run(interpreter: Interpreter) -> None:
    """The default context can be removed like any other; the next run_code without a
    context makes a fresh one, the only one listed."""
    sandbox = interpreter.sandbox("sbx-new-default")
    sandbox.run_code("old = 1")
    [default] = sandbox.list_code_contexts()
    sandbox.remove_code_context(default)
    after = sandbox.run_code("'old' in globals()")
    assert after.text == "False"
    [fresh] = sandbox.list_code_contexts()
    assert fresh.id != default.id

"""An in-process server (``ServerThread``) left running cleans up when the interpreter exits.

As a notebook's kernel shut down or restarted does: the script starts a server,
makes a sandbox run a background command, and ends without stopping anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """
import json
from e2b import Sandbox
from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

key = ApiKey(key="e2b_" + "0" * 40, team="default", id="nb")
settings = Settings(api_keys=[key])
server = ServerThread(create_app(SimBackend.default(seed=1, replicas=1), settings)).start()
sbx = Sandbox.create("base", api_key=key.key, api_url=server.url, sandbox_url=server.url)
handle = sbx.commands.run("sleep 777", background=True)
print(json.dumps({"pid": handle.pid}), flush=True)
"""

# Ctrl-C landing while stop() waits for the lifespan shutdown (the end of the demo's
# `with ServerThread(...)`): a real SIGINT, sent once the shutdown has begun, which then
# takes a while longer. (CPython 3.11 marks a thread whose join() a signal interrupted
# as stopped, though it runs on: the exit must not trust the thread's join.)
INTERRUPTED_STOP = """
import asyncio, signal, threading
# Python's own Ctrl-C handler, whatever this process inherited: a test run started in the
# background of a non-interactive shell has SIGINT ignored, and a child keeps that.
signal.signal(signal.SIGINT, signal.default_int_handler)
real_aclose = server.app.aclose
main = threading.main_thread().ident

async def interrupted_aclose():
    # To the main thread itself: a process-wide signal may land on the server's thread,
    # and the main thread's wait would only see it once the wait had ended.
    signal.pthread_kill(main, signal.SIGINT)
    await asyncio.sleep(0.5)
    await real_aclose()

server.app.aclose = interrupted_aclose
try:
    # Longer than the default 10 s: a loaded machine's shutdown must still reach aclose
    # while stop() waits.
    server.stop(timeout=60)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone but for its exit status (re-parented to init, which reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or the read
        return False


@pytest.mark.parametrize("end", ["", INTERRUPTED_STOP], ids=["left-running", "stop-interrupted"])
def test_a_running_server_stops_its_sandboxes_at_interpreter_exit(tmp_path: Path, end: str) -> None:
    # The app's own workspace root, as a notebook's server has: kruise-e2b-<uuid> in TMPDIR.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT + end],
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pid = json.loads(done.stdout.splitlines()[0])["pid"]
    assert done.stdout.splitlines()[1:] == (["interrupted"] if end else [])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not _alive(pid), "the sandbox's background command outlived the interpreter"
        assert not list(tmp_path.glob("kruise-e2b-*")), "workspaces left behind"
    finally:
        if _alive(pid):
            os.kill(pid, 9)

"""SIGTERM (what a CI timeout sends) cleans up a run that uses ``kruise_e2b`` as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2b.test_serve import processes_with

pytest_plugins = ["pytester"]

INNER = """
import time
from pathlib import Path

from e2b import Sandbox
from e2b_code_interpreter import Sandbox as CodeSandbox


def test_long(kruise_e2b):
    Sandbox.create().commands.run("sleep {marker}", background=True)
    CodeSandbox.create().run_code("1 + 1")  # a kernel, and its directory
    Path("ready").write_text("")
    time.sleep(120)
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["in-process", "xdist-controller-only"])
def test_sigterm_stops_the_sandboxes_processes_and_removes_their_directories(
    suite: pytest.Pytester, tmp_path: Path, xdist: list[str]
) -> None:
    """Under xdist the signal goes to the controller alone (``docker stop``, a pod's end, a
    plain ``kill``), not to its process group: the controller passes it on to the worker
    that serves."""
    marker = str(10**9 + time.time_ns() % 10**9)  # a sleep no other process runs
    suite.makepyfile(test_long=INNER.format(marker=marker))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *xdist, "test_long.py"],
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            _wait_for(suite.path / "ready", proc)
            assert processes_with(marker)
            assert list(tmp.glob("kruise-e2b-*")) and list(tmp.glob("kruise-kernels-*"))
            if xdist:
                time.sleep(1)  # the controller has the setup report that says the worker serves
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            leftover = processes_with(marker)
            for pid in leftover:  # the run could not
                os.kill(pid, signal.SIGKILL)

    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert leftover == []
    assert list(tmp.glob("kruise-e2b-*")) == []
    assert list(tmp.glob("kruise-kernels-*")) == []


def test_the_handler_is_restored_and_never_replaces_someone_elses() -> None:
    from pytest_kruise_agents.plugin.server import sigterm_as_interrupt

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises before this ends
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def theirs(signum: int, frame: object) -> None:
            pass

        signal.signal(signal.SIGTERM, theirs)
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is theirs
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)

"""SIGTERM (what a CI timeout sends) cleans up a run that uses ``kruise_e2b`` as Ctrl-C does."""

from __future__ import annotations

import os
import re
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


SLOW_SETUP = """
import time
from pathlib import Path

import pytest
from e2b import Sandbox


@pytest.fixture
def prepared(kruise_e2b):
    # A project's own fixture that prepares a sandbox (installs, warms a kernel): a slow setup,
    # so no report of this worker reaches the controller before the signal does.
    sandbox = Sandbox.create()
    sandbox.commands.run("sleep {marker}", background=True)
    Path("ready").write_text("")
    time.sleep(120)
    return sandbox


def test_uses_prepared(prepared):
    pass
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _terminated(
    suite: pytest.Pytester, tmp_path: Path, source: str, args: list[str], signals: list[float]
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run ``source`` in a pytest subprocess; once the test has written ``ready``, send SIGTERM
    to that process alone after each delay in ``signals`` (s). The run's outcome, and the
    processes running the marker's sleep it left (killed here)."""
    marker = str(10**9 + time.time_ns() % 10**9)  # a sleep no other process runs
    suite.makepyfile(test_long=source.format(marker=marker))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    with subprocess.Popen(
        [*command, "test_long.py"],
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            _wait_for(suite.path / "ready", proc)
            # The background command is started, not yet its sleep: the login shell running it
            # reads its profile before it execs the sleep, later under load.
            deadline = time.monotonic() + 10
            while not processes_with(marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert processes_with(marker)
            assert list(tmp.glob("kruise-e2b-*"))
            if "CodeSandbox" in source:
                assert list(tmp.glob("kruise-kernels-*"))
            for delay in signals:
                time.sleep(delay)
                proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            leftover = processes_with(marker)
            for pid in leftover:  # the run could not
                os.kill(pid, signal.SIGKILL)
    assert list(tmp.glob("kruise-e2b-*")) == [], output
    assert list(tmp.glob("kruise-kernels-*")) == [], output
    return subprocess.CompletedProcess(command, proc.returncode, output), leftover


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["in-process", "xdist-controller-only"])
def test_sigterm_stops_the_sandboxes_processes_and_removes_their_directories(
    suite: pytest.Pytester, tmp_path: Path, xdist: list[str]
) -> None:
    """Under xdist the signal goes to the controller alone (``docker stop``, a pod's end, a
    plain ``kill``), not to its process group: the controller passes it on to the worker
    that serves."""
    run, leftover = _terminated(suite, tmp_path, INNER, xdist, [1 if xdist else 0])
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout
    assert leftover == []


def test_under_xdist_a_sigterm_during_a_workers_first_setup_reaches_it(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """The controller knows each worker from its start, not from its first report: a signal
    while a project's fixture still prepares the worker's first sandbox cleans that up too."""
    run, leftover = _terminated(suite, tmp_path, SLOW_SETUP, ["-n", "2"], [0])
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout
    assert leftover == []


def test_under_xdist_a_second_sigterm_is_ignored_while_the_teardowns_run(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """A supervisor that repeats its signal: the controller still ends as an interrupted run,
    its session finishing (the summary line is printed), and the worker still cleans up."""
    run, leftover = _terminated(suite, tmp_path, INNER, ["-n", "2"], [1, 0.3])
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.stdout
    assert "Traceback" not in run.stdout
    assert re.search(r"\bin \d+\.\d+s\b", run.stdout.splitlines()[-1]), run.stdout
    assert leftover == []


RELAY_PROBE = """
import signal
from pathlib import Path


def theirs(signum, frame):
    pass


def pytest_configure(config):
    if {theirs} and not hasattr(config, "workerinput"):
        signal.signal(signal.SIGTERM, theirs)


def pytest_testnodeready(node):
    handler = signal.getsignal(signal.SIGTERM)
    Path("handler").write_text(getattr(handler, "__name__", str(handler)))
"""


@pytest.mark.parametrize(("theirs", "expected"), [(False, "_relay"), (True, "theirs")])
def test_the_xdist_controller_relays_from_its_first_worker_unless_sigterm_is_someone_elses(
    suite: pytest.Pytester, theirs: bool, expected: str
) -> None:
    suite.makeconftest(RELAY_PROBE.format(theirs=theirs))
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1)
    assert (suite.path / "handler").read_text() == expected


def test_the_handler_is_restored_and_never_replaces_someone_elses() -> None:
    from pytest_kruise_agents.plugin.interrupt import sigterm_as_interrupt

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


SECOND_SIGTERM = """
import os, signal, time

from pytest_kruise_agents.plugin.interrupt import sigterm_as_interrupt

with sigterm_as_interrupt():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal is handled before this ends
        print("not interrupted")
    except KeyboardInterrupt as exc:
        print("interrupted:", exc)
    os.kill(os.getpid(), signal.SIGTERM)  # the teardowns go on
    time.sleep(0.05)
    print("second ignored")
print("restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


def test_a_second_sigterm_is_ignored_while_the_first_ones_teardowns_run() -> None:
    """The first SIGTERM interrupts, the next ones do nothing until the block ends, which
    restores the default action (in a process of its own: a second SIGTERM not ignored
    ends it)."""
    done = subprocess.run(
        [sys.executable, "-c", SECOND_SIGTERM], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.splitlines()) == (
        0,
        ["interrupted: signal SIGTERM", "second ignored", "restored: True"],
    ), done.stderr


def test_a_handler_installed_meanwhile_is_left_in_place() -> None:
    """The block restores the default only over its own handler: one the tests installed in
    the meantime is theirs, and stays."""
    from pytest_kruise_agents.plugin.interrupt import sigterm_as_interrupt

    def theirs(signum: int, frame: object) -> None:
        pass

    try:
        with sigterm_as_interrupt():
            signal.signal(signal.SIGTERM, theirs)
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

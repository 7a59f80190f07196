"""``bench/planning.py``: a child run that fails ends the script with one clear line, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_failed_child_run_is_one_line_naming_it_and_its_exit_status() -> None:
    """A large run of 0 claims is a bad scenario in the child (exit 1): the parent names the
    child's command and exit status on its last line, with no traceback of its own.

    Before, the parent raised ``subprocess.CalledProcessError`` and printed its traceback.
    """
    driver = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import planning; "
        "planning.in_subprocess('planning', 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 1, proc.stderr
    expected = "planning: the run `--one planning 0` failed (exit 1); its error is above"
    assert proc.stderr.strip().splitlines()[-1] == expected, proc.stderr
    # The child's own error is shown above it (once: it is the only traceback).
    assert proc.stderr.count("Traceback") == 1 and "ScenarioError" in proc.stderr
    assert "CalledProcessError" not in proc.stderr

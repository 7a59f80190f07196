"""A derandomized Hypothesis test draws the same examples whatever ran before it.

Hypothesis reads constants from the project's modules loaded in the process;
``tests/conftest.py`` loads them all before the first test, so a module an
earlier test loads adds nothing the pool did not hold already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from .conftest import project_modules

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("hypothesis_probe.py")


def draws(tmp_path: Path, load: str) -> list[str]:
    """What ``hypothesis_probe.py``'s test is handed, run by pytest after a test that loads ``load``."""
    out = tmp_path / f"draws-{load or 'nothing'}.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PYTHONPATH=str(ROOT), PROBE_LOAD=load, PROBE_OUT=str(out))
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(PROBE)]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_text().splitlines()


def test_a_module_an_earlier_test_loads_does_not_change_the_examples(tmp_path: Path) -> None:
    """``simulator.planning`` loaded at run time (as its tests do) leaves the draws as they were.

    Without the conftest the pool gained the planning modules' constants and the
    probe was handed other floats (``tests/simulator`` before
    ``tests/cluster/test_inplace_resize.py`` turned a passing run into a failing one).
    """
    alone = draws(tmp_path, "")
    after = draws(tmp_path, "simulator.planning")
    assert len(alone) == 200
    assert after == alone


@given(st.none())
def test_every_module_of_the_project_is_loaded_before_a_hypothesis_test(_: None) -> None:
    """Whatever this process was handed, the project's modules are all in ``sys.modules``."""
    names = project_modules()
    assert "simulator.planning.report" in names
    assert "pytest_kruise_agents.e2b.app" in names
    assert not any(name.endswith(".__main__") for name in names)
    assert [name for name in names if name not in sys.modules] == []

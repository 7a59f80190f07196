"""Importing the library harms no pytest run that follows in the same process.

pytest marks the top-level packages of a distribution with a ``pytest11`` entry
point for assertion rewriting (``pytest_kruise_agents``; ``simulator`` too when
installed from a wheel) and warns for one already imported: a script or a
notebook that uses the library, then calls ``pytest.main()`` under
``filterwarnings = error``, must still run its tests.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import sys

import pytest

import pytest_kruise_agents
from simulator.cluster import Cluster  # the library in use before the tests run

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "test_one.py"]))
"""

INI = """\
[pytest]
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

CONFTEST = """\
import pytest

# What a wheel's install marks; the editable install of the tests marks only the first.
pytest.register_assert_rewrite("pytest_kruise_agents", "simulator")
"""


def test_a_script_that_uses_the_library_then_runs_pytest_gets_no_warning(tmp_path: Path) -> None:
    (tmp_path / "run.py").write_text(SCRIPT)
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "run.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "Warning" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["pytest_kruise_agents", "simulator"])
def test_no_assert_of_a_package_init_relies_on_rewriting(package: str) -> None:
    # PYTEST_DONT_REWRITE in its docstring leaves the package's __init__ unrewritten
    # (its modules are rewritten as before): an assert there would lose pytest's message.
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    assert "PYTEST_DONT_REWRITE" in (ast.get_docstring(tree) or "")
    assert [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)] == []

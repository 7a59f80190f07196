"""The server package's public surface: its names load when used, not with its modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest_kruise_agents.e2b as e2b_package

ROOT = Path(__file__).resolve().parents[2]


def test_the_config_module_loads_without_the_app() -> None:
    """The pytest plugin reads a config file with ``e2b.config``: FastAPI and Starlette (the
    app) load only for a test that serves, not with the package."""
    probe = "import sys\nimport pytest_kruise_agents.e2b.config\nprint(' '.join(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = out.stdout.split()
    assert "pytest_kruise_agents.e2b.config" in loaded
    heavy = ("fastapi", "starlette", "uvicorn", "pytest_kruise_agents.e2b.app")
    assert [m for m in loaded if m.startswith(heavy)] == []


def test_every_public_name_is_its_modules_object() -> None:
    for name in e2b_package.__all__:
        home = importlib.import_module(e2b_package._LAZY[name])
        assert getattr(e2b_package, name) is getattr(home, name), name
    assert set(e2b_package.__all__) <= set(dir(e2b_package))

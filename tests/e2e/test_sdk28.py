"""e2b 2.8.x (``POST /sandboxes``, ``POST /sandboxes/{id}/connect``) against the same server.

The old SDK lives in its own venv (``make sdks``), so it runs in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import ADMIN_KEY, ALICE_KEY, Server

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".sdk" / "e2b-2.8" / "bin" / "python"
SCRIPT = Path(__file__).parent / "clients" / "sdk28_session.py"


def test_sdk_2_8_session_over_the_v1_routes(server: Server) -> None:
    assert PYTHON.exists(), "run `make sdks` to install e2b 2.8.x into .sdk/e2b-2.8"
    version = subprocess.run(
        [str(PYTHON), "-c", "import importlib.metadata as m; print(m.version('e2b'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("2.8."), version
    env = {
        "PATH": os.environ.get("PATH", ""),
        "E2B_API_URL": server.url,
        "E2B_SANDBOX_URL": server.url,
        "E2B_API_KEY": ALICE_KEY,
        "ADMIN_KEY": ADMIN_KEY,
    }
    proc = subprocess.run(
        [str(PYTHON), str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("create", "commands", "files", "get_info", "auto_pause", "connect", "kill"):
        assert f"{step} ok" in proc.stdout, proc.stdout

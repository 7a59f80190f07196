"""The JavaScript SDK (npm ``e2b``, run by Node.js) against the same server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .conftest import ALICE_KEY, Server

ROOT = Path(__file__).resolve().parents[2]
JS_SDK = ROOT / ".sdk" / "js"
SCRIPT = Path(__file__).parent / "clients" / "js_smoke.mjs"


def test_js_sdk_create_run_files_kill(server: Server, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the JavaScript SDK smoke test"
    assert (JS_SDK / "node_modules" / "e2b").is_dir(), "run `make sdks` to install npm e2b"
    # Node resolves bare imports from the script's directory upwards: run a copy
    # placed next to the installed node_modules.
    script = JS_SDK / "js_smoke.mjs"
    shutil.copyfile(SCRIPT, script)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "E2B_API_URL": server.url,
        "E2B_SANDBOX_URL": server.url,
        "E2B_API_KEY": ALICE_KEY,
    }
    proc = subprocess.run(
        [node, str(script)], capture_output=True, text=True, env=env, timeout=120, cwd=JS_SDK
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("create", "commands", "files", "kill"):
        assert f"{step} ok" in proc.stdout, proc.stdout

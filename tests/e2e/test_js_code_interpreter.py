"""The JavaScript code-interpreter SDK (npm ``@e2b/code-interpreter``, run by Node.js) against
the same server, its answers compared with what the Python ``e2b_code_interpreter`` SDK gets.

One Node.js run (``clients/js_code_interpreter.mjs``) drives one sandbox through every step and
prints what each got; the Python SDK runs the same cells in a sandbox of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2b_code_interpreter import Execution, Sandbox

from .conftest import ALICE_KEY, Server

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / ".sdk" / "js" / "node_modules" / "@e2b" / "code-interpreter" / "dist" / "index.mjs"
SCRIPT = Path(__file__).parent / "clients" / "js_code_interpreter.mjs"

UNICODE_LINE = "é€😀" * 30000
"""About 270 KB of UTF-8 in one line: the response reaches the client in many chunks."""

CELLS: list[dict[str, Any]] = [
    # Not compared: the first import of matplotlib on a host may build its font cache and say
    # so on stderr, in whichever sandbox comes first.
    {"name": "import", "code": "import matplotlib.pyplot", "compare": False},
    {"name": "value", "code": "import sys\nprint('out')\nprint('err', file=sys.stderr)\n40 + 2"},
    {"name": "error", "code": "def fail():\n    raise ValueError('bad value')\n\nfail()"},
    {
        "name": "chart",
        "code": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()",
    },
    {
        "name": "display",
        "code": (
            "from IPython.display import HTML, display\n"
            "display(HTML('<b>bold</b>'))\n"
            "display({'text/plain': 'p', 'application/x-custom': 'c'}, raw=True)"
        ),
    },
    {"name": "unicode", "code": f"line = {UNICODE_LINE[:3]!r} * 30000\nprint(line)\nlen(line)"},
    {"name": "envs", "code": "import os\nos.environ['FROM_CLIENT']", "envs": {"FROM_CLIENT": "x"}},
    {"name": "envs_after", "code": "import os\nos.environ.get('FROM_CLIENT')"},
]

RESULT_FIELDS = (
    "text",
    "html",
    "markdown",
    "svg",
    "png",
    "jpeg",
    "pdf",
    "latex",
    "json",
    "javascript",
    "data",
    "chart",
    "extra",
)


COMPARED = [cell["name"] for cell in CELLS if cell.get("compare", True)]


def shorten(result: dict[str, Any]) -> dict[str, Any]:
    """A result line with its PNG cut to the PNG signature (base64), for comparing."""
    if "png" in result:
        result = {**result, "png": result["png"][:11]}
    return result


@pytest.fixture(scope="module")
def js(server: Server) -> dict[str, Any]:
    """What the JavaScript SDK got at each step."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the JavaScript code-interpreter SDK tests"
    assert SDK.is_file(), "run `make sdks` to install npm @e2b/code-interpreter"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "E2B_API_URL": server.url,
        "E2B_SANDBOX_URL": server.url,
        "E2B_API_KEY": ALICE_KEY,
        "E2B_CODE_INTERPRETER_SDK": SDK.as_uri(),
        "CELLS": json.dumps(CELLS),
    }
    proc = subprocess.run(
        [node, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got: dict[str, Any] = json.loads(proc.stdout)
    return got


@pytest.fixture(scope="module")
def python(server: Server) -> dict[str, Execution]:
    """What the Python SDK got for the same cells, in a sandbox of its own."""
    sandbox = Sandbox.create(api_key=ALICE_KEY, api_url=server.url, sandbox_url=server.url)
    try:
        return {
            cell["name"]: sandbox.run_code(cell["code"], envs=cell.get("envs")) for cell in CELLS
        }
    finally:
        sandbox.kill()


def python_cell(execution: Execution) -> dict[str, Any]:
    """A Python SDK execution in the form the script prints a JavaScript one."""
    results = []
    for result in execution.results:
        fields = {name: getattr(result, name) for name in RESULT_FIELDS}
        fields = {name: value for name, value in fields.items() if value is not None}
        results.append(shorten({**fields, "is_main_result": result.is_main_result}))
    error = execution.error
    return {
        "text": execution.text,
        "results": results,
        "stdout": "".join(execution.logs.stdout),
        "stderr": "".join(execution.logs.stderr),
        "error": None
        if error is None
        else {"name": error.name, "value": error.value, "traceback": error.traceback},
        "execution_count": execution.execution_count,
    }


def js_cell(js: dict[str, Any], name: str) -> dict[str, Any]:
    """A cell as the script printed it, callbacks apart, PNGs shortened and each log joined
    (how the kernel cuts a stream into messages depends on its timing)."""
    cell = {k: v for k, v in js["cells"][name].items() if k != "callbacks"}
    return {
        **cell,
        "results": [shorten(r) for r in cell["results"]],
        "stdout": "".join(cell["stdout"]),
        "stderr": "".join(cell["stderr"]),
    }


def test_the_sdk_default_template_is_the_code_interpreter_pool(js: dict[str, Any]) -> None:
    assert js["template"] == "code-interpreter-v1"


@pytest.mark.parametrize("name", COMPARED)
def test_each_cell_answers_as_it_answers_the_python_sdk(
    js: dict[str, Any], python: dict[str, Execution], name: str
) -> None:
    """Text, results (every field the server sent), stdout and stderr, error with its
    traceback and execution count are the same for both SDKs, cell by cell."""
    assert js_cell(js, name) == python_cell(python[name])


def test_a_value_with_logs_reaches_the_callbacks(js: dict[str, Any]) -> None:
    """``onStdout`` and ``onStderr`` get each line, ``onResult`` the cell's value."""
    cell = js["cells"]["value"]
    assert cell["text"] == "42"
    callbacks = cell["callbacks"]
    assert "".join(callbacks["stdout"]) == "out\n"
    assert "".join(callbacks["stderr"]) == "err\n"
    assert (callbacks["results"], callbacks["errors"]) == (1, [])
    assert cell["execution_count"] == 2


def test_an_error_has_its_name_value_and_traceback(js: dict[str, Any]) -> None:
    cell = js["cells"]["error"]
    assert cell["error"]["name"] == "ValueError"
    assert cell["error"]["value"] == "bad value"
    assert "fail()" in cell["error"]["traceback"]
    assert cell["callbacks"]["errors"] == ["ValueError"]
    assert cell["text"] is None


def test_a_matplotlib_chart_is_a_png_display(js: dict[str, Any]) -> None:
    (result,) = js["cells"]["chart"]["results"]
    assert result["png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert result["is_main_result"] is False


def test_displays_keep_their_formats(js: dict[str, Any]) -> None:
    """An unknown MIME type arrives under ``extra``: the JavaScript SDK keeps it in
    ``result.raw.extra`` only (its ``result.extra`` and ``formats()`` leave it out)."""
    html, custom = js["cells"]["display"]["results"]
    assert html["html"] == "<b>bold</b>"
    assert custom == {"text": "p", "extra": {"application/x-custom": "c"}, "is_main_result": False}


def test_non_ascii_output_reaches_the_js_sdk_intact(js: dict[str, Any]) -> None:
    """The SDK decodes each chunk of the stream on its own, so a character split between two
    chunks would become U+FFFD; the server's lines are ASCII (``\\uXXXX`` escapes)."""
    cell = js["cells"]["unicode"]
    assert "".join(cell["stdout"]) == UNICODE_LINE + "\n"
    assert cell["text"] == "90000"


def test_envs_apply_to_one_execution(js: dict[str, Any]) -> None:
    assert js["cells"]["envs"]["text"] == "'x'"
    assert js["cells"]["envs_after"]["text"] is None


def test_a_code_context_with_a_cwd_keeps_its_own_state(js: dict[str, Any]) -> None:
    """Its kernel starts in the ``cwd``; restart loses its state, remove unlists it, and a
    removed context answers 404 (the SDK's ``NotFoundError``)."""
    context = js["context"]
    assert context["language"] == "python"
    assert context["cwd"] == "/home/user/work"
    assert context["dir"] == "'work'"
    assert context["inner"] == "'inner'"
    assert context["outer"] == "False"
    assert context["listed"] is True
    assert context["after_restart"] == "False"
    assert context["listed_after_remove"] is False
    assert context["removed"]["type"] == "NotFoundError"
    assert "not found" in context["removed"]["message"]


def test_an_unsupported_language_is_refused(js: dict[str, Any]) -> None:
    """400: without ``E2B_USER_AGENT_SOURCE=ci`` the JavaScript SDK's message has no body."""
    assert js["language"] == {"type": "SandboxError", "message": "400 Bad Request"}


def test_a_timeout_interrupts_the_cell(js: dict[str, Any]) -> None:
    """``timeoutMs`` aborts the request; the server interrupts the cell, so the next one in
    the context runs at once and the timed-out cell never finished."""
    assert js["timeout"]["type"] == "TimeoutError"
    assert js["timeout"]["message"].startswith("Execution timed out")
    assert js["after_timeout"] == "False"


def test_a_kill_during_run_code_is_the_sdks_sandbox_killed_error(js: dict[str, Any]) -> None:
    """The server cuts the stream; the SDK finds the sandbox not running."""
    assert js["killed"]["type"] == "TimeoutError"
    assert js["killed"]["message"].startswith("The sandbox was killed while the request")

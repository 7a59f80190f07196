"""``POST /execute`` through the real ``e2b_code_interpreter`` SDK: outputs, state, errors, env vars.

All tests of this module share one server and, where they use the sandbox
``sbx-exec``, one Python kernel (its default context).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from e2b import NotFoundException, SandboxException, TimeoutException
from e2b_code_interpreter import Context

from pytest_kruise_agents.e2b.daemons import MARKER_VAR
from tests.e2b.conftest import eventually
from tests.e2b.interpreter.conftest import Interpreter

SANDBOX = "sbx-exec"


def test_an_expression_is_the_main_result(interpreter: Interpreter) -> None:
    """``1+1`` answers the text ``2`` as the main result, with its execution count."""
    execution = interpreter.sandbox(SANDBOX).run_code("1+1")
    assert execution.text == "2"
    assert [r.is_main_result for r in execution.results] == [True]
    assert execution.error is None
    assert isinstance(execution.execution_count, int)


def test_prints_are_logs(interpreter: Interpreter) -> None:
    """print goes to ``logs.stdout``, writes to sys.stderr to ``logs.stderr``; no result.

    The kernel decides how output is cut into chunks, so the tests join them.
    """
    execution = interpreter.sandbox(SANDBOX).run_code(
        "import sys\nprint('h\u00e9llo \u2713')\nprint('oops', file=sys.stderr)"
    )
    assert "".join(execution.logs.stdout) == "h\u00e9llo \u2713\n"
    assert "".join(execution.logs.stderr) == "oops\n"
    assert execution.results == []


def test_output_is_streamed_to_the_callbacks(interpreter: Interpreter) -> None:
    """on_stdout and on_result see each output as its line arrives."""
    seen: list[tuple[str, str]] = []
    interpreter.sandbox(SANDBOX).run_code(
        "print('a')\nprint('b')\n'c'",
        on_stdout=lambda message: seen.append(("stdout", message.line)),
        on_result=lambda result: seen.append(("result", str(result.text))),
    )
    stdout = "".join(text for kind, text in seen if kind == "stdout")
    assert stdout == "a\nb\n"
    assert seen[-1] == ("result", "'c'")


def test_state_persists_across_calls(interpreter: Interpreter) -> None:
    """Variables, imports and functions defined in one call are there in the next."""
    sandbox = interpreter.sandbox(SANDBOX)
    sandbox.run_code("import math\nstate_x = 20\ndef twice(v):\n    return 2 * v")
    first = sandbox.run_code("twice(state_x) + math.floor(1.5)")
    second = sandbox.run_code("state_x += 1\nstate_x")
    assert first.text == "41"
    assert second.text == "21"
    assert first.execution_count is not None and second.execution_count is not None
    assert second.execution_count > first.execution_count


def test_an_exception_is_an_error_with_its_traceback(interpreter: Interpreter) -> None:
    """A raising cell gives ``error`` with name, value and the traceback as one string."""
    execution = interpreter.sandbox(SANDBOX).run_code("print('before')\n1/0")
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "ZeroDivisionError" in execution.error.traceback
    assert "\n" in execution.error.traceback
    assert "".join(execution.logs.stdout) == "before\n"
    assert execution.results == []


def test_the_kernel_goes_on_after_an_error(interpreter: Interpreter) -> None:
    """A failed cell does not abort the next one."""
    sandbox = interpreter.sandbox(SANDBOX)
    assert sandbox.run_code("undefined_name").error is not None
    assert sandbox.run_code("'still here'").text == "'still here'"


def test_a_matplotlib_chart_is_a_png_result(interpreter: Interpreter) -> None:
    """plt.show() displays the figure: a non-main result with a base64 PNG."""
    execution = interpreter.sandbox(SANDBOX).run_code(
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('chart')\nplt.show()"
    )
    assert execution.error is None
    [chart] = execution.results
    assert chart.is_main_result is False
    assert chart.png is not None
    assert base64.b64decode(chart.png).startswith(b"\x89PNG\r\n\x1a\n")
    assert chart.text is not None and "Figure" in chart.text


def test_a_figure_as_last_expression_is_a_png_main_result(interpreter: Interpreter) -> None:
    """A figure object as the cell's value is rendered as PNG in the main result."""
    execution = interpreter.sandbox(SANDBOX).run_code(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nfig"
    )
    main = [r for r in execution.results if r.is_main_result]
    assert len(main) == 1 and main[0].png is not None
    assert base64.b64decode(main[0].png).startswith(b"\x89PNG")


def test_rich_displays_keep_their_formats(interpreter: Interpreter) -> None:
    """HTML, Markdown and JSON displays land in their own result fields."""
    execution = interpreter.sandbox(SANDBOX).run_code(
        "from IPython.display import HTML, Markdown, JSON, display\n"
        "display(HTML('<b>bold</b>'))\n"
        "display(Markdown('# title'))\n"
        "display(JSON({'k': 1}))"
    )
    html, markdown, data = execution.results
    assert html.html == "<b>bold</b>"
    assert markdown.markdown == "# title"
    assert data.json == {"k": 1}


def test_env_vars_apply_to_one_execution_only(interpreter: Interpreter) -> None:
    """``envs`` are set for that run and restored after it; the sandbox's own env vars stay."""
    interpreter.router.add("sbx-env", env_vars={"SANDBOX_VAR": "sandbox"})
    sandbox = interpreter.sandbox("sbx-env")
    code = "import os\n(os.environ.get('RUN_VAR'), os.environ.get('SANDBOX_VAR'))"
    during = sandbox.run_code(code, envs={"RUN_VAR": "run", "SANDBOX_VAR": "override"})
    after = sandbox.run_code(code)
    assert during.text == "('run', 'override')"
    assert after.text == "(None, 'sandbox')"


def test_a_sandbox_env_var_no_kernel_can_carry_is_a_400_naming_it(
    interpreter: Interpreter,
) -> None:
    """A sandbox given ``A=B`` another way (a SandboxClaim's envVars): named, not a bare 500."""
    interpreter.router.add("sbx-bad-env", env_vars={"A=B": "1"})
    with pytest.raises(SandboxException) as info:
        interpreter.sandbox("sbx-bad-env").run_code("1")
    assert str(info.value).startswith("400 Bad Request: ")
    assert "the sandbox's envVars: invalid variable name 'A=B'" in str(info.value)


def test_env_vars_are_restored_after_an_error(interpreter: Interpreter) -> None:
    """A failing cell does not keep its per-execution env vars."""
    sandbox = interpreter.sandbox(SANDBOX)
    failed = sandbox.run_code("raise ValueError('no')", envs={"FAIL_VAR": "set"})
    after = sandbox.run_code("import os\n'FAIL_VAR' in os.environ")
    assert failed.error is not None and failed.error.name == "ValueError"
    assert after.text == "False"


def test_the_kernel_knows_it_runs_in_a_sandbox(interpreter: Interpreter) -> None:
    """Kernels have ``E2B_SANDBOX=true`` and ``E2B_SANDBOX_ID``, as commands do."""
    execution = interpreter.sandbox("sbx-identity").run_code(
        "import os\n(os.environ.get('E2B_SANDBOX'), os.environ.get('E2B_SANDBOX_ID'))"
    )
    assert execution.text == "('true', 'sbx-identity')"


HOST_LOCALE = {
    "TZ": "Asia/Kolkata",
    "LANG": "tr_TR.UTF-8",
    "LC_ALL": "tr_TR.UTF-8",
    "LC_CTYPE": "tr_TR.UTF-8",
    "LC_TIME": "tr_TR.UTF-8",
}
ZONE_AND_LOCALE = (
    "import os, time\n"
    "(time.strftime('%z'), os.environ.get('TZ'), os.environ.get('LANG'),"
    " sorted(k for k in os.environ if k.startswith('LC_')))"
)


def test_the_kernel_has_the_sandbox_zone_and_locale_not_the_hosts(
    interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UTC and ``C.UTF-8``, as a command in the same sandbox (and E2B's images): not the host's."""
    for name, value in HOST_LOCALE.items():
        monkeypatch.setenv(name, value)

    execution = interpreter.sandbox("sbx-zone").run_code(ZONE_AND_LOCALE)

    assert execution.text == "('+0000', 'UTC', 'C.UTF-8', [])"


def test_the_sandbox_env_vars_set_the_kernel_zone(interpreter: Interpreter) -> None:
    interpreter.router.add("sbx-kolkata", env_vars={"TZ": "Asia/Kolkata"})

    execution = interpreter.sandbox("sbx-kolkata").run_code(ZONE_AND_LOCALE)

    assert execution.text == "('+0530', 'Asia/Kolkata', 'C.UTF-8', [])"


def test_the_kernel_keeps_only_a_few_host_variables_and_sets_its_own(
    interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/fidelity.md: of the host's environment a kernel keeps ``PATH``, ``TMPDIR`` and
    ``LD_LIBRARY_PATH``, nothing else; the server adds ``IPYTHONDIR`` (a directory of its
    own, outside the sandbox's home), ``MPLBACKEND`` (the inline backend) and
    ``PYDEVD_DISABLE_FILE_VALIDATION``."""
    monkeypatch.setenv("TMPDIR", "/tmp/kept-tmp")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/kept-lib")
    monkeypatch.setenv("KRUISE_TEST_HOST_ONLY", "leaked")
    workspace = interpreter.router.add("sbx-host-env")
    names = ("TMPDIR", "LD_LIBRARY_PATH", "KRUISE_TEST_HOST_ONLY", "IPYTHONDIR", "MPLBACKEND")
    code = f"import os\nfor k in {names!r}: print(os.environ.get(k))"

    execution = interpreter.sandbox("sbx-host-env").run_code(code)

    tmpdir, lib, leaked, ipython_dir, backend = "".join(execution.logs.stdout).split("\n")[:5]
    assert (tmpdir, lib, leaked) == ("/tmp/kept-tmp", "/opt/kept-lib", "None")
    assert not Path(ipython_dir).is_relative_to(workspace.root)
    assert backend == "module://matplotlib_inline.backend_inline"


def test_an_unwritable_home_puts_no_matplotlib_warning_on_stderr(
    interpreter: Interpreter, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The host's cache cannot be made: the kernels share one directory of the server instead."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    chart = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    where = "import os\nprint(os.environ['MPLCONFIGDIR'], end='')"

    runs = [interpreter.sandbox(f"sbx-mpl-{n}") for n in (1, 2)]
    charts = [sandbox.run_code(chart) for sandbox in runs]
    dirs = {"".join(sandbox.run_code(where).logs.stdout) for sandbox in runs}

    assert [c.logs.stderr for c in charts] == [[], []]
    assert [len(c.results) for c in charts] == [1, 1]
    assert len(dirs) == 1  # one directory for the server's kernels
    cache = Path(dirs.pop())
    assert not cache.is_relative_to(home)
    assert cache.is_dir() and any(cache.glob("fontlist-*.json"))


def test_the_kernel_runs_in_the_sandbox_home(interpreter: Interpreter) -> None:
    """The default context's cwd and HOME are the workspace's home directory."""
    workspace = interpreter.router.add("sbx-home")
    execution = interpreter.sandbox("sbx-home").run_code(
        "import os\nprint(os.getcwd())\nprint(os.environ['HOME'])"
    )
    assert "".join(execution.logs.stdout) == f"{workspace.home}\n{workspace.home}\n"
    assert not (workspace.home / ".ipython").exists()  # IPython's profile lives elsewhere


def test_a_timeout_interrupts_the_kernel(interpreter: Interpreter) -> None:
    """When the client gives up, the server interrupts the cell and the context stays usable."""
    sandbox = interpreter.sandbox(SANDBOX)
    sandbox.run_code("'warm'")  # the 1 s budget below is for the cell, not a kernel start
    with pytest.raises(TimeoutException):
        sandbox.run_code("import time\ntime.sleep(120)", timeout=1)
    # Without the interrupt this would wait for the 120 s sleep and time out.
    assert sandbox.run_code("'after the timeout'", timeout=30).text == "'after the timeout'"


def test_an_unknown_context_is_not_found(interpreter: Interpreter) -> None:
    """A context id the sandbox does not have answers 404 (NotFoundException)."""
    missing = Context(context_id="no-such-context", language="python", cwd="/home/user")
    with pytest.raises(NotFoundException, match="no-such-context"):
        interpreter.sandbox(SANDBOX).run_code("1", context=missing)


def test_context_and_language_together_are_refused(interpreter: Interpreter) -> None:
    """The SDK refuses both client-side; on the wire the server answers 400 JSON."""
    response = httpx.post(
        f"{interpreter.url}/execute",
        headers=interpreter.headers(SANDBOX),
        json={"code": "1", "context_id": "any", "language": "python", "env_vars": None},
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": "Only one of context_id or language can be provided",
    }


def test_an_unsupported_language_is_a_clear_400(interpreter: Interpreter) -> None:
    """Only Python kernels exist here: javascript answers 400 naming the language."""
    with pytest.raises(SandboxException, match=r"400.*javascript.*not supported"):
        interpreter.sandbox(SANDBOX).run_code("1 + 1", language="javascript")


def test_python_is_accepted_by_name(interpreter: Interpreter) -> None:
    """``language="python"`` runs in the default Python context."""
    sandbox = interpreter.sandbox(SANDBOX)
    sandbox.run_code("by_name = 'shared'")
    assert sandbox.run_code("by_name", language="python").text == "'shared'"


def test_the_stream_is_ndjson_ending_with_end_of_execution(interpreter: Interpreter) -> None:
    """The raw body: one JSON object per line, the counted cell, then ``end_of_execution``."""
    response = httpx.post(
        f"{interpreter.url}/execute",
        headers=interpreter.headers(SANDBOX),
        json={"code": "print('x')\n7", "context_id": None, "language": None, "env_vars": None},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    *stdout, result, count, end = lines
    assert "".join(line["text"] for line in stdout) == "x\n"
    assert all(line["type"] == "stdout" and "timestamp" in line for line in stdout)
    assert result == {"type": "result", "text": "7", "is_main_result": True}
    assert count["type"] == "number_of_executions" and count["execution_count"] >= 1
    assert end == {"type": "end_of_execution"}


def test_the_access_token_guards_execute(interpreter: Interpreter) -> None:
    """With an envd access token, /execute needs it in X-Access-Token (401 JSON otherwise)."""
    interpreter.router.add("sbx-token", access_token="s3cret")
    with pytest.raises(SandboxException, match="401"):
        interpreter.sandbox("sbx-token", access_token="wrong").run_code("1")
    response = httpx.post(
        f"{interpreter.url}/execute",
        headers=interpreter.headers("sbx-token"),
        json={"code": "1"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert interpreter.sandbox("sbx-token", access_token="s3cret").run_code("6*7").text == "42"


@pytest.mark.asyncio
async def test_the_async_sdk_runs_code(interpreter: Interpreter) -> None:
    """``AsyncSandbox.run_code`` reads the same stream, awaiting async callbacks."""
    sandbox = interpreter.async_sandbox(SANDBOX)
    lines: list[str] = []

    async def on_stdout(message: object) -> None:
        lines.append(str(message))

    execution = await sandbox.run_code("print('async')\n3*3", on_stdout=on_stdout)
    assert execution.text == "9"
    assert "".join(lines) == "async\n"


def test_a_slow_client_loses_no_output(interpreter: Interpreter) -> None:
    """A client that stops reading for a while gets every line of a burst, then the cell's end.

    The kernel writes far faster than this client reads: its output waits on
    the server (and in the kernel), none of it dropped, idle status included.
    """
    sandbox = interpreter.sandbox("sbx-burst")
    sandbox.run_code("'warm'")
    stalled: list[bool] = []

    def on_stdout(_: object) -> None:
        if not stalled:
            stalled.append(True)
            time.sleep(2)  # the client stops reading; the kernel goes on printing

    count = 6000
    execution = sandbox.run_code(
        f"for i in range({count}):\n    print(str(i).rjust(1000, '.'), flush=True)\n'end'",
        on_stdout=on_stdout,
        timeout=120,
    )
    numbers = [int(line.strip(".")) for text in execution.logs.stdout for line in text.split()]
    assert numbers == list(range(count))
    assert execution.text == "'end'"


def test_code_of_a_client_that_gave_up_during_the_kernel_start_never_runs(
    interpreter: Interpreter,
) -> None:
    """A first run_code whose timeout ends while the kernel starts raises, and its code never runs.

    Run after the timeout, it would surprise the caller, and run twice if
    the caller retried. The next run_code, which waited for the same start,
    goes first if the stale one would run at all, so it would see the file.
    """
    workspace = interpreter.router.add("sbx-gave-up")
    sandbox = interpreter.sandbox("sbx-gave-up")
    with pytest.raises(TimeoutException):
        sandbox.run_code("open('ran.txt', 'w').write('ran')", timeout=0.2)
    assert sandbox.run_code("import os\nos.path.exists('ran.txt')", timeout=60).text == "False"
    assert not (workspace.home / "ran.txt").exists()


def test_a_cell_without_a_value_still_has_its_execution_count(interpreter: Interpreter) -> None:
    """Every run is counted, result or not, one up from the last (env-var cells are not counted)."""
    sandbox = interpreter.sandbox(SANDBOX)
    first = sandbox.run_code("counted = 1")
    second = sandbox.run_code("print(counted)", envs={"COUNTED": "1"})
    third = sandbox.run_code("raise ValueError('counted')")
    assert first.execution_count is not None
    assert [second.execution_count, third.execution_count] == [
        first.execution_count + 1,
        first.execution_count + 2,
    ]


def test_a_kernel_that_cannot_start_is_a_500_with_its_log(interpreter: Interpreter) -> None:
    """A sandbox whose environment breaks Python: the kernel's own words come back in a 500,
    from ``/contexts`` (which then lists no new context), ``/execute`` and a restart alike."""
    interpreter.router.add("sbx-no-python", env_vars={"PYTHONHOME": "/nonexistent"})
    sandbox = interpreter.sandbox("sbx-no-python")
    with pytest.raises(SandboxException, match=r"^500 .*kernel log: .*Fatal Python error"):
        sandbox.create_code_context()
    assert sandbox.list_code_contexts() == []
    with pytest.raises(SandboxException, match=r"^500 .*kernel log: .*Fatal Python error"):
        sandbox.run_code("1")
    [default] = sandbox.list_code_contexts()  # made by run_code; its kernel did not start
    with pytest.raises(SandboxException, match=r"^500 .*kernel log: .*Fatal Python error"):
        sandbox.restart_code_context(default)
    assert interpreter.app.contexts.kernel_pids("sbx-no-python") == []


def test_a_run_queued_behind_a_removed_context_ends_with_an_error(
    interpreter: Interpreter,
) -> None:
    """The run waiting for the context's kernel when the context is removed runs nothing: it
    gets an error line naming the context, then ``end_of_execution``, like any run."""
    sandbox = interpreter.sandbox("sbx-queued")
    context = sandbox.create_code_context()
    started = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(
            sandbox.run_code,
            "import time\nprint('started', flush=True)\ntime.sleep(120)",
            context=context,
            on_stdout=lambda _: started.set(),
        )
        assert started.wait(timeout=30)
        queued = pool.submit(
            httpx.post,
            f"{interpreter.url}/execute",
            headers=interpreter.headers("sbx-queued"),
            json={"code": "'ran'", "context_id": context.id, "language": None, "env_vars": None},
            timeout=30,
        )
        # The second run waits behind the first (a fixed half second was not always enough
        # for its request to arrive: after the removal it is a 404).
        eventually(lambda: interpreter.runs_waiting("sbx-queued") == 1, "the run is queued")
        started_before = interpreter.app.contexts.kernels_started
        sandbox.remove_code_context(context)
        interrupted = running.result(timeout=30)
        response = queued.result(timeout=30)
    assert interpreter.app.contexts.kernels_started == started_before  # none for a removed one
    assert interrupted.error is not None and interrupted.error.name == "DeadKernelError"
    assert response.status_code == 200
    *lines, end = [json.loads(line) for line in response.text.splitlines()]
    assert [line["type"] for line in lines] == ["error"]
    assert lines[0]["value"] == f"Context {context.id} not found"
    assert end == {"type": "end_of_execution"}


def test_a_stray_access_token_is_ignored_by_a_sandbox_without_one(
    interpreter: Interpreter,
) -> None:
    """Only a sandbox with an envd access token checks ``X-Access-Token``."""
    sandbox = interpreter.sandbox("sbx-open", access_token="stray")
    assert sandbox.run_code("6*7").text == "42"


def test_an_empty_context_id_is_the_default_context(interpreter: Interpreter) -> None:
    """``"context_id": ""`` is "not given", as ``null`` is: the run goes to the default context."""
    sandbox = interpreter.sandbox(SANDBOX)
    sandbox.run_code("where = 'default'")
    response = httpx.post(
        f"{interpreter.url}/execute",
        headers=interpreter.headers(SANDBOX),
        json={"code": "where", "context_id": "", "language": None, "env_vars": None},
        timeout=30,
    )
    assert response.status_code == 200
    results = [json.loads(line) for line in response.text.splitlines()]
    assert {"type": "result", "text": "'default'", "is_main_result": True} in results


def test_a_kill_while_the_first_run_starts_its_kernel_says_the_sandbox_is_gone(
    interpreter: Interpreter,
) -> None:
    """The first run_code of a sandbox killed while its kernel starts raises the SDK's
    "sandbox gone" error: the connection is cut, never an empty 200 read as a run that
    printed nothing."""
    sandbox = interpreter.sandbox("sbx-killed-first-run")
    contexts = interpreter.app.contexts
    before = contexts.kernels_started
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(sandbox.run_code, "'ran'")
        deadline = time.monotonic() + 30
        while contexts.kernels_started == before and time.monotonic() < deadline:
            time.sleep(0.01)  # the kernel is starting
        interpreter.kill_sandbox("sbx-killed-first-run")
        with pytest.raises(TimeoutException, match="killed while the request was in progress"):
            running.result(timeout=30)
    assert contexts.kernel_pids("sbx-killed-first-run") == []


def test_the_kernel_runs_as_the_sandbox_user_with_its_marker(interpreter: Interpreter) -> None:
    """``user``'s login variables, and the sandbox's marker even if its env vars name it
    (docs/fidelity.md: set after them, so that no env var hides a daemon from the stop)."""
    workspace = interpreter.router.add("sbx-user", env_vars={MARKER_VAR: "/elsewhere"})
    execution = interpreter.sandbox("sbx-user").run_code(
        "import os\n"
        f"print(*(os.environ.get(k) for k in ('USER', 'LOGNAME', 'SHELL', {MARKER_VAR!r})))"
    )
    assert "".join(execution.logs.stdout) == f"user user /bin/bash {workspace.root}\n"

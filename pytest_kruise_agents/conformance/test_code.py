"""Level ``code``: the code interpreter (port 49999) through ``e2b-code-interpreter``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import pytest

from pytest_kruise_agents.conformance.expect import expect, step
from pytest_kruise_agents.conformance.plugin import check
from pytest_kruise_agents.conformance.report import clean
from pytest_kruise_agents.conformance.sandboxes import Sandboxes
from pytest_kruise_agents.conformance.sdk import api_status, code_interpreter
from pytest_kruise_agents.conformance.target import Api, Target

__all__: list[str] = []  # pytest collects the checks; nothing is imported from here


@pytest.fixture(scope="module")
def code_sandbox(conformance_target: Target, conformance_api: Api) -> Iterator[Any]:
    """One code-interpreter sandbox for the code checks (skipped without the SDK)."""
    module = code_interpreter()
    if module is None:
        pytest.skip("e2b-code-interpreter is not installed")
    template = conformance_target.code_template
    made = Sandboxes(conformance_target, conformance_api)
    try:
        try:
            sbx = module.Sandbox.create(
                template=template,
                metadata=made.metadata(),
                timeout=3600,
                **conformance_target.sdk_opts(),
            )
        except Exception as exc:
            # An unknown template answers 400 or 404 (core.create.unknown-template): the
            # server has no code interpreter to check, which is no failure of the server.
            if api_status(exc) in (400, 404):
                pytest.skip(
                    f"the server has no template {template!r} to run the code interpreter "
                    f"(create answered {_clean_text(exc)}); pass --code-template, or leave code "
                    "out of --levels"
                )
            with step(f"create a code-interpreter sandbox from {template!r}"):
                raise
        made.track(sbx.sandbox_id)
        yield sbx
    finally:
        made.cleanup()


def _clean_text(exc: BaseException, limit: int = 200) -> str:
    """``exc``'s message on one line, cut at ``limit`` characters."""
    text = " ".join(clean(str(exc)).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _run(sbx: Any, code: str, **kwargs: Any) -> Any:
    with step(f"run_code({code!r})"):
        return sbx.run_code(code, **kwargs)


@check("code.run")
def test_run_code(code_sandbox: Any) -> None:
    code = "print('hello')\n1 + 1"
    execution = _run(code_sandbox, code)
    expect(execution.error is None, f"run_code({code!r})", "no error", execution.error)
    expect(execution.text == "2", f"run_code({code!r})", "the text '2'", execution.text)
    stdout = "".join(execution.logs.stdout)
    expect(stdout == "hello\n", f"run_code({code!r}) stdout logs", "'hello\\n'", stdout)


@check("code.logs")
def test_logs(code_sandbox: Any) -> None:
    code = "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)"
    execution = _run(code_sandbox, code)
    for name, logged, wanted in (
        ("stdout", execution.logs.stdout, "to-out\n"),
        ("stderr", execution.logs.stderr, "to-err\n"),
    ):
        text = "".join(logged)
        expect(text == wanted, f"run_code({code!r}) {name} logs", repr(wanted), repr(text))


PNG_1PX: Final = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9a"
    "wAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG, base64 as Jupyter sends ``image/png``."""


HTML: Final = "<b>conformance</b>"


@check("code.display")
def test_display(code_sandbox: Any) -> None:
    code = (
        "from IPython.display import HTML, display\n"
        f"display(HTML({HTML!r}))\n"
        f"display({{'image/png': '{PNG_1PX}'}}, raw=True)\n"
        "40 + 2"
    )
    # The main result is a number: a string's repr and its quotes are the kernel's business.
    what = "run_code(display(HTML(...)); display(<png>, raw=True); 40 + 2)"
    execution = _run(code_sandbox, code)
    expect(execution.error is None, what, "no error", execution.error)
    results = execution.results
    seen = [
        (r.is_main_result, r.text, r.html, (r.png or "")[:12] + "..." if r.png else None)
        for r in results
    ]
    wanted = {
        "a result with html '<b>conformance</b>'": [r for r in results if r.html == HTML],
        "a result with the png data displayed": [r for r in results if r.png == PNG_1PX],
        "the main result with text '42'": [
            r for r in results if r.is_main_result and r.text == "42"
        ],
    }
    for expected, found in wanted.items():
        expect(bool(found), what, expected, f"results {seen}")


@check("code.execution-count")
def test_execution_count(code_sandbox: Any) -> None:
    counts = []
    for code in ("'first'", "'second'"):
        count = _run(code_sandbox, code).execution_count
        expect(
            isinstance(count, int) and not isinstance(count, bool),
            f"run_code({code!r}) execution_count",
            "an integer",
            repr(count),
        )
        counts.append(count)
    expect(
        counts[1] > counts[0],
        "execution_count of two runs in a row",
        "a count that grows",
        counts,
    )


@check("code.state")
def test_state_across_calls(code_sandbox: Any) -> None:
    _run(code_sandbox, "conformance_x = 41")
    execution = _run(code_sandbox, "conformance_x + 1")
    expect(
        execution.error is None and execution.text == "42",
        "run_code('conformance_x + 1') after 'conformance_x = 41'",
        "the text '42'",
        execution.error.name if execution.error else execution.text,
    )


@check("code.error")
def test_error(code_sandbox: Any) -> None:
    execution = _run(code_sandbox, "1 / 0")
    error = execution.error
    expect(error is not None, "run_code('1 / 0')", "an execution error", "no error")
    seen = (error.name, "division" in error.value, bool(error.traceback.strip()))
    expect(
        seen == ("ZeroDivisionError", True, True),
        "run_code('1 / 0')",
        "ZeroDivisionError with its value and a traceback",
        f"name={error.name!r} value={error.value!r} traceback={error.traceback[:80]!r}",
    )


@check("code.contexts")
def test_contexts(code_sandbox: Any) -> None:
    with step("create_code_context()"):
        ctx = code_sandbox.create_code_context()
        listed = [c.id for c in code_sandbox.list_code_contexts()]
    expect(ctx.id in listed, "list_code_contexts()", f"the new context {ctx.id}", listed)
    _run(code_sandbox, "conformance_y = 7", context=ctx)
    own = _run(code_sandbox, "conformance_y", context=ctx)
    expect(own.text == "7", "run_code('conformance_y') in the context", "'7'", own.text)
    default = _run(code_sandbox, "'conformance_y' in globals()")
    expect(
        default.text == "False", "the default context", "no conformance_y ('False')", default.text
    )
    with step(f"restart_code_context({ctx.id})"):
        code_sandbox.restart_code_context(ctx)
    after = _run(code_sandbox, "'conformance_y' in globals()", context=ctx)
    expect(
        after.text == "False", "the context after restart", "state cleared ('False')", after.text
    )
    with step(f"remove_code_context({ctx.id})"):
        code_sandbox.remove_code_context(ctx)
        listed = [c.id for c in code_sandbox.list_code_contexts()]
    expect(ctx.id not in listed, "list_code_contexts() after remove", f"no {ctx.id}", listed)

"""Level ``code``: the code interpreter (port 49999) through ``e2b-code-interpreter``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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

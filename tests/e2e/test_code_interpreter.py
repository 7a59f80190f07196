"""The unmodified e2b-code-interpreter SDK against the fake cluster: code on real Jupyter kernels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2b_code_interpreter import Sandbox

from .conftest import Server


@pytest.fixture(scope="module")
def ci(server: Server) -> Iterator[Sandbox]:
    from .conftest import ALICE_KEY

    sandbox = Sandbox.create(api_key=ALICE_KEY, api_url=server.url, sandbox_url=server.url)
    yield sandbox
    sandbox.kill()


def test_the_sdk_default_template_is_the_code_interpreter_pool(ci: Sandbox) -> None:
    assert ci.get_info().template_id == "code-interpreter-v1"


def test_state_persists_across_calls(ci: Sandbox) -> None:
    ci.run_code("x = 20")
    execution = ci.run_code("x + 22")
    assert execution.text == "42"
    assert execution.error is None


def test_stdout_and_errors_with_traceback(ci: Sandbox) -> None:
    execution = ci.run_code("print('hi')")
    assert execution.logs.stdout == ["hi\n"]
    failed = ci.run_code("1 / 0")
    assert failed.error is not None
    assert failed.error.name == "ZeroDivisionError"
    assert "1 / 0" in failed.error.traceback or "division" in failed.error.traceback


def test_matplotlib_chart_is_a_png_result(ci: Sandbox) -> None:
    execution = ci.run_code(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"
    )
    pngs = [r.png for r in execution.results if r.png]
    assert pngs, execution
    assert pngs[0].startswith("iVBORw0KGgo")  # base64 of the PNG signature


def test_contexts_keep_separate_state(ci: Sandbox) -> None:
    ctx = ci.create_code_context()
    ci.run_code("y = 'outer'")
    ci.run_code("y = 'inner'", context=ctx)
    assert ci.run_code("y").text == "'outer'"
    assert ci.run_code("y", context=ctx).text == "'inner'"
    assert ctx.id in [c.id for c in ci.list_code_contexts()]
    ci.remove_code_context(ctx)
    assert ctx.id not in [c.id for c in ci.list_code_contexts()]


def test_code_runs_in_the_sandbox_workspace(ci: Sandbox) -> None:
    ci.files.write("/home/user/data.csv", "a,b\n1,2\n")
    execution = ci.run_code("open('data.csv').read()")
    assert execution.text == "'a,b\\n1,2\\n'"

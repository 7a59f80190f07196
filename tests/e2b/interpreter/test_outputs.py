"""Jupyter IOPub messages become the NDJSON lines the SDK parses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from e2b_code_interpreter.models import Execution, parse_output

from pytest_kruise_agents.e2b.interpreter.outputs import (
    END_OF_EXECUTION,
    count_line,
    line_for_message,
    result_line,
    stream_line,
)
from pytest_kruise_agents.e2b.interpreter.streaming import encode_line


def test_every_known_mime_type_has_its_field() -> None:
    """A display bundle maps onto the SDK's Result fields; unknown types go to ``extra``."""
    bundle = {
        "text/plain": "t",
        "text/html": "<p>",
        "text/markdown": "# m",
        "image/svg+xml": "<svg/>",
        "image/png": "iVBOR",
        "image/jpeg": "/9j/",
        "application/pdf": "JVBER",
        "text/latex": "$x$",
        "application/json": {"a": 1},
        "application/javascript": "alert(1)",
        "application/vnd.custom+json": {"b": 2},
    }
    line = result_line(bundle, is_main_result=False)
    assert line == {
        "type": "result",
        "text": "t",
        "html": "<p>",
        "markdown": "# m",
        "svg": "<svg/>",
        "png": "iVBOR",
        "jpeg": "/9j/",
        "pdf": "JVBER",
        "latex": "$x$",
        "json": {"a": 1},
        "javascript": "alert(1)",
        "extra": {"application/vnd.custom+json": {"b": 2}},
        "is_main_result": False,
    }


def test_execute_result_is_main_and_display_data_is_not() -> None:
    """The cell's value is the main result; displays are not."""
    value = line_for_message("execute_result", {"data": {"text/plain": "2"}, "execution_count": 1})
    shown = line_for_message("display_data", {"data": {"text/plain": "fig"}, "metadata": {}})
    assert value is not None and value["is_main_result"] is True
    assert shown is not None and shown["is_main_result"] is False


def test_streams_errors_and_quiet_messages() -> None:
    """stdout/stderr keep their text; errors join the traceback; status and input show nothing."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert stream_line("stderr", "e\n", now=now) == {
        "type": "stderr",
        "text": "e\n",
        "timestamp": "2026-01-02T03:04:05+00:00",
    }
    error = line_for_message(
        "error", {"ename": "KeyError", "evalue": "'k'", "traceback": ["line 1", "line 2"]}
    )
    assert error == {
        "type": "error",
        "name": "KeyError",
        "value": "'k'",
        "traceback": "line 1\nline 2",
    }
    assert line_for_message("status", {"execution_state": "busy"}) is None
    assert line_for_message("execute_input", {"code": "1", "execution_count": 3}) is None


def test_the_sdk_parses_every_line() -> None:
    """The SDK's own parser turns the encoded lines into the Execution a user sees."""
    lines = [
        stream_line("stdout", "out\n"),
        line_for_message("error", {"ename": "E", "evalue": "v", "traceback": ["tb"]}),
        result_line({"text/plain": "42", "image/png": "iVBOR"}, is_main_result=True),
        count_line(7),
        END_OF_EXECUTION,
    ]
    execution = Execution()
    for line in lines:
        assert line is not None
        encoded = encode_line(line)
        assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
        parse_output(execution, encoded.decode())
    assert execution.logs.stdout == ["out\n"]
    assert execution.error is not None and execution.error.traceback == "tb"
    assert execution.text == "42" and execution.results[0].png == "iVBOR"
    assert execution.execution_count == 7


def test_any_text_encodes_on_one_line() -> None:
    """Non-ASCII text, newlines and even lone surrogates stay one valid JSON line."""
    line = stream_line("stdout", "h\u00e9llo \u2713\nnext \udcff")
    encoded = encode_line(line)
    assert encoded.count(b"\n") == 1
    assert json.loads(encoded)["text"] == line["text"]

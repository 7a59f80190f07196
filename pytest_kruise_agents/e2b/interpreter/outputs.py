"""Jupyter messages to the NDJSON lines of ``POST /execute``.

The line types and fields are those of the e2b code-interpreter server
(``template/server/api/models``), which the SDK's ``_parse_output`` reads:
``stdout``/``stderr``, ``result``, ``error``, ``number_of_executions`` and a
final ``end_of_execution``. Pure functions: no I/O, no kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "END_OF_EXECUTION",
    "MIME_FIELDS",
    "count_line",
    "error_line",
    "line_for_message",
    "result_line",
    "stream_line",
]

Line = dict[str, Any]

END_OF_EXECUTION: Final[Line] = {"type": "end_of_execution"}
"""Always the last line of an execution; the Python SDK ignores it and reads to EOF."""

MIME_FIELDS: Final[Mapping[str, str]] = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
"""Mime type of a Jupyter display bundle to the field of a ``result`` line; others go in ``extra``."""


def stream_line(name: str, text: str, *, now: datetime | None = None) -> Line:
    """A ``stdout`` or ``stderr`` line (``name`` is the Jupyter stream name)."""
    stamp = (now or datetime.now(UTC)).isoformat()
    kind = "stderr" if name == "stderr" else "stdout"
    return {"type": kind, "text": text, "timestamp": stamp}


def result_line(data: Mapping[str, Any], *, is_main_result: bool) -> Line:
    """A ``result`` line from a display bundle.

    ``is_main_result`` is true for the cell's value (``execute_result``) and
    false for displays (``display_data``, e.g. a matplotlib figure shown).
    """
    line: Line = {"type": "result"}
    extra: dict[str, Any] = {}
    for mime, value in data.items():
        field = MIME_FIELDS.get(mime)
        if field is None:
            extra[mime] = value
        else:
            line[field] = value
    if extra:
        line["extra"] = extra
    line["is_main_result"] = is_main_result
    return line


def error_line(name: str, value: str, traceback: list[str] | str) -> Line:
    """An ``error`` line; the traceback is one string (IPython's lines joined by newlines)."""
    text = traceback if isinstance(traceback, str) else "\n".join(traceback)
    return {"type": "error", "name": name, "value": value, "traceback": text}


def count_line(execution_count: int) -> Line:
    """The ``number_of_executions`` line: the cell's execution count."""
    return {"type": "number_of_executions", "execution_count": execution_count}


def line_for_message(msg_type: str, content: Mapping[str, Any]) -> Line | None:
    """The line for one IOPub message of the running cell, or ``None`` if it shows nothing."""
    if msg_type == "stream":
        return stream_line(str(content.get("name", "stdout")), str(content.get("text", "")))
    if msg_type == "execute_result":
        return result_line(content.get("data") or {}, is_main_result=True)
    if msg_type in ("display_data", "update_display_data"):
        return result_line(content.get("data") or {}, is_main_result=False)
    if msg_type == "error":
        return error_line(
            str(content.get("ename", "")),
            str(content.get("evalue", "")),
            list(content.get("traceback") or []),
        )
    return None

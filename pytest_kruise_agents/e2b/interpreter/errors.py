"""The one error type of the code interpreter: an HTTP status and a message, answered as JSON."""

from __future__ import annotations

from typing import Any

__all__ = ["InterpreterError", "error_body"]


class InterpreterError(Exception):
    """A request the interpreter refuses: answered as ``{"code": code, "message": message}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_body(code: int, message: str) -> dict[str, Any]:
    """The JSON body of every error the interpreter answers."""
    return {"code": code, "message": message}

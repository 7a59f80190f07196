"""Request bodies of the code interpreter, checked field by field.

Bad input answers one 400 naming the field and the reason; nothing changes.
A body nested too deeply (:mod:`~pytest_kruise_agents.e2b.nesting`) is refused before it is parsed.
Lone UTF-16 surrogates in strings (``"\\ud800"``) are read as U+FFFD.
The SDK sends ``null`` for unset fields of ``/execute`` (``context_id``,
``language``, ``env_vars``), so ``null`` means "not given" everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.e2b.envvars import env_vars_problem
from pytest_kruise_agents.e2b.interpreter.errors import InterpreterError
from pytest_kruise_agents.e2b.nesting import depth_over, too_deep_message

__all__ = ["ContextRequest", "ExecuteRequest", "parse_context_request", "parse_execute_request"]


@dataclass(frozen=True)
class ExecuteRequest:
    """``POST /execute``: ``{"code", "context_id"?, "language"?, "env_vars"?}``."""

    code: str
    context_id: str | None
    language: str | None
    env_vars: Mapping[str, str] | None


@dataclass(frozen=True)
class ContextRequest:
    """``POST /contexts``: ``{"language"?, "cwd"?}``."""

    language: str | None
    cwd: str | None


def _json_object(body: bytes, *, empty_ok: bool) -> dict[str, Any]:
    if empty_ok and not body.strip():
        return {}
    depth = depth_over(body)
    if depth is not None:
        # Before the parser, which recurses once a level (RecursionError, a 500).
        raise InterpreterError(400, f"body: {too_deep_message(depth)}")
    try:
        # Lone surrogates ("\ud800") read as U+FFFD: no kernel, environment or
        # answer can carry them (the interpreter is a Python server, but its strings
        # go on to UTF-8 only channels).
        data = replace_surrogates(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InterpreterError(400, f"body: malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InterpreterError(400, f"body: must be a JSON object, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InterpreterError(400, f"{name}: must be a string or null, got {_kind(value)}")


def _env_vars(data: Mapping[str, Any]) -> Mapping[str, str] | None:
    value = data.get("env_vars")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InterpreterError(400, f"env_vars: must be an object or null, got {_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InterpreterError(400, f"env_vars.{key}: must be a string, got {_kind(item)}")
    # The server's one rule for what a process can carry (the create and envd share it).
    problem = env_vars_problem("env_vars", value)
    if problem is not None:
        raise InterpreterError(400, problem.message)
    return dict(value)


def parse_execute_request(body: bytes) -> ExecuteRequest:
    """The ``/execute`` body; 400 for malformed JSON, wrong types, or both context and language."""
    data = _json_object(body, empty_ok=False)
    code = data.get("code")
    if not isinstance(code, str):
        got = "missing" if "code" not in data else f"got {_kind(code)}"
        raise InterpreterError(400, f"code: must be a string, {got}")
    context_id = _optional_str(data, "context_id")
    language = _optional_str(data, "language")
    env_vars = _env_vars(data)
    if context_id and language:
        raise InterpreterError(400, "Only one of context_id or language can be provided")
    return ExecuteRequest(code=code, context_id=context_id, language=language, env_vars=env_vars)


def parse_context_request(body: bytes) -> ContextRequest:
    """The ``/contexts`` body (may be empty); 400 for malformed JSON or wrong types."""
    data = _json_object(body, empty_ok=True)
    return ContextRequest(language=_optional_str(data, "language"), cwd=_optional_str(data, "cwd"))

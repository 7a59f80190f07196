"""Bad input over HTTP: every error is JSON ``{"code", "message"}``, nothing starts or changes.

None of these requests needs a kernel; the last test checks none was started.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2b.interpreter.conftest import Interpreter

SANDBOX = "sbx-bad-input"


def _post(interpreter: Interpreter, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{interpreter.url}{path}",
        headers=interpreter.headers(SANDBOX, **headers),
        content=content,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body: malformed JSON"),
        (b"", "body: malformed JSON"),
        (b"[1, 2]", "body: must be a JSON object, got an array"),
        (b"{}", "code: must be a string, missing"),
        (b'{"code": 5}', "code: must be a string, got a number"),
        (b'{"code": "1", "context_id": 3}', "context_id: must be a string or null, got a number"),
        (b'{"code": "1", "language": ["python"]}', "language: must be a string or null"),
        (b'{"code": "1", "env_vars": "A=1"}', "env_vars: must be an object or null, got a string"),
        (b'{"code": "1", "env_vars": {"A": 1}}', "env_vars.A: must be a string, got a number"),
        (b'{"code": "1", "env_vars": {"A=B": "1"}}', "env_vars: invalid variable name 'A=B'"),
        (b'{"code": "1", "language": "cobol"}', "language: 'cobol' is not supported"),
    ],
)
def test_a_bad_execute_body_is_a_400_naming_the_field(
    interpreter: Interpreter, body: bytes, message: str
) -> None:
    """Malformed JSON, wrong types and unknown languages answer 400 with the field and reason."""
    response = _post(interpreter, "/execute", body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    payload: dict[str, Any] = response.json()
    assert payload["code"] == 400
    assert payload["message"].startswith(message)


def test_a_bad_context_body_is_a_400(interpreter: Interpreter) -> None:
    """``/contexts`` checks its body the same way."""
    response = _post(interpreter, "/contexts", b'{"language": 1}')
    assert response.status_code == 400
    assert response.json() == {
        "code": 400,
        "message": "language: must be a string or null, got a number",
    }


def test_an_oversized_body_is_a_413(interpreter: Interpreter) -> None:
    """A body above the limit is refused before it is parsed."""
    big = b'{"code": "' + b"x" * (interpreter.app.max_body_bytes + 1) + b'"}'
    response = _post(interpreter, "/execute", big)
    assert response.status_code == 413
    assert response.json()["code"] == 413


def test_a_body_of_exactly_the_limit_is_read(interpreter: Interpreter) -> None:
    """The limit is the largest body accepted: one of that size is parsed (and here refused
    for its field), one byte more is a 413."""
    head, tail = b'{"code": 5, "pad": "', b'"}'
    pad = b"x" * (interpreter.app.max_body_bytes - len(head) - len(tail))
    response = _post(interpreter, "/execute", head + pad + tail)
    assert response.status_code == 400
    assert response.json()["message"] == "code: must be a string, got a number"
    assert _post(interpreter, "/execute", head + pad + b"x" + tail).status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/execute", 405),
        ("PUT", "/contexts", 405),
        ("GET", "/contexts/some-id/restart", 405),
        ("POST", "/execute/", 404),  # a trailing slash is no route, not a redirect
        ("GET", "/contexts/", 404),
    ],
)
def test_unknown_routes_and_methods_answer_json(
    interpreter: Interpreter, method: str, path: str, status: int
) -> None:
    """404 and 405 are JSON errors too."""
    response = httpx.request(
        method, f"{interpreter.url}{path}", headers=interpreter.headers(SANDBOX)
    )
    assert response.status_code == status
    assert response.json()["code"] == status
    assert path in response.json()["message"]


def test_health_answers_ok_without_a_token_and_starts_nothing(interpreter: Interpreter) -> None:
    """``GET /health`` answers 200 ``"OK"`` as upstream's FastAPI route does (the template's
    start script polls it), with no access token, and starts no kernel."""
    response = httpx.get(f"{interpreter.url}/health", headers=interpreter.headers(SANDBOX))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == "OK"
    assert httpx.get(f"{interpreter.url}/health").json() == "OK"  # no sandbox needed either
    assert interpreter.app.contexts.kernel_pids(SANDBOX) == []


def test_a_request_without_a_workspace_is_a_500(interpreter: Interpreter) -> None:
    """Served without the sandbox router, the interpreter says so instead of guessing a sandbox."""
    response = httpx.get(f"{interpreter.url}/contexts")
    assert response.status_code == 500
    assert "workspace" in response.json()["message"]


def test_bad_input_started_nothing(interpreter: Interpreter) -> None:
    """After all the refused requests above, the sandbox has no context and no kernel."""
    for body in (b"{", b'{"code": 1}', b'{"code": "1", "language": "r"}'):
        assert _post(interpreter, "/execute", body).status_code == 400
    contexts = httpx.get(f"{interpreter.url}/contexts", headers=interpreter.headers(SANDBOX))
    assert contexts.json() == []
    assert interpreter.app.contexts.kernel_pids(SANDBOX) == []

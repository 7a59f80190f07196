"""The published ``/openapi.json`` says what the server takes and answers, as the SDK reads it.

The SDK's generated client (``e2b/api/client/models``) is the final word on
the answers: a field its ``from_dict`` requires is ``required`` here, a field
it cannot read as ``null`` is never ``null``, and an answer the schema allows
is one the SDK parses. The request schemas publish the bounds, patterns and
styles the server enforces, while the server keeps answering bad values with
its own messages and codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from e2b.api.client.models import Error as SdkError
from e2b.api.client.models import ListedSandbox as SdkListed
from e2b.api.client.models import Sandbox as SdkSandbox
from e2b.api.client.models import SandboxDetail as SdkDetail
from e2b.api.client.models import Template as SdkTemplate
from e2b.api.client.models import TemplateWithBuilds as SdkTemplateWithBuilds
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api.e2b import (
    CREATE_TIMEOUT_BOUNDS,
    PAUSE_RETENTION_PATTERN,
    RESUME_TIMEOUT_BOUNDS,
    TIMEOUT_BOUNDS,
)
from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.timeouts import (
    parse_retention,
)
from pytest_kruise_agents.e2b.app import create_app
from pytest_kruise_agents.e2b.control import PAUSE_RETENTION_HEADER
from pytest_kruise_agents.e2b.settings import Settings

from .conftest import Served

Spec = dict[str, Any]


@pytest.fixture(scope="module")
def spec() -> Iterator[Spec]:
    """The OpenAPI document of an app with default settings (no server needed)."""
    backend = SimBackend.default(seed=1, replicas=1)
    try:
        yield create_app(backend, Settings()).control.openapi()
    finally:
        backend.close()


def schemas(spec: Spec) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"]
    return found


def validator(spec: Spec, schema: dict[str, Any]) -> Any:
    """A JSON Schema validator of ``schema`` (formats checked), its refs resolved in ``spec``."""
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": spec["components"]}, validate_formats=True
    )


def is_nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or {"type": "null"} in prop.get("anyOf", [])


def parameter(spec: Spec, path: str, method: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in spec["paths"][path][method]["parameters"] if p["name"] == name
    )
    return found


# --------------------------------------------------------------------------- responses


SDK_REQUIRED = {
    "SandboxResponse": {"templateID", "sandboxID", "clientID", "envdVersion"},
    "ListedSandbox": {
        "templateID",
        "sandboxID",
        "clientID",
        "startedAt",
        "endAt",
        "cpuCount",
        "memoryMB",
        "diskSizeMB",
        "state",
        "envdVersion",
    },
    "SandboxDetail": {"templateID", "sandboxID", "clientID", "startedAt", "endAt", "state"},
    "TemplateInfo": {
        "templateID",
        "buildID",
        "public",
        "aliases",
        "names",
        "createdAt",
        "updatedAt",
        "createdBy",
        "lastSpawnedAt",
        "spawnCount",
        "buildCount",
        "envdVersion",
        "buildStatus",
    },
    "TemplateDetail": {"public", "createdBy", "lastSpawnedAt", "spawnCount", "buildStatus"},
    "TemplateBuild": {"buildID", "status", "createdAt", "updatedAt", "cpuCount", "memoryMB"},
    "SandboxLifecycle": {"autoResume", "onTimeout"},
    "Error": {"code", "message"},
}
"""Fields the SDK's ``from_dict`` pops without a default (a ``KeyError`` when absent)."""


@pytest.mark.parametrize("name", sorted(SDK_REQUIRED))
def test_fields_the_sdk_requires_are_published_required(spec: Spec, name: str) -> None:
    assert SDK_REQUIRED[name] <= set(schemas(spec)[name]["required"])


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("SandboxDetail", "lifecycle"),
        ("SandboxDetail", "network"),
        ("SandboxDetail", "envdAccessToken"),
        ("SandboxResponse", "envdAccessToken"),
        ("SandboxResponse", "state"),
        ("TemplateBuild", "finishedAt"),
    ],
)
def test_fields_left_out_when_unset_are_never_published_null(
    spec: Spec, name: str, field: str
) -> None:
    """The server leaves them out rather than writing ``null``; the SDK cannot read a null
    ``lifecycle``, ``network`` or ``finishedAt``."""
    schema = schemas(spec)[name]
    assert not is_nullable(schema["properties"][field])
    assert "default" not in schema["properties"][field] or schema["properties"][field]["default"]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("SandboxResponse", "domain"),
        ("SandboxResponse", "trafficAccessToken"),
        ("SandboxDetail", "domain"),
        ("SandboxDetail", "allowInternetAccess"),
        ("TemplateInfo", "createdBy"),
        ("TemplateInfo", "lastSpawnedAt"),
    ],
)
def test_fields_written_as_null_are_published_required_and_nullable(
    spec: Spec, name: str, field: str
) -> None:
    schema = schemas(spec)[name]
    assert field in schema["required"]
    assert is_nullable(schema["properties"][field])


def test_build_ids_are_published_as_uuids(spec: Spec) -> None:
    """The SDK parses a build's ``buildID`` with ``UUID()``."""
    assert schemas(spec)["TemplateBuild"]["properties"]["buildID"]["format"] == "uuid"
    assert schemas(spec)["TemplateInfo"]["properties"]["buildID"]["format"] == "uuid"


SDK_MODELS: dict[tuple[str, str, int], Callable[[Any], Any]] = {
    ("/sandboxes", "post", 201): SdkSandbox.from_dict,
    ("/v2/sandboxes", "post", 201): SdkSandbox.from_dict,
    ("/v2/sandboxes", "get", 200): lambda items: [SdkListed.from_dict(i) for i in items],
    ("/sandboxes/{sandboxID}", "get", 200): SdkDetail.from_dict,
    ("/sandboxes/{sandboxID}/connect", "post", 200): SdkSandbox.from_dict,
    ("/v2/sandboxes/{sandboxID}/connect", "post", 200): SdkSandbox.from_dict,
    ("/v2/sandboxes/{sandboxID}/connect", "post", 201): SdkSandbox.from_dict,
    ("/templates", "get", 200): lambda items: [SdkTemplate.from_dict(i) for i in items],
    ("/templates/{templateID}", "get", 200): SdkTemplateWithBuilds.from_dict,
}
"""The SDK's reading of each JSON success answer (errors: ``Error.from_dict``)."""


def real_answers(server: Served) -> Iterator[tuple[str, str, httpx.Response]]:
    """``(spec path, method, answer)`` of a real call of every control-plane route."""
    body = {"templateID": "base", "timeout": 300, "network": {"allowOut": ["10.0.0.0/8"]}}
    created = server.request("POST", "/v2/sandboxes", json=body)
    yield "/v2/sandboxes", "post", created
    sid = created.json()["sandboxID"]
    old = server.request("POST", "/sandboxes", json={"templateID": "base"})
    yield "/sandboxes", "post", old
    yield "/v2/sandboxes", "get", server.request("GET", "/v2/sandboxes", params={"limit": 1})
    yield "/sandboxes/{sandboxID}", "get", server.request("GET", f"/sandboxes/{sid}")
    yield (
        "/sandboxes/{sandboxID}/connect",
        "post",
        server.request("POST", f"/sandboxes/{sid}/connect", json={"timeout": 300}),
    )
    yield (
        "/sandboxes/{sandboxID}/timeout",
        "post",
        server.request("POST", f"/sandboxes/{sid}/timeout", json={"timeout": 600}),
    )
    yield "/sandboxes/{sandboxID}/pause", "post", server.request("POST", f"/sandboxes/{sid}/pause")
    yield (
        "/v2/sandboxes/{sandboxID}/connect",
        "post",
        server.request("POST", f"/v2/sandboxes/{sid}/connect", json={"timeout": 300}),
    )
    yield (
        "/v2/sandboxes/{sandboxID}/connect",
        "post",
        server.request("POST", f"/v2/sandboxes/{sid}/connect", json={"timeout": 300}),
    )
    server.request("POST", f"/sandboxes/{sid}/pause")
    yield (
        "/sandboxes/{sandboxID}/resume",
        "post",
        server.request("POST", f"/sandboxes/{sid}/resume"),
    )
    yield "/templates", "get", server.request("GET", "/templates")
    yield "/templates/{templateID}", "get", server.request("GET", "/templates/base")
    yield "/sandboxes/{sandboxID}", "delete", server.request("DELETE", f"/sandboxes/{sid}")
    # Errors: a missing sandbox, a bad body, a body over the limit.
    yield "/sandboxes/{sandboxID}", "get", server.request("GET", f"/sandboxes/{sid}")
    yield "/v2/sandboxes", "post", server.request("POST", "/v2/sandboxes", json={"timeout": 5})
    too_big = {"templateID": "base", "metadata": {"k": "x" * (1 << 20)}}
    yield "/v2/sandboxes", "post", server.request("POST", "/v2/sandboxes", json=too_big)


def loosened(doc: Any) -> Iterator[tuple[str, Any]]:
    """``(what, copy)``: ``doc`` with one field dropped, set to ``null`` or to ``"x"``.

    At any depth: nested objects, and the first item of a list (of the
    answer itself for a list answer).
    """
    if isinstance(doc, list):
        if doc and isinstance(doc[0], dict):
            for what, item in loosened(doc[0]):
                yield f"[0]{what}", [item, *doc[1:]]
        return
    for key, value in doc.items():
        yield f".{key} dropped", {k: v for k, v in doc.items() if k != key}
        yield f".{key} null", {**doc, key: None}
        if isinstance(value, str):
            yield f'.{key} "x"', {**doc, key: "x"}
        if isinstance(value, dict | list):
            for what, sub in loosened(value):
                yield f".{key}{what}", {**doc, key: sub}


def test_real_answers_parse_in_the_sdk_and_match_the_published_schema(
    server: Served, spec: Spec
) -> None:
    """Every route's real answer: its status is published, its body matches the published
    schema and parses with the SDK's ``from_dict``; and any answer one field away from it
    that the schema still allows parses too (the schema is no looser than the SDK)."""
    seen: set[tuple[str, str, int]] = set()
    looser: list[str] = []
    undeclared: list[str] = []
    for path, method, answer in real_answers(server):
        declared = spec["paths"][path][method]["responses"]
        seen.add((path, method, answer.status_code))
        if str(answer.status_code) not in declared:
            undeclared.append(f"{method} {path} {answer.status_code}")
            continue
        if answer.status_code == 204:
            assert not answer.content
            continue
        schema = declared[str(answer.status_code)]["content"]["application/json"]["schema"]
        check = validator(spec, schema)
        body = answer.json()
        errors = [e.message for e in check.iter_errors(body)]
        assert not errors, (method, path, answer.status_code, errors)
        parse: Callable[[Any], Any] = SdkError.from_dict
        parse = SDK_MODELS.get((path, method, answer.status_code), parse)
        parse(body)
        for what, doc in loosened(body):
            if check.is_valid(doc):
                try:
                    parse(doc)
                except Exception as exc:
                    looser.append(f"{method} {path} {answer.status_code} {what}: {exc!r}")
    assert not looser, "\n".join(looser)
    assert not undeclared, undeclared
    assert {k for k in SDK_MODELS} <= seen
    assert any(status == 413 for _, _, status in seen)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("NewSandboxV2", CREATE_TIMEOUT_BOUNDS),
        ("NewSandbox", CREATE_TIMEOUT_BOUNDS),
        ("ConnectSandbox", TIMEOUT_BOUNDS),
        ("ConnectSandboxV2", TIMEOUT_BOUNDS),
        ("SandboxTimeoutRequest", TIMEOUT_BOUNDS),
        ("ResumedSandbox", RESUME_TIMEOUT_BOUNDS),
    ],
)
def test_timeout_bounds_are_published(spec: Spec, name: str, bounds: tuple[int, int]) -> None:
    prop = schemas(spec)[name]["properties"]["timeout"]
    number = next(b for b in [prop, *prop.get("anyOf", [])] if b.get("type") == "integer")
    assert (number["minimum"], number["maximum"]) == bounds


def test_out_of_bounds_timeouts_keep_the_servers_own_answers(server: Served) -> None:
    """Published, not enforced by the framework: the server's messages and codes stay."""
    sid = server.request("POST", "/v2/sandboxes", json={"templateID": "base"}).json()["sandboxID"]
    cases = [
        ("/v2/sandboxes", {"templateID": "base", "timeout": 29}, 400, "30 and 2592000", "29"),
        (f"/v2/sandboxes/{sid}/connect", {"timeout": 0}, 400, "1 and 2592000", "0"),
        (f"/sandboxes/{sid}/connect", {"timeout": 2592001}, 400, "1 and 2592000", "2592001"),
        (f"/sandboxes/{sid}/timeout", {"timeout": 0}, 500, "1 and 2592000", "0"),
    ]
    for path, body, code, between, got in cases:
        answer = server.request("POST", path, json=body)
        assert answer.status_code == code, (path, answer.text)
        assert answer.json()["message"] == f"timeout: must be between {between} seconds, got {got}"
        assert answer.json()["field"] == "timeout"
    server.request("POST", f"/sandboxes/{sid}/pause")
    answer = server.request("POST", f"/sandboxes/{sid}/resume", json={"timeout": -1})
    assert answer.status_code == 500, answer.text
    assert answer.json()["message"] == "timeout: must be between 1 and 2592000 seconds, got -1"


def test_the_state_filter_is_published_as_e2b_publishes_it(spec: Spec) -> None:
    """An array of SandboxState, ``style: form, explode: false``: what the SDK sends
    (``state=running,paused``)."""
    state = parameter(spec, "/v2/sandboxes", "get", "state")
    assert (state["in"], state["style"], state["explode"]) == ("query", "form", False)
    assert state["schema"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["running", "paused"]},
    }


def test_the_state_filter_is_still_read_comma_joined(server: Served) -> None:
    both = server.request("GET", "/v2/sandboxes", params={"state": "running,paused"})
    assert both.status_code == 200, both.text
    bad = server.request("GET", "/v2/sandboxes", params={"state": "running,killed"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "state"


def test_an_empty_started_after_is_published_as_not_given(spec: Spec, server: Served) -> None:
    schema = parameter(spec, "/v2/sandboxes", "get", "startedAfter")["schema"]
    check = validator(spec, schema)
    assert check.is_valid("")
    assert check.is_valid("2026-01-01T00:00:00Z")
    assert not check.is_valid("yesterday")
    answer = server.request("GET", "/v2/sandboxes", params={"startedAfter": ""})
    assert answer.status_code == 200, answer.text


def _retention_schema(spec: Spec) -> dict[str, Any]:
    param = parameter(spec, "/sandboxes/{sandboxID}/pause", "post", PAUSE_RETENTION_HEADER)
    schema: dict[str, Any] = param["schema"]
    return schema


def _server_takes(value: str) -> bool:
    """Whether the pause handler takes ``value`` (blank: the header not given)."""
    if not value.strip():
        return True
    try:
        parse_retention(value, field=PAUSE_RETENTION_HEADER)
    except BadRequestError:
        return False
    return True


def test_the_pause_retention_header_publishes_its_pattern(spec: Spec) -> None:
    check = validator(spec, _retention_schema(spec))
    for value in ("forever", "1h", "30m", "1h30m", "90s", "1.5h", "0h1m", "+2h", " 24h ", ""):
        assert check.is_valid(value), value
        assert _server_takes(value), value
    for value in ("1 day", "1d", "-1h", "0s", "0", "0.0h", "forever!", "h", "1H", "never"):
        assert not check.is_valid(value), value
        assert not _server_takes(value), value


@pytest.mark.parametrize("value", ["0.5h", ".5h", "0.25h", "1h0.5m", "0.000000001s", "forever"])
def test_the_retention_pattern_allows_fractions_the_server_takes(value: str) -> None:
    """A positive fraction of an hour, a minute or a second is published as it is taken.

    Before, the pattern asked for a whole number above zero: ``0.5h`` was taken by the
    server (204) yet refused by the published pattern.
    """
    assert re.fullmatch(PAUSE_RETENTION_PATTERN, value) and _server_takes(value)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(value=st.from_regex(re.compile(PAUSE_RETENTION_PATTERN), fullmatch=True))
def test_every_value_the_retention_pattern_allows_is_taken(value: str) -> None:
    """The pattern never promises a value the server refuses (too long, zero, negative)."""
    assert _server_takes(value), value


def test_bodies_over_the_limit_are_published_as_413(spec: Spec) -> None:
    with_body = [
        (path, method)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if "requestBody" in op
    ]
    assert len(with_body) >= 6  # create v1/v2, /timeout, connect v1/v2, /resume (/pause: none)
    for path, method in with_body:
        declared = spec["paths"][path][method]["responses"]["413"]
        assert declared["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, (method, path)


def test_the_list_publishes_its_next_token_header(spec: Spec) -> None:
    headers = spec["paths"]["/v2/sandboxes"]["get"]["responses"]["200"]["headers"]
    assert headers["X-Next-Token"]["schema"] == {"type": "string"}


def test_the_list_limit_is_published_as_1_to_100(spec: Spec) -> None:
    """openkruise-agents.md §6.7: ``limit`` is 1…100; the document says so."""
    (schema,) = [
        s
        for s in parameter(spec, "/v2/sandboxes", "get", "limit")["schema"]["anyOf"]
        if s.get("type") == "integer"
    ]

    assert (schema["minimum"], schema["maximum"]) == (1, 100)

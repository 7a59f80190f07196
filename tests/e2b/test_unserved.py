"""E2B routes this server does not serve: 401 for a bad key, then 501 "not supported", never "not found".

A bare 404 on these paths read to the SDK as "not found": ``get_metrics``,
``update_network``, ``create_snapshot`` and ``fork`` raised
``SandboxNotFoundException`` on a running sandbox, ``Template.exists`` and
``Secret.exists`` answered ``False``, ``Volume.destroy`` ``False``, and a wrong
key got "not found" instead of 401.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2b import AsyncSandbox, Sandbox, Secret, Template, Volume
from e2b.exceptions import (
    AuthenticationException,
    NotFoundException,
    SandboxException,
    SandboxNotFoundException,
    SecretException,
    SecretNotFoundException,
    VolumeException,
)

from pytest_kruise_agents.e2b import control, unserved

from .conftest import ALICE, BOB, Served
from .test_control_errors import assert_error

NOT_SUPPORTED = re.compile(r"^501: .+ is not supported by this server")


def _sdk_calls(server: Served, sid: str, key: str) -> dict[str, Callable[[], Any]]:
    """Each SDK call that reaches an unserved route, on sandbox ``sid`` where it takes one."""
    opts = server.sdk(key)
    return {
        "get_metrics": lambda: Sandbox.get_metrics(sid, **opts),
        "update_network": lambda: Sandbox.update_network(sid, {"deny_out": ["0.0.0.0/0"]}, **opts),
        "create_snapshot": lambda: Sandbox.create_snapshot(sid, **opts),
        "fork": lambda: Sandbox.fork(sid, **opts),
        "list_snapshots": lambda: Sandbox.list_snapshots(**opts).next_items(),
        "delete_snapshot": lambda: Sandbox.delete_snapshot("base", **opts),
        "Template.exists": lambda: Template.exists("base", **opts),
        "Volume.connect": lambda: Volume.connect("v1", **opts),
        "Volume.destroy": lambda: Volume.destroy("v1", **opts),
        "Secret.get_info": lambda: Secret.get_info("s1", **opts),
        "Secret.exists": lambda: Secret.exists("s1", **opts),
    }


CALLS = [
    "get_metrics",
    "update_network",
    "create_snapshot",
    "fork",
    "list_snapshots",
    "delete_snapshot",
    "Template.exists",
    "Volume.connect",
    "Volume.destroy",
    "Secret.get_info",
    "Secret.exists",
]


@pytest.fixture
def sandbox_id(server: Served) -> str:
    return Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id


@pytest.mark.parametrize("call", CALLS)
def test_an_unserved_call_on_a_running_sandbox_says_not_supported(
    server: Served, sandbox_id: str, call: str
) -> None:
    """The SDK raises its exception with ``501: ... is not supported``: no false "not found"/False."""
    with pytest.raises((SandboxException, VolumeException, SecretException)) as info:
        _sdk_calls(server, sandbox_id, ALICE)[call]()

    assert not isinstance(info.value, NotFoundException | SecretNotFoundException)
    assert NOT_SUPPORTED.match(str(info.value)), str(info.value)
    assert Sandbox.get_info(sandbox_id, **server.sdk(ALICE)).state.value == "running"


def test_the_async_sdk_says_not_supported_too(server: Served, sandbox_id: str) -> None:
    async def calls() -> tuple[object, ...]:
        sbx = await AsyncSandbox.connect(sandbox_id, **server.sdk(ALICE))
        return await asyncio.gather(
            sbx.get_metrics(),
            sbx.update_network({"allow_out": ["8.8.8.8"]}),
            sbx.create_snapshot(),
            sbx.fork(),
            return_exceptions=True,
        )

    for outcome in asyncio.run(calls()):
        assert isinstance(outcome, SandboxException), outcome
        assert not isinstance(outcome, NotFoundException)
        assert NOT_SUPPORTED.match(str(outcome)), str(outcome)


@pytest.mark.parametrize("call", CALLS)
def test_an_unserved_call_with_a_wrong_key_is_401(
    server: Served, sandbox_id: str, call: str
) -> None:
    with pytest.raises(AuthenticationException):
        _sdk_calls(server, sandbox_id, "e2b_wrong")[call]()


def test_an_unserved_sandbox_route_on_a_sandbox_not_the_callers_is_404(
    server: Served, sandbox_id: str
) -> None:
    """The sandbox is looked up first, as on every sandbox route: "not found" only when true."""
    for sid, key in ((sandbox_id, BOB), ("default--base-nosuch", ALICE)):
        with pytest.raises(SandboxNotFoundException):
            Sandbox.get_metrics(sid, **server.sdk(key))
        with pytest.raises(SandboxNotFoundException):
            Sandbox.fork(sid, **server.sdk(key))


@pytest.mark.parametrize("prefix", ["", control.CUSTOMIZED_PREFIX])
def test_every_unserved_route_answers_401_then_501_json(server: Served, prefix: str) -> None:
    sid = Sandbox.create(template="base", **server.sdk(ALICE)).sandbox_id
    for route in unserved.UNSERVED:
        if route.customized_only and not prefix:
            continue
        path = prefix + route.path.removeprefix(control.CUSTOMIZED_PREFIX)
        path = path.replace("{sandboxID}", sid)
        path = re.sub(r"\{[^}]+\}", "x", path)

        body = assert_error(server.request(route.method, path, key="e2b_wrong"), 401)
        assert body["message"] == "Invalid API Key"
        body = assert_error(server.request(route.method, path, key=ALICE), 501)
        assert route.method in body["message"] and "not supported" in body["message"], body


def test_a_customized_only_route_is_no_route_natively(server: Served) -> None:
    r = server.request("POST", "/sandboxes/default--base-x/traffic-access-token")
    assert r.status_code == 404
    assert r.json()["message"].startswith("no route ")


@pytest.mark.parametrize("path", ["/no/such/route", "/sandboxes/x/y/z", "/v9/sandboxes"])
def test_a_path_that_is_no_e2b_route_is_still_a_plain_404(server: Served, path: str) -> None:
    body = assert_error(server.request("GET", path, key=ALICE), 404)
    assert body["message"] == f"no route GET {path}"


def test_get_sandboxes_metrics_is_unserved_not_a_sandbox_named_metrics(server: Served) -> None:
    """``GET /sandboxes/metrics`` would otherwise be read as the sandbox ``metrics``."""
    assert_error(server.request("GET", "/sandboxes/metrics"), 501)
    assert_error(server.request("GET", "/sandboxes/metrics", key="e2b_wrong"), 401)


def test_the_v1_list_of_sdk_1_is_unserved_not_a_405(server: Served) -> None:
    """``GET /sandboxes`` (SDK 1.x's list) shares its path with the v1 create: it checks the key
    and answers 501 as every unserved route does, not 405 for the create's path."""
    assert_error(server.request("GET", "/sandboxes", key="e2b_wrong"), 401)
    body = assert_error(server.request("GET", "/sandboxes", key=ALICE), 501)
    assert "GET /v2/sandboxes" in body["message"]


def test_every_unserved_route_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()

    for route in unserved.UNSERVED:
        path = route.path.replace("{sandboxID}", "{id}").replace("{templateID}", "{id}")
        assert f"| {route.method} | `{path}` |" in doc, f"{route.method} {route.path}"


def test_the_routes_are_built_once_for_every_app() -> None:
    """Building an APIRoute is slow and the plugin builds an app per test: all apps share them."""
    for prefix in ("", control.CUSTOMIZED_PREFIX):
        for first in (True, False):
            assert unserved.routes(prefix, first=first) is unserved.routes(prefix, first=first)

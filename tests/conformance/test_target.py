"""``target``: which base URLs the suite accepts for a server, and where it sends a sandbox's
traffic (where the installed SDK does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from e2b.connection_config import ConnectionConfig

from pytest_kruise_agents.conformance.sdk import V2_ROUTES_SINCE
from pytest_kruise_agents.conformance.target import (
    DEFAULT_DOMAIN,
    ENVD_PORT,
    PLACEHOLDER_KEY,
    RUN_KEY,
    Api,
    Target,
    connect_route,
    create_route,
    sdks_calling,
    url_problem,
)

from .conftest import USER_KEY, serve

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://api.example.com",
        "https://example.com/kruise/api",
        "http://127.0.0.1:1",
        "http://127.0.0.1:65535",
        "http://[::1]:8080",
        "http://user:pw@host:443/x",
    ],
)
def test_a_base_url_with_a_port_in_range_is_accepted(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "port"),
    [
        # httpx keeps 106939 and the socket layer wraps it: the checks would run against
        # whatever listens on port 106939 - 65536 = 41403.
        ("http://127.0.0.1:106939", "106939"),
        ("http://127.0.0.1:65536", "65536"),
        ("http://127.0.0.1:0", "0"),
        ("http://h:-1", "-1"),
        ("http://h:+80", "+80"),
        ("http://h:\uff11\uff12", "\uff11\uff12"),  # full-width digits
        ("http://[::1]:99999", "99999"),
    ],
)
def test_a_port_outside_1_to_65535_or_not_a_number_is_refused(url: str, port: str) -> None:
    assert url_problem(url) == f"port {port!r} is not a number in 1..65535: {url!r}"


SID = "default--base-abcde"


@pytest.mark.parametrize(
    ("given", "answered"),
    [
        ({}, None),  # the SDK's default domain, e2b.app: its shared host
        ({"domain": "e2b.dev"}, None),  # another domain the SDK routes by headers
        ({"domain": "sandboxes.example.com"}, None),  # E2B_DOMAIN / --domain
        ({}, "answer.example.com"),  # the create answer's domain
        ({"domain": "sandboxes.example.com"}, "answer.example.com"),  # the answer's wins
        ({"sandbox_url": "http://127.0.0.1:9"}, "answer.example.com"),  # the URL wins
    ],
)
def test_sandbox_traffic_goes_where_the_installed_sdk_sends_it(
    given: dict[str, str], answered: str | None
) -> None:
    assert set(given) <= {"sandbox_url", "domain"}
    target = Target(
        api_url="https://api.example.com",
        api_key="k",
        sandbox_url=given.get("sandbox_url"),
        domain=given.get("domain"),
    )
    api = Api(target)
    try:
        api.remember_domain(SID, answered)
        config = ConnectionConfig(**target.sdk_opts())
        sdk_domain = answered or config.domain  # what Sandbox takes from the create answer
        assert api.sandbox_domain(SID)[0] == sdk_domain
        url, _how = api.sandbox_base(SID, ENVD_PORT)
        assert url == config.get_sandbox_url(SID, sdk_domain)
    finally:
        api.close()


def test_without_any_domain_the_sdks_default_is_used_and_said() -> None:
    api = Api(Target(api_url="https://api.example.com", api_key="k"))
    try:
        assert api.sandbox_base(SID, ENVD_PORT) == (
            "https://sandbox.e2b.app",
            "the SDK's default domain",
        )
        api.remember_domain(SID, "")  # an empty domain is none, as the SDK takes it
        assert api.sandbox_domain(SID) == (DEFAULT_DOMAIN, "the SDK's default domain")
    finally:
        api.close()


@pytest.mark.parametrize(
    ("v2", "create", "connect"),
    [
        (True, "/v2/sandboxes", f"/v2/sandboxes/{SID}/connect"),
        (False, "/sandboxes", f"/sandboxes/{SID}/connect"),
    ],
)
def test_create_and_connect_take_the_routes_of_the_sdk_generation(
    v2: bool, create: str, connect: str
) -> None:
    api = Api(Target(api_url="https://api.example.com", api_key="k"), v2_routes=v2)
    try:
        assert (api.create_route, api.connect_route(SID)) == (create, connect)
    finally:
        api.close()
    assert (create_route(v2), connect_route(SID, v2)) == (create, connect)


@pytest.mark.parametrize(("v2", "sdks"), [(True, "e2b >= 2.51"), (False, "e2b 2.20 to 2.50")])
def test_each_route_generation_names_the_sdks_that_call_it(v2: bool, sdks: str) -> None:
    """E2B §2.6: the /v2/ create and connect routes from e2b 2.51 on."""
    assert sdks_calling(v2) == sdks
    assert sdks_calling(True) == f"e2b >= {V2_ROUTES_SINCE}"


def test_the_admin_key_defaults_to_kruise_admin_key_as_serve_prints_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KRUISE_ADMIN_KEY", "from-the-exports")
    target = Target.from_env(api_url="http://127.0.0.1:8080")
    assert target is not None and target.admin_key == "from-the-exports"
    given = Target.from_env(api_url="http://127.0.0.1:8080", admin_key="given")
    assert given is not None and given.admin_key == "given"


def test_an_empty_api_key_means_no_key_not_the_exported_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("E2B_API_KEY", "exported-key")
    target = Target.from_env(api_url="http://127.0.0.1:8080", api_key="")
    assert target is not None and target.api_key == ""
    unset = Target.from_env(api_url="http://127.0.0.1:8080")
    assert unset is not None and unset.api_key == "exported-key"


@pytest.mark.parametrize(
    "name",
    [
        "api_url",
        "sandbox_url",
        "domain",
        "template",
        "code_template",
        "no_stock_template",
        "admin_key",
    ],
)
def test_any_other_empty_option_is_refused_naming_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not replaced by a default or by the environment's value (``E2B_API_URL``, ...)."""
    monkeypatch.setenv("E2B_API_URL", "http://127.0.0.1:9")
    given = {"api_url": "http://127.0.0.1:8080", name: ""}
    with pytest.raises(ValueError, match=f"^{name}: must not be empty$"):
        Target.from_env(**given)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://h/", "must be an http:// or https:// URL, got 'ftp://h/'"),
        ("127.0.0.1:8080", "must be an http:// or https:// URL, got '127.0.0.1:8080'"),
        ("http://", "has no host: 'http://'"),
        ("https:///v2", "has no host: 'https:///v2'"),
    ],
)
def test_a_url_of_another_scheme_or_without_a_host_is_refused(url: str, reason: str) -> None:
    assert url_problem(url) == reason


def test_a_trailing_slash_of_the_api_and_sandbox_urls_is_dropped() -> None:
    """``--api-url http://h/`` asks ``http://h/v2/sandboxes``, not ``http://h//v2/sandboxes``
    (a path no server routes)."""
    target = Target.from_env(api_url="http://127.0.0.1:8080/", sandbox_url="http://127.0.0.1:9//")
    assert target is not None
    assert target.url("/v2/sandboxes") == "http://127.0.0.1:8080/v2/sandboxes"
    assert target.sandbox_url == "http://127.0.0.1:9"
    prefixed = Target.from_env(api_url="http://127.0.0.1:8080/kruise/api/")
    assert prefixed is not None and prefixed.api_root == "http://127.0.0.1:8080"


def test_without_an_api_url_the_api_of_the_domain_is_checked_as_the_sdk_reaches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's API URL is ``https://api.<domain>`` when only a domain is given (E2B §1.1)."""
    monkeypatch.delenv("E2B_API_URL", raising=False)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    assert Target.from_env(template="base") is None
    given = Target.from_env(domain="sandboxes.example.com")
    assert given is not None and given.api_url == "https://api.sandboxes.example.com"
    monkeypatch.setenv("E2B_DOMAIN", "e2b.dev")
    exported = Target.from_env()
    assert exported is not None and exported.api_url == "https://api.e2b.dev"


def test_a_kruise_path_is_not_prefixed_twice_when_the_api_url_has_the_prefix() -> None:
    plain = Target(api_url="http://h:1", api_key="k")
    prefixed = Target(api_url="http://h:1/kruise/api", api_key="k")
    assert plain.url("/kruise/api/v2/sandboxes") == "http://h:1/kruise/api/v2/sandboxes"
    assert prefixed.url("/kruise/api/v2/sandboxes") == "http://h:1/kruise/api/v2/sandboxes"
    assert prefixed.url("/v2/sandboxes") == "http://h:1/kruise/api/v2/sandboxes"


def test_without_an_api_key_the_sdk_gets_the_placeholder_and_the_request_timeout() -> None:
    """The SDK refuses an empty key before sending anything: a server with auth disabled is
    still judged on what it answers. Every SDK call waits the target's request timeout."""
    opts = Target(api_url="http://h:1", api_key="", request_timeout=7.5).sdk_opts()
    assert opts["api_key"] == PLACEHOLDER_KEY
    assert opts["request_timeout"] == 7.5
    assert Target(api_url="http://h:1", api_key="k").sdk_opts()["api_key"] == "k"


def _recording(seen: list[Scope]) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware noting each request's scope, around the served fake."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append(scope)
            await app(scope, receive, send)

        return recorded

    return wrap


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in scope["headers"]}


def test_a_request_without_a_key_sends_no_x_api_key_header_at_all() -> None:
    """``key=""`` (and a target without a key) is a request without the header, not with an
    empty one: what the auth checks must send."""
    seen: list[Scope] = []
    with serve(wrap=_recording(seen)) as url:
        keyed = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        assert keyed.list().status_code == 200
        assert keyed.request("GET", "/v2/sandboxes", key="").status_code == 401
        keyless = Api(Target(api_url=url, api_key="", sandbox_url=url), v2_routes=True)
        assert keyless.list().status_code == 401
        keyed.close()
        keyless.close()
    sent = [_headers(s) for s in seen]
    assert sent[0]["x-api-key"] == USER_KEY
    assert "x-api-key" not in sent[1] and "x-api-key" not in sent[2]


def test_raw_creates_and_connects_send_what_each_sdk_generation_sends() -> None:
    """The v1 SDKs (POST /sandboxes) always send a timeout, 300 s by default, and ``secure``;
    so does their connect. The v2 ones send no timeout unless one is given."""
    seen: list[tuple[str, Any]] = []

    def bodies(app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            seen.append((scope["path"], json.loads(body) if body else None))
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)

        return recorded

    with serve(wrap=bodies) as url:
        target = Target(api_url=url, api_key=USER_KEY, sandbox_url=url)
        v1, v2 = Api(target, v2_routes=False), Api(target, v2_routes=True)
        for api in (v1, v2):
            sid = api.create().json()["sandboxID"]
            api.connect(sid)
            api.close()
    (v1_create, v1_body), (v1_connect, v1_connect_body), (v2_create, v2_body), (_, v2_conn) = seen
    assert (v1_create, v1_body["timeout"], v1_body["secure"]) == ("/sandboxes", 300, True)
    assert v1_connect.startswith("/sandboxes/") and v1_connect_body == {"timeout": 300}
    assert v2_create == "/v2/sandboxes" and "timeout" not in v2_body and "secure" not in v2_body
    assert v2_conn == {}
    assert v1_body["metadata"] == v2_body["metadata"] == {RUN_KEY: target.run_id}


def test_the_kruise_extensions_are_asked_for_once_on_the_runs_own_list() -> None:
    """``GET /kruise/api/v2/sandboxes?limit=1&metadata=<run>``: a team's thousands of sandboxes
    are not read; a 404 or a 405 there is a server without the extensions."""
    seen: list[Scope] = []
    with serve(wrap=_recording(seen)) as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        assert api.kruise_missing() is None
        assert api.kruise_missing() is None
        api.close()
    assert len(seen) == 1
    assert seen[0]["path"] == "/kruise/api/v2/sandboxes"
    query = dict(p.split("=", 1) for p in seen[0]["query_string"].decode().split("&"))
    assert query == {"limit": "1", "metadata": f"{RUN_KEY}%3D{api.target.run_id}"}


def _answering(status: int) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware answering ``status`` to everything under /kruise/api."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def answered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/kruise/api/"):
                await send({"type": "http.response.start", "status": status, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await app(scope, receive, send)

        return answered

    return wrap


@pytest.mark.parametrize("status", [404, 405])
def test_a_server_not_serving_the_kruise_prefix_has_no_kruise_extensions(status: int) -> None:
    with serve(wrap=_answering(status)) as url:
        api = Api(Target(api_url=url, api_key=USER_KEY, sandbox_url=url), v2_routes=True)
        missing = api.kruise_missing()
        api.close()
    assert missing == (
        "the server does not serve the OpenKruise extensions (GET /kruise/api/v2/sandboxes "
        f"answered HTTP {status}); leave kruise out of --levels"
    )

"""The server under test, and raw HTTP access to it the way a client has it.

:class:`Target` holds what the suite was told (API URL and key, sandbox URL,
domain, templates). :class:`Api` speaks raw HTTP where the wire itself is
the subject of a check (status codes, headers, error bodies, page tokens),
both to the control plane and to sandboxes through the sandbox proxy, at
the URL the installed SDK would use (:meth:`Api.sandbox_base`): the sandbox
URL when one is given, else the sandbox's domain (from its create answer,
else ``--domain``/``E2B_DOMAIN``, else the SDK's default ``e2b.app``), at
``https://sandbox.<domain>`` for the domains the SDK routes by headers and at
``https://<port>-<sandboxID>.<domain>`` for the others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from pytest_kruise_agents.conformance.expect import CheckFailed
from pytest_kruise_agents.conformance.report import clean

__all__ = [
    "CLEANUP_TIMEOUT_S",
    "DEFAULT_DOMAIN",
    "ENVD_PORT",
    "JUPYTER_PORT",
    "KRUISE_PREFIX",
    "LIST_SETTLE_S",
    "PLACEHOLDER_KEY",
    "RUN_KEY",
    "Api",
    "Target",
    "connect_route",
    "create_route",
    "sdks_calling",
    "url_problem",
]

ENVD_PORT: Final = 49983
JUPYTER_PORT: Final = 49999

KRUISE_PREFIX: Final = "/kruise/api"
"""The OpenKruise Agents prefix under which the E2B API is also served."""

PLACEHOLDER_KEY: Final = "e2b_conformance_no_key"
"""The SDK's key when none is given: the SDK refuses an empty one before sending anything,
but a server with auth disabled must still be judged on what it answers."""

RUN_KEY: Final = "conformance-run"
"""Metadata key on every sandbox the suite creates; its value is the run's id."""

DEFAULT_DOMAIN: Final = "e2b.app"
"""The SDK's sandbox domain when neither the API nor ``E2B_DOMAIN`` names one (E2B §1.1)."""

LIST_SETTLE_S: Final = 10.0
"""Wall seconds a list may take to show a change the server has already answered (default).

Lists are read from caches that see a write a moment after the call that made
it (the sandbox-manager's informer cache; E2B's orchestrator cache), so a list
right after a create may miss the new sandbox. Checks of what a list shows ask
again until it holds, for this long (:attr:`Target.list_settle`), and report
what the last list showed.
"""

CLEANUP_TIMEOUT_S: Final = 60.0
"""Seconds a cleanup waits for each DELETE of a sandbox it kills (default): the request timeout,
as long as the SDK waits, so that a slow but answered kill is no failure. A server that leaves
one unanswered that long has later cleanups wait less (see ``sandboxes.cleanup_wait``)."""


def _header_routed_domains() -> frozenset[str]:
    """The domains whose sandboxes the installed SDK reaches at ``https://sandbox.<domain>``,
    named by headers (E2B §1.2 step 3); none for SDKs before that shared host (2.8)."""
    try:
        from e2b.sandbox_domains import SUPPORTED_SANDBOX_DOMAINS
    except ImportError:
        return frozenset()
    return frozenset(SUPPORTED_SANDBOX_DOMAINS)


_MAX_PORT: Final = 65535


def _port_text(url: str) -> str | None:
    """The port of ``url`` as written (``None`` without one): the text after the host's ``:``."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    if netloc.startswith("["):  # an IPv6 literal has colons of its own
        netloc = netloc.partition("]")[2]
    _host, colon, port = netloc.partition(":")
    return port if colon and port else None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server's base URL (not ``http(s)://host[:port][/path]`` with a
    port in 1..65535), else ``None``."""
    try:
        parsed = httpx.URL(url)
        parsed.port  # noqa: B018 -- parsing the port is the check (":abc" raises)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"not a URL: {url!r} ({exc})"
    if parsed.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {url!r}"
    if not parsed.host:
        return f"has no host: {url!r}"
    port = _port_text(url)
    # httpx keeps a port like 106939 (or reads "+80" as none) and the socket layer wraps it:
    # the checks would run against whatever listens on another port.
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) <= _MAX_PORT):
        return f"port {port!r} is not a number in 1..{_MAX_PORT}: {url!r}"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test and the templates to use (see the module docstring).

    :param api_url: base URL of the E2B API.
    :param api_key: the ``X-API-Key`` of the checks.
    :param sandbox_url: one URL for all sandbox traffic (header routing), or
        ``None`` for ``https://<port>-<id>.<domain>``.
    :param domain: the sandbox domain when the API does not return one.
    :param template: a template with ready sandboxes.
    :param code_template: a template running the code interpreter.
    :param no_stock_template: a template with no ready sandbox (for ``kruise.no-stock``).
    :param admin_key: the key for the server's admin clock (``/_kruise/clock``), if any.
    :param request_timeout: seconds per request.
    :param list_settle: wall seconds the checks of what a list shows ask again for
        (:data:`LIST_SETTLE_S`).
    :param cleanup_timeout: seconds a cleanup waits for each DELETE (:data:`CLEANUP_TIMEOUT_S`).
    """

    api_url: str
    api_key: str
    sandbox_url: str | None = None
    domain: str | None = None
    template: str = "base"
    code_template: str = "code-interpreter-v1"
    no_stock_template: str | None = None
    admin_key: str | None = None
    request_timeout: float = 60.0
    list_settle: float = LIST_SETTLE_S
    cleanup_timeout: float = CLEANUP_TIMEOUT_S
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def from_env(cls, **given: Any) -> Target | None:
        """A target from ``given`` options, falling back to ``E2B_API_URL``, ``E2B_API_KEY``,
        ``E2B_SANDBOX_URL``, ``E2B_DOMAIN`` and ``KRUISE_ADMIN_KEY`` (which ``kruise-agents
        serve`` prints with the others); ``None`` if there is no API URL.

        ``None`` is "not given"; a given value is never replaced: an empty ``api_key``
        means no key, and any other empty value is a ``ValueError`` naming it.
        """
        values = {k: v for k, v in given.items() if v is not None}
        for name, value in values.items():
            # An unset variable in a script's `--kruise-conformance-template "$T"`: a default
            # or the environment's value in its place would check what was never asked for.
            if value == "" and name != "api_key":
                raise ValueError(f"{name}: must not be empty")
        env = {
            "api_url": "E2B_API_URL",
            "api_key": "E2B_API_KEY",
            "sandbox_url": "E2B_SANDBOX_URL",
            "domain": "E2B_DOMAIN",
            "admin_key": "KRUISE_ADMIN_KEY",
        }
        for name, var in env.items():
            if name not in values and os.environ.get(var):
                values[name] = os.environ[var]
        if "api_url" not in values and "domain" in values:
            values["api_url"] = f"https://api.{values['domain']}"
        if "api_url" not in values:
            return None
        values["api_url"] = str(values["api_url"]).rstrip("/")
        if values.get("sandbox_url"):
            values["sandbox_url"] = str(values["sandbox_url"]).rstrip("/")
        values.setdefault("api_key", "")
        return cls(**values)

    @property
    def run_filter(self) -> str:
        """The ``metadata`` list filter of the run's own sandboxes: ``conformance-run=<run id>``."""
        return f"{RUN_KEY}={self.run_id}"

    @property
    def api_root(self) -> str:
        """The API URL without a trailing ``/kruise/api`` (the server's root)."""
        if self.api_url.endswith(KRUISE_PREFIX):
            return self.api_url[: -len(KRUISE_PREFIX)]
        return self.api_url

    def url(self, path: str) -> str:
        """The URL of the API ``path``; a ``/kruise/api/...`` path is not prefixed twice
        when the API URL already ends in ``/kruise/api``."""
        if path.startswith(KRUISE_PREFIX + "/"):
            return self.api_root + path
        return self.api_url + path

    def sdk_opts(self) -> dict[str, Any]:
        """The connection options every SDK call gets (``api_key``, ``api_url``, ...); without
        an API key, :data:`PLACEHOLDER_KEY`."""
        opts: dict[str, Any] = {
            "api_key": self.api_key or PLACEHOLDER_KEY,
            "api_url": self.api_url,
            "request_timeout": self.request_timeout,
        }
        if self.sandbox_url:
            opts["sandbox_url"] = self.sandbox_url
        if self.domain:
            opts["domain"] = self.domain
        return opts

    def environ(self) -> dict[str, str]:
        """The environment variables a user exports for the same server."""
        env = {"E2B_API_URL": self.api_url, "E2B_API_KEY": self.api_key}
        if self.sandbox_url:
            env["E2B_SANDBOX_URL"] = self.sandbox_url
        if self.domain:
            env["E2B_DOMAIN"] = self.domain
        return env


def create_route(v2: bool) -> str:
    """The create route of an SDK generation: ``/v2/sandboxes`` (``v2``) or ``/sandboxes``."""
    return "/v2/sandboxes" if v2 else "/sandboxes"


def connect_route(sandbox_id: str, v2: bool) -> str:
    """The connect route of an SDK generation for ``sandbox_id``."""
    return f"{create_route(v2)}/{sandbox_id}/connect"


def sdks_calling(v2: bool) -> str:
    """The ``e2b`` releases that create and connect with that generation's routes (E2B §2.6)."""
    return "e2b >= 2.51" if v2 else "e2b 2.20 to 2.50"


class Api:
    """Raw HTTP to the server: the control plane with the target's key, and sandbox traffic."""

    def __init__(self, target: Target, *, v2_routes: bool | None = None) -> None:
        self.target = target
        self.client = httpx.Client(timeout=target.request_timeout, follow_redirects=False)
        if v2_routes is None:
            from pytest_kruise_agents.conformance.sdk import uses_v2_routes

            v2_routes = uses_v2_routes()
        self.v2_routes = v2_routes
        """Whether create and connect use the ``/v2/`` routes, as the installed SDK does."""
        self.domains: dict[str, str] = {}
        """The ``domain`` each sandbox's create (or connect) answer gave, by sandbox id."""
        self.made: set[str] = set()
        """Every sandbox the run created (its create answered 201 with the id): the final
        sweep kills these even where the list does not show the run's metadata."""
        self._kruise: tuple[str | None] | None = None
        self.unanswered: list[str] = []
        """The sandboxes whose cleanup DELETE the server left unanswered: maybe left on it."""

    @property
    def create_route(self) -> str:
        """``/v2/sandboxes`` or ``/sandboxes``: the create route of :attr:`v2_routes`."""
        return create_route(self.v2_routes)

    def connect_route(self, sandbox_id: str) -> str:
        """The connect route of :attr:`v2_routes` for ``sandbox_id``."""
        return connect_route(sandbox_id, self.v2_routes)

    def remember_domain(self, sandbox_id: str, domain: object) -> None:
        """Reach ``sandbox_id`` at ``domain`` from now on, if it is a domain (a non-empty
        string, as the SDK takes it from a create or connect answer)."""
        if isinstance(domain, str) and domain:
            self.domains[sandbox_id] = domain

    def _remember(self, resp: httpx.Response, *, created: bool = False) -> httpx.Response:
        """``resp`` after noting the domain of the sandbox it answers with (a create's or a
        connect's) and, for a create (``created``) answered 201, that the run made it."""
        if resp.status_code in (200, 201):
            try:
                body = resp.json()
            except ValueError:
                return resp
            if isinstance(body, dict) and isinstance(body.get("sandboxID"), str):
                self.remember_domain(body["sandboxID"], body.get("domain"))
                if created and resp.status_code == 201:
                    self.made.add(body["sandboxID"])
        return resp

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    # -- control plane -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """``method path`` on the API with ``X-API-Key`` (the target's unless ``key`` is given;
        ``key=""`` sends no key). No answer (a timeout, a refused or broken connection) is a
        :class:`~pytest_kruise_agents.conformance.expect.CheckFailed` naming the request."""
        sent = dict(headers or {})
        api_key = self.target.api_key if key is None else key
        if api_key:
            sent["X-API-Key"] = api_key
        url = self.target.url(path)
        return self._send(f"{method} {path}", method, url, headers=sent, **kwargs)

    def _send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """``method url``; a :class:`CheckFailed` naming ``what`` when no answer comes (the
        request timed out, the connection was refused or broke)."""
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            seconds = kwargs.get("timeout", self.target.request_timeout)
            within = f" within {seconds:g} s" if isinstance(seconds, int | float) else ""
            expected = f"an answer{within}"
            raise CheckFailed(what, expected, f"none ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            text = " ".join(clean(str(exc)).split())[:300]
            raise CheckFailed(what, "an answer", f"{type(exc).__name__}: {text}") from exc

    def create(
        self,
        template: str | None = None,
        *,
        route: str | None = None,
        timeout: int | None = None,
        metadata: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        auto_pause: bool | None = None,
        prefix: str = "",
    ) -> httpx.Response:
        """Create as the SDK does (``metadata`` and ``envVars`` always sent; the run's metadata
        added), on the installed SDK's route unless ``route`` is given: ``/sandboxes`` is the
        v1 form of SDK <= 2.50 (always a timeout, always ``secure``)."""
        route = route or self.create_route
        body: dict[str, Any] = {
            "templateID": template or self.target.template,
            "metadata": {RUN_KEY: self.target.run_id, **(metadata or {})},
            "envVars": dict(env_vars or {}),
        }
        if timeout is not None:
            body["timeout"] = timeout
        if auto_pause is not None:
            body["autoPause"] = auto_pause
        if route == "/sandboxes":
            # What SDK 2.20-2.50 send: always a timeout, always secure.
            body.setdefault("timeout", 300)
            body["secure"] = True
        return self._remember(self.request("POST", prefix + route, json=body), created=True)

    def get(self, sandbox_id: str) -> httpx.Response:
        """``GET /sandboxes/{id}``."""
        return self.request("GET", f"/sandboxes/{sandbox_id}")

    def kill(self, sandbox_id: str, *, timeout: float | None = None) -> httpx.Response:
        """``DELETE /sandboxes/{id}`` (waiting ``timeout`` seconds, else the request timeout)."""
        limit: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return self.request("DELETE", f"/sandboxes/{sandbox_id}", **limit)

    def set_timeout(self, sandbox_id: str, seconds: int) -> httpx.Response:
        """``POST /sandboxes/{id}/timeout``."""
        return self.request("POST", f"/sandboxes/{sandbox_id}/timeout", json={"timeout": seconds})

    def pause(self, sandbox_id: str) -> httpx.Response:
        """``POST /sandboxes/{id}/pause`` with the SDK's empty body."""
        return self.request("POST", f"/sandboxes/{sandbox_id}/pause", json={})

    def connect(self, sandbox_id: str, timeout: int | None = None) -> httpx.Response:
        """Connect on the installed SDK's route (``{}`` without a timeout, as the v2 SDKs
        send; the v1 ones always send one, 300 s by default)."""
        if timeout is None and not self.v2_routes:
            timeout = 300
        body = {} if timeout is None else {"timeout": timeout}
        return self._remember(self.request("POST", self.connect_route(sandbox_id), json=body))

    def list(self, params: Any = None) -> httpx.Response:
        """``GET /v2/sandboxes`` with ``params`` (a mapping or a list of pairs)."""
        return self.request("GET", "/v2/sandboxes", params=params)

    def kruise_missing(self) -> str | None:
        """Why the server has no OpenKruise extensions, or ``None`` if it has them.

        Asked once: ``GET /kruise/api/v2/sandboxes`` (the run's own sandboxes, one item), the
        list under the prefix the sandbox-manager serves every E2B route under (Kruise §6.1).
        A 404 or 405 there says the server does not serve the prefix, as E2B's own does not.
        """
        if self._kruise is None:
            path = f"{KRUISE_PREFIX}/v2/sandboxes"
            resp = self.request(
                "GET", path, params={"limit": 1, "metadata": self.target.run_filter}
            )
            missing = None
            if resp.status_code in (404, 405):
                missing = (
                    f"the server does not serve the OpenKruise extensions (GET {path} answered "
                    f"HTTP {resp.status_code}); leave kruise out of --levels"
                )
            self._kruise = (missing,)
        return self._kruise[0]

    # -- sandbox traffic -----------------------------------------------------------------

    def sandbox_domain(self, sandbox_id: str) -> tuple[str, str]:
        """The domain the SDK reaches ``sandbox_id`` at, and where it comes from: the sandbox's
        create or connect answer, else the target's (``--domain``, ``E2B_DOMAIN``), else the
        SDK's default :data:`DEFAULT_DOMAIN` (E2B §1.2)."""
        if sandbox_id in self.domains:
            return self.domains[sandbox_id], "the domain of its create answer"
        if self.target.domain:
            return self.target.domain, "the domain given (--domain or E2B_DOMAIN)"
        return DEFAULT_DOMAIN, "the SDK's default domain"

    def sandbox_base(self, sandbox_id: str, port: int) -> tuple[str, str]:
        """``(url, how)``: where the installed SDK sends ``sandbox_id``'s traffic to ``port``
        (``ConnectionConfig.get_sandbox_url``, E2B §1.2), and how it was chosen."""
        if self.target.sandbox_url:
            return self.target.sandbox_url, "the sandbox URL"
        domain, how = self.sandbox_domain(sandbox_id)
        if domain in _header_routed_domains():
            return f"https://sandbox.{domain}", how
        return f"https://{port}-{sandbox_id}.{domain}", how

    def sandbox(
        self,
        sandbox_id: str,
        port: int,
        method: str,
        path: str,
        *,
        token: str | None = None,
        domain: str | None = None,
        by_host: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request to ``port`` of a sandbox through the sandbox proxy, at the URL the SDK
        uses (:meth:`sandbox_base`), naming the sandbox by the ``E2b-Sandbox-Id`` and
        ``E2b-Sandbox-Port`` headers as the SDK does. ``token`` is sent as ``X-Access-Token``.

        ``by_host`` names the sandbox by host instead, ``<port>-<id>.<domain>`` (``domain``,
        else the sandbox's): as the ``Host`` header of a request to the sandbox URL when
        one is given, else at ``https://<port>-<id>.<domain>`` (the SDK's direct URL).
        No answer is a ``CheckFailed`` naming the request, the sandbox and the port.
        """
        sent = dict(headers or {})
        if token:
            sent["X-Access-Token"] = token
        if by_host:
            dom = domain or self.sandbox_domain(sandbox_id)[0]
            host = f"{port}-{sandbox_id}.{dom}"
            if self.target.sandbox_url:
                sent["Host"] = host
                url = self.target.sandbox_url + path
                what = f"{method} {path} with Host: {host} at {self.target.sandbox_url}"
            else:
                url = f"https://{host}{path}"
                what = f"{method} {url}"
            return self._send(what, method, url, headers=sent, **kwargs)
        sent["E2b-Sandbox-Id"] = sandbox_id
        sent["E2b-Sandbox-Port"] = str(port)
        base = self.sandbox_base(sandbox_id, port)[0]
        what = f"{method} {path} of sandbox {sandbox_id} (port {port}) at {base}"
        return self._send(what, method, base + path, headers=sent, **kwargs)

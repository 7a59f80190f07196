"""The Backend seam: what the E2B server, the fixtures and the benchmarks may ask of a cluster.

A backend is one cluster running the OpenKruise Agents claim system: the
embedded SimPy model (:class:`~pytest_kruise_agents.backends.sim.SimBackend`)
or, later, a real Kubernetes cluster. Everything above this layer talks to a
backend only through :class:`Backend`, so a second backend can slot in. A
backend may offer more than the protocol: ``SimBackend.locked()`` yields the
simulated :class:`~simulator.cluster.Cluster` itself, which a backend over a
real cluster has no counterpart of, so it is not part of :class:`Backend`.

Every method is synchronous and thread-safe: the ASGI app calls them from
worker threads, or, through :meth:`Backend.attempt`, on its event loop when a
call can be answered at once. E2B operations raise
:class:`~pytest_kruise_agents.claiming.errors.ClaimError` whose ``code`` is the
HTTP status the real sandbox-manager answers; resource operations raise
:class:`~pytest_kruise_agents.api.errors.InvalidError` on bad input (400) and
:class:`KeyError`-like :class:`ResourceNotFound` for an unknown object (404).
An argument of the wrong kind (from Python: the server's models type what
JSON carries), such as a timeout of ``True`` or ``45.5`` or a list limit of
``"5"``, raises :class:`~pytest_kruise_agents.api.errors.InvalidError` naming
it from every operation, E2B ones included, before anything changes.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar, overload, runtime_checkable

from pytest_kruise_agents.api.manifest import (
    KubeObject,
    PodKind,
    SandboxClaimKind,
    SandboxKind,
    SandboxSetKind,
    SandboxTemplateKind,
)
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate

# The create request is the claim system's (every create path checks and passes
# it on as one value); re-exported here, as the seam's create takes it.
from pytest_kruise_agents.claiming.extensions import CreateRequest
from pytest_kruise_agents.claiming.view import SandboxView

__all__ = [
    "Backend",
    "Caller",
    "ClockMode",
    "CreateRequest",
    "ListQuery",
    "Pending",
    "ResourceForbidden",
    "ResourceNotFound",
    "Route",
    "SandboxListener",
    "SandboxView",
    "TemplateView",
]

ClockMode = Literal["virtual", "realtime"]

T = TypeVar("T")


class ResourceNotFound(LookupError):
    """A named Kubernetes object does not exist (404)."""

    def __init__(self, kind: str, namespace: str | None, name: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        where = f"{namespace}/{name}" if namespace else name
        super().__init__(f"{kind} {where} not found")


class ResourceForbidden(PermissionError):
    """The cluster refused a write (403), e.g. an admission webhook's denial.

    The message is the cluster's own (``admission webhook "..." denied the
    request: ...``); nothing changed.
    """


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls an E2B operation: an API key's team (namespace) and id.

    ``namespace == ""`` is the admin team, which sees every namespace.
    ``user`` is the API key id: it owns the sandboxes it creates.
    """

    namespace: str
    user: str

    @property
    def admin(self) -> bool:
        """The admin team spans all namespaces."""
        return self.namespace == ""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """``GET /v2/sandboxes`` after query decoding (metadata already triple-decoded)."""

    states: tuple[str, ...] = ("running", "paused")
    metadata: Mapping[str, str] = field(default_factory=dict)
    limit: int = 100
    next_token: str | None = None
    order: Literal["asc", "desc"] = "asc"
    template: str | None = None
    started_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class TemplateView:
    """A template (a SandboxSet) as ``GET /templates`` shows it."""

    template_id: str
    namespace: str
    cpu_count: int
    memory_mb: int
    disk_size_mb: int
    created_at: datetime | None
    replicas: int
    available: int
    deleting: bool = False
    """The SandboxSet is being deleted (kept by a finalizer): ``buildStatus: deleting``."""


@dataclass(frozen=True, slots=True)
class Route:
    """What the sandbox traffic router needs to know about one sandbox id (no auth).

    ``state`` is ``"running"`` when traffic may flow; anything else answers 502.
    ``env_vars`` and ``access_token`` come from the create request (the
    agent-runtime ``/init`` body); ``access_token`` is ``""`` when the sandbox
    has none (then envd enforces nothing).
    """

    sandbox_id: str
    namespace: str
    name: str
    state: Literal["running", "paused", "creating", "dead"]
    access_token: str
    env_vars: Mapping[str, str]
    owner: str


SandboxListener = Callable[[str, "str | None"], None]
"""Called with ``(sandbox_id, state)`` when a claimed sandbox changes E2B state:
``"running"``, ``"paused"``, or ``None`` once it is gone (killed, timed out,
deleted). Called from the backend's own thread; must not call back into it."""


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    """A call :meth:`Backend.attempt` could not answer at once.

    ``finish()`` completes it and returns its value (or raises its error). It
    may block (run the model, wait for the clock, wait for the lock), so call
    it from a worker thread, exactly once.

    ``cancel()``, when not ``None``, says the caller went away (the HTTP
    client disconnected): a call that can stop, a create, stops as the real
    sandbox-manager does when the request's context is cancelled, and
    ``finish()`` raises :class:`~pytest_kruise_agents.claiming.errors.ClaimCanceledError`;
    other calls run to their end. It never blocks and may be called from any
    thread, before or while ``finish()`` runs; after the call ended it does nothing.

    ``when_ready(callback)``, when not ``None``, says the call goes on without
    any thread of the caller's (a realtime clock runs it): ``callback()`` is
    called once, from any thread, as soon as ``finish()`` would return at
    once (answered, failed, or the backend closed), or right away if it
    already would. ``callback`` must neither block nor raise, nor call back
    into the backend. An event loop awaits it instead of parking a worker
    thread in ``finish()`` for the whole wait: waiting calls do not use up
    the threads quick calls need.
    """

    finish: Callable[[], T]
    cancel: Callable[[], None] | None = None
    when_ready: Callable[[Callable[[], None]], None] | None = None


@runtime_checkable
class Backend(Protocol):
    """One cluster running the claim system (see the module docstring)."""

    def attempt(self, call: Callable[[], T], *, cancelled: bool = False) -> T | Pending[T]:
        """Answer ``call()`` (this backend's methods, arguments bound) at once if it can be.

        Returns the call's value (or raises its error) when it was answered on
        the calling thread without blocking: no lock held elsewhere waited
        for, no clock waited on, at most a few milliseconds of model work.
        Otherwise returns :class:`Pending`, whose ``finish()`` completes the
        call (what was started is not started again). An event loop uses this
        to skip the worker-thread hop for quick calls. A backend that cannot
        tell returns ``Pending(call)``.

        ``cancelled`` says the caller is gone already (its HTTP client left
        while the request waited to be handled): the call starts as if
        :attr:`Pending.cancel` had been called at once. A create starts and
        stops at its first wait, as upstream's claim whose request's context
        is already cancelled: it cleans up, its record ends ``context
        canceled``, and it raises
        :class:`~pytest_kruise_agents.claiming.errors.ClaimCanceledError`
        (here or from ``finish()``); other calls run as usual.
        """
        ...

    # -- resources (kubectl-like) -------------------------------------------------------

    def apply(self, source: Any) -> list[KubeObject]:
        """Create or update objects from YAML/JSON text, mappings or models."""
        ...

    @overload
    def get(self, kind: SandboxKind, name: str, namespace: str = "default") -> Sandbox: ...
    @overload
    def get(self, kind: SandboxSetKind, name: str, namespace: str = "default") -> SandboxSet: ...
    @overload
    def get(
        self, kind: SandboxClaimKind, name: str, namespace: str = "default"
    ) -> SandboxClaim: ...
    @overload
    def get(
        self, kind: SandboxTemplateKind, name: str, namespace: str = "default"
    ) -> SandboxTemplate: ...
    @overload
    def get(self, kind: PodKind, name: str, namespace: str = "default") -> Pod: ...
    @overload
    def get(self, kind: str, name: str, namespace: str = "default") -> KubeObject: ...
    def get(self, kind: str, name: str, namespace: str = "default") -> KubeObject:
        """One object; :class:`ResourceNotFound` if absent.

        Typed as the kind's model when ``kind`` is one of its spellings written
        out, as :meth:`Cluster.get <simulator.cluster.Cluster.get>` is: ``"sbx"``
        (or ``"Sandbox"``, ``"sandboxes"``, ...) gives a :class:`Sandbox`, ``"sbs"`` a
        :class:`SandboxSet`, ``"sbc"`` a :class:`SandboxClaim`, ``"sbt"`` a
        :class:`SandboxTemplate`, ``"po"`` a :class:`Pod`; any other ``str``, any
        stored object (:data:`~pytest_kruise_agents.api.manifest.KubeObject`).
        """
        ...

    @overload
    def list(self, kind: SandboxKind, namespace: str | None = None) -> builtins.list[Sandbox]: ...
    @overload
    def list(
        self, kind: SandboxSetKind, namespace: str | None = None
    ) -> builtins.list[SandboxSet]: ...
    @overload
    def list(
        self, kind: SandboxClaimKind, namespace: str | None = None
    ) -> builtins.list[SandboxClaim]: ...
    @overload
    def list(
        self, kind: SandboxTemplateKind, namespace: str | None = None
    ) -> builtins.list[SandboxTemplate]: ...
    @overload
    def list(self, kind: PodKind, namespace: str | None = None) -> builtins.list[Pod]: ...
    @overload
    def list(self, kind: str, namespace: str | None = None) -> builtins.list[KubeObject]: ...
    def list(self, kind: str, namespace: str | None = None) -> builtins.list[Any]:
        """Objects of ``kind`` (all namespaces for ``None``), sorted by namespace and name.

        Typed as :meth:`get` is: a list of the kind's model for a spelling written
        out (``"sbx"``: ``list[Sandbox]``), else a list of any stored object.
        """
        ...

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """Delete one object; :class:`ResourceNotFound` if absent."""
        ...

    def table(self, kind: str, namespace: str | None = None) -> str:
        """``kubectl get``-style table of ``kind``."""
        ...

    # -- E2B operations (the sandbox-manager) -------------------------------------------

    def create_sandbox(self, caller: Caller, request: CreateRequest) -> SandboxView:
        """Claim a sandbox (warm, or created on no stock); waits until answered.

        Through :meth:`attempt`, a create left unfinished can be cancelled
        (:attr:`Pending.cancel`): its claim stops and cleans up what it locked.
        """
        ...

    def describe(self, caller: Caller, sandbox_id: str) -> SandboxView:
        """``GET /sandboxes/{id}``."""
        ...

    def kill(self, caller: Caller, sandbox_id: str) -> None:
        """``DELETE /sandboxes/{id}``."""
        ...

    def set_timeout(self, caller: Caller, sandbox_id: str, timeout: int) -> None:
        """``POST /sandboxes/{id}/timeout``."""
        ...

    def pause(self, caller: Caller, sandbox_id: str, retention: timedelta | None = None) -> None:
        """``POST /sandboxes/{id}/pause`` (waits until paused)."""
        ...

    def connect(
        self, caller: Caller, sandbox_id: str, timeout: int | None
    ) -> tuple[SandboxView, bool]:
        """``POST /sandboxes/{id}/connect``: ``(sandbox, resumed)``."""
        ...

    def resume(self, caller: Caller, sandbox_id: str, timeout: int | None) -> None:
        """``POST /sandboxes/{id}/resume`` (deprecated route of old SDKs)."""
        ...

    def list_sandboxes(
        self, caller: Caller, query: ListQuery
    ) -> tuple[builtins.list[SandboxView], str | None]:
        """One page of the caller's sandboxes and the next-page token."""
        ...

    def templates(self, caller: Caller) -> builtins.list[TemplateView]:
        """The SandboxSets the caller may claim from."""
        ...

    def route(self, sandbox_id: str) -> Route | None:
        """The route of a claimed sandbox, or ``None`` if the id is unknown."""
        ...

    def subscribe(self, listener: SandboxListener) -> None:
        """Call ``listener`` on every E2B state change of a claimed sandbox."""
        ...

    # -- time ---------------------------------------------------------------------------

    @property
    def clock_mode(self) -> ClockMode:
        """``virtual`` (time moves only when asked) or ``realtime``."""
        ...

    def now(self) -> datetime:
        """The cluster's current time (UTC)."""
        ...

    def advance(self, seconds: float) -> None:
        """Move time forward (virtual mode; realtime backends refuse)."""
        ...

    # -- faults, latency and records ----------------------------------------------------

    def inject(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Inject a fault by kind; return it (with its ``id``) as a mapping."""
        ...

    def clear_faults(self, fault_id: str | None = None) -> None:
        """Clear one fault, or all."""
        ...

    def faults(self) -> builtins.list[dict[str, Any]]:
        """The faults in force."""
        ...

    def set_latency(self, name: str, value: Any) -> None:
        """Replace one named latency distribution."""
        ...

    def records(self) -> builtins.list[dict[str, Any]]:
        """One mapping per claim: phase timestamps (seconds), warm, retries, error."""
        ...

    def metrics_text(self) -> str:
        """The Prometheus metrics in text exposition format (what ``GET /metrics`` serves)."""
        ...

    def close(self) -> None:
        """Stop background work and forget every sandbox."""
        ...

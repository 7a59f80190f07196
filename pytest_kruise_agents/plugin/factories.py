"""The factory fixtures: ``sandboxset``, ``sandbox_claim`` and ``e2b_sandbox``.

Each factory is called as many times as a test likes and cleans up what it
made when the test ends (pools and claims go with the test's cluster;
sandboxes made through the SDK are killed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from pydantic import ValidationError

from pytest_kruise_agents.api.base import MANIFEST
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import load_manifests
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.problems import format_path, reason
from pytest_kruise_agents.api.sandboxclaim import ClaimPhase, SandboxClaim, SandboxClaimSpec
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.plugin.clock import KruiseClock
from pytest_kruise_agents.plugin.server import (
    FactoryMade,
    Holding,
    KruiseE2B,
    holding,
    kill_sandbox,
)
from simulator.cluster import check_seconds

if TYPE_CHECKING:
    from e2b import AsyncSandbox, Sandbox

    from pytest_kruise_agents.backends.sim import SimBackend
    from pytest_kruise_agents.plugin.recipe import Recipe
    from simulator.cluster import Cluster

__all__ = ["ClusterFactory", "E2BSandboxFactory", "SandboxClaimFactory", "SandboxSetFactory"]

S = TypeVar("S", bound="Sandbox")
"""A sync SDK sandbox class: ``e2b.Sandbox`` or a subclass (``e2b_code_interpreter.Sandbox``)."""
A = TypeVar("A", bound="AsyncSandbox")
"""An async SDK sandbox class: ``e2b.AsyncSandbox`` or a subclass."""


DEFAULT_IMAGE: Final = "registry.example.com/sandbox:v1"


def _pool_manifest(
    name: str = "pool",
    replicas: int = 3,
    namespace: str = "default",
    image: str = DEFAULT_IMAGE,
    cpu: str = "500m",
    memory: str = "512Mi",
    runtimes: Sequence[str] = ("agent-runtime",),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The SandboxSet ``sandboxset(name, ...)`` applies: one container, these requests."""
    template: dict[str, Any] = {
        "spec": {
            "containers": [
                {
                    "name": "sandbox",
                    "image": image,
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ]
        }
    }
    if labels:
        template["metadata"] = {"labels": dict(labels)}
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "runtimes": [{"name": r} for r in runtimes],
            "template": template,
        },
    }


def _check_runtimes(runtimes: object) -> None:
    """Refuse ``runtimes`` unless it is a list (a sequence) of names, not one text."""
    # A text is a sequence of one-letter texts: read as a list, "agent-runtime"
    # would be thirteen runtimes, a, g, e, ... . A set has no order to keep.
    if isinstance(runtimes, str):
        got = f"the text {runtimes!r}"
    elif isinstance(runtimes, (bytes, bytearray)) or not isinstance(runtimes, Sequence):
        got = repr(runtimes)
    else:
        return
    raise InvalidError("runtimes", f"must be a list of runtime names, got {got}")


class ClusterFactory:
    """``kruise_cluster_factory()``: a fresh cluster at each call, built as ``kruise_cluster``'s.

    The same options (the run's, the test's ``kruise`` marker) and so the same
    seed: every call gives a cluster in the same state, with the same event log.
    """

    def __init__(self, recipe: Recipe) -> None:
        self._recipe = recipe

    def __call__(self) -> Cluster:
        """A new cluster, pools ready (:class:`~pytest_kruise_agents.plugin.recipe.RecipeError`
        if the recipe cannot be built, as ``kruise_cluster`` would fail)."""
        return self._recipe.build()


class SandboxSetFactory:
    """``sandboxset(name, replicas=3, ...)``: apply a SandboxSet and wait until its pool is ready."""

    def __init__(self, clock: KruiseClock, backend: SimBackend) -> None:
        self._clock = clock
        self._backend = backend

    @overload
    def __call__(
        self,
        name: str = "pool",
        *,
        replicas: int = 3,
        namespace: str = "default",
        image: str = DEFAULT_IMAGE,
        cpu: str = "500m",
        memory: str = "512Mi",
        runtimes: Sequence[str] = ("agent-runtime",),
        labels: Mapping[str, str] | None = None,
        manifest: None = None,
        wait: bool = True,
        timeout: float = 600.0,
    ) -> SandboxSet: ...

    @overload
    def __call__(
        self,
        *,
        manifest: str | Mapping[str, Any],
        wait: bool = True,
        timeout: float = 600.0,
    ) -> SandboxSet: ...

    def __call__(
        self,
        name: str | None = None,
        *,
        replicas: int | None = None,
        namespace: str | None = None,
        image: str | None = None,
        cpu: str | None = None,
        memory: str | None = None,
        runtimes: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        manifest: str | Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float = 600.0,
    ) -> SandboxSet:
        """Apply a pool and (``wait``) run until all its ``replicas`` are available; return it.

        The pool is ``name`` (default ``pool``), ``replicas`` (3), ``namespace``
        (``default``), ``image``, ``cpu`` (``500m``), ``memory`` (``512Mi``),
        ``runtimes`` (``agent-runtime``) and ``labels`` (of its sandboxes), or a
        whole ``manifest``: YAML text or a mapping, exactly one SandboxSet.

        :param manifest: a whole SandboxSet instead of the other arguments; given
            with any of them, it raises ``InvalidError`` naming them (one would be
            ignored), before anything is applied.
        :param timeout: virtual seconds to wait for the pool (``TimeoutError`` after).
        """
        __tracebackhide__ = True
        shape: dict[str, Any] = {
            "name": name,
            "replicas": replicas,
            "namespace": namespace,
            "image": image,
            "cpu": cpu,
            "memory": memory,
            "runtimes": runtimes,
            "labels": labels,
        }
        given = [arg for arg, value in shape.items() if value is not None]
        if runtimes is not None:
            _check_runtimes(runtimes)
        if manifest is None:
            manifest = _pool_manifest(**{arg: shape[arg] for arg in given})
        elif given:
            raise InvalidError(
                "manifest", f"is the whole SandboxSet: {', '.join(given)} cannot go with it"
            )
        # Checked before anything is applied: a wrong manifest or timeout changes nothing.
        check_seconds("timeout", timeout)
        objs = load_manifests(manifest)
        if len(objs) != 1 or not isinstance(objs[0], SandboxSet):
            kinds = ", ".join(o.kind for o in objs) or "nothing"
            raise InvalidError("manifest", f"must be exactly one SandboxSet, got {kinds}")
        (applied,) = self._backend.apply(objs)
        name, ns = applied.metadata.name, applied.metadata.namespace or "default"
        if wait:
            self.wait_ready(name, ns, timeout=timeout)
        return self._backend.get("SandboxSet", name, ns)

    def wait_ready(self, name: str, namespace: str = "default", *, timeout: float = 600.0) -> None:
        """Run until the pool is ready to claim from (``TimeoutError`` after).

        Ready as :meth:`simulator.Cluster.wait_for_pool` counts it, under either
        clock: its current revision's ``spec.replicas`` sandboxes available to the
        sandbox-manager. A realtime clock's driver runs the model meanwhile.
        """
        __tracebackhide__ = True
        check_seconds("timeout", timeout)
        backend = self._backend
        if self._clock.mode == "virtual":
            try:
                with backend.locked() as cluster:
                    cluster.wait_for_pool(name, namespace, timeout=timeout)
                return
            except TimeoutError as exc:
                problem = str(exc)
            # Raised here, not chained: the traceback ends at the test's call.
            raise TimeoutError(problem)

        def ready() -> bool:
            with backend.locked() as cluster:
                return bool(cluster.pool_ready(name, namespace))

        waited = self._clock.wait(ready, timeout=timeout)
        if not waited.held:
            # The virtual seconds the model ran, not the timeout: the model may lag behind
            # the wall clock, and a stalled one gives up early.
            with backend.locked() as cluster:
                problem = str(cluster.pool_wait_error(name, namespace, waited.seconds))
            stall = waited.stall()
            raise TimeoutError(f"{problem}; {stall}" if stall else problem)


class SandboxClaimFactory:
    """``sandbox_claim(template, replicas=1, ...)``: apply a SandboxClaim, optionally wait for Completed."""

    def __init__(
        self, clock: KruiseClock, backend: SimBackend, made: FactoryMade | None = None
    ) -> None:
        self._clock = clock
        self._backend = backend
        self._next = 1
        """The number of the next ``claim-N`` name; taken only by a claim applied."""
        self._given: set[tuple[str, str]] = set()
        """The (namespace, name) of each claim applied with ``name=``: no generated name's."""
        self._made = made if made is not None else FactoryMade()

    def __call__(
        self,
        template: str = "base",
        *,
        replicas: int = 1,
        name: str | None = None,
        namespace: str = "default",
        wait: bool = True,
        timeout: float = 3600.0,
        **spec: Any,
    ) -> SandboxClaim:
        """Apply a claim on pool ``template``; with ``wait``, run until it is ``Completed``.

        ``spec`` takes the other ``SandboxClaimSpec`` fields as Python builds
        the model: snake_case or camelCase at any depth, durations as Go
        strings, ``timedelta`` or seconds (``claim_timeout=30``), parts as
        models or mappings. A wrong one raises one ``InvalidError`` naming it,
        before anything is applied. A claim completes when every replica is
        claimed or its ``claimTimeout`` passes: check ``status.claimed_replicas``.

        :param timeout: virtual seconds to wait for ``Completed`` (``TimeoutError`` after).
        """
        __tracebackhide__ = True
        check_seconds("timeout", timeout)  # before the apply: a wrong timeout changes nothing
        # The number is taken once the claim is applied: a refused call changes
        # nothing, not even the names (and so the event log) of the claims after it.
        number = self._next
        if not name:
            number = self._free(number, namespace or "default")
        claim_name = name or f"claim-{number}"
        claim = _claim(
            claim_name, namespace, {"template_name": template, "replicas": replicas, **spec}
        )
        namespace = claim.metadata.namespace  # "" is read as "default"
        applied = self._backend.apply([claim])[0]
        if name:
            self._given.add((namespace, name))
        else:
            self._next = number + 1
        self._made.claims.add(applied.metadata.uid or "")
        if wait:
            backend = self._backend

            def completed() -> bool:
                # Asked after every event: the stored claim is read in place, not copied.
                with backend.locked() as cluster:
                    stored = cluster.world.api.peek("SandboxClaim", namespace, claim_name)
                    if stored is not None:
                        return bool(stored.status.phase == ClaimPhase.COMPLETED)
                backend.get("SandboxClaim", claim_name, namespace)  # gone: its 404
                return False

            waited = self._clock.wait(completed, timeout=timeout)
            if not waited.held:
                late = backend.get("SandboxClaim", claim_name, namespace)
                raise TimeoutError(
                    f"SandboxClaim {namespace}/{claim_name}: phase {late.status.phase}, "
                    f"{late.status.claimed_replicas}/{late.spec.replicas} claimed "
                    f"{waited.after()}"
                )
        return self._backend.get("SandboxClaim", claim_name, namespace)

    def _free(self, number: int, namespace: str) -> int:
        """The first number from ``number`` on whose ``claim-N`` is free in ``namespace``.

        Not a name the test gave a claim (``name="claim-1"``), nor one a claim in the
        namespace has: applied onto it, the call would return that claim (or fail on its
        immutable spec, naming a claim the user never named) and claim nothing.
        """
        with self._backend.locked() as cluster:
            api = cluster.world.api
            while (namespace, f"claim-{number}") in self._given or api.peek(
                "SandboxClaim", namespace, f"claim-{number}"
            ) is not None:
                number += 1
        return number


class E2BSandboxFactory:
    """``e2b_sandbox(template=None, **opts)`` / ``await e2b_sandbox.acreate(...)``: SDK sandboxes.

    Created with the real SDK against ``kruise_e2b``; killed when the test ends.
    ``cls`` picks the SDK class (``e2b.Sandbox`` / ``e2b.AsyncSandbox`` by
    default; ``e2b_code_interpreter.Sandbox`` works the same way), and without
    ``template`` the class's default template is used. The other keywords go
    to ``cls.create``; ``api_key``, ``api_url`` and ``sandbox_url`` replace
    ``kruise_e2b``'s (another team's key, say).
    """

    def __init__(self, server: KruiseE2B) -> None:
        self._server = server
        # Each sandbox made, with the claim that gave it to us: a recycled id may
        # come back later as someone else's sandbox, which close() must spare.
        self._made: list[tuple[str, Holding | None]] = []

    @overload
    def __call__(
        self, template: str | None = None, *, cls: None = None, **opts: Any
    ) -> Sandbox: ...
    @overload
    def __call__(self, template: str | None = None, *, cls: type[S], **opts: Any) -> S: ...
    def __call__(
        self, template: str | None = None, *, cls: type[Sandbox] | None = None, **opts: Any
    ) -> Sandbox:
        """Create a sandbox with the sync SDK (``cls.create(template, **opts)``).

        Typed as an instance of ``cls``: ``cls=e2b_code_interpreter.Sandbox`` gives one
        with ``run_code``.
        """
        if cls is None:
            from e2b import Sandbox as default

            cls = default
        args = (template,) if template is not None else ()
        sbx = cls.create(*args, **{**self._server.connection(), **opts})
        self._track(sbx.sandbox_id)
        return sbx

    @overload
    async def acreate(
        self, template: str | None = None, *, cls: None = None, **opts: Any
    ) -> AsyncSandbox: ...
    @overload
    async def acreate(self, template: str | None = None, *, cls: type[A], **opts: Any) -> A: ...
    async def acreate(
        self, template: str | None = None, *, cls: type[AsyncSandbox] | None = None, **opts: Any
    ) -> AsyncSandbox:
        """Create a sandbox with the async SDK (``await cls.create(template, **opts)``).

        Typed as an instance of ``cls``, as the sync form is.
        """
        if cls is None:
            from e2b import AsyncSandbox as default_async

            cls = default_async
        args = (template,) if template is not None else ()
        sbx = await cls.create(*args, **{**self._server.connection(), **opts})
        self._track(sbx.sandbox_id)
        return sbx

    def _track(self, sandbox_id: str) -> None:
        self._made.append((sandbox_id, holding(self._server.backend, sandbox_id)))

    @property
    def created(self) -> list[str]:
        """Ids of the sandboxes made so far."""
        return [sandbox_id for sandbox_id, _ in self._made]

    def close(self) -> list[str]:
        """Kill every sandbox made that is still as made; return the ids whose kill failed.

        Skipped: those already gone, those the test killed (recycling ones
        included, still in their grace period), and an id a later claim holds
        now (recycled, then claimed again: another sandbox, not ours to kill).
        A kill that fails does not stop the others; the sandbox stays, and
        ``kruise_e2b``'s teardown tries again and reports it.
        """
        failed: list[str] = []
        for sandbox_id, held in self._made:
            if held is None:
                continue  # gone (or killed) before we could look
            try:
                kill_sandbox(self._server.backend, sandbox_id, held)
            except ClaimError:
                failed.append(sandbox_id)
        self._made.clear()
        return failed


def _claim(name: str, namespace: str, spec: dict[str, Any]) -> SandboxClaim:
    """The SandboxClaim ``sandbox_claim`` applies, or one :class:`InvalidError` naming the field.

    The spec is built as Python builds models, not decoded as a manifest:
    snake_case or camelCase names at any depth, a ``timedelta`` or a bare
    number of seconds for a duration, models or mappings for the parts. The
    metadata is checked as the API server checks a manifest's here, so that
    its error names the factory's keyword, before the apply checks it again.
    """
    where = f"SandboxClaim/{name}"
    try:
        meta = ObjectMeta.model_validate(
            {"name": name, "namespace": namespace}, strict=True, context=MANIFEST
        )
    except ValidationError as exc:
        raise _invalid(where, "metadata", exc, ()) from None
    try:
        claim_spec = SandboxClaimSpec.model_validate(spec)
    except ValidationError as exc:
        raise _invalid(where, "spec", exc, _SPEC_NAMES) from None
    return SandboxClaim(metadata=meta, spec=claim_spec)


_SPEC_NAMES: Final = tuple(
    name
    for field, info in SandboxClaimSpec.model_fields.items()
    for name in (field, info.alias or field)
)
"""Keywords a spec field answers to, for "did you mean" on a misspelt one."""


def _invalid(where: str, part: str, exc: ValidationError, known: Sequence[str]) -> InvalidError:
    """The first problem of ``exc`` as an :class:`InvalidError` on ``where part.<path>``."""
    error = exc.errors()[0]
    loc = error["loc"]
    # Suggestions are for the keyword level only; below it the names are the parts' own.
    names = known if len(loc) == 1 else ()
    return InvalidError(f"{where} {format_path((part, *loc))}", reason(error, known=names))

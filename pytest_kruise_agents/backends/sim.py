"""The embedded backend: the SimPy fake cluster behind the :class:`Backend` seam.

SimPy is single-threaded, and the E2B server calls the backend from many
worker threads, so every call holds one lock around the model. Two clocks:

- **virtual** (default): time moves only when a call must wait. A create that
  needs a refill runs the simulation forward until it is answered, under the
  lock; :meth:`SimBackend.advance` moves time on purpose. Calls are serialised,
  so concurrent requests are answered one after another in virtual time.
- **realtime(speed)**: a driver thread keeps virtual time at
  ``start + (wall elapsed) * speed``. A call starts its SimPy process under the
  lock and waits (without the lock) until the driver has run it to its end,
  so external clients see timeouts fire on the wall clock.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import KubeObject
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.backends.base import (
    Caller,
    ClockMode,
    CreateRequest,
    ListQuery,
    ResourceNotFound,
    Route,
    SandboxListener,
    TemplateView,
)
from pytest_kruise_agents.claiming.errors import NotFoundError as ClaimNotFound
from pytest_kruise_agents.claiming.state import sandbox_state
from pytest_kruise_agents.claiming.view import (
    SandboxView,
    e2b_state,
    init_request,
    sandbox_id,
    sandbox_view,
    split_sandbox_id,
    template_resources,
)
from simulator.cluster import Cluster
from simulator.errors import NotFoundError

__all__ = ["DEFAULT_POOLS", "SimBackend", "default_pools_yaml"]

T = TypeVar("T")

DEFAULT_POOLS: Final = ("base", "code-interpreter-v1")
"""The pools of the default cluster: the templates the E2B SDKs use by default."""

_DRIVER_TICK_S: Final = 0.005
"""Longest wall time the realtime driver sleeps before it looks at the clock again."""

_ROUTE_STATES: Final[dict[SandboxState, str]] = {
    SandboxState.RUNNING: "running",
    SandboxState.PAUSED: "paused",
    SandboxState.CREATING: "creating",
    SandboxState.AVAILABLE: "creating",
    SandboxState.DEAD: "dead",
}


def default_pools_yaml(
    replicas: int = 10, *, namespace: str = "default", pools: tuple[str, ...] = DEFAULT_POOLS
) -> str:
    """SandboxSet YAML for the default pools, each with an agent runtime."""
    docs = []
    for name in pools:
        docs.append(
            f"""apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  runtimes:
  - name: agent-runtime
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: sandbox
        image: registry.example.com/e2b/{name}:v1
        resources:
          requests:
            cpu: "1"
            memory: 1Gi
          limits:
            cpu: "2"
            memory: 2Gi
"""
        )
    return "---\n".join(docs)


class SimBackend:
    """The fake cluster as a :class:`~pytest_kruise_agents.backends.base.Backend`.

    :param cluster: the cluster to serve; a new ``Cluster(**cluster_options)`` if omitted.
    :param clock: ``"virtual"`` or ``"realtime"``.
    :param speed: virtual seconds per wall second in realtime mode.
    """

    def __init__(
        self,
        cluster: Cluster | None = None,
        *,
        clock: ClockMode = "virtual",
        speed: float = 1.0,
        **cluster_options: Any,
    ) -> None:
        if clock not in ("virtual", "realtime"):
            raise InvalidError("clock", f"must be virtual or realtime, got {clock!r}")
        if not speed > 0:
            raise InvalidError("speed", f"must be > 0, got {speed!r}")
        self.cluster = cluster if cluster is not None else Cluster(**cluster_options)
        self._mode: ClockMode = clock
        self._speed = float(speed)
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._listeners: list[SandboxListener] = []
        self._states: dict[str, str] = {}
        self._closed = False
        self._waiting: set[threading.Event] = set()
        self.cluster.world.manager_cache.add_handler("Sandbox", self._on_sandbox)
        self._driver: threading.Thread | None = None
        if clock == "realtime":
            self._wall0 = time.monotonic()
            self._sim0 = self.cluster.now
            self._driver = threading.Thread(
                target=self._drive, name="kruise-sim-clock", daemon=True
            )
            self._driver.start()

    @classmethod
    def default(
        cls,
        *,
        seed: int = 0,
        clock: ClockMode = "virtual",
        speed: float = 1.0,
        replicas: int = 10,
        profile: str = "openkruise-head",
        nodes: int = 4,
    ) -> SimBackend:
        """A cluster of ``nodes`` nodes with ready pools ``base`` and ``code-interpreter-v1``."""
        cluster = Cluster(seed=seed, profile=profile, nodes=nodes)
        cluster.apply(default_pools_yaml(replicas))
        for name in DEFAULT_POOLS:
            cluster.wait_for_pool(name)
        return cls(cluster, clock=clock, speed=speed)

    # -- running the model ---------------------------------------------------------------

    def _target(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self._speed

    def _drive(self) -> None:
        """Realtime mode: keep virtual time in step with the wall clock."""
        env = self.cluster.env
        with self._lock:
            while not self._closed:
                target = self._target()
                if target > env.now:
                    env.run(until=target)
                nxt = env.peek()
                wait = _DRIVER_TICK_S
                if nxt != float("inf"):
                    wait = min(wait, max((nxt - self._target()) / self._speed, 0.0))
                # Condition.wait releases the lock: calls get in between ticks.
                self._wake.wait(timeout=max(wait, 0.0005))

    def _run(self, gen: Generator[simpy.Event, Any, T]) -> T:
        """Run a SimPy sub-process to its end and return its value (or raise its error)."""
        if self._mode == "virtual":
            with self._lock:
                self._check_open()
                result: T = self.cluster.run(gen)
                return result
        done = threading.Event()
        with self._lock:
            self._check_open()
            proc = self.cluster.env.process(gen)
            proc.callbacks.append(lambda ev: _settle(ev, done))
            self._waiting.add(done)
            self._wake.notify_all()
        done.wait()
        with self._lock:
            self._waiting.discard(done)
            if not proc.triggered:
                # close() woke us: the clock stopped before the call was answered.
                raise RuntimeError("the backend is closed")
        outcome: Any = proc.value
        if not proc.ok:
            raise outcome
        value: T = outcome
        return value

    @contextmanager
    def locked(self) -> Iterator[Cluster]:
        """Hold the model's lock and use :attr:`cluster` directly, safe from the server's threads.

        In realtime mode the clock driver waits meanwhile; a call that runs the
        simulation moves virtual time ahead of the wall clock, which the
        driver then lets catch up.
        """
        with self._lock:
            self._check_open()
            yield self.cluster

    def _call(self, fn: Callable[[], T]) -> T:
        """Run an instant operation under the lock."""
        with self._lock:
            self._check_open()
            return fn()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the backend is closed")

    # -- resources --------------------------------------------------------------------------

    def apply(self, source: Any) -> builtins.list[KubeObject]:
        """Create or update objects (``kubectl apply``)."""
        return self._call(lambda: self.cluster.apply(source))

    def get(self, kind: str, name: str, namespace: str = "default") -> KubeObject:
        """One object, or :class:`ResourceNotFound`."""
        try:
            obj: KubeObject = self._call(lambda: self.cluster.get(kind, name, namespace))
        except NotFoundError as exc:
            raise ResourceNotFound(exc.kind, namespace, name) from exc
        return obj

    def list(self, kind: str, namespace: str | None = None) -> builtins.list[KubeObject]:
        """Objects of ``kind``, sorted by namespace and name."""
        objs: builtins.list[KubeObject] = self._call(lambda: self.cluster.list(kind, namespace))
        return objs

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """Delete one object, or :class:`ResourceNotFound`."""
        try:
            self._call(lambda: self.cluster.delete(kind, name, namespace))
        except NotFoundError as exc:
            raise ResourceNotFound(exc.kind, namespace, name) from exc

    def table(self, kind: str, namespace: str | None = None) -> str:
        """``kubectl get``-style table."""
        return self._call(lambda: self.cluster.table(kind, namespace))

    # -- E2B operations -----------------------------------------------------------------------

    def _view(self, sbx: Sandbox) -> SandboxView:
        view = sandbox_view(sbx, self.cluster.now_dt())
        if view is None:
            # The manager returned a sandbox it no longer shows (it just died).
            raise ClaimNotFound(f"Sandbox {sandbox_id(sbx)} not found")
        return view

    def create_sandbox(self, caller: Caller, request: CreateRequest) -> SandboxView:
        """Claim a sandbox through the sandbox-manager; wait until answered."""
        sbx: Sandbox = self._run(
            self.cluster.manager.create_sandbox(
                namespace=caller.namespace,
                user=caller.user,
                template=request.template,
                timeout_s=request.timeout,
                auto_pause=request.auto_pause,
                metadata=dict(request.metadata) if request.metadata else None,
                env_vars=dict(request.env_vars) if request.env_vars else None,
                volume_mounts=[dict(v) for v in request.volume_mounts]
                if request.volume_mounts
                else None,
                allow_internet_access=request.allow_internet_access,
            )
        )
        with self._lock:
            self._await_own_write(sbx)
            return self._view(sbx)

    def _await_own_write(self, sbx: Sandbox) -> None:
        """Virtual mode: run on until the manager's cache holds ``sbx`` as written.

        The manager's informer sees its own write one watch lag later, and the
        list skips sandboxes whose cached copy is older. Virtual time stands
        still between calls, so without this a list right after a create could
        miss the new sandbox until some later call moved time.
        """
        if self._mode != "virtual":
            return
        cache = self.cluster.world.manager_cache
        meta = sbx.metadata
        written = int(meta.resource_version or 0)

        def seen() -> bool:
            cached = cache.get("Sandbox", meta.namespace or "", meta.name)
            if cached is not None and int(cached.metadata.resource_version or 0) >= written:
                return True
            try:
                self.cluster.get("Sandbox", meta.name, meta.namespace or "default")
            except NotFoundError:
                return True  # deleted meanwhile: nothing to wait for
            return False

        self.cluster.run_until(seen, timeout=self.cluster.profile.expectation_timeout_s)

    def describe(self, caller: Caller, sandbox_id: str) -> SandboxView:
        """``GET /sandboxes/{id}``."""

        def op() -> SandboxView:
            sbx = self.cluster.manager.describe(caller.namespace, caller.user, sandbox_id)
            return self._view(sbx)

        return self._call(op)

    def kill(self, caller: Caller, sandbox_id: str) -> None:
        """``DELETE /sandboxes/{id}``."""
        self._run(self.cluster.manager.kill(caller.namespace, caller.user, sandbox_id))

    def set_timeout(self, caller: Caller, sandbox_id: str, timeout: int) -> None:
        """``POST /sandboxes/{id}/timeout``."""
        self._run(
            self.cluster.manager.set_timeout(caller.namespace, caller.user, sandbox_id, timeout)
        )

    def pause(self, caller: Caller, sandbox_id: str, retention: timedelta | None = None) -> None:
        """``POST /sandboxes/{id}/pause`` (waits until paused)."""
        self._run(self.cluster.manager.pause(caller.namespace, caller.user, sandbox_id, retention))

    def connect(
        self, caller: Caller, sandbox_id: str, timeout: int | None
    ) -> tuple[SandboxView, bool]:
        """``POST /sandboxes/{id}/connect``: ``(sandbox, resumed)``."""
        seconds = int(self.cluster.profile.default_timeout_s) if timeout is None else timeout
        sbx, resumed = self._run(
            self.cluster.manager.connect(caller.namespace, caller.user, sandbox_id, seconds)
        )
        with self._lock:
            self._await_own_write(sbx)
            return self._view(sbx), resumed

    def resume(self, caller: Caller, sandbox_id: str, timeout: int | None) -> None:
        """``POST /sandboxes/{id}/resume``."""
        seconds = int(self.cluster.profile.default_timeout_s) if timeout is None else timeout
        self._run(self.cluster.manager.resume(caller.namespace, caller.user, sandbox_id, seconds))

    def list_sandboxes(
        self, caller: Caller, query: ListQuery
    ) -> tuple[builtins.list[SandboxView], str | None]:
        """One page of the caller's sandboxes and the next-page token."""

        def op() -> tuple[builtins.list[SandboxView], str | None]:
            items, token = self.cluster.manager.list_sandboxes(
                caller.namespace,
                caller.user,
                states=query.states,
                metadata=query.metadata,
                limit=query.limit,
                next_token=query.next_token,
                order=query.order,
                template=query.template,
                started_after=query.started_after,
            )
            now = self.cluster.now_dt()
            views = [v for v in (sandbox_view(s, now) for s in items) if v is not None]
            return views, token

        return self._call(op)

    def templates(self, caller: Caller) -> builtins.list[TemplateView]:
        """The SandboxSets in the caller's namespace (admin: all)."""

        def op() -> builtins.list[TemplateView]:
            pools: builtins.list[SandboxSet] = self.cluster.list(
                "SandboxSet", caller.namespace or None
            )
            return [_template_view(p) for p in pools]

        return self._call(op)

    def route(self, sandbox_id: str) -> Route | None:
        """The route of a claimed sandbox (no auth), or ``None``."""

        def op() -> Route | None:
            if split_sandbox_id(sandbox_id) is None:
                return None
            sbx = self.cluster.manager.lookup(sandbox_id)
            if sbx is None or not sbx.metadata.annotations.get(keys.ANN_OWNER):
                return None
            state, _ = sandbox_state(sbx, self.cluster.now_dt())
            init = init_request(sbx)
            return Route(
                sandbox_id=sandbox_id,
                namespace=sbx.metadata.namespace or "",
                name=sbx.metadata.name,
                state=_ROUTE_STATES[state],  # type: ignore[arg-type]
                access_token=init.access_token if init else "",
                env_vars=dict(init.env_vars) if init else {},
                owner=sbx.metadata.annotations.get(keys.ANN_OWNER, ""),
            )

        return self._call(op)

    def subscribe(self, listener: SandboxListener) -> None:
        """Call ``listener(sandbox_id, state)`` on every E2B state change of a claimed sandbox."""
        with self._lock:
            self._listeners.append(listener)

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        if not obj.metadata.annotations.get(keys.ANN_OWNER) and (
            old is None or not old.metadata.annotations.get(keys.ANN_OWNER)
        ):
            return
        sid = sandbox_id(obj)
        state: str | None = None
        if new is not None and new.metadata.deletion_timestamp is None:
            state = e2b_state(new, self.cluster.now_dt())
        if self._states.get(sid) == state:
            return
        if state is None:
            self._states.pop(sid, None)
        else:
            self._states[sid] = state
        for listener in list(self._listeners):
            listener(sid, state)

    # -- time ------------------------------------------------------------------------------

    @property
    def clock_mode(self) -> ClockMode:
        """``virtual`` or ``realtime``."""
        return self._mode

    @property
    def speed(self) -> float:
        """Virtual seconds per wall second (realtime mode)."""
        return self._speed

    def now(self) -> datetime:
        """The cluster's current time (UTC)."""
        return self._call(self.cluster.now_dt)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward; timers due meanwhile fire. Refused in realtime mode."""
        if self._mode != "virtual":
            raise InvalidError("clock", "time follows the wall clock in realtime mode")
        if not seconds >= 0:
            raise InvalidError("seconds", f"must be >= 0, got {seconds!r}")
        if seconds > 0:
            self._call(lambda: self.cluster.advance(seconds))

    # -- faults, latency, records -------------------------------------------------------------

    def inject(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Inject a fault; return it with its id."""
        fault = self._call(lambda: self.cluster.inject(kind, **fields))
        return fault.model_dump(mode="json")

    def clear_faults(self, fault_id: str | None = None) -> None:
        """Clear one fault by id (:class:`ResourceNotFound` if unknown), or all."""

        def op() -> None:
            if fault_id is not None and all(f.id != fault_id for f in self.cluster.faults):
                raise ResourceNotFound("Fault", None, fault_id)
            self.cluster.clear_faults(fault_id)

        self._call(op)

    def faults(self) -> builtins.list[dict[str, Any]]:
        """The faults in force."""
        return self._call(lambda: [f.model_dump(mode="json") for f in self.cluster.faults])

    def set_latency(self, name: str, value: Any) -> None:
        """Replace one named latency distribution."""
        self._call(lambda: self.cluster.set_latency(name, value))

    def records(self) -> builtins.list[dict[str, Any]]:
        """One mapping per claim."""
        return self._call(lambda: [r.as_dict() for r in self.cluster.records])

    def close(self) -> None:
        """Stop the realtime driver; later calls fail."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            for done in self._waiting:
                done.set()
        if self._driver is not None and self._driver is not threading.current_thread():
            self._driver.join(timeout=5)


def _settle(event: simpy.Event, done: threading.Event) -> None:
    # A failed process nobody yields on would make SimPy raise in the driver
    # thread; the caller re-raises the error in its own thread instead.
    if not event.ok:
        event.defused = True
    done.set()


def _template_view(pool: SandboxSet) -> TemplateView:
    cpu_count, memory_mb, disk_size_mb = template_resources(pool.spec.template)
    return TemplateView(
        template_id=pool.metadata.name,
        namespace=pool.metadata.namespace or "",
        cpu_count=cpu_count,
        memory_mb=memory_mb,
        disk_size_mb=disk_size_mb,
        created_at=pool.metadata.creation_timestamp,
        replicas=pool.spec.replicas,
        available=pool.status.available_replicas if pool.status else 0,
    )

"""The public Python API of the fake cluster.

A :class:`Cluster` is one simulated Kubernetes cluster running the OpenKruise
Agents claim system: API server, nodes, the agent-sandbox-controller (Sandbox,
SandboxSet and SandboxClaim controllers) and the sandbox-manager. It runs in
virtual time: a call that must wait (a claim that needs a refill, a
wait-ready) runs the simulation forward until it is answered, and a test moves
time on purpose with :meth:`Cluster.advance`.

>>> cluster = Cluster(seed=7)
>>> cluster.apply(POOL_YAML)                      # doctest: +SKIP
>>> cluster.wait_for_pool("base")                 # doctest: +SKIP
>>> sbx = cluster.create_sandbox("base")          # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import copy
import math
import numbers
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, cast, overload

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import (
    KubeObject,
    PodKind,
    SandboxClaimKind,
    SandboxKind,
    SandboxSetKind,
    SandboxTemplateKind,
    listing_order,
    load_manifests,
    resolve_kind,
)
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.printers import Table, render_table
from pytest_kruise_agents.api.problems import brief, format_path
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.api.validation import FieldProblem, check_labels
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from pytest_kruise_agents.claiming.extensions import (
    CreateRequest,
    CreateSpec,
    check_string_map,
    check_timeout_seconds,
    create_spec,
    is_image_reference,
)
from pytest_kruise_agents.claiming.sandboxclaim import sandboxclaim_annotations_problem
from pytest_kruise_agents.claiming.sandboxset import (
    is_owned_by,
    is_updated,
    rollout_blocked,
    scale_up_blocked,
)
from pytest_kruise_agents.claiming.state import sandbox_state
from pytest_kruise_agents.claiming.view import sandbox_id_keys
from simulator import applying
from simulator.apiserver import Propagation
from simulator.claim import Claimer
from simulator.collector import simulation_gc
from simulator.context import CLOCK_END, DEFAULT_EPOCH, SimContext, check_epoch, past_clock_end
from simulator.controllers.sandbox import SandboxController
from simulator.controllers.sandboxclaim import SandboxClaimController
from simulator.controllers.sandboxset import SandboxSetController
from simulator.errors import NoAnswerError, NotFoundError, PoolTimeoutError
from simulator.eventlog import EventLog
from simulator.faults import Fault
from simulator.interrupts import sigint_deferred, step_to
from simulator.manager import CREATE_CALL_BOUND_S, SandboxManager
from simulator.nodes import Nodes, NodeSpec, node_spec_of, too_many_nodes
from simulator.profile import Profile, get_profile
from simulator.records import ClaimRecord, ClaimRecords
from simulator.runtime import AgentRuntime
from simulator.world import World

if TYPE_CHECKING:
    from simulator.exposition import ClusterCollector

__all__ = [
    "CACHE_WAIT_S",
    "CREATE_CALL_BOUND_S",
    "DEFAULT_USER",
    "Cluster",
    "PodKind",
    "SandboxClaimKind",
    "SandboxKind",
    "SandboxSetKind",
    "SandboxTemplateKind",
    "check_caller",
    "check_list_query",
    "check_predicate",
    "check_retention",
    "check_seconds",
    "default_nodes",
]


_PROPAGATIONS: tuple[Propagation, ...] = ("Background", "Foreground", "Orphan")

DEFAULT_USER = "00000000-0000-4000-8000-000000000001"
"""The API key id used as the sandbox owner when a caller names none."""

CACHE_WAIT_S = 1.0
"""Longest a call waits, in virtual seconds, for the manager's cache to show its own write
(twenty times the ordinary watch lag's upper bound): see ``Cluster.await_cached``."""


def default_nodes(
    count: int = 8, *, cpu: str = "64", memory: str = "256Gi", max_pods: int = 250
) -> list[NodeSpec]:
    """``count`` identical nodes named ``node-1`` ... ``node-<count>``."""
    return [
        NodeSpec(name=f"node-{i}", cpu=cpu, memory=memory, max_pods=max_pods)
        for i in range(1, count + 1)
    ]


class Cluster:
    """One simulated cluster with the whole claim system, in virtual time.

    :param seed: an integer >= 0 that seeds the cluster's only random generator: the
        same seed and the same calls give the same event log, byte for byte.
    :param profile: a profile name (``openkruise-head``, ``openkruise-v0.3.0``)
        or a :class:`~simulator.profile.Profile`.
    :param nodes: a node count (1 to :data:`~simulator.nodes.MAX_NODES`, of
        :func:`default_nodes`' 64 CPU, 256Gi, 250 pods) or a non-empty list of at most
        that many :class:`NodeSpec` (or mappings); ``None``: 8 nodes.
    :param latencies: latency overrides by name, e.g. ``{"pod.create": "exp(2s)"}``.
    :param knobs: profile knob overrides, e.g. ``claim_workers=10``.
    :param epoch: virtual time 0 as an aware date (default 2026-01-01 UTC, so that a
        seed gives the same dates); a realtime server passes the wall clock's now.
    :param log: keep the event log (turn off for very long runs).
    :param records_limit: keep only the latest this many claim records (``None``: all).
    :param token_source: where sandboxes' envd access tokens come from, e.g.
        ``lambda: str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))``
        (what ``kruise-agents serve`` passes); ``None`` (the default) draws them
        from ``seed``. Either way the run, tokens aside, is the same. It is called
        once here, to check that it returns a ``str``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        profile: str | Profile = "openkruise-head",
        nodes: int | Sequence[NodeSpec | Mapping[str, Any]] | None = None,
        latencies: Mapping[str, Any] | None = None,
        epoch: datetime = DEFAULT_EPOCH,
        log: bool = True,
        records_limit: int | None = None,
        token_source: Callable[[], str] | None = None,
        **knobs: Any,
    ) -> None:
        # Bad arguments raise InvalidError naming what is wrong, as apply() does.
        if isinstance(seed, bool) or not isinstance(seed, int):
            # None would seed from the OS: a cluster that is not reproducible.
            raise InvalidError("seed", f"must be an integer, got {seed!r}")
        if seed < 0:
            # random.Random seeds with abs(): -5 would quietly be seed 5's cluster.
            raise InvalidError("seed", f"must be at least 0, got {seed}")
        if not isinstance(profile, str | Profile):
            raise InvalidError("profile", f"must be a profile name or a Profile, got {profile!r}")
        try:
            prof = get_profile(profile) if isinstance(profile, str) else profile
        except ValueError as exc:
            raise InvalidError("profile", str(exc)) from None
        if latencies is not None and not isinstance(latencies, Mapping):
            raise InvalidError(
                "latencies",
                f"must be a mapping of latency name to distribution, got {latencies!r}",
            )
        if not isinstance(log, bool):
            # "no" is true: a log kept by a caller who asked for none.
            raise InvalidError("log", f"must be true or false, got {log!r}")
        if latencies or knobs:
            try:
                prof = prof.with_overrides(latencies=latencies, **knobs)
            except ValueError as exc:
                raise _override_error(prof, latencies, exc) from None
        if nodes is None:
            specs = default_nodes()
        elif isinstance(nodes, bool | str | bytes | Mapping) or not isinstance(
            nodes, int | Sequence
        ):
            raise InvalidError("nodes", f"must be a node count or a list of nodes, got {nodes!r}")
        elif isinstance(nodes, int):
            if nodes < 1:
                raise InvalidError("nodes", "must be at least 1")
            problem = too_many_nodes(nodes)
            if problem is not None:
                raise InvalidError("nodes", problem)
            specs = default_nodes(nodes)
        else:
            if not nodes:
                # As nodes=0: no pool of a cluster without nodes could ever fill.
                raise InvalidError("nodes", "must list at least one node")
            problem = too_many_nodes(len(nodes), listed=True)
            if problem is not None:
                raise InvalidError("nodes", problem)
            specs = [node_spec_of(n, f"nodes[{i}]") for i, n in enumerate(nodes)]
            names = [s.name for s in specs]
            for i, name in enumerate(names):
                if name in names[:i]:
                    raise InvalidError(f"nodes[{i}].name", f"{name!r} is given twice")
        try:
            records = ClaimRecords(records_limit)
        except ValueError as exc:
            raise InvalidError("records_limit", str(exc)) from None
        if token_source is not None and not callable(token_source):
            raise InvalidError(
                "token_source", f"must be a function returning a str, got {token_source!r}"
            )
        if token_source is not None:
            # Called once here: a source of something else would fail each claim
            # deep inside, and stop the SandboxClaim controller with it.
            token = token_source()
            if not isinstance(token, str):
                raise InvalidError("token_source", f"must return a str, got {token!r}")
        self.ctx = SimContext(seed=seed, profile=prof, epoch=check_epoch(epoch), log_enabled=log)
        self.world = World(self.ctx, records)
        self.world.api.token_source = token_source
        self.runtime = AgentRuntime(self.world)
        self.nodes = Nodes(self.world, specs)
        self.sandbox_controller = SandboxController(self.world, self.runtime)
        self.sandboxset_controller = SandboxSetController(self.world)
        self.claim_claimer = Claimer(
            self.world,
            name="sandboxclaim-controller",
            cache=self.world.controller_cache,
            client=self.world.controller_client.for_component(SandboxClaimController.stall_name),
            runtime=self.runtime,
            worker_slots=None,
            create_limiter=None,
        )
        self.sandboxclaim_controller = SandboxClaimController(self.world, self.claim_claimer)
        self.manager = SandboxManager(self.world, self.runtime)
        for component in (
            self.nodes,
            self.sandbox_controller,
            self.sandboxset_controller,
            self.sandboxclaim_controller,
            self.manager,
        ):
            component.start()

    def __repr__(self) -> str:
        """Seed, profile, clock and counts (a notebook shows this for a bare ``cluster``)."""
        api = self.world.api
        kinds = " ".join(
            f"{short}={api.count(kind)}"
            for kind, short in (("SandboxSet", "sbs"), ("Sandbox", "sbx"), ("SandboxClaim", "sbc"))
        )
        return (
            f"<Cluster seed={self.ctx.seed} profile={self.ctx.profile.name} now={self.now:g}s "
            f"nodes={len(self.nodes.specs)} {kinds} records={len(self.world.records)} "
            f"log={len(self.ctx.log)}>"
        )

    # -- time ---------------------------------------------------------------------

    @property
    def env(self) -> simpy.Environment:
        """The SimPy environment (the cluster's only clock)."""
        return self.ctx.env

    @property
    def now(self) -> float:
        """Virtual seconds since the cluster started."""
        return self.ctx.now()

    def now_dt(self) -> datetime:
        """Virtual now as a UTC datetime."""
        return self.ctx.now_dt()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``; timers due meanwhile fire.

        ``advance(0)`` runs what is due now without moving time.
        """
        check_seconds("seconds", seconds)
        seconds = float(seconds)
        env = self.env
        until = env.now + seconds
        if until <= env.now:
            # Zero, or too small to move a clock this far on (1e-9 at t=1e10 rounds
            # back to now, which SimPy refuses as a stop time): what is due now runs.
            # It moves no time, so even a clock at or past its end may do it.
            with simulation_gc(), sigint_deferred() as hits:
                while env.peek() <= env.now:
                    if hits:
                        raise KeyboardInterrupt
                    env.step()
            return
        if until > self.ctx.clock_end():
            # Past CLOCK_END a "forever" (100-year) deadline, or the model running on,
            # would fall beyond the year 9999: answers would fail from then on. (A step
            # past the calendar's end is past CLOCK_END too: one limit, one message.)
            raise InvalidError(
                "seconds",
                f"would move the clock past {format_time(CLOCK_END)}: deadlines up to 100 "
                f"years (upstream's forever) later must stay dates, which end with the year "
                f"{datetime.max.year}",
            )
        with simulation_gc(), sigint_deferred() as hits:
            step_to(env, until, hits)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float = 3600.0) -> bool:
        """Run until ``predicate()`` holds or ``timeout`` virtual seconds pass; return whether it held.

        ``timeout=0`` runs nothing, not even what is due now: it only checks
        ``predicate()`` (``advance(0)`` runs what is due now). A run that needs
        the clock past :data:`~simulator.context.CLOCK_END` stops there and
        raises :class:`InvalidError` naming ``timeout``; on an idle cluster, the
        clock stays where it was.
        """
        check_predicate(predicate)
        check_seconds("timeout", timeout)
        if timeout == 0:
            return predicate()
        timeout = float(timeout)
        env = self.env
        deadline = env.now + timeout
        end = self.ctx.clock_end()
        with simulation_gc(), sigint_deferred() as hits:
            while not predicate():
                if hits:
                    raise KeyboardInterrupt
                nxt = env.peek()
                if nxt > deadline:
                    if deadline > end:
                        raise past_clock_end("timeout")
                    if deadline > env.now:  # SimPy refuses to run until now
                        step_to(env, deadline, hits)
                    return predicate()
                if nxt > end:
                    raise past_clock_end("timeout")
                env.step()
        return True

    def run(self, gen: Generator[simpy.Event, Any, Any]) -> Any:
        """Run a SimPy sub-process to completion and return its value (or raise its error).

        A process that would need the clock past :data:`~simulator.context.CLOCK_END`
        raises :class:`InvalidError` there (it stays where it waits). One the
        model runs out of events for raises :class:`~simulator.errors.NoAnswerError`
        naming it, with the clock at the last event that happened.
        """
        if not hasattr(gen, "throw"):
            # SimPy's own test, whose refusal is a bare ValueError ("... is not a generator").
            raise InvalidError(
                "gen", f"must be a generator (call the process function), got {brief(gen)}"
            )
        what = getattr(gen, "__qualname__", None) or repr(gen)
        return self._run_op(gen, f"process {what}", cancel=False)

    def _run_op(self, gen: Generator[simpy.Event, Any, Any], what: str, *, cancel: bool) -> Any:
        """:meth:`run` of the process ``what`` is; a ``cancel`` one is interrupted (its
        client gone) when it can never be answered."""
        proc = self.env.process(gen)
        # Defused, a failed process does not make the step raise a re-made copy of
        # its error (SimPy's, which loses every attribute but the arguments):
        # its own error is raised here.
        proc.callbacks.append(_defuse)
        try:
            self._run_to(proc, what)
        except NoAnswerError:
            if cancel and proc.is_alive:
                proc.interrupt("client gone")
            raise
        if not proc.ok:
            raise cast(BaseException, proc.value)
        return proc.value

    def _run_to(self, until: simpy.Event, what: str, *, bound: float | None = None) -> None:
        """``env.run(until=until)``, stopping with :func:`past_clock_end` at the clock's end.

        ``what`` names the call for its error: :class:`NoAnswerError` when no event
        is left before ``until`` (the clock stays at the last one), and when
        ``bound`` virtual seconds pass first (the clock is then at that bound).
        """
        env = self.env
        end = self.ctx.clock_end()
        limit = end if bound is None else min(end, env.now + bound)
        with simulation_gc(), sigint_deferred() as hits:
            while until.callbacks is not None:  # not yet processed
                if hits:
                    raise KeyboardInterrupt
                nxt = env.peek()
                if nxt > limit:
                    if nxt == simpy.core.Infinity:
                        raise NoAnswerError.went_idle(what, self.ctx.now_dt())
                    if limit == end:
                        raise past_clock_end()
                    step_to(env, limit, hits)
                    if until.callbacks is None:  # answered at the bound itself
                        return
                    assert bound is not None  # limit < end is the bound's
                    raise NoAnswerError.out_of_bound(what, bound)
                env.step()

    # -- resources ------------------------------------------------------------------

    def apply(self, source: Any) -> list[KubeObject]:
        """Create or update objects from YAML/JSON text, mappings or models, like ``kubectl apply``.

        Everything is checked first, including what the API server checks at
        commit time: one bad object raises one :class:`InvalidError` and nothing
        is changed. An object must have a ``metadata.name`` (``generateName``
        alone would make a new object at each apply: :meth:`create` takes it).
        A manifest whose ``metadata.resourceVersion`` is not the
        stored one raises :class:`~simulator.errors.ConflictError` (409). An
        update that changes nothing is not written. Returns copies of the
        stored objects.
        """
        return self._write(source, create=False)

    def create(self, source: Any) -> list[KubeObject]:
        """Create objects as :meth:`apply` takes them, like ``kubectl create``.

        Every object is a new one: one named by ``metadata.generateName`` only
        gets a name made from it, and one that exists already raises
        :class:`~simulator.errors.ConflictError` (409 AlreadyExists). All or
        nothing, as :meth:`apply`. Returns copies of the stored objects.
        """
        return self._write(source, create=True)

    def _write(self, source: Any, *, create: bool) -> list[KubeObject]:
        """``apply`` or ``create``: check every object, then write them all."""
        api = self.world.api
        # Checking, writing and copying a manifest of many objects makes objects that live
        # on: under CPython's defaults each would be a step to a walk of the whole heap.
        with simulation_gc():
            objs = load_manifests(source)
            for obj in objs:
                if isinstance(obj, SandboxClaim):
                    _check_claim_writes(obj)
            writes = applying.plan(api, objs, create=create)
            out = applying.commit(api, writes)
            event = "user.create" if create else "user.apply"
            for obj in out:
                self.ctx.record(event, f"{obj.kind}/{obj.metadata.namespace}/{obj.metadata.name}")
            return [deep_copy(obj) for obj in out]

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
        """A copy of the stored object (``kind`` may be a short name such as ``sbx``); 404 if absent.

        The copy is the caller's: editing it changes nothing until it is applied.
        Typed as the kind's model when ``kind`` is one of its spellings written
        out (``"sbx"``: :class:`Sandbox`), else as any stored object.
        """
        obj: KubeObject = deep_copy(self._stored(kind, name, namespace))
        return obj

    @overload
    def list(
        self,
        kind: SandboxKind,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[Sandbox]: ...
    @overload
    def list(
        self,
        kind: SandboxSetKind,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[SandboxSet]: ...
    @overload
    def list(
        self,
        kind: SandboxClaimKind,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[SandboxClaim]: ...
    @overload
    def list(
        self,
        kind: SandboxTemplateKind,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[SandboxTemplate]: ...
    @overload
    def list(
        self,
        kind: PodKind,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[Pod]: ...
    @overload
    def list(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> builtins.list[KubeObject]: ...
    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[Any]:  # list is invariant: the overloads say what it holds
        """Copies of the stored objects of ``kind`` (all namespaces when ``namespace`` is None).

        Selected by label equality, in key order (namespace, then name) as the
        API server lists them. Typed as :meth:`get` is.
        """
        # A copy of every object listed: with the collector's defaults, the copies
        # kept would bring full collections, each a walk of the whole cluster.
        with simulation_gc():
            return [deep_copy(o) for o in self._select(kind, namespace, labels)]

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "default",
        *,
        propagation: Propagation | None = None,
    ) -> None:
        """Delete an object (404 if absent); dependents are garbage-collected.

        ``propagation`` is ``kubectl delete --cascade``'s policy: ``"Background"``
        (dependents go after the object), ``"Foreground"`` (the object stays,
        marked, until its blocking dependents are gone) or ``"Orphan"``
        (dependents stay and lose their reference to it). ``None``, as kubectl
        before 1.20, leaves it to the object's own ``orphan`` or
        ``foregroundDeletion`` finalizer, else background.
        """
        if propagation is not None and propagation not in _PROPAGATIONS:
            raise InvalidError(
                "propagation",
                f"must be one of {', '.join(_PROPAGATIONS)} or None, got {propagation!r}",
            )
        k = self._stored(kind, name, namespace).kind
        # The write runs the garbage-collector cascade (a pool's every sandbox and pod):
        # model work, under the collector thresholds the model runs with.
        with simulation_gc():
            self.world.api.commit_delete(k, namespace, name, propagation=propagation)
        detail = f"{k}/{namespace}/{name}"
        self.ctx.record("user.delete", detail if propagation is None else f"{detail} {propagation}")

    def table(self, kind: str, namespace: str | None = None) -> Table:
        """``kubectl get <kind>`` as text (``-A`` when ``namespace`` is None).

        A ``str`` that a notebook cell shows as the table itself (a :class:`Table`).
        """
        # Rendering reads the stored objects: nothing is copied, but a row of text per
        # object is made (as list does, under the simulation's collector thresholds).
        with simulation_gc():
            objs = self._select(kind, namespace, None)
            return Table(
                render_table(
                    objs,
                    self.now_dt(),
                    all_namespaces=namespace is None,
                    namespace=namespace or "default",
                )
            )

    def _stored(self, kind: object, name: object, namespace: object) -> Any:
        """The stored object itself (not a copy), after checking the arguments; 404 if absent."""
        k = _check_kind(kind)
        key = _check_name("name", name)
        ns = _check_name("namespace", namespace)
        obj = self.world.api.peek(k, ns, key)
        if obj is None:
            raise NotFoundError(k, ns, key)
        return obj

    def _select(
        self, kind: object, namespace: object, labels: Mapping[str, str] | None
    ) -> builtins.list[Any]:
        """The stored objects themselves (not copies) in key order, after checking the arguments."""
        k = _check_kind(kind)
        # "" would be client-go's "all namespaces": None says that here.
        ns = None if namespace is None else _check_name("namespace", namespace, "or None")
        _check_labels(labels)
        objs = self.world.api.peek_list(k, ns)
        if labels:
            objs = [
                o for o in objs if all(o.metadata.labels.get(a) == b for a, b in labels.items())
            ]
        objs.sort(key=listing_order)
        return objs

    def wait_for_pool(
        self, name: str, namespace: str = "default", *, timeout: float = 600.0
    ) -> SandboxSet:
        """Run until the SandboxSet is ready to claim from; return a copy of it.

        Ready, all of:

        - the controller has observed the set's spec: ``status.observedGeneration``
          equals ``metadata.generation`` (right after a re-apply that changes it,
          the written status still speaks of the old spec);
        - ``spec.replicas`` sandboxes are available, by the written status and by
          the controller's own count, and none is still being created;
        - the sandbox-manager's cache holds the SandboxSet with that
          ``status.updateRevision``, and ``spec.replicas`` of the set's sandboxes
          available and labelled ``template-hash`` with it: a warm claim then gets
          the current template. ``status.updatedAvailableReplicas`` cannot tell
          this: upstream recomputes it only while the set is at its size (#779).

        A rolling update therefore counts only once enough sandboxes of the new
        revision are available (old ones may still be there, the manager picks
        updated ones first). A ``templateRef`` set's revision is that of the
        reference, so a SandboxTemplate edited in place starts no rollout and
        is not waited for. Until its cache has seen the SandboxSet, the manager
        answers a create from it "Template or Checkpoint not found" (400), a
        pool of 0 replicas too.

        On timeout, :class:`~simulator.errors.PoolTimeoutError` (a ``TimeoutError``)
        says what was counted (during a rollout, the update revision's available
        sandboxes) and why when the pool tells (``explained``): a scale-up that
        ``scaleStrategy.maxUnavailable`` 0 blocks, a rollout blocked
        (:func:`~pytest_kruise_agents.claiming.sandboxset.rollout_blocked`), an
        unschedulable pod, a pod whose container waits.
        """
        self._stored("SandboxSet", name, namespace)
        if not self.run_until(partial(self._pool_ready, name, namespace), timeout=timeout):
            raise self.pool_wait_error(name, namespace, timeout)
        pool: SandboxSet = self.get("SandboxSet", name, namespace)
        return pool

    def pool_ready(self, name: str, namespace: str = "default") -> bool:
        """Whether the SandboxSet is ready to claim from now, as :meth:`wait_for_pool` counts it.

        It runs nothing: a caller that runs the model another way (a realtime
        clock's driver) polls it.
        """
        self._stored("SandboxSet", name, namespace)
        return self._pool_ready(name, namespace)

    def _pool_ready(self, name: str, namespace: str) -> bool:
        """:meth:`pool_ready` without checking the arguments (it runs after every event)."""
        # Both the written status and the controller's own bookkeeping must
        # agree: right after a claim the status still shows the old count.
        cur: SandboxSet | None = self.world.api.peek("SandboxSet", namespace, name)
        if cur is None or cur.status.available_replicas < cur.spec.replicas:
            return False
        if cur.status.observed_generation != cur.metadata.generation:
            return False
        c = self.sandboxset_controller.counts(namespace, name)
        if c["available"] < cur.spec.replicas or c["creating"] != 0:
            return False
        # The manager claims from its own cache, which sees every write a little
        # after the controller does. Read once the controller counts the pool
        # full: one look per sandbox, until enough are seen.
        seen = self.world.manager_cache
        revision = cur.status.update_revision
        cached_set = seen.get("SandboxSet", namespace, name)
        if cached_set is None or cached_set.status.update_revision != revision:
            return False
        want, now = cur.spec.replicas, self.now_dt()
        for sbx in self.world.controller_cache.by_index(
            "Sandbox", "owner-uid", cur.metadata.uid or ""
        ):
            if want <= 0:
                break
            cached = seen.get("Sandbox", namespace, sbx.metadata.name)
            if (
                cached is not None
                and cached.metadata.labels.get(keys.LABEL_TEMPLATE_HASH) == revision
                and sandbox_state(cached, now)[0] is SandboxState.AVAILABLE
            ):
                want -= 1
        return want <= 0

    def pool_wait_error(self, name: str, namespace: str, waited: float) -> PoolTimeoutError:
        """The error of a wait for the pool that ended unready after ``waited`` seconds: what
        :meth:`pool_ready` waited for in vain, and why when the pool says it.

        During a rollout (old-revision sandboxes still available) it counts the
        update revision's available sandboxes, which is what it waits for.
        ``waited`` is checked as a timeout is (a finite number >= 0).
        """
        check_seconds("waited", waited)
        self._stored("SandboxSet", name, namespace)
        cur: SandboxSet = self.get("SandboxSet", name, namespace)
        now = self.now_dt()
        revision = cur.status.update_revision
        mine = [s for s in self.world.api.peek_list("Sandbox", namespace) if is_owned_by(s, cur)]
        available = [s for s in mine if sandbox_state(s, now)[0] is SandboxState.AVAILABLE]
        updated = sum(1 for s in available if is_updated(s, revision))
        older = len(available) - updated
        replicas = cur.spec.replicas
        if older:
            counted = (
                f"{updated}/{replicas} of revision {revision} available "
                f"({older} of older revisions)"
            )
        else:
            counted = f"{cur.status.available_replicas}/{replicas} available"
        generation, observed = cur.metadata.generation, cur.status.observed_generation
        if observed is None:
            counted += " (not yet seen by the controller)"
        elif observed != generation:
            # The counts above are of the spec the controller last saw, not of this one.
            counted += f" (the controller has observed generation {observed} of {generation})"
        blocked = rollout_blocked(cur, mine, now)
        stopped = scale_up_blocked(cur, len(available))
        why = self.unschedulable_message(name, namespace)
        waits = None if why else self._waiting_message(name, namespace)
        reasons = [
            *([f"scale-up blocked: {stopped}"] if stopped else []),
            *([f"rollout blocked: {blocked}"] if blocked else []),
            *([f"a pod of it is unschedulable: {why}"] if why else []),
            *([f"a pod of it is not ready: {waits}"] if waits else []),
        ]
        return PoolTimeoutError(
            f"SandboxSet {namespace}/{name}: {counted} after {waited:g}s",
            reason="; ".join(reasons) or None,
        )

    def unschedulable_message(self, name: str, namespace: str = "default") -> str | None:
        """Why a pod of pool ``name`` cannot be placed (its ``PodScheduled`` message, as
        kube-scheduler writes it), or ``None`` if none of its pods is unschedulable."""
        _check_name("name", name)
        _check_name("namespace", namespace)
        for pod in self.world.api.peek_list("Pod", namespace):
            if pod.metadata.labels.get(keys.LABEL_SANDBOX_POOL) != name or pod.spec.get("nodeName"):
                continue
            cond = find_condition(pod.status.conditions, "PodScheduled")
            if cond is not None and cond.reason == "Unschedulable" and cond.message:
                return cond.message
        return None

    def _waiting_message(self, name: str, namespace: str) -> str | None:
        """Why a placed pod of pool ``name`` does not run: a container's waiting reason and
        message as the kubelet wrote them (``InvalidImageName``, ``ImagePullBackOff``...),
        or ``None``. Being created or initialised is no reason: it passes."""
        for pod in self.world.api.peek_list("Pod", namespace):
            if pod.metadata.labels.get(keys.LABEL_SANDBOX_POOL) != name:
                continue
            st = pod.status
            for status in chain(st.init_container_statuses, st.container_statuses):
                waiting = status.state.waiting
                if waiting is not None and waiting.reason not in _UNDER_WAY:
                    return f"container {status.name} waits, {waiting.reason}: {waiting.message}"
        return None

    # -- the E2B-level API (sandbox-manager) -------------------------------------------

    def create_sandbox(
        self,
        template: str,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
        timeout: int | None = None,
        metadata: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        auto_pause: bool = False,
        volume_mounts: Sequence[Mapping[str, str]] | None = None,
        allow_internet_access: bool | None = None,
    ) -> Sandbox:
        """Claim a sandbox as ``Sandbox.create(template=...)`` would; run until answered.

        Raises a :class:`~pytest_kruise_agents.claiming.errors.ClaimError`
        carrying the HTTP code the real sandbox-manager answers, and
        :class:`InvalidError` for an argument of the wrong kind.
        """
        request = CreateRequest(
            template,
            timeout=timeout,
            auto_pause=auto_pause,
            metadata=_or_empty(metadata),
            env_vars=_or_empty(env_vars),
            volume_mounts=volume_mounts,
            allow_internet_access=allow_internet_access,
        )
        spec = create_spec(namespace, user, request)
        # A refusal decided now runs nothing of the model (no event due now).
        self.manager.refuse_create(spec)
        proc = self.env.process(self.manager.create(spec))
        proc.callbacks.append(_defuse)
        self._run_claims(
            proc, [proc], self.manager.call_bound(spec), f"create of template {template!r}"
        )
        if not proc.ok:
            raise cast(BaseException, proc.value)
        sbx = cast(Sandbox, proc.value)
        # A copy, as get() gives: the stored object edited in place would change the
        # store and the caches with no write (no resourceVersion, no watch event).
        delivered = deep_copy(sbx)
        self.await_own_write(sbx)
        return delivered

    def submit_create(
        self,
        template: str,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
        timeout: int | None = None,
        metadata: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        auto_pause: bool = False,
        volume_mounts: Sequence[Mapping[str, str]] | None = None,
        allow_internet_access: bool | None = None,
    ) -> simpy.Process:
        """Start a claim without waiting; the process' value is a Sandbox or a ClaimError.

        Takes the keywords of :meth:`create_sandbox`. ``process.interrupt()`` is
        the client going away (the request's context cancelled): the claim
        stops, cleans up what it locked, and the value is a
        :class:`~pytest_kruise_agents.claiming.errors.ClaimCanceledError`.
        Arguments of the wrong kind raise :class:`InvalidError` before anything
        starts (an unknown keyword, Python's ``TypeError``).
        """
        request = CreateRequest(
            template,
            timeout=timeout,
            auto_pause=auto_pause,
            metadata=_or_empty(metadata),
            env_vars=_or_empty(env_vars),
            volume_mounts=volume_mounts,
            allow_internet_access=allow_internet_access,
        )
        # Checked and copied now, as create_sandbox does: the caller's mappings may
        # change before the process runs.
        return self._submit(create_spec(namespace, user, request))

    def _submit(self, spec: CreateSpec) -> simpy.Process:
        """The process of one create of ``spec``: its value is a Sandbox (a copy) or a ClaimError."""

        def attempt() -> Generator[simpy.Event, Any, Sandbox | ClaimError]:
            try:
                sbx: Sandbox = yield from self.manager.create(spec)
            except ClaimError as err:
                return err
            return deep_copy(sbx)

        return self.env.process(attempt())

    def create_sandboxes(
        self,
        count: int,
        template: str,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
        timeout: int | None = None,
        metadata: Mapping[str, str] | None = None,
        env_vars: Mapping[str, str] | None = None,
        auto_pause: bool = False,
        volume_mounts: Sequence[Mapping[str, str]] | None = None,
        allow_internet_access: bool | None = None,
    ) -> builtins.list[Sandbox | ClaimError]:
        """A burst of ``count`` concurrent claims; each result is a Sandbox or a ClaimError.

        ``count`` is an integer >= 0 (a burst of 0 claims answers ``[]``); the
        keywords are :meth:`create_sandbox`'s, checked before any claim starts.
        A request the sandbox-manager refuses whatever the cluster holds (its
        timeout, metadata, volume mounts or env vars: a 400) raises that
        :class:`~pytest_kruise_agents.claiming.errors.ClaimError` once, a burst of
        0 too, and no claim starts: not ``count`` claims failing alike, and no
        record, log line or counted response (docs/fidelity.md, Records).
        """
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidError("count", f"must be an integer, got {count!r}")
        if count < 0:
            raise InvalidError("count", f"must be >= 0, got {count}")
        request = CreateRequest(
            template,
            timeout=timeout,
            auto_pause=auto_pause,
            metadata=_or_empty(metadata),
            env_vars=_or_empty(env_vars),
            volume_mounts=volume_mounts,
            allow_internet_access=allow_internet_access,
        )
        # One spec for the whole burst: its request is the burst's own copy, which
        # no create changes.
        spec = create_spec(namespace, user, request)
        # Asked of a burst of 0 too: the check writes, records and counts nothing.
        self.manager.check_create(spec)
        procs = [self._submit(spec) for _ in range(count)]
        what = f"burst of {count} creates of template {template!r}"
        cut: NoAnswerError | None = None
        try:
            self._run_claims(self.env.all_of(procs), procs, self.manager.call_bound(spec), what)
        except NoAnswerError as err:
            cut = err
        results: builtins.list[Sandbox | ClaimError] = [p.value for p in procs]  # type: ignore[misc]
        if cut is not None:
            # The claims it cut (only it cancels these) answer its error; those
            # delivered or failed before keep their answer: no sandbox is lost.
            results = [
                NoAnswerError(cut.message) if isinstance(r, ClaimCanceledError) else r
                for r in results
            ]
        for result in results:
            if isinstance(result, Sandbox):
                self.await_own_write(result)
        return results

    def _run_claims(
        self,
        until: simpy.Event,
        claims: builtins.list[simpy.Process],
        bound: float | None,
        what: str,
    ) -> None:
        """:meth:`_run_to` ``until`` (within ``bound``); cut short, first cancel the ``claims`` still running.

        A caller who interrupts a create is a client going away: as the
        sandbox-manager does for a request whose context is cancelled, each
        claim still running stops at its current wait and cleans up what it
        locked once the model next runs (its value, a ``ClaimCanceledError``),
        rather than locking a sandbox nobody receives. A create that can no
        longer be answered (:class:`NoAnswerError`: no event left, or its
        ``bound`` passed), or that needs the clock past its end, is cancelled
        the same way, and the model runs on until the cancelled claims have
        cleaned up (or nothing is left to run) before the error is raised.
        """
        try:
            self._run_to(until, what, bound=bound)
        except KeyboardInterrupt:
            self._cancel(claims)
            raise
        except (NoAnswerError, InvalidError):
            cancelled = self._cancel(claims)
            end = self.ctx.clock_end()
            env = self.env
            with simulation_gc(), sigint_deferred() as hits:
                while any(p.callbacks is not None for p in cancelled) and env.peek() <= end:
                    if hits:
                        raise KeyboardInterrupt from None
                    env.step()
            raise

    @staticmethod
    def _cancel(claims: builtins.list[simpy.Process]) -> builtins.list[simpy.Process]:
        """Interrupt the ``claims`` still running (their client gone); return them."""
        cancelled = [proc for proc in claims if proc.is_alive]
        for proc in cancelled:
            proc.interrupt("client gone")
            proc.callbacks.append(_defuse)  # its error is nobody's to raise
        return cancelled

    def sandbox_id(self, sbx: Sandbox) -> str:
        """The E2B sandbox id of a sandbox (``<namespace>--<name>``)."""
        if not isinstance(sbx, Sandbox):
            hint = " (a sandbox id already?)" if isinstance(sbx, str) else ""
            raise InvalidError("sbx", f"must be a Sandbox, got {sbx!r}{hint}")
        return f"{sbx.metadata.namespace}--{sbx.metadata.name}"

    def describe(
        self, sandbox_id: str, *, namespace: str = "default", user: str = DEFAULT_USER
    ) -> Sandbox:
        """``GET /sandboxes/{id}``: a copy of the sandbox (edit it, then ``apply`` it)."""
        check_caller(sandbox_id, namespace, user)
        sbx: Sandbox = self.manager.describe(namespace, user, sandbox_id)
        return deep_copy(sbx)

    def kill(
        self, sandbox_id: str, *, namespace: str = "default", user: str = DEFAULT_USER
    ) -> None:
        """``DELETE /sandboxes/{id}``."""
        check_caller(sandbox_id, namespace, user)
        # Refused at once, it runs nothing of the model (no event due now).
        self.manager.check_kill(namespace, user, sandbox_id)
        self._run_op(
            self.manager.kill(namespace, user, sandbox_id), f"kill of {sandbox_id}", cancel=True
        )
        self.await_cached(sandbox_id)

    def set_timeout(
        self, sandbox_id: str, timeout: int, *, namespace: str = "default", user: str = DEFAULT_USER
    ) -> None:
        """``POST /sandboxes/{id}/timeout``: the sandbox now ends ``timeout`` s from now."""
        check_caller(sandbox_id, namespace, user)
        check_timeout_seconds(timeout)
        self.manager.check_set_timeout(namespace, user, sandbox_id, timeout)
        self._run_op(
            self.manager.set_timeout(namespace, user, sandbox_id, timeout),
            f"timeout change of {sandbox_id}",
            cancel=True,
        )
        self.await_cached(sandbox_id)

    def pause(
        self,
        sandbox_id: str,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
        retention: timedelta | None = None,
    ) -> None:
        """``POST /sandboxes/{id}/pause`` (waits until paused).

        ``retention`` is how long the paused sandbox is kept (the request's
        retention header): a :class:`~datetime.timedelta`, or ``None`` for the
        sandbox's own (default forever). The header's text (``"1h"``,
        ``"forever"``) reads as one with
        :func:`pytest_kruise_agents.claiming.timeouts.parse_retention`; a
        number is refused, having no unit. A duration <= 0 is the manager's 400.
        """
        check_caller(sandbox_id, namespace, user)
        check_retention(retention)
        self.manager.check_pause(namespace, user, sandbox_id, retention)
        self._run_op(
            self.manager.pause(namespace, user, sandbox_id, retention),
            f"pause of {sandbox_id}",
            cancel=True,
        )

    def connect(
        self,
        sandbox_id: str,
        timeout: int = 300,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
    ) -> tuple[Sandbox, bool]:
        """``POST /sandboxes/{id}/connect``: resume if paused; return (sandbox, resumed)."""
        check_caller(sandbox_id, namespace, user)
        check_timeout_seconds(timeout)
        self.manager.check_connect(namespace, user, sandbox_id, timeout)
        sbx, resumed = self._run_op(
            self.manager.connect(namespace, user, sandbox_id, timeout),
            f"connect to {sandbox_id}",
            cancel=True,
        )
        delivered = deep_copy(sbx)
        self.await_own_write(sbx)
        return delivered, resumed

    def list_sandboxes(
        self,
        *,
        namespace: str = "default",
        user: str = DEFAULT_USER,
        states: str | Sequence[str] = ("running", "paused"),
        metadata: Mapping[str, str] | None = None,
        limit: int = 100,
        next_token: str | None = None,
    ) -> tuple[builtins.list[Sandbox], str | None]:
        """``GET /v2/sandboxes``: one page and the next token.

        ``states`` is a list of states or one state (``"running"``); each must
        be ``running`` or ``paused``, and ``limit`` 1 to 100 (else the
        manager's 400). Arguments of another kind raise :class:`InvalidError`.
        """
        wanted = check_list_query(namespace, user, states, metadata, limit, next_token)
        # The manager sorts all of the caller's sandboxes to cut one page (as list does,
        # under the simulation's collector thresholds).
        with simulation_gc():
            page: tuple[builtins.list[Sandbox], str | None] = self.manager.list_sandboxes(
                namespace,
                user,
                states=wanted,
                metadata=dict(metadata) if metadata else None,
                limit=limit,
                next_token=next_token,
            )
            return [deep_copy(sbx) for sbx in page[0]], page[1]

    # -- the caller's own writes -----------------------------------------------------------

    def await_own_write(self, sbx: Sandbox) -> None:
        """Run on until the sandbox-manager's cache holds ``sbx`` as written (or, deleted, no longer holds it).

        Called right after a call delivered ``sbx`` (a create, a connect): see
        :meth:`await_cached` for why. Nothing runs if the cache holds it already.
        """
        meta = sbx.metadata
        self._await_cache(meta.namespace, meta.name, int(meta.resource_version or 0))

    def await_cached(self, sandbox_id: str) -> None:
        """Run on until the sandbox-manager's cache shows sandbox ``sandbox_id`` as now stored.

        Called right after a write to it (a kill, a timeout change); a sandbox
        deleted from the API server is waited for until the cache drops it.
        The manager's informer sees a write one watch lag after it is made,
        and the list reads that cache (skipping copies older than the
        manager's own writes). Virtual time stands still between calls, so
        without this wait a list right after a create or a kill still showed
        the old state (while ``describe``, which reads the manager's own
        writes, did not), and one right after a timeout change left the
        sandbox out, until some later call moved time. :meth:`create_sandbox`,
        :meth:`connect`, :meth:`kill` and :meth:`set_timeout` wait so, as
        :class:`~pytest_kruise_agents.backends.sim.SimBackend` (the E2B
        server's path) does on its virtual clock.
        """
        _check_sandbox_id(sandbox_id)
        api = self.world.api
        cache = self.world.manager_cache
        # Every reading of the id (a namespace may hold "--"), as the manager looks it up.
        for namespace, name in sandbox_id_keys(sandbox_id):
            stored = api.peek("Sandbox", namespace, name)
            if stored is None and cache.get("Sandbox", namespace, name) is None:
                continue
            written = int(stored.metadata.resource_version or 0) if stored is not None else None
            self._await_cache(namespace, name, written)

    def _await_cache(self, namespace: str, name: str, written: int | None) -> None:
        """Run on until the manager's cache has the sandbox's write ``written`` (``None``: its deletion).

        A sandbox the API server no longer holds is waited for until the cache
        drops it, whatever ``written`` was: deleted since, it must not stay
        in the cache (and in the manager's route table, which describe reads).

        For at most :data:`CACHE_WAIT_S` virtual seconds (or the profile's
        expectation timeout, if shorter): the wait hides the ordinary watch lag
        (5 to 50 ms), which virtual time would otherwise freeze between calls.
        A cache lagging longer (a ``watch_lag`` fault) is left lagging, as a
        real manager's list would show it: the call must not outlast what the
        caller asked for (a sandbox of 30 s would be dead when a 45 s lag ended).
        """
        cache = self.world.manager_cache
        api = self.world.api

        def seen() -> bool:
            cached = cache.get("Sandbox", namespace, name)
            if written is None or api.peek("Sandbox", namespace, name) is None:
                # Deleted, perhaps since the write (a connect at a sandbox's last instant
                # races the controller's delete): the cache must drop it too, or describe
                # (the manager's own write) showed it running while list left it out.
                return cached is None
            return cached is not None and int(cached.metadata.resource_version or 0) >= written

        self.run_until(seen, timeout=min(CACHE_WAIT_S, self.profile.expectation_timeout_s))

    # -- faults and latency ------------------------------------------------------------------

    def inject(self, kind: str | Fault, **fields: Any) -> Fault:
        """Inject a fault (see :data:`simulator.faults.FAULT_KINDS`); return it with its id.

        ``kind`` is a kind name with the fault's fields as keywords, or a
        :class:`Fault` (e.g. an edited ``model_copy()`` of one returned here),
        whose fields are checked as keywords would be (``fired`` starts at 0;
        keywords given with it override its fields). Its ``id`` and ``start``
        are kept: a copy of a fault in force needs another ``id`` (or ``""``
        for a new one), and ``start=None`` starts it now.

        The Fault returned is read-only and live: it reads what the fault has
        done so far (``fired``), and setting a field raises
        :class:`InvalidError` (the fault in force changes only through
        ``clear_faults`` and ``inject``, which check what they are given).
        ``model_copy()`` gives a detached, editable Fault.

        Bad fields raise :class:`InvalidError` naming the field (``probability``,
        ``selector``, ...) and add nothing. What is due now then runs (as
        ``advance(0)``): a ``pod_kill`` or ``node_loss`` starting now acts at
        once, as on a running cluster, not whenever the virtual clock next moves
        (cleared before that, it would never have acted). Called from inside the
        simulation (a SimPy process: a chaos schedule), it runs nothing itself:
        the fault acts once that process yields, at the same instant.
        """
        return _in_force(self._inject(kind, **fields))

    def _inject(self, kind: str | Fault, **fields: Any) -> Fault:
        """As :meth:`inject`, returning the fault in force itself (not its view)."""
        if isinstance(kind, Fault):
            # Checked as fields: a copy's edits never went through the model's checks.
            fault = self.ctx.faults.inject({**kind.model_dump(exclude={"fired"}), **fields})
        else:
            fault = self.ctx.faults.inject(kind=kind, **fields)
        if self.env.active_process is None:
            # Not from inside a step: stepping there would resume processes re-entrantly.
            self.advance(0)
        return fault

    def clear_faults(self, fault_id: str | None = None) -> None:
        """Remove one fault by id, or all; an id not in force raises :class:`NotFoundError`."""
        if fault_id is not None:
            if not isinstance(fault_id, str):
                raise InvalidError("fault_id", f"must be a fault id or None, got {fault_id!r}")
            if self.ctx.faults.get(fault_id) is None:
                raise _Missing("Fault", fault_id, f"no fault with id {fault_id!r}")
        self.ctx.faults.clear(fault_id)

    @contextmanager
    def fault(self, kind: str, **fields: Any) -> Iterator[Fault]:
        """A fault in force for the ``with`` block only.

        The end of the block clears this fault, if it is still in force: not a
        fault injected later under the same id (a clear frees its id).
        """
        fault = self._inject(kind, **fields)
        try:
            yield _in_force(fault)
        finally:
            self.clear_fault(fault)

    def clear_fault(self, fault: Fault) -> bool:
        """Clear ``fault`` (as :meth:`inject`, :meth:`fault` or :attr:`faults` gave it) if it is
        still in force; return whether it was.

        By identity, not by id: once a fault is cleared its id is free, and a
        fault injected later under it is another fault, left in force.
        """
        if not isinstance(fault, Fault):
            raise InvalidError("fault", f"must be a Fault, got {brief(fault)}")
        current = self.ctx.faults.get(fault.id or "")
        # A view handed out shares the fault's fields (its __dict__, see _in_force): the
        # same dict is the same fault; a later one under its id has its own.
        if current is None or current.__dict__ is not fault.__dict__:
            return False
        self.ctx.faults.clear(current.id or "")
        return True

    @property
    def faults(self) -> builtins.list[Fault]:
        """The faults in force, read-only (see :meth:`inject`)."""
        return [_in_force(f) for f in self.ctx.faults.faults]

    def set_latency(self, name: str, value: Any) -> None:
        """Replace one named latency distribution (e.g. ``"image.pull"``, ``"exp(3s)"``)."""
        if not isinstance(name, str):
            raise InvalidError("name", f"must be a latency name such as 'image.pull', got {name!r}")
        try:
            self.ctx.set_profile(self.ctx.profile.with_overrides(latencies={name: value}))
        except ValueError as exc:
            raise InvalidError(f"latencies.{name}", str(exc)) from exc

    @property
    def profile(self) -> Profile:
        """The profile in force."""
        return self.ctx.profile

    # -- records and log ---------------------------------------------------------------------------

    @property
    def records(self) -> ClaimRecords:
        """One :class:`ClaimRecord` per claim, in request order."""
        return self.world.records

    def last_record(self) -> ClaimRecord:
        """The most recent claim record; :class:`NotFoundError` before the first claim (since
        the cluster started, or since ``records.clear()``)."""
        records = self.world.records
        if not len(records):
            raise _Missing(
                "ClaimRecord",
                "last",
                "no claim record yet: no claim has been made since the cluster started or "
                "since records.clear()",
            )
        return records[len(records) - 1]

    @property
    def log(self) -> EventLog:
        """The event log."""
        return self.ctx.log

    def metrics_text(self) -> str:
        """The cluster's Prometheus metrics as ``GET /metrics`` serves them (text exposition format).

        Upstream's names (``sandbox_claim_duration_seconds``, ``sandbox_claim_total{lock_type}``,
        ``sandboxset_available_replicas``, ...; docs/server.md lists them), counted from the
        cluster's start in virtual seconds: neither ``records_limit`` nor ``records.clear()``
        resets them. Read with ``prometheus_client.parser.text_string_to_metric_families``.
        """
        # Imported here: prometheus_client adds a fifth to the cluster's import time.
        from simulator.exposition import cluster_registry, exposition_text

        return exposition_text(cluster_registry(self.metrics_snapshot()))

    def metrics_snapshot(self) -> ClusterCollector:
        """The metrics as of now, apart from the model: a ``prometheus_client`` collector that
        :meth:`metrics_text` formats. Taking it is a copy of the counts; the server takes it
        under the model's lock and formats it after letting the lock go."""
        from simulator.exposition import ClusterCollector, sandboxset_gauges

        gauges = sandboxset_gauges(self.world.api.peek_list("SandboxSet"))
        return ClusterCollector(self.world.metrics.snapshot(), lambda: gauges)


def _override_error(
    prof: Profile, latencies: Mapping[str, Any] | None, exc: ValueError
) -> InvalidError:
    """The error of bad overrides, named ``latencies.<name>`` (as set_latency names it) or ``knobs``."""
    for name, value in latencies.items() if isinstance(latencies, Mapping) else ():
        # Only on the error path: find the latency to blame, if one is.
        try:
            prof.with_overrides(latencies={name: value})
        except ValueError as bad:
            # A name that is no string names no latency: the table is at fault.
            field = f"latencies.{name}" if isinstance(name, str) else "latencies"
            return InvalidError(field, str(bad))
    return InvalidError("knobs", str(exc))


def _check_claim_writes(claim: SandboxClaim) -> None:
    """Refuse a SandboxClaim whose every claim write the API server would refuse.

    A deliberate difference: upstream accepts it, and each attempt's lock
    write is then refused (annotations over 256 KiB) until the claim times out.
    An in-place image that is no image reference is refused too, as the E2B
    path's image is (a 400 there; a scenario refuses it at load): taken, it
    went into each claimed sandbox's pod, which ran with it.
    """
    meta = claim.metadata
    name = meta.name or meta.generate_name or "?"
    inplace = claim.spec.inplace_update
    image = inplace.image if inplace is not None else None
    if image is not None and not is_image_reference(image):
        raise InvalidError(
            f"SandboxClaim/{name} spec.inplaceUpdate.image", f"invalid image reference {image!r}"
        )
    problem = sandboxclaim_annotations_problem(claim)
    if problem is not None:
        raise InvalidError(f"SandboxClaim/{name} {format_path(problem.loc)}", problem.reason)


class _FaultInForce(Fault):
    """A read-only view of a fault in force: it shares the fault's fields, so ``fired`` is live.

    A copy would show ``fired`` as it was at the inject; the fault itself, handed out,
    could be edited past its checks (``probability = 7``) while in force.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        raise InvalidError(name, _READ_ONLY)

    def __delattr__(self, name: str) -> None:
        raise InvalidError(name, _READ_ONLY)

    def __eq__(self, other: object) -> bool:
        # Equal to the fault it shows (pydantic's own __eq__ wants the same class).
        if isinstance(other, Fault):
            return self.__dict__ == other.__dict__
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # as any unfrozen model

    def __copy__(self) -> Fault:  # type: ignore[override]  # a copy is the caller's: a Fault
        return Fault.model_construct(**self._editable(self.__dict__))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Fault:  # type: ignore[override]
        return Fault.model_construct(**self._editable(copy.deepcopy(self.__dict__, memo)))

    @staticmethod
    def _editable(fields: dict[str, Any]) -> dict[str, Any]:
        # The fault in force's selector is read-only; a copy's is the caller's to edit.
        return {**fields, "selector": dict(fields["selector"])}

    def __repr_name__(self) -> str:
        return "Fault"


_UNDER_WAY = ("ContainerCreating", "PodInitializing")
"""Waiting reasons of containers being made: no reason a pool does not fill."""

_READ_ONLY = (
    "a fault in force is read-only: clear it (clear_faults) and inject another, "
    "or edit a copy (model_copy())"
)


def _in_force(fault: Fault) -> Fault:
    """The read-only view of ``fault`` (:class:`_FaultInForce`)."""
    view = _FaultInForce.__new__(_FaultInForce)
    for name in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    ):
        object.__setattr__(view, name, getattr(fault, name))
    return view


class _Missing(NotFoundError):
    """A :class:`NotFoundError` for what has no namespace (a fault, a claim record)."""

    def __init__(self, kind: str, name: str, message: str) -> None:
        super().__init__(kind, "", name)
        self.message = message
        # The arguments as given: ``type(e)(*e.args)`` (pickle, SimPy) builds it again.
        self.args = (kind, name, message)

    def __str__(self) -> str:
        # The kubectl-style "<plural> ... not found in namespace" would name no real resource.
        return self.message


def check_caller(sandbox_id: object, namespace: object, user: object) -> None:
    """Refuse a sandbox id, namespace or user that is not text (deep inside, an id failed with
    an AttributeError and a namespace or user answered a 404 for any sandbox).

    Every E2B call on one sandbox runs it, here and in the backends over this cluster.
    """
    _check_sandbox_id(sandbox_id)
    _check_scope(namespace, user)


def _check_sandbox_id(sandbox_id: object) -> None:
    """Refuse a sandbox id that is not text."""
    if not isinstance(sandbox_id, str):
        raise InvalidError(
            "sandbox_id", f"must be a sandbox id such as 'default--base-x2k9p', got {sandbox_id!r}"
        )


def _check_scope(namespace: object, user: object) -> None:
    """Refuse a caller's namespace (``""``: admin) or user (an API key id) that is not text."""
    if not isinstance(namespace, str):
        raise InvalidError(
            "namespace", f"must be a namespace name ('' for every one), got {namespace!r}"
        )
    if not isinstance(user, str) or not user:
        raise InvalidError("user", f"must be a non-empty string, got {user!r}")


def check_retention(retention: object) -> None:
    """Refuse a pause's ``retention`` unless it is a :class:`~datetime.timedelta` or ``None``."""
    if retention is not None and not isinstance(retention, timedelta):
        raise InvalidError(
            "retention",
            f"must be a datetime.timedelta or None, got {retention!r} (parse the header's "
            "text, such as '1h' or 'forever', with claiming.timeouts.parse_retention)",
        )


def check_list_query(
    namespace: object,
    user: object,
    states: object,
    metadata: object,
    limit: object,
    next_token: object,
) -> tuple[str, ...]:
    """The states a list asks for; refuse its arguments of the wrong kind (the manager checks values).

    The backends over this cluster run it too: without it, a ``limit`` of another
    kind was a bare TypeError deep inside (``2.5``: "slice indices must be
    integers"), and one state given as text was read letter by letter.
    """
    _check_scope(namespace, user)
    if isinstance(states, str):
        wanted: tuple[Any, ...] = (states,)  # one state, not its letters
    elif isinstance(states, Sequence):
        wanted = tuple(states)
    else:
        raise InvalidError("states", f"must be a state or a list of states, got {states!r}")
    for i, state in enumerate(wanted):
        if not isinstance(state, str):
            raise InvalidError(f"states[{i}]", f"must be 'running' or 'paused', got {state!r}")
    check_string_map("metadata", metadata, "annotation to value")
    if isinstance(limit, bool) or not isinstance(limit, int):
        # True is no page size of 1.
        raise InvalidError("limit", f"must be an integer, got {limit!r}")
    if next_token is not None and not isinstance(next_token, str):
        raise InvalidError("next_token", f"must be a page token or None, got {next_token!r}")
    return wanted


def _check_kind(kind: object) -> str:
    """The kind ``kind`` names; refuse a value that is not a resource name."""
    if not isinstance(kind, str):
        raise InvalidError("kind", f"must be a resource name such as 'sbx', got {kind!r}")
    return resolve_kind(kind)


def _check_name(field: str, value: object, alternative: str = "") -> str:
    """``value``, refused unless it is a non-empty string (a name or a namespace argument)."""
    if not isinstance(value, str) or not value:
        extra = f" {alternative}" if alternative else ""
        raise InvalidError(field, f"must be a non-empty string{extra}, got {value!r}")
    return value


def _or_empty(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    """``mapping``, or an empty one for ``None`` (a create's metadata and env vars not given)."""
    return {} if mapping is None else mapping


def _defuse(event: simpy.Event) -> None:
    if not event.ok:
        event.defused = True


def _check_labels(labels: object) -> None:
    """Refuse a label selector that is not a mapping of label keys to label values.

    As the API server and kubectl refuse ``-l 'bad key!=x'`` ("unable to parse
    requirement"): a key or value no label can have would match nothing, and a
    typo would read as "no objects".
    """
    check_string_map("labels", labels, "label to value")
    if isinstance(labels, Mapping):
        try:
            check_labels(labels)
        except FieldProblem as problem:
            raise InvalidError("labels", f"not a valid label selector: {problem.reason}") from None


def check_predicate(predicate: object) -> None:
    """Refuse a ``run_until`` predicate that is not a function, naming ``predicate``."""
    if not callable(predicate) or isinstance(predicate, bool):
        raise InvalidError(
            "predicate", f"must be a function returning true or false, got {predicate!r}"
        )


def check_seconds(field: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds >= 0, naming ``field``.

    An infinite wait would never end on a busy cluster (or end in SimPy's bare
    ``EmptySchedule`` on an idle one), and NaN compares false with everything.
    """
    # Any real number (numpy's, a Fraction) will do; a bool is no number of seconds.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidError(field, f"must be a number of seconds, got {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer past what a float holds
        finite = False
    if not finite:
        raise InvalidError(field, f"must be a finite number of seconds, got {brief(value)}")
    if value < 0:
        raise InvalidError(field, f"must be >= 0, got {value!r}")

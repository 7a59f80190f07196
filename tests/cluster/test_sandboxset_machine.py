"""The SandboxSet controller as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one :class:`~simulator.cluster.Cluster` (a
drawn seed, two small nodes) through its public API: two warm pools applied
and re-applied with drawn replicas (0 to 40, so that the creation waves 16,
32, ... matter), drawn templates (image, pod labels, CPU, inline or a
SandboxTemplate the set names, recycling on or off: each a revision), drawn
``scaleStrategy.maxUnavailable`` and ``updateStrategy.maxUnavailable``
(integers and percentages), and deleted; E2B creates and kills from the pools;
faults injected and cleared (the controllers' API calls answered 409 or 5xx,
containers that fail to start, image pulls that fail, pods killed, a lost
node, a stalled SandboxSet controller, a ``watch_lag`` of the controllers'
cache of 2 s to 130 s, left in force or for a window, and a pool scaled under
one); time advanced by drawn steps. The nodes hold 40 pods between them, so a
pool often has pods that stay ``Pending``.

Checked after every rule, against the reference (§3, §1.3, §4):

- a pool never has more sandboxes ``Pending`` (so ``creating``, made by its
  own scale-ups) than ``scaleStrategy.maxUnavailable`` allowed when the last
  of them was made;
- a pool never makes a sandbox while it owns ``spec.replicas`` already;
- under a ``watch_lag`` of latency ``L`` the spec of ``L`` earlier counts too
  (the cache shows it that late) and, when ``L`` is over a minute, the pool
  over-creates as upstream does (§3 step 7: a create's expectation lapses after
  a minute, before its watch event comes): by no more than what it made between
  ``L`` and a minute before the scale-up that goes beyond (those it may count
  nowhere), for both bounds above; with no lag they stay exact;
- each scale-up creates at most what its delta asks, in waves 16, 32, ...,
  no more at once than its wave (read from the event log);
- a sandbox the E2B API handed out is no pool's (claimed == no SandboxSet
  controller reference, §1.3) and no scale-down, rolling update or dead
  cleanup deletes it: it stays until it is killed;
- no pod outlives its sandbox, and a deleted pool leaves none of its own
  sandboxes behind.

When the rule ``settle`` runs (faults cleared, room added if the pools and
the handed-out sandboxes need it, the model run until quiet), each pool is
back at ``spec.replicas`` (one that over-created under a lag scaled down), all available, none dead, none beyond its spec,
and (unless its ``updateStrategy.maxUnavailable`` resolves to 0, when
upstream replaces none) every one of the current revision: the reference
has no in-place update of pool sandboxes, a template change rolls out by
delete and re-create. The status then counts exactly what the pool owns
(claimed sandboxes never). Every sandbox in the store is then a pool's, one
handed out and not killed, or being deleted: nothing leaks (but a killed
one whose pod failed as it was recycled: docs/models.md, Recycling).

The rule ``scale_down`` lowers a quiet pool (every sandbox available or
unschedulable, all of the current revision) and checks which sandboxes went:
Pending first, then recycled ones, then the fresh available ones, older
first (§3, the scale-down order), exactly as many as asked.

``derandomize=True`` keeps the suite deterministic (about 10 s of one core: 40 examples
of 30 steps; ``settle`` looks for the settled state every half virtual second, not after
each event).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random, skips shrinking and reports
each distinct failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxPhase, SandboxState
from pytest_kruise_agents.api.sandboxset import IntOrString, scaled_value
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.extensions import (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_NEVER_TIMEOUT,
    KEY_WAIT_READY_TIMEOUT_SECONDS,
)
from pytest_kruise_agents.claiming.modification import sandboxset_revision
from pytest_kruise_agents.claiming.recycle import COND_RECYCLING
from pytest_kruise_agents.claiming.sandboxset import creation_batches
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset, sandbox_state
from simulator.cluster import Cluster
from simulator.errors import NotFoundError
from tests.machines import machine_settings

POOLS = ("p", "q")
NODE_PODS = 20
"""Pod slots of each of the two nodes: the pools may ask for 80 together."""
NODES = [
    {"name": "n1", "cpu": "8", "memory": "16Gi", "max_pods": NODE_PODS},
    {"name": "n2", "cpu": "8", "memory": "16Gi", "max_pods": NODE_PODS},
]
IMAGES = ("registry.example.com/sandbox:v1", "registry.example.com/sandbox:v2")
SCALE_BUDGETS: list[IntOrString | None] = [None, None, 1, 3, 16, "10%", "50%", "100%"]
"""``scaleStrategy.maxUnavailable``: unset is unlimited. 0 (upstream then never creates)
is left out: a pool that may never grow cannot be checked to settle."""
UPDATE_BUDGETS: list[IntOrString | None] = [None, None, 0, 1, 5, "50%", "100%"]
"""``updateStrategy.maxUnavailable``: unset is the webhook's 20%; 0 replaces nothing."""
LAG_S = 1.0
"""How long the controller's cache may lag a change of the spec, with no ``watch_lag``."""
EXPECTATION_S = 60.0
"""How long a scale expectation holds an issued create counted (``expectation_timeout_s``)."""
WAVE_S = 5.0
"""How long one scale-up's creates may take after its decision (its waves' API calls)."""
CHECK_S = 0.5
"""How often (virtual seconds) ``settle`` looks whether the pools have settled."""
HORIZON_S = 300.0
"""How far back a ``watch_lag`` may still shape what a reconcile sees (beyond its latency)."""
LAGS = {
    "fixed(2s)": 2.0,
    "uniform(0s, 20s)": 20.0,
    "fixed(75s)": 75.0,
    "uniform(50s, 130s)": 130.0,
}
"""``watch_lag`` latencies of the controllers' cache -> the longest each may add."""


@dataclass(frozen=True)
class PoolSpec:
    replicas: int
    image: str
    label: str
    cpu: str
    scale_budget: IntOrString | None
    update_budget: IntOrString | None
    recycle: bool = False
    ref: bool = False
    """Whether the pod template is a SandboxTemplate the set names (``templateRef``)."""

    def manifest(self, name: str) -> str:
        strategy = ""
        if self.scale_budget is not None:
            strategy += f"  scaleStrategy: {{maxUnavailable: {_yaml(self.scale_budget)}}}\n"
        if self.update_budget is not None:
            strategy += f"  updateStrategy: {{maxUnavailable: {_yaml(self.update_budget)}}}\n"
        annotations = f'      annotations: {{{keys.ANN_CLEANUP_ENABLED}: "true"}}\n'
        pod_template = f"""\
    metadata:
      labels: {{flavour: {self.label}}}
{annotations if self.recycle else ""}    spec:
      containers:
        - name: sandbox
          image: {self.image}
          resources:
            requests: {{cpu: "{self.cpu}", memory: 64Mi}}
"""
        pool = f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {self.replicas}
{strategy}  runtimes:
    - name: agent-runtime
"""
        if not self.ref:
            return f"{pool}  template:\n{pod_template}"
        # The SandboxTemplate the set names, of the pool's name (its sandboxes are filed
        # under it: reference §5.2), applied with it.
        return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxTemplate
metadata: {{name: {name}, namespace: default}}
spec:
  template:
{pod_template}---
{pool}  templateRef: {{name: {name}}}
"""

    def scale_limit(self) -> int | None:
        return scaled_value(self.scale_budget, self.replicas, round_up=True)

    def rolls(self) -> bool:
        """Whether a template change replaces the old sandboxes (a budget above 0)."""
        budget = "20%" if self.update_budget is None else self.update_budget
        return bool(scaled_value(budget, self.replicas, round_up=True))


def _yaml(value: IntOrString) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


SPECS = st.builds(
    PoolSpec,
    replicas=st.integers(0, 40),
    image=st.sampled_from(IMAGES),
    label=st.sampled_from(["plain", "plain", "spicy"]),
    cpu=st.sampled_from(["100m", "100m", "150m"]),
    scale_budget=st.sampled_from(SCALE_BUDGETS),
    update_budget=st.sampled_from(UPDATE_BUDGETS),
    recycle=st.booleans(),
    ref=st.sampled_from([False, False, True]),
)


def _pending(sbx: Sandbox) -> bool:
    return sbx.status.phase in (None, SandboxPhase.PENDING)


class SandboxSetMachine(RuleBasedStateMachine):
    """Two pools on a small cluster; the reference's SandboxSet rules checked after each rule."""

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, PoolSpec | None] = dict.fromkeys(POOLS)
        # pool -> [(time applied, scale-up budget then: None for unlimited)]
        self.budgets: dict[str, list[tuple[float, int | None]]] = {p: [] for p in POOLS}
        self.replicas_history: dict[str, list[tuple[float, int]]] = {p: [] for p in POOLS}
        self.handed_out: dict[str, str] = {}  # sandbox name -> pool
        self.killed: set[str] = set()
        self.added_nodes = 0
        self.read_log = 0
        # pool -> (the waves of its scale-up under way, the current wave, creates in it)
        self.waves: dict[str, tuple[list[int], int, int]] = {}
        # Every watch_lag of the controllers' cache: (from, until (None: in force), latency).
        self.lags: list[tuple[float, float | None, float]] = []
        # sandbox name -> when the scale-up that made it was decided (from the log)
        self.decided: dict[str, float] = {}
        self.scale_ups: dict[str, float] = {}  # pool -> its last scale-up's decision
        self.read_decisions = 0

    # -- helpers ------------------------------------------------------------------------------

    def _owned(self, pool: str) -> list[Sandbox]:
        sbs_uid = self._uid(pool)
        return [
            s
            for s in self.cluster.list("sbx", "default", labels={keys.LABEL_SANDBOX_POOL: pool})
            if is_controlled_by_sandboxset(s)
            and s.metadata.deletion_timestamp is None
            and (sbs_uid is None or s.metadata.controller_ref().uid == sbs_uid)  # type: ignore[union-attr]
        ]

    def _created(self, sbx: Sandbox) -> float:
        """When ``sbx`` was made, in virtual seconds (whole seconds, as stored)."""
        created = sbx.metadata.creation_timestamp
        assert created is not None
        return self.cluster.ctx.to_seconds(created)

    def _uid(self, pool: str) -> str | None:
        try:
            return self.cluster.get("sbs", pool).metadata.uid
        except NotFoundError:
            return None

    def _lag(self, since: float, until: float) -> float:
        """The longest the ``watch_lag`` faults in force at some moment of ``[since -
        HORIZON_S, until]`` may hold a watch event back (0: none; a second more each for the
        ordinary lag and the order behind a held event). Their latencies add up (the fault
        kind is additive), so overlapping lags are summed: every lag of the window is."""
        return sum(
            latency + 1.0
            for start, end, latency in self.lags
            if start <= until and (end is None or end >= since - HORIZON_S)
        )

    def _end_lags(self) -> None:
        now = self.cluster.now
        self.lags = [(a, now if b is None or b > now else b, lat) for a, b, lat in self.lags]

    def _blind(self, sandboxes: list[Sandbox], at: float, lag: float) -> int:
        """How many of ``sandboxes`` a scale-up decided at ``at`` may not have counted.

        Under a ``watch_lag`` longer than :data:`EXPECTATION_S`, a create's expectation
        expires before its watch event arrives: for a while the controller counts that
        sandbox nowhere, as upstream's does (§3 step 7, expectations expire after a minute),
        and creates it again. Those are the sandboxes made at least a minute before the
        decision and at most the lag before it (made in whole seconds).
        """
        if lag <= EXPECTATION_S:
            return 0
        return sum(1 for s in sandboxes if at - lag - 1 < self._created(s) <= at - EXPECTATION_S)

    def _read_decisions(self) -> None:
        """Note, from the log, when the scale-up that made each sandbox was decided."""
        log = self.cluster.log
        if len(log) == self.read_decisions:
            return
        for ev in list(log)[self.read_decisions :]:
            if ev.kind == "sandboxset.scale_up":
                self.scale_ups[ev.detail.split()[0].split("/", 1)[1]] = ev.time
            elif ev.kind == "sandboxset.create":
                name, pool = ev.detail.split()
                self.decided[name.split("/", 1)[1]] = self.scale_ups[pool.split("=", 1)[1]]
        self.read_decisions = len(log)

    def _decision(self, sbx: Sandbox) -> float:
        """When the scale-up that made ``sbx`` was decided (:data:`WAVE_S` before its
        creation second if the log does not say)."""
        return self.decided.get(sbx.metadata.name, self._created(sbx) - WAVE_S)

    def _apply(self, pool: str, spec: PoolSpec) -> None:
        self.cluster.apply(spec.manifest(pool))
        self.specs[pool] = spec
        self.budgets[pool].append((self.cluster.now, spec.scale_limit()))
        self.replicas_history[pool].append((self.cluster.now, spec.replicas))

    # -- rules --------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1), first=SPECS)
    def start(self, seed: int, first: PoolSpec) -> None:
        self.cluster = Cluster(seed=seed, nodes=NODES)
        self._apply("p", first)

    @rule(pool=st.sampled_from(POOLS), spec=SPECS)
    def apply_pool(self, pool: str, spec: PoolSpec) -> None:
        """Apply (or re-apply) a pool: a changed template is a new revision."""
        self._apply(pool, spec)

    @rule(pool=st.sampled_from(POOLS), replicas=st.integers(0, 40))
    def scale(self, pool: str, replicas: int) -> None:
        """Change only ``spec.replicas`` of a pool that exists."""
        spec = self.specs[pool]
        if spec is None:
            return
        self._apply(pool, PoolSpec(replicas, *_rest(spec)))

    @rule(pool=st.sampled_from(POOLS))
    def delete_pool(self, pool: str) -> None:
        if self.specs[pool] is None:
            return
        self.cluster.delete("sbs", pool)
        self.specs[pool] = None

    @rule(pool=st.sampled_from(POOLS))
    def create(self, pool: str) -> None:
        """An E2B create from a pool (a no-stock create when it is empty), bounded in time."""
        try:
            sbx = self.cluster.create_sandbox(
                pool,
                metadata={
                    KEY_NEVER_TIMEOUT: "true",
                    KEY_CLAIM_TIMEOUT_SECONDS: "5",
                    KEY_WAIT_READY_TIMEOUT_SECONDS: "20",
                },
            )
        except ClaimError as err:
            event(f"create failed: {err.code}")
            return
        assert not is_controlled_by_sandboxset(sbx), sbx.metadata.name
        self.handed_out[sbx.metadata.name] = pool
        # One killed in a recycling pool came back to it, and may be handed out again.
        self.killed.discard(sbx.metadata.name)
        event("create answered")

    @precondition(lambda self: bool(set(self.handed_out) - self.killed))
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(set(self.handed_out) - self.killed)))
        self.killed.add(name)
        try:
            sbx = self.cluster.get("sbx", name)
        except NotFoundError:
            raise AssertionError(f"handed-out {name} vanished before its kill") from None
        try:
            self.cluster.kill(self.cluster.sandbox_id(sbx))
        except ClaimError as err:
            # A claimed sandbox whose pod failed (a lost node) is dead: E2B may not show it.
            event(f"kill failed: {err.code}")

    @rule(seconds=st.sampled_from([0.0, 0.005, 0.02, 0.05, 0.2, 1.0, 3.0, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds)

    @rule(
        kind=st.sampled_from(
            [
                "api_conflict",
                "api_error",
                "pod_start_failure",
                "image_pull_failure",
                "node_loss",
                "controller_stall",
                "pod_kill",
                "watch_lag",
            ]
        ),
        pool=st.sampled_from(POOLS),
        probability=st.sampled_from([0.3, 1.0]),
        data=st.data(),
    )
    def inject(self, kind: str, pool: str, probability: float, data: st.DataObject) -> None:
        fields: dict[str, Any] = {"probability": probability}
        if kind == "api_conflict":
            fields["selector"] = {
                "client": "agent-sandbox-controller",
                "kind": data.draw(st.sampled_from(["Sandbox", "SandboxSet"])),
            }
        elif kind == "api_error":
            fields["selector"] = {
                "client": "agent-sandbox-controller",
                "verb": data.draw(st.sampled_from(["create", "delete", "update", "update_status"])),
            }
            fields["code"] = data.draw(st.sampled_from([500, 503]))
        elif kind in ("pod_start_failure", "image_pull_failure"):
            fields["selector"] = {"template": pool}
        elif kind == "pod_kill":
            fields = {"selector": {"template": pool}, "count": data.draw(st.integers(1, 3))}
        elif kind == "node_loss":
            fields = {"selector": {"node": data.draw(st.sampled_from(["n1", "n2"]))}}
        elif kind == "watch_lag":
            latency = data.draw(st.sampled_from(sorted(LAGS)))
            duration = data.draw(st.sampled_from([None, 30, 120]))
            fields = {"selector": {"informer": "agent-sandbox-controller"}, "latency": latency}
            now = self.cluster.now
            end = None
            if duration is not None:
                fields["duration"] = duration
                end = now + duration
            self.lags.append((now, end, LAGS[latency]))
        else:
            fields = {"selector": {"controller": "sandboxset"}}
        self.cluster.inject(kind, **fields)

    @rule(
        pool=st.sampled_from(POOLS),
        replicas=st.integers(0, 12),
        latency=st.sampled_from(sorted(LAGS)),
        seconds=st.sampled_from([30, 90]),
    )
    def scale_under_lag(self, pool: str, replicas: int, latency: str, seconds: int) -> None:
        """The controllers' cache lags for ``seconds`` from just before a pool is scaled:
        past a minute of lag the pool over-creates (as upstream), within the bound the
        invariants allow, and settles back to its spec afterwards."""
        self.cluster.inject(
            "watch_lag",
            selector={"informer": "agent-sandbox-controller"},
            latency=latency,
            duration=seconds,
        )
        now = self.cluster.now
        self.lags.append((now, now + seconds, LAGS[latency]))
        self.scale(pool, replicas)
        self.cluster.advance(seconds)

    @rule()
    def clear_faults(self) -> None:
        self.cluster.clear_faults()
        self._end_lags()

    @precondition(lambda self: any(s is not None for s in self.specs.values()))
    @rule(data=st.data(), fewer=st.integers(1, 20))
    def scale_down(self, data: st.DataObject, fewer: int) -> None:
        """Lower a quiet pool and check which sandboxes went (§3, scale-down order)."""
        pool = data.draw(st.sampled_from([p for p, s in self.specs.items() if s is not None]))
        spec = self.specs[pool]
        assert spec is not None
        replicas = max(0, spec.replicas - fewer)
        if not self.cluster.faults:
            # What the last faults and writes set going (a failed pod's sandbox) settles.
            self.cluster.advance(3.0)
        owned = self._owned(pool)
        quiet = (
            not self.cluster.faults
            and len(owned) == spec.replicas
            and replicas < spec.replicas
            and all(self._quiet(s) for s in owned)
            and len({s.metadata.labels.get(keys.LABEL_TEMPLATE_HASH) for s in owned}) == 1
            and owned[0].metadata.labels.get(keys.LABEL_TEMPLATE_HASH)
            == sandboxset_revision(self.cluster.get("sbs", pool))
        )
        self._apply(pool, PoolSpec(replicas, *_rest(spec)))
        if not quiet:
            return
        event("scale-down of a quiet pool checked")
        self.cluster.advance(1.0)
        names = {s.metadata.name for s in self._owned(pool)}
        went = [s for s in owned if s.metadata.name not in names]
        kept = [s for s in owned if s.metadata.name in names]
        assert len(went) == spec.replicas - replicas, (
            [s.metadata.name for s in went],
            spec.replicas,
            replicas,
        )
        now = self.cluster.now_dt()

        def rank(s: Sandbox) -> tuple[int, int, datetime]:
            # Pending (0) < recycled (1, more recycles first) < Running not Ready (2) <
            # available (3), older first.
            recycled = s.status.recycled_count or 0
            tier = 0 if _pending(s) else 1 if recycled else 3
            created = s.metadata.creation_timestamp
            assert created is not None
            return tier, -recycled if tier == 1 else 0, created

        for gone in went:
            for stays in kept:
                assert rank(gone) <= rank(stays), (
                    f"scale-down of {pool} took {gone.metadata.name} {rank(gone)} "
                    f"before {stays.metadata.name} {rank(stays)}",
                    sandbox_state(gone, now),
                )

    def _quiet(self, sbx: Sandbox) -> bool:
        """Available, or Pending with a pod no node takes: nothing about to change."""
        state = sandbox_state(sbx, self.cluster.now_dt())[0]
        try:
            pod = self.cluster.get("pod", sbx.metadata.name)
        except NotFoundError:
            return False
        if pod.metadata.deletion_timestamp is not None:
            return False
        if state is SandboxState.AVAILABLE:
            return pod.status.phase == "Running" and not sbx.metadata.annotations.get(keys.ANN_LOCK)
        if not _pending(sbx):
            return False
        return any(
            c.type == "PodScheduled" and c.status == "False" for c in pod.status.conditions or []
        )

    @rule()
    def settle(self) -> None:
        """Faults cleared, room enough, load stopped: each pool converges (§3), a pool that
        over-created under a watch lag too (it scales down what it has beyond its spec)."""
        self.cluster.clear_faults()
        self._end_lags()
        live = {p: s for p, s in self.specs.items() if s is not None}
        claimed = len(set(self.handed_out) - self.killed)
        needed = sum(s.replicas for s in live.values()) + claimed
        room = 2 * NODE_PODS + sum(60 for _ in range(self.added_nodes))
        if needed > room:
            self.added_nodes += 1
            self.cluster.nodes.add(
                {"name": f"big{self.added_nodes}", "cpu": "16", "memory": "32Gi", "max_pods": 60}
            )
        checked = [-CHECK_S]

        def converged() -> bool:
            # A settled cluster stays settled: looking every CHECK_S virtual seconds, not
            # after each of its events, finds it as surely (and soon after).
            if self.cluster.now < checked[0] + CHECK_S:
                return False
            checked[0] = self.cluster.now
            return not self._why(live)

        quiet = self.cluster.run_until(converged, timeout=1800)
        assert quiet or not self._why(live), self._why(live)
        self._check_store(live)

    def _why(self, live: dict[str, PoolSpec]) -> list[str]:
        """What keeps the pools from their settled state (empty: settled)."""
        problems: list[str] = []
        now = self.cluster.now_dt()
        for name in sorted(self.killed):
            try:
                sbx = self.cluster.get("sbx", name)
            except NotFoundError:
                continue
            recycling = sbx.metadata.annotations.get(keys.ANN_CLEANUP) == "true"
            # A kill that recycles a sandbox whose pod fails at that moment leaves it
            # Failed with the trigger: Failed is terminal (§4 step 4), it stays (as
            # upstream; docs/models.md, Recycling).
            failed = sbx.status.phase is SandboxPhase.FAILED
            if recycling and not failed and not is_controlled_by_sandboxset(sbx):
                problems.append(f"{name} still recycling")
        for pool, spec in live.items():
            sbs = self.cluster.get("sbs", pool)
            revision = sandboxset_revision(sbs)
            owned = self._owned(pool)
            states = [sandbox_state(s, now)[0] for s in owned]
            available = sum(1 for st_ in states if st_ is SandboxState.AVAILABLE)
            updated = [
                s for s in owned if s.metadata.labels.get(keys.LABEL_TEMPLATE_HASH) == revision
            ]
            status = sbs.status
            if len(owned) != spec.replicas or available != spec.replicas:
                problems.append(f"{pool}: {len(owned)} owned, {available} available")
            if spec.rolls() and len(updated) != len(owned):
                problems.append(f"{pool}: {len(owned) - len(updated)} of an old revision")
            if status.observed_generation != sbs.metadata.generation:
                problems.append(f"{pool}: generation {sbs.metadata.generation} not observed")
            if (status.replicas, status.available_replicas) != (len(owned), available):
                problems.append(
                    f"{pool}: status {status.replicas}/{status.available_replicas}, "
                    f"owns {len(owned)}/{available}"
                )
            if status.update_revision != revision:
                problems.append(f"{pool}: updateRevision {status.update_revision} != {revision}")
            elif spec.rolls() and (
                status.updated_replicas,
                status.updated_available_replicas,
            ) != (len(updated), len(updated)):
                problems.append(
                    f"{pool}: updated {status.updated_replicas}/"
                    f"{status.updated_available_replicas}, {len(updated)} of the revision"
                )
        return problems

    def _check_store(self, live: dict[str, PoolSpec]) -> None:
        """Nothing leaks: each sandbox pooled, handed out (not killed), or being deleted."""
        uids = {self._uid(p): p for p in live}
        for sbx in self.cluster.list("sbx", "default"):
            name = sbx.metadata.name
            if sbx.metadata.deletion_timestamp is not None:
                continue
            if is_controlled_by_sandboxset(sbx):
                ref = sbx.metadata.controller_ref()
                assert ref is not None and ref.uid in uids, f"{name} of a deleted pool"
                continue
            assert name in self.handed_out, f"{name}: no pool's, never handed out (a leak)"
            if name in self.killed:
                # A kill of a dead claimed sandbox (its pod lost) may be refused.
                assert sbx.status.phase is SandboxPhase.FAILED, (
                    f"killed {name} stays: {sbx.status.phase}"
                )

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def pending_within_scale_budget(self) -> None:
        """A pool's Pending sandboxes all counted as creating when the last was made: no
        more than the scale-up budget of that moment (§3 step 3).

        Under a ``watch_lag`` the budget in force one lag earlier counts too (the cache
        shows a spec that late), and, past a minute of lag, the Pending sandboxes whose
        expectations had expired unseen when the last was made (:meth:`_blind`).
        """
        if not hasattr(self, "cluster"):
            return
        self._read_decisions()
        for pool in POOLS:
            pending = [s for s in self._owned(pool) if _pending(s)]
            if not pending:
                continue
            first = min(self._created(s) for s in pending)
            newest = max(pending, key=self._created)
            lag = self._lag(first, self._created(newest) + 1)
            blind = self._blind(pending, self._decision(newest), lag)
            since = first - LAG_S - lag
            history = self.budgets[pool]
            # The budget in force at `since` and every one applied after it.
            window = [b for t, b in history if t > since]
            window += [b for t, b in history if t <= since][-1:]
            if any(b is None for b in window):
                continue
            limit = max(b for b in window if b is not None)
            if blind:
                event("Pending sandboxes a watch lag hid from the pool")
            assert len(pending) <= limit + blind, (
                f"{pool}: {len(pending)} Pending, scale budget at most {limit}, {blind} unseen",
                sorted(s.metadata.name for s in pending),
            )

    @invariant()
    def never_created_beyond_spec(self) -> None:
        """A pool creates only while it has fewer than ``spec.replicas`` (§3 step 3).

        What a pool owns now and had made before second ``c`` it owned when the first
        sandbox made in second ``c`` was made (a dead one comes back from nothing); one
        that was ever recycled is left out, as it may have come back since.

        Under a ``watch_lag`` (its latency ``L``) the spec in force ``L`` earlier counts
        too, and past a minute of lag the pool over-creates as upstream does: the sandboxes
        made between ``L`` and a minute before ``c`` may have been counted nowhere (their
        expectations expired before their watch events came, :meth:`_blind`), and no more.
        """
        if not hasattr(self, "cluster"):
            return
        self._read_decisions()
        for pool in POOLS:
            live = [
                s
                for s in self._owned(pool)
                if find_condition(s.status.conditions, COND_RECYCLING) is None
                and sandbox_state(s, self.cluster.now_dt())[0] is not SandboxState.DEAD
            ]
            for c in sorted({self._created(s) for s in live}):
                made = [s for s in live if self._created(s) < c]
                # The decision that made the first sandbox of second c (with the cache's view).
                at = min(self._decision(s) for s in live if self._created(s) == c)
                lag = self._lag(at, c + 1)
                blind = self._blind(made, at, lag)
                history = self.budgets_replicas(pool, min(at, c) - LAG_S - lag, c + 1)
                if blind:
                    event("sandboxes a watch lag hid from the pool")
                if len(made) + 1 > max(history):
                    event("a pool over-created under a watch lag")
                assert len(made) + 1 <= max(history) + blind, (
                    f"{pool}: {len(made)} made before second {c} and one in it, "
                    f"spec.replicas at most {max(history)} then, {blind} unseen"
                )

    def budgets_replicas(self, pool: str, since: float, until: float) -> list[int]:
        """``spec.replicas`` of ``pool`` in force at some moment of ``[since, until]``."""
        history = self.replicas_history[pool]
        window = [r for t, r in history if since < t <= until]
        window += [r for t, r in history if t <= since][-1:]
        return window or [0]

    @invariant()
    def creates_come_in_waves(self) -> None:
        """A scale-up creates at most ``spec.replicas - replicas`` sandboxes, in waves
        16, 32, ...: no more at once than its wave (§3 step 4, ``DoItSlowly``)."""
        if not hasattr(self, "cluster"):
            return
        events = list(self.cluster.log)
        for ev in events[self.read_log :]:
            if ev.kind == "sandboxset.scale_up":
                key, replicas, delta = ev.detail.split()
                pool = key.split("/", 1)[1]
                r, d = int(replicas.split("=")[1]), int(delta.split("=")[1])
                lag = self._lag(ev.time, ev.time)
                spec = max(self.budgets_replicas(pool, ev.time - LAG_S - lag, ev.time))
                assert 0 < d <= spec - r, (str(ev), spec)
                self.waves[pool] = (creation_batches(d), -1, 0)
            elif ev.kind == "sandboxset.create_batch":
                key, size = ev.detail.split()
                pool = key.split("/", 1)[1]
                planned, wave, _ = self.waves[pool]
                n = int(size.split("=")[1])
                assert wave + 1 < len(planned) and planned[wave + 1] == n, (str(ev), planned)
                self.waves[pool] = (planned, wave + 1, 0)
            elif ev.kind in ("sandboxset.create", "sandboxset.create_failed"):
                if ev.kind == "sandboxset.create":
                    pool = ev.detail.split("set=")[1]
                else:
                    pool = ev.detail.split()[0].split("/", 1)[1]
                planned, wave, made = self.waves[pool]
                assert made + 1 <= planned[wave], (str(ev), planned, wave)
                self.waves[pool] = (planned, wave, made + 1)
        self.read_log = len(events)

    @invariant()
    def handed_out_sandboxes_stay(self) -> None:
        """No pool owns, nor deletes, a sandbox it handed out (§1.3: claimed == no owner)."""
        if not hasattr(self, "cluster"):
            return
        for name in sorted(set(self.handed_out) - self.killed):
            try:
                sbx = self.cluster.get("sbx", name)
            except NotFoundError:
                raise AssertionError(f"handed-out {name} was deleted") from None
            assert sbx.metadata.deletion_timestamp is None, f"handed-out {name} is being deleted"
            assert not is_controlled_by_sandboxset(sbx), f"handed-out {name} is a pool's again"
            assert sbx.metadata.annotations.get(keys.ANN_OWNER) != "__manager_scale_down", name

    @invariant()
    def no_orphans(self) -> None:
        """Each pod has its sandbox; a deleted pool leaves none of its sandboxes."""
        if not hasattr(self, "cluster"):
            return
        sandboxes = {s.metadata.name: s for s in self.cluster.list("sbx", "default")}
        for pod in self.cluster.list("pod", "default"):
            if pod.metadata.deletion_timestamp is not None:
                continue
            sbx = sandboxes.get(pod.metadata.name)
            assert sbx is not None, f"pod {pod.metadata.name} without its sandbox"
        uids = {self._uid(p) for p in POOLS}
        for sbx in sandboxes.values():
            ref = sbx.metadata.controller_ref()
            if ref is None or ref.kind != "SandboxSet":
                continue
            assert ref.uid in uids or sbx.metadata.deletion_timestamp is not None, (
                f"{sbx.metadata.name} outlives its pool"
            )


def _rest(
    spec: PoolSpec,
) -> tuple[str, str, str, IntOrString | None, IntOrString | None, bool, bool]:
    return (
        spec.image,
        spec.label,
        spec.cpu,
        spec.scale_budget,
        spec.update_budget,
        spec.recycle,
        spec.ref,
    )


TestSandboxSet = SandboxSetMachine.TestCase
TestSandboxSet.settings = machine_settings(40, 30)

"""The SandboxClaim controller of the fake cluster as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one :class:`~simulator.cluster.Cluster` (a
drawn seed) through its public API only: SandboxClaims applied with drawn
``replicas`` (1 to 60, so that the waves of 5, 10, 20, ... up to 50 a reconcile
matter), ``claimTimeout``, ``ttlAfterCompleted`` (positive, zero, negative),
``createOnNoStock``, ``shutdownTime``, labels and annotations, an in-place
image (``inplaceUpdate.image``) and dynamic CSI mounts (``dynamicVolumesMount``),
in two namespaces whose pools share a name (``p`` in both, ``q`` in one),
against pools scaled up and down meanwhile and a template that does not exist; claims
deleted mid-delivery and applied again with a changed spec (``replicas`` is
immutable, reference §1.5; the rest may change); E2B creates from the same
pools; faults injected and cleared (API conflicts and 5xx, pod start and
runtime init failures, image pulls of the new image and CSI mounts that fail,
a lost node, killed pods, a watch lag, a stalled controller); time advanced by
drawn steps. A model derived from the reference
(§1.5 and §5.4) is checked after every rule:

- a claim never holds more sandboxes than ``replicas`` over its whole life,
  counting every sandbox an attempt of it delivered (the claim records), and
  each sandbox it holds carries its ``claim-name`` label and its UID as owner;
- no sandbox is delivered twice: never to two claims, nor to a claim and an
  E2B caller;
- a claim's sandboxes come from the pool of its template in its own namespace
  (a same-name pool in another is not its: §1.5, #824), carry the image its
  ``inplaceUpdate`` asked for (its pod runs it) and its CSI mounts, made after
  the runtime init and before delivery; an attempt whose mount failed is a 500
  ``CSIMountFailed`` of a claim that asked for mounts and delivers nothing
  (§5.2 step 6), and a claim whose every mount fails since it was applied
  completes with nothing delivered;
- ``status.claimedReplicas`` never exceeds what the claim was delivered, never
  goes down, and once the claim is completed equals it;
- the phase moves only ``"" -> Claiming -> Completed`` (``"" -> Completed`` for a
  missing SandboxSet), and a completed status never changes again;
- ``Completed`` carries the reference's conditions and message:
  ``AllReplicasClaimed`` with ``Successfully claimed n/n sandboxes``;
  ``TimeoutReached`` with ``TimedOut/ClaimTimeoutReached`` and ``Timeout reached
  after <elapsed>, claimed n/m sandboxes`` no earlier than ``claimTimeout``
  after ``claimStartTime``, which is the claim's first reconcile;
  ``SandboxSetNotFound`` for a template that is not there;
- the TTL deletes a completed claim no earlier than ``ttlAfterCompleted`` after
  its ``completionTime`` (and soon after, when no fault is in force); a negative
  TTL never; the claim's sandboxes stay (they end only at their
  ``shutdownTime``);
- every reconcile's waves are 5, 10, 20, ... capped by what is left and by 50,
  and a wave with a failure is its last;
- once faults are cleared and load stops, each claim completes and each pool is
  back at ``spec.replicas``.

``derandomize=True`` keeps the suite deterministic (about 15 s of one core: 150 examples of 30 steps).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random, skips shrinking and reports
each distinct failure; ``KRUISE_MACHINE_PROFILE`` runs another profile
(``openkruise-v0.3.0``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import parse_duration
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset
from pytest_kruise_agents.claiming.timeouts import truncate
from simulator.cluster import DEFAULT_USER, Cluster
from simulator.errors import NotFoundError
from tests.machines import machine_settings

from .conftest import claim_yaml, pool_yaml

NS = "default"
NS_B = "team-b"
NAMESPACES = (NS, NS, NS_B)
"""Where claims are applied (drawn): two in three in the namespace with both pools."""
POOLS = {(NS, "p"): 3, (NS, "q"): 0, (NS_B, "p"): 2}
"""(namespace, pool) -> replicas at the start: ``p`` in both namespaces, ``q`` only in
``default`` (a claim for ``q`` in ``team-b`` completes ``SandboxSetNotFound``)."""
MISSING = "nope"
"""A template no SandboxSet has: its claims complete ``SandboxSetNotFound``."""
CLAIMS = ("c1", "c2", "c3")
POOL_IMAGE = "registry.example.com/sandbox:v1"
"""The image of every pool's template (``pool_yaml``)."""
NEW_IMAGE = "registry.example.com/sandbox:v2"
"""The image a claim's ``inplaceUpdate`` asks for."""

INITIAL_WAVE = 5
MAX_BATCH = 50

SLACK_S = 5.0
"""How long after a deadline the controller may still be acting on it, with no fault in force."""
CALM_S = 10.0
"""How long before a deadline every fault must have been cleared for :data:`SLACK_S` to hold."""

TIMEOUTS = st.sampled_from([None, "1s", "5s", "20s", "2m"])
TTLS = st.sampled_from([None, "0s", "10s", "90s", "-1s"])
NO_STOCK = st.sampled_from([None, True, False])
ENDS = st.sampled_from([None, None, -10, 30, 200])
METADATA = st.sampled_from([None, {"team": "a"}, {"team": "b"}])
EXTRA = st.sampled_from(
    [
        {},
        {},
        {},
        {"waitReadyTimeout": "1s"},
        {"waitReadyTimeout": "5s"},
        {"reserveFailedSandbox": True},
        {"reserveFailedSandbox": True, "waitReadyTimeout": "2s"},
        {"skipInitRuntime": True},
        {"inplaceUpdate": f"{{image: '{NEW_IMAGE}'}}"},
        {"inplaceUpdate": f"{{image: '{NEW_IMAGE}'}}", "waitReadyTimeout": "3s"},
        {"dynamicVolumesMount": "[{pvName: pv1, mountPath: /data}]"},
        {
            "dynamicVolumesMount": "[{pvName: pv1, mountPath: /data}, "
            "{pvName: pv2, mountPath: /logs, readOnly: true}, {pvName: pv3, mountPath: /x}, "
            "{pvName: pv4, mountPath: /y, subPath: a}]",
            "reserveFailedSandbox": True,
        },
        {
            "inplaceUpdate": f"{{image: '{NEW_IMAGE}'}}",
            "dynamicVolumesMount": "[{pvName: pv9, mountPath: /data}]",
        },
    ]
)
REPLICAS = st.one_of(st.integers(1, 6), st.integers(1, 60))

FAULTS: dict[str, dict[str, Any]] = {
    "conflict": {
        "kind": "api_conflict",
        "probability": 0.3,
        "selector": {"kind": "Sandbox", "verb": "update"},
    },
    "claim-5xx": {
        "kind": "api_error",
        "probability": 0.5,
        "selector": {"kind": "SandboxClaim", "client": "agent-sandbox-controller"},
    },
    "claim-429": {
        "kind": "api_error",
        "code": 429,
        "probability": 0.5,
        "selector": {"kind": "SandboxClaim", "client": "agent-sandbox-controller"},
    },
    "sandbox-5xx": {
        "kind": "api_error",
        "probability": 0.2,
        "selector": {"kind": "Sandbox", "client": "agent-sandbox-controller"},
    },
    "start": {"kind": "pod_start_failure", "probability": 0.5, "selector": {"template": "p"}},
    "init": {"kind": "runtime_init_failure", "probability": 0.5, "selector": {"template": "q"}},
    "node": {"kind": "node_loss", "count": 1, "duration": 40},
    "node-held": {"kind": "node_loss", "count": 1},
    "kill": {"kind": "pod_kill", "count": 2, "selector": {"namespace": NS}},
    "lag": {
        "kind": "watch_lag",
        "latency": "fixed(2s)",
        "selector": {"informer": "agent-sandbox-controller"},
    },
    "stall": {
        "kind": "controller_stall",
        "duration": 20,
        "selector": {"controller": "sandboxclaim"},
    },
    "stall-held": {"kind": "controller_stall", "selector": {"controller": "sandboxclaim"}},
    "stall-kubelet": {
        "kind": "controller_stall",
        "duration": 15,
        "selector": {"controller": "kubelet"},
    },
    "stall-sandbox": {
        "kind": "controller_stall",
        "duration": 15,
        "selector": {"controller": "sandbox"},
    },
    "stall-all": {"kind": "controller_stall", "duration": 10},
    "claim-slow": {
        "kind": "api_latency",
        "latency": "exp(1s)",
        "selector": {"kind": "SandboxClaim", "client": "agent-sandbox-controller"},
    },
    "sandbox-slow": {
        "kind": "api_latency",
        "latency": "exp(300ms)",
        "selector": {"kind": "Sandbox"},
    },
    "pull-fails": {"kind": "image_pull_failure", "probability": 0.5, "selector": {"template": "q"}},
    "pull-new-fails": {
        "kind": "image_pull_failure",
        "probability": 0.5,
        "selector": {"image": NEW_IMAGE},
    },
    "csi": {"kind": "csi_mount_failure", "probability": 0.3, "selector": {"namespace": NS_B}},
    "csi-all": {"kind": "csi_mount_failure"},
}

TRANSITIONS: dict[str | None, set[str | None]] = {
    None: {None, "Claiming", "Completed"},
    "Claiming": {"Claiming", "Completed"},
    "Completed": {"Completed"},
}
"""The phases a claim may show next (§1.5: no ``Pending``, no way back from ``Completed``).
``"" -> Completed`` is a missing SandboxSet, or a ``Claiming`` that fell between two rules."""

TIMEOUT_MESSAGE = re.compile(r"Timeout reached after (\S+), claimed (\d+)/(\d+) sandboxes")


@dataclass
class ClaimModel:
    """What the reference says of one SandboxClaim (one UID)."""

    name: str
    namespace: str
    uid: str
    template: str
    replicas: int
    templates: set[str]
    """Every templateName its spec has had."""
    images: set[str]
    """Every image its sandboxes may have: its ``inplaceUpdate.image`` (each it has had), or
    the pool's where a spec had none."""
    mounts: set[tuple[tuple[str, str], ...]]
    """Every ``dynamicVolumesMount`` its spec has had, as ``(pvName, mountPath)`` pairs."""
    applied: float
    timeouts: list[timedelta]
    """Every ``claimTimeout`` its spec has had while it was claiming."""
    ttls: list[tuple[float, timedelta]]
    """(since when, ``ttlAfterCompleted``) for every TTL its spec has had."""
    template_missing: bool
    ends: list[datetime] = field(default_factory=list)
    """Every ``shutdownTime`` its spec has had: copied to the sandboxes it claims (§1.5)."""
    behind: bool = False
    """Applied while a claim of its name deleted mid-delivery may still be in a reconcile:
    one work-queue key, its first reconcile waits for that one's waves to end."""
    leaked: set[str] = field(default_factory=set)
    """Sandboxes of its failed attempts that could not be deleted (upstream #410)."""
    mounts_fail: bool = False
    """Every spec it has had asked for CSI mounts, every one of them failing (``csi-all``)
    since before it was applied: none of its attempts can deliver."""
    deleted: bool = False
    gone: bool = False
    phase: str | None = None
    claimed: int = 0
    completed: Any = None  # the completed status, frozen
    history: list[str] = field(default_factory=list)

    @property
    def ttl(self) -> timedelta:
        return self.ttls[-1][1]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _duration(text: str | None, default: timedelta) -> timedelta:
    return default if text is None else parse_duration(text)


class SandboxClaimMachine(RuleBasedStateMachine):
    """One cluster, its SandboxClaims and pools driven by the public API; the model checked."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas = dict(POOLS)
        self.claims: dict[str, ClaimModel] = {}  # uid -> model
        self.current: dict[tuple[str, str], str] = {}  # (ns, name) -> uid of the one applied last
        self.e2b: set[str] = set()  # sandboxes ("ns/name") handed out to E2B callers
        self.faults_in_force = 0
        self.mounts_fail = False  # "csi-all" in force: every CSI mount fails
        self.calm_since: float | None = 0.0
        self.waves_seen = 0
        self.open_waves: dict[str, list[tuple[int, bool]]] = {}
        self.ends: dict[str, datetime] = {}  # sandbox "ns/name" -> its shutdownTime, last seen

    # -- helpers ------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.cluster.now

    def _calm_by(self, deadline: float) -> bool:
        """Whether no fault has been in force since well before ``deadline``."""
        return self.calm_since is not None and self.calm_since < deadline - CALM_S

    def _dt(self, seconds: float) -> datetime:
        """The wall time of virtual second ``seconds``."""
        return self.cluster.now_dt() - timedelta(seconds=self.now - seconds)

    def _secs(self, when: datetime) -> float:
        """The virtual second of wall time ``when``."""
        return self.now - (self.cluster.now_dt() - when).total_seconds()

    def _stored(self, m: ClaimModel) -> SandboxClaim | None:
        return self._stored_at(m.namespace, m.name)

    def _stored_at(self, namespace: str, name: str) -> SandboxClaim | None:
        try:
            return self.cluster.get("sbc", name, namespace)
        except NotFoundError:
            return None

    def _delivered(self) -> dict[str, list[str]]:
        """Claim UID (or E2B owner) -> the sandboxes ("ns/name") its attempts delivered, in
        order."""
        out: dict[str, list[str]] = {}
        for r in self.cluster.records:
            if r.delivered is not None and r.sandbox is not None:
                out.setdefault(r.owner, []).append(r.sandbox)
        return out

    def _leaked(self) -> set[str]:
        """The sandboxes ("ns/name") a failed attempt locked and could not delete (#410)."""
        return {e.detail.split(" ")[1] for e in self.cluster.log.of_kind("claim.cleanup_failed")}

    @property
    def scoped(self) -> bool:
        """Whether a claim's attempts search only its own namespace (v0.3.0: all, #824)."""
        return self.cluster.ctx.profile.claim_namespace_scoped

    # -- rules --------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        profile = os.environ.get("KRUISE_MACHINE_PROFILE", "openkruise-head")
        self.cluster = Cluster(seed=seed, nodes=2, profile=profile)
        for (ns, name), replicas in POOLS.items():
            self.cluster.apply(
                pool_yaml(name, replicas, namespace=ns, image=POOL_IMAGE, cpu="100m", memory="64Mi")
            )
        for ns, name in POOLS:
            self.cluster.wait_for_pool(name, ns)

    @rule(
        namespace=st.sampled_from(NAMESPACES),
        name=st.sampled_from(CLAIMS),
        template=st.sampled_from(["p", "p", "p", "q", "q", MISSING]),
        replicas=REPLICAS,
        timeout=TIMEOUTS,
        ttl=TTLS,
        no_stock=NO_STOCK,
        ends_in=ENDS,
        labels=METADATA,
        annotations=METADATA,
        extra=EXTRA,
    )
    def apply_claim(
        self,
        namespace: str,
        name: str,
        template: str,
        replicas: int,
        timeout: str | None,
        ttl: str | None,
        no_stock: bool | None,
        ends_in: int | None,
        labels: dict[str, str] | None,
        annotations: dict[str, str] | None,
        extra: dict[str, Any],
    ) -> None:
        spec: dict[str, Any] = {"replicas": replicas, **extra}
        if timeout is not None:
            spec["claimTimeout"] = timeout
        if ttl is not None:
            spec["ttlAfterCompleted"] = f'"{ttl}"'
        if no_stock is not None:
            spec["createOnNoStock"] = no_stock
        end = None
        if ends_in is not None:
            end = truncate(self.cluster.now_dt()) + timedelta(seconds=ends_in)
            spec["shutdownTime"] = f'"{end.strftime("%Y-%m-%dT%H:%M:%SZ")}"'
        if labels is not None:
            spec["labels"] = "{" + ", ".join(f"{k}: {v}" for k, v in labels.items()) + "}"
        if annotations is not None:
            spec["annotations"] = "{" + ", ".join(f"{k}: {v}" for k, v in annotations.items()) + "}"
        before = self._stored_at(namespace, name)
        try:
            self.cluster.apply(claim_yaml(name, template, namespace=namespace, **spec))
        except InvalidError as err:
            # replicas is immutable (CEL self == oldSelf): the only refusal of a re-apply.
            assert before is not None and before.spec.replicas != replicas, err
            assert "spec.replicas" in err.field and "immutable" in err.reason, err
            event("a re-apply changing replicas was refused")
            return
        stored = self._stored_at(namespace, name)
        assert stored is not None and stored.metadata.uid is not None
        uid = stored.metadata.uid
        ttl_value = _duration(ttl, timedelta(minutes=60))
        timeout_value = _duration(timeout, timedelta(minutes=1))
        inplace = stored.spec.inplace_update
        image = inplace.image if inplace is not None and inplace.image else POOL_IMAGE
        mounts = tuple((v.pv_name, v.mount_path) for v in stored.spec.dynamic_volumes_mount or [])
        if before is not None and before.metadata.uid == uid:
            m = self.claims[uid]
            assert m.replicas == replicas
            m.template = template  # templateName may change (the reference makes it mutable)
            m.templates.add(template)
            m.images.add(image)
            m.mounts.add(mounts)
            m.mounts_fail = m.mounts_fail and bool(mounts)
            m.template_missing = m.template_missing or (namespace, template) not in self.replicas
            m.ttls.append((self.now, ttl_value))
            m.ends.extend([end] if end is not None else [])
            if m.phase != "Completed":
                m.timeouts.append(timeout_value)
            m.history.append(f"{self.now:.3f} re-applied {spec} {template}")
            event("a claim re-applied with its spec changed")
            return
        if before is not None:
            # Made anew, right after the old one's TTL: the cluster must say so in the model.
            self._check_gone(self.claims[before.metadata.uid or ""])
        self.current[namespace, name] = uid
        self.claims[uid] = ClaimModel(
            name=name,
            namespace=namespace,
            uid=uid,
            template=template,
            templates={template},
            images={image},
            mounts={mounts},
            mounts_fail=self.mounts_fail and bool(mounts),
            replicas=replicas,
            applied=self.now,
            timeouts=[timeout_value],
            ttls=[(self.now, ttl_value)],
            template_missing=(namespace, template) not in self.replicas,
            ends=[end] if end is not None else [],
            behind=any(
                o.key == f"{namespace}/{name}" and o.deleted and o.completed is None
                for o in self.claims.values()
            ),
            history=[f"{self.now:.3f} applied {spec} {template}"],
        )
        if replicas > INITIAL_WAVE:
            event("a claim of more than one wave")

    @precondition(lambda self: bool(self.current))
    @rule(
        data=st.data(),
        template=st.sampled_from(["p", "p", "q", "q", MISSING]),
        timeout=TIMEOUTS,
        ttl=TTLS,
        no_stock=NO_STOCK,
        ends_in=ENDS,
        labels=METADATA,
        extra=EXTRA,
    )
    def reapply_claim(
        self,
        data: st.DataObject,
        template: str,
        timeout: str | None,
        ttl: str | None,
        no_stock: bool | None,
        ends_in: int | None,
        labels: dict[str, str] | None,
        extra: dict[str, Any],
    ) -> None:
        """The claim applied last under a name, applied again with the same replicas and
        another spec: every field but replicas may change (§1.5)."""
        namespace, name = data.draw(st.sampled_from(sorted(self.current)))
        m = self.claims[self.current[namespace, name]]
        self.apply_claim(
            namespace,
            name,
            template,
            m.replicas,
            timeout,
            ttl,
            no_stock,
            ends_in,
            labels,
            None,
            extra,
        )

    @rule(namespace=st.sampled_from(NAMESPACES), name=st.sampled_from(CLAIMS))
    def delete_claim(self, namespace: str, name: str) -> None:
        uid = self.current.get((namespace, name))
        try:
            self.cluster.delete("sbc", name, namespace)
        except NotFoundError:
            # Never applied, deleted already, or deleted by its TTL (perhaps since the last rule).
            if uid is not None:
                self._check_gone(self.claims[uid])
            return
        assert uid is not None
        m = self.claims[uid]
        m.deleted = True
        m.history.append(f"{self.now:.3f} deleted by hand in phase {m.phase}")
        if m.phase != "Completed":
            event("a claim deleted while claiming")

    @rule(pool=st.sampled_from(sorted(POOLS)), replicas=st.sampled_from([0, 1, 2, 4, 8]))
    def scale(self, pool: tuple[str, str], replicas: int) -> None:
        ns, name = pool
        self.cluster.apply(
            pool_yaml(name, replicas, namespace=ns, image=POOL_IMAGE, cpu="100m", memory="64Mi")
        )
        self.replicas[pool] = replicas

    @rule(pool=st.sampled_from(sorted(POOLS)))
    def delete_pool(self, pool: tuple[str, str]) -> None:
        """A pool deleted (its unclaimed sandboxes with it): its claims still claiming complete
        ``SandboxSetNotFound``, what they hold stays (it has no owner reference). A pool of the
        same name in another namespace is another pool: its claims go on."""
        ns, name = pool
        try:
            self.cluster.delete("sbs", name, ns)
        except NotFoundError:
            assert pool not in self.replicas
            return
        del self.replicas[pool]
        for m in self.claims.values():
            if (m.namespace, m.template) == pool:
                m.template_missing = True

    @rule(namespace=st.sampled_from(NAMESPACES), template=st.sampled_from(["p", "q"]))
    def e2b_create(self, namespace: str, template: str) -> None:
        try:
            sbx = self.cluster.create_sandbox(template, namespace=namespace, timeout=600)
        except ClaimError as err:
            assert err.code in (400, 404, 409, 429, 500, 502, 503), err
            return
        key = f"{sbx.metadata.namespace}/{sbx.metadata.name}"
        assert key not in self.e2b
        self.e2b.add(key)

    @rule(
        namespace=st.sampled_from(NAMESPACES),
        template=st.sampled_from(["p", "q"]),
        count=st.integers(1, 8),
    )
    def e2b_burst(self, namespace: str, template: str, count: int) -> None:
        """E2B creates started and left running: they race the claims' waves for the pool."""
        for _ in range(count):
            self.cluster.submit_create(template, namespace=namespace, timeout=600)

    @rule(which=st.sampled_from(sorted(FAULTS)))
    def inject(self, which: str) -> None:
        self.cluster.inject(**FAULTS[which])
        self.faults_in_force += 1
        self.calm_since = None
        self.mounts_fail = self.mounts_fail or which == "csi-all"

    @precondition(lambda self: self.faults_in_force > 0)
    @rule()
    def clear_faults(self) -> None:
        self.cluster.clear_faults()
        self.faults_in_force = 0
        self.calm_since = self.now
        self.mounts_fail = False
        for m in self.claims.values():
            m.mounts_fail = False

    @rule(seconds=st.sampled_from([0, 0.01, 0.3, 1, 2.5, 7, 30, 61, 90]))
    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds)

    @precondition(lambda self: bool(self.claims))
    @rule(seconds=st.sampled_from([2, 5, 10, 20, 45]))
    def let_claims_run(self, seconds: float) -> None:
        """Time for the claims: their waves, timeouts and TTLs."""
        self.cluster.advance(seconds)

    @precondition(lambda self: bool(self.claims))
    @rule()
    def load_stops(self) -> None:
        """Faults cleared, time passes with no load: claims complete, pools are back at spec."""
        if self.faults_in_force:
            self.clear_faults()
        # The longest claimTimeout drawn is 2m; a reconcile past it may still run its waves.
        self.cluster.advance(300)
        self._observe()
        for m in self.claims.values():
            if m.gone:
                continue
            stored = self._stored(m)
            assert stored is not None and stored.metadata.uid == m.uid, m
            assert stored.status.phase == "Completed", (m, stored.status)
            # CalculateClaimStatus sets observedGeneration at each reconcile, completed too.
            assert stored.status.observed_generation == stored.metadata.generation, (
                m,
                stored.metadata.generation,
                stored.status,
            )
        for (ns, pool), replicas in self.replicas.items():
            sbs = self.cluster.get("sbs", pool, ns)
            assert (sbs.status.replicas, sbs.status.available_replicas) == (replicas, replicas), (
                ns,
                pool,
                sbs.status,
            )
            pooled = [
                s
                for s in self.cluster.list("sbx", ns, labels={keys.LABEL_SANDBOX_POOL: pool})
                if is_controlled_by_sandboxset(s) and s.metadata.deletion_timestamp is None
            ]
            assert len(pooled) == replicas, (pool, [s.metadata.name for s in pooled])
        # Nothing is in flight: every sandbox a claim owns is one it was delivered, or one
        # whose attempt failed and whose delete failed too (upstream #410: it leaks).
        delivered = self._delivered()
        leaked = self._leaked()
        for sbx in self.cluster.list("sbx", None):
            owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
            if owner in self.claims:
                name = f"{sbx.metadata.namespace}/{sbx.metadata.name}"
                reserved = keys.LABEL_RESERVED_FAILED in sbx.metadata.labels
                assert name in delivered.get(owner, []) or name in leaked or reserved, (
                    name,
                    self.claims[owner],
                )

    # -- the model ----------------------------------------------------------------------------

    def _check_gone(self, m: ClaimModel) -> None:
        """``m`` is no longer stored: deleted by hand, or by its TTL once it was due."""
        if m.gone:
            return
        if not m.deleted:
            # Completed and deleted by its TTL, perhaps both since the last rule: the log says
            # when (one reconcile at a time for a name, so its lines after the apply are its).
            key = m.key
            lines = [
                e
                for e in self.cluster.log.of_kind("sandboxclaim.")
                if e.time >= m.applied and e.detail.split(" ", 1)[0] == key
            ]
            completed = [e for e in lines if e.kind == "sandboxclaim.completed"]
            deleted = [e for e in lines if e.kind == "sandboxclaim.ttl_deleted"]
            assert completed and deleted, f"claim {m.name} vanished while {m.phase}: {m}"
            if m.completed is None:
                m.history.append(f"{completed[0].time:.3f} completed: {completed[0].detail}")
                self._check_completed_line(m, completed[0].detail)
            # completionTime is the reconcile's start in whole seconds, and the line is
            # logged once the write is done: the TTL may run out up to 2 s before the line's
            # time plus the TTL (more under a fault that held the write).
            waited = deleted[0].time - completed[0].time
            # The TTLs the controller may have read when it deleted: the one in force then,
            # and one replaced just before (its cache may lag the re-apply a little).
            at = deleted[0].time
            ttls = [
                ttl
                for i, (since, ttl) in enumerate(m.ttls)
                if since <= at and (i + 1 == len(m.ttls) or m.ttls[i + 1][0] >= at - SLACK_S)
            ]
            assert any(ttl >= timedelta(0) for ttl in ttls), (
                f"claim {m.name} deleted at {at} with ttlAfterCompleted {ttls}: {m}"
            )
            if self._calm_by(completed[0].time):
                assert any(
                    waited >= ttl.total_seconds() - 2 for ttl in ttls if ttl >= timedelta(0)
                ), f"claim {m.name} deleted {waited} s after it completed: {m}"
            event("a claim deleted by its TTL")
        m.gone = True
        m.history.append(f"{self.now:.3f} gone")

    def _observe(self) -> None:
        """Read every claim the model knows and check its status against the reference."""
        for m in self.claims.values():
            if m.gone:
                continue
            stored = self._stored(m)
            if stored is None or stored.metadata.uid != m.uid:
                self._check_gone(m)
                continue
            if stored.metadata.deletion_timestamp is not None:
                continue
            status = stored.status
            phase = None if status.phase is None else str(status.phase)
            assert phase in TRANSITIONS[m.phase], f"{m.name}: {m.phase} -> {phase}: {m}"
            if phase != m.phase:
                m.history.append(f"{self.now:.3f} {m.phase} -> {phase}")
            if phase is None:
                continue
            assert status.claimed_replicas >= m.claimed, (m, status)
            # Past replicas only by what its attempts leaked: the count is
            # max(status, active sandboxes it owns) (§5.4 step 4), and a sandbox an
            # attempt locked and could not delete (#410) stays owned and active.
            assert status.claimed_replicas <= m.replicas + self._leaked_of(m), (m, status)
            m.claimed = status.claimed_replicas
            assert status.claim_start_time is not None or phase == "Completed", (m, status)
            if phase == "Claiming":
                m.phase = phase
                assert status.message is None or status.message == (
                    f"Claiming sandboxes: {status.claimed_replicas}/{m.replicas} claimed"
                ), (m, status)
                continue
            if m.completed is not None:
                frozen = m.completed.model_copy(update={"observed_generation": None})
                again = status.model_copy(update={"observed_generation": None})
                assert again == frozen, f"{m.name} changed after completion: {frozen} -> {again}"
                continue
            m.phase = phase
            m.completed = status.model_copy(deep=True)
            m.history.append(f"{self.now:.3f} completed: {status.message}")
            self._check_completion(m, stored)

    def _check_completed_line(self, m: ClaimModel, detail: str) -> None:
        """A completion the model saw only in the log (the TTL deleted the claim since)."""
        match = re.fullmatch(r"\S+ reason=(\w+) claimed=(\d+)/(\d+)", detail)
        assert match is not None, detail
        reason, n, r = match.group(1), int(match.group(2)), int(match.group(3))
        event(f"a claim completed {reason}")
        assert r == m.replicas and n >= m.claimed, (m, detail)
        if reason == "AllReplicasClaimed":
            assert r <= n <= r + self._leaked_of(m), (m, detail)
        elif reason == "TimeoutReached":
            assert n < r, (m, detail)
        else:
            assert reason == "SandboxSetNotFound" and m.template_missing, (m, detail)
        if m.mounts_fail:
            assert not self._delivered().get(m.uid) and n <= self._leaked_of(m), (m, detail)
        m.claimed = n

    def _check_completion(self, m: ClaimModel, claim: SandboxClaim) -> None:
        status = claim.status
        conds = {c.type: c for c in status.conditions}
        done = conds.get("Completed")
        assert done is not None and done.status == "True", (m, status)
        assert status.completion_time is not None, (m, status)
        n, r = status.claimed_replicas, m.replicas
        event(f"a claim completed {done.reason}")
        if m.mounts_fail:
            # Every attempt failed its mounts: nothing delivered, all it may count is what
            # leaked (an attempt whose sandbox could not be deleted, #410).
            assert not self._delivered().get(m.uid), m
            assert n <= self._leaked_of(m), (m, status)
            event("a claim whose every CSI mount failed completed")
        if done.reason == "SandboxSetNotFound":
            assert m.template_missing, (m, status)
            # The template it had then (a re-apply after the completion may name another).
            named = re.fullmatch(
                rf"SandboxSet {re.escape(m.namespace)}/(\S+) not found", status.message or ""
            )
            assert named is not None and named.group(1) in m.templates, (m, status)
            assert "TimedOut" not in conds
            return
        assert status.claim_start_time is not None, (m, status)
        start = status.claim_start_time
        # The first reconcile sets claimStartTime (whole seconds), a moment after the apply.
        assert start >= truncate(self._dt(m.applied)), (m, status)
        if self._calm_by(m.applied + CALM_S) and not m.behind:
            # Its first reconcile follows the apply at once (a watch event).
            assert start <= self._dt(m.applied + 1), (m, status)
        if done.reason == "AllReplicasClaimed":
            # n > r when its count took in sandboxes its attempts leaked (#410), as upstream's.
            assert r <= n <= r + self._leaked_of(m), (m, status)
            assert status.message == f"Successfully claimed {n}/{r} sandboxes", status
            assert done.message == status.message
            assert "TimedOut" not in conds, (m, status)
            return
        assert done.reason == "TimeoutReached", (m, status)
        assert n < r, (m, status)
        match = TIMEOUT_MESSAGE.fullmatch(status.message or "")
        assert match is not None, status.message
        elapsed = parse_duration(match.group(1))
        assert (int(match.group(2)), int(match.group(3))) == (n, r), status.message
        assert elapsed >= min(m.timeouts), (m, status)
        assert status.completion_time - start <= elapsed + timedelta(seconds=1), (m, status)
        assert status.completion_time - start >= elapsed - timedelta(seconds=1), (m, status)
        timed_out = conds.get("TimedOut")
        assert timed_out is not None and timed_out.reason == "ClaimTimeoutReached", status
        assert timed_out.status == "True" and timed_out.message == status.message, status
        assert done.message == status.message

    @invariant()
    def claims_follow_the_reference(self) -> None:
        if not hasattr(self, "cluster"):
            return
        self._observe()
        for m in self.claims.values():
            if m.gone or m.completed is None:
                continue
            ttl = m.ttl
            done = m.completed.completion_time
            if ttl < timedelta(0) or done is None:
                continue
            due = self._secs(done + ttl)
            since = max(due, max(t for t, _ in m.ttls))
            if self.now > since + SLACK_S and self._calm_by(since):
                raise AssertionError(
                    f"claim {m.name} not deleted {ttl} after it completed at {done}: {m}"
                )

    @invariant()
    def sandboxes_have_one_owner(self) -> None:
        if not hasattr(self, "cluster"):
            return
        delivered = self._delivered()
        seen: dict[str, str] = {}
        for holder, names in delivered.items():
            for name in names:
                assert name not in seen, f"{name} delivered to {seen[name]} and {holder}"
                seen[name] = holder
            m = self.claims.get(holder)
            if m is None:
                assert holder == DEFAULT_USER, holder
                continue
            assert len(names) <= m.replicas, f"claim {m.name} held {len(names)}: {m}"
            if not m.gone:
                stored = self._stored(m)
                if stored is not None and stored.metadata.uid == m.uid:
                    # Its count is what it was delivered, and the leaked sandboxes that
                    # carry its name (CountActiveSandboxes counts what is alive of them):
                    # every one its attempts leaked, for one may be gone by now (its
                    # shutdownTime) though it counted when the claim completed.
                    held = len(names) + self._leaked_of(m)
                    assert stored.status.claimed_replicas <= held, (m, stored.status)
                    if str(stored.status.phase) == "Completed":
                        assert stored.status.claimed_replicas >= len(names), (
                            m,
                            stored.status,
                            names,
                        )
        live = {
            f"{s.metadata.namespace}/{s.metadata.name}": s for s in self.cluster.list("sbx", None)
        }
        leaked = self._leaked()
        alive: dict[str, int] = {}
        for key, sbx in live.items():
            ann, labels = sbx.metadata.annotations, sbx.metadata.labels
            owner = ann.get(keys.ANN_OWNER)
            if is_controlled_by_sandboxset(sbx):
                assert owner in (None, "__manager_scale_down"), (sbx.metadata.name, owner)
                assert keys.LABEL_CLAIM_NAME not in labels
                continue
            if owner in self.claims:
                m = self.claims[owner]
                assert labels.get(keys.LABEL_CLAIM_NAME) == m.name, (sbx.metadata.name, m)
                if key in leaked:
                    m.leaked.add(key)
                if (
                    sbx.metadata.deletion_timestamp is None
                    and keys.LABEL_RESERVED_FAILED not in labels
                    and str(sbx.status.phase) not in ("Failed", "Succeeded")
                ):
                    alive[owner] = alive.get(owner, 0) + 1
            elif owner == DEFAULT_USER:
                assert keys.LABEL_CLAIM_NAME not in labels, sbx.metadata.name
            else:
                raise AssertionError(f"{sbx.metadata.name} has owner {owner}")
        for owner, n in alive.items():
            m = self.claims[owner]
            # Besides what it was delivered, a claim holds what its attempts leaked (#410).
            held = m.replicas + self._leaked_of(m)
            assert n <= held, f"claim {m.name} holds {n} alive sandboxes: {m}"
        # A delivered sandbox goes only at its shutdownTime: neither a claim's deletion
        # (by hand or by its TTL) nor its completion takes it.
        now_dt = self.cluster.now_dt()
        for holder, names in delivered.items():
            if holder not in self.claims:
                continue
            for name in names:
                if name in live:
                    continue
                ends = [self.ends[name]] if name in self.ends else self.claims[holder].ends
                assert any(now_dt > end for end in ends), f"{name} of {holder} was deleted"
        for name, sbx in live.items():
            if sbx.spec.shutdown_time is not None:
                self.ends[name] = sbx.spec.shutdown_time

    def _leaked_of(self, m: ClaimModel) -> int:
        """How many sandboxes the attempts of ``m`` locked and could not delete (#410), alive
        or not by now (one may have gone at its ``shutdownTime`` since)."""
        leaked = self._leaked()
        return len(
            {
                r.sandbox
                for r in self.cluster.records
                if r.owner == m.uid and r.failed is not None and r.sandbox in leaked
            }
        )

    @invariant()
    def claims_get_what_they_asked_for(self) -> None:
        """Each claim's sandboxes come from the pool of its template in its own namespace
        (§1.5, a same-name pool elsewhere is not its), carry the ``inplaceUpdate`` image (the
        pod runs it) and the ``dynamicVolumesMount`` its spec had, mounted before delivery;
        an attempt failed on a mount is a 500 ``CSIMountFailed`` of a claim that asked for
        mounts (§5.2 step 6), and delivered nothing."""
        if not hasattr(self, "cluster"):
            return
        for r in self.cluster.records:
            m = self.claims.get(r.owner)
            if m is None or r.path != "sandboxclaim":
                continue
            if r.error_reason == "CSIMountFailed":
                assert any(m.mounts), (m, r)
                assert r.delivered is None and r.error_code == 500, r
                assert (r.error or "").startswith("failed to mount csi volume"), r
                event("a claim's attempt failed its CSI mounts")
            if r.delivered is None or r.sandbox is None:
                continue
            ns, _, name = r.sandbox.partition("/")
            if self.scoped:
                assert ns == m.namespace, f"{r.sandbox} delivered to claim {m.key}: {m}"
            try:
                sbx = self.cluster.get("sbx", name, ns)
            except NotFoundError:
                continue
            assert sbx.metadata.labels.get(keys.LABEL_SANDBOX_POOL) in m.templates, (m, r)
            if self.scoped and m.namespace == NS_B:
                event("a claim delivered in the second namespace")
            template: dict[str, Any] = sbx.spec.template or {}
            image = template["spec"]["containers"][0]["image"]
            assert image in m.images, (r.sandbox, image, m)
            if image == NEW_IMAGE:
                event("a claim delivered an in-place image update")
                try:
                    pod = self.cluster.get("pod", name, ns)
                except NotFoundError:
                    pod = None
                if pod is not None and pod.metadata.deletion_timestamp is None:
                    assert pod.spec["containers"][0]["image"] == image, (r.sandbox, m)
            raw = sbx.metadata.annotations.get(keys.ANN_CSI_VOLUME_CONFIG)
            mounts = tuple((c["pvName"], c["mountPath"]) for c in json.loads(raw or "[]"))
            assert mounts in m.mounts, (r.sandbox, raw, m)
            if mounts:
                assert r.mounted is not None and r.runtime_initialized is not None, r
                assert r.runtime_initialized <= r.mounted <= r.delivered, r
                event("a claim delivered sandboxes with CSI mounts")

    @invariant()
    def never_more_attempts_than_missing(self) -> None:
        """At no moment does a claim have more attempts under way, with what it was
        delivered, than ``replicas``: each reconcile claims at most ``desired - current``."""
        if not hasattr(self, "cluster"):
            return
        moments: dict[str, list[tuple[float, int, int]]] = {}
        for r in self.cluster.records:
            if r.path != "sandboxclaim":
                continue
            marks = moments.setdefault(r.owner, [])
            # (time, order, change in "under way or delivered"): ends before starts at a tie.
            marks.append((r.requested, 1, 1))
            if r.failed is not None:
                marks.append((r.failed, 0, -1))
        for owner, marks in moments.items():
            m = self.claims[owner]
            held = 0
            for t, _, change in sorted(marks):
                held += change
                assert held <= m.replicas, f"claim {m.name} had {held} at {t}: {m}"

    @invariant()
    def waves_follow_the_reference(self) -> None:
        if not hasattr(self, "cluster"):
            return
        events = self.cluster.log.of_kind("sandboxclaim.")
        for e in events[self.waves_seen :]:
            key = e.detail.split(" ", 1)[0]
            if e.kind == "sandboxclaim.wave":
                size = int(e.detail.rsplit("size=", 1)[1])
                waves = self.open_waves.setdefault(key, [])
                assert not waves or waves[-1][1], f"{key}: a wave after a failed one: {waves}"
                full = INITIAL_WAVE * 2 ** len(waves)
                assert 0 < size <= full, (key, waves, size)
                assert not waves or waves[-1][0] == INITIAL_WAVE * 2 ** (len(waves) - 1), (
                    f"{key}: a wave after a short one: {waves} {size}"
                )
                assert sum(w for w, _ in waves) + size <= MAX_BATCH, (key, waves, size)
                waves.append((size, True))
                if len(waves) > 1:
                    event("a reconcile of more than one wave")
            elif e.kind == "sandboxclaim.wave_failed":
                waves = self.open_waves[key]
                waves[-1] = (waves[-1][0], False)
            elif e.kind in (
                "sandboxclaim.claimed",
                "sandboxclaim.no_available",
                "sandboxclaim.gone",
            ):
                self.open_waves.pop(key, None)
        self.waves_seen = len(events)


TestSandboxClaimMachine = SandboxClaimMachine.TestCase
TestSandboxClaimMachine.settings = machine_settings(150, 30)

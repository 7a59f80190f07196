"""Claim records, the event log and the metrics agree, as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one :class:`~simulator.cluster.Cluster` (a drawn seed
and profile, ``openkruise-head`` or ``openkruise-v0.3.0``; three nodes; one pool whose
image is pulled at every start) with drawn workloads: E2B creates with drawn options
(timeout, ``create-on-no-stock``, ``skip-init-runtime``, an in-place image, CSI
volume mounts, claim and wait-ready timeouts, an unknown template; some refused 400),
waited for one at a time, left running as bursts (some of whose callers go away), run as
``Cluster.create_sandboxes`` bursts, or held past the day a call waits (its caller gives
up); kills, pauses and connects of delivered sandboxes; SandboxClaims; the records cleared
or capped (``records_limit``; every record is held through ``records.listen``, and the
metrics must count on), under drawn fault mixes (lock conflicts, 5xx from the API server,
``/init`` and mount failures, image pull failures, node loss, controller stalls). Each
E2B caller is a user of its own, so its record is found by ``owner``. After every rule,
what docs/models.md ("Claim records") and docs/server.md ("Metrics") say is checked:

- one record per claim: each create call answered (a sandbox or a ``ClaimError``) has
  exactly one E2B record, owned by its user, and ended; a burst one per create;
- a record's phase timestamps are monotone in ``PHASES`` order, begin at ``requested``,
  and are present exactly for the phases that happened: a delivered record has
  ``worker_acquired``, ``picked`` and ``locked``, ``ready`` exactly when it waited
  for readiness (a created sandbox or an in-place image), ``runtime_initialized``
  exactly when the runtime was initialised, ``mounted`` exactly when mounts were asked
  for; a failed record has a prefix of those, and the pick failures its error tallies
  (§5.3 "Final error") are its ``pick_failures``; an ended record has exactly one of
  ``delivered`` and ``failed``, after every other phase;
- a delivered record names the sandbox its caller got; it is ``warm`` (``lock_type``
  ``update``) exactly when that sandbox was created by the SandboxSet controller (the
  pool), and a cold one has a ``cold_reason``; a failed one carries the error, reason
  and HTTP code its caller got;
- the event log agrees: ``manager.claim`` and ``manager.claim_failed`` carry each E2B
  record's lock type, code, reason and attempts; ``sandboxclaim.attempt_failed`` each
  failed SandboxClaim record; each locked record has its ``claim.locked`` line;
  ``claim.conflict`` lines are the records' ``LockConflict`` pick failures;
- the exposition text parses with ``prometheus_client``'s parser, and every counter and
  histogram is what the records (and the log, for the SandboxSet counters) derive: creation
  responses, claims, failures, durations (buckets, count and sum), retries, sandboxes
  created and claimed; ``sandbox_delete``, ``_pause`` and ``_resume`` count the kills,
  pauses and connects made (not those a route or request check refuses), and their
  duration histograms each success, within the time the call took; the gauges are the
  stored SandboxSets' status.

``derandomize=True`` keeps the suite deterministic (about 10 s of one core).
``KRUISE_MACHINE_EXAMPLES``, ``KRUISE_MACHINE_STEPS`` and ``KRUISE_MACHINE_HUNT``
(see tests/machines.py) turn it into a hunt.
"""

from __future__ import annotations

import contextlib
import json
import math
from bisect import bisect_left
from collections import Counter
from typing import Any

import simpy
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from prometheus_client.parser import text_string_to_metric_families

from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from pytest_kruise_agents.claiming.extensions import (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_CREATE_ON_NO_STOCK,
    KEY_IMAGE,
    KEY_SKIP_INIT_RUNTIME,
    KEY_WAIT_READY_TIMEOUT_SECONDS,
)
from simulator.cluster import Cluster
from simulator.errors import NoAnswerError, NotFoundError
from simulator.metrics import DURATION_BUCKETS, RETRY_BUCKETS
from simulator.records import COLD_REASONS, PHASES, ClaimRecord
from tests.cluster.conftest import claim_yaml, pool_yaml
from tests.machines import machine_settings

NS = "default"
POOL = "p"
IMAGE = "registry.example.com/sandbox:latest"
"""Pulled at every start (``imagePullPolicy: Always``): each start consults the pull faults."""
OTHER_IMAGE = "registry.example.com/sandbox:v3"
"""An in-place image update: the claim waits until the sandbox is ready again."""
NODES = ("node-1", "node-2", "node-3")
CLAIMS = ("c1", "c2")
PICK_FAILURES = "pick sandbox failures: "
PROFILES = ("openkruise-head", "openkruise-v0.3.0")

FAULTS: dict[str, dict[str, Any]] = {
    "conflict": {"kind": "api_conflict", "selector": {"client": "sandbox-manager"}},
    "conflict-all": {"kind": "api_conflict", "selector": {"verb": "update", "kind": "Sandbox"}},
    "5xx-manager": {"kind": "api_error", "selector": {"client": "sandbox-manager"}, "code": 503},
    "5xx-pods": {"kind": "api_error", "selector": {"verb": "create", "kind": "Pod"}, "code": 500},
    "5xx-claims": {
        "kind": "api_error",
        "selector": {"client": "agent-sandbox-controller"},
        "code": 500,
    },
    "init": {"kind": "runtime_init_failure", "code": 500},
    "init-400": {"kind": "runtime_init_failure", "code": 400},
    "unreachable": {"kind": "runtime_unreachable"},
    "mount": {"kind": "csi_mount_failure"},
    "pull": {"kind": "image_pull_failure"},
    "pod-start": {"kind": "pod_start_failure"},
    "node-loss": {"kind": "node_loss", "selector": {"node": "node-1"}},
    "pod-kill": {"kind": "pod_kill", "selector": {"template": POOL}},
    "stall-sandboxset": {"kind": "controller_stall", "selector": {"controller": "sandboxset"}},
    "stall-sandboxclaim": {"kind": "controller_stall", "selector": {"controller": "sandboxclaim"}},
    "stall-kubelet": {"kind": "controller_stall", "selector": {"controller": "kubelet"}},
    "slow-watch": {"kind": "watch_lag", "latency": "exp(500ms)"},
    "stuck-manager": {
        "kind": "api_latency",
        "latency": "fixed(100000s)",
        "selector": {"client": "sandbox-manager", "verb": "update"},
    },
}
"""The fault mixes drawn. ``stuck-manager`` holds the manager's writes past the one day a
``Cluster`` call waits for an answer: its caller gives up (``NoAnswerError``)."""


def _key(sbx: Sandbox) -> str:
    return f"{sbx.metadata.namespace}/{sbx.metadata.name}"


class Call:
    """One E2B create call (or one create of a burst) and what its caller saw."""

    def __init__(self, user: str, options: dict[str, Any], *, refusable: bool) -> None:
        self.user = user
        self.options = options
        self.refusable = refusable
        self.outcome: Sandbox | ClaimError | None = None


class RecordsMachine(RuleBasedStateMachine):
    """One cluster under drawn workloads and faults; records, log and metrics checked."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster: Cluster | None = None
        self.calls: list[Call] = []
        self.running: list[tuple[Call, simpy.Process]] = []
        self.users = 0
        self.delivered: dict[str, str] = {}  # sandbox id -> key, delivered and not killed
        self.ops = Counter[tuple[str, str]]()  # (operation, result) -> calls counted
        self.op_elapsed: dict[str, float] = {}  # operation -> virtual seconds its successes took
        self.maybe_failed_resumes = 0  # failed connects: each may have failed its resume
        self.claim_uids: dict[str, int] = {}  # SandboxClaim uid -> replicas
        self.records: list[ClaimRecord] = []
        """Every record started, held as it starts (``records.listen``): the cluster keeps the
        latest ``records_limit`` only, and ``records.clear()`` forgets them, while the metrics
        count on."""

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    # -- rules ----------------------------------------------------------------------------

    @initialize(
        seed=st.integers(0, 2**32 - 1),
        profile=st.sampled_from(PROFILES),
        limit=st.sampled_from([None, None, 3]),
    )
    def start(self, seed: int, profile: str, limit: int | None) -> None:
        self.cluster = Cluster(seed=seed, nodes=len(NODES), profile=profile, records_limit=limit)
        self.c.records.listen(self.records.append)
        self.c.apply(pool_yaml(POOL, 3, cpu="100m", memory="64Mi", image=IMAGE))
        self.c.wait_for_pool(POOL, NS)
        event(f"profile {profile}")

    def _options(self, data: st.DataObject) -> tuple[dict[str, Any], bool]:
        """Drawn create options, and whether a refusal (400 before any attempt) may answer."""
        draw = data.draw
        metadata: dict[str, str] = {}
        claim_timeout = draw(st.sampled_from([None, None, 1, 5, 20]), label="claim_timeout")
        if claim_timeout is not None:
            metadata[KEY_CLAIM_TIMEOUT_SECONDS] = str(claim_timeout)
        wait_ready = draw(st.sampled_from([None, 2, 20]), label="wait_ready")
        if wait_ready is not None:
            metadata[KEY_WAIT_READY_TIMEOUT_SECONDS] = str(wait_ready)
        no_stock = draw(st.sampled_from([None, "true", "false"]), label="create_on_no_stock")
        if no_stock is not None:
            metadata[KEY_CREATE_ON_NO_STOCK] = no_stock
        skip_init = draw(st.integers(0, 3), label="skip_init") == 0
        if skip_init:
            metadata[KEY_SKIP_INIT_RUNTIME] = "true"
        if draw(st.integers(0, 3), label="image") == 0:
            metadata[KEY_IMAGE] = OTHER_IMAGE
        mounts = draw(st.booleans(), label="mounts")
        template = draw(st.sampled_from([POOL] * 9 + ["nope"]), label="template")
        options: dict[str, Any] = {
            "template": template,
            "namespace": NS,
            "timeout": draw(st.sampled_from([None, 60, 600]), label="timeout"),
            "metadata": metadata,
        }
        if mounts:
            options["volume_mounts"] = [{"name": "pv-data", "path": "/data"}]
        refusable = template != POOL or (mounts and skip_init)
        return options, refusable

    def _user(self) -> str:
        self.users += 1
        return f"u{self.users}"

    @precondition(lambda self: self.cluster is not None)
    @rule(data=st.data())
    def e2b_create(self, data: st.DataObject) -> None:
        """One create, run until answered."""
        options, refusable = self._options(data)
        self._create(options, refusable, "a create")

    def _create(self, options: dict[str, Any], refusable: bool, label: str) -> None:
        """Make one create, run until answered, and note what its caller got."""
        call = Call(self._user(), options, refusable=refusable)
        self.calls.append(call)
        try:
            sbx = self.c.create_sandbox(user=call.user, **options)
        except ClaimError as err:
            call.outcome = err
            event(f"{label} failed {err.code} {err.reason} ({type(err).__name__})")
        else:
            call.outcome = sbx
            self.delivered[self.c.sandbox_id(sbx)] = _key(sbx)
            event(f"{label} delivered")

    @precondition(lambda self: self.cluster is not None)
    @rule(data=st.data())
    def e2b_create_unanswered(self, data: st.DataObject) -> None:
        """A create whose lock write the API server holds past the day a call waits: its
        caller gives up (``NoAnswerError``) and its claim is cancelled. Rarely: a day passes."""
        if data.draw(st.integers(0, 3), label="rarely"):
            return
        options, refusable = self._options(data)
        options["metadata"].pop(KEY_CLAIM_TIMEOUT_SECONDS, None)
        fault = self.c.inject(**FAULTS["stuck-manager"])
        try:
            self._create(options, refusable, "an unanswered create")
        finally:
            self.c.clear_fault(fault)

    @precondition(lambda self: self.cluster is not None)
    @rule(data=st.data(), count=st.integers(1, 5))
    def e2b_burst(self, data: st.DataObject, count: int) -> None:
        """Creates started and left running: they race each other and the claims."""
        options, refusable = self._options(data)
        if refusable:
            return  # refused at the call: Cluster.submit_create is for requests that run
        for _ in range(count):
            call = Call(self._user(), options, refusable=False)
            self.calls.append(call)
            proc = self.c.submit_create(user=call.user, **options)
            self.running.append((call, proc))

    @precondition(lambda self: self.cluster is not None)
    @rule(data=st.data(), count=st.integers(0, 4))
    def e2b_burst_answered(self, data: st.DataObject, count: int) -> None:
        """``Cluster.create_sandboxes``: a burst run until every create is answered; a request
        refused whatever the cluster holds raises its 400 once and starts no create."""
        options, refusable = self._options(data)
        user = self._user()
        try:
            results = self.c.create_sandboxes(count, user=user, **options)
        except ClaimError as err:
            assert refusable and err.code == 400, err
            assert not [r for r in self.records if r.owner == user]
            return
        for result in results:
            call = Call(user, options, refusable=refusable)
            call.outcome = result
            self.calls.append(call)
            if isinstance(result, Sandbox):
                self.delivered[self.c.sandbox_id(result)] = _key(result)

    @precondition(lambda self: self.cluster is not None)
    @rule(data=st.data())
    def e2b_cancel(self, data: st.DataObject) -> None:
        """A caller of a create left running goes away: its claim is cancelled."""
        alive = [(call, proc) for call, proc in self.running if proc.is_alive]
        if not alive:
            return
        _call, proc = data.draw(st.sampled_from(alive), label="cancelled")
        proc.interrupt("client gone")
        self.c.advance(0)

    @precondition(lambda self: self.cluster is not None)
    @rule()
    def clear_records(self) -> None:
        """``records.clear()`` forgets the records; the metrics count on."""
        self.c.records.clear()

    def _owner(self, sid: str) -> str:
        return next(
            call.user
            for call in self.calls
            if isinstance(call.outcome, Sandbox) and self.c.sandbox_id(call.outcome) == sid
        )

    def _counted_call(self, operation: str, sid: str, owner: str) -> bool:
        """Make the ``operation`` call on ``sid``; count it as ``sandbox_<operation>_total`` does
        (a call refused at its route or request check is not counted); whether it succeeded."""
        c = self.c
        try:
            if operation == "delete":
                c.manager.check_kill(NS, owner, sid)
            elif operation == "pause":
                c.manager.check_pause(NS, owner, sid)
            else:
                c.manager.check_connect(NS, owner, sid, 300)
        except (ClaimError, NotFoundError):
            counted = False
        else:
            counted = True
        began = c.now
        try:
            if operation == "delete":
                c.kill(sid, namespace=NS, user=owner)
            elif operation == "pause":
                c.pause(sid, namespace=NS, user=owner)
            else:
                _, resumed = c.connect(sid, namespace=NS, user=owner)
                if not resumed:
                    return True  # not paused: no resume, nothing counted
        except (ClaimError, NotFoundError) as err:
            if counted and operation == "resume":
                # A connect may fail before it finds the sandbox paused (no resume).
                self.maybe_failed_resumes += 1
            elif counted:
                self.ops[(operation, "failure")] += 1
            event(f"a {operation} failed {getattr(err, 'code', None)}")
            return False
        assert counted, f"{operation} of {sid} succeeded past a refusing check"
        self.ops[(operation, "success")] += 1
        event(f"a {operation} succeeded")
        self.op_elapsed[operation] = self.op_elapsed.get(operation, 0.0) + c.now - began
        return True

    @precondition(lambda self: self.cluster is not None)
    @rule(
        data=st.data(), operation=st.sampled_from(["delete", "pause", "pause", "resume", "resume"])
    )
    def e2b_operation(self, data: st.DataObject, operation: str) -> None:
        """A kill, pause or connect (a resume when paused) of a delivered sandbox."""
        if not self.delivered:
            return
        sid = data.draw(st.sampled_from(sorted(self.delivered)))
        ok = self._counted_call(operation, sid, self._owner(sid))
        if ok and operation == "delete":
            del self.delivered[sid]

    @precondition(lambda self: self.cluster is not None)
    @rule(name=st.sampled_from(CLAIMS), replicas=st.integers(1, 3))
    def apply_claim(self, name: str, replicas: int) -> None:
        c = self.c
        with contextlib.suppress(NotFoundError):
            c.delete("sbc", name, NS)
        c.apply(claim_yaml(name, POOL, namespace=NS, replicas=replicas, claimTimeout="10s"))
        uid = c.get("sbc", name, NS).metadata.uid
        assert uid is not None
        self.claim_uids[uid] = replicas

    @precondition(lambda self: self.cluster is not None)
    @rule(
        which=st.sampled_from(sorted(FAULTS)),
        probability=st.sampled_from([1.0, 0.5]),
        duration=st.sampled_from([None, 2.0, 10.0]),
    )
    def inject(self, which: str, probability: float, duration: float | None) -> None:
        fields = dict(FAULTS[which])
        if fields["kind"] not in ("node_loss", "pod_kill", "controller_stall"):
            fields["probability"] = probability
        if duration is not None:
            fields["duration"] = duration
        self.c.inject(**fields)

    @precondition(lambda self: self.cluster is not None)
    @rule()
    def clear_faults(self) -> None:
        self.c.clear_faults()

    @precondition(lambda self: self.cluster is not None)
    @rule(seconds=st.sampled_from([0, 0.02, 0.5, 3, 20, 60]))
    def advance(self, seconds: float) -> None:
        self.c.advance(seconds)

    # -- the checks ---------------------------------------------------------------------

    def _collect(self) -> None:
        """The outcome of each create left running that has ended."""
        still: list[tuple[Call, simpy.Process]] = []
        for call, proc in self.running:
            if proc.is_alive:
                still.append((call, proc))
                continue
            value = proc.value
            assert isinstance(value, Sandbox | ClaimError), value
            call.outcome = value
            if isinstance(value, Sandbox):
                self.delivered[self.c.sandbox_id(value)] = _key(value)
        self.running = still

    def _pool_made(self) -> dict[str, str]:
        """Sandbox key -> its SandboxSet, of every sandbox the SandboxSet controller created."""
        made: dict[str, str] = {}
        for e in self.c.log.of_kind("sandboxset.create"):
            if e.kind != "sandboxset.create":
                continue
            key, _, sset = e.detail.partition(" set=")
            made[key] = sset
        return made

    @invariant()
    def one_record_per_call(self) -> None:
        """Each answered create has exactly one record, owned by its user, that agrees with
        what its caller got."""
        if self.cluster is None:
            return
        self._collect()
        by_owner: dict[str, list[ClaimRecord]] = {}
        for r in self.records:
            if r.path == "e2b":
                by_owner.setdefault(r.owner, []).append(r)
        calls: dict[str, list[Call]] = {}
        for call in self.calls:
            calls.setdefault(call.user, []).append(call)
        assert set(by_owner) <= set(calls), set(by_owner) - set(calls)
        kept = {id(r) for r in self.c.records}
        assert [r for r in self.records if id(r) in kept] == list(self.c.records)
        assert len(self.c.records) + self.c.records.dropped <= len(self.records)
        pool = self._pool_made()
        for user, mine_calls in calls.items():
            mine = by_owner.get(user, [])
            if len(mine_calls) > 1:
                # A burst answered together: the same outcomes, in some order.
                got = Counter(_outcome(call.outcome) for call in mine_calls)
                assert got == Counter(_told(r) for r in mine), (got, mine)
                continue
            call = mine_calls[0]
            if call.outcome is None:
                assert len(mine) <= 1, mine
                assert not mine or not mine[0].done, (call.user, mine)
                continue
            assert len(mine) == 1, (call.user, mine)
            r = mine[0]
            assert r.done, r
            assert (r.namespace, r.template) == (NS, call.options["template"]), r
            if isinstance(call.outcome, Sandbox):
                assert r.delivered is not None and r.failed is None, r
                assert r.sandbox == _key(call.outcome), (r, _key(call.outcome))
                assert r.warm == (r.sandbox in pool), (r, "pool-made:", r.sandbox in pool)
            else:
                err = call.outcome
                assert r.failed is not None and r.delivered is None, r
                assert (r.error, r.error_reason, r.error_code) == (
                    _manager_error(err),
                    err.reason,
                    err.code,
                ), (
                    r,
                    err,
                )
                if r.attempts == 0:
                    assert call.refusable and err.code == 400, (r, err)

    @invariant()
    def phases(self) -> None:
        """Phases are monotone and present exactly for what happened."""
        if self.cluster is None:
            return
        calls = {call.user: call for call in self.calls}
        pool = self._pool_made()
        now = self.c.now
        for r in self.records:
            times = [(p, getattr(r, p)) for p in PHASES if getattr(r, p) is not None]
            assert times[0][0] == "requested", r
            stamps = [t for _, t in times]
            assert stamps == sorted(stamps), r
            assert stamps[-1] <= now, r
            assert r.delivered is None or r.failed is None, r
            assert r.attempts >= (0 if r.path == "e2b" else 1) or not r.done, r
            if r.attempts == 0:
                assert [p for p, _ in times] in (["requested"], ["requested", "failed"]), r
                continue
            if not r.done:
                continue
            # What the last attempt passes, in order, when it passes them all.
            expected = ["worker_acquired", "picked", "locked"]
            if r.lock_type is not None:
                call = calls.get(r.owner) if r.path == "e2b" else None
                inplace = call is not None and KEY_IMAGE in call.options["metadata"]
                if r.lock_type == "create" or inplace:
                    expected.append("ready")
                if call is not None:
                    metadata = call.options["metadata"]
                    if KEY_SKIP_INIT_RUNTIME not in metadata:
                        expected.append("runtime_initialized")
                    if "volume_mounts" in call.options:
                        expected.append("mounted")
                elif r.path == "sandboxclaim":
                    expected.append("runtime_initialized")
            present = [p for p, _ in times if p not in ("requested", "delivered", "failed")]
            if r.delivered is not None:
                if r.path == "e2b":
                    assert present == expected, (present, expected, r)
                else:
                    assert present[:3] == expected[:3], (present, r)
                assert r.lock_type is not None and r.sandbox is not None, r
                if r.lock_type == "create":
                    assert r.cold_reason in COLD_REASONS, r
                    assert r.sandbox not in pool, r
                else:
                    assert r.cold_reason is None, r
            else:
                assert present == expected[: len(present)], (present, expected, r)
                assert r.error is not None and r.error_code is not None, r
                assert r.error_reason, r
                if r.path == "e2b" and PICK_FAILURES in r.error:
                    # §5.3 "Final error": the loop's own tally of the failed picks.
                    told = json.loads(r.error.rpartition(PICK_FAILURES)[2])
                    counted = sum(f["count"] for f in told)
                    assert counted == sum(r.pick_failures.values()), (told, r)

    @invariant()
    def log_agrees(self) -> None:
        """The event log tells each record's end, lock and conflicts as the record does."""
        if self.cluster is None:
            return
        log = self.c.log
        records = self.records
        delivered = Counter(
            f"{r.sandbox} user={r.owner} lock={r.lock_type} attempts={r.attempts}"
            for r in records
            if r.path == "e2b" and r.delivered is not None
        )
        assert (
            Counter(e.detail for e in log.of_kind("manager.claim") if e.kind == "manager.claim")
            == delivered
        )
        failed = Counter(
            f"{r.namespace or '*'}/{r.template} user={r.owner} code={r.error_code} "
            f"reason={r.error_reason} attempts={r.attempts}"
            for r in records
            if r.path == "e2b" and r.failed is not None
        )
        assert Counter(e.detail for e in log.of_kind("manager.claim_failed")) == failed
        claim_failed = Counter(
            f"{r.namespace}/{r.claim_name} {r.error_reason}"
            for r in records
            if r.path == "sandboxclaim" and r.failed is not None
        )
        assert Counter(e.detail for e in log.of_kind("sandboxclaim.attempt_failed")) == claim_failed
        locked = {
            (e.time, e.detail.split(" ")[1], e.detail.split(" ")[2])
            for e in log.of_kind("claim.locked")
        }
        for r in records:
            if r.locked is not None:
                assert (r.locked, r.sandbox, r.lock_type) in locked, r
        conflicts = sum(r.pick_failures.get("LockConflict", 0) for r in records)
        assert len(log.of_kind("claim.conflict")) == conflicts

    @invariant()
    def metrics_agree(self) -> None:
        """Every counter and histogram is what the records, the log and the kills derive."""
        if self.cluster is None:
            return
        c = self.c
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(c.metrics_text()):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in samples, key
                samples[key] = s.value

        def series(name: str) -> dict[tuple[tuple[str, str], ...], float]:
            return {labels: v for (n, labels), v in samples.items() if n == name}

        def labels(**kw: str) -> tuple[tuple[str, str], ...]:
            return tuple(sorted(kw.items()))

        responses: Counter[tuple[tuple[str, str], ...]] = Counter()
        claims: Counter[tuple[tuple[str, str], ...]] = Counter()
        failures: Counter[tuple[tuple[str, str], ...]] = Counter()
        durations: dict[tuple[tuple[str, str], ...], list[float]] = {}
        retries: dict[tuple[tuple[str, str], ...], list[float]] = {}
        for r in self.records:
            if not r.done:
                continue
            template = "" if r.attempts == 0 and r.error_code == 400 else r.template
            base = {"path": r.path, "namespace": r.namespace, "template": template}
            if r.delivered is not None:
                assert r.lock_type is not None
                series_key = labels(**base, lock_type=r.lock_type)
                claims[series_key] += 1
                durations.setdefault(series_key, []).append(r.delivered - r.requested)
                code = "201"
            else:
                failures[labels(**base, reason=r.error_reason or "")] += 1
                code = str(r.error_code)
            if r.path == "e2b":
                responses[labels(namespace=r.namespace, template=template, code=code)] += 1
            retries.setdefault(labels(**base), []).append(float(r.retries))
        assert series("sandbox_claim_creation_responses_total") == dict(responses)
        assert series("sandbox_claim_total") == dict(claims)
        assert series("sandbox_claim_failures_total") == dict(failures)
        _check_histogram(series, "sandbox_claim_duration_seconds", DURATION_BUCKETS, durations)
        _check_histogram(series, "sandbox_claim_retries", RETRY_BUCKETS, retries)

        made = Counter(
            labels(namespace=sandbox.partition("/")[0], sandboxset=sset)
            for sandbox, sset in self._pool_made().items()
        )
        assert series("sandboxset_sandboxes_created_total") == dict(made)
        pool = self._pool_made()
        taken = Counter[tuple[tuple[str, str], ...]]()
        for e in c.log.of_kind("claim.locked"):
            _, sandbox, lock_type = e.detail.split(" ")
            if lock_type == "update":
                taken[labels(namespace=sandbox.partition("/")[0], sandboxset=pool[sandbox])] += 1
        assert series("sandboxset_sandboxes_claimed_total") == dict(taken)
        for operation in ("delete", "pause", "resume"):
            counted = series(f"sandbox_{operation}_total")
            want = {
                labels(namespace=NS, result=result): float(n)
                for (op, result), n in self.ops.items()
                if op == operation and n
            }
            failed = labels(namespace=NS, result="failure")
            if operation == "resume" and failed in counted:
                # Each failed connect may or may not have failed its resume.
                assert counted[failed] <= self.maybe_failed_resumes, (counted, self.ops)
                want[failed] = counted[failed]
            assert counted == want, (operation, counted, want)
            # Each successful call observes its duration, within the time the call took.
            took = series(f"sandbox_{operation}_duration_seconds_count")
            total = series(f"sandbox_{operation}_duration_seconds_sum")
            successes = self.ops[(operation, "success")]
            assert took == ({labels(namespace=NS): successes} if successes else {}), took
            if successes:
                assert total[labels(namespace=NS)] <= self.op_elapsed[operation] + 1e-9
        sbs = c.get("sbs", POOL, NS)
        set_labels = labels(namespace=NS, sandboxset=POOL)
        assert series("sandboxset_replicas") == {set_labels: sbs.status.replicas}
        assert series("sandboxset_available_replicas") == {
            set_labels: sbs.status.available_replicas
        }

    @invariant()
    def claims_within_replicas(self) -> None:
        """A SandboxClaim's delivered records never pass its replicas."""
        if self.cluster is None:
            return
        for r in self.records:
            if r.done:
                outcome = "delivered" if r.delivered is not None else f"failed {r.error_reason}"
                event(f"a {r.path} record {outcome}, {'retried' if r.retries else 'first try'}")
        per_owner = Counter(
            r.owner for r in self.records if r.path == "sandboxclaim" and r.delivered
        )
        for uid, replicas in self.claim_uids.items():
            assert per_owner.get(uid, 0) <= replicas, (uid, per_owner.get(uid), replicas)


def _outcome(outcome: Sandbox | ClaimError | None) -> tuple[str, ...]:
    """What a caller got, as :func:`_told` says a record tells it."""
    if isinstance(outcome, Sandbox):
        return ("delivered", _key(outcome))
    assert outcome is not None
    return ("failed", _manager_error(outcome), outcome.reason, str(outcome.code))


def _manager_error(err: ClaimError) -> str:
    """The error a claim's record carries for the ``err`` its caller got: the same, but for a
    call that gave up waiting (``NoAnswerError``), whose claim the manager saw cancelled as a
    client going away cancels it (docs/models.md, Claim records)."""
    if isinstance(err, NoAnswerError):
        return ClaimCanceledError().message
    return str(err)


def _told(r: ClaimRecord) -> tuple[str, ...]:
    """What a record says its caller got."""
    if r.delivered is not None:
        return ("delivered", str(r.sandbox))
    return ("failed", str(r.error), str(r.error_reason), str(r.error_code))


def _check_histogram(
    series: Any,
    name: str,
    bounds: tuple[float, ...],
    observed: dict[tuple[tuple[str, str], ...], list[float]],
) -> None:
    """``name``'s buckets, count and sum are those of the ``observed`` values of each series."""
    counts = series(f"{name}_count")
    sums = series(f"{name}_sum")
    buckets = series(f"{name}_bucket")
    assert set(counts) == set(observed), (name, set(counts), set(observed))
    for key, values in observed.items():
        assert counts[key] == len(values), (name, key)
        assert math.isclose(sums[key], sum(values), rel_tol=1e-9, abs_tol=1e-9), (name, key)
        for i, le in enumerate([*bounds, math.inf]):
            want = sum(1 for v in values if bisect_left(bounds, v) <= i)
            le_text = "+Inf" if le == math.inf else repr(float(le))
            got = buckets[tuple(sorted((*key, ("le", le_text))))]
            assert got == want, (name, key, le_text, got, want)


TestRecordsMachine = RecordsMachine.TestCase
TestRecordsMachine.settings = machine_settings(25, 20)

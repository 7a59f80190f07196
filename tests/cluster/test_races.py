"""Several users racing kills, pauses, connects and timeouts on a recycling pool.

Property-based: each example is a random sequence of E2B calls by three users,
some at the same instant, on a pool whose sandboxes go back to it when killed.
Whatever the interleaving:

* a call answers with a sandbox of its caller only (a recycled sandbox never
  reaches its previous holder again);
* a call on a sandbox its caller holds is never refused as unknown (404)
  unless a race explains it: the caller killed that sandbox before the call
  ended, or the sandbox may have timed out (30 s after its delivery at the
  earliest: a ``set_timeout`` of 30 s moves its end no earlier);
* a kill of its own running sandbox by its holder that nothing paused
  recycles it;
* every call ends, with a sandbox or a typed error;
* once the calls are over and time has passed, the pool holds only clean
  sandboxes (not paused, not locked, no timers, owned by their set), every
  claimed sandbox has an owner, nothing is still recycling, every pod has its
  sandbox, and each node's allocation is the sum of its running pods' requests.

Coverage of the 200 derandomized examples: about 150 make a call that the 404
rule checks (some 180 kills, 150 connects, 80 pauses and 80 timeouts in all),
about 110 recycle a sandbox, and a dozen hand a recycled sandbox out again
(the node fits the pool and at most three pods more, so a replacement often
waits for a slot). A manager that refused every caller its own sandboxes, or
one user all of his, or deleted what a kill should recycle, fails here.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.pod import container_resources
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster

from .test_invariants import case_seed

USERS = ("user-a", "user-b", "user-c")

POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: base, namespace: default}}
spec:
  replicas: {replicas}
  runtimes: [{{name: agent-runtime}}]
  template:
    metadata:
      annotations: {{agents.kruise.io/cleanup-enabled: "true"}}
    spec:
      containers:
        - name: main
          image: registry.example.com/sandbox:v1
          resources: {{requests: {{cpu: 500m, memory: 512Mi}}}}
"""

CALLS = ("create", "create", "kill", "kill", "pause", "connect", "connect", "timeout")
GAPS = (0.0, 0.0, 0.0, 0.001, 0.05, 0.5, 3.0, 12.0)

# Positions in CALLS and GAPS, not their values: the repeats weight the draw, and
# two examples that differ only in which repeat they drew still get their own seed.
OPS = st.tuples(
    st.integers(0, len(CALLS) - 1),  # the call
    st.integers(0, 2),  # which user
    st.integers(0, 2),  # which of the three sandboxes handed out last
    st.integers(0, len(GAPS) - 1),  # gap before the next call
    st.booleans(),  # auto-pause, for a create
)


def problems(cluster: Cluster) -> list[str]:
    """What is wrong with the cluster at rest (see the module docstring)."""
    found: list[str] = []
    api = cluster.world.api
    sandboxes = {s.metadata.name: s for s in api.peek_list("Sandbox")}
    pods = api.peek_list("Pod")
    for name, sbx in sandboxes.items():
        meta = sbx.metadata
        if sbx.status.phase == "Recycling":
            found.append(f"{name} still recycling")
        if meta.controller_ref() is not None:
            lock = meta.annotations.get(keys.ANN_LOCK)
            if sbx.spec.paused or lock:
                found.append(f"pool sandbox {name} paused={sbx.spec.paused} lock={lock!r}")
            if sbx.spec.shutdown_time or sbx.spec.pause_time:
                found.append(f"pool sandbox {name} has timers")
        elif not meta.annotations.get(keys.ANN_OWNER):
            found.append(f"claimed sandbox {name} has no owner")
    used: dict[str, int] = {}
    for pod in pods:
        if pod.metadata.name not in sandboxes:
            found.append(f"pod {pod.metadata.name} without its sandbox")
        node = pod.spec.get("nodeName")
        if node and pod.status.phase not in ("Failed", "Succeeded"):
            used[node] = used.get(node, 0) + container_resources({"spec": pod.spec})[0]
    for node, (cpu_share, _) in cluster.nodes.utilisation().items():
        cap = 8000  # the nodes below have 8 cores
        if round(cpu_share * cap) != used.get(node, 0):
            found.append(
                f"node {node} allocates {cpu_share * cap:.0f}m, pods ask {used.get(node, 0)}m"
            )
    return found


@dataclass
class Call:
    """One E2B call of an example and how it ended (``code`` ``None``: it succeeded)."""

    kind: str
    user: str
    sid: str
    issued: float
    ended: float = -1.0
    code: int | None = None


@dataclass(frozen=True)
class Handed:
    """A sandbox delivered to a user by a create, and when."""

    user: str
    sid: str
    at: float


EARLIEST_END = 30.0
"""Seconds after its delivery before which a sandbox of this test cannot time out: created
with a 60 s timeout, a ``set_timeout`` of 30 s sets its end no earlier than this, and a
connect only extends it."""


def holding(handed: list[Handed], sid: str, at: float) -> Handed | None:
    """Who held sandbox ``sid`` at time ``at``: its latest delivery until then."""
    held = [h for h in handed if h.sid == sid and h.at <= at]
    return held[-1] if held else None


def own_calls(calls: list[Call], held: Handed, kind: str, until: float) -> list[Call]:
    """The calls of ``kind`` that the holder of ``held`` made on it from its delivery to ``until``."""
    return [
        c
        for c in calls
        if c.kind == kind and c.sid == held.sid and c.user == held.user
        if held.at <= c.issued <= until
    ]


def unexplained_refusals(calls: list[Call], handed: list[Handed]) -> list[str]:
    """The 404s answered to the holder of a sandbox that no race explains (module docstring)."""
    found: list[str] = []
    for call in calls:
        if call.kind == "create" or call.code != 404:
            continue
        held = holding(handed, call.sid, call.issued)
        if held is None or held.user != call.user or call.ended >= held.at + EARLIEST_END:
            continue  # not the caller's (any more), or perhaps timed out
        if any(k is not call for k in own_calls(calls, held, "kill", call.ended)):
            continue  # the caller killed it meanwhile
        found.append(
            f"{call.kind} by {call.user} of {call.sid} (delivered at {held.at:.3f}) "
            f"answered 404 at {call.ended:.3f}"
        )
    return found


def unrecycled_kills(calls: list[Call], handed: list[Handed], cluster: Cluster) -> list[str]:
    """Kills that should have recycled their sandbox and logged no recycle.

    A kill by the holder, within :data:`EARLIEST_END` of the delivery, with no
    earlier kill and no pause of the holder before it ended (a pause first
    would make the kill delete the sandbox instead), finds the sandbox running
    with cleanup enabled: it sets the recycle trigger.
    """
    recycled = {(e.time, e.detail) for e in cluster.log if e.kind == "manager.recycle"}
    found: list[str] = []
    for kill in calls:
        if kill.kind != "kill" or kill.code is not None:
            continue
        held = holding(handed, kill.sid, kill.issued)
        if held is None or held.user != kill.user or kill.ended >= held.at + EARLIEST_END:
            continue
        earlier = [k for k in own_calls(calls, held, "kill", kill.issued) if k is not kill]
        if earlier or own_calls(calls, held, "pause", kill.ended):
            continue
        key = kill.sid.replace("--", "/", 1)
        if not any(kill.issued <= t <= kill.ended and d == key for t, d in recycled):
            found.append(f"kill by {kill.user} of {kill.sid} at {kill.issued:.3f} recycled nothing")
    return found


@settings(
    max_examples=int(os.environ.get("KRUISE_INVARIANT_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**64 - 1),
    replicas=st.integers(1, 3),
    spare=st.integers(0, 3),
    ops=st.lists(OPS, min_size=5, max_size=40),
)
def test_racing_calls_on_a_recycling_pool_keep_every_invariant(
    seed: int, replicas: int, spare: int, ops: list[tuple[int, int, int, int, bool]]
) -> None:
    """Random kills, pauses, connects and timeouts by three users, some at one instant."""
    # The node fits the pool and ``spare`` pods more: a replacement often waits
    # for a slot, and a recycled sandbox is claimed again.
    max_pods = replicas + spare
    node = {"name": "n1", "cpu": "8", "memory": "64Gi", "max_pods": max_pods}
    # Hypothesis reuses drawn values (alone, 200 examples held 34 distinct seeds):
    # a seed derived from the whole example gives every example its own run.
    cluster = Cluster(seed=case_seed(seed, replicas, max_pods, ops), nodes=[node])
    cluster.apply(POOL.format(replicas=replicas))
    cluster.advance(15)
    env = cluster.env
    manager = cluster.manager
    handed: list[Handed] = []  # in the order delivered
    calls: list[Call] = []
    wrong: list[str] = []
    procs: list[simpy.Process] = []

    def call(c: Call, auto_pause: bool) -> Generator[simpy.Event, Any, None]:
        user, sid = c.user, c.sid
        try:
            if c.kind == "create":
                sbx = yield from manager.create_sandbox(
                    namespace="default",
                    user=user,
                    template="base",
                    timeout_s=60,
                    auto_pause=auto_pause,
                    metadata={"e2b.agents.kruise.io/claim-timeout-seconds": "60"},
                )
                handed.append(Handed(user, f"default--{sbx.metadata.name}", env.now))
            elif c.kind == "kill":
                yield from manager.kill("default", user, sid)
            elif c.kind == "pause":
                yield from manager.pause("default", user, sid)
            elif c.kind == "connect":
                sbx, _ = yield from manager.connect("default", user, sid, 120)
                owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
                if owner != user:
                    wrong.append(f"connect by {user} answered {sid} owned by {owner}")
            else:
                yield from manager.set_timeout("default", user, sid, 30)
        except ClaimError as err:
            c.code = err.code
        c.ended = env.now

    for call_at, who, which, gap_at, auto_pause in ops:
        kind, gap = CALLS[call_at], GAPS[gap_at]
        if kind == "create" or not handed:
            user, sid, kind = USERS[who], "", "create"
        else:
            last = handed[-1 - which % min(len(handed), 3)]
            user, sid = last.user, last.sid
        calls.append(Call(kind, user, sid, env.now))
        procs.append(env.process(call(calls[-1], auto_pause)))
        if gap:
            cluster.advance(gap)
    cluster.advance(1200)

    assert not wrong, wrong
    assert all(not p.is_alive for p in procs), "a call never ended"
    failed = [p.value for p in procs if not p.ok]
    assert not failed, failed
    assert not unexplained_refusals(calls, handed)
    assert not unrecycled_kills(calls, handed, cluster)
    assert not problems(cluster)

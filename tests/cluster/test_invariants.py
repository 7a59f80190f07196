"""Invariants of the claim system under random seeds and fault mixes (hypothesis).

For every run: a sandbox never has two owners; a claim never gets more than it
asked for; every E2B claim ends, delivered or with a typed error, within its
claim timeout or retry budget; a pool returns to spec.replicas once the load
stops and capacity allows; and no sandbox leaks: each is pooled, claimed,
reserved, or deleted. Some E2B clients go away before their answer (the
create's process is interrupted): their claims end cancelled and leave
nothing locked behind.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset
from simulator.cluster import Cluster

from .conftest import claim_yaml, pool_yaml

FAULTS = st.lists(
    st.sampled_from(
        [
            {"kind": "api_conflict", "selector": {"verb": "update"}},
            {"kind": "api_error", "selector": {"verb": "create", "kind": "Sandbox"}},
            {"kind": "runtime_init_failure"},
            {"kind": "runtime_unreachable"},
            {"kind": "pod_start_failure"},
            {"kind": "image_pull_failure"},
            {"kind": "api_latency", "latency": "uniform(0, 200ms)"},
            {"kind": "watch_lag", "latency": "uniform(0, 300ms)"},
        ]
    ),
    max_size=3,
    unique_by=lambda f: f["kind"],
)


@settings(
    max_examples=int(__import__("os").environ.get("KRUISE_INVARIANT_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    faults=FAULTS,
    probability=st.floats(0.05, 0.5),
    replicas=st.integers(0, 6),
    burst=st.integers(1, 12),
    batch=st.integers(1, 8),
    no_stock_create=st.booleans(),
    claim_timeout=st.sampled_from([None, 5, 20]),
    profile=st.sampled_from(["openkruise-head", "openkruise-v0.3.0"]),
    gone_after=st.lists(st.one_of(st.none(), st.floats(0.0, 25.0)), min_size=12, max_size=12),
)
def test_claim_invariants(
    seed: int,
    faults: list[dict[str, Any]],
    probability: float,
    replicas: int,
    burst: int,
    batch: int,
    no_stock_create: bool,
    claim_timeout: int | None,
    profile: str,
    gone_after: list[float | None],
) -> None:
    """Under any seed, fault mix and clients going away the five invariants hold."""
    cluster = Cluster(seed=seed, profile=profile, nodes=4)
    cluster.apply(pool_yaml(replicas=replicas, cpu="100m", memory="64Mi"))
    for f in faults:
        cluster.inject(probability=probability, duration=120, **f)
    cluster.advance(5)
    meta = {"e2b.agents.kruise.io/create-on-no-stock": "true" if no_stock_create else "false"}
    if claim_timeout is not None:
        meta["e2b.agents.kruise.io/claim-timeout-seconds"] = str(claim_timeout)
    procs = [cluster.submit_create("base", metadata=meta, timeout=3600) for _ in range(burst)]
    cancelled: set[int] = set()

    def go_away(i: int) -> None:
        if procs[i].is_alive:
            cancelled.add(i)
            procs[i].interrupt("client gone")

    for i, after in enumerate(gone_after[:burst]):
        if after is not None:
            cluster.env.timeout(after).callbacks.append(lambda _ev, i=i: go_away(i))
    cluster.apply(claim_yaml("batch", replicas=batch, claimTimeout="30s"))
    cluster.env.run(until=cluster.env.all_of(procs))
    results = [p.value for p in procs]
    for i in cancelled:
        assert isinstance(results[i], ClaimCanceledError), results[i]

    # Every E2B claim ended within its claim timeout or the retry budget.
    budget = (
        float(claim_timeout)
        if claim_timeout
        else (60.0 if profile == "openkruise-v0.3.0" else 400.0)
    )
    for rec in cluster.records:
        if rec.path != "e2b":
            continue
        assert rec.done
        end = rec.delivered if rec.delivered is not None else rec.failed
        assert end is not None and end - rec.requested <= budget + 1.0
    for res in results:
        assert not isinstance(res, ClaimError) or res.code in (400, 403, 409, 500)

    # Load stops: faults cleared, time passes.
    cluster.clear_faults()
    cluster.advance(700)

    # A sandbox never has two owners: each delivered at most once, owner matches.
    delivered = [r for r in cluster.records if r.delivered is not None]
    names = [r.sandbox for r in delivered]
    assert len(names) == len(set(names))
    for rec in delivered:
        ns, name = (rec.sandbox or "/").split("/")
        stored = cluster.world.api.peek("Sandbox", ns, name)
        if stored is not None:
            assert stored.metadata.annotations[keys.ANN_OWNER] == rec.owner

    # A claim never gets more than it asked for.
    claim = cluster.get("sbc", "batch")
    mine = cluster.list("sbx", "default", labels={keys.LABEL_CLAIM_NAME: "batch"})
    assert claim.status.claimed_replicas <= batch
    assert len(mine) <= batch

    # The pool returns to spec.replicas.
    sbs = cluster.get("sbs", "base")
    assert sbs.status.available_replicas == replicas == sbs.status.replicas

    # No sandbox leaks: pooled, claimed, or reserved (the rest were deleted).
    for sbx in cluster.list("sbx"):
        labels = sbx.metadata.labels
        ann = sbx.metadata.annotations
        if is_controlled_by_sandboxset(sbx):
            assert not ann.get(keys.ANN_LOCK), f"locked pool sandbox {sbx.metadata.name}"
        elif labels.get(keys.LABEL_RESERVED_FAILED) == "true":
            continue
        else:
            assert labels.get(keys.LABEL_SANDBOX_CLAIMED) == "true"
            assert ann.get(keys.ANN_OWNER), f"claimed sandbox without owner {sbx.metadata.name}"
            owner = ann[keys.ANN_OWNER]
            if owner == claim.metadata.uid:
                continue
            assert f"{sbx.metadata.namespace}/{sbx.metadata.name}" in names, (
                f"sandbox {sbx.metadata.name} claimed but never delivered"
            )

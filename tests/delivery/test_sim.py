"""The fake-cluster runner: virtual latencies from the claim records, both paths, failures."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator, Iterator

import pytest
import simpy

from pytest_kruise_agents.api.keys import LABEL_CLAIM_NAME
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.backends.base import ClockMode
from pytest_kruise_agents.backends.sim import SimBackend, default_pools_yaml
from pytest_kruise_agents.claiming.state import is_claimed
from pytest_kruise_agents.delivery import (
    Burst,
    DeliveryPath,
    Rate,
    Workload,
    run_on_backend,
    run_on_cluster,
)
from pytest_kruise_agents.delivery.sim import (
    BENCHMARK_USER_PREFIX,
    SETTLE_TIMEOUT_S,
    UNFINISHED,
    check_on_cluster,
)
from simulator.cluster import Cluster
from simulator.collector import YOUNG_THRESHOLD


@pytest.fixture
def backend() -> Iterator[SimBackend]:
    b = SimBackend.default(seed=5, replicas=3, nodes=2)
    yield b
    b.close()


def sorted_latencies(latencies: list[float | None]) -> list[float]:
    """``latencies`` sorted, each of which is given (the claims were delivered)."""
    given = sorted(x for x in latencies if x is not None)
    assert len(given) == len(latencies), latencies
    return given


def test_a_burst_through_the_e2b_path_reads_the_claim_records(backend: SimBackend) -> None:
    backend.cluster.create_sandbox("base")  # not part of the run
    result = run_on_backend(backend, Burst(4))
    assert [d.index for d in result.deliveries] == [1, 2, 3, 4]
    assert (len(result.warm), len(result.cold)) == (2, 2)
    records = list(backend.cluster.records)[-4:]
    assert sorted_latencies([d.latency for d in result.delivered]) == sorted_latencies(
        [r.latency for r in records]
    )
    first = result.deliveries[0]
    assert first.sandbox_id is not None and first.sandbox_id.startswith("default--base-")
    assert list(first.phases)[-1] == "delivered"
    assert first.phases["delivered"] == pytest.approx(first.latency)
    assert result.clock == "virtual" and result.target == "sim seed=5 profile=openkruise-head"


def test_the_target_says_which_profile_knobs_were_changed() -> None:
    """A run on a changed built-in profile does not pass for the built-in one."""
    cluster = Cluster(seed=5, profile="openkruise-v0.3.0", nodes=2, retry="exponential")
    cluster.apply(default_pools_yaml(2))
    cluster.wait_for_pool("base")
    b = SimBackend(cluster)
    result = run_on_backend(b, Burst(1))
    b.close()
    assert result.target == "sim seed=5 profile=openkruise-v0.3.0 (changed: retry)"


def test_the_same_seed_gives_the_same_result() -> None:
    runs = []
    for _ in range(2):
        b = SimBackend.default(seed=9, replicas=2, nodes=2)
        runs.append(run_on_backend(b, Rate(4, 2, arrivals_mode="poisson")).deliveries)
        b.close()
    assert runs[0] == runs[1]


def test_a_burst_of_sandboxclaims_measures_from_the_apply(backend: SimBackend) -> None:
    result = run_on_backend(backend, Burst(5, path="sandboxclaim"))
    assert (len(result.warm), len(result.cold), len(result.failed)) == (3, 2, 0)
    for d in result.delivered:
        assert d.requested == 0.0
        assert d.latency == pytest.approx(d.phases["delivered"])
    claims = backend.list("SandboxClaim", "default")
    assert len(claims) == 5 and all(
        isinstance(c, SandboxClaim) and c.status.phase == "Completed" for c in claims
    )


def test_the_sandboxclaim_path_deletes_each_claims_sandboxes_once_it_completes(
    backend: SimBackend,
) -> None:
    """As a user done with them: a steady rate through SandboxClaims never fills the nodes
    (held until teardown, this rate left 54 of its 300 claims without room), and the
    claims stay, Completed, for their TTL."""
    result = run_on_backend(backend, Rate(5, 60, path="sandboxclaim"))
    assert (len(result.delivered), len(result.failed)) == (300, 0)
    held = [
        s for s in backend.list("Sandbox", "default") if s.metadata.labels.get(LABEL_CLAIM_NAME)
    ]
    assert held == []
    claims = backend.list("SandboxClaim", "default")
    assert len(claims) == 300 and all(
        isinstance(c, SandboxClaim) and c.status.phase == "Completed" for c in claims
    )


def test_the_sandboxclaim_path_stops_deleting_when_its_run_ends(backend: SimBackend) -> None:
    """Its watch closes with the run: a SandboxClaim applied afterwards keeps its sandbox."""
    run_on_backend(backend, Burst(1, path="sandboxclaim"))
    with backend.locked() as cluster:
        cluster.apply(_claim("delivery-benchmark-1-2"))  # named as the run's would be
        cluster.run_until(lambda: False, timeout=30)
    held = [
        s.metadata.labels[LABEL_CLAIM_NAME]
        for s in backend.list("Sandbox", "default")
        if s.metadata.labels.get(LABEL_CLAIM_NAME)
    ]
    assert held == ["delivery-benchmark-1-2"]


def _claim(name: str) -> dict[str, object]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"templateName": "base"},
    }


def test_claims_that_fail_are_records_with_their_reason(backend: SimBackend) -> None:
    e2b = run_on_backend(backend, Burst(2, template="missing"))
    assert len(e2b.failed) == 2
    assert e2b.failed[0].error == "Template or Checkpoint not found"
    claims = run_on_backend(backend, Burst(1, template="missing", path="sandboxclaim"))
    assert len(claims.failed) == 1 and claims.failed[0].error


def test_a_failed_sandboxclaim_reports_its_last_attempts_error(backend: SimBackend) -> None:
    """The claim's status says only that it timed out; its last attempt says why."""
    backend.cluster.inject(
        "api_conflict", selector={"kind": "Sandbox", "client": "agent-sandbox-controller"}
    )
    result = run_on_backend(backend, Burst(1, path="sandboxclaim"))
    assert len(result.failed) == 1
    attempts = [r for r in backend.cluster.records if r.claim_name == "delivery-benchmark-1-1"]
    assert len(attempts) > 1 and attempts[-1].error
    assert result.failed[0].error == attempts[-1].error
    assert result.failed[0].retries == len(attempts) - 1
    (claim,) = backend.list("SandboxClaim", "default")
    assert isinstance(claim, SandboxClaim) and claim.status.message is not None
    assert claim.status.message.startswith("Timeout reached")


def test_a_sandboxclaim_delivered_on_its_second_attempt_counts_one_retry(
    backend: SimBackend,
) -> None:
    backend.cluster.inject(
        "api_conflict",
        selector={"verb": "update", "kind": "Sandbox", "client": "agent-sandbox-controller"},
        count=1,
    )
    result = run_on_backend(backend, Burst(1, path="sandboxclaim"))
    assert [(d.delivered, d.retries) for d in result.deliveries] == [(True, 1)]


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
def test_a_runs_phases_are_the_claims_steps_after_its_request_and_its_name_is_kept(
    backend: SimBackend, path: DeliveryPath
) -> None:
    """The request is the origin (``requested`` in the CSV), not a phase of its own."""
    result = run_on_backend(backend, Burst(2, path=path), name="mine")
    assert result.name == "mine"
    for d in result.delivered:
        assert "requested" not in d.phases
        assert list(d.phases)[-1] == "delivered"


def test_a_rate_arrives_on_schedule_in_virtual_time(backend: SimBackend) -> None:
    with backend.locked() as cluster:
        start = cluster.now
        result = run_on_cluster(cluster, Rate(1, 4))
        assert cluster.now >= start + 3
    assert [d.requested for d in result.deliveries] == pytest.approx([0, 1, 2, 3])
    assert len(result.warm) == 4  # one a second: the pool keeps up


def test_the_e2b_path_kills_its_sandboxes_once_measured(backend: SimBackend) -> None:
    """The run cleans up after itself: its delivered sandboxes are gone, the latencies stay."""
    result = run_on_backend(backend, Burst(4))
    assert len(result.delivered) == 4
    for d in result.delivered:
        assert d.sandbox_id is not None
        route = backend.route(d.sandbox_id)
        assert route is None or route.state == "dead"


def test_claims_unfinished_at_the_time_limit_are_canceled(backend: SimBackend) -> None:
    """A claim still in flight an hour after the last arrival is cancelled: it fails as
    unfinished, delivers nothing later, and leaves no sandbox claimed."""
    # The manager's lock of a warm sandbox takes two hours: no claim ends within the hour.
    backend.cluster.inject(
        "api_latency",
        latency=2 * SETTLE_TIMEOUT_S,
        selector={"verb": "update", "kind": "Sandbox", "client": "sandbox-manager"},
    )
    result = run_on_backend(backend, Burst(2))
    assert len(result.failed) == 2
    assert result.summary()["errors"] == {UNFINISHED: 2}
    # Cancelled an hour (virtual) after the last arrival, as docs/plugin.md says.
    assert all(3600 <= d.phases["failed"] < 3601 for d in result.failed)
    # Each picked a sandbox it never got: no sandbox is reported as theirs.
    assert [d.sandbox_id for d in result.failed] == [None, None]
    with backend.locked() as cluster:
        # Well past the moment the locks would have landed.
        cluster.run_until(lambda: False, timeout=3 * SETTLE_TIMEOUT_S)
        records = [r for r in cluster.records if r.owner.startswith(BENCHMARK_USER_PREFIX)]
    assert len(records) == 2 and all(r.delivered is None for r in records)
    sandboxes = backend.list("Sandbox", "default")
    assert sandboxes and not [s for s in sandboxes if isinstance(s, Sandbox) and is_claimed(s)]


def _log_of_two_runs(seed: int) -> str:
    b = SimBackend.default(seed=seed, replicas=2, nodes=2)
    run_on_backend(b, Burst(2, path="sandboxclaim"))
    run_on_backend(b, Burst(2))
    text = b.cluster.log.text()
    b.close()
    return text


def test_the_event_log_does_not_depend_on_runs_on_other_clusters() -> None:
    """Same seed, same calls, same event log: the runs' names count the runs of their own
    cluster, not those the process made before on other clusters."""
    first = _log_of_two_runs(3)
    assert first == _log_of_two_runs(3)
    assert "SandboxClaim/default/delivery-benchmark-1-1" in first


def test_runs_on_one_cluster_are_told_apart(backend: SimBackend) -> None:
    """Each run on a cluster gets the next number, whichever path the runs before it took."""
    run_on_backend(backend, Burst(1, path="sandboxclaim"))
    run_on_backend(backend, Burst(1))
    run_on_backend(backend, Burst(1, path="sandboxclaim"))
    claims = sorted(c.metadata.name for c in backend.list("SandboxClaim", "default"))
    assert claims == ["delivery-benchmark-1-1", "delivery-benchmark-3-1"]
    owners = {r.owner for r in backend.cluster.records if r.path == "e2b"}
    assert owners == {f"{BENCHMARK_USER_PREFIX}-2"}


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
def test_on_a_realtime_backend_the_run_follows_the_wall_clock(path: DeliveryPath) -> None:
    """The realtime driver moves the clock: the run never puts virtual time ahead of the wall
    clock (the server's next call would wait for it), and is labelled realtime."""
    speed = 10.0
    b = SimBackend.default(seed=2, replicas=2, nodes=2, clock="realtime", speed=speed)
    try:
        with b.locked() as cluster:
            start = cluster.now
        result = run_on_backend(b, Burst(3, path=path))  # one cold: seconds of virtual time
        with b.locked() as cluster:
            moved = cluster.now - start
            # The virtual time the wall clock reads now: the clock may lag it, never lead it.
            # (Against the wall time since ``start``, a model lagging at ``start`` on a busy
            # machine would have seemed to lead.)
            behind = b._virtual_at(time.monotonic()) - cluster.now
    finally:
        b.close()
    assert result.clock == "realtime" and len(result.delivered) == 3
    assert len(result.cold) == 1 and moved > 1.0
    assert behind >= 0


def test_a_steady_rate_kills_each_sandbox_as_it_is_delivered() -> None:
    """The E2B path kills each sandbox at its delivery, as the live runner kills each once
    measured: a minute at 5/s on the plugin's default cluster (4 nodes, pools of 3) never fills
    the nodes, so no claim waits for a sandbox an earlier claim of the run still holds (held
    until the end, later claims waited minutes for the SDK's timeout to free a node)."""
    b = SimBackend.default(nodes=4, replicas=3)
    try:
        result = run_on_backend(b, Rate(5, 60))
    finally:
        b.close()
    assert len(result.delivered) == 300
    assert result.stats().max < 10.0, result.describe(slowest=3)


def _bounded(limit: int) -> Cluster:
    cluster = Cluster(seed=0, nodes=4, records_limit=limit)
    cluster.apply(default_pools_yaml(5, pools=("base",)))
    cluster.wait_for_pool("base")
    return cluster


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
def test_every_claim_is_reported_however_few_records_the_cluster_keeps(
    path: DeliveryPath,
) -> None:
    """With ``records_limit`` the cluster drops its oldest records: the run holds its own as
    they start, so it reports each of its claims with its outcome, not the records the
    cluster happens to keep."""
    cluster = _bounded(20)
    run_on_cluster(cluster, Burst(8))  # other records, soon dropped
    result = run_on_cluster(cluster, Burst(30, path=path))
    assert cluster.records.dropped > 0
    assert [d.index for d in result.deliveries] == list(range(1, 31))
    assert len(result.delivered) == 30, result.summary()["errors"]
    after = run_on_cluster(cluster, Burst(5, path=path))
    assert (len(after.deliveries), len(after.delivered)) == (5, 5), after.summary()["errors"]


def test_a_workload_of_the_wrong_kind_names_the_parameter(backend: SimBackend) -> None:
    """Checked before anything starts: the cluster holds no claim of the run."""
    with backend.locked() as cluster:
        before = len(cluster.records)
        with pytest.raises(TypeError, match="workload: must be a Burst or a Rate, got 'burst'"):
            run_on_cluster(cluster, "burst")  # type: ignore[arg-type]
        assert len(cluster.records) == before
    with pytest.raises(TypeError, match="workload: must be a Burst or a Rate"):
        run_on_backend(backend, Burst)  # type: ignore[arg-type]


def _pooled(seed: int = 7) -> Cluster:
    cluster = Cluster(seed=seed, nodes=2)
    cluster.apply(default_pools_yaml(3, pools=("base",)))
    cluster.wait_for_pool("base")
    return cluster


_REFUSED: dict[str, tuple[Callable[[DeliveryPath], Workload], str]] = {
    # The API server's rule for a namespace: before, the run drew its Poisson arrivals, ran
    # to the first one, and only then had its SandboxClaim refused, named as its own.
    "namespace": (
        lambda path: Rate(2, 3, namespace="Bad_NS", path=path, arrivals_mode="poisson"),
        r"^namespace: invalid value 'Bad_NS': a lowercase RFC 1123 label",
    ),
    # A template names a SandboxSet: a name no SandboxSet can have never delivers.
    "template": (
        lambda path: Rate(2, 3, template="Bad_T", path=path, arrivals_mode="poisson"),
        r"^template: invalid value 'Bad_T': a lowercase RFC 1123 subdomain .*names a SandboxSet",
    ),
    "template-too-long": (
        lambda path: Burst(2, template="t" * 64, path=path),
        r"^template: must be at most 63 characters, got 64",
    ),
}


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
@pytest.mark.parametrize(("make", "message"), _REFUSED.values(), ids=_REFUSED)
def test_a_run_the_cluster_would_refuse_is_refused_before_any_draw_or_step(
    path: DeliveryPath, make: Callable[[DeliveryPath], Workload], message: str
) -> None:
    """What a run would send is checked before it draws its arrivals or moves the clock, and
    the error names the workload's field: the cluster is as it was (same time, same log, same
    generator), so the runs after it are those of a cluster that never saw it."""
    with pytest.raises(ValueError, match=message):
        check_on_cluster(make(path))  # what a caller that makes the cluster can check first
    refused, clean = _pooled(), _pooled()
    before = (refused.now, refused.log.text(), refused.ctx.rng.getstate(), len(refused.records))
    with pytest.raises(ValueError, match=message):
        run_on_cluster(refused, make(path))
    after = (refused.now, refused.log.text(), refused.ctx.rng.getstate(), len(refused.records))
    assert after == before
    backend = SimBackend(refused)
    try:
        with pytest.raises(ValueError, match=message):
            run_on_backend(backend, make(path))
    finally:
        backend.close()
    later = Rate(2, 3, path=path, arrivals_mode="poisson")
    assert run_on_cluster(refused, later).deliveries == run_on_cluster(clean, later).deliveries
    assert refused.log.text() == clean.log.text()


@pytest.mark.parametrize("name", [5, b"run", ["run"]])
@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_a_name_that_is_not_text_is_refused_before_any_draw_or_step(
    name: object, clock: ClockMode
) -> None:
    """``name`` labels the result and its report files: one that is not a str is refused
    naming it, before the run draws its arrivals or moves the clock, rather than after the
    whole run."""
    cluster = _pooled()
    before = (cluster.now, cluster.log.text(), cluster.ctx.rng.getstate(), len(cluster.records))
    with pytest.raises(TypeError, match=r"^name: must be a str, got "):
        run_on_cluster(cluster, Burst(2), name=name)  # type: ignore[arg-type]
    backend = SimBackend(cluster, clock=clock)
    try:
        with pytest.raises(TypeError, match=r"^name: must be a str, got "):
            run_on_backend(backend, Rate(2, 3), name=name)  # type: ignore[arg-type]
    finally:
        backend.close()
    after = (cluster.now, cluster.log.text(), cluster.ctx.rng.getstate(), len(cluster.records))
    if clock == "virtual":  # a realtime clock moves on its own
        assert after == before
    assert len(cluster.records) == before[3]


class _Steps:
    """Counts the model's steps (``env.step``) on a cluster."""

    def __init__(self, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        step = cluster.env.step

        def counted() -> None:
            self.count += 1
            step()

        monkeypatch.setattr(cluster.env, "step", counted)


def test_the_sandboxclaim_path_waits_looking_at_one_claim_per_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait for the run's claims to complete is asked after every step of the model: it
    reads the first claim not yet seen completed, not every claim again (which made a burst's
    cost grow with its square: 30 million reads for 4,000 claims)."""
    burst = 40
    cluster = Cluster(seed=3, nodes=2)
    cluster.apply(default_pools_yaml(burst, pools=("base",)))
    cluster.wait_for_pool("base")
    api = cluster.world.api
    peek = api.peek
    looks = 0

    def counted(kind: str, namespace: str, name: str) -> object:
        nonlocal looks
        if kind == "SandboxClaim":  # the model reads claims from caches: these are the run's
            looks += 1
        return peek(kind, namespace, name)

    monkeypatch.setattr(api, "peek", counted)
    steps = _Steps(cluster, monkeypatch)
    result = run_on_cluster(cluster, Burst(burst, path="sandboxclaim"))
    assert len(result.delivered) == burst
    # One look per question (one per step, and one before the first), plus one per claim
    # seen completed.
    assert looks <= steps.count + 1 + burst, (looks, steps.count)


def test_the_e2b_path_waits_on_a_count_of_its_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the run's claims to end is asked after every step of the model: it reads
    a count the claims keep, not the state of every claim process again (which made a
    burst's cost grow with its square: 47 million looks for 4,000 claims)."""
    burst = 40
    cluster = Cluster(seed=3, nodes=2)
    cluster.apply(default_pools_yaml(burst, pools=("base",)))
    cluster.wait_for_pool("base")
    looks = 0
    triggered = simpy.events.Event.triggered

    def counted(event: simpy.events.Event) -> bool:
        nonlocal looks
        if isinstance(event, simpy.Process):
            looks += 1
        return bool(triggered.fget(event))  # type: ignore[attr-defined]

    monkeypatch.setattr(simpy.events.Event, "triggered", property(counted))
    steps = _Steps(cluster, monkeypatch)
    result = run_on_cluster(cluster, Burst(burst))
    assert len(result.delivered) == burst
    assert looks <= steps.count, (looks, steps.count)


def test_a_run_drives_the_model_under_the_simulation_collector_thresholds() -> None:
    """Its arrivals too, not only its waits: the model runs as Cluster.advance runs it
    (simulator.collector), whatever part of the run moves it."""
    cluster = _pooled()
    seen: list[int] = []

    def probe() -> Generator[simpy.Event, None, None]:
        while True:
            seen.append(gc.get_threshold()[0])
            yield cluster.env.timeout(0.5)

    cluster.env.process(probe())
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        run_on_cluster(cluster, Rate(1, 6))  # five seconds between its first and last
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*saved)
    assert len(seen) >= 10 and set(seen) == {YOUNG_THRESHOLD}
    assert after == (700, 10, 10)


def test_a_result_shows_counts_as_its_repr_and_its_description_as_str() -> None:
    """A notebook cell's value (repr) is one short line; ``print(result)`` gives describe()."""
    cluster = _bounded(1000)
    result = run_on_cluster(cluster, Burst(40))
    text = repr(result)
    assert len(text) < 200
    assert text.startswith(f"<DeliveryResult {result.name!r} {result.target} clock=virtual: ")
    assert "40 claims, 40 delivered (" in text
    assert str(result) == result.describe()
    assert len(result.deliveries) == 40  # the data stays

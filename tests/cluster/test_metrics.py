"""The cluster's Prometheus metrics (``Cluster.metrics_text``): upstream's names, counted as the
model runs, in virtual seconds."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from simulator.exposition import cluster_registry, exposition_text
from simulator.records import ClaimRecord
from tests.prometheus import Scrape

from .conftest import claim_yaml, pool_yaml

BASE = {"namespace": "default", "template": "base"}
E2B = {"path": "e2b", **BASE}
SET = {"namespace": "default", "sandboxset": "base"}


def delivered_in(rec: ClaimRecord) -> float:
    """The latency of a claim the test expects delivered."""
    assert rec.latency is not None, rec
    return rec.latency


def pool(replicas: int = 2, *, records_limit: int | None = None) -> Cluster:
    cluster = Cluster(seed=4, records_limit=records_limit)
    cluster.apply(pool_yaml(replicas=replicas))
    cluster.wait_for_pool("base")
    return cluster


def scrape(cluster: Cluster) -> Scrape:
    return Scrape(cluster.metrics_text())


def test_every_family_is_listed_with_upstreams_name_and_type_before_anything_is_counted() -> None:
    s = scrape(Cluster(seed=1))

    assert s.types == {
        "sandbox_claim_creation_responses": "counter",
        "sandbox_claim": "counter",
        "sandbox_claim_failures": "counter",
        "sandbox_claim_duration_seconds": "histogram",
        "sandbox_claim_retries": "histogram",
        "sandbox_pause": "counter",
        "sandbox_pause_duration_seconds": "histogram",
        "sandbox_resume": "counter",
        "sandbox_resume_duration_seconds": "histogram",
        "sandbox_delete": "counter",
        "sandbox_delete_duration_seconds": "histogram",
        "sandboxset_replicas": "gauge",
        "sandboxset_available_replicas": "gauge",
        "sandboxset_sandboxes_created": "counter",
        "sandboxset_sandboxes_claimed": "counter",
    }
    assert s.samples == {}


def test_warm_and_cold_claims_count_by_lock_type_with_their_latency() -> None:
    """Two warm claims empty a pool of two; the third is created on no stock."""
    cluster = pool(2)

    for _ in range(3):
        cluster.create_sandbox("base")

    s = scrape(cluster)
    assert s.value("sandbox_claim_creation_responses_total", code="201", **BASE) == 3
    assert s.value("sandbox_claim_total", lock_type="update", **E2B) == 2
    assert s.value("sandbox_claim_total", lock_type="create", **E2B) == 1
    warm = [delivered_in(r) for r in cluster.records if r.warm]
    cold = [delivered_in(r) for r in cluster.records if r.warm is False]
    duration = "sandbox_claim_duration_seconds"
    assert s.value(f"{duration}_count", lock_type="update", **E2B) == 2
    assert s.value(f"{duration}_sum", lock_type="update", **E2B) == pytest.approx(sum(warm))
    assert s.value(f"{duration}_sum", lock_type="create", **E2B) == pytest.approx(sum(cold))
    # Warm deliveries are sub-second, the cold one takes a pod start.
    assert s.value(f"{duration}_bucket", le="1.0", lock_type="update", **E2B) == 2
    assert s.value(f"{duration}_bucket", le="1.0", lock_type="create", **E2B) == 0
    assert s.value(f"{duration}_bucket", le="+Inf", lock_type="create", **E2B) == 1
    assert s.value("sandbox_claim_retries_bucket", le="0.0", **E2B) == 3
    assert s.value("sandboxset_sandboxes_claimed_total", **SET) == 2


def test_a_refused_create_counts_its_code_and_reason_not_a_claim() -> None:
    """Refused before any attempt, a create counts under ``template=""``: the name is the
    client's (here no pool's)."""
    cluster = pool(1)

    with pytest.raises(ClaimError):
        cluster.create_sandbox("nope")

    s = scrape(cluster)
    refused = {"namespace": "default", "template": ""}
    assert s.value("sandbox_claim_creation_responses_total", code="400", **refused) == 1
    assert s.value("sandbox_claim_failures_total", path="e2b", reason="NotFound", **refused) == 1
    assert s.total("sandbox_claim_total") == 0
    assert s.value("sandbox_claim_retries_count", path="e2b", **refused) == 1
    assert not [ls for ls in s.labels("sandbox_claim_failures_total") if ls["template"] == "nope"]


def test_clients_cannot_add_series_by_naming_templates_no_pool_has() -> None:
    """Each distinct unknown template (or a bad request naming one) is refused 400 and
    counted, but under one label set: what a client sends does not grow the exposition."""
    cluster = pool(1)
    with pytest.raises(ClaimError):
        cluster.create_sandbox("unknown-0")
    lines = len(cluster.metrics_text().splitlines())

    for i in range(1, 50):
        with pytest.raises(ClaimError):
            cluster.create_sandbox(f"unknown-{i}")
    with pytest.raises(ClaimError, match="timeout"):
        cluster.create_sandbox("base", timeout=5)  # 400 for the request, a pool's name

    text = cluster.metrics_text()
    s = Scrape(text)
    assert len(text.splitlines()) == lines + 1  # BadRequest: one more reason
    refused = {"namespace": "default", "template": ""}
    assert s.value("sandbox_claim_creation_responses_total", code="400", **refused) == 51
    assert s.value("sandbox_claim_failures_total", path="e2b", reason="BadRequest", **refused) == 1


def test_a_claim_retried_after_a_lock_conflict_counts_its_retry() -> None:
    cluster = pool(2)
    cluster.inject(
        "api_conflict", count=1, selector={"verb": "update", "client": "sandbox-manager"}
    )

    cluster.create_sandbox("base")

    assert cluster.last_record().retries == 1
    s = scrape(cluster)
    assert s.value("sandbox_claim_retries_count", **E2B) == 1
    assert s.value("sandbox_claim_retries_sum", **E2B) == 1
    assert s.value("sandbox_claim_retries_bucket", le="0.0", **E2B) == 0
    assert s.value("sandbox_claim_retries_bucket", le="1.0", **E2B) == 1
    assert s.value("sandbox_claim_total", lock_type="update", **E2B) == 1


def test_a_claim_that_fails_every_attempt_counts_its_code_and_retries() -> None:
    """HEAD's 10 attempts, each failing its ``/init``: one 500, nine retries."""
    cluster = pool(3)
    cluster.inject("runtime_init_failure")

    with pytest.raises(ClaimError) as err:
        cluster.create_sandbox("base")

    s = scrape(cluster)
    code = str(err.value.code)
    assert s.value("sandbox_claim_creation_responses_total", code=code, **BASE) == 1
    reason = cluster.last_record().error_reason or ""
    assert s.value("sandbox_claim_failures_total", reason=reason, **E2B) == 1
    assert s.value("sandbox_claim_retries_sum", **E2B) == 9
    # Each attempt took a pool sandbox out of its set before its /init failed.
    assert s.value("sandboxset_sandboxes_claimed_total", **SET) == 10


def test_sandboxclaim_attempts_count_under_their_own_path() -> None:
    cluster = pool(3)

    cluster.apply(claim_yaml("two", replicas=2))
    cluster.advance(5)

    s = scrape(cluster)
    claim = {"path": "sandboxclaim", **BASE}
    assert s.value("sandbox_claim_total", lock_type="update", **claim) == 2
    assert s.value("sandbox_claim_duration_seconds_count", lock_type="update", **claim) == 2
    assert s.total("sandbox_claim_creation_responses_total") == 0  # not an E2B create
    assert s.value("sandboxset_sandboxes_claimed_total", **SET) == 2


def test_counters_keep_counting_past_the_records_limit_and_a_clear() -> None:
    cluster = pool(2, records_limit=2)

    for _ in range(5):
        cluster.kill(cluster.sandbox_id(cluster.create_sandbox("base")))
    cluster.records.clear()
    cluster.create_sandbox("base")

    s = scrape(cluster)
    assert len(cluster.records) == 1
    assert s.value("sandbox_claim_creation_responses_total", code="201", **BASE) == 6
    assert s.total("sandbox_claim_total", **E2B) == 6
    assert s.total("sandbox_claim_duration_seconds_count", **E2B) == 6
    assert s.value("sandbox_delete_total", namespace="default", result="success") == 5


def available(cluster: Cluster) -> float:
    return scrape(cluster).value("sandboxset_available_replicas", **SET)


def test_sandboxset_gauges_follow_scaling_and_claims() -> None:
    cluster = pool(3)
    assert scrape(cluster).value("sandboxset_available_replicas", **SET) == 3

    cluster.create_sandbox("base")
    # The claimed sandbox left the set, then its replacement is made.
    assert cluster.run_until(lambda: available(cluster) == 2, timeout=5)
    assert cluster.run_until(lambda: available(cluster) == 3, timeout=60)
    assert scrape(cluster).value("sandboxset_sandboxes_created_total", **SET) == 4

    cluster.apply(pool_yaml(replicas=5))
    cluster.wait_for_pool("base")
    s = scrape(cluster)
    assert s.value("sandboxset_replicas", **SET) == 5
    assert s.value("sandboxset_available_replicas", **SET) == 5
    assert s.value("sandboxset_sandboxes_created_total", **SET) == 6

    cluster.apply(pool_yaml(replicas=1))
    cluster.advance(10)
    s = scrape(cluster)
    assert s.value("sandboxset_replicas", **SET) == s.value("sandboxset_available_replicas", **SET)
    assert s.value("sandboxset_replicas", **SET) == 1
    assert s.value("sandboxset_sandboxes_created_total", **SET) == 6  # a counter: never down

    cluster.delete("sbs", "base")
    cluster.advance(5)
    assert scrape(cluster).labels("sandboxset_replicas") == []


def test_pause_resume_and_delete_count_by_result_with_their_durations() -> None:
    cluster = pool(2)
    sid = cluster.sandbox_id(cluster.create_sandbox("base"))
    other = cluster.sandbox_id(cluster.create_sandbox("base"))

    cluster.pause(sid)
    cluster.pause(sid)  # already paused: writes nothing, answers 204 (reference §6.5)
    writes = {"client": "sandbox-manager", "verb": "update", "kind": "Sandbox"}
    cluster.inject("api_conflict", count=5, selector=writes)
    with pytest.raises(ClaimError) as err:
        cluster.pause(other)  # five conflicts: retry.RetryOnConflict gives up, 409
    assert err.value.code == 409
    cluster.connect(sid, 60)  # resumes it
    cluster.connect(sid, 60)  # running: no resume
    cluster.kill(sid)

    s = scrape(cluster)
    ns = {"namespace": "default"}
    assert s.value("sandbox_pause_total", result="success", **ns) == 2
    assert s.value("sandbox_pause_total", result="failure", **ns) == 1
    assert s.value("sandbox_pause_duration_seconds_count", **ns) == 2  # successes only
    assert s.value("sandbox_resume_total", result="success", **ns) == 1
    assert s.value("sandbox_resume_duration_seconds_sum", **ns) > 0
    assert s.value("sandbox_delete_total", result="success", **ns) == 1
    assert s.value("sandbox_delete_duration_seconds_count", **ns) == 1


def test_the_same_run_gives_the_same_text_and_scraping_changes_nothing() -> None:
    def run(scrapes: bool) -> tuple[str, str]:
        cluster = pool(2)
        for _ in range(3):
            cluster.create_sandbox("base")
            if scrapes:
                cluster.metrics_text()
        cluster.advance(5)
        return cluster.metrics_text(), cluster.log.text()

    assert run(scrapes=False) == run(scrapes=True)


def test_each_cluster_counts_its_own() -> None:
    one, two = pool(2), pool(2)

    one.create_sandbox("base")

    assert scrape(one).value("sandbox_claim_total", lock_type="update", **E2B) == 1
    assert scrape(two).total("sandbox_claim_total") == 0


def test_a_snapshot_keeps_the_counts_and_gauges_of_when_it_was_taken() -> None:
    """``metrics_snapshot`` is apart from the model: what runs after it changes the cluster's
    text, not the snapshot's (the server formats a snapshot after letting the model's lock go)."""
    cluster = pool(2)
    snapshot = cluster.metrics_snapshot()

    cluster.create_sandbox("base")
    assert cluster.run_until(
        lambda: cluster.get("sbs", "base").status.available_replicas < 2, timeout=5
    )

    then = Scrape(exposition_text(cluster_registry(snapshot)))
    now = scrape(cluster)
    assert then.total("sandbox_claim_total") == 0
    assert then.value("sandboxset_available_replicas", **SET) == 2
    assert now.total("sandbox_claim_total") == 1
    assert now.value("sandboxset_available_replicas", **SET) < 2

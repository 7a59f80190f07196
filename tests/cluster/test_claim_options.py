"""E2B create options: metadata, labels, listing, images, CSI mounts, failures (reference §5.5-§6.7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.pod import first_container_image
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.timeouts import LATEST
from simulator.cluster import Cluster

from .conftest import pool_yaml

BOB = "00000000-0000-4000-8000-00000000000b"


def test_metadata_becomes_annotations_and_label_prefix_labels(pooled: Cluster) -> None:
    """Plain metadata keys become annotations; ``label:`` keys become labels on sandbox and pod template."""
    sbx = pooled.create_sandbox("base", metadata={"userId": "u1", "label:app": "agent"})
    assert sbx.metadata.annotations["userId"] == "u1"
    assert sbx.metadata.labels["app"] == "agent"
    assert (sbx.spec.template or {})["metadata"]["labels"]["app"] == "agent"
    updated = json.loads(sbx.metadata.annotations[keys.ANN_UPDATED_METADATA_IN_CLAIM])
    assert "app" in updated["labels"] and "userId" in updated["annotations"]


def test_listing_by_metadata_and_pagination(pooled: Cluster) -> None:
    """List filters on annotations and pages with a next token until the last page."""
    for i in range(7):
        pooled.create_sandbox("base", metadata={"job": "a" if i % 2 == 0 else "b"})
    page, token = pooled.list_sandboxes(metadata={"job": "a"})
    assert len(page) == 4 and token is None
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page, token = pooled.list_sandboxes(limit=3, next_token=token)
        names += [s.metadata.name for s in page]
        pages += 1
        if token is None:
            break
    assert pages == 3 and len(names) == 7 == len(set(names))
    with pytest.raises(ClaimError) as err:
        pooled.list_sandboxes(limit=0)
    assert err.value.code == 400


def test_in_place_image_on_a_pooled_sandbox(pooled: Cluster) -> None:
    """The image extension updates the pooled sandbox in place and waits until it is ready."""
    sbx = pooled.create_sandbox(
        "base", metadata={"e2b.agents.kruise.io/image": "registry.example.com/sandbox:v2"}
    )
    rec = pooled.last_record()
    assert rec.warm is True and rec.ready is not None
    assert first_container_image(sbx.spec.template) == "registry.example.com/sandbox:v2"
    pod = pooled.get("pod", sbx.metadata.name)
    assert pod.spec["containers"][0]["image"] == "registry.example.com/sandbox:v2"


def test_new_image_on_no_stock_creation(cluster: Cluster) -> None:
    """Created on no stock, the new sandbox starts with the requested image."""
    cluster.apply(pool_yaml(replicas=0))
    cluster.advance(1)  # the manager learns of the pool through its cache
    sbx = cluster.create_sandbox(
        "base", metadata={"e2b.agents.kruise.io/image": "registry.example.com/sandbox:v3"}
    )
    assert cluster.last_record().warm is False
    pod = cluster.get("pod", sbx.metadata.name)
    assert pod.spec["containers"][0]["image"] == "registry.example.com/sandbox:v3"


def test_csi_volume_mounts(pooled: Cluster) -> None:
    """Volume mounts are mounted after init and persisted for re-mount."""
    sbx = pooled.create_sandbox("base", volume_mounts=[{"name": "pv-data", "path": "/data"}])
    rec = pooled.last_record()
    assert rec.mounted is not None and rec.mounted >= rec.runtime_initialized  # type: ignore[operator]
    mounts = json.loads(sbx.metadata.annotations[keys.ANN_CSI_VOLUME_CONFIG])
    assert mounts[0]["pvName"] == "pv-data" and mounts[0]["mountPath"] == "/data"


def test_csi_volume_config_is_read_as_upstream_decodes_it(pooled: Cluster) -> None:
    """The ``csi-volume-config`` key as Go's ``json.Unmarshal`` reads it: a key no field has is
    ignored, and a string given for ``readOnly`` is a 400 that claims nothing, not a read-only
    mount."""
    key = keys.ANN_CSI_VOLUME_CONFIG
    sbx = pooled.create_sandbox(
        "base", metadata={key: '[{"pvName":"pv1","mountPath":"/data","volumeHandle":"x"}]'}
    )
    assert sbx.metadata.annotations[key] == '[{"pvName":"pv1","mountPath":"/data"}]'
    writes = pooled.world.api.writes
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox(
            "base", metadata={key: '[{"pvName":"pv1","mountPath":"/data","readOnly":"yes"}]'}
        )
    assert err.value.code == 400 and err.value.field == key
    assert str(err.value) == (
        f"Bad extension param: {key}: [0].readOnly: must be true or false, not a JSON string"
    )
    assert pooled.world.api.writes == writes and pooled.last_record().error_code == 400


def test_csi_mount_failure_is_terminal(pooled: Cluster) -> None:
    """A CSI mount failure ends the claim at once with a 500 and deletes the sandbox."""
    pooled.inject("csi_mount_failure")
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox("base", volume_mounts=[{"name": "pv", "path": "/data"}])
    assert err.value.code == 500
    assert pooled.last_record().attempts == 1


def test_failed_sandbox_is_deleted_and_the_claim_retried(pooled: Cluster) -> None:
    """By default a sandbox that fails after the lock is deleted and the claim retries with another."""
    pooled.inject("runtime_init_failure", count=5)
    sbx = pooled.create_sandbox("base")
    rec = pooled.last_record()
    assert rec.attempts == 2
    assert sbx.metadata.name != ""
    assert not pooled.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})


def test_reserve_failed_sandbox_keeps_it(pooled: Cluster) -> None:
    """With reserve-failed-sandbox the failed sandbox stays, labelled, hidden from E2B."""
    pooled.inject("runtime_init_failure", count=5)
    pooled.create_sandbox("base", metadata={"e2b.agents.kruise.io/reserve-failed-sandbox": "true"})
    kept = pooled.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})
    assert len(kept) == 1
    page, _ = pooled.list_sandboxes()
    assert kept[0].metadata.name not in [s.metadata.name for s in page]


def test_a_reserved_failed_sandbox_is_hidden_from_describe_as_from_the_list() -> None:
    """Right after a create fails, the manager's cache may still hold the claimed, running copy
    of the sandbox it has just labelled reserved: describe and connect skip that copy (older
    than the manager's own write) as the list does, and answer 404 (reference §2, §6.7)."""
    cluster = Cluster(seed=5)
    cluster.apply(pool_yaml("small", replicas=2))
    cluster.wait_for_pool("small")
    kept = _reserve_a_failure(cluster)
    assert kept
    assert cluster.list_sandboxes(user=BOB) == ([], None)
    for sid in [cluster.sandbox_id(sbx) for sbx in kept]:
        with pytest.raises(ClaimError) as err:
            cluster.describe(sid, user=BOB)
        assert err.value.code == 404
        with pytest.raises(ClaimError) as err:
            cluster.connect(sid, 60, user=BOB)
        assert err.value.code == 404


def _reserve_a_failure(cluster: Cluster) -> list[Sandbox]:
    """Fail a create with reserve-failed-sandbox (its runtime init fails after the lock) and
    return the sandboxes it kept, as the API server holds them."""
    cluster.inject("runtime_init_failure", selector={"template": "small"})
    with pytest.raises(ClaimError):
        cluster.create_sandbox(
            "small",
            user=BOB,
            metadata={
                "e2b.agents.kruise.io/reserve-failed-sandbox": "true",
                "e2b.agents.kruise.io/claim-timeout-seconds": "5",
            },
        )
    cluster.clear_faults()
    return cluster.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})


@pytest.mark.parametrize("cleanup_enabled", [False, True], ids=["delete", "recycle"])
def test_a_reserved_failed_sandbox_survives_a_kill_within_the_watch_lag(
    cleanup_enabled: bool,
) -> None:
    """A kill right after a create failed, while the manager's cache still holds the claimed,
    running copy of the sandbox it has just labelled reserved, decides on a fresh read: the
    reserved failure answers 204 and stays, neither deleted nor (``cleanup-enabled``) recycled
    into its pool (reference §6.2 DELETE: "route known but sandbox not viewable ⇒ 204")."""
    manifest = pool_yaml("small", replicas=2)
    if cleanup_enabled:
        manifest = manifest.replace(
            "  template:\n",
            f'  template:\n    metadata:\n      annotations: {{{keys.ANN_CLEANUP_ENABLED}: "true"}}\n',
        )
    cluster = Cluster(seed=5)
    cluster.apply(manifest)
    cluster.wait_for_pool("small")
    kept = _reserve_a_failure(cluster)
    manager = cluster.manager
    cached = [manager.cache.get("Sandbox", "default", sbx.metadata.name) for sbx in kept]
    # The race this test is about: one cached copy predates the manager's reserve write.
    assert any(c is not None and not manager.claimer.is_fresh(c) for c in cached)
    for sbx in kept:
        cluster.kill(cluster.sandbox_id(sbx), user=BOB)
    cluster.advance(30)
    after = cluster.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})
    assert [s.metadata.uid for s in after] == [s.metadata.uid for s in kept]
    assert all(s.metadata.deletion_timestamp is None for s in after)
    assert all(keys.ANN_CLEANUP not in s.metadata.annotations for s in after)
    assert not cluster.log.of_kind("manager.kill") and not cluster.log.of_kind("manager.recycle")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("e2b.agents.kruise.io/claim-timeout-seconds", "abc"),
        ("e2b.agents.kruise.io/never-timeout", "maybe"),
        ("e2b.agents.kruise.io/image", "Not A Valid Image!!"),
        ("e2b.agents.kruise.io/cpu-request", "-1"),
        ("e2b.agents.kruise.io/sandbox-name", "x"),
        ("agents.kruise.io/owner", "me"),
        ("label:agents.kruise.io/x", "y"),
    ],
)
def test_bad_extension_values_are_400_and_change_nothing(
    pooled: Cluster, key: str, value: str
) -> None:
    """A bad extension value answers 400 naming the key, and no object changes."""
    writes = pooled.world.api.writes
    before = pooled.log.text()
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox("base", metadata={key: value})
    assert err.value.code == 400
    assert key.split("/")[-1].split(":")[-1] in str(err.value) or key in str(err.value)
    assert pooled.world.api.writes == writes
    assert pooled.log.text().startswith(before)


def test_timeout_out_of_range_is_400(pooled: Cluster) -> None:
    """A create timeout under 30 s or over 30 days answers 400."""
    for bad in (5, 2_592_001):
        with pytest.raises(ClaimError) as err:
            pooled.create_sandbox("base", timeout=bad)
        assert err.value.code == 400


def test_a_reserve_whose_conflict_reread_fails_is_a_failed_cleanup() -> None:
    """§5.2 step 7 under RetryOnConflict: the reserve write meets a 409 and the re-read then
    fails, so the cleanup fails (#410: the sandbox stays as it was) and says so."""
    cluster = Cluster(seed=3)
    cluster.apply(pool_yaml("py", replicas=1))
    cluster.wait_for_pool("py")
    t0 = cluster.now
    cluster.inject("runtime_init_failure", code=500)  # the attempt fails after its lock
    mgr = {"client": "sandbox-manager", "kind": "Sandbox"}
    cluster.inject("api_conflict", selector={**mgr, "verb": "update"}, start=t0 + 0.5, count=1)
    cluster.inject("api_error", selector={**mgr, "verb": "get"}, start=t0 + 0.5, count=1)
    cluster.create_sandboxes(
        1,
        "py",
        metadata={
            "e2b.agents.kruise.io/reserve-failed-sandbox": "true",
            "e2b.agents.kruise.io/create-on-no-stock": "false",
            "e2b.agents.kruise.io/claim-timeout-seconds": "5",
        },
    )
    failed = [e.detail for e in cluster.log.of_kind("claim.post_failed")]
    cleaned = [e.detail for e in cluster.log.of_kind("claim.cleanup_failed")]
    first = failed[0].split()[1]
    assert cleaned[0] == f"manager {first} 500"


def test_env_vars_that_would_overflow_the_annotations_are_400(pooled: Cluster) -> None:
    """Env vars are stored in the sandbox's annotations (the init-runtime request): past the API
    server's 256 KiB the lock write would be refused, so the create is, naming envVars."""
    writes = pooled.world.api.writes
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox("base", env_vars={"BIG": "x" * 200_000, "B2": "y" * 100_000})
    assert err.value.code == 400
    assert "envVars" in str(err.value) and "256 KiB" in str(err.value)
    assert pooled.world.api.writes == writes
    assert isinstance(pooled.create_sandbox("base", env_vars={"SMALL": "x" * 1000}), Sandbox)


V2 = "registry.example.com/sandbox:v2"


RESERVE = "e2b.agents.kruise.io/reserve-failed-sandbox"
RESERVE_FOR = "e2b.agents.kruise.io/reserve-failed-sandbox-for"


@pytest.mark.parametrize(
    ("reserve", "until"),
    [
        ({RESERVE: "true"}, ("claim.locked", 60.0)),
        ({RESERVE_FOR: "forever"}, ("claim.locked", 60.0)),
        ({RESERVE_FOR: "2m"}, ("claim.post_failed", 120.0)),
        ({RESERVE: "true", "e2b.agents.kruise.io/never-timeout": "true"}, None),
    ],
    ids=["true", "forever", "2m", "never-timeout"],
)
def test_a_reserved_failed_sandbox_is_kept_until_its_shutdown_time(
    pooled: Cluster, reserve: dict[str, str], until: tuple[str, float] | None
) -> None:
    """Reserved, a sandbox whose claim failed is labelled and kept instead of deleted, but not
    for ever (reference §5.2 step 7): ``true`` or ``forever`` keeps the ``shutdownTime`` the
    claim wrote (the create's ``timeout``, 60 s here, from its lock), a duration replaces it
    (from the failure), and the Sandbox controller deletes the sandbox then. Only a sandbox
    with no timeout (``never-timeout``) stays."""
    pooled.inject("image_pull_failure", selector={"image": V2})
    metadata = {
        "e2b.agents.kruise.io/image": V2,
        "e2b.agents.kruise.io/claim-timeout-seconds": "4",  # one attempt
        "e2b.agents.kruise.io/wait-ready-timeout-seconds": "3",
        **reserve,
    }
    with pytest.raises(ClaimError):
        pooled.create_sandbox("base", timeout=60, metadata=metadata)
    reserved = {keys.LABEL_RESERVED_FAILED: "true"}
    (kept,) = pooled.list("sbx", "default", labels=reserved)
    shutdown = kept.spec.shutdown_time
    if until is None:
        assert shutdown is None
        pooled.advance(3600)
        assert pooled.list("sbx", "default", labels=reserved)
        return
    assert shutdown is not None
    (since,) = pooled.log.of_kind(until[0])
    at = (shutdown - pooled.now_dt()).total_seconds() + pooled.now
    assert since.time + until[1] - 1 <= at <= since.time + until[1]  # whole seconds
    pooled.run_until(lambda: not pooled.list("sbx", "default", labels=reserved), timeout=600)
    assert at <= pooled.now < at + 5


def test_a_reservation_past_the_last_date_keeps_the_failed_sandbox_until_then() -> None:
    """A failed claim's reservation ends at the latest ``9999-12-31T23:59:59Z``, as every
    deadline here does (docs/fidelity.md, Dates): on a clock near the year 9900 a
    ``reserve-failed-sandbox-for`` of 228 years (a Go duration holds 292) still reserves
    the sandbox, and the create answers its claim error.

    Before, ``now + d`` overflowed: the create raised ``OverflowError`` and the locked
    sandbox was neither reserved nor deleted, claimed by nobody for ever."""
    cluster = Cluster(seed=11, nodes=1, epoch=datetime(9800, 1, 1, tzinfo=UTC))
    cluster.apply(pool_yaml(replicas=1, agent_runtime=False))  # every /init fails
    cluster.wait_for_pool("base")
    metadata = {
        RESERVE_FOR: "2000000h",
        "e2b.agents.kruise.io/claim-timeout-seconds": "4",  # one attempt
    }
    with pytest.raises(ClaimError) as err:
        cluster.create_sandbox("base", metadata=metadata)
    assert err.value.code == 500
    (kept,) = cluster.list("sbx", "default", labels={keys.LABEL_RESERVED_FAILED: "true"})
    assert kept.spec.shutdown_time == LATEST

"""Specification of the E2B view of a claimed sandbox (reference §6.3)."""

from __future__ import annotations

from datetime import timedelta

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.claiming.extensions import KEY_SANDBOX_IP
from pytest_kruise_agents.claiming.modification import InitRuntimeRequest
from pytest_kruise_agents.claiming.view import (
    e2b_state,
    init_request,
    sandbox_id,
    sandbox_id_keys,
    sandbox_view,
    split_sandbox_id,
    template_resources,
)

from .builders import NOW, make_sandbox

CLAIMED = {
    keys.ANN_CLAIM_TIMESTAMP: "2026-01-01T00:00:00Z",
    keys.ANN_OWNER: "alice",
    "user-key": "v",
    keys.ANN_INIT_RUNTIME_REQUEST: InitRuntimeRequest({"A": "1"}, "tok").to_json(),
    keys.ANN_RUNTIME_ACCESS_TOKEN: "tok",
}
TEMPLATE = {
    "spec": {
        "containers": [
            {
                "name": "c",
                "resources": {
                    "requests": {"cpu": "500m", "memory": "512Mi"},
                    "limits": {"cpu": "2", "memory": "1Gi", "ephemeral-storage": "10Gi"},
                },
            }
        ]
    }
}


def test_sandbox_id_is_namespace_double_dash_name_and_splits_back() -> None:
    sbx = make_sandbox("demo-x1", namespace="team-a")
    assert sandbox_id(sbx) == "team-a--demo-x1"
    assert split_sandbox_id("team-a--demo-x1") == ("team-a", "demo-x1")
    assert split_sandbox_id("no-separator") is None
    assert split_sandbox_id("--name") is None


def test_an_id_reads_as_every_namespace_and_name_it_could_be_the_id_of() -> None:
    """A namespace or a name may hold '--' itself: upstream finds a sandbox by its id in a
    route table keyed by the id, so every split of the id is a reading to look up."""
    sbx = make_sandbox("base-x1", namespace="team--x")
    assert sandbox_id(sbx) == "team--x--base-x1"
    assert sandbox_id_keys(sandbox_id(sbx)) == [("team", "x--base-x1"), ("team--x", "base-x1")]
    assert sandbox_id_keys("team-a--demo-x1") == [("team-a", "demo-x1")]
    assert sandbox_id_keys("a---b") == [("a", "-b"), ("a-", "b")]
    assert sandbox_id_keys("no-separator") == []
    assert sandbox_id_keys("--name") == sandbox_id_keys("ns--") == []


def test_a_sub_core_cpu_counts_as_one_core() -> None:
    """``cpuCount`` is at least 1 (docs/fidelity.md: upstream's 500m / 1000 is 0, which E2B's
    schema does not allow); whole cores are whole millicores / 1000, limits before requests."""
    half = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}]}}
    assert template_resources(half) == (1, 0, 0)
    both = {"limits": {"cpu": "2500m"}, "requests": {"cpu": "4"}}
    assert template_resources({"spec": {"containers": [{"resources": both}]}})[0] == 2
    assert template_resources(None) == (1, 0, 0)


def test_pool_sandboxes_are_not_shown() -> None:
    assert sandbox_view(make_sandbox(), NOW) is None


def test_claimed_running_sandbox_view() -> None:
    sbx = make_sandbox(
        owned=False,
        annotations=CLAIMED,
        labels={"app": "x"},
        shutdown=NOW + timedelta(minutes=5),
        template=TEMPLATE,
    )
    view = sandbox_view(sbx, NOW)
    assert view is not None
    assert view.state == "running"
    assert view.template_id == "demo"
    assert (view.cpu_count, view.memory_mb, view.disk_size_mb) == (2, 1024, 10240)
    assert view.end_at == NOW + timedelta(minutes=5)
    assert view.started_at is not None and view.started_at.year == 2026
    assert view.envd_access_token == "tok"
    assert view.owner == "alice"
    # Non-reserved labels and annotations, plus the response-only resource key.
    assert view.metadata == {
        "app": "x",
        "user-key": "v",
        "e2b.agents.kruise.io/sandbox-resource": "default/demo-abc12",
    }


def test_end_is_the_pause_time_when_auto_pausing() -> None:
    sbx = make_sandbox(
        owned=False,
        annotations=CLAIMED,
        shutdown=NOW + timedelta(days=365),
        pause_time=NOW + timedelta(minutes=1),
    )
    view = sandbox_view(sbx, NOW)
    assert view is not None
    assert view.end_at == NOW + timedelta(minutes=1)
    assert view.auto_pause


def test_paused_and_claimed_not_ready_states() -> None:
    paused = make_sandbox(owned=False, annotations=CLAIMED, paused=True)
    assert e2b_state(paused, NOW) == "paused"
    not_ready = make_sandbox(owned=False, annotations=CLAIMED, ready=False)
    assert e2b_state(not_ready, NOW) == "running"
    dead = make_sandbox(owned=False, annotations=CLAIMED, shutdown=NOW - timedelta(seconds=1))
    assert sandbox_view(dead, NOW) is None


def test_a_sandbox_that_asked_for_its_ip_shows_it_when_it_has_one() -> None:
    """``return-sandbox-ip`` adds the response-only ``sandbox-ip`` key with the pod IP; a sandbox
    without an IP shows no such key (never an empty or null value)."""
    asked = {**CLAIMED, keys.ANN_RETURN_SANDBOX_IP: "true"}
    view = sandbox_view(make_sandbox(owned=False, annotations=asked, ip="10.0.0.7"), NOW)
    assert view is not None and view.metadata[KEY_SANDBOX_IP] == "10.0.0.7"
    assert keys.ANN_RETURN_SANDBOX_IP not in view.metadata  # a reserved key is not shown
    no_ip = sandbox_view(make_sandbox(owned=False, annotations=asked, ip=None), NOW)
    assert no_ip is not None and KEY_SANDBOX_IP not in no_ip.metadata
    unasked = sandbox_view(make_sandbox(owned=False, annotations=CLAIMED), NOW)
    assert unasked is not None and KEY_SANDBOX_IP not in unasked.metadata


def test_a_sandbox_a_kill_asked_to_recycle_reads_paused() -> None:
    """From the kill's trigger on, a recycle-enabled sandbox is its caller's no longer: it reads
    ``paused`` though its pod still runs (docs/fidelity.md)."""
    triggered = {**CLAIMED, keys.ANN_CLEANUP_ENABLED: "true", keys.ANN_CLEANUP: "true"}
    assert e2b_state(make_sandbox(owned=False, annotations=triggered), NOW) == "paused"
    enabled = {**CLAIMED, keys.ANN_CLEANUP_ENABLED: "true"}
    assert e2b_state(make_sandbox(owned=False, annotations=enabled), NOW) == "running"


def test_the_token_and_template_fall_back_to_the_init_request_and_the_pool() -> None:
    """Without the access-token annotation the token is the persisted init request's; without
    the sandbox-template label the template id is the pool's."""
    annotations = {k: v for k, v in CLAIMED.items() if k != keys.ANN_RUNTIME_ACCESS_TOKEN}
    sbx = make_sandbox(owned=False, annotations=annotations)
    del sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE]
    sbx.metadata.labels[keys.LABEL_SANDBOX_POOL] = "pool-a"
    view = sandbox_view(sbx, NOW)
    assert view is not None
    assert (view.envd_access_token, view.template_id) == ("tok", "pool-a")


def test_init_request_is_read_back_and_bad_json_is_ignored() -> None:
    sbx = make_sandbox(owned=False, annotations=CLAIMED)
    req = init_request(sbx)
    assert req is not None
    assert (req.env_vars, req.access_token) == ({"A": "1"}, "tok")
    broken = make_sandbox(owned=False, annotations={keys.ANN_INIT_RUNTIME_REQUEST: "{"})
    assert init_request(broken) is None

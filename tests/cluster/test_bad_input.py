"""Bad manifests and calls raise one clear typed error and leave the cluster unchanged."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from simulator.context import CLOCK_END
from simulator.errors import NotFoundError
from simulator.faults import Fault
from simulator.nodes import MAX_NODES

from .conftest import claim_yaml, pool_yaml


def snapshot(cluster: Cluster) -> tuple[int, int]:
    return cluster.world.api.writes, len(cluster.log)


def assert_refused(cluster: Cluster, manifest: str, field: str, reason: str) -> None:
    """Applying ``manifest`` raises one InvalidError naming ``field`` and starting with
    ``reason``, and changes nothing."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.apply(manifest)
    assert err.value.field == field
    assert err.value.reason.startswith(reason)
    assert snapshot(cluster) == before


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        (pool_yaml(replicas=-1), "spec.replicas"),
        (claim_yaml("c", replicas=0), "spec.replicas"),
        (claim_yaml("c", claimTimeout="abc"), "spec.claimTimeout"),
        (claim_yaml("c", claimTimeout="500ms"), "spec.claimTimeout"),
        (claim_yaml("c", waitReadyTimeout="0s"), "spec.waitReadyTimeout"),
        (claim_yaml("c", unknownField=1), "spec.unknownField"),
        ("kind: Nope\napiVersion: v1\nmetadata: {name: x}\n", "kind"),
        ("{not: [valid", "manifest"),
    ],
)
def test_invalid_manifests(cluster: Cluster, manifest: str, field: str) -> None:
    """Each invalid manifest names the field and changes nothing."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.apply(manifest)
    assert field in err.value.field
    assert err.value.reason
    assert snapshot(cluster) == before


_CONTAINER = "SandboxSet/base spec.template.spec.containers[0]"


@pytest.mark.parametrize(
    ("manifest", "field", "reason"),
    [
        (pool_yaml(cpu="lots"), f"{_CONTAINER}.resources.requests.cpu", "invalid quantity 'lots'"),
        (
            pool_yaml(cpu="2").replace("512Mi}", "512Mi}\n            limits: {cpu: '1'}"),
            f"{_CONTAINER}.resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1',
        ),
        (
            pool_yaml(cpu="-4"),
            f"{_CONTAINER}.resources.requests.cpu",
            "must be greater than or equal to 0, got '-4'",
        ),
        (
            pool_yaml(memory="-1Gi"),
            f"{_CONTAINER}.resources.requests.memory",
            "must be greater than or equal to 0, got '-1Gi'",
        ),
    ],
)
def test_pod_template_resources_are_checked_on_apply(
    cluster: Cluster, manifest: str, field: str, reason: str
) -> None:
    """A quantity that does not parse, a negative one (which would let the scheduler
    overcommit a node), or a request above its limit, is refused at apply, naming it."""
    assert_refused(cluster, manifest, field, reason)


def lone_sandbox(template: str) -> str:
    """A Sandbox manifest with its own pod template (flow-style YAML)."""
    return (
        "apiVersion: agents.kruise.io/v1alpha1\nkind: Sandbox\n"
        f"metadata: {{name: lone}}\nspec: {{template: {template}}}\n"
    )


def pool_with(fragment: str) -> str:
    """The pool manifest with ``fragment`` added to its pod spec."""
    return pool_yaml().replace("      containers:\n", f"      {fragment}\n      containers:\n")


_LONE = "Sandbox/lone spec.template"


@pytest.mark.parametrize(
    ("manifest", "field", "reason"),
    [
        (
            lone_sandbox("{spec: {containers: [main]}}"),
            f"{_LONE}.spec.containers[0]",
            "must be an object",
        ),
        (lone_sandbox("{spec: [x]}"), f"{_LONE}.spec", "must be an object, got a list"),
        (
            lone_sandbox("{metadata: {labels: {1: a}}, spec: {containers: [{name: m, image: i}]}}"),
            f"{_LONE}.metadata.labels",
            "a key must be a string, got 1",
        ),
        (
            pool_with("nodeSelector: {1: a, b: c}"),
            "SandboxSet/base spec.template.spec.nodeSelector",
            "a key must be a string, got 1",
        ),
        (
            pool_yaml(image="{0: x, a: y}"),
            f"{_CONTAINER}.image",
            "a key must be a string, got 0",
        ),
        (pool_yaml(image="5"), f"{_CONTAINER}.image", "must be a string, got 5"),
        (
            pool_yaml(image="'  '"),
            f"{_CONTAINER}.image",
            "must not have leading or trailing whitespace",
        ),
    ],
)
def test_a_template_no_pod_could_be_made_from_is_refused_on_apply(
    pooled: Cluster, manifest: str, field: str, reason: str
) -> None:
    """A Sandbox's template is checked as a pool's, and mapping keys are strings: such a
    template, once accepted, stopped the controllers for good. Refused, the cluster runs on."""
    assert_refused(pooled, manifest, field, reason)
    pooled.advance(30)
    assert pooled.get("sbs", "base").status.available_replicas == 5


def test_one_bad_document_rejects_the_whole_apply(cluster: Cluster) -> None:
    """A multi-document apply with one bad document applies none of them."""
    before = snapshot(cluster)
    with pytest.raises(InvalidError):
        cluster.apply(pool_yaml() + "---\n" + claim_yaml("c", replicas=0))
    assert snapshot(cluster) == before
    assert cluster.list("sbs") == []


def test_claim_replicas_are_immutable(pooled: Cluster) -> None:
    """Changing a SandboxClaim's replicas is refused."""
    pooled.apply(claim_yaml("c", replicas=1))
    with pytest.raises(InvalidError, match="immutable"):
        pooled.apply(claim_yaml("c", replicas=2))


def test_unknown_objects_and_bad_calls(cluster: Cluster) -> None:
    """Reads of missing objects raise NotFoundError; bad arguments raise InvalidError."""
    with pytest.raises(
        NotFoundError, match=r'^sandboxes "ghost" not found in namespace "default"$'
    ):
        cluster.get("sbx", "ghost")
    with pytest.raises(NotFoundError, match=r'^sandboxtemplates "ghost" not found'):
        cluster.get("sbt", "ghost")
    with pytest.raises(InvalidError):
        cluster.get("widgets", "x")
    with pytest.raises(InvalidError):
        cluster.advance(-1)
    with pytest.raises(InvalidError):
        cluster.inject("no_such_fault")
    with pytest.raises(InvalidError):
        cluster.set_latency("no.such.latency", "1s")


def test_time_arguments_are_finite_and_not_negative(cluster: Cluster) -> None:
    """``advance(0)`` runs what is due now; negative or non-finite times are refused by name."""
    cluster.advance(0)
    assert cluster.now == 0
    for bad in (float("nan"), float("inf"), 10**400):  # 10**400: past what a float holds
        with pytest.raises(InvalidError) as err:
            cluster.advance(bad)
        assert err.value.field == "seconds"
    with pytest.raises(
        InvalidError, match=r"finite number of seconds, got 1000.*\(401 characters\)"
    ):
        cluster.run_until(lambda: False, timeout=10**400)
    for far in (3e11, 1e300):  # ten thousand years, and far past what a date holds
        with pytest.raises(InvalidError) as err:
            cluster.advance(far)
        # The one limit there is, whatever the step: not the calendar's end for a big one.
        assert err.value.reason.startswith(
            "would move the clock past 9900-01-24T23:59:59Z: deadlines up to 100 years"
        )
    assert cluster.now == 0
    assert cluster.run_until(lambda: False, timeout=0) is False
    with pytest.raises(InvalidError) as err:
        cluster.run_until(lambda: False, timeout=-1)
    assert (err.value.field, err.value.reason) == ("timeout", "must be >= 0, got -1")


def test_a_step_too_small_for_the_clock_runs_what_is_due_now(cluster: Cluster) -> None:
    """At t=100, 1e-15 s rounds back to 100: ``advance`` runs what is due, as ``advance(0)``."""
    cluster.advance(100)
    hits: list[float] = []
    due = cluster.env.timeout(0)
    due.callbacks.append(lambda _: hits.append(cluster.now))
    cluster.advance(1e-15)
    assert (cluster.now, hits) == (100, [100])
    cluster.advance(1e-6)
    assert cluster.now == 100 + 1e-6


def test_a_clock_past_its_end_still_runs_what_is_due_now() -> None:
    """``advance(0)`` moves no time: it runs what is due even on a clock already past
    :data:`CLOCK_END` (run there by other means); any step forward is still refused."""
    cluster = Cluster(seed=1, nodes=1, epoch=CLOCK_END - timedelta(seconds=10))
    cluster.env.run(until=20)  # the model run on, not through advance
    hits: list[float] = []
    due = cluster.env.timeout(0)
    due.callbacks.append(lambda _: hits.append(cluster.now))
    cluster.advance(0)
    assert (cluster.now, hits) == (20, [20])
    with pytest.raises(
        InvalidError, match="seconds: would move the clock past 9900-01-24T23:59:59Z: "
    ):
        cluster.advance(1)
    assert cluster.now == 20


def test_an_epoch_is_refused_from_the_clock_end_and_the_error_names_that_instant() -> None:
    """``epoch`` must come before :data:`CLOCK_END`, 9900-01-24T23:59:59Z, the instant: an
    epoch earlier that day is taken, and the refusal of a later one names the instant (not
    the day, which reads as if the whole of 9900-01-24 were refused)."""
    Cluster(seed=1, nodes=1, epoch=CLOCK_END - timedelta(hours=12))
    with pytest.raises(InvalidError) as err:
        Cluster(seed=1, nodes=1, epoch=CLOCK_END)
    assert err.value.field == "epoch"
    assert err.value.reason.startswith("must be before 9900-01-24T23:59:59Z (CLOCK_END), got ")


def test_running_from_python_stops_at_the_clock_end() -> None:
    """``run_until``, ``wait_for_pool`` and ``run`` never move the clock past
    :data:`CLOCK_END`: what they wait for by then raises InvalidError, the clock short of it."""
    cluster = Cluster(seed=1, nodes=1, epoch=CLOCK_END - timedelta(seconds=10))
    end = cluster.ctx.clock_end()
    ticks = cluster.env.timeout(30)  # an event beyond the end
    with pytest.raises(InvalidError, match="timeout: the call needs the clock past 9900-01-24"):
        cluster.run_until(lambda: ticks.processed, timeout=60)
    assert cluster.now <= end
    assert cluster.run_until(lambda: False, timeout=9.5) is False  # within the end: as before
    cluster.apply(pool_yaml(replicas=1))
    with pytest.raises(InvalidError, match="timeout: the call needs the clock past"):
        cluster.wait_for_pool("base", timeout=600)  # a pull and a start take over half a second
    assert cluster.now <= end

    def waits() -> Any:
        yield cluster.env.timeout(60)

    with pytest.raises(InvalidError, match="clock: the call needs the clock past"):
        cluster.run(waits())
    assert cluster.now <= end


def test_run_until_with_no_time_only_checks(cluster: Cluster) -> None:
    """``run_until(pred, timeout=0)`` runs nothing, not even an event due now; it checks once."""
    hits: list[float] = []
    due = cluster.env.timeout(0)
    due.callbacks.append(lambda _: hits.append(cluster.now))
    calls: list[None] = []

    def predicate() -> bool:
        calls.append(None)
        return bool(hits)

    assert cluster.run_until(predicate, timeout=0) is False
    assert (hits, len(calls), cluster.env.peek()) == ([], 1, 0)
    assert cluster.run_until(predicate, timeout=1) is True  # with time, what is due runs
    assert hits == [0]


TOO_MANY = f"must be at most {MAX_NODES} (Kubernetes' supported cluster size),"


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"profile": "openkruise-hed"}, "profile", "did you mean 'openkruise-head'"),
        ({"profile": None}, "profile", "must be a profile name or a Profile, got None"),
        ({"profile": 3}, "profile", "must be a profile name or a Profile, got 3"),
        ({"claim_worker": 10}, "knobs", "did you mean 'claim_workers'"),
        ({"claim_workers": 0}, "knobs", "claim_workers"),
        (
            {"fixed_retry_attempts": -1},
            "knobs",
            "'fixed_retry_attempts': must be a whole number from 1",
        ),
        ({"default_timeout_s": 10.0}, "knobs", "'default_timeout_s': must be a whole number"),
        ({"candidate_count": 10**30}, "knobs", "'candidate_count': must be a whole number from"),
        ({"pause_pod_grace_s": float("inf")}, "knobs", "'pause_pod_grace_s': must be a number"),
        ({"e2b_default_claim_timeout_s": 1e300}, "knobs", "at most 9223372036"),
        ({"latencies": {"image.pul": "1s"}}, "latencies.image.pul", "did you mean 'image.pull'"),
        ({"latencies": {5: "1s"}}, "latencies", "latency names must be strings, got 5"),
        ({"nodes": [{"name": "n", "cpu": "lots"}]}, "nodes[0].cpu", "invalid quantity"),
        ({"nodes": [{"name": "n"}, {"name": "n"}]}, "nodes[1].name", "'n' is given twice"),
        (
            {"latencies": [("pod.create", "1s")]},
            "latencies",
            "must be a mapping of latency name to distribution",
        ),
        ({"log": "no"}, "log", "must be true or false, got 'no'"),
    ],
)
def test_a_cluster_with_bad_arguments_names_them(
    kwargs: dict[str, Any], field: str, reason: str
) -> None:
    """Profile, knobs, latencies and nodes are checked as manifests are: InvalidError by field."""
    with pytest.raises(InvalidError) as err:
        Cluster(seed=1, **kwargs)
    assert err.value.field == field
    assert reason in err.value.reason


@pytest.mark.parametrize("key", ["claim-timeout-seconds", "wait-ready-timeout-seconds"])
def test_a_negative_timeout_no_go_int_holds_is_a_400_not_ignored(pooled: Cluster, key: str) -> None:
    """A timeout that is no int64 is upstream's parse error (``strconv.Atoi``: value out of
    range), a 400 naming the key, below zero as above it; only a negative one that parses is
    ignored (reference §5.5: "> 0 else ignored"). Before, every negative value was ignored,
    so the create claimed a sandbox that upstream refuses to claim."""
    writes = pooled.world.api.writes
    extension = f"e2b.agents.kruise.io/{key}"
    with pytest.raises(ClaimError) as err:
        pooled.create_sandbox("base", metadata={extension: "-9223372036854775809"})
    assert err.value.code == 400 and err.value.field == extension
    assert str(err.value) == (
        f"Bad extension param: {extension}: -9223372036854775809 is out of range (a Go int64)"
    )
    assert pooled.world.api.writes == writes
    kept = pooled.create_sandbox("base", metadata={extension: "-9223372036854775808"})
    assert isinstance(kept, Sandbox)


def test_bad_call_arguments_are_400_and_change_nothing(pooled: Cluster) -> None:
    """A timeout beyond a Go duration, a non-string metadata value, a negative pause retention."""
    writes = pooled.world.api.writes
    for key in ("claim-timeout-seconds", "wait-ready-timeout-seconds"):
        with pytest.raises(ClaimError) as err:
            pooled.create_sandbox("base", metadata={f"e2b.agents.kruise.io/{key}": "9" * 20})
        assert err.value.code == 400 and "out of range" in str(err.value)
    # A value of the wrong kind is a wrong argument, as a wrong env var value is: named, and
    # no claim starts (no record).
    records = len(pooled.records)
    with pytest.raises(InvalidError) as invalid:
        pooled.create_sandbox("base", metadata={"a": 1})  # type: ignore[dict-item]
    assert invalid.value.field == "metadata" and "must be strings" in str(invalid.value)
    assert len(pooled.records) == records
    assert pooled.world.api.writes == writes
    sbx = pooled.create_sandbox("base", timeout=600)
    writes = pooled.world.api.writes
    with pytest.raises(ClaimError) as err:
        pooled.pause(f"default--{sbx.metadata.name}", retention=timedelta(seconds=-5))
    assert err.value.code == 400 and "retention" in str(err.value)
    assert pooled.world.api.writes == writes


@pytest.mark.parametrize(
    ("fault", "field", "reason"),
    [
        ({"kind": "meteor_strike"}, "kind", "unsupported value 'meteor_strike': must be"),
        ({"kind": "api_error", "probability": 7}, "probability", "must be <= 1.0, got 7"),
        ({"kind": "api_error", "colour": "red"}, "colour", "unknown field"),
        ({"kind": "api_error", "selectr": {}}, "selectr", "did you mean 'selector'?"),
        ({"kind": "api_latency"}, "latency", "a fault of kind 'api_latency' needs a latency"),
        (
            {"kind": "api_error", "latency": "1s"},
            "latency",
            "a fault of kind 'api_error' takes no latency",
        ),
        (
            {"kind": "watch_lag", "selector": {"informr": "sandbox-manager"}},
            "selector",
            "a fault of kind 'watch_lag' has no selector key 'informr' (it selects by informer)",
        ),
        (
            {"kind": "pod_kill", "selector": {"verb": "update"}},
            "selector",
            "a fault of kind 'pod_kill' has no selector key 'verb'",
        ),
        (
            {"kind": "watch_lag", "selector": {"informer": "manager"}},
            "selector",
            "informer='manager' names nothing: use one of agent-sandbox-controller",
        ),
        ({"kind": "api_conflict", "selector": {"verb": "put"}}, "selector", "verb='put'"),
        ({"kind": "api_error", "selector": {"client": "kubelet/"}}, "selector", "client="),
        ({"kind": "controller_stall", "selector": {"controller": "kubelets"}}, "selector", ""),
        # Numbers are not converted from other kinds of value.
        ({"kind": "api_error", "probability": True}, "probability", "must be a number, got True"),
        ({"kind": "api_error", "probability": "0.5"}, "probability", "must be a number"),
        ({"kind": "node_loss", "start": True}, "start", "got the boolean true"),
        ({"kind": "node_loss", "duration": False}, "duration", "got the boolean false"),
        ({"kind": "api_error", "code": True}, "code", "must be an integer, got True"),
        ({"kind": "api_error", "code": "503"}, "code", "must be an integer"),
        ({"kind": "pod_kill", "count": True}, "count", "must be an integer"),
        # A code is a status the kind can answer.
        ({"kind": "api_error", "code": 200}, "code", "answers 429 or a 5xx status, got 200"),
        ({"kind": "api_error", "code": 404}, "code", "answers 429 or a 5xx status"),
        ({"kind": "api_error", "code": -1}, "code", "must be >= 100"),
        ({"kind": "api_error", "code": 99999}, "code", "must be <= 599"),
        ({"kind": "runtime_init_failure", "code": 200}, "code", "answers a 4xx or 5xx status"),
        ({"kind": "node_loss", "code": 700}, "code", "must be <= 599"),
    ],
)
def test_invalid_faults(
    cluster: Cluster, fault: dict[str, object], field: str, reason: str
) -> None:
    """A fault that could never fire as written names the field and is not added.

    Selector keys the kind's decision point does not supply, and values outside
    the fixed vocabularies, would leave the fault silently idle.
    """
    before = snapshot(cluster)
    kind = str(fault.pop("kind"))
    with pytest.raises(InvalidError) as err:
        cluster.inject(kind, **fault)
    assert err.value.field == field
    assert reason in err.value.reason
    assert cluster.faults == []
    assert snapshot(cluster) == before


def test_fault_codes_and_times_that_fit_are_taken(cluster: Cluster) -> None:
    """429 and 5xx for API errors, 4xx and 5xx for /init; times take durations as text."""
    assert cluster.inject("api_error", code=429).code == 429
    assert cluster.inject("api_error", code=599).code == 599
    assert cluster.inject("runtime_init_failure", code=404).code == 404
    slow = cluster.inject("api_latency", latency="1s", start="1m", duration="30s")
    assert (slow.start, slow.duration) == (60.0, 30.0)
    assert cluster.inject("api_error", probability=1).probability == 1.0


def test_fault_selectors_name_free_names_and_kubelet_clients(cluster: Cluster) -> None:
    """Templates and images are names (maybe of things made later); kubelets are per node."""
    cluster.inject("api_error", selector={"client": "kubelet/node-2", "verb": "update_status"})
    cluster.inject("pod_kill", selector={"template": "not-yet", "node": "node-2"})
    cluster.inject("image_pull_slow", latency="1s", selector={"image": "any:tag"})
    assert len(cluster.faults) == 3


@pytest.mark.parametrize(
    ("selector", "field"),
    [({"node": "node-99"}, "selector.node"), ({"client": "kubelet/node-99"}, "selector.client")],
)
def test_a_fault_naming_a_node_that_does_not_exist_is_refused(
    cluster: Cluster, selector: dict[str, str], field: str
) -> None:
    """A node the cluster does not have when the fault is injected is refused (a typo would
    leave the fault silently idle), and the fault takes nothing, not even an id."""
    kind = "node_loss" if "node" in selector else "api_error"
    before = snapshot(cluster)
    with pytest.raises(InvalidError) as err:
        cluster.inject(kind, selector=selector)
    assert err.value.field == field
    assert err.value.reason.startswith("no node named 'node-99' (nodes: node-1, node-2")
    assert cluster.faults == [] and snapshot(cluster) == before
    # The refused fault took no id: the next one is the first.
    assert cluster.inject(kind).id == f"{kind}-1"


def test_a_node_added_mid_run_can_be_targeted_once_it_is_added() -> None:
    """``cluster.nodes.add`` adds a node at any time, and a fault can target it from then on,
    a ``start`` ahead too: the cluster cannot tell a node still to come from a typo, so a
    fault injected before the node is refused, saying how to target it."""
    cluster = Cluster(seed=5, nodes=2)
    cluster.advance(5)
    start = cluster.now + 60
    with pytest.raises(InvalidError) as err:
        cluster.inject("node_loss", selector={"node": "node-3"}, start=start, duration=30)
    assert err.value.field == "selector.node"
    assert err.value.reason == (
        "no node named 'node-3' (nodes: node-1, node-2); "
        "a node added later can be targeted once it is added"
    )
    cluster.nodes.add({"name": "node-3"})
    loss = cluster.inject("node_loss", selector={"node": "node-3"}, start=start, duration=30)
    cluster.advance(61)
    assert loss.fired == 1
    assert f"node.lost node-3 fault={loss.id}" in cluster.log.text()


@pytest.mark.parametrize(
    ("node", "field", "reason"),
    [
        ({"name": "n", "max_pods": True}, "nodes[0].max_pods", "must be an integer, got True"),
        ({"name": "n", "max_pods": "7"}, "nodes[0].max_pods", "must be an integer, got '7'"),
        ({"name": "n", "max_pods": 0}, "nodes[0].max_pods", "must be >= 1, got 0"),
        ({"name": "n", "cpu": True}, "nodes[0].cpu", "must be a string, got True"),
        (
            {"name": "n", "serialize_image_pulls": 1},
            "nodes[0].serialize_image_pulls",
            "must be a boolean, got 1",
        ),
        ({"name": "n", "images": "busybox"}, "nodes[0].images", "must be a list, got 'busybox'"),
        (
            {"name": "n", "images": ["busy box"]},
            "nodes[0].images[0]",
            "'busy box': invalid reference format",
        ),
        ({"name": "n", "labels": {"a": 1}}, "nodes[0].labels.a", "must be a string, got 1"),
        (
            {"name": "n", "maxPods": 4},
            "nodes[0].maxPods",
            "unknown field (did you mean 'max_pods'?)",
        ),
        ({"cpu": "4"}, "nodes[0].name", "required value"),
        ("node-1", "nodes[0]", "must be a NodeSpec or a mapping, got 'node-1'"),
        (None, "nodes[0]", "must be a NodeSpec or a mapping, got None"),
    ],
)
def test_a_node_is_checked_strictly_and_its_problem_worded_as_a_manifests(
    node: Any, field: str, reason: str
) -> None:
    """A node's fields keep the kind they were given (``True`` is no pod count, ``"7"`` no
    number, as in a profile or a scenario), and a problem reads as a manifest's does."""
    with pytest.raises(InvalidError) as err:
        Cluster(seed=1, nodes=[node])
    assert (err.value.field, err.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"seed": None}, "seed", "must be an integer, got None"),
        ({"seed": "x"}, "seed", "must be an integer, got 'x'"),
        ({"seed": 1.5}, "seed", "must be an integer, got 1.5"),
        ({"seed": [1]}, "seed", "must be an integer, got [1]"),
        ({"seed": True}, "seed", "must be an integer, got True"),
        ({"seed": -5}, "seed", "must be at least 0, got -5"),
        ({"nodes": True}, "nodes", "must be a node count or a list of nodes, got True"),
        ({"nodes": "3"}, "nodes", "must be a node count or a list of nodes, got '3'"),
        ({"nodes": 2.5}, "nodes", "must be a node count or a list of nodes, got 2.5"),
        ({"nodes": 0}, "nodes", "must be at least 1"),
        ({"nodes": []}, "nodes", "must list at least one node"),
        ({"nodes": ()}, "nodes", "must list at least one node"),
        # Past MAX_NODES the nodes' pod ranges and host IPs are no addresses.
        ({"nodes": MAX_NODES + 1}, "nodes", f"{TOO_MANY} got {MAX_NODES + 1}"),
        ({"nodes": 10**6}, "nodes", f"{TOO_MANY} got 1000000"),
        (
            {"nodes": [{"name": f"n{i}"} for i in range(MAX_NODES + 1)]},
            "nodes",
            f"must list at most {MAX_NODES} nodes (Kubernetes' supported cluster size), "
            f"got {MAX_NODES + 1}",
        ),
    ],
)
def test_a_cluster_refuses_a_seed_or_node_count_of_another_kind(
    kwargs: dict[str, Any], field: str, reason: str
) -> None:
    """A seed is an integer (no seed would be no reproducibility); ``True`` is not 1 node, and
    a cluster has a node, whether counted or listed (no pool of a nodeless one could fill)."""
    with pytest.raises(InvalidError) as err:
        Cluster(**{"seed": 1, **kwargs})
    assert (err.value.field, err.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("call", "field", "reason"),
    [
        (lambda c: c.create_sandbox("base", timeout="60"), "timeout", "got '60'"),
        (lambda c: c.create_sandbox("base", timeout=True), "timeout", "got True"),
        (lambda c: c.create_sandbox("base", volume_mounts="x"), "volume_mounts", "got 'x'"),
        (lambda c: c.create_sandbox("base", volume_mounts=["x"]), "volume_mounts[0]", "mapping"),
        (lambda c: c.create_sandbox("base", auto_pause="yes"), "auto_pause", "got 'yes'"),
        (lambda c: c.create_sandbox("base", env_vars={"A": 1}), "env_vars", "must be strings"),
        (lambda c: c.submit_create("base", env_vars=["A=1"]), "env_vars", "must be a mapping"),
        (lambda c: c.submit_create("base", timeout="60"), "timeout", "got '60'"),
        (lambda c: c.create_sandbox("base", metadata="ab"), "metadata", "got 'ab'"),
        (lambda c: c.submit_create("base", metadata=5), "metadata", "got 5"),
        (lambda c: c.create_sandbox(5), "template", "must be a template name, got 5"),
        (lambda c: c.create_sandboxes(1, "base", namespace=5), "namespace", "got 5"),
        (lambda c: c.create_sandboxes(-1, "base"), "count", "must be >= 0, got -1"),
        (lambda c: c.create_sandboxes("2", "base"), "count", "must be an integer, got '2'"),
        (lambda c: c.create_sandboxes(2, "base", timeout="x"), "timeout", "got 'x'"),
        (lambda c: c.set_timeout("default--x", "x"), "timeout", "got 'x'"),
        (lambda c: c.connect("default--x", timeout=1.5), "timeout", "got 1.5"),
        (lambda c: c.list("sbx", "default", labels="x"), "labels", "got 'x'"),
        (lambda c: c.list("sbx", labels={"a": 1}), "labels", "must be strings"),
    ],
    ids=[
        "create-timeout-text",
        "create-timeout-bool",
        "create-mounts-text",
        "create-mount-text",
        "create-auto-pause-text",
        "create-env-int",
        "submit-env-list",
        "submit-timeout-text",
        "create-metadata-text",
        "submit-metadata-int",
        "create-template-int",
        "burst-namespace-int",
        "burst-negative",
        "burst-text",
        "burst-timeout-text",
        "set-timeout-text",
        "connect-timeout-float",
        "list-labels-text",
        "list-label-int",
    ],
)
def test_sandbox_calls_refuse_arguments_of_another_kind(
    pooled: Cluster, call: Any, field: str, reason: str
) -> None:
    """A wrong kind of argument is an InvalidError naming it, before any claim or write."""
    before = snapshot(pooled)
    records, now = len(pooled.records), pooled.now
    with pytest.raises(InvalidError) as err:
        call(pooled)
    assert err.value.field == field
    assert reason in err.value.reason
    assert snapshot(pooled) == before
    assert (len(pooled.records), pooled.now) == (records, now)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"bad key!": "x"}, "invalid key 'bad key!': the name part must consist of"),
        ({"app": "b c"}, "invalid value 'b c': a label value must consist of"),
        ({"app": "x" * 64}, "must be at most 63 characters, got 64"),
        ({"": "x"}, "invalid key '': the name part must not be empty"),
    ],
    ids=["key", "value", "long-value", "empty-key"],
)
def test_list_refuses_a_selector_no_label_could_match(
    pooled: Cluster, labels: dict[str, str], reason: str
) -> None:
    """As the API server refuses ``-l 'bad key!=x'``: one InvalidError naming labels and
    the reason, not an empty list that reads as "no objects"."""
    with pytest.raises(InvalidError) as err:
        pooled.list("sbx", "default", labels=labels)
    assert err.value.field == "labels"
    assert err.value.reason.startswith("not a valid label selector: ")
    assert reason in err.value.reason


def test_list_takes_a_selector_of_valid_labels_with_an_empty_value(pooled: Cluster) -> None:
    """``app=`` is a valid selector (a label value may be empty): it matches no pool sandbox."""
    assert pooled.list("sbx", labels={"example.com/app": ""}) == []
    assert pooled.list("sbx", labels={"agents.kruise.io/sandbox-pool": "base"})


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.submit_create("base", timout=60),
        lambda c: c.create_sandboxes(2, "base", timout=60),
        lambda c: c.create_sandboxes(2, "base", metdata={"a": "b"}),
    ],
    ids=["submit", "burst", "burst-metadata"],
)
def test_a_misspelt_create_keyword_fails_at_the_call_and_starts_nothing(
    pooled: Cluster, call: Any
) -> None:
    """``submit_create`` and ``create_sandboxes`` take ``create_sandbox``'s keywords and no
    other: a misspelt one is Python's TypeError naming it, at the call, not a TypeError from
    the manager's code in a later ``advance()``; no claim starts and the cluster goes on."""
    before = snapshot(pooled)
    records, now = len(pooled.records), pooled.now
    with pytest.raises(TypeError, match=r"unexpected keyword argument '(timout|metdata)'"):
        call(pooled)
    assert snapshot(pooled) == before
    assert (len(pooled.records), pooled.now) == (records, now)
    pooled.advance(1)  # nothing was left to fail later
    assert len(pooled.records) == records
    assert isinstance(pooled.create_sandbox("base", timeout=60), Sandbox)


def test_a_started_claim_takes_every_create_keyword_as_create_sandbox_does() -> None:
    """``submit_create`` passes on each keyword of ``create_sandbox``: on two clusters of one
    seed the two calls claim the same sandbox, with the same event log."""
    options: dict[str, Any] = {
        "namespace": "default",
        "user": "00000000-0000-4000-8000-000000000002",
        "timeout": 600,
        "metadata": {"userId": "alice", "e2b.agents.kruise.io/never-timeout": "true"},
        "env_vars": {"A": "1"},
        "auto_pause": True,
        "allow_internet_access": False,
    }
    waited, started = Cluster(seed=5), Cluster(seed=5)
    for c in (waited, started):
        c.apply(pool_yaml(replicas=2))
        c.wait_for_pool("base")
    sbx = waited.create_sandbox("base", **options)
    proc = started.submit_create("base", **options)
    started.run_until(lambda: bool(proc.triggered))
    assert isinstance(proc.value, Sandbox)
    assert proc.value.model_dump() == sbx.model_dump()
    assert started.log.text() == waited.log.text()


def test_an_empty_burst_claims_nothing(pooled: Cluster) -> None:
    """``create_sandboxes(0, ...)`` is a burst of no claims."""
    before = snapshot(pooled)
    assert pooled.create_sandboxes(0, "base") == []
    assert snapshot(pooled) == before


@pytest.mark.parametrize("user", ["alice smith", "", "x" * 64, 7])
def test_a_create_for_an_owner_no_label_can_name_is_refused(pooled: Cluster, user: Any) -> None:
    """The owner becomes the sandbox's owner label (upstream: an API key's UUID): one that no
    label value can be is refused, naming ``user``, and nothing is claimed."""
    writes = pooled.world.api.writes
    with pytest.raises(InvalidError) as err:
        pooled.create_sandbox("base", user=user)
    assert err.value.field == "user"
    with pytest.raises(InvalidError):
        pooled.create_sandboxes(1, "base", user=user)
    assert pooled.world.api.writes == writes


SID = "default--base-x"

_OTHER_KINDS: dict[str, tuple[Any, str, str]] = {
    "run-until-predicate-int": (lambda c: c.run_until(5), "predicate", "got 5"),
    "run-until-predicate-bool": (lambda c: c.run_until(True), "predicate", "got True"),
    "sandbox-id-of-an-id": (
        lambda c: c.sandbox_id("default--x"),
        "sbx",
        "must be a Sandbox, got 'default--x' (a sandbox id already?)",
    ),
    "sandbox-id-of-none": (lambda c: c.sandbox_id(None), "sbx", "must be a Sandbox, got None"),
    "await-cached-id-int": (lambda c: c.await_cached(5), "sandbox_id", "got 5"),
    "unschedulable-name-int": (lambda c: c.unschedulable_message(5), "name", "got 5"),
    "unschedulable-namespace-int": (
        lambda c: c.unschedulable_message("base", 5),
        "namespace",
        "got 5",
    ),
    "log-of-kind-int": (lambda c: c.log.of_kind(5), "prefix", "must be a string, got 5"),
    "records-listen-int": (
        lambda c: c.records.listen(5),
        "listener",
        "must be a function taking a ClaimRecord, got 5",
    ),
    "describe-id-int": (lambda c: c.describe(5), "sandbox_id", "got 5"),
    "describe-id-none": (lambda c: c.describe(None), "sandbox_id", "got None"),
    "kill-id-int": (lambda c: c.kill(123), "sandbox_id", "got 123"),
    "kill-user-int": (lambda c: c.kill(SID, user=5), "user", "got 5"),
    "set-timeout-id-int": (lambda c: c.set_timeout(5, 60), "sandbox_id", "got 5"),
    "set-timeout-namespace-int": (
        lambda c: c.set_timeout(SID, 60, namespace=5),
        "namespace",
        "got 5",
    ),
    "connect-id-int": (lambda c: c.connect(7), "sandbox_id", "got 7"),
    "pause-namespace-none": (lambda c: c.pause(SID, namespace=None), "namespace", "got None"),
    "pause-retention-int": (lambda c: c.pause(SID, retention=60), "retention", "got 60"),
    "pause-retention-text": (lambda c: c.pause(SID, retention="1h"), "retention", "got '1h'"),
    "list-limit-text": (lambda c: c.list_sandboxes(limit="10"), "limit", "got '10'"),
    "list-limit-float": (lambda c: c.list_sandboxes(limit=2.5), "limit", "got 2.5"),
    "list-limit-bool": (lambda c: c.list_sandboxes(limit=True), "limit", "got True"),
    "list-token-int": (lambda c: c.list_sandboxes(next_token=3), "next_token", "got 3"),
    "list-metadata-text": (lambda c: c.list_sandboxes(metadata="a=b"), "metadata", "got 'a=b'"),
    "list-metadata-list": (
        lambda c: c.list_sandboxes(metadata=[("a", "b")]),
        "metadata",
        "must be a mapping",
    ),
    "list-metadata-int": (
        lambda c: c.list_sandboxes(metadata={"a": 1}),
        "metadata",
        "must be strings",
    ),
    "list-namespace-int": (lambda c: c.list_sandboxes(namespace=5), "namespace", "got 5"),
    "list-user-int": (lambda c: c.list_sandboxes(user=5), "user", "got 5"),
    "list-states-int": (lambda c: c.list_sandboxes(states=5), "states", "got 5"),
    "list-state-int": (lambda c: c.list_sandboxes(states=["running", 1]), "states[1]", "got 1"),
    "set-latency-name-int": (lambda c: c.set_latency(5, "1s"), "name", "got 5"),
    "clear-faults-id-int": (lambda c: c.clear_faults(5), "fault_id", "got 5"),
    "mount-name-int": (
        lambda c: c.create_sandbox("base", volume_mounts=[{"name": 5, "path": "/x"}]),
        "volume_mounts[0].name",
        "must be a string, got 5",
    ),
    "burst-mount-path-int": (
        lambda c: c.create_sandboxes(2, "base", volume_mounts=[{"name": "pv", "path": 1}]),
        "volume_mounts[0].path",
        "must be a string, got 1",
    ),
    "run-no-generator": (lambda c: c.run(5), "gen", "must be a generator"),
    "run-a-process-function": (
        lambda c: c.run(c.advance),
        "gen",
        "must be a generator (call the process function)",
    ),
    "inject-probability-nan": (
        lambda c: c.inject("api_error", probability=float("nan")),
        "probability",
        "must be a number between 0 and 1, got nan",
    ),
}


@pytest.mark.parametrize(("call", "field", "reason"), _OTHER_KINDS.values(), ids=_OTHER_KINDS)
def test_every_call_refuses_arguments_of_another_kind(
    pooled: Cluster, call: Any, field: str, reason: str
) -> None:
    """As the README promises: an argument of the wrong kind is one InvalidError naming it (no
    AttributeError or TypeError from deep inside, no silent empty answer), before any claim,
    record, write or fault."""
    before = snapshot(pooled)
    records, now, faults = len(pooled.records), pooled.now, pooled.faults
    with pytest.raises(InvalidError) as err:
        call(pooled)
    assert (err.value.field, reason in err.value.reason) == (field, True), err.value
    assert snapshot(pooled) == before
    assert (len(pooled.records), pooled.now, pooled.faults) == (records, now, faults)


def test_one_state_may_be_given_as_text(pooled: Cluster) -> None:
    """``states="running"`` lists the running sandboxes (not the states 'r', 'u', 'n'...)."""
    sbx = pooled.create_sandbox("base", timeout=600)
    pooled.advance(1)
    assert [s.metadata.name for s in pooled.list_sandboxes(states="running")[0]] == [
        sbx.metadata.name
    ]
    assert pooled.list_sandboxes(states="paused") == ([], None)
    with pytest.raises(ClaimError) as err:
        pooled.list_sandboxes(states="running,paused")
    assert err.value.code == 400 and "invalid state 'running,paused'" in str(err.value)


@pytest.mark.parametrize("count", [2, 0])
def test_a_burst_of_a_request_the_manager_refuses_is_refused_once(
    pooled: Cluster, count: int
) -> None:
    """Env vars too big for the annotations (a 400 whatever the cluster holds) stop the burst
    at the call, as its other arguments are checked: one ClaimError, no claim, no record, no
    log line, no counted response. A burst of 0 is refused alike (it answered ``[]``)."""
    before = snapshot(pooled)
    log, metrics = pooled.log.text(), pooled.metrics_text()
    with pytest.raises(ClaimError) as err:
        pooled.create_sandboxes(count, "base", env_vars={"A": "x" * 300_000})
    assert err.value.code == 400 and "envVars" in str(err.value)
    assert snapshot(pooled) == before and len(pooled.records) == 0
    assert (pooled.log.text(), pooled.metrics_text()) == (log, metrics)


def test_an_unknown_fault_id_is_not_found(cluster: Cluster) -> None:
    """``clear_faults`` of an id not in force raises NotFoundError naming it and clears nothing."""
    kept = cluster.inject("api_error", probability=0.5)
    with pytest.raises(NotFoundError, match=r"^no fault with id 'nope'$") as err:
        cluster.clear_faults("nope")
    assert (err.value.kind, err.value.name, err.value.code) == ("Fault", "nope", 404)
    assert [f.id for f in cluster.faults] == [kept.id]


def test_a_returned_fault_is_read_only(pooled: Cluster) -> None:
    """The Fault ``inject``, ``fault`` and ``faults`` hand out reads what the fault in force has
    done (``fired``), but cannot change it: a field set raises InvalidError naming it, and the
    fault in force keeps what ``inject`` checked. A copy of it is the caller's to edit."""
    fault = pooled.inject("api_conflict", count=1, selector={"verb": "update", "kind": "Sandbox"})
    for view in (fault, pooled.faults[0]):
        with pytest.raises(InvalidError) as err:
            view.probability = 7.0
        assert err.value.field == "probability" and "read-only" in err.value.reason
    assert pooled.ctx.faults.faults[0].probability == 1.0
    pooled.create_sandbox("base")
    assert fault.fired == 1  # live
    assert pooled.faults == [fault] == pooled.ctx.faults.faults
    assert repr(fault).startswith("Fault(id='api_conflict-1'")
    mine = fault.model_copy(update={"probability": 0.5})
    mine.fired = 0  # a detached Fault
    for detached in (mine, fault.model_copy(deep=True), copy.copy(fault), copy.deepcopy(fault)):
        detached.selector["kind"] = "Pod"  # its selector is the copy's own, editable
        assert type(detached) is Fault
    assert pooled.faults[0].selector == {"verb": "update", "kind": "Sandbox"}
    assert (type(mine), pooled.faults[0].probability) == (Fault, 1.0)
    with pooled.fault("api_error") as scoped, pytest.raises(InvalidError):
        scoped.code = 503
    assert pooled.faults == [fault]


def test_an_edited_copy_of_a_fault_is_injected_again_checked_as_fields(pooled: Cluster) -> None:
    """``model_copy()`` gives a Fault to edit and inject again: ``inject`` takes it, checks its
    fields as keywords (an edit skipped the model's checks), and starts ``fired`` at 0."""
    fault = pooled.inject("api_error", probability=0.5, duration=10)
    mine = fault.model_copy()
    mine.probability = 7.0
    with pytest.raises(InvalidError) as err:
        pooled.inject(mine)
    assert (err.value.field, pooled.faults) == ("probability", [fault])
    mine.probability = 0.2
    with pytest.raises(InvalidError, match="already in use"):
        pooled.inject(mine)  # the id of the fault in force

    again = pooled.inject(mine, id="")

    assert (again.id, again.kind, again.probability, again.fired) == (
        "api_error-2",
        "api_error",
        0.2,
        0,
    )
    assert pooled.faults == [fault, again]


def test_the_last_record_of_a_cluster_without_claims_is_not_found(cluster: Cluster) -> None:
    """Before the first claim there is no last record: NotFoundError saying so, not IndexError."""
    with pytest.raises(NotFoundError, match="no claim record yet") as err:
        cluster.last_record()
    assert err.value.code == 404


def test_the_last_record_after_records_clear_does_not_deny_the_claims_made(
    pooled: Cluster,
) -> None:
    """After ``records.clear()`` (a warm-up forgotten) claims were made: the 404 says the
    records were cleared may be why, and the next record's id starts again at 1."""
    pooled.create_sandbox("base", timeout=600)
    pooled.records.clear()
    with pytest.raises(NotFoundError) as err:
        pooled.last_record()
    assert "no claim has been made since the cluster started or since records.clear()" in str(
        err.value
    )
    pooled.create_sandbox("base", timeout=600)
    assert pooled.last_record().id == 1


def test_a_not_found_error_without_a_namespace_is_built_again_from_its_args(
    cluster: Cluster,
) -> None:
    """A fault's or a record's 404 survives pickle (a Dask worker's error) and SimPy's copy.

    ``type(e)(*e.args)`` builds the model's errors again; these took their
    message as their only argument, and rebuilding one raised TypeError.
    """
    for call in (cluster.last_record, lambda: cluster.clear_faults("nope")):
        with pytest.raises(NotFoundError) as err:
            call()
        again = pickle.loads(pickle.dumps(err.value))
        assert (type(again), str(again), again.kind, again.name, again.code) == (
            type(err.value),
            str(err.value),
            err.value.kind,
            err.value.name,
            404,
        )


def _run_with(refused: Any) -> tuple[list[str], float]:
    """A run stopped with events due at its instant, ``refused`` called there (if any) and
    then an apply: its log (refused creates' ``manager.claim_failed`` lines left out) and clock."""
    cluster = Cluster(seed=0, nodes=1)
    cluster.apply(pool_yaml("p", replicas=3))
    cluster.run_until(lambda: len(cluster.log) >= 2)
    assert cluster.env.peek() == cluster.now  # more is due at this very instant
    if refused is not None:
        before = (len(cluster.log), cluster.now)
        with pytest.raises(ClaimError) as caught:
            refused(cluster)
        assert caught.value.code in (400, 404, 500)
        lines = [str(e) for e in cluster.log][before[0] :]
        assert all("manager.claim_failed" in line for line in lines), lines
        assert cluster.now == before[1]
    cluster.apply(pool_yaml("p", replicas=1))
    cluster.advance(5)
    return [str(e) for e in cluster.log if "manager.claim_failed" not in str(e)], cluster.now


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(lambda c: c.kill("default--no-such"), id="kill-404"),
        pytest.param(lambda c: c.set_timeout("default--no-such", 60), id="set_timeout-404"),
        pytest.param(lambda c: c.pause("default--no-such"), id="pause-404"),
        pytest.param(lambda c: c.connect("default--no-such"), id="connect-404"),
        pytest.param(lambda c: c.create_sandbox("no-such-template"), id="create-unknown-400"),
        pytest.param(
            lambda c: c.create_sandbox("p", metadata={"e2b.agents.kruise.io/never-timeout": "x"}),
            id="create-bad-metadata-400",
        ),
    ],
)
def test_a_refused_e2b_call_runs_nothing_of_the_model(refused: Any) -> None:
    """A call the sandbox-manager refuses at once leaves the run as it was: the events due at
    its instant still run after what the caller does next, as without the call."""
    assert _run_with(refused) == _run_with(None)


def test_a_refused_call_on_a_known_sandbox_runs_nothing_of_the_model() -> None:
    """A timeout out of range answers at once too (set_timeout's 500, connect's 400)."""
    calls: list[tuple[Callable[[Cluster, str], object], int]] = [
        (lambda c, sid: c.set_timeout(sid, 10**9), 500),
        (lambda c, sid: c.connect(sid, 10**9), 400),
        (lambda c, sid: c.pause(sid, retention=timedelta(seconds=-1)), 400),
    ]
    for call, code in calls:
        cluster = Cluster(seed=0, nodes=1)
        cluster.apply(pool_yaml("p", replicas=2))
        cluster.wait_for_pool("p")
        sid = cluster.sandbox_id(cluster.create_sandbox("p"))
        cluster.env.timeout(0)  # something due now
        log, now = len(cluster.log), cluster.now
        with pytest.raises(ClaimError) as caught:
            call(cluster, sid)
        assert caught.value.code == code
        assert (len(cluster.log), cluster.now) == (log, now)
        assert cluster.env.peek() == now

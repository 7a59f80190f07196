"""SimBackend: the fake cluster behind the Backend seam, in virtual and realtime clocks."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import load_manifests
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.backends import (
    Backend,
    Caller,
    CreateRequest,
    ListQuery,
    Pending,
    ResourceNotFound,
    SandboxView,
    SimBackend,
)
from pytest_kruise_agents.backends.sim import MAX_SPEED, default_pools_yaml, opened
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from simulator.cluster import CACHE_WAIT_S, CREATE_CALL_BOUND_S, Cluster
from simulator.collector import YOUNG_THRESHOLD
from simulator.context import CLOCK_END
from simulator.errors import NoAnswerError
from simulator.profile import get_profile
from tests.cluster.conftest import pool_yaml

from ..pools import RECYCLING_POOL
from ..threads import held_elsewhere, outcome_within

T = TypeVar("T")

ALICE = Caller("default", "alice")
BOB = Caller("default", "bob")
ADMIN = Caller("", "admin")
NO_STOCK_WAIT = {
    "e2b.agents.kruise.io/create-on-no-stock": "false",
    "e2b.agents.kruise.io/claim-timeout-seconds": "600",
}


@pytest.fixture
def backend() -> Iterator[SimBackend]:
    b = SimBackend.default(seed=3, replicas=5)
    yield b
    b.close()


def test_is_a_backend(backend: SimBackend) -> None:
    assert isinstance(backend, Backend)


def test_default_cluster_has_the_sdk_default_pools_ready(backend: SimBackend) -> None:
    names = {t.template_id: t.available for t in backend.templates(ALICE)}
    assert names == {"base": 5, "code-interpreter-v1": 5}


def test_create_returns_the_e2b_view_with_metadata_and_token(backend: SimBackend) -> None:
    view = backend.create_sandbox(
        ALICE, CreateRequest(template="base", metadata={"k": "v"}, env_vars={"A": "1"})
    )
    assert view.state == "running"
    assert view.template_id == "base"
    assert view.metadata["k"] == "v"
    assert view.metadata["e2b.agents.kruise.io/sandbox-resource"] == (
        f"{view.namespace}/{view.name}"
    )
    assert view.envd_access_token
    assert view.end_at is not None and view.started_at is not None
    assert (view.end_at - view.started_at).total_seconds() == 300
    route = backend.route(view.sandbox_id)
    assert route is not None
    assert route.state == "running"
    assert route.env_vars == {"A": "1"}
    assert route.access_token == view.envd_access_token


def test_a_create_under_a_long_watch_lag_answers_a_live_sandbox_at_once(
    backend: SimBackend,
) -> None:
    """The backend waits for the manager's cache to see its write for at most
    ``CACHE_WAIT_S``: under a 40 s watch lag it sat through the lag, and a 30 s sandbox had
    ended (404 to every call) by the time its create was answered."""
    backend.set_latency("watch.lag", "fixed(40s)")
    start = backend.cluster.now
    view = backend.create_sandbox(ALICE, CreateRequest(template="base", timeout=30))
    assert view.state == "running"
    record = backend.cluster.last_record()
    assert record.latency is not None
    assert backend.cluster.now - start <= CACHE_WAIT_S + record.latency
    assert backend.describe(ALICE, view.sandbox_id).state == "running"


def test_a_sandbox_of_another_key_is_not_found(backend: SimBackend) -> None:
    view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    with pytest.raises(ClaimError) as err:
        backend.describe(BOB, view.sandbox_id)
    assert err.value.code == 404
    with pytest.raises(ClaimError):
        backend.kill(BOB, view.sandbox_id)
    assert backend.describe(ALICE, view.sandbox_id).sandbox_id == view.sandbox_id


@pytest.mark.parametrize(
    ("caller", "request_", "field"),
    [
        (ALICE, CreateRequest(template=5), "template"),  # type: ignore[arg-type]
        (Caller(5, "alice"), CreateRequest(template="base"), "namespace"),  # type: ignore[arg-type]
        (ALICE, CreateRequest(template="base", metadata=5), "metadata"),  # type: ignore[arg-type]
        (ALICE, CreateRequest(template="base", timeout="300"), "timeout"),  # type: ignore[arg-type]
        (ALICE, CreateRequest(template="base", timeout=True), "timeout"),
        (Caller("default", ""), CreateRequest(template="base"), "user"),
        (Caller("default", "not a label!"), CreateRequest(template="base"), "user"),
        (ALICE, CreateRequest(template="base", env_vars={"A": 1}), "env_vars"),  # type: ignore[dict-item]
        (ALICE, CreateRequest(template="base", auto_pause="yes"), "auto_pause"),  # type: ignore[arg-type]
        (
            ALICE,
            CreateRequest(template="base", allow_internet_access="no"),  # type: ignore[arg-type]
            "allow_internet_access",
        ),
        (ALICE, CreateRequest(template="base", volume_mounts="x"), "volume_mounts"),  # type: ignore[arg-type]
        (
            ALICE,
            CreateRequest(template="base", volume_mounts=[{"name": 1, "path": "/a"}]),  # type: ignore[dict-item]
            "volume_mounts[0].name",
        ),
    ],
)
def test_create_refuses_a_field_of_the_wrong_kind_as_the_cluster_does(
    backend: SimBackend, caller: Caller, request_: CreateRequest, field: str
) -> None:
    """A create from Python with a field of the wrong kind is one InvalidError naming it.

    The same check and message as Cluster.create_sandbox's keywords, before
    anything starts: no record, no sandbox. (It was a TypeError from deep
    inside, a 500 record, or a value taken as another: ``"no"`` allowed
    internet access, ``"not a label!"`` became an owner.)
    """
    with backend.locked() as cluster:
        records, sandboxes = len(cluster.records), len(cluster.list("sbx"))
        with pytest.raises(InvalidError) as direct:
            r = request_
            cluster.create_sandbox(
                r.template,
                namespace=caller.namespace,
                user=caller.user,
                timeout=r.timeout,
                metadata=r.metadata,
                env_vars=r.env_vars,
                auto_pause=r.auto_pause,
                volume_mounts=r.volume_mounts,
                allow_internet_access=r.allow_internet_access,
            )
    with pytest.raises(InvalidError) as err:
        backend.create_sandbox(caller, request_)
    assert err.value.field == field
    assert str(err.value) == str(direct.value)
    with backend.locked() as cluster:
        assert (len(cluster.records), len(cluster.list("sbx"))) == (records, sandboxes)


def _query(**fields: Any) -> ListQuery:
    """A ListQuery of fields its annotations refuse (what a caller from Python may pass)."""
    return ListQuery(**fields)


# The backend and the cluster as Any: the calls pass what their signatures refuse.
_KIND_CASES: list[
    tuple[str, Callable[[Any, str], object], Callable[[Any, str], object] | None, str]
] = [
    # (label, the backend's call, the cluster's same call or None, the field named)
    (
        "set_timeout True",
        lambda b, s: b.set_timeout(ALICE, s, True),
        lambda c, s: c.set_timeout(s, True, user="alice"),
        "timeout",
    ),
    (
        "set_timeout 45.5",
        lambda b, s: b.set_timeout(ALICE, s, 45.5),
        lambda c, s: c.set_timeout(s, 45.5, user="alice"),
        "timeout",
    ),
    (
        "set_timeout '60'",
        lambda b, s: b.set_timeout(ALICE, s, "60"),
        lambda c, s: c.set_timeout(s, "60", user="alice"),
        "timeout",
    ),
    (
        "connect 77.25",
        lambda b, s: b.connect(ALICE, s, 77.25),
        lambda c, s: c.connect(s, 77.25, user="alice"),
        "timeout",
    ),
    (
        "connect True",
        lambda b, s: b.connect(ALICE, s, True),
        lambda c, s: c.connect(s, True, user="alice"),
        "timeout",
    ),
    (
        "resume '60'",
        lambda b, s: b.resume(ALICE, s, "60"),
        lambda c, s: c.set_timeout(s, "60", user="alice"),
        "timeout",
    ),
    (
        "describe 5",
        lambda b, s: b.describe(ALICE, 5),
        lambda c, s: c.describe(5, user="alice"),
        "sandbox_id",
    ),
    ("kill 5", lambda b, s: b.kill(ALICE, 5), lambda c, s: c.kill(5, user="alice"), "sandbox_id"),
    (
        "pause '1h'",
        lambda b, s: b.pause(ALICE, s, "1h"),
        lambda c, s: c.pause(s, retention="1h", user="alice"),
        "retention",
    ),
    (
        "describe user ''",
        lambda b, s: b.describe(Caller("default", ""), s),
        lambda c, s: c.describe(s, user=""),
        "user",
    ),
    (
        "list limit '5'",
        lambda b, s: b.list_sandboxes(ALICE, _query(limit="5")),
        lambda c, s: c.list_sandboxes(limit="5", user="alice"),
        "limit",
    ),
    (
        "list limit 2.5",
        lambda b, s: b.list_sandboxes(ALICE, _query(limit=2.5)),
        lambda c, s: c.list_sandboxes(limit=2.5, user="alice"),
        "limit",
    ),
    (
        "list limit True",
        lambda b, s: b.list_sandboxes(ALICE, _query(limit=True)),
        lambda c, s: c.list_sandboxes(limit=True, user="alice"),
        "limit",
    ),
    (
        "list states 5",
        lambda b, s: b.list_sandboxes(ALICE, _query(states=5)),
        lambda c, s: c.list_sandboxes(states=5, user="alice"),
        "states",
    ),
    (
        "list states[1] 5",
        lambda b, s: b.list_sandboxes(ALICE, _query(states=("running", 5))),
        lambda c, s: c.list_sandboxes(states=("running", 5), user="alice"),
        "states[1]",
    ),
    (
        "list metadata {1: 2}",
        lambda b, s: b.list_sandboxes(ALICE, _query(metadata={1: 2})),
        lambda c, s: c.list_sandboxes(metadata={1: 2}, user="alice"),
        "metadata",
    ),
    (
        "list next_token 5",
        lambda b, s: b.list_sandboxes(ALICE, _query(next_token=5)),
        lambda c, s: c.list_sandboxes(next_token=5, user="alice"),
        "next_token",
    ),
    ("list order 'up'", lambda b, s: b.list_sandboxes(ALICE, _query(order="up")), None, "order"),
    (
        "list template 5",
        lambda b, s: b.list_sandboxes(ALICE, _query(template=5)),
        None,
        "template",
    ),
    (
        "list started_after 'x'",
        lambda b, s: b.list_sandboxes(ALICE, _query(started_after="x")),
        None,
        "started_after",
    ),
]


@pytest.mark.parametrize(
    ("call", "direct", "field"),
    [case[1:] for case in _KIND_CASES],
    ids=[case[0] for case in _KIND_CASES],
)
def test_e2b_calls_refuse_an_argument_of_the_wrong_kind_as_the_cluster_does(
    backend: SimBackend,
    call: Callable[[SimBackend, str], object],
    direct: Callable[[Cluster, str], object] | None,
    field: str,
) -> None:
    """Every E2B call from Python refuses a wrong kind with the Cluster's InvalidError, changing nothing.

    ``set_timeout(caller, id, True)`` was taken as 1 s (and killed the
    sandbox), ``45.5`` was kept as a fraction, ``"60"`` and
    ``ListQuery(limit="5")`` raised a bare TypeError, ``limit=2.5`` "slice
    indices must be integers", a sandbox id 5 an AttributeError.
    """
    sid = backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id
    with backend.locked() as cluster:
        name = sid.split("--", 1)[1]
        before = cluster.get("sbx", name).metadata.resource_version
        records = len(cluster.records)
        expected: InvalidError | None = None
        if direct is not None:
            with pytest.raises(InvalidError) as from_cluster:
                direct(cluster, sid)
            expected = from_cluster.value
    with pytest.raises(InvalidError) as err:
        call(backend, sid)
    assert err.value.field == field
    if expected is not None:
        assert str(err.value) == str(expected)
    with backend.locked() as cluster:
        assert cluster.get("sbx", name).metadata.resource_version == before
        assert len(cluster.records) == records
    assert backend.describe(ALICE, sid).state == "running"


def test_a_list_of_one_state_given_as_text_lists_that_state(backend: SimBackend) -> None:
    """``ListQuery(states="running")`` is the state running, not its letters (as Cluster reads it)."""
    sid = backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id
    one_state: Any = "running"
    page, _ = backend.list_sandboxes(ALICE, ListQuery(states=one_state))
    assert [v.sandbox_id for v in page] == [sid]


def test_unknown_template_answers_400_and_changes_nothing(backend: SimBackend) -> None:
    before = len(backend.list("Sandbox"))
    with pytest.raises(ClaimError) as err:
        backend.create_sandbox(ALICE, CreateRequest(template="nope"))
    assert err.value.code == 400
    assert len(backend.list("Sandbox")) == before


def test_list_pages_in_claim_order_both_ways(backend: SimBackend) -> None:
    ids = []
    for _ in range(5):
        ids.append(backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id)
        backend.advance(1)
    seen: list[str] = []
    token = None
    while True:
        page, token = backend.list_sandboxes(ALICE, ListQuery(limit=2, next_token=token))
        seen += [v.sandbox_id for v in page]
        if token is None:
            break
    assert seen == ids
    desc, _ = backend.list_sandboxes(ALICE, ListQuery(limit=100, order="desc"))
    assert [v.sandbox_id for v in desc] == ids[::-1]
    assert backend.list_sandboxes(BOB, ListQuery()) == ([], None)


def test_a_list_page_runs_with_the_simulations_collector_thresholds(
    backend: SimBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page sorts all of the caller's sandboxes: at the default thresholds those allocations
    set off full collections on every page (10,000 sandboxes: 118 ms a page, 39% of it in
    the collector). It runs as the cluster's own list does, under ``simulation_gc``."""
    if not 0 < gc.get_threshold()[0] < YOUNG_THRESHOLD:
        pytest.skip("the process set its own collector thresholds")
    backend.create_sandbox(ALICE, CreateRequest(template="base"))
    seen: list[int] = []
    listing = backend.cluster.manager.list_sandboxes

    def list_sandboxes(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return listing(*args, **kwargs)

    monkeypatch.setattr(backend.cluster.manager, "list_sandboxes", list_sandboxes)
    page, _ = backend.list_sandboxes(ALICE, ListQuery())
    assert len(page) == 1
    assert seen == [YOUNG_THRESHOLD]


def test_list_filters_by_metadata_state_and_template(backend: SimBackend) -> None:
    a = backend.create_sandbox(ALICE, CreateRequest(template="base", metadata={"team": "x"}))
    b = backend.create_sandbox(ALICE, CreateRequest(template="code-interpreter-v1"))
    backend.pause(ALICE, b.sandbox_id)
    by_meta, _ = backend.list_sandboxes(ALICE, ListQuery(metadata={"team": "x"}))
    assert [v.sandbox_id for v in by_meta] == [a.sandbox_id]
    paused, _ = backend.list_sandboxes(ALICE, ListQuery(states=("paused",)))
    assert [v.sandbox_id for v in paused] == [b.sandbox_id]
    by_template, _ = backend.list_sandboxes(ALICE, ListQuery(template="base"))
    assert [v.sandbox_id for v in by_template] == [a.sandbox_id]
    with pytest.raises(ClaimError) as err:
        backend.list_sandboxes(ALICE, ListQuery(states=("dead",)))
    assert err.value.code == 400


def test_listeners_see_running_paused_running_and_gone(backend: SimBackend) -> None:
    events: list[tuple[str, str | None]] = []
    backend.subscribe(lambda sid, state: events.append((sid, state)))
    view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    backend.advance(1)
    backend.pause(ALICE, view.sandbox_id)
    _, resumed = backend.connect(ALICE, view.sandbox_id, None)
    assert resumed
    backend.kill(ALICE, view.sandbox_id)
    backend.advance(5)
    states = [state for sid, state in events if sid == view.sandbox_id]
    assert states == ["running", "paused", "running", None]
    assert backend.route(view.sandbox_id) is None


def test_a_recycling_kill_stops_the_route_as_it_is_answered() -> None:
    """The kill only sets the trigger; the sandbox is not routed from then on, time moved or not."""
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(RECYCLING_POOL)
    cluster.wait_for_pool("reuse")
    backend = SimBackend(cluster)
    try:
        events: list[tuple[str, str | None]] = []
        backend.subscribe(lambda sid, state: events.append((sid, state)))
        view = backend.create_sandbox(ALICE, CreateRequest(template="reuse", timeout=600))
        backend.kill(ALICE, view.sandbox_id)
        route = backend.route(view.sandbox_id)
        assert route is not None and route.state == "paused"
        assert [state for sid, state in events if sid == view.sandbox_id] == ["running", "paused"]
        backend.advance(30)  # past the recycle: back in its pool, no route, gone to its caller
        assert backend.route(view.sandbox_id) is None
        assert [state for sid, state in events if sid == view.sandbox_id][2:] == [None]
    finally:
        backend.close()


def test_a_recycling_kill_leaves_the_route_its_callers_until_the_reset() -> None:
    """The route the server checks first and the one the manager's operations check are one:
    from the kill to the recycle's reset the sandbox is its caller's (describe shows it
    paused, a second kill answers 204, reference §6.2), another key's not; after the reset it
    is nobody's, and both answer 404."""
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(RECYCLING_POOL)
    cluster.wait_for_pool("reuse")
    backend = SimBackend(cluster)
    try:
        sid = backend.create_sandbox(ALICE, CreateRequest(template="reuse", timeout=600)).sandbox_id
        backend.kill(ALICE, sid)
        route = backend.route(sid)
        assert route is not None and (route.namespace, route.owner) == ("default", "alice")
        assert backend.describe(ALICE, sid).state == "paused"
        backend.kill(ALICE, sid)
        with pytest.raises(ClaimError) as err:
            backend.describe(BOB, sid)
        assert err.value.code == 404
        backend.advance(30)  # past the recycle's reset
        assert backend.route(sid) is None
        for call in (backend.describe, backend.kill):
            with pytest.raises(ClaimError) as err:
                call(ALICE, sid)
            assert err.value.code == 404
    finally:
        backend.close()


def test_timeout_fires_when_virtual_time_is_advanced(backend: SimBackend) -> None:
    view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    backend.set_timeout(ALICE, view.sandbox_id, 30)
    backend.advance(29)
    assert backend.describe(ALICE, view.sandbox_id).state == "running"
    backend.advance(2)
    with pytest.raises(ClaimError) as err:
        backend.describe(ALICE, view.sandbox_id)
    assert err.value.code == 404


def test_advance_rejects_negative_time(backend: SimBackend) -> None:
    before = backend.now()
    with pytest.raises(InvalidError, match="seconds"):
        backend.advance(-1)
    backend.advance(0)
    assert backend.now() == before


def test_advance_zero_runs_what_is_due_now_without_moving_time(backend: SimBackend) -> None:
    """``advance(0)`` runs the events due at the current instant, as ``Cluster.advance(0)`` does."""
    view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    with backend.locked() as cluster:
        # Something due now that no call has run yet: a timer of zero delay.
        fired: list[float] = []
        event = cluster.env.timeout(0)
        event.callbacks.append(lambda _ev: fired.append(cluster.now))
        before = cluster.now
    backend.advance(0)
    assert fired == [before]
    assert backend.cluster.now == before
    assert backend.describe(ALICE, view.sandbox_id).state == "running"


TEMPLATE_POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxTemplate
metadata: {name: python}
spec:
  template:
    spec:
      containers:
        - name: main
          image: registry.example.com/python:3.12
          resources: {requests: {cpu: "2", memory: 1Gi}}
---
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: python}
spec:
  replicas: 2
  runtimes: [{name: agent-runtime}]
  templateRef: {name: python}
"""


def test_a_template_ref_pool_shows_the_resources_of_its_template(backend: SimBackend) -> None:
    """``GET /templates`` and the sandbox's view read CPU and memory from the SandboxTemplate."""
    backend.apply(TEMPLATE_POOL)
    backend.advance(60)
    (pool,) = [t for t in backend.templates(ALICE) if t.template_id == "python"]
    assert (pool.cpu_count, pool.memory_mb, pool.available) == (2, 1024, 2)
    view = backend.create_sandbox(ALICE, CreateRequest(template="python"))
    assert (view.cpu_count, view.memory_mb) == (2, 1024)


def test_resources_and_not_found(backend: SimBackend) -> None:
    assert backend.get("sbs", "base").metadata.name == "base"
    with pytest.raises(ResourceNotFound, match="nope"):
        backend.get("SandboxSet", "nope")
    with pytest.raises(ResourceNotFound):
        backend.delete("SandboxSet", "nope")
    assert "base" in backend.table("sbs")


def test_faults_are_injected_listed_and_cleared(backend: SimBackend) -> None:
    fault = backend.inject("runtime_init_failure", selector={"template": "base"})
    assert [f["id"] for f in backend.faults()] == [fault["id"]]
    with pytest.raises(ClaimError):
        backend.create_sandbox(
            ALICE,
            CreateRequest(
                template="base", metadata={"e2b.agents.kruise.io/claim-timeout-seconds": "3"}
            ),
        )
    with pytest.raises(ResourceNotFound):
        backend.clear_faults("no-such-fault")
    backend.clear_faults(fault["id"])
    assert backend.faults() == []
    assert backend.records()[-1]["error_code"] is not None


def test_clear_fault_clears_that_fault_not_a_later_one_under_its_id(backend: SimBackend) -> None:
    """``clear_fault`` goes by identity: once its fault is cleared, the id may name another,
    which it leaves in force (as ``Cluster.fault``'s block does)."""
    first = backend.inject_fault("api_error", id="x", selector={"client": "kube-scheduler"})
    backend.clear_faults("x")
    second = backend.inject_fault("api_latency", id="x", latency="1s")
    assert backend.clear_fault(first) is False
    assert [(f["id"], f["kind"]) for f in backend.faults()] == [("x", "api_latency")]
    assert backend.clear_fault(second) is True
    assert backend.faults() == []


def test_latencies_are_read_and_restored_to_the_opening_profile() -> None:
    """The latencies in force, each with the value it opened with, and a way back to it.

    The opening value is the cluster's profile when the backend was made (a
    config file's ``latencies`` included), not the built-in profile's.
    """
    cluster = Cluster(seed=1, nodes=1, latencies={"pod.create": "100ms"})
    backend = SimBackend(cluster)
    try:
        backend.set_latency("image.pull", "exp(2s)")
        backend.set_latency("pod.create", "3s")
        by_name = {e["name"]: e for e in backend.latencies()}
        assert list(by_name) == list(cluster.profile.latencies)  # every one, the profile's order
        assert by_name["image.pull"] == {
            "name": "image.pull",
            "value": "exp(2s)",
            "profile": "lognormal(median=5s, p99=30s)",
            "changed": True,
        }
        assert backend.latency("pod.create") == {
            "name": "pod.create",
            "value": "fixed(3s)",
            "profile": "fixed(100ms)",
            "changed": True,
        }
        assert [n for n, e in by_name.items() if e["changed"]] == ["pod.create", "image.pull"]
        backend.restore_latency("pod.create")
        assert str(cluster.profile.latency("pod.create")) == "fixed(100ms)"
        assert [e["name"] for e in backend.latencies() if e["changed"]] == ["image.pull"]
        backend.restore_latency()  # every one
        assert not any(e["changed"] for e in backend.latencies())
        assert str(cluster.profile.latency("image.pull")) == "lognormal(median=5s, p99=30s)"
        for call in (backend.latency, backend.restore_latency):
            with pytest.raises(InvalidError, match="unknown latency 'teleport'") as err:
                call("teleport")
            assert err.value.field == "name"
            with pytest.raises(InvalidError, match="must be a latency name"):
                call(5)  # type: ignore[arg-type]
    finally:
        backend.close()


def test_concurrent_threads_never_get_the_same_sandbox(backend: SimBackend) -> None:
    def create(_: int) -> str:
        return backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(24)))
    assert len(set(ids)) == 24


def test_bad_clock_settings_are_refused() -> None:
    with pytest.raises(InvalidError, match="clock"):
        SimBackend(clock="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="speed"):
        SimBackend(clock="realtime", speed=0)


@pytest.mark.parametrize("speed", [float("inf"), float("nan"), -1.0])
def test_a_speed_that_is_not_a_finite_positive_number_is_refused(speed: float) -> None:
    """At an infinite speed the realtime clock would run every timer at once, for ever."""
    with pytest.raises(InvalidError, match="speed: must be a finite number > 0"):
        SimBackend(clock="realtime", speed=speed)


@pytest.mark.parametrize("speed", [1e308, MAX_SPEED * 2])
def test_a_speed_past_the_most_the_model_can_follow_is_refused(speed: float) -> None:
    """At 1e308 the first tick would move the clock past the calendar: every call a 500."""
    with pytest.raises(InvalidError, match="speed: must be a finite number > 0 and at most"):
        SimBackend(clock="realtime", speed=speed)
    SimBackend(clock="realtime", speed=MAX_SPEED).close()


def test_an_advance_past_the_clock_end_is_refused_and_changes_nothing(
    backend: SimBackend,
) -> None:
    """The clock stops 100 years before the calendar ends: "forever" must stay a date."""
    before = backend.now()
    to_end = (CLOCK_END - before).total_seconds()
    with pytest.raises(InvalidError, match="seconds: would move the clock past 9900-"):
        backend.advance(to_end + 1)
    assert backend.now() == before


def test_near_the_clock_end_creates_pauses_and_timeouts_still_answer(
    backend: SimBackend,
) -> None:
    """An auto-pause create, a pause and a timeout change compute their deadlines, no overflow."""
    backend.advance((CLOCK_END - backend.now()).total_seconds() - 3600)
    auto = backend.create_sandbox(ALICE, CreateRequest("base", timeout=300, auto_pause=True))
    plain = backend.create_sandbox(ALICE, CreateRequest("base", timeout=300))
    backend.pause(ALICE, plain.sandbox_id)
    backend.set_timeout(ALICE, auto.sandbox_id, 600)
    assert backend.describe(ALICE, plain.sandbox_id).state == "paused"
    assert backend.describe(ALICE, auto.sandbox_id).state == "running"
    backend.advance(601)  # the auto-pause fires: paused, kept "forever"
    assert backend.describe(ALICE, auto.sandbox_id).state == "paused"


def test_a_realtime_clock_stops_at_the_clock_end() -> None:
    """The driver keeps virtual time at most :data:`CLOCK_END`; calls still answer there."""
    cluster = Cluster(seed=1, nodes=1, epoch=CLOCK_END - timedelta(hours=1))
    backend = SimBackend(cluster, clock="realtime", speed=MAX_SPEED)
    try:
        deadline = time.monotonic() + 10
        while backend.now() < CLOCK_END and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert backend.now() == CLOCK_END
        assert backend.list_sandboxes(ALICE, ListQuery()) == ([], None)
        assert backend.faults() == []
    finally:
        backend.close()


def _near_the_end(seconds: float, replicas: int) -> Cluster:
    """A cluster whose pool ``base`` of ``replicas`` is ready ``seconds`` before :data:`CLOCK_END`."""
    cluster = Cluster(seed=1, nodes=2, epoch=CLOCK_END - timedelta(seconds=seconds))
    cluster.apply(default_pools_yaml(replicas, pools=("base",)))
    cluster.advance(1)  # the manager's cache sees the pool
    cluster.wait_for_pool("base")
    return cluster


PAST_THE_END = "clock: the call needs the clock past 9900-01-24T23:59:59Z, where it stops"


def test_a_realtime_clock_at_its_end_answers_or_refuses_every_call() -> None:
    """docs/server.md: a realtime clock that reaches :data:`CLOCK_END` stands still.

    What needs no time is answered there; a call that would need the clock
    past its end (a timeout change waiting for the cache, a kill, a create)
    is refused at once with the error an advance past it gets, never left
    waiting for an instant that never comes.
    """
    cluster = _near_the_end(60, replicas=2)
    sbx = cluster.create_sandbox("base", user="alice", timeout=600)
    backend = SimBackend(cluster, clock="realtime", speed=200.0)
    try:
        deadline = time.monotonic() + 10
        while backend.now() < CLOCK_END and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.now() == CLOCK_END
        sid = f"default--{sbx.metadata.name}"
        assert outcome_within(5, lambda: backend.describe(ALICE, sid).state) == "running"
        for call in (
            partial(backend.set_timeout, ALICE, sid, 900),
            partial(backend.kill, ALICE, sid),
            partial(backend.create_sandbox, ALICE, CreateRequest("base")),
        ):
            for how in (call, partial(_finished, backend, call)):
                error = outcome_within(5, how)
                assert isinstance(error, InvalidError), error
                assert str(error).startswith(PAST_THE_END)
                assert error.field == "clock"
        assert backend.now() == CLOCK_END
    finally:
        backend.close()


def _finished(backend: SimBackend, call: Callable[[], T]) -> T:
    """``call`` as the server makes it: attempted, then finished if it was handed back."""
    outcome = backend.attempt(call)
    return outcome.finish() if isinstance(outcome, Pending) else outcome


def test_a_cancel_at_the_realtime_clocks_end_lands() -> None:
    """docs/server.md: on the realtime clock a cancel takes effect within one tick, at the end too.

    A create handed to the clock driver (the lock was busy) and cancelled
    before it started: at :data:`CLOCK_END` the driver still starts it and
    delivers its interrupt, both due at that very instant.
    """
    backend = SimBackend(_near_the_end(1, replicas=0), clock="realtime", speed=MAX_SPEED)
    try:
        deadline = time.monotonic() + 10
        while backend.now() < CLOCK_END and time.monotonic() < deadline:
            time.sleep(0.01)
        call = partial(backend.create_sandbox, BOB, CreateRequest("base", metadata=NO_STOCK_WAIT))
        with backend.locked(), ThreadPoolExecutor(1) as other:
            pending = other.submit(backend.attempt, call).result()  # the lock is busy: deferred
        assert isinstance(pending, Pending) and pending.cancel is not None
        pending.cancel()
        error = outcome_within(5, pending.finish)
        assert isinstance(error, ClaimCanceledError), error
        assert backend.records()[-1]["error"] == "context canceled"
    finally:
        backend.close()


def test_waiting_calls_never_move_the_virtual_clock_past_its_end() -> None:
    """A create that would wait past :data:`CLOCK_END` is refused as an advance past it is;
    the clock stays before the end, where ``advance(0)`` still runs what is due."""
    backend = SimBackend(_near_the_end(30, replicas=0), inline_budget_s=0)
    call = partial(backend.create_sandbox, BOB, CreateRequest("base", metadata=NO_STOCK_WAIT))
    try:
        for how in (call, partial(_finished, backend, call)):  # run here, or finished later
            with pytest.raises(InvalidError) as err:
                how()
            assert str(err.value).startswith(PAST_THE_END)
            assert backend.now() <= CLOCK_END
            backend.advance(0)
    finally:
        backend.close()


NEVER_TIMEOUT = {"e2b.agents.kruise.io/never-timeout": "true"}
NEVER_PULLS = pool_yaml("p", replicas=0, image='"Bad Image"')
"""Pool ``p``, empty, of an image that is no valid reference: it never pulls."""


def _unanswerable(inline_budget_s: float = 60.0) -> SimBackend:
    """A virtual backend whose pool ``p`` never gets a sandbox ready: its image never pulls."""
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(NEVER_PULLS)
    cluster.advance(1)
    return SimBackend(cluster, inline_budget_s=inline_budget_s)


def _claimed(backend: SimBackend) -> list[str]:
    return [
        s.metadata.name
        for s in backend.cluster.list("sbx")
        if s.metadata.labels.get(keys.LABEL_SANDBOX_CLAIMED) == "true"
    ]


def test_a_create_the_idle_model_can_never_answer_raises_no_answer_and_is_cancelled() -> None:
    """As :class:`Cluster` does: a typed 500 naming the create, not SimPy's bare
    ``RuntimeError``, and the claim cleans up rather than hold its locked sandbox."""
    backend = _unanswerable()
    try:
        with pytest.raises(NoAnswerError) as caught:
            backend.create_sandbox(ALICE, CreateRequest("p", metadata=NEVER_TIMEOUT))
        err = caught.value
        assert isinstance(err, ClaimCanceledError) and err.code == 500
        assert "create of template 'p'" in str(err) and "no event is left" in str(err)
        assert backend.cluster.now < 60  # the last event, not the far future
        record = backend.cluster.last_record()
        assert record.done and record.failed is not None and record.delivered is None
        assert _claimed(backend) == []
    finally:
        backend.close()


def test_a_create_attempted_then_finished_is_cut_the_same_way() -> None:
    backend = _unanswerable(inline_budget_s=0)
    call = partial(backend.create_sandbox, ALICE, CreateRequest("p", metadata=NEVER_TIMEOUT))
    try:
        with pytest.raises(NoAnswerError, match="create of template 'p'"):
            _finished(backend, call)
        assert _claimed(backend) == []
    finally:
        backend.close()


def _busy_unanswerable(inline_budget_s: float = 60.0) -> SimBackend:
    """A virtual backend whose pool ``p`` never gets a sandbox ready while the model keeps
    busy: every image pull fails, and the kubelet backs off and pulls again for ever."""
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0))
    cluster.inject("image_pull_failure")
    cluster.advance(1)
    return SimBackend(cluster, inline_budget_s=inline_budget_s)


@pytest.mark.parametrize("how", ["called", "attempted then finished"])
def test_a_create_the_busy_model_never_answers_ends_at_the_call_bound(how: str) -> None:
    """As :meth:`Cluster.create_sandbox`: a create with no claim timeout of its own gives up
    :data:`CREATE_CALL_BOUND_S` simulated seconds after it started (through the server's
    attempt and finish too), cancelled and cleaned up, rather than run the model on
    toward the clock's end."""
    backend = _busy_unanswerable(inline_budget_s=0)
    call = partial(backend.create_sandbox, ALICE, CreateRequest("p", metadata=NEVER_TIMEOUT))
    start = backend.cluster.now
    outcome: list[object] = []

    def create() -> None:
        try:
            outcome.append(call() if how == "called" else _finished(backend, call))
        except BaseException as exc:  # the answer under test
            outcome.append(exc)

    # In a thread with a wall-time limit: unbounded, the call runs the model on for
    # centuries of simulated time, and the test would hang rather than fail.
    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the create ran on past its bound, toward the clock's end"
    try:
        [err] = outcome
        assert isinstance(err, NoAnswerError), err
        assert f"no answer within {CREATE_CALL_BOUND_S:g} s" in str(err)
        assert "create of template 'p'" in str(err)
        assert start + CREATE_CALL_BOUND_S <= backend.cluster.now < start + CREATE_CALL_BOUND_S + 60
        assert backend.cluster.last_record().failed is not None
        assert _claimed(backend) == []
    finally:
        backend.close()


def test_a_create_with_a_claim_timeout_is_not_cut_by_the_call_bound_through_the_backend() -> None:
    backend = _busy_unanswerable()
    long = int(CREATE_CALL_BOUND_S) + 600
    meta = {**NEVER_TIMEOUT, "e2b.agents.kruise.io/claim-timeout-seconds": str(long)}
    try:
        with pytest.raises(ClaimError) as caught:
            backend.create_sandbox(ALICE, CreateRequest("p", metadata=meta))
        assert not isinstance(caught.value, NoAnswerError)
        assert "context deadline exceeded" in str(caught.value)
    finally:
        backend.close()


def test_realtime_clock_follows_the_wall_clock_and_fires_timeouts() -> None:
    backend = SimBackend.default(seed=1, replicas=3, clock="realtime", speed=50.0)
    try:
        with pytest.raises(InvalidError, match="realtime"):
            backend.advance(1)
        view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
        # Read before the call: at x50 a wall moment after it may already be a second later.
        start = backend.now()
        backend.set_timeout(ALICE, view.sandbox_id, 2)
        deadline = time.monotonic() + 20
        while backend.route(view.sandbox_id) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.route(view.sandbox_id) is None
        # shutdownTime is second-truncated, so the sandbox lives between 1 and 2 s.
        assert (backend.now() - start).total_seconds() >= 1
    finally:
        backend.close()


def test_realtime_calls_from_threads_are_answered() -> None:
    backend = SimBackend.default(seed=2, replicas=4, clock="realtime", speed=20.0)
    try:
        errors: list[BaseException] = []
        ids: list[str] = []
        lock = threading.Lock()

        def create() -> None:
            try:
                sid = backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id
            except BaseException as exc:
                errors.append(exc)
            else:
                with lock:
                    ids.append(sid)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert len(set(ids)) == 8
    finally:
        backend.close()


def test_closing_a_realtime_backend_releases_calls_still_waiting() -> None:
    backend = SimBackend.default(seed=4, replicas=1, clock="realtime", speed=1.0)
    backend.create_sandbox(ALICE, CreateRequest(template="base"))  # the pool is now empty
    backend.inject("pod_start_failure", selector={"template": "base"})  # and stays empty
    outcome: list[BaseException | str] = []

    def wait_for_stock() -> None:
        try:
            backend.create_sandbox(
                ALICE,
                CreateRequest(template="base", metadata=NO_STOCK_WAIT),
            )
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append("answered")

    thread = threading.Thread(target=wait_for_stock)
    thread.start()
    time.sleep(0.3)
    backend.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], RuntimeError), outcome


# -- attempt: answering on the caller's thread --------------------------------------------


def test_attempt_answers_quick_calls_at_once_and_raises_their_errors() -> None:
    backend = SimBackend.default(seed=3, replicas=2, inline_budget_s=60)
    try:
        view = backend.attempt(partial(backend.create_sandbox, ALICE, CreateRequest("base")))
        assert isinstance(view, SandboxView)
        described = backend.attempt(partial(backend.describe, ALICE, view.sandbox_id))
        assert isinstance(described, SandboxView) and described.state == "running"
        route = backend.attempt(partial(backend.route, view.sandbox_id))
        assert route is not None and not isinstance(route, Pending) and route.state == "running"
        assert backend.attempt(partial(backend.kill, ALICE, view.sandbox_id)) is None
        with pytest.raises(ClaimError) as err:
            backend.attempt(partial(backend.describe, ALICE, view.sandbox_id))
        assert err.value.code == 404
    finally:
        backend.close()


def test_attempt_never_waits_for_the_lock_and_starts_nothing_then(backend: SimBackend) -> None:
    before = len(backend.records())
    with held_elsewhere(backend):
        pending = backend.attempt(partial(backend.create_sandbox, ALICE, CreateRequest("base")))
        assert isinstance(pending, Pending)
    assert len(backend.records()) == before  # nothing was claimed yet
    view = pending.finish()
    assert backend.describe(ALICE, view.sandbox_id).state == "running"
    assert len(backend.records()) == before + 1


def test_a_create_past_the_budget_is_finished_once_and_as_a_direct_call_would() -> None:
    # A budget of 0 runs one batch of events; a cold create (the pool has one
    # sandbox, refilled meanwhile) needs more. The same seed must give the
    # same answers either way.
    direct = SimBackend.default(seed=5, replicas=1)
    attempted = SimBackend.default(seed=5, replicas=1, inline_budget_s=0)
    try:
        pendings = 0
        for _ in range(3):
            want = direct.create_sandbox(ALICE, CreateRequest("base"))
            got = attempted.attempt(partial(attempted.create_sandbox, ALICE, CreateRequest("base")))
            if isinstance(got, Pending):
                pendings += 1
                got = got.finish()
            assert got == want
            assert attempted.now() == direct.now()
        assert pendings >= 1
        assert len(attempted.records()) == len(direct.records()) == 3
    finally:
        direct.close()
        attempted.close()


def test_a_failure_past_the_budget_is_raised_by_finish_not_by_whoever_runs_the_model() -> None:
    backend = SimBackend.default(seed=3, replicas=1, inline_budget_s=0)
    try:
        backend.create_sandbox(ALICE, CreateRequest("base"))  # the pool is now empty
        backend.inject("pod_start_failure", selector={"template": "base"})  # and stays empty
        pending = backend.attempt(
            partial(backend.create_sandbox, ALICE, CreateRequest("base", metadata=NO_STOCK_WAIT))
        )
        assert isinstance(pending, Pending)
        backend.advance(700)  # the claim times out meanwhile: not this call's error
        with pytest.raises(ClaimError, match="no stock"):
            pending.finish()
    finally:
        backend.close()


def test_a_create_finished_after_an_advance_answers_the_sandbox_as_delivered() -> None:
    """A create handed back, then another client's advance past its timeout: still answered.

    The claim was delivered before the advance ran (its record says so), so
    the answer is the sandbox as delivered, not a 404 built at the later time.
    """
    backend = SimBackend.default(seed=3, replicas=1, inline_budget_s=0)
    try:
        backend.set_latency("pod.create", "120s")
        backend.create_sandbox(ALICE, CreateRequest("base", timeout=3600))  # the pool is empty
        pending = backend.attempt(
            partial(backend.create_sandbox, ALICE, CreateRequest("base", timeout=300))
        )
        assert isinstance(pending, Pending)
        backend.advance(1000)  # runs the claim to delivery, then past its 300 s
        view = pending.finish()
        record = backend.records()[-1]
        assert record["delivered"] is not None and record["error"] is None
        assert view.state == "running"
        assert view.started_at is not None and view.end_at is not None
        assert (view.end_at - view.started_at).total_seconds() == 300
        assert view.end_at < backend.now()  # it has ended since: answered all the same
    finally:
        backend.close()


def test_a_connect_finished_after_an_advance_answers_the_sandbox_as_resumed() -> None:
    """The same for a connect that resumes a paused sandbox: answered as resumed, not 404."""
    backend = SimBackend.default(seed=3, replicas=2, inline_budget_s=0)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base", timeout=3600))
        backend.pause(ALICE, view.sandbox_id)
        pending = backend.attempt(partial(backend.connect, ALICE, view.sandbox_id, 60))
        assert isinstance(pending, Pending)
        backend.advance(1000)  # the resume ends, then its 60 s run out
        resumed_view, resumed = pending.finish()
        assert resumed and resumed_view.state == "running"
        assert resumed_view.end_at is not None and resumed_view.end_at < backend.now()
    finally:
        backend.close()


def test_realtime_attempt_leaves_calls_that_wait_for_the_clock_to_finish() -> None:
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime", speed=20.0)
    try:
        pending = backend.attempt(partial(backend.create_sandbox, ALICE, CreateRequest("base")))
        assert isinstance(pending, Pending)
        view = pending.finish()
        assert backend.describe(ALICE, view.sandbox_id).state == "running"
        assert len(backend.records()) == 1
    finally:
        backend.close()


def test_a_realtime_call_goes_on_without_a_thread_and_says_when_it_is_ready() -> None:
    """Nobody calls ``finish`` until ``when_ready`` fires: the clock driver runs the call."""
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime", speed=50.0)
    try:
        backend.create_sandbox(ALICE, CreateRequest("base"))  # the pool is empty: a cold create
        pending = backend.attempt(partial(backend.create_sandbox, ALICE, CreateRequest("base")))
        assert isinstance(pending, Pending) and pending.when_ready is not None
        ready = threading.Event()
        pending.when_ready(ready.set)
        assert ready.wait(timeout=30)
        view = pending.finish()  # answers at once now
        assert backend.describe(ALICE, view.sandbox_id).state == "running"
        again = threading.Event()
        pending.when_ready(again.set)  # already ready: called right away
        assert again.is_set()
    finally:
        backend.close()


def test_a_realtime_call_attempted_while_the_lock_is_busy_is_started_by_the_clock() -> None:
    """Handed back unstarted (the lock was held), the driver starts it: still no thread needed."""
    backend = SimBackend.default(seed=2, replicas=2, clock="realtime", speed=50.0)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        with held_elsewhere(backend):
            pending = backend.attempt(partial(backend.set_timeout, ALICE, view.sandbox_id, 60))
            described = backend.attempt(partial(backend.describe, ALICE, view.sandbox_id))
        assert isinstance(pending, Pending) and pending.when_ready is not None
        assert isinstance(described, Pending) and described.when_ready is not None
        ready = threading.Event()
        pending.when_ready(ready.set)
        assert ready.wait(timeout=30)
        assert pending.finish() is None
        got = threading.Event()
        described.when_ready(got.set)
        assert got.wait(timeout=30)
        assert described.finish().sandbox_id == view.sandbox_id
        end = backend.describe(ALICE, view.sandbox_id).end_at
        assert end is not None and (end - backend.now()).total_seconds() <= 60
    finally:
        backend.close()


def test_closing_a_realtime_backend_readies_the_calls_awaited_without_a_thread() -> None:
    """``close`` settles waiting calls: ``when_ready`` fires and ``finish`` says closed."""
    backend = SimBackend.default(seed=4, replicas=1, clock="realtime", speed=1.0)
    pending = _stuck_create(backend)
    ready = threading.Event()
    assert pending.when_ready is not None
    pending.when_ready(ready.set)
    backend.close()
    assert ready.wait(timeout=10)
    with pytest.raises(RuntimeError, match="closed"):
        pending.finish()


# -- cancel: the client went away ---------------------------------------------------------


def _stuck_create(backend: SimBackend) -> Pending[SandboxView]:
    """A create that cannot be delivered for ~3,100 s: no stock, and new pods never pull."""
    backend.create_sandbox(ALICE, CreateRequest(template="base"))  # the pool is now empty
    backend.inject("image_pull_failure", selector={"image": "registry.example.com/e2b/base:v1"})
    pending = backend.attempt(partial(backend.create_sandbox, BOB, CreateRequest("base")))
    assert isinstance(pending, Pending) and pending.cancel is not None
    return pending


def _claimed_by(backend: SimBackend, user: str) -> list[str]:
    return [
        o.metadata.name
        for o in backend.list("Sandbox")
        if o.metadata.annotations.get(keys.ANN_OWNER) == user
    ]


def test_a_cancelled_create_stops_and_deletes_what_it_created() -> None:
    """Virtual clock: cancelled before it is finished, the claim stops at once and cleans up."""
    backend = SimBackend.default(seed=3, replicas=1, inline_budget_s=0)
    try:
        pending = _stuck_create(backend)
        t0 = backend.now()
        assert pending.cancel is not None
        pending.cancel()
        with pytest.raises(ClaimCanceledError, match="context canceled") as err:
            pending.finish()
        assert err.value.code == 500
        assert (backend.now() - t0).total_seconds() < 5  # not the ~3,100 s of the whole loop
        record = backend.records()[-1]
        assert record["owner"] == "bob" and record["error"] == "context canceled"
        backend.advance(5)
        assert _claimed_by(backend, "bob") == []  # the sandbox created for the claim is deleted
    finally:
        backend.close()


def test_another_call_running_the_model_delivers_the_cancel() -> None:
    """A cancelled create left to finish stops as soon as any call runs the model."""
    backend = SimBackend.default(seed=3, replicas=1, inline_budget_s=0)
    try:
        pending = _stuck_create(backend)
        assert pending.cancel is not None
        pending.cancel()
        backend.advance(600)  # an admin's clock advance: the claim stops at its start
        with pytest.raises(ClaimCanceledError):
            pending.finish()  # the claim has ended: this raises its error
        record = backend.records()[-1]
        assert record["owner"] == "bob" and record["error"] == "context canceled"
        assert record["failed"] - record["requested"] < 5  # not ~3,100 s later
    finally:
        backend.close()


def test_a_create_waiting_for_the_lock_can_be_cancelled() -> None:
    """Handed back because another call held the model, the create still honours a cancel."""
    backend = SimBackend.default(seed=3, replicas=1)
    backend.create_sandbox(ALICE, CreateRequest(template="base"))  # the pool is now empty
    backend.inject("pod_start_failure", selector={"template": "base"})  # and stays empty
    with held_elsewhere(backend):
        pending = backend.attempt(
            partial(backend.create_sandbox, ALICE, CreateRequest("base", metadata=NO_STOCK_WAIT))
        )
        assert isinstance(pending, Pending) and pending.cancel is not None
        pending.cancel()
    with pytest.raises(ClaimCanceledError):
        pending.finish()
    assert backend.records()[-1]["attempts"] == 1
    backend.close()


def test_cancel_stops_a_pause_waiting_for_its_sandbox_to_stop() -> None:
    """A pause handed back and cancelled stops waiting; its write goes on, and the sandbox pauses."""
    backend = SimBackend.default(seed=3, replicas=2, inline_budget_s=0)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        pending = backend.attempt(partial(backend.pause, ALICE, view.sandbox_id))
        assert isinstance(pending, Pending) and pending.cancel is not None
        pending.cancel()
        with pytest.raises(ClaimCanceledError):
            pending.finish()
        with backend.locked() as cluster:
            assert [e.detail for e in cluster.log.of_kind("manager.canceled")] == [
                f"pause {view.sandbox_id}"
            ]
        assert backend.describe(ALICE, view.sandbox_id).state == "paused"
    finally:
        backend.close()


def _claimed_under_lock(backend: SimBackend) -> list[str]:
    """:func:`_claimed`, read through the backend (a realtime clock runs meanwhile)."""
    return [
        o.metadata.name
        for o in backend.list("Sandbox")
        if o.metadata.labels.get(keys.LABEL_SANDBOX_CLAIMED) == "true"
    ]


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_a_create_attempted_cancelled_fails_context_canceled_and_claims_nothing(
    clock: str,
) -> None:
    """``attempt(cancelled=True)``: the client left before its create was reached.

    As upstream's claim whose request's context is already cancelled: it
    starts, stops at its first wait, and leaves its record ``context
    canceled``; a warm sandbox answered within the inline budget is not
    claimed for nobody. Both paths: the lock free (the pool's two warm
    sandboxes, then a cold create) and the lock held elsewhere.
    """
    backend = SimBackend.default(seed=3, replicas=2, clock=clock, speed=50.0)  # type: ignore[arg-type]
    try:

        def create_for_nobody() -> object:
            call = partial(backend.create_sandbox, BOB, CreateRequest("base"))
            try:
                got = backend.attempt(call, cancelled=True)
                return got.finish() if isinstance(got, Pending) else got
            except ClaimCanceledError as exc:
                return exc

        outcomes = [create_for_nobody() for _ in range(3)]
        with held_elsewhere(backend):
            call = partial(backend.create_sandbox, BOB, CreateRequest("base"))
            waiting = backend.attempt(call, cancelled=True)
        assert isinstance(waiting, Pending)
        outcomes.append(outcome_within(30, waiting.finish))

        assert all(isinstance(o, ClaimCanceledError) for o in outcomes), outcomes
        records = backend.records()
        assert [r["error"] for r in records] == ["context canceled"] * 4
        assert [r["delivered"] for r in records] == [None] * 4
        if clock == "virtual":
            backend.advance(5)
        assert _claimed_under_lock(backend) == []
        # The pool was left alone: a create whose client is there gets a warm sandbox.
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        assert backend.records()[-1]["warm"], backend.records()[-1]
        assert _claimed_under_lock(backend) == [view.sandbox_id.split("--")[1]]
    finally:
        backend.close()


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_a_pause_attempted_cancelled_writes_nothing(clock: str) -> None:
    """A pause reached after its client left stops before its write, as upstream's handler
    whose context is already cancelled: the sandbox runs on, the log says ``manager.canceled``."""
    backend = SimBackend.default(seed=3, replicas=2, clock=clock, speed=50.0)  # type: ignore[arg-type]
    try:
        view = backend.create_sandbox(ALICE, CreateRequest("base"))
        got = outcome_within(
            30,
            lambda: _answer(
                backend.attempt(partial(backend.pause, ALICE, view.sandbox_id), cancelled=True)
            ),
        )
        assert isinstance(got, ClaimCanceledError), got
        with backend.locked() as cluster:
            assert [e.detail for e in cluster.log.of_kind("manager.canceled")] == [
                f"pause {view.sandbox_id}"
            ]
        assert backend.describe(ALICE, view.sandbox_id).state == "running"
    finally:
        backend.close()


def _answer(outcome: T | Pending[T]) -> T:
    """The value of an attempt: answered at once, or finished once it is ready."""
    if not isinstance(outcome, Pending):
        return outcome
    if outcome.when_ready is not None:
        ready = threading.Event()
        outcome.when_ready(ready.set)
        assert ready.wait(timeout=30)
    return outcome.finish()


def _pending_creates(backend: SimBackend, n: int) -> list[Pending[SandboxView]]:
    """``n`` creates handed back at once (no stock, budget 0), each with its own metadata."""
    pending = [
        backend.attempt(
            partial(backend.create_sandbox, BOB, CreateRequest("base", metadata={"i": str(i)}))
        )
        for i in range(n)
    ]
    assert all(isinstance(p, Pending) and p.cancel is not None for p in pending)
    return pending  # type: ignore[return-value]


def test_cancels_are_delivered_in_the_order_the_clients_left() -> None:
    """DESIGN.md, Time: the creates whose clients left stop in the order the clients left.

    Not in the order of memory addresses: the interrupts are delivered in one
    instant, but who is stopped first decides who draws next from the seed.
    """
    backend = SimBackend.default(seed=3, replicas=0, inline_budget_s=0)
    try:
        pending = _pending_creates(backend, 3)
        for i in (2, 0, 1):
            cancel = pending[i].cancel
            assert cancel is not None
            cancel()
        backend.advance(2)
        names = [r["sandbox"] for r in backend.records()]  # in the order the creates came
        with backend.locked() as cluster:
            stopped = [e.detail.split()[1] for e in cluster.log.of_kind("claim.post_failed")]
        assert stopped == [names[2], names[0], names[1]]
    finally:
        backend.close()


_CANCEL_RUN = """
import hashlib, sys
from functools import partial
from pytest_kruise_agents.backends import Caller, CreateRequest, SimBackend

junk = [object() for _ in range(int(sys.argv[1]))]  # moves the addresses of what follows
backend = SimBackend.default(seed=3, inline_budget_s=0.0, replicas=0)
bob = Caller("default", "bob")
pending = [
    backend.attempt(partial(backend.create_sandbox, bob, CreateRequest("base", metadata={"i": str(i)})))
    for i in range(6)
]
for p in pending:
    p.cancel()
backend.advance(5)
print(hashlib.sha256(backend.cluster.log.text().encode()).hexdigest())
for r in backend.records():
    print(r["id"], r["sandbox"], repr(r["failed"]), r["error"])
"""


def test_the_same_cancels_give_the_same_log_whatever_the_memory_layout() -> None:
    """DESIGN.md, Time: the same seed and calls give the same event log, byte for byte.

    Six creates whose clients leave, run in fresh interpreters under other
    hash seeds and other allocations before them: one log, one set of records.
    """
    runs = []
    for hashseed, junk in (("0", "0"), ("1", "0"), ("2", "1000"), ("random", "37")):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run(
            [sys.executable, "-c", _CANCEL_RUN, junk],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        runs.append(proc.stdout)
    assert "context canceled" in runs[0]
    assert len(set(runs)) == 1, runs


def test_a_realtime_create_is_cancelled_while_it_waits_for_the_clock() -> None:
    """Realtime clock: the driver delivers the cancel; the waiting thread gets the error."""
    backend = SimBackend.default(seed=4, replicas=1, clock="realtime", speed=1.0)
    try:
        pending = _stuck_create(backend)
        outcome: list[BaseException] = []
        finished = threading.Event()

        def finish() -> None:
            try:
                pending.finish()
            except BaseException as exc:
                outcome.append(exc)
            finished.set()

        thread = threading.Thread(target=finish)
        thread.start()
        deadline = time.monotonic() + 30
        while not _claimed_by(backend, "bob") and time.monotonic() < deadline:
            time.sleep(0.05)  # until the claim has created a sandbox and waits for it
        assert not finished.is_set()
        assert len(_claimed_by(backend, "bob")) == 1
        assert pending.cancel is not None
        cancelled_at = time.monotonic()
        pending.cancel()
        assert finished.wait(timeout=10)
        assert time.monotonic() - cancelled_at < 2
        assert len(outcome) == 1 and isinstance(outcome[0], ClaimCanceledError), outcome
        deadline = time.monotonic() + 10
        while _claimed_by(backend, "bob") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _claimed_by(backend, "bob") == []
    finally:
        backend.close()


def test_a_bad_inline_budget_is_refused() -> None:
    with pytest.raises(InvalidError, match="inline_budget_s"):
        SimBackend(inline_budget_s=-1)


def test_a_long_generate_name_is_cut_so_the_name_fits_in_63(backend: SimBackend) -> None:
    """As the API server does (maxGeneratedNameLength): the prefix keeps its first 58
    characters, and the sandbox made from it is delivered as any other."""
    prefix = "sbx-" + "a" * 60 + "-"
    with backend.locked() as cluster:  # created: apply needs a name
        (made,) = cluster.create(
            {
                "apiVersion": "agents.kruise.io/v1alpha1",
                "kind": "Sandbox",
                "metadata": {"generateName": prefix},
                "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "py:3"}]}}},
            }
        )
    name = made.metadata.name
    assert len(name) == 63 and name.startswith(prefix[:58])
    backend.advance(60)
    sandbox = backend.get("Sandbox", name)
    assert isinstance(sandbox, Sandbox) and sandbox.status.phase == "Running"


@pytest.mark.parametrize("name", ["1", "007", "1.5", "yes", "null", "base"])
def test_default_pools_yaml_keeps_every_pool_name_a_string(name: str) -> None:
    """The marker's ``pools={name: n}``: a name YAML would read as a number, a boolean or
    null (``007``, ``yes``) is still the pool's name, and its pods' ``app`` label."""
    (pool,) = load_manifests(default_pools_yaml(2, pools=(name,)))
    assert isinstance(pool, SandboxSet)
    assert pool.metadata.name == name
    assert pool.spec.template is not None
    assert pool.spec.template["metadata"]["labels"] == {"app": name}


def test_a_realtime_cluster_opens_at_the_wall_clocks_now_however_long_its_build() -> None:
    """The driver never catches up a lag it starts with: the builds' time is made up first."""

    def slow_build(epoch: datetime) -> Cluster:
        cluster = Cluster(seed=1, epoch=epoch)
        cluster.apply(default_pools_yaml(2))
        cluster.wait_for_pool("base")
        time.sleep(0.7)  # a big pool takes seconds of wall time to fill
        return cluster

    before = datetime.now(UTC)
    cluster = opened(slow_build, start=None, realtime=True)
    after = datetime.now(UTC)
    # Bounds that hold however long the machine keeps this thread waiting: the clock reads
    # a date past both builds' sleeps (made up), and none past the wall clock's now (but for
    # the microseconds lost converting float seconds to dates).
    rounding = timedelta(milliseconds=1)
    assert before + timedelta(seconds=2 * 0.7) <= cluster.now_dt() <= after + rounding


def test_a_start_date_or_a_virtual_clock_is_taken_as_given() -> None:
    start = datetime(2030, 5, 1, 12, tzinfo=UTC)

    def build(epoch: datetime) -> Cluster:
        cluster = Cluster(seed=1, epoch=epoch)
        cluster.advance(7.5)  # what filling pools takes
        return cluster

    assert opened(build, start=start, realtime=True).now_dt() == start
    assert opened(build, start=start, realtime=False).now_dt() == start
    assert opened(build, start=None, realtime=False).now_dt() == datetime(
        2026, 1, 1, 0, 0, 7, 500000, tzinfo=UTC
    )


@pytest.mark.parametrize("realtime", [True, False])
def test_a_start_just_before_the_clocks_end_opens_there(realtime: bool) -> None:
    """The fill is measured at a date with room for it: from the start itself it would
    need the clock past its end."""
    start = CLOCK_END - timedelta(seconds=1)

    def build(epoch: datetime) -> Cluster:
        cluster = Cluster(seed=1, epoch=epoch)
        cluster.advance(7.5)  # what filling pools takes
        return cluster

    assert opened(build, start=start, realtime=realtime).now_dt() == start


def test_a_kill_in_a_namespace_holding_dashes_leaves_the_list_at_once() -> None:
    """An admin caller kills a sandbox of namespace ``team--x``: the very next list omits it.

    The wait for the manager's cache read the id at its first ``--`` (namespace ``team``),
    found nothing to wait for, and the list showed the killed sandbox until time moved on.
    """
    backend = SimBackend.default(seed=2, replicas=1)
    try:
        backend.apply(
            "apiVersion: agents.kruise.io/v1alpha1\n"
            "kind: SandboxSet\n"
            "metadata: {name: only, namespace: team--x}\n"
            "spec:\n"
            "  replicas: 1\n"
            "  runtimes: [{name: agent-runtime}]\n"
            "  template:\n"
            "    spec:\n"
            "      containers: [{name: sandbox, image: registry.example.com/s:v1}]\n"
        )
        backend.advance(60)
        admin = Caller(namespace="", user="admin")
        made = backend.create_sandbox(admin, CreateRequest(template="only"))
        assert made.sandbox_id.startswith("team--x--only-")
        backend.kill(admin, made.sandbox_id)
        page, _ = backend.list_sandboxes(admin, ListQuery())
        assert made.sandbox_id not in [v.sandbox_id for v in page]
    finally:
        backend.close()


def test_a_template_ref_sandbox_is_described_as_its_pod_runs(backend: SimBackend) -> None:
    """A warm sandbox's view keeps its pod's CPU and memory after the template changes or goes.

    The pod was made from the template as it was; an edit reaches only pods
    made later (docs/models.md), so the view describes the sandbox as it runs.
    """
    backend.apply(TEMPLATE_POOL)
    backend.advance(60)
    view = backend.create_sandbox(ALICE, CreateRequest(template="python"))
    assert backend.records()[-1]["warm"] is True
    backend.apply(TEMPLATE_POOL.replace('cpu: "2", memory: 1Gi', 'cpu: "4", memory: 8Gi'))
    backend.advance(1)
    described = backend.describe(ALICE, view.sandbox_id)
    assert (described.cpu_count, described.memory_mb) == (2, 1024)
    backend.delete("sbt", "python")
    backend.advance(1)
    described = backend.describe(ALICE, view.sandbox_id)
    assert (described.cpu_count, described.memory_mb) == (2, 1024)
    page, _ = backend.list_sandboxes(ALICE, ListQuery())
    (listed,) = [v for v in page if v.sandbox_id == view.sandbox_id]
    assert (listed.cpu_count, listed.memory_mb) == (2, 1024)


def test_warm_and_cold_template_ref_sandboxes_show_the_template_labels(
    backend: SimBackend,
) -> None:
    """The E2B metadata of pool and no-stock sandboxes both carry the template's user labels."""
    labelled = TEMPLATE_POOL.replace(
        "  template:\n    spec:", "  template:\n    metadata: {labels: {team: ml}}\n    spec:", 1
    )
    backend.apply(labelled)
    backend.advance(60)
    views = [backend.create_sandbox(ALICE, CreateRequest(template="python")) for _ in range(3)]
    assert [r["warm"] for r in backend.records()[-3:]] == [True, True, False]
    assert all(v.metadata.get("team") == "ml" for v in views)


def _served_with(refused: Callable[[SimBackend], object] | None) -> list[str]:
    """Through a virtual backend: a run stopped with events due at its instant, ``refused``
    called there (if any), then an apply and 5 s: the log, refused creates' lines left out."""
    cluster = Cluster(seed=0, nodes=1)
    cluster.apply(pool_yaml("p", replicas=3))
    cluster.run_until(lambda: len(cluster.log) >= 2)
    assert cluster.env.peek() == cluster.now  # more is due at this very instant
    backend = SimBackend(cluster)
    try:
        if refused is not None:
            lines, now = len(cluster.log), cluster.now
            with pytest.raises(ClaimError) as caught:
                refused(backend)
            assert caught.value.code in (400, 404)
            assert all("manager.claim_failed" in str(e) for e in list(cluster.log)[lines:])
            assert cluster.now == now
        cluster.apply(pool_yaml("p", replicas=1))
        backend.advance(5)
        return [str(e) for e in cluster.log if "manager.claim_failed" not in str(e)]
    finally:
        backend.close()


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(lambda b: b.kill(ALICE, "default--no-such"), id="kill-404"),
        pytest.param(lambda b: b.set_timeout(ALICE, "default--no-such", 60), id="set_timeout-404"),
        pytest.param(lambda b: b.pause(ALICE, "default--no-such"), id="pause-404"),
        pytest.param(lambda b: b.connect(ALICE, "default--no-such", 60), id="connect-404"),
        pytest.param(
            lambda b: b.create_sandbox(ALICE, CreateRequest(template="no-such")),
            id="create-unknown-400",
        ),
    ],
)
def test_a_call_the_manager_refuses_at_once_runs_nothing_of_the_model(
    refused: Callable[[SimBackend], object],
) -> None:
    """Virtual clock: a 404 or 400 decided at the call leaves the events due at its instant
    due, so the run goes on exactly as without the call (as ``Cluster``'s own calls do)."""
    assert _served_with(refused) == _served_with(None)


def test_a_list_without_states_lists_running_and_paused_sandboxes(backend: SimBackend) -> None:
    """``GET /v2/sandboxes`` without ``state``: both states (reference §6.7)."""
    a = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    b = backend.create_sandbox(ALICE, CreateRequest(template="base"))
    backend.pause(ALICE, b.sandbox_id)
    listed, _ = backend.list_sandboxes(ALICE, ListQuery())
    assert {v.sandbox_id: v.state for v in listed} == {
        a.sandbox_id: "running",
        b.sandbox_id: "paused",
    }


def test_a_template_shows_its_namespace_desired_and_available_sandboxes(
    backend: SimBackend,
) -> None:
    """``replicas`` is the pool's spec, ``available`` its ready sandboxes, not those creating.

    A SandboxSet is listed once the sandbox-manager's cache holds it, as upstream's manager
    lists it; what is shown of it is the stored set, the newest there is."""
    backend.apply(pool_yaml("fresh", replicas=3, namespace="team-a"))
    assert "fresh" not in [t.template_id for t in backend.templates(ADMIN)]
    backend.advance(1)
    pool = backend.get("sbs", "fresh", "team-a")
    assert isinstance(pool, SandboxSet) and pool.status.replicas > pool.status.available_replicas
    (view,) = [t for t in backend.templates(ADMIN) if t.template_id == "fresh"]
    assert (view.namespace, view.replicas, view.deleting) == ("team-a", 3, False)
    assert view.available == pool.status.available_replicas


def test_a_connect_without_a_timeout_takes_the_profiles_default() -> None:
    """Not a fixed 300 s: the cluster profile's ``default_timeout_s``, as a create's."""
    profile = get_profile("openkruise-head").with_overrides(default_timeout_s=600)
    cluster = Cluster(seed=3, profile=profile)
    cluster.apply(default_pools_yaml(2))
    cluster.advance(60)
    backend = SimBackend(cluster)
    try:
        view = backend.create_sandbox(ALICE, CreateRequest(template="base"))
        assert view.end_at is not None
        # Timeouts are whole seconds (reference §9.10): within a second of now + 600.
        assert abs(view.end_at - backend.now() - timedelta(seconds=600)) < timedelta(seconds=1)
        backend.advance(100)
        connected, resumed = backend.connect(ALICE, view.sandbox_id, None)
        assert not resumed
        assert connected.end_at is not None
        assert abs(connected.end_at - backend.now() - timedelta(seconds=600)) < timedelta(seconds=1)
    finally:
        backend.close()

"""The fault vocabulary (``simulator.faults``): what each kind takes and when a fault holds.

A field a kind would ignore is honoured where the peers' vocabulary gives it a
meaning, and refused otherwise, with the field and the reason; a selector
value the kind's decision point never supplies is refused. A ``watch_lag``
that ends (cleared, or its window over) stops holding watch events at once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, get_args

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import Pod
from simulator.context import SimContext
from simulator.faults import (
    FAULT_KINDS,
    SELECTOR_KEYS,
    FaultInjector,
    FaultKind,
    check_code,
    check_latency,
    check_selector,
)
from simulator.profile import get_profile
from simulator.world import World


def injector(seed: int = 1) -> FaultInjector:
    return FaultInjector(lambda: 0.0, random.Random(seed))


def test_injected_says_whether_any_fault_is_in_force() -> None:
    """``injected`` is ``bool(injector)`` as a plain attribute (the model reads it at every
    API request): true from the first inject until the last fault is cleared, one by one or
    all at once; a refused inject leaves it as it was."""
    faults = injector()
    assert not faults.injected
    with pytest.raises(InvalidError):
        faults.inject(kind="api_conflict", selector={"verb": "create"})
    assert not faults.injected
    first = faults.inject(kind="api_conflict", probability=0.5)
    second = faults.inject(kind="watch_lag", latency="1s")
    assert faults.injected
    faults.clear(first.id)
    assert faults.injected == bool(faults) is True
    faults.clear(second.id)
    assert faults.injected == bool(faults) is False
    faults.inject(kind="api_conflict", probability=0.5)
    faults.clear()
    assert faults.injected == bool(faults) is False


@pytest.mark.parametrize("verb", ["create", "delete", "get"])
def test_api_conflict_refuses_a_verb_the_api_server_never_consults_it_on(verb: str) -> None:
    """A 409 on a create, delete or get is never injected (only writes that compare a
    resourceVersion are): such a selector is refused, naming the field and the verbs."""
    faults = injector()
    with pytest.raises(InvalidError) as err:
        faults.inject(kind="api_conflict", selector={"verb": verb})
    assert err.value.field == "selector"
    assert f"never matches verb={verb!r}" in str(err.value)
    assert "update, update_status, patch" in str(err.value)
    assert len(faults) == 0


@pytest.mark.parametrize(
    ("kind", "key", "value", "why"),
    [
        ("pod_kill", "namespace", "Default NS", "a lowercase RFC 1123 namespace"),
        ("runtime_init_failure", "namespace", "", "a lowercase RFC 1123 namespace"),
        ("pod_kill", "template", "my pool", "a label value must consist of"),
        ("csi_mount_failure", "template", "x" * 64, "must be at most 63 characters"),
        ("image_pull_failure", "image", "NOT AN IMAGE", "invalid reference format"),
        ("pod_start_failure", "image", "busybox:", "invalid reference format"),
    ],
)
def test_a_selector_value_no_object_could_ever_carry_is_refused(
    kind: str, key: str, value: str, why: str
) -> None:
    """A namespace is a DNS-1123 label, a template a label value (the pods' and sandboxes'
    template label), an image one the kubelet can parse: anything else could never match, and
    the fault would stay idle for ever."""
    faults = injector()
    with pytest.raises(InvalidError) as err:
        faults.inject(kind=kind, selector={key: value})
    assert err.value.field == "selector"
    assert err.value.reason.startswith(f"{key}={value!r} can never match: ")
    assert why in err.value.reason
    assert len(faults) == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("namespace", "team-made-later"),
        ("template", "Pool_2.b"),  # a label value, if no SandboxSet name
        ("template", ""),  # a label may be empty
        ("image", "registry.example.com/not-pulled-yet:v9"),
    ],
)
def test_a_selector_may_name_what_does_not_exist_yet(key: str, value: str) -> None:
    """Names are checked for their form only: a fault may wait for a namespace, a pool or an
    image made after it."""
    assert injector().inject(kind="pod_start_failure", selector={key: value}).selector == {
        key: value
    }


@pytest.mark.parametrize("verb", ["update", "update_status", "patch"])
def test_api_conflict_takes_the_verbs_it_is_consulted_on(verb: str) -> None:
    assert injector().inject(kind="api_conflict", selector={"verb": verb}).selector == {
        "verb": verb
    }


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"kind": "controller_stall", "count": 1}, "count", "takes no count"),
        (
            {"kind": "node_loss", "count": 2, "selector": {"node": "n1"}},
            "count",
            "loses that one node",
        ),
        ({"kind": "pod_kill", "code": 503}, "code", "answers no status"),
        ({"kind": "node_loss", "code": 404}, "code", "answers no status"),
    ],
)
def test_a_field_the_kind_would_not_honour_is_refused(
    fields: dict[str, Any], field: str, why: str
) -> None:
    faults = injector()
    with pytest.raises(InvalidError) as err:
        faults.inject(**fields)
    assert err.value.field == field and why in str(err.value)
    assert len(faults) == 0


def test_api_conflict_takes_the_409_it_answers_and_no_other_code() -> None:
    """``code: 409`` on an api_conflict says what it answers: accepted (as it was before
    codes were checked per kind); another status is refused naming the 409."""
    faults = injector()
    assert faults.inject(kind="api_conflict", code=409).code == 409
    with pytest.raises(InvalidError, match="answers 409 Conflict, got 503") as err:
        faults.inject(kind="api_conflict", code=503)
    assert err.value.field == "code" and len(faults) == 1


def test_a_code_of_500_on_any_kind_is_the_default_a_dumped_fault_carries_back() -> None:
    faults = injector()
    dumped = faults.inject(kind="pod_kill").model_dump(exclude={"fired", "id"})
    assert faults.inject(**dumped).code == 500


def test_a_stall_with_probability_zero_never_holds() -> None:
    """A controller_stall's probability is drawn once, when first consulted in its window:
    at 0 it holds nothing, and it has ended (fired stays 0)."""
    faults = injector()
    f = faults.inject(kind="controller_stall", probability=0.0)
    assert faults.stall_of("sandboxset") is None
    assert f.fired == 0 and faults.consulted("controller_stall") == []


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_a_fault_of_probability_0_or_1_draws_no_random_number(probability: float) -> None:
    """Its outcome is certain (never fires, always fires): a draw would only shift every later
    one, so a run with such a fault draws what the same run without it (0) or at 1 draws."""
    rng = random.Random(7)
    faults = FaultInjector(lambda: 0.0, rng)
    faults.inject(kind="api_error", probability=probability)
    faults.inject(kind="api_latency", latency="fixed(1s)", probability=probability)
    faults.inject(kind="controller_stall", probability=probability)
    before = rng.getstate()
    fired = faults.check("api_error", verb="update")
    draws = faults.latency_draws("api_latency", verb="update")
    stall = faults.stall_of("sandboxset")
    assert rng.getstate() == before
    assert (fired is not None, len(draws), stall is not None) == (
        (True, 1, True) if probability else (False, 0, False)
    )


def test_a_fault_holds_from_its_start_up_to_but_not_at_the_end_of_its_window() -> None:
    """The window is ``[start, start + duration)``: a fault fires at its start, and not at
    its end, nor before it starts."""
    clock = [0.0]
    faults = FaultInjector(lambda: clock[0], random.Random(1))
    faults.inject(kind="api_error", start=10.0, duration=5.0)
    for at, fires in ((9.999, False), (10.0, True), (14.999, True), (15.0, False)):
        clock[0] = at
        assert (faults.check("api_error", verb="get") is not None) is fires, at


@pytest.mark.parametrize("seed", range(8))
def test_a_stall_draws_its_probability_once_for_its_window(seed: int) -> None:
    """Whatever the draw, every consult in the window gives the same answer."""
    faults = injector(seed)
    faults.inject(kind="controller_stall", probability=0.5)
    answers = {faults.stall_of(name) is not None for name in ["sandbox", "scheduler"] * 20}
    assert len(answers) == 1


# -- watch_lag: a fault that ends lets go of what it holds ------------------------------


def world_() -> World:
    profile = get_profile("openkruise-head").with_overrides(latencies={"watch.lag": 0.01})
    return World(SimContext(seed=1, profile=profile))


def add_pod(world: World, name: str) -> None:
    world.api.commit_create(
        Pod(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec={"containers": [{"name": "main", "image": "img"}]},
        )
    )


def seen(world: World) -> list[str]:
    return sorted(p.metadata.name for p in world.node_cache.list("Pod"))


def test_clearing_a_watch_lag_delivers_what_it_held_at_once() -> None:
    """Events a cleared watch_lag held arrive at the clear (their ordinary lag long past);
    later events take the ordinary lag."""
    world = world_()
    env = world.ctx.env
    f = world.ctx.faults.inject(
        kind="watch_lag", latency="fixed(10m)", selector={"informer": "kube-system"}
    )
    add_pod(world, "p1")
    env.run(until=1)
    add_pod(world, "p2")
    env.run(until=2)
    assert seen(world) == []
    world.ctx.faults.clear(f.id)
    env.run(until=2.001)
    assert seen(world) == ["p1", "p2"]
    add_pod(world, "p3")
    env.run(until=2.005)
    assert seen(world) == ["p1", "p2"]
    env.run(until=2.02)
    assert seen(world) == ["p1", "p2", "p3"]


def test_a_watch_lag_whose_window_ends_mid_delay_delivers_then() -> None:
    world = world_()
    env = world.ctx.env
    world.ctx.faults.inject(kind="watch_lag", latency="fixed(10m)", duration=5)
    add_pod(world, "p1")
    env.run(until=4.99)
    assert seen(world) == []
    env.run(until=5.001)
    assert seen(world) == ["p1"]


def test_a_held_event_keeps_the_lag_of_the_faults_still_in_force() -> None:
    """Only the ended fault's draw is dropped: another watch_lag in force still holds."""
    world = world_()
    env = world.ctx.env
    faults = world.ctx.faults
    long = faults.inject(kind="watch_lag", latency="fixed(10m)")
    faults.inject(kind="watch_lag", latency="fixed(20s)")
    add_pod(world, "p1")
    env.run(until=2)
    faults.clear(long.id)
    env.run(until=20)
    assert seen(world) == []
    env.run(until=20.02)
    assert seen(world) == ["p1"]


def test_events_behind_a_held_one_stay_in_order_when_it_is_let_go() -> None:
    """An event no fault delays waits behind a held one (a watch is in order), and both
    arrive, in order, when the fault holding the first is cleared."""
    world = world_()
    env = world.ctx.env
    order: list[str] = []
    world.node_cache.add_handler("Pod", lambda _t, _old, new: order.append(new.metadata.name))
    f = world.ctx.faults.inject(
        kind="watch_lag", latency="fixed(10m)", count=1, selector={"informer": "kube-system"}
    )
    add_pod(world, "p1")
    env.run(until=1)
    add_pod(world, "p2")  # the fault is used up: no lag of its own, but behind p1
    env.run(until=2)
    assert order == []
    world.ctx.faults.clear(f.id)
    env.run(until=2.001)
    assert order == ["p1", "p2"]


_A_VALUE_OF = {
    "verb": "update",  # one every API kind's decision point supplies (api_conflict: writes)
    "kind": "Sandbox",
    "client": "sandbox-manager",
    "informer": "sandbox-manager",
    "controller": "sandboxset",
    "template": "base",
    "namespace": "default",
    "node": "node-1",
    "image": "registry.example.com/sandbox:v1",
}
"""A value of each selector key, one every kind that selects by the key can match."""


def _takes(check: Callable[..., None], *args: Any) -> bool:
    """Whether ``check(*args)`` passes (raises no ValueError)."""
    try:
        check(*args)
    except ValueError:
        return False
    return True


def _described(description: str) -> tuple[set[str], set[str]]:
    """The selector keys and parameters a FAULT_KINDS description ends with, in parentheses."""
    parts = re.search(r"\(([^()]*)\)$", description)
    assert parts is not None, description
    named: dict[str, set[str]] = {"selector:": set(), "param": set()}
    for part in parts.group(1).split(";"):
        head, _, rest = part.strip().partition(" ")
        named[head] |= {word.strip() for word in rest.split(",")}
    return named["selector:"], named["param"]


def test_fault_kinds_describes_every_kind() -> None:
    """FAULT_KINDS, SELECTOR_KEYS and the FaultKind type name the same kinds."""
    assert list(FAULT_KINDS) == list(get_args(FaultKind)) == list(SELECTOR_KEYS)
    assert set(_A_VALUE_OF) == set().union(*SELECTOR_KEYS.values())


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_fault_kinds_names_the_selector_keys_and_params_a_fault_of_the_kind_takes(
    kind: str,
) -> None:
    """The public description of a kind says what its checks accept, no more and no less:
    ``runtime_init_failure`` said "selector: template" while it selects by namespace too."""
    selectors, params = _described(FAULT_KINDS[kind])
    taken = {
        key for key, value in _A_VALUE_OF.items() if _takes(check_selector, kind, {key: value})
    }
    assert selectors == taken
    assert ("latency" in params) == _takes(check_latency, kind, "1s")
    assert ("code" in params) == _takes(check_code, kind, 503)

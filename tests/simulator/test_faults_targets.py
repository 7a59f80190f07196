"""Which faults a decision point examines: only those that can apply to its target.

The injector files each consulted fault by one entry of its selector (its
client, node, informer, controller, template, namespace, kind, image or verb,
the first of these it names) and a decision point reads the faults filed
under its own target's attributes and those that name none. What fires, what
is drawn from the seeded generator and in which order stay exactly those of a
consult of every fault in force in injection order: the tests compare the two.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulator.faults import SELECTOR_KEYS, Fault, FaultInjector


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_VALUES: dict[str, tuple[str | None, ...]] = {
    "verb": ("update", "patch", "create"),
    "kind": ("Sandbox", "Pod"),
    "client": ("sandbox-manager", "kubelet/node-1", "kubelet/node-2"),
    "node": ("node-1", "node-2", "node-3"),
    "template": ("base", "other", None),
    "namespace": ("default", "team"),
    "image": ("img:v1", "img:v2"),
}
"""What the generated selectors and targets name: few values, so that many faults match."""

_KINDS = ("api_latency", "api_error", "api_conflict", "pod_start_failure", "image_pull_slow")


def _random_fault(rng: random.Random, now: float) -> dict[str, Any]:
    kind = rng.choice(_KINDS)
    keys = sorted(SELECTOR_KEYS[kind])
    selector = {}
    for key in rng.sample(keys, rng.randrange(len(keys) + 1)):
        value = rng.choice([v for v in _VALUES[key] if v is not None])
        if kind == "api_conflict" and key == "verb":
            value = rng.choice(("update", "patch"))
        selector[key] = value
    fields: dict[str, Any] = {
        "kind": kind,
        "selector": selector,
        "probability": rng.choice((1.0, 0.5, 0.2)),
        "count": rng.choice((None, None, 1, 3)),
    }
    if kind in ("api_latency", "image_pull_slow"):
        fields["latency"] = "uniform(0, 1s)"
    if rng.random() < 0.3:
        fields["start"] = now + rng.uniform(0, 20)
    if rng.random() < 0.3:
        fields["duration"] = rng.uniform(1, 30)
    return fields


def _random_target(rng: random.Random, kind: str) -> dict[str, str | None]:
    return {key: rng.choice(_VALUES[key]) for key in sorted(SELECTOR_KEYS[kind])}


class _Scan:
    """The reference: every fault in force consulted in injection order, on its own copies."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.faults: list[Fault] = []

    def check(self, kind: str, now: float, attrs: dict[str, str | None]) -> str | None:
        for f in self.faults:
            if f.kind != kind or not f.active(now) or not f.matches(attrs):
                continue
            if f.probability >= 1.0 or self.rng.random() < f.probability:
                f.fired += 1
                return f.id
        return None

    def draws(self, kind: str, now: float, attrs: dict[str, str | None]) -> list[tuple[str, float]]:
        out = []
        for f in self.faults:
            if f.kind != kind or not f.active(now) or not f.matches(attrs):
                continue
            if f.latency is not None and (
                f.probability >= 1.0 or self.rng.random() < f.probability
            ):
                f.fired += 1
                out.append((f.id, f.latency.sample(self.rng)))
        return out


@pytest.mark.parametrize("seed", range(6))
def test_the_faults_fire_and_draw_as_a_consult_of_every_fault_would(seed: int) -> None:
    """Random faults (selectors on every key, probabilities, counts, windows ahead and
    closing, clears) and random targets: each consult fires the same fault, draws the
    same numbers in the same order and leaves the generator where a scan of every fault
    in force in injection order does."""
    plan = random.Random(seed)
    clock = _Clock()
    drawn = random.Random(seed)
    injector = FaultInjector(clock, drawn)
    scan = _Scan(random.Random(seed))
    consults = fired = 0
    for _ in range(1500):
        roll = plan.random()
        if roll < 0.2:
            added = injector.inject(_random_fault(plan, clock.now))
            scan.faults.append(added.model_copy())
        elif roll < 0.23 and scan.faults:
            gone = plan.choice(scan.faults)
            injector.clear(gone.id)
            scan.faults.remove(gone)
        elif roll < 0.3:
            clock.now += plan.uniform(0, 5)
        else:
            kind = plan.choice(_KINDS)
            attrs = _random_target(plan, kind)
            consults += 1
            if kind == "api_latency":
                got = [(f.id, d) for f, d in injector.latency_draws(kind, **attrs)]
                assert got == scan.draws(kind, clock.now, attrs)
                fired += bool(got)
            elif kind == "image_pull_slow":
                hit = injector.replacing_draw(kind, **attrs)
                expected = scan.check(kind, clock.now, attrs)
                want = None if expected is None else (expected, scan.rng.uniform(0, 1))
                assert (None if hit is None else (hit[0].id, hit[1])) == want
                fired += hit is not None
            else:
                f = injector.check(kind, **attrs)
                assert (None if f is None else f.id) == scan.check(kind, clock.now, attrs)
                fired += f is not None
            assert drawn.getstate() == scan.rng.getstate()
    assert [(f.id, f.fired) for f in injector.faults] == [(f.id, f.fired) for f in scan.faults]
    assert consults > 500 and fired > 100  # the comparison saw faults fire


@pytest.fixture
def examined(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts of the calls of ``Fault.active`` (a fault examined by a consult)."""
    counts: Counter[str] = Counter()
    original: Callable[[Fault, float], bool] = Fault.active

    def counting(self: Fault, now: float) -> bool:
        counts[self.id] += 1
        return original(self, now)

    monkeypatch.setattr(Fault, "active", counting)
    yield counts


def test_a_consult_examines_only_the_faults_that_can_apply_to_its_target(
    examined: Counter[str],
) -> None:
    """10,000 open faults of a kind on other targets (other nodes' kubelets, another kind,
    another namespace) cost a consult nothing: it examines the faults filed under its own
    target and those that select nothing (each consult examined all 10,000)."""
    injector = FaultInjector(_Clock(), random.Random(1))
    for i in range(10_000):
        if i % 2:
            selector = {"client": f"kubelet/node-{i % 97 + 10}"}
        else:
            selector = {"kind": "SandboxTemplate", "verb": "delete"}
        injector.inject(kind="api_latency", latency="10ms", selector=selector)
        injector.inject(kind="pod_start_failure", selector={"namespace": f"team-{i}"})
    anyone = injector.inject(kind="api_latency", latency="1ms", probability=0.5)
    mine = injector.inject(kind="api_latency", latency="2ms", selector={"client": "kubelet/node-1"})
    extra = injector.extra_latency(
        "api_latency", verb="update", kind="Pod", client="kubelet/node-1"
    )
    assert extra in (pytest.approx(0.002), pytest.approx(0.003))
    assert set(examined) == {anyone.id, mine.id}
    examined.clear()
    f = injector.check(
        "pod_start_failure", node="node-1", template="base", namespace="default", image="img:v1"
    )
    assert f is None and sum(examined.values()) == 0
    team = injector.check(
        "pod_start_failure", node="node-1", template="base", namespace="team-42", image="img:v1"
    )
    assert team is not None and team.selector == {"namespace": "team-42"}
    assert sum(examined.values()) == 1


def test_a_fault_filed_under_one_entry_still_matches_on_all_of_them() -> None:
    """A fault is filed under one entry of its selector, but fires only where every entry
    matches; several shelves are read in injection order (the first injected fires)."""
    injector = FaultInjector(_Clock(), random.Random(1))
    both = injector.inject(
        kind="api_error", selector={"client": "sandbox-manager", "verb": "patch"}
    )
    verb = injector.inject(kind="api_error", code=503, selector={"verb": "update"})
    anyone = injector.inject(kind="api_error", code=502)

    def fires(verb: str, client: str) -> Fault | None:
        return injector.check("api_error", verb=verb, kind="Sandbox", client=client)

    assert fires("patch", "sandbox-manager") is both
    assert fires("update", "sandbox-manager") is verb
    assert fires("patch", "kube-scheduler") is anyone
    assert fires("get", "kubelet/node-1") is anyone
    injector.clear(verb.id)
    assert fires("update", "sandbox-manager") is anyone


def test_a_fault_whose_count_is_used_up_leaves_the_consulted_faults_at_once() -> None:
    """The consult that uses up a fault's ``count`` retires it: it is not left among the
    consulted faults until some later consult of its target walks over it."""
    injector = FaultInjector(_Clock(), random.Random(1))
    once = injector.inject(kind="api_conflict", count=1, selector={"client": "sandbox-manager"})
    lag = injector.inject(kind="watch_lag", count=2, latency="1ms")
    hit = injector.check("api_conflict", verb="update", kind="Sandbox", client="sandbox-manager")
    assert hit is once and once.fired == 1
    assert injector.consulted("api_conflict") == []
    for _ in range(2):
        injector.latency_draws("watch_lag", informer="sandbox-manager")
    assert lag.fired == 2 and injector.consulted("watch_lag") == []
    assert injector.faults == [once, lag]  # listed until cleared, as any fault that ended

"""Equal conditions are shared between stored objects (simulator.interning)."""

from __future__ import annotations

from datetime import UTC, datetime

from pytest_kruise_agents.api.meta import Condition, set_condition
from simulator.cluster import Cluster
from simulator.interning import ConditionInterner

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cond(status: str = "True", reason: str = "PodReady", at: datetime = T0) -> Condition:
    """A Ready condition."""
    return Condition(type="Ready", status=status, reason=reason, last_transition_time=at)


def test_equal_conditions_come_back_as_the_first_seen() -> None:
    """The interner answers an equal condition with the one it saw first, a different one as is."""
    intern = ConditionInterner()
    first = intern(cond())
    assert intern(cond()) is first
    other = cond(status="False")
    assert intern(other) is other
    assert len(intern) == 2


def test_the_table_is_bounded() -> None:
    """Past its size limit the table starts again instead of growing."""
    intern = ConditionInterner()
    for i in range(20_000):
        intern(cond(reason=f"r{i}"))
    assert len(intern) <= 8192


def test_set_condition_interns_what_goes_in() -> None:
    """set_condition(intern=...) stores the interned condition, keeping the transition time."""
    intern = ConditionInterner()
    shared = intern(cond())
    conds = [cond(at=T0)]
    set_condition(conds, cond(at=datetime(2026, 1, 2, tzinfo=UTC)), intern=intern)
    assert conds == [shared] and conds[0] is shared


def test_pool_sandboxes_share_their_conditions() -> None:
    """In a filled pool, equal Ready conditions of different sandboxes are one object."""
    cluster = Cluster(seed=3, nodes=2, log=False)
    cluster.apply(
        """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 6
  template:
    spec:
      containers: [{name: main, image: python:3.12}]
"""
    )
    cluster.wait_for_pool("base", timeout=600)
    ready: dict[tuple[object, ...], set[int]] = {}
    for sbx in cluster.list("Sandbox"):
        for c in sbx.status.conditions:
            key = (c.type, c.status, c.reason, c.message, c.last_transition_time)
            ready.setdefault(key, set()).add(id(c))
    assert ready and all(len(ids) == 1 for ids in ready.values())
    assert sum(1 for _ in ready) < 6 * 2

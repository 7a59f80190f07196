"""Equal conditions are shared between stored objects (simulator.interning)."""

from __future__ import annotations

from datetime import UTC, datetime

from pytest_kruise_agents.api.copying import deep_copy, shallow_copy
from pytest_kruise_agents.api.meta import Condition, ObjectMeta, set_condition
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.sandbox import Sandbox
from simulator.cluster import Cluster
from simulator.interning import ConditionInterner, FieldsSetInterner

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


POOL = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 6
  template:
    spec:
      containers: [{name: main, image: python:3.12}]
"""


def filled_pool() -> Cluster:
    """A cluster whose pool of 6 is ready."""
    cluster = Cluster(seed=3, nodes=2, log=False)
    cluster.apply(POOL)
    cluster.wait_for_pool("base", timeout=600)
    return cluster


def sandbox(name: str, **labels: str) -> Sandbox:
    """A bare Sandbox with one condition in its status."""
    return Sandbox.model_validate(
        {
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"phase": "Running", "conditions": [cond().to_dict()]},
        }
    )


def fields_sets(obj: Sandbox) -> list[set[str]]:
    """The fields-sets of the models of ``obj``: root, metadata, spec, status, conditions."""
    models = [obj, obj.metadata, obj.spec, obj.status, *obj.status.conditions]
    return [m.__pydantic_fields_set__ for m in models]


def test_models_of_equal_shape_share_one_fields_set() -> None:
    """Two stored objects built alike end up with the same set objects, equal to what they had."""
    share = FieldsSetInterner()
    a, b = sandbox("a"), sandbox("b")
    before = [set(s) for s in fields_sets(a)]
    share(a)
    share(b)
    assert all(x is y for x, y in zip(fields_sets(a), fields_sets(b), strict=True))
    assert fields_sets(a) == before
    assert a.metadata.model_fields_set == {"name", "namespace", "labels"}


def test_models_of_different_shape_keep_different_sets() -> None:
    """A model with other fields set gets the shared set of its own value."""
    share = FieldsSetInterner()
    a = sandbox("a")
    other = ObjectMeta(name="b", namespace="default", annotations={"k": "v"})
    b = sandbox("b").model_copy(update={"metadata": other})
    share(a)
    share(b)
    assert a.metadata.__pydantic_fields_set__ is not b.metadata.__pydantic_fields_set__
    assert b.metadata.model_fields_set == {"name", "namespace", "annotations"}
    assert a.spec.__pydantic_fields_set__ is b.spec.__pydantic_fields_set__


def test_a_copy_made_to_write_has_its_own_set() -> None:
    """Setting a field on a copy of a stored object leaves the stored object's set alone."""
    share = FieldsSetInterner()
    stored, twin = sandbox("a"), sandbox("b")
    share(stored)
    share(twin)
    for copy in (shallow_copy(stored.metadata), deep_copy(stored).metadata):
        assert copy.__pydantic_fields_set__ is not stored.metadata.__pydantic_fields_set__
        copy.generate_name = "x-"
        assert "generate_name" in copy.model_fields_set
    assert "generate_name" not in stored.metadata.model_fields_set
    assert "generate_name" not in twin.metadata.model_fields_set


def test_pool_objects_share_their_fields_sets() -> None:
    """In a filled pool, the sandboxes' and pods' models hold a handful of distinct sets."""
    cluster = filled_pool()
    sets: dict[int, set[str]] = {}
    objects: list[Sandbox | Pod] = [
        *cluster.world.api.peek_list("Sandbox"),
        *cluster.world.api.peek_list("Pod"),
    ]
    for obj in objects:
        for model in (obj, obj.metadata, obj.status):
            sets[id(model.__pydantic_fields_set__)] = model.__pydantic_fields_set__
    assert len(objects) == 12
    assert len(sets) <= 8, sets


def test_pool_sandboxes_share_their_conditions() -> None:
    """In a filled pool, equal Ready conditions of different sandboxes are one object."""
    cluster = filled_pool()
    ready: dict[tuple[object, ...], set[int]] = {}
    for sbx in cluster.world.api.peek_list("Sandbox"):
        for c in sbx.status.conditions:
            key = (c.type, c.status, c.reason, c.message, c.last_transition_time)
            ready.setdefault(key, set()).add(id(c))
    assert ready and all(len(ids) == 1 for ids in ready.values())
    assert sum(1 for _ in ready) < 6 * 2

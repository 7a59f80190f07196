"""The API server's lists: a namespaced list is the list of all namespaces, filtered.

``peek_list(kind)`` gives a kind's stored objects in creation order (an
update keeps an object's place; a delete and a create of the same name put it
last); ``peek_list(kind, namespace)`` gives that namespace's in the same
order, and reads only that namespace's objects, however many others hold.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World

NAMESPACES = ("default", "team-a", "team-b")


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(
    name: str, namespace: str, cls: type[SandboxClaim] = SandboxClaim, *, held: bool = False
) -> SandboxClaim:
    return cls(
        metadata=ObjectMeta(
            name=name, namespace=namespace, finalizers=["example.com/hold"] if held else []
        ),
        spec=SandboxClaimSpec(template_name="base"),
    )


def filtered(world: World, namespace: str) -> list[Any]:
    """The list of all namespaces with only ``namespace``'s objects kept, as a scan would."""
    return [o for o in world.api.peek_list("SandboxClaim") if o.metadata.namespace == namespace]


def test_a_namespaced_list_keeps_the_order_of_the_list_of_all_namespaces() -> None:
    """Through creates, updates, deletes (some held by a finalizer, marked, then let go by
    an update) and creates again of the same names, in three namespaces, each namespace
    lists the very objects the list of all has, in its order."""
    world = world_()
    api = world.api
    rng = random.Random(7)
    expected: dict[str, None] = {}  # "ns/name" in creation order: what the full list must be
    marked = 0
    for step in range(400):
        namespace = rng.choice(NAMESPACES)
        name = f"c{rng.randrange(12)}"
        key = f"{namespace}/{name}"
        stored = api.peek("SandboxClaim", namespace, name)
        if stored is None:
            api.commit_create(claim(name, namespace, held=rng.random() < 0.3))
            expected[key] = None
        elif rng.random() < 0.5:
            changed = stored.model_copy(deep=True)
            changed.metadata.labels = {"step": str(step)}
            if changed.metadata.deletion_timestamp is not None:
                changed.metadata.finalizers = []  # lets the marked object go
                del expected[key]
            api.commit_update(changed)  # keeps its place (or removes it)
        elif stored.metadata.finalizers:
            api.commit_delete("SandboxClaim", namespace, name)  # marked: stays in its place
        else:
            api.commit_delete("SandboxClaim", namespace, name)
            del expected[key]
        everything = api.peek_list("SandboxClaim")
        marked += sum(o.metadata.deletion_timestamp is not None for o in everything)
        keys = [f"{o.metadata.namespace}/{o.metadata.name}" for o in everything]
        assert keys == list(expected)
        for ns in NAMESPACES:
            listed = api.peek_list("SandboxClaim", ns)
            assert [id(o) for o in listed] == [id(o) for o in filtered(world, ns)]
    assert marked, "no object was held by its finalizer"
    assert api.peek_list("SandboxClaim", "nowhere") == []
    assert api.peek_list("Pod", "default") == []


def test_an_update_keeps_its_place_and_a_name_made_anew_goes_last() -> None:
    world = world_()
    api = world.api
    for name in ("a", "b", "c"):
        api.commit_create(claim(name, "default"))
    stored = api.peek("SandboxClaim", "default", "b")
    assert stored is not None
    b = stored.model_copy(deep=True)
    b.metadata.labels = {"changed": "yes"}
    api.commit_update(b)
    assert [o.metadata.name for o in api.peek_list("SandboxClaim", "default")] == ["a", "b", "c"]
    api.commit_delete("SandboxClaim", "default", "a")
    api.commit_create(claim("a", "default"))
    assert [o.metadata.name for o in api.peek_list("SandboxClaim", "default")] == ["b", "c", "a"]
    for name in ("a", "b", "c"):
        api.commit_delete("SandboxClaim", "default", name)
    assert api.peek_list("SandboxClaim", "default") == []
    api.commit_create(claim("z", "default"))  # the namespace emptied, then used again
    assert [o.metadata.name for o in api.peek_list("SandboxClaim", "default")] == ["z"]


reads: Counter[str] = Counter()


class _Watched(SandboxClaim):
    """A SandboxClaim that counts the reads of its metadata (the store keeps its class)."""

    def __getattribute__(self, name: str) -> Any:
        if name == "metadata":
            reads[name] += 1
        return super().__getattribute__(name)


def test_a_namespaced_list_reads_no_object_of_another_namespace() -> None:
    """A list of one namespace costs what that namespace holds: 2,000 objects in other
    namespaces are not walked (each was read once per list: a team's list of its own
    few sandboxes cost a walk of every team's)."""
    world = world_()
    api = world.api
    for i in range(3):
        api.commit_create(claim(f"mine-{i}", "default"))
    for i in range(2000):
        api.commit_create(claim(f"theirs-{i}", f"team-{i % 50}", cls=_Watched))
    assert isinstance(api.peek("SandboxClaim", "team-0", "theirs-0"), _Watched)
    reads.clear()
    listed = api.peek_list("SandboxClaim", "default")
    assert [o.metadata.name for o in listed] == ["mine-0", "mine-1", "mine-2"]
    assert reads["metadata"] == 0
    assert len(api.peek_list("SandboxClaim", "team-7")) == 40

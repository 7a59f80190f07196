"""The API server's error answers carry Kubernetes' own messages.

The kube-apiserver names an object by its group-qualified resource
(``errors.NewNotFound(qualifiedResource, name)`` and the like):
``sandboxes.agents.kruise.io "x" not found``, ``pods "x" already exists``. A
stale ``resourceVersion`` answers the same ``Operation cannot be fulfilled on
...: the object has been modified`` to an update and to a patch, and a delete's
preconditions answer ``storage.Preconditions.Check``'s text; both
preconditions are checked before the admission webhooks (``BeforeDelete``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from simulator.apiserver import ApiError, Op
from simulator.cluster import Cluster
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World

MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(world: World, name: str = "job") -> SandboxClaim:
    stored: SandboxClaim = world.api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    return stored


def answer(world: World, op: Callable[[], Op]) -> ApiError:
    """The error the API server answers ``op`` (a verb's sub-process) with."""
    env = world.ctx.env
    proc = env.process(op())
    with pytest.raises(ApiError) as caught:
        env.run(until=proc)
    return caught.value


def keep(_obj: Any) -> None:
    """A patch's mutation that changes nothing."""


def relabelled(obj: Any) -> Any:
    copy = deep_copy(obj)
    copy.metadata.labels = {"changed": "yes"}
    return copy


def test_an_absent_object_is_named_by_its_qualified_resource() -> None:
    world = world_()
    api, client = world.api, world.controller_client
    got = answer(world, lambda: api.get(client, "SandboxClaim", "default", "nope"))
    assert (got.code, got.reason) == (404, "NotFound")
    assert got.message == 'sandboxclaims.agents.kruise.io "nope" not found'
    pod = answer(world, lambda: api.delete(client, "Pod", "default", "nope"))
    assert pod.message == 'pods "nope" not found'
    patched = answer(world, lambda: api.patch(client, "Sandbox", "default", "nope", keep))
    assert patched.message == 'sandboxes.agents.kruise.io "nope" not found'


def test_a_second_create_of_a_name_already_exists() -> None:
    world = world_()
    claim(world)
    with pytest.raises(ApiError) as caught:
        claim(world)
    assert (caught.value.code, caught.value.reason) == (409, "AlreadyExists")
    assert caught.value.message == 'sandboxclaims.agents.kruise.io "job" already exists'


def test_an_update_and_a_patch_on_a_stale_version_answer_the_same_conflict() -> None:
    world = world_()
    api, client = world.api, world.controller_client
    old = claim(world)
    api.commit_update(relabelled(old))
    expected = f'Operation cannot be fulfilled on sandboxclaims.agents.kruise.io "job": {MODIFIED}'
    update = answer(world, lambda: api.update(client, relabelled(old)))
    rv = old.metadata.resource_version
    patch = answer(
        world,
        lambda: api.patch(client, "SandboxClaim", "default", "job", keep, resource_version=rv),
    )
    for err in (update, patch):
        assert (err.code, err.reason, err.message) == (409, "Conflict", expected)
        assert err.is_conflict


@pytest.mark.parametrize("version", ["", "0", "000"])
def test_an_update_or_patch_with_a_version_of_zero_or_none_is_unconditional(version: str) -> None:
    """As ``Store.Update``: a resourceVersion that is empty or parses to 0 asks for no
    compare-and-swap. A stale copy carrying one is written over the newer stored object
    (and a patch under it applies), where a stale non-zero version answers 409."""
    world = world_()
    api, client = world.api, world.controller_client
    old = claim(world)
    api.commit_update(relabelled(old))
    blind = relabelled(old)
    blind.metadata.labels = {"blind": "yes"}
    blind.metadata.resource_version = version
    env = world.ctx.env
    stored = env.run(until=env.process(api.update(client, blind)))
    assert stored is not None
    assert stored.metadata.labels == {"blind": "yes"}

    def relabel(obj: Any) -> None:
        obj.metadata.labels = {"patched": "yes"}

    patched = env.run(
        until=env.process(
            api.patch(client, "SandboxClaim", "default", "job", relabel, resource_version=version)
        )
    )
    assert patched is not None
    assert patched.metadata.labels == {"patched": "yes"}
    assert int(patched.metadata.resource_version) > int(stored.metadata.resource_version)


def test_a_delete_on_a_stale_version_answers_the_precondition_that_failed() -> None:
    world = world_()
    api = world.api
    old = claim(world)
    new = api.commit_update(relabelled(old))
    writes = api.writes
    with pytest.raises(ApiError) as caught:
        api.commit_delete("SandboxClaim", "default", "job", resource_version="1")
    assert (caught.value.code, caught.value.reason) == (409, "Conflict")
    assert caught.value.message == (
        'Operation cannot be fulfilled on sandboxclaims.agents.kruise.io "job": '
        f"Precondition failed: ResourceVersion in precondition: 1, "
        f"ResourceVersion in object meta: {new.metadata.resource_version}"
    )
    assert api.peek("SandboxClaim", "default", "job") is new
    assert api.writes == writes


def test_a_stale_delete_of_a_sandbox_pod_is_a_conflict_before_the_webhook_is_asked() -> None:
    """Preconditions first (``rest.BeforeDelete``), admission after: the sandbox-manager
    deleting a sandbox's pod on an old version hears 409, not the webhook's 403."""
    cluster = Cluster(seed=4)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "py", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "runtimes": [{"name": "agent-runtime"}],
                "template": {"spec": {"containers": [{"name": "main", "image": "python:3.12"}]}},
            },
        }
    )
    cluster.wait_for_pool("py")
    world = cluster.world
    pod = world.api.peek_list("Pod")[0]
    name = pod.metadata.name
    err = answer(
        world,
        lambda: world.api.delete(
            world.manager_client, "Pod", "default", name, resource_version="1"
        ),
    )
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message.startswith(f'Operation cannot be fulfilled on pods "{name}": ')
    assert world.api.peek("Pod", "default", name) is pod

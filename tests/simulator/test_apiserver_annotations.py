"""The API server refuses any write whose annotations pass 256 KiB (``ValidateAnnotationsSize``).

A create, an update or a patch of the main resource answers 422 Invalid with
Kubernetes' message, ``metadata.annotations: Too long: must have at most
262144 bytes``, and changes nothing: no object, no resourceVersion, no write,
no draw from the seeded generator. A status write keeps the stored metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from pytest_kruise_agents.api.validation import ANNOTATIONS_MAX
from simulator.apiserver import ApiError
from simulator.cluster import Cluster
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World

TOO_LONG = "metadata.annotations: Too long: must have at most 262144 bytes"


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(name: str = "job", annotations: dict[str, str] | None = None) -> SandboxClaim:
    return SandboxClaim(
        metadata=ObjectMeta(name=name, namespace="default", annotations=annotations or {}),
        spec=SandboxClaimSpec(template_name="base"),
    )


def at_limit() -> dict[str, str]:
    return {"k": "x" * (ANNOTATIONS_MAX - 1)}


def over_limit() -> dict[str, str]:
    return {"k": "x" * ANNOTATIONS_MAX}


def refused(world: World, write: Callable[[], Any], *, draws: bool = False) -> ApiError:
    """Run ``write``, which must be refused as invalid, and check that it changed nothing.

    ``draws``: the write is a request, whose latency is drawn whether it is refused or not.
    """
    writes, rng = world.api.writes, world.ctx.rng.getstate()
    stored = world.api.peek("SandboxClaim", "default", "job")
    with pytest.raises(ApiError) as info:
        write()
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    assert info.value.is_invalid
    assert world.api.writes == writes
    assert draws or world.ctx.rng.getstate() == rng
    assert world.api.peek("SandboxClaim", "default", "job") is stored
    return info.value


def test_a_create_over_the_limit_is_invalid() -> None:
    world = world_()
    err = refused(world, lambda: world.api.commit_create(claim(annotations=over_limit())))
    assert err.message == f'SandboxClaim "job" is invalid: {TOO_LONG}'
    named = claim("", over_limit())
    named.metadata.generate_name = "job-"
    err = refused(world, lambda: world.api.commit_create(named))
    assert err.message == f'SandboxClaim "job-" is invalid: {TOO_LONG}'
    assert world.api.commit_create(claim(annotations=at_limit())).metadata.resource_version


def test_an_update_over_the_limit_is_invalid_a_status_write_is_not_checked() -> None:
    world = world_()
    stored = world.api.commit_create(claim(annotations=at_limit()))
    bigger = stored.model_copy(deep=True)
    bigger.metadata.annotations["k2"] = "y"
    refused(world, lambda: world.api.commit_update(bigger))
    status = stored.model_copy(deep=True)
    status.status.message = "claiming"
    assert world.api.commit_update(status, subresource="status").status.message == "claiming"


def test_a_patch_over_the_limit_is_invalid() -> None:
    world = world_()
    world.api.commit_create(claim(annotations=at_limit()))
    env = world.ctx.env

    def grow(obj: Any) -> None:
        obj.metadata.annotations["k2"] = "y"

    def patch() -> None:
        proc = env.process(
            world.api.patch(world.controller_client, "SandboxClaim", "default", "job", grow)
        )
        env.run(until=proc)

    err = refused(world, patch, draws=True)
    assert err.message == f'SandboxClaim "job" is invalid: {TOO_LONG}'


def test_a_pause_of_a_pod_whose_annotations_are_at_the_limit_still_deletes_it() -> None:
    """A pod template's annotations within a few bytes of 256 KiB: a pause deletes the pod and
    a connect resumes the sandbox.

    The model passes a delete's grace period as a ``sim.kruise.io/`` annotation (upstream
    passes it in DeleteOptions): not counted. Before, the API server refused that patch with
    422, the controller retried for ever, and pause and connect answered 500.
    """
    key = "agents.kruise.io/big"
    cluster = Cluster(seed=1)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "runtimes": [{"name": "agent-runtime"}],
                "template": {
                    "metadata": {"annotations": {key: "x" * (262144 - 10 - len(key))}},
                    "spec": {"containers": [{"name": "sandbox", "image": "r.example.com/s:v1"}]},
                },
            },
        }
    )
    cluster.wait_for_pool("base")
    sbx = cluster.create_sandbox("base", timeout=600)
    sid = cluster.sandbox_id(sbx)
    cluster.pause(sid)
    assert all(p.metadata.name != sbx.metadata.name for p in cluster.list("pod", "default"))
    assert "reconcile_error" not in cluster.log.text()
    cluster.connect(sid, 60)
    assert cluster.describe(sid).status.phase == "Running"


def test_a_users_own_key_of_the_stand_ins_prefix_counts_toward_the_limit() -> None:
    """Only the model's grace-period stand-in is left out of the count: a user's own
    ``sim.kruise.io/`` key counts as any other (a sandbox of 300 KiB is refused)."""
    world = world_()
    meta = ObjectMeta(
        name="c", namespace="default", annotations={"sim.kruise.io/pad": "x" * ANNOTATIONS_MAX}
    )
    with pytest.raises(ApiError) as err:
        world.api.commit_create(
            SandboxClaim(metadata=meta, spec=SandboxClaimSpec(template_name="t"))
        )
    assert err.value.code == 422 and TOO_LONG in str(err.value)

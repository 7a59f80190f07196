"""Env vars no process can carry are refused on every create path, as the E2B server refuses them.

A name holding ``=`` (read back as another name), an empty name, or a NUL
anywhere would fail every command the sandbox runs. ``create_sandbox``,
``submit_create``, ``create_sandboxes`` and a SandboxClaim's ``envVars``
refuse them with one 400-class error naming the field and the key, and
nothing changes: no sandbox claimed, no write, no draw from the generator.
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import BadRequestError
from simulator.cluster import Cluster

POOL = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 2
  runtimes: [{name: agent-runtime}]
  template:
    spec:
      containers: [{name: sandbox, image: registry.example.com/s:v1}]
"""

BAD = [
    ({"A=B": "1"}, "envVars", "envVars: invalid variable name 'A=B': a name must not contain '='"),
    ({"": "1"}, "envVars", "envVars: invalid variable name '': a name must not be empty"),
    ({"A": "x\0y"}, "envVars.A", "envVars.A: must not contain a NUL character"),
]


def cluster_() -> Cluster:
    c = Cluster(seed=1)
    c.apply(POOL)
    c.wait_for_pool("base")
    return c


@pytest.mark.parametrize(("env", "field", "message"), BAD)
def test_every_create_path_refuses_them_and_changes_nothing(
    env: dict[str, str], field: str, message: str
) -> None:
    c = cluster_()
    writes, rng = c.world.api.writes, c.ctx.rng.getstate()
    with pytest.raises(BadRequestError) as info:
        c.create_sandbox("base", env_vars=env)
    assert (info.value.code, info.value.field, str(info.value)) == (400, field, message)
    proc = c.submit_create("base", env_vars=env)
    c.advance(0)
    assert isinstance(proc.value, BadRequestError) and str(proc.value) == message
    with pytest.raises(BadRequestError) as info:
        c.create_sandboxes(3, "base", env_vars=env)
    assert str(info.value) == message
    assert (c.world.api.writes, c.ctx.rng.getstate()) == (writes, rng)
    assert all(r.error_code == 400 for r in c.records)
    assert c.create_sandbox("base", env_vars={"A": "x=y", "B": ""}).metadata.name


@pytest.mark.parametrize(("env", "field", "message"), BAD)
def test_a_sandboxclaim_carrying_them_is_refused_at_apply(
    env: dict[str, str], field: str, message: str
) -> None:
    c = cluster_()
    with pytest.raises(InvalidError) as info:
        c.apply(
            {
                "apiVersion": "agents.kruise.io/v1alpha1",
                "kind": "SandboxClaim",
                "metadata": {"name": "c1", "namespace": "default"},
                "spec": {"templateName": "base", "envVars": env},
            }
        )
    assert info.value.field.startswith("SandboxClaim/c1 spec.envVars")
    assert info.value.reason == message.split(": ", 1)[1]
    assert c.list("sbc") == []

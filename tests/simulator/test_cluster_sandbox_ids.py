"""A sandbox id names its sandbox through the manager's route table, whatever its namespace.

Upstream keys the route table by the sandbox id (``<namespace>--<name>``,
reference §6.8): a namespace holding ``--`` itself (``team--x``) gives ids
that also read as another namespace and name (``team`` / ``x--base-abc``).
Every id-taking operation finds the sandbox the id was made for.
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.claiming.errors import NotFoundError
from simulator.cluster import Cluster

NS = "team--x"


def pool(namespace: str = NS, name: str = "base") -> str:
    return f"""
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 2
  runtimes: [{{name: agent-runtime}}]
  template:
    spec:
      containers: [{{name: sandbox, image: registry.example.com/s:v1}}]
"""


def cluster_() -> Cluster:
    c = Cluster(seed=1)
    c.apply(pool())
    c.wait_for_pool("base", namespace=NS)
    return c


def test_every_id_taking_operation_finds_a_sandbox_whose_namespace_holds_dashes() -> None:
    c = cluster_()
    sid = c.sandbox_id(c.create_sandbox("base", namespace=NS))
    assert sid.startswith(f"{NS}--base-")
    assert c.describe(sid, namespace=NS).metadata.namespace == NS
    c.set_timeout(sid, 900, namespace=NS)
    c.pause(sid, namespace=NS)
    _, resumed = c.connect(sid, 600, namespace=NS)
    assert resumed
    c.kill(sid, namespace=NS)
    c.advance(5)
    with pytest.raises(NotFoundError):
        c.describe(sid, namespace=NS)


def test_the_admin_team_finds_it_too() -> None:
    """The admin team (namespace "") sees every namespace: the id alone says which sandbox."""
    c = cluster_()
    sid = c.sandbox_id(c.create_sandbox("base", namespace="", user="admin"))
    assert c.describe(sid, namespace="", user="admin").metadata.namespace == NS
    c.kill(sid, namespace="", user="admin")


def test_an_id_reads_only_as_the_sandbox_it_was_made_for() -> None:
    """``team--x--base-abc`` also reads as namespace ``team``, sandbox ``x--base-abc``: with
    no such sandbox, the reading finds nothing, and an id of no sandbox is a 404."""
    c = cluster_()
    c.apply(pool(namespace="team"))
    c.wait_for_pool("base", namespace="team")
    mine = c.create_sandbox("base", namespace=NS)
    theirs = c.create_sandbox("base", namespace="team")
    assert c.describe(c.sandbox_id(mine), namespace=NS).metadata.uid == mine.metadata.uid
    assert c.describe(c.sandbox_id(theirs), namespace="team").metadata.uid == theirs.metadata.uid
    with pytest.raises(NotFoundError) as info:
        c.describe(f"{NS}--base-nosuch", namespace=NS)
    assert info.value.code == 404

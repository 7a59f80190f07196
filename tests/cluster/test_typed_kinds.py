"""``Cluster.get`` and ``list`` are typed by the kind as written: each kind's literal spellings.

The overloads key on one ``Literal`` alias per kind (``SandboxKind``, ...). These
tests keep the aliases and :func:`resolve_kind` in step: every literal names its
kind, and every spelling ``resolve_kind`` documents (the kind's name, each kubectl
name and each group-qualified name) is a literal of its kind, so that no accepted
spelling falls back to the untyped union. What mypy makes of them is checked in
``tests/plugin/test_typing.py``. Inside the model, the API server's and the informer
caches' reads and writes are typed by the stored kind's name the same way (the
last test, which mypy checks with the rest of ``tests/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type, get_args

import pytest

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.manifest import KINDS, RESOURCE_ALIASES, KubeObject, resolve_kind
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from simulator.apiserver import OpOf
from simulator.cluster import (
    Cluster,
    PodKind,
    SandboxClaimKind,
    SandboxKind,
    SandboxSetKind,
    SandboxTemplateKind,
)
from simulator.informer import ObjKey

from .conftest import pool_yaml

SPELLINGS = {
    "Sandbox": set(get_args(SandboxKind)),
    "SandboxSet": set(get_args(SandboxSetKind)),
    "SandboxClaim": set(get_args(SandboxClaimKind)),
    "SandboxTemplate": set(get_args(SandboxTemplateKind)),
    "Pod": set(get_args(PodKind)),
}

# kubectl's ``<resource>.<group>`` and ``<resource>.<version>.<group>``.
GROUPS = {
    "Sandbox": (".agents.kruise.io", ".v1alpha1.agents.kruise.io"),
    "SandboxSet": (".agents.kruise.io", ".v1alpha1.agents.kruise.io"),
    "SandboxClaim": (".agents.kruise.io", ".v1alpha1.agents.kruise.io"),
    "SandboxTemplate": (".agents.kruise.io", ".v1alpha1.agents.kruise.io"),
    "Pod": (".v1",),
}


def test_there_is_one_literal_alias_per_stored_kind() -> None:
    assert set(SPELLINGS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(SPELLINGS))
def test_every_literal_spelling_resolves_to_its_kind(kind: str) -> None:
    assert {resolve_kind(name) for name in SPELLINGS[kind]} == {kind}


@pytest.mark.parametrize("kind", sorted(SPELLINGS))
def test_every_documented_spelling_of_a_kind_is_one_of_its_literals(kind: str) -> None:
    """The kind's name, its kubectl names and those qualified by group all type as its model."""
    names = [alias for alias, target in RESOURCE_ALIASES.items() if target == kind]
    expected = {kind, *names, *(n + group for n in names for group in GROUPS[kind])}
    assert all(resolve_kind(n) == kind for n in expected)  # what resolve_kind accepts
    assert expected - SPELLINGS[kind] == set()


def test_get_and_list_return_the_model_their_type_names() -> None:
    """At run time too: a literal kind gives its model (a copy), any spelling alike."""
    cluster = Cluster(seed=2, nodes=1)
    cluster.apply(pool_yaml(replicas=1))
    cluster.wait_for_pool("base")
    (sbx,) = cluster.list("sbx")
    (template,) = cluster.list("sbt")  # the one the SandboxSet materialised
    models = {
        "sbs": (SandboxSet, "base"),
        "sbx": (Sandbox, sbx.metadata.name),
        "sbt": (SandboxTemplate, template.metadata.name),
        "po": (Pod, sbx.metadata.name),
    }
    for kind, (model, name) in models.items():
        for spelling in SPELLINGS[resolve_kind(kind)]:
            assert isinstance(cluster.get(spelling, name), model), spelling
            assert all(isinstance(o, model) for o in cluster.list(spelling)), spelling


def test_the_store_and_the_caches_answer_the_model_their_type_names() -> None:
    """``ApiServer`` and ``Informer`` reads and writes are typed by kind, as ``Cluster.get`` is.

    Each ``assert_type`` pins the overload's answer (mypy checks this file: an
    answer typed ``Any`` fails it) and each ``isinstance`` that the object is
    that model at run time.
    """
    cluster = Cluster(seed=2, nodes=1)
    cluster.apply(pool_yaml(replicas=1))
    cluster.wait_for_pool("base")
    api, cache = cluster.world.api, cluster.world.controller_cache
    (sbx,) = api.peek_list("Sandbox")
    assert_type(sbx, Sandbox)
    name = sbx.metadata.name
    pod = api.peek("Pod", "default", name)
    assert_type(pod, Pod | None)
    assert isinstance(pod, Pod)
    sbs = api.peek("SandboxSet", "default", "base")
    assert_type(sbs, SandboxSet | None)
    assert isinstance(sbs, SandboxSet)
    (template,) = api.peek_list("SandboxTemplate")
    assert_type(template, SandboxTemplate)
    assert isinstance(template, SandboxTemplate)
    kind: str = "Sandbox"
    assert_type(api.peek(kind, "default", name), KubeObject | None)
    assert_type(api.peek_list(kind), list[KubeObject])

    cached = cache.get("Sandbox", "default", name)
    assert_type(cached, Sandbox | None)
    assert isinstance(cached, Sandbox)
    assert_type(cache.get(kind, "default", name), KubeObject | None)
    pods = cache.list("Pod")
    assert_type(pods, list[Pod])
    sets = cache.objects("SandboxSet")
    assert_type(sets, Mapping[ObjKey, SandboxSet])
    indexed = list(cache.by_index("SandboxSet", "name", "*/base"))
    assert_type(indexed, list[SandboxSet])
    assert [type(o) for o in [*pods, *sets.values(), *indexed]] == [Pod, SandboxSet, SandboxSet]

    labelled = deep_copy(sbx)
    labelled.metadata.labels = {**labelled.metadata.labels, "typed": "yes"}
    updated = api.commit_update(labelled)
    assert_type(updated, Sandbox)
    assert isinstance(updated, Sandbox) and updated.metadata.labels["typed"] == "yes"
    claim = SandboxClaim(
        metadata=ObjectMeta(name="typed", namespace="default"),
        spec=SandboxClaimSpec(template_name="base"),
    )
    created = api.commit_create(claim)
    assert_type(created, SandboxClaim)
    assert isinstance(created, SandboxClaim) and created.metadata.uid

    client = api.client("typed-test", 100.0, 100)

    def fetch() -> OpOf[Sandbox]:
        got = yield from api.get(client, "Sandbox", "default", name)
        assert_type(got, Sandbox)
        return got

    assert isinstance(cluster.run(fetch()), Sandbox)
    gone = api.commit_delete("SandboxClaim", "default", "typed")
    assert_type(gone, SandboxClaim | None)
    assert gone is None or isinstance(gone, SandboxClaim)

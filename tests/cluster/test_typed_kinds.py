"""``Cluster.get`` and ``list`` are typed by the kind as written: each kind's literal spellings.

The overloads key on one ``Literal`` alias per kind (``SandboxKind``, ...). These
tests keep the aliases and :func:`resolve_kind` in step: every literal names its
kind, and every spelling ``resolve_kind`` documents (the kind's name, each kubectl
name and each group-qualified name) is a literal of its kind, so that no accepted
spelling falls back to the untyped union. What mypy makes of them is checked in
``tests/plugin/test_typing.py``.
"""

from __future__ import annotations

from typing import get_args

import pytest

from pytest_kruise_agents.api.manifest import KINDS, RESOURCE_ALIASES, resolve_kind
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from simulator.cluster import (
    Cluster,
    PodKind,
    SandboxClaimKind,
    SandboxKind,
    SandboxSetKind,
    SandboxTemplateKind,
)

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

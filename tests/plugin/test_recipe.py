"""Recipes: a test's cluster spec becomes a fresh cluster whose pools are filled."""

from __future__ import annotations

import json

from pytest_kruise_agents.plugin.marker import ClusterSpec
from pytest_kruise_agents.plugin.recipe import RecipeBook

POOL = """apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {generateName: gen-}
spec:
  replicas: 2
  template: {spec: {containers: [{name: c, image: "img:1"}]}}
"""


def test_a_pool_named_by_generate_name_is_filled_under_the_name_it_gets() -> None:
    cluster = RecipeBook().recipe(ClusterSpec(pools=json.dumps(POOL))).build()

    (made,) = cluster.list("sbs")
    assert made.metadata.name.startswith("gen-")
    assert made.status.available_replicas == 2

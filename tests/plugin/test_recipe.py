"""Recipes: a test's cluster spec becomes a fresh cluster whose pools are filled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_kruise_agents.plugin.marker import ClusterSpec
from pytest_kruise_agents.plugin.recipe import RecipeBook, RecipeError

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


def test_latencies_given_as_a_knob_are_refused_naming_the_knob() -> None:
    spec = ClusterSpec(knobs=json.dumps({"latencies": {"pod.create": "1s"}}))

    with pytest.raises(RecipeError, match="unknown profile knob 'latencies': set latencies"):
        RecipeBook().recipe(spec)


def test_a_profiles_name_given_as_a_knob_is_refused_naming_the_knob() -> None:
    """``knobs={"name": ...}`` would rename the profile the reports name: refused."""
    spec = ClusterSpec(knobs=json.dumps({"name": "openkruise-v0.3.0"}))

    with pytest.raises(RecipeError, match="the profile's name, not a knob: choose a profile"):
        RecipeBook().recipe(spec)


def test_a_pool_whose_pods_say_why_they_wait_is_refused_with_that_reason_and_no_guess() -> None:
    bad = POOL.replace("generateName: gen-", "name: bad").replace('"img:1"', '"Bad Image"')
    recipe = RecipeBook().recipe(ClusterSpec(pools=json.dumps(bad)))

    with pytest.raises(RecipeError) as info:
        recipe.build()

    assert "a pod of it is not ready: container c waits, InvalidImageName" in str(info.value)
    assert "too few nodes" not in str(info.value)


def test_a_config_start_too_near_1970_for_the_pools_fill_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("clock: {start: 1970-01-01T00:00:05Z}\n")
    recipe = RecipeBook().recipe(ClusterSpec(config=config, pools=json.dumps(POOL)))

    with pytest.raises(RecipeError, match=rf"^{config}: clock.start: must be at least \d+ s after"):
        recipe.build()


@pytest.mark.parametrize(
    ("line", "kept"),
    [("recordsLimit: 2\n", 2), ("recordsLimit: null\n", 4), ("", 4)],
    ids=["set", "null", "unset"],
)
def test_a_config_files_records_limit_bounds_the_records_only_if_it_sets_one(
    tmp_path: Path, line: str, kept: int
) -> None:
    """The file's ``recordsLimit`` keeps the latest that many claim records, as ``kruise-agents
    serve --config`` keeps them (it was ignored); unset, a test's cluster keeps all, not the
    server's default 10,000: it lives for one test, whose records are what it checks."""
    config = tmp_path / "cluster.yaml"
    config.write_text(line)
    cluster = RecipeBook().recipe(ClusterSpec(config=config)).build()

    # Not the server's default 10,000, which only a long run would show.
    assert cluster.records.limit == (2 if line.startswith("recordsLimit: 2") else None)
    made = [f"default/{cluster.create_sandbox('base').metadata.name}" for _ in range(4)]

    assert len(cluster.records) == kept
    assert [r.sandbox for r in cluster.records] == made[-kept:]

"""The scheduler's search for a node, as kube-scheduler's ``findNodesThatPassFilters`` makes it.

It looks at the nodes from where the last pod's search stopped (``nextStartNodeIndex``), in the
order they were added, and stops once it has found ``numFeasibleNodesToFind`` nodes that fit;
only those are scored. Clusters of fewer than 100 nodes are searched whole, as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.cluster import Cluster
from simulator.nodes import NodeSpec, feasible_nodes_to_find
from simulator.world import World

from .test_nodes import add_pod, bound_to, count_fits, make, run_until


@pytest.mark.parametrize(
    ("percentage", "nodes", "expected"),
    [
        (0, 1, 1),
        (0, 99, 99),  # under minFeasibleNodesToFind: every node
        (50, 99, 99),
        (0, 100, 100),  # adaptive 50% of 100 is 50: raised to the floor of 100
        (0, 199, 100),  # 50 - 199/125 = 49%: 97, raised to 100
        (0, 250, 120),  # 48%
        (0, 300, 144),  # 48%
        (0, 1000, 420),  # 42%
        (0, 5000, 500),  # 10%
        (0, 5999, 299),  # 50 - 47 = 3%, raised to minFeasibleNodesPercentageToFind (5%)
        (0, 6000, 300),  # 2%, raised to 5%
        (0, 20000, 1000),
        (1, 300, 100),  # a configured share is floored at 100 nodes too
        (50, 301, 150),  # 150.5, integer division
        (100, 5000, 5000),
    ],
)
def test_the_number_of_feasible_nodes_to_find_is_kube_schedulers(
    percentage: int, nodes: int, expected: int
) -> None:
    """``numFeasibleNodesToFind``: Go's integer division, its two floors and the adaptive share."""
    assert feasible_nodes_to_find(percentage, nodes) == expected


def numbered(count: int, big: dict[int, str] | None = None) -> list[NodeSpec]:
    """``count`` nodes n000, n001, ... of 4 CPU; the nodes at the indexes in ``big`` get that CPU.

    Named so that the order they are added in is also the order of their names.
    """
    big = big or {}
    return [NodeSpec(name=f"n{i:03d}", cpu=big.get(i, "4")) for i in range(count)]


# n143 is the 144th node: the last the first search looks at; n144, the best of all, is the next.
BIG = {143: "64", 144: "128"}


def place(world: World, count: int) -> list[str | None]:
    """Create pods p0.. asking 1 CPU, all at once; where each was bound, in order."""
    names = [f"p{i}" for i in range(count)]
    for name in names:
        add_pod(world, name)
    run_until(world, lambda: all(bound_to(world, n) for n in names))
    return [bound_to(world, n) for n in names]


def test_on_300_nodes_a_pod_is_scored_on_the_first_144_that_fit() -> None:
    """The 144th node is looked at, the 145th is not, though it is the best."""
    world, nodes = make(numbered(300, BIG))
    fits = count_fits(nodes)
    assert place(world, 1) == ["n143"]
    assert fits() == 144


def test_every_node_is_scored_when_the_percentage_is_100() -> None:
    """``percentage_of_nodes_to_score: 100`` searches every node, as the model did before."""
    world, nodes = make(numbered(300, BIG), percentage_of_nodes_to_score=100)
    fits = count_fits(nodes)
    assert place(world, 2) == ["n144", "n143"]
    assert fits() == 600


def test_each_search_starts_where_the_last_one_stopped() -> None:
    """Round the nodes: n000-n143, n144-n287, n288-n299 then n000-n131, then n132-n275.

    The third pod goes to n000: n143 and n144, better, are not in its search.
    """
    world, nodes = make(numbered(300, BIG))
    fits = count_fits(nodes)
    assert place(world, 4) == ["n143", "n144", "n000", "n144"]
    assert fits() == 4 * 144


def test_nodes_that_do_not_fit_are_looked_at_but_not_counted() -> None:
    """The search stops at 144 nodes that *fit*: a full node before them lengthens it by one,
    and the next search starts after all it looked at (a lost node is looked at the same way).
    """
    specs = numbered(300, BIG)
    specs[0] = NodeSpec(name="n000", cpu="500m")  # too small for a 1 CPU pod
    world, nodes = make(specs)
    fits = count_fits(nodes)
    # n000-n144 (n000 looked at, not counted), then n145-n288.
    assert place(world, 2) == ["n144", "n145"]
    assert fits() == 145 + 144


@pytest.mark.parametrize("count", [3, 99, 100])
@pytest.mark.parametrize("percentage", [1, 50])
def test_under_100_nodes_every_node_is_searched_as_before(count: int, percentage: int) -> None:
    """Clusters up to 100 nodes: every node for every pod, whatever the percentage, and the
    same event log as a search of every node (``percentage_of_nodes_to_score: 100``)."""
    looked: list[int] = []

    def run(percentage: int | None = None) -> tuple[list[str | None], str]:
        knobs: dict[str, Any] = {}
        if percentage is not None:
            knobs["percentage_of_nodes_to_score"] = percentage
        world, nodes = make(numbered(count, {count - 1: "64"}), seed=3, **knobs)
        placed = place(world, 20)
        looked.append(nodes.nodes_looked)
        return placed, world.ctx.log.text()

    placed, log = run(percentage)
    assert looked == [20 * count]
    assert placed[0] == f"n{count - 1:03d}"  # the best node, last in the round
    assert (placed, log) == run()
    assert (placed, log) == run(100)


@pytest.mark.parametrize("value", [-1, 101, True, "50", 50.0])
def test_a_percentage_out_of_0_to_100_is_refused(value: object) -> None:
    """kube-scheduler refuses ``percentageOfNodesToScore`` outside [0, 100]; so does the knob."""
    with pytest.raises(InvalidError) as info:
        Cluster(percentage_of_nodes_to_score=value)
    assert "percentage_of_nodes_to_score" in str(info.value)

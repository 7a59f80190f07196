"""The simulator package's public surface."""

from __future__ import annotations

import simulator


def test_all_names_exist() -> None:
    """Every name in ``simulator.__all__`` exists and is listed once (ruff keeps it sorted)."""
    for name in simulator.__all__:
        assert hasattr(simulator, name), name
    assert len(set(simulator.__all__)) == len(simulator.__all__)


def test_cluster_is_importable_from_the_package() -> None:
    """``from simulator import Cluster`` gives the fake cluster."""
    from simulator import Cluster
    from simulator.cluster import Cluster as Direct

    assert Cluster is Direct

"""Watch events reach each informer cache in the order the API server committed them.

An event whose own lag would bring it before the one ahead of it to the same
cache waits for that one (a watch is one ordered stream): the cache applies
every change, oldest first, and ends on the stored version. The order is a
guarantee, not an accident of float arithmetic: an arrival raised to the
one ahead of it is scheduled at that very moment or after it, never one
rounding step before.
"""

from __future__ import annotations

import random
from typing import Any

from simulator.cluster import Cluster

TEMPLATE = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxTemplate
metadata: {{name: tpl, namespace: default, labels: {{v: "{0}"}}}}
spec:
  template:
    spec:
      containers: [{{name: c, image: "img:1"}}]
"""


def watch_rvs(cluster: Cluster) -> dict[str, list[int]]:
    """Per cache, the resourceVersions of the SandboxTemplate events it applies, in order."""
    seen: dict[str, list[int]] = {}
    for inf in (cluster.world.manager_cache, cluster.world.controller_cache):
        rvs = seen[inf.name] = []

        def handler(_type: str, _old: Any, new: Any, rvs: list[int] = rvs) -> None:
            if new is not None:
                rvs.append(int(new.metadata.resource_version))

        inf.add_handler("SandboxTemplate", handler)
    return seen


def test_a_change_with_a_shorter_lag_still_arrives_after_the_change_before_it() -> None:
    """Early in a run (``now`` far below the arrival) the arrival of the change
    before is not what ``now + (arrival - now)`` gives back: the later change
    is scheduled no earlier all the same, and each cache ends on the stored version."""
    cluster = Cluster(seed=0)
    seen = watch_rvs(cluster)
    cluster.advance(0.002165993971306134)
    cluster.apply(TEMPLATE.format("1"))
    cluster.set_latency("watch.lag", 0.023995245901222283)
    cluster.apply(TEMPLATE.format("2"))  # arrives 24 ms later
    cluster.advance(0.0028628348103302507 - cluster.now)
    cluster.set_latency("watch.lag", 0.001)
    cluster.apply(TEMPLATE.format("3"))  # 1 ms: raised to the arrival of "2"
    cluster.advance(1)
    stored = cluster.world.api.peek("SandboxTemplate", "default", "tpl")
    assert stored is not None
    assert stored.metadata.labels["v"] == "3"
    for inf in (cluster.world.manager_cache, cluster.world.controller_cache):
        cached = inf.get("SandboxTemplate", "default", "tpl")
        assert cached is not None
        assert cached.metadata.resource_version == stored.metadata.resource_version, inf.name
    assert seen == {name: [1, 2, 3] for name in seen}


def test_changes_reach_each_cache_in_commit_order_whatever_their_lags() -> None:
    """Many changes in a run's first milliseconds, each with a lag drawn anew
    (most raised to the arrival of one ahead): every cache applies them in
    resourceVersion order."""
    rng = random.Random(1)
    cluster = Cluster(seed=0)
    seen = watch_rvs(cluster)
    cluster.apply(TEMPLATE.format("0"))
    for version in range(1, 150):
        cluster.advance(rng.uniform(0, 0.00005))
        cluster.set_latency("watch.lag", rng.choice((0.05, rng.uniform(0.0001, 0.05))))
        cluster.apply(TEMPLATE.format(version))
    cluster.advance(1)
    for name, rvs in seen.items():
        assert rvs == sorted(rvs), name
        assert len(rvs) == 150, name

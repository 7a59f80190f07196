"""The Cluster calls whose work grows with the cluster run under the simulation's collector
thresholds (simulator.collector), as its runs of the model do.

Listing, rendering, applying and deleting make an object (a copy, a row, a
watch event, a cascade's write) per object they touch, and many live on: under
CPython's default thresholds each few hundred of them brought a collection,
and with them full collections, each a walk of the whole heap, so a call's
cost per object grew with the cluster (``list("sbx")`` at 16,000 sandboxes:
113-134 us per sandbox, 31 with the collector off).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import simulator.applying
import simulator.cluster
from simulator.cluster import Cluster
from simulator.collector import YOUNG_THRESHOLD
from tests.cluster.conftest import pool_yaml

POOL = 100
"""Sandboxes in the pool, half of them claimed."""


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    """Each test starts from CPython's defaults and leaves the process as it found it."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster(seed=4, nodes=2, log=False)
    c.apply(pool_yaml("base", POOL, cpu="10m", memory="16Mi"))
    c.wait_for_pool("base")
    c.create_sandboxes(POOL // 2, "base")
    return c


def _claims(count: int) -> str:
    return "\n---\n".join(
        f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {{name: claim-{i}, namespace: default}}
spec: {{templateName: base}}
"""
        for i in range(count)
    )


def _collections(call: Callable[[], Any]) -> int:
    """How many collections run during ``call()``, started with no young object pending."""
    runs = 0

    def count(phase: str, _info: dict[str, int]) -> None:
        nonlocal runs
        runs += phase == "start"

    gc.collect()
    gc.callbacks.append(count)
    try:
        call()
    finally:
        gc.callbacks.remove(count)
    return runs


# Each call, and where its work per object is done: (the owner, the attribute) or the
# owner found on the cluster.
_CALLS: dict[str, tuple[Callable[[Cluster], Any], Callable[[Cluster], tuple[object, str]]]] = {
    "list": (lambda c: c.list("sbx"), lambda _c: (simulator.cluster, "deep_copy")),
    "table": (lambda c: c.table("sbx"), lambda _c: (simulator.cluster, "render_table")),
    "list_sandboxes": (lambda c: c.list_sandboxes(), lambda c: (c.manager, "list_sandboxes")),
    "apply": (lambda c: c.apply(_claims(POOL)), lambda _c: (simulator.applying, "commit")),
    "delete with its cascade": (
        lambda c: c.delete("sbs", "base", propagation="Background"),
        lambda c: (c.world.api, "commit_delete"),
    ),
}


@pytest.mark.parametrize(("call", "work"), _CALLS.values(), ids=_CALLS)
def test_a_call_over_the_whole_cluster_works_under_the_simulation_thresholds(
    cluster: Cluster,
    call: Callable[[Cluster], Any],
    work: Callable[[Cluster], tuple[object, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The work is done with the young generation's threshold raised, and the defaults
    come back after the call."""
    owner, attribute = work(cluster)
    real = getattr(owner, attribute)
    seen: list[int] = []

    def probe(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, probe)
    call(cluster)
    assert seen and set(seen) == {YOUNG_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.parametrize(
    "call",
    [lambda c: c.list("sbx"), lambda c: c.apply(_claims(2 * POOL))],
    ids=["list", "apply"],
)
def test_a_call_over_the_whole_cluster_brings_no_collection_until_it_returns(
    cluster: Cluster, call: Callable[[Cluster], Any]
) -> None:
    """What the raised threshold is for: the objects a call makes (two hundred claims'
    writes, a hundred and fifty copies) bring no collection while it runs, only the one of
    the young objects due once the defaults come back."""
    assert _collections(lambda: call(cluster)) <= 1

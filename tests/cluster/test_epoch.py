"""The date of virtual time 0 (``Cluster(epoch=...)``): any aware datetime, kept in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.cluster import Cluster

from .conftest import pool_yaml

TOKYO = timezone(timedelta(hours=9))


def test_an_epoch_in_another_zone_is_the_same_instant_in_utc() -> None:
    """``now_dt()`` and every stored time are UTC, as an API server answers metav1.Time.

    Before, ``now_dt()`` and ``creationTimestamp`` kept the epoch's +09:00 while
    ``shutdownTime`` and the conditions were UTC.
    """
    cluster = Cluster(seed=1, nodes=1, epoch=datetime(2026, 1, 1, 9, tzinfo=TOKYO))
    assert cluster.ctx.epoch == datetime(2026, 1, 1, tzinfo=UTC)
    assert cluster.ctx.epoch.tzinfo is UTC
    cluster.apply(pool_yaml(replicas=1))
    cluster.wait_for_pool("base")
    assert cluster.now_dt().tzinfo is UTC
    sbx = cluster.create_sandbox("base", timeout=60)
    times = [
        sbx.metadata.creation_timestamp,
        sbx.spec.shutdown_time,
        *(c.last_transition_time for c in sbx.status.conditions),
    ]
    assert times and all(t is not None and t.tzinfo is UTC for t in times)


def test_the_same_instant_in_any_zone_runs_the_same_model() -> None:
    """Same seed, same instant: the same event log, whatever zone the epoch was given in."""

    def run(epoch: datetime) -> str:
        cluster = Cluster(seed=3, nodes=1, epoch=epoch)
        cluster.apply(pool_yaml(replicas=2))
        cluster.wait_for_pool("base")
        cluster.create_sandbox("base", timeout=60)
        cluster.advance(120)
        return cluster.log.text()

    assert run(datetime(2026, 1, 1, 9, tzinfo=TOKYO)) == run(datetime(2026, 1, 1, tzinfo=UTC))


def test_an_epoch_before_the_year_1_in_utc_is_refused() -> None:
    """0001-01-01T00:00:00+05:30 is 5.5 hours before any date: one error naming ``epoch``."""
    with pytest.raises(InvalidError, match=r"^epoch: must be from 0001-01-01T00:00:00Z"):
        Cluster(seed=1, nodes=1, epoch=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5.5))))

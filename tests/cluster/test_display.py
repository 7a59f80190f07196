"""What a notebook shows for a bare cluster, its records, its log and its tables."""

from __future__ import annotations

from IPython.lib.pretty import pretty

from pytest_kruise_agents.api.printers import Table
from simulator.cluster import Cluster

from .conftest import pool_yaml


def _cluster() -> Cluster:
    cluster = Cluster(seed=3, nodes=2)
    cluster.apply(pool_yaml(replicas=3))
    cluster.wait_for_pool("base")
    cluster.create_sandbox("base")
    return cluster


def test_a_cluster_shows_its_seed_profile_clock_and_counts() -> None:
    cluster = _cluster()
    text = repr(cluster)
    assert text.startswith("<Cluster seed=3 profile=openkruise-head now=")
    assert f"now={cluster.now:g}s nodes=2 sbs=1 " in text
    assert f"records=1 log={len(cluster.log)}>" in text
    assert pretty(cluster) == text


def test_records_and_the_log_show_counts_not_their_contents() -> None:
    cluster = _cluster()
    assert repr(cluster.records) == "<ClaimRecords: 1 records (1 delivered, 0 failed, 0 open)>"
    log = cluster.log
    last = list(log)[-1].time
    assert repr(log) == f"<EventLog: {len(log):,} events, t=0..{last:g}s>"
    bounded = Cluster(records_limit=5, log=False)
    assert repr(bounded.records).endswith(", the latest 5 kept (0 dropped)>")
    assert repr(bounded.log) == "<EventLog off>"


def test_a_table_is_a_str_that_a_notebook_shows_as_printed() -> None:
    cluster = _cluster()
    table = cluster.table("sbs", "default")
    assert isinstance(table, Table) and isinstance(table, str)
    assert table.startswith("NAME ") and table.endswith("\n")
    # IPython's text/plain: the lines themselves, not a literal with \n escapes.
    assert pretty(table) == table.rstrip("\n")
    assert "\n" in pretty(table)
    assert table == str(table)

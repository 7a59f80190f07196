"""Claim records: one per claim in request order, optionally only the latest ``limit``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator import Cluster
from simulator.records import ClaimRecords


def _add(records: ClaimRecords, n: int) -> None:
    for i in range(n):
        records.new(path="e2b", namespace="default", template="t", owner="o", requested=float(i))


def test_without_a_limit_every_record_is_kept() -> None:
    records = ClaimRecords()
    _add(records, 5)
    assert [r.id for r in records] == [1, 2, 3, 4, 5]
    assert (records.limit, records.dropped) == (None, 0)


def test_a_limit_keeps_the_latest_records_and_ids_keep_counting() -> None:
    """The oldest go first; the first kept id minus one is what was dropped."""
    records = ClaimRecords(limit=3)
    _add(records, 7)
    assert [r.id for r in records] == [5, 6, 7]
    assert [r.requested for r in records] == [4.0, 5.0, 6.0]
    assert (len(records), records.dropped, records[0].id, records[-1].id) == (3, 4, 5, 7)


@pytest.mark.parametrize("limit", [None, 4])
def test_records_are_a_read_only_sequence_that_slices_like_a_list(limit: int | None) -> None:
    """Indexing, negative indexing and slicing (a list of the kept records, as a list's
    slice is) work as on the list of kept records; ``in``, ``index`` and ``reversed`` too."""
    records = ClaimRecords(limit=limit)
    _add(records, 6)
    kept = list(records)
    assert isinstance(records, Sequence)
    for part in (slice(-2, None), slice(1, 3), slice(None, None, 2), slice(None, None, -1)):
        assert records[part] == kept[part], part
    assert records[len(kept) :] == [] and records[-100:] == kept
    assert (records[0], records[-1]) == (kept[0], kept[-1])
    assert kept[1] in records and records.index(kept[1]) == 1
    assert list(reversed(records)) == kept[::-1]
    with pytest.raises(IndexError):
        records[len(kept)]


def test_clear_forgets_the_records_and_starts_the_ids_again() -> None:
    records = ClaimRecords(limit=2)
    _add(records, 3)
    records.clear()
    _add(records, 1)
    assert [r.id for r in records] == [1]
    assert records.dropped == 0


@pytest.mark.parametrize("limit", [0, -1, True, 2.0, "10"])
def test_a_limit_is_a_whole_number_of_at_least_one(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit must be a whole number >= 1 or None"):
        ClaimRecords(limit=limit)


def test_a_cluster_keeps_only_its_records_limit() -> None:
    """``Cluster(records_limit=n)``: the claim path writes to the bounded records."""
    cluster = Cluster(seed=1, records_limit=2)
    cluster.apply(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\nmetadata: {name: p}\n"
        "spec: {replicas: 3, runtimes: [{name: agent-runtime}],\n"
        "       template: {spec: {containers: [{name: c, image: i}]}}}\n"
    )
    cluster.wait_for_pool("p")
    for _ in range(3):
        cluster.create_sandbox("p")
    assert [r.id for r in cluster.records] == [2, 3]
    assert cluster.last_record().id == 3


def test_a_bad_records_limit_names_the_argument() -> None:
    with pytest.raises(InvalidError) as info:
        Cluster(records_limit=0)
    assert info.value.field == "records_limit"


def test_a_limit_past_the_largest_sequence_is_refused_naming_the_bound() -> None:
    """No sequence holds more than ``sys.maxsize`` items: a larger limit is no limit to keep."""
    assert ClaimRecords(limit=sys.maxsize).limit == sys.maxsize
    with pytest.raises(
        ValueError, match=f"limit must be at most {sys.maxsize}, got {sys.maxsize + 1}"
    ):
        ClaimRecords(limit=sys.maxsize + 1)
    with pytest.raises(InvalidError) as info:
        Cluster(records_limit=2**63)
    assert info.value.field == "records_limit"


def test_a_listener_sees_each_new_record_even_once_dropped() -> None:
    """``listen``: every record started while listening, however few the limit keeps, until
    the returned function stops it (a benchmark collects its own run's records this way)."""
    records = ClaimRecords(limit=2)
    _add(records, 1)
    seen: list[int] = []
    stop = records.listen(lambda rec: seen.append(rec.id))
    _add(records, 4)
    stop()
    _add(records, 1)
    assert seen == [2, 3, 4, 5]
    assert [r.id for r in records] == [5, 6]
    stop()  # stopping twice is harmless


def test_a_listener_that_cannot_be_called_is_refused_and_records_go_on() -> None:
    """Taken, it would fail each later claim when its record is started."""
    records = ClaimRecords()
    with pytest.raises(InvalidError) as info:
        records.listen(5)  # type: ignore[arg-type]
    assert (info.value.field, info.value.reason) == (
        "listener",
        "must be a function taking a ClaimRecord, got 5",
    )
    _add(records, 1)
    assert len(records) == 1


def test_a_claim_is_warm_or_cold_only_once_delivered() -> None:
    """A failed claim's last attempt locked (or created) a sandbox, but it delivered none: it is
    neither warm nor cold; ``lock_type`` still says what that attempt did."""
    records = ClaimRecords()
    failed = records.new(path="e2b", namespace="ns", template="t", owner="o", requested=0.0)
    failed.lock_type = "update"
    failed.failed = 1.0
    assert (failed.warm, failed.as_dict()["warm"]) == (None, None)
    delivered = records.new(path="e2b", namespace="ns", template="t", owner="o", requested=0.0)
    delivered.lock_type = "create"
    delivered.delivered = 2.0
    assert delivered.warm is False


def test_records_read_backwards_newest_first() -> None:
    """``reversed(records)`` gives the kept records newest first, as ``records[::-1]``."""
    records = ClaimRecords(limit=3)
    _add(records, 5)
    assert list(reversed(records)) == records[::-1]
    assert [r.id for r in reversed(records)] == [5, 4, 3]


def test_retries_are_the_attempts_after_the_first_and_latency_runs_to_delivery() -> None:
    """A claim delivered by its third attempt made two retries; one not yet attempted none;
    its latency is from request to delivery (``None`` until delivered), in ``as_dict`` too."""
    records = ClaimRecords()
    rec = records.new(path="e2b", namespace="ns", template="t", owner="o", requested=1.5)
    assert (rec.retries, rec.latency) == (0, None)
    rec.attempts = 1
    assert rec.retries == 0
    rec.attempts = 3
    rec.delivered = 4.0
    assert (rec.retries, rec.latency) == (2, 2.5)
    assert (rec.as_dict()["retries"], rec.as_dict()["latency"]) == (2, 2.5)

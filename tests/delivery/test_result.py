"""Results: percentiles, zones, the warm/cold split, the assertion's message, CSV and JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from pytest_kruise_agents.delivery import (
    Burst,
    Delivery,
    DeliveryResult,
    LatencyStats,
    percentile,
    zone_of,
)


def d(index: int, latency: float | None, warm: bool | None = True, **kw: object) -> Delivery:
    return Delivery(
        index=index,
        path="e2b",
        template="base",
        requested=0.0,
        latency=latency,
        warm=warm if latency is not None else None,
        sandbox_id=f"default--base-{index}" if latency is not None else None,
        phases={"locked": 0.01, "delivered": latency} if latency is not None else {},
        error=None if latency is not None else "no stock",
        **kw,  # type: ignore[arg-type]
    )


def result(*deliveries: Delivery) -> DeliveryResult:
    return DeliveryResult(
        name="run",
        workload=Burst(max(1, len(deliveries))),
        target="sim",
        clock="virtual",
        deliveries=deliveries,
    )


def test_percentiles_interpolate_between_ranks() -> None:
    values = [0.1, 0.2, 0.3, 0.4]
    assert percentile(values, 50) == pytest.approx(0.25)
    assert percentile(values, 0) == 0.1
    assert percentile(values, 100) == 0.4
    assert percentile(values, 99) == pytest.approx(0.397)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"q: must be within 0\.\.100"):
        percentile(values, 101)


@pytest.mark.parametrize("q", ["50", None, True, False, [50]])
def test_a_percentile_that_is_no_number_is_refused_naming_q(q: object) -> None:
    """As ``assert_latency`` refuses its ``percentile``: a bool is no number (``True`` was
    taken as the 1st percentile), a text not a comparison error naming nothing."""
    with pytest.raises(TypeError, match=r"^q: must be a number within 0\.\.100, got "):
        percentile([1.0, 2.0], q)  # type: ignore[arg-type]


def test_zones_are_agent_sandboxs() -> None:
    assert [zone_of(x) for x in (0.0, 0.5, 0.5001, 1.0, 1.0001)] == [
        "green",
        "green",
        "grey",
        "grey",
        "cold",
    ]


def test_warm_and_cold_are_split_and_failures_kept_apart() -> None:
    r = result(d(1, 0.1), d(2, 0.2), d(3, 2.0, warm=False), d(4, None))
    assert [x.index for x in r.warm] == [1, 2]
    assert [x.index for x in r.cold] == [3]
    assert [x.index for x in r.failed] == [4]
    assert r.stats(True) == LatencyStats.of([0.1, 0.2])
    assert r.stats().count == 3
    assert r.zones() == {"green": 2, "grey": 0, "cold": 1}
    assert r.zones(False) == {"green": 0, "grey": 0, "cold": 1}


def test_the_assertion_passes_for_sub_second_warm_delivery() -> None:
    result(d(1, 0.1), d(2, 0.9), d(3, 7.0, warm=False)).assert_latency()


def test_the_assertion_message_says_what_was_slow() -> None:
    r = result(d(1, 0.1), d(2, 1.5), d(3, 2.0))
    with pytest.raises(AssertionError) as err:
        r.assert_latency()
    text = str(err.value)
    assert text.startswith(
        "delivery benchmark 'run' (sim, virtual time): p99 of 3 warm deliveries is 1.990 s, "
        "not under 1.000 s\n3 claims: 3 delivered (3 warm, 0 cold), 0 failed\n"
    )
    assert "  slow: #3 default--base-3 warm 2.000 s: locked +0.010, delivered +2.000" in text


def test_the_assertion_fails_on_failed_claims_or_no_warm_delivery() -> None:
    with pytest.raises(AssertionError, match=r"1 of 2 claims failed \(first: #2: no stock\)"):
        result(d(1, 0.1), d(2, None)).assert_latency()
    result(d(1, 0.1), d(2, None)).assert_latency(allow_failures=True)
    with pytest.raises(AssertionError, match="no warm deliveries to measure"):
        result(d(1, 3.0, warm=False)).assert_latency()
    result(d(1, 3.0, warm=False)).assert_latency(warm=False, below=5, percentile=50)


def test_the_assertion_over_every_delivery_words_its_subset_as_all() -> None:
    """``warm=None`` measures every delivery: "p99 of all 2 deliveries", and with none
    delivered "no deliveries to measure" (not "2 all deliveries", "no all deliveries")."""
    with pytest.raises(AssertionError, match=r": p99 of all 2 deliveries is 2\.975 s, not under"):
        result(d(1, 0.5), d(2, 3.0, warm=False)).assert_latency(warm=None)
    with pytest.raises(AssertionError, match=r"\(sim, virtual time\): no deliveries to measure\n"):
        result(d(1, None)).assert_latency(warm=None, allow_failures=True)


def test_csv_has_one_row_per_claim_with_phases_in_ms(tmp_path: Path) -> None:
    r = result(d(1, 0.1), d(2, None))
    text = r.write_csv(tmp_path / "x" / "run.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == [
        "index",
        "path",
        "template",
        "sandbox_id",
        "requested_s",
        "e2e_ms",
        "is_warm",
        "zone",
        "retries",
        "locked_ms",
        "delivered_ms",
        "error",
    ]
    assert rows[0]["e2e_ms"] == "100.000" and rows[0]["is_warm"] == "true"
    assert rows[0]["zone"] == "green" and rows[0]["locked_ms"] == "10.000"
    assert rows[1]["e2e_ms"] == "" and rows[1]["error"] == "no stock"


def test_json_summary(tmp_path: Path) -> None:
    r = result(d(1, 0.1), d(2, 3.0, warm=False), d(3, None))
    summary = json.loads(r.write_json(tmp_path / "run.json").read_text())
    assert summary["workload"] == {
        "kind": "burst",
        "count": 3,
        "template": "base",
        "path": "e2b",
        "namespace": "default",
    }
    assert (summary["claims"], summary["warm"], summary["cold"], summary["failed"]) == (3, 1, 1, 1)
    assert summary["latency_s"]["warm"]["p99"] == pytest.approx(0.1)
    assert summary["latency_s"]["cold"]["count"] == 1
    assert summary["zones"]["thresholds_s"] == {"green": 0.5, "grey": 1.0}
    assert summary["errors"] == {"no stock": 1}
    empty = result(d(1, None)).summary()
    assert empty["latency_s"]["warm"] == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


class _PathLike:
    """An ``os.PathLike`` that is not a Path (what a downstream config object might be)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __fspath__(self) -> str:
        return str(self._path)


@pytest.mark.parametrize("kind", ["str", "pathlike"])
def test_the_files_are_written_to_a_str_or_any_path_like(tmp_path: Path, kind: str) -> None:
    """``write_csv(path)`` and ``write_json(path)`` take a ``str`` or an ``os.PathLike`` as
    well as a Path (docs/plugin.md lists them for the result's user), make missing
    directories, and return the file's Path."""
    r = result(d(1, 0.1), d(2, None))
    csv_file, json_file = tmp_path / "a" / "run.csv", tmp_path / "b" / "run.json"
    wrap = str if kind == "str" else _PathLike
    assert r.write_csv(wrap(csv_file)) == csv_file
    assert r.write_json(wrap(json_file)) == json_file
    assert len(list(csv.DictReader(csv_file.read_text().splitlines()))) == 2
    assert json.loads(json_file.read_text())["claims"] == 2


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (None, TypeError, "path: must be a file path (str or os.PathLike), got None"),
        (b"run.csv", TypeError, "path: must be a file path (str or os.PathLike), got b'run.csv'"),
        (7, TypeError, "path: must be a file path (str or os.PathLike), got 7"),
        ("", ValueError, "path: must name a file, got ''"),
    ],
)
def test_a_path_that_names_no_file_is_refused_naming_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: object, error: type, message: str
) -> None:
    """One error naming ``path``, and nothing written (``""`` would be the directory ``.``)."""
    monkeypatch.chdir(tmp_path)
    r = result(d(1, 0.1))
    for write in (r.write_csv, r.write_json):
        with pytest.raises(error) as err:
            write(path)  # type: ignore[arg-type]
        assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []


def test_on_a_live_server_the_default_assertion_checks_every_delivery() -> None:
    """Wall-clock results call a delivery warm when under 1 s: the default must not filter on that."""
    live = DeliveryResult(
        name="live",
        workload=Burst(3),
        target="http://127.0.0.1:1",
        clock="wall",
        deliveries=(d(1, 0.5), d(2, 4.0, warm=False), d(3, 5.5, warm=False)),
    )
    with pytest.raises(AssertionError, match=r"p99 of all 3 deliveries is 5\.470 s"):
        live.assert_latency()
    live.assert_latency(below=6)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"percentile": 150}, ValueError, "percentile: must be a number within 0..100, got 150"),
        ({"percentile": math.nan}, ValueError, "percentile: must be a number within 0..100"),
        ({"percentile": "99"}, TypeError, "percentile: must be a number within 0..100"),
        ({"below": "1"}, TypeError, "below: must be a positive number of seconds, got '1'"),
        ({"below": math.nan}, ValueError, "below: must be a positive number of seconds"),
        ({"below": 0}, ValueError, "below: must be a positive number of seconds, got 0"),
        ({"warm": "yes"}, TypeError, "warm: must be True, False or None, got 'yes'"),
        ({"allow_failures": "no"}, TypeError, "allow_failures: must be True or False, got 'no'"),
    ],
)
def test_bad_assertion_parameters_name_the_parameter(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Refused as such, not reported as a slow run (nor as the percentile function's ``q``)."""
    r = result(d(1, 0.2), d(2, 0.3))
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        r.assert_latency(**kwargs)  # type: ignore[arg-type]


def test_the_subsets_name_a_bad_warm() -> None:
    r = result(d(1, 0.2))
    for read in (r.latencies, r.stats, r.zones):
        with pytest.raises(TypeError, match="warm: must be True, False or None, got 'yes'"):
            read(warm="yes")  # type: ignore[arg-type]


def test_a_percentile_ranks_the_values_whatever_order_they_come_in() -> None:
    """Deliveries are listed in request order, not by latency: the rank is the sorted one."""
    assert percentile([0.4, 0.1, 0.3, 0.2], 50) == pytest.approx(0.25)
    assert percentile([0.4, 0.1, 0.3, 0.2], 0) == 0.1


def test_the_stats_are_the_50th_90th_and_99th_percentiles_and_the_max() -> None:
    stats = LatencyStats.of([float(x) for x in range(100, -1, -1)])  # 100 down to 0
    assert (stats.count, stats.p50, stats.p90, stats.p99, stats.max) == (101, 50, 90, 99, 100)
    assert stats.describe() == "p50 50.000 s, p90 90.000 s, p99 99.000 s, max 100.000 s"


def test_an_empty_subset_is_described_as_none() -> None:
    r = result(d(1, 0.2))
    assert r.stats(False).describe() == "none"
    assert "\n  cold: none\n" in r.describe()


def test_a_delivery_of_unknown_warmth_is_neither_warm_nor_cold() -> None:
    """``warm=None`` on a delivered claim means unknown: it counts among all deliveries only."""
    r = result(d(1, 0.2), d(2, 3.0, warm=False), d(3, 0.4, warm=None))
    assert [x.index for x in r.warm] == [1]
    assert [x.index for x in r.cold] == [2]
    assert len(r.latencies()) == 3


def test_a_percentile_equal_to_the_bound_is_not_under_it() -> None:
    r = result(d(1, 0.5), d(2, 0.5))
    with pytest.raises(AssertionError, match=r"p99 of 2 warm deliveries is 0\.500 s, not under"):
        r.assert_latency(below=0.5)
    r.assert_latency(below=0.5001)


def test_the_assertion_can_check_the_100th_percentile_the_slowest() -> None:
    r = result(d(1, 0.1), d(2, 0.8))
    r.assert_latency(percentile=100, below=0.81)
    with pytest.raises(AssertionError, match=r"p100 of 2 warm deliveries is 0\.800 s"):
        r.assert_latency(percentile=100, below=0.8)


def test_the_assertion_names_the_first_failed_claim() -> None:
    last = Delivery(4, "e2b", "base", 0.0, None, None, error="other")
    r = result(d(1, 0.1), d(2, None), d(3, 0.2), last)
    with pytest.raises(AssertionError, match=r"2 of 4 claims failed \(first: #2: no stock\)"):
        r.assert_latency()


def test_on_a_realtime_clock_the_default_assertion_checks_warm_deliveries_only() -> None:
    """Realtime latencies are the model's, which knows where each sandbox came from: only
    the wall clock (a live server) has to check every delivery. The message names the clock."""
    realtime = DeliveryResult(
        name="rt",
        workload=Burst(2),
        target="sim",
        clock="realtime",
        deliveries=(d(1, 0.2), d(2, 4.0, warm=False)),
    )
    realtime.assert_latency()
    with pytest.raises(AssertionError) as err:
        realtime.assert_latency(warm=None)
    assert str(err.value).startswith(
        "delivery benchmark 'rt' (sim, realtime clock): p99 of all 2 deliveries is 3.962 s"
    )


def test_the_slowest_claims_are_listed_slowest_first() -> None:
    r = result(d(1, 0.3), d(2, 0.9), d(3, 0.1), d(4, 2.0, warm=False))
    slow = [line for line in r.describe(slowest=2).splitlines() if "slow:" in line]
    assert slow == [
        "  slow: #4 default--base-4 cold 2.000 s: locked +0.010, delivered +2.000",
        "  slow: #2 default--base-2 warm 0.900 s: locked +0.010, delivered +0.900",
    ]


def test_the_phase_columns_follow_the_claim_path_whatever_the_first_claim_had() -> None:
    """A first claim that failed early lists few phases, in any order: the columns stay
    in the order claims pass them, then phases the model does not know."""
    first = Delivery(1, "e2b", "base", 0.0, None, None, phases={"failed": 0.3, "picked": 0.1})
    second = Delivery(
        2, "e2b", "base", 0.0, 0.2, True, phases={"zz": 0.0, "delivered": 0.2, "locked": 0.1}
    )
    assert result(first, second).phase_names() == ["picked", "locked", "delivered", "failed", "zz"]


def test_the_csv_says_cold_as_false_and_keeps_the_request_time_and_retries(
    tmp_path: Path,
) -> None:
    cold = Delivery(1, "e2b", "base", 1.2345678, 3.0, False, "default--base-1", retries=2)
    text = result(cold).write_csv(tmp_path / "run.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert (rows[0]["is_warm"], rows[0]["zone"]) == ("false", "cold")
    assert (rows[0]["requested_s"], rows[0]["retries"]) == ("1.234568", "2")


def test_the_json_summary_splits_the_zones_and_counts_failures_without_a_reason(
    tmp_path: Path,
) -> None:
    unexplained = Delivery(4, "e2b", "base", 0.0, None, None)
    r = result(d(1, 0.1), d(2, 0.7), d(3, 3.0, warm=False), unexplained)
    zones = json.loads(r.write_json(tmp_path / "run.json").read_text())["zones"]
    assert zones["all"] == {"green": 1, "grey": 1, "cold": 1}
    assert zones["warm"] == {"green": 1, "grey": 1, "cold": 0}
    assert zones["cold"] == {"green": 0, "grey": 0, "cold": 1}
    assert r.summary()["errors"] == {"unknown": 1}

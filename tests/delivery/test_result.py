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
    with pytest.raises(AssertionError, match=r"p99 of 3 all deliveries is 5\.470 s"):
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

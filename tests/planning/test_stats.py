"""Statistics across replications, percentiles, the analytic sizing helpers, and goal parsing."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from simulator.erlang import erlang_b
from simulator.planning.analytic import (
    analytic_estimate,
    offered_rate,
    parse_max_share,
    parse_slo,
    refill_estimate,
    size_for_loss,
    size_for_wait,
    wait_tail,
)
from simulator.planning.errors import PlanningError
from simulator.planning.loading import load_scenario, parse_scenario
from simulator.planning.metrics import percentile
from simulator.planning.stats import aggregate, estimate, t_quantile, wilson_interval
from simulator.planning.study import RUN_SHARES
from simulator.profile import LATENCY_DOCS, get_profile


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 4, 2.7764),
        (0.975, 30, 2.0423),
        (0.975, 60, 2.0003),
        (0.95, 10, 1.8125),
        (0.995, 5, 4.0321),
    ],
)
def test_t_quantiles(p: float, df: int, expected: float) -> None:
    """Student-t quantiles match the tables."""
    assert t_quantile(p, df) == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.995, 3, 5.8409),
        (0.999, 3, 10.2145),
        (0.99, 3, 4.5407),
        (0.995, 4, 4.6041),
        (0.9995, 5, 6.8688),
        (0.999, 10, 4.1437),
        (0.6, 7, 0.2632),
        (0.01, 3, -4.5407),
        (0.999, 60, 3.2317),
        (0.975, 40, 2.0211),
    ],
)
def test_t_quantiles_at_any_level_are_table_exact(p: float, df: int, expected: float) -> None:
    """Other levels than 95% are as exact as the tables' 4 decimals, from 3 degrees of freedom.

    Before, they came from an expansion around the normal quantile that is
    2.7% low at p = 0.999 with 3 degrees of freedom: a 99% interval of 4
    replications was 0.8% too narrow.
    """
    assert t_quantile(p, df) == pytest.approx(expected, abs=6e-5)


def test_estimate_interval() -> None:
    """Mean, sample deviation and the t interval; one value has no interval; None values are skipped."""
    est = estimate([1.0, 2.0, 3.0, None])
    assert est is not None
    assert (est.n, est.mean, est.std) == (3, 2.0, 1.0)
    assert est.high == pytest.approx(2.0 + 4.3027 / 3**0.5, rel=1e-4)
    one = estimate([5.0])
    assert one is not None and one.low is None and one.half_width is None
    assert estimate([None]) is None
    # One unbounded value (a percentile on failed claims) is unbounded, still with no interval.
    unbounded = estimate([math.inf])
    assert unbounded is not None and unbounded.mean == math.inf
    assert (unbounded.low, unbounded.high) == (None, None)
    # A metric that cannot be negative keeps its interval at zero or above.
    clipped = estimate([0.0, 0.0, 0.3])
    assert clipped is not None and clipped.low == 0.0


def test_a_metric_with_negative_values_keeps_its_interval_below_zero() -> None:
    """Only a metric that cannot be negative is clipped at zero: one seen below zero (a refill
    time measured while recycled sandboxes overfilled the pool) keeps the whole t interval."""
    est = estimate([-1.0, 0.5, 2.0])
    assert est is not None and est.low is not None
    assert est.low == pytest.approx(0.5 - 4.3027 * 1.5 / 3**0.5, rel=1e-4)
    assert est.low < -1.0


def test_interval_covers_the_mean_about_95_percent_of_the_time() -> None:
    """Over many samples of five normal values the interval holds the true mean ~95% of the time."""
    rng = random.Random(3)
    hits = 0
    for _ in range(2000):
        est = estimate([rng.gauss(10, 2) for _ in range(5)])
        assert est is not None and est.low is not None and est.high is not None
        hits += est.low <= 10 <= est.high
    assert hits / 2000 == pytest.approx(0.95, abs=0.015)


def test_aggregate_by_metric() -> None:
    """One estimate per metric name; metrics undefined everywhere are left out."""
    out = aggregate([{"a": 1.0, "b": None}, {"a": 3.0, "b": None}])
    assert set(out) == {"a"}
    assert out["a"].mean == 2.0


def test_erlang_sizing() -> None:
    """The smallest pool for a loss target, and the M/M/S waiting tail."""
    s, b = size_for_loss(2.0, 0.05)
    assert s == 5
    assert b == pytest.approx(erlang_b(5, 2.0))
    assert erlang_b(4, 2.0) > 0.05
    assert wait_tail(2, 2.5, 1.0, 0.0) == 1.0  # at or above capacity everyone waits
    s, p = size_for_wait(3.0, 2.0, 0.5, 0.01)
    assert p <= 0.01 < wait_tail(s - 1, 3.0, 2.0, 0.5)


def mms_wait_tail(servers: int, arrival_rate: float, service_rate: float, t: float) -> float:
    """P(W > t) in M/M/S from the textbook, written out apart from the code under test.

    ``C(S, a) * exp(-(S*mu - lambda) t)`` with ``a = lambda / mu`` and Erlang-C from
    its factorial form.
    """
    a = arrival_rate / service_rate
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    c = top / (math.fsum(a**k / math.factorial(k) for k in range(servers)) + top)
    return c * math.exp(-(servers * service_rate - arrival_rate) * t)


@pytest.mark.parametrize(
    ("servers", "load", "refill", "t", "expected"),
    [
        # M/M/1: C(1, a) = a, the utilisation; mu = 1/2, lambda = 1/4.
        (1, 0.5, 2.0, 1.0, 0.5 * math.exp(-0.25)),
        # C(2, 1) = 1/3; mu = 1/4, lambda = 1/4: S*mu - lambda = 1/4.
        (2, 1.0, 4.0, 2.0, math.exp(-0.5) / 3),
        # C(3, 2) = 4/9; mu = 1/0.5, lambda = 4: S*mu - lambda = 2.
        (3, 2.0, 0.5, 0.3, 4 / 9 * math.exp(-0.6)),
        (3, 2.0, 0.5, 0.0, 4 / 9),
    ],
)
def test_wait_tail_has_textbook_values(
    servers: int, load: float, refill: float, t: float, expected: float
) -> None:
    """P(wait > t) in M/M/S is C(S, a) exp(-(S mu - lambda) t), with mu = 1/L and lambda = a/L."""
    assert wait_tail(servers, load, refill, t) == pytest.approx(expected, rel=1e-12)
    assert mms_wait_tail(servers, load / refill, 1 / refill, t) == pytest.approx(
        expected, rel=1e-12
    )


@pytest.mark.parametrize("servers", [4, 6, 9])
@pytest.mark.parametrize("refill", [0.4, 1.68, 5.0])
def test_wait_tail_is_the_mms_formula(servers: int, refill: float) -> None:
    """Over pool sizes and refill times (a refill time other than 1 s shows a lost 1/L)."""
    load = 3.4
    for t in (0.0, 0.2, 0.8, 2.5):
        assert wait_tail(servers, load, refill, t) == pytest.approx(
            mms_wait_tail(servers, load / refill, 1 / refill, t), rel=1e-9
        )
    s, p = size_for_wait(load, refill, 0.8, 0.01)
    assert p == pytest.approx(mms_wait_tail(s, load / refill, 1 / refill, 0.8), rel=1e-9)
    assert s - 1 <= load or mms_wait_tail(s - 1, load / refill, 1 / refill, 0.8) > 0.01


@pytest.mark.parametrize(
    ("name", "rate"),
    [("steady.yaml", 3.0), ("no-stock.yaml", 2.0), ("retry-profiles.yaml", 4 / 3)],
)
def test_offered_rate_of_the_shipped_scenarios(name: str, rate: float) -> None:
    """The claims per second over the measured window (after the warmup), as the scenario says."""
    root = Path(__file__).resolve().parents[2] / "scenarios"
    scenario = load_scenario(root / name)
    assert offered_rate(scenario, scenario.pools[0]) == pytest.approx(rate, rel=1e-9)


def test_offered_rate_counts_the_measured_window_only(tmp_path: Path) -> None:
    """Claims during the warmup are not offered load: count [warmup, horizon) over its length."""
    # 2 claims/s during the 20 s warmup, 1/s after: 40 rows, then 40 over 40 s.
    times = [i * 0.5 for i in range(40)] + [20.0 + i for i in range(40)]
    (tmp_path / "t.csv").write_text("time\n" + "".join(f"{t}\n" for t in times))
    scenario = parse_scenario(
        {
            "duration": "40s",
            "warmup": "20s",
            "pools": [{"name": "base", "replicas": 4}],
            "workloads": [
                {"template": "base", "arrivals": {"kind": "trace", "file": "t.csv"}, "hold": "5s"}
            ],
        },
        base_dir=tmp_path,
    )
    assert (scenario.warmup, scenario.horizon) == (20.0, 60.0)
    assert offered_rate(scenario, scenario.pools[0]) == pytest.approx(1.0)
    poisson = parse_scenario(
        {
            "duration": "90s",
            "warmup": "30s",
            "pools": [{"name": "base", "replicas": 4}],
            "workloads": [
                {"template": "base", "arrivals": {"kind": "poisson", "rate": 2.5}, "hold": "5s"}
            ],
        }
    )
    assert offered_rate(poisson, poisson.pools[0]) == pytest.approx(2.5)


def test_refill_estimate_sums_the_step_means() -> None:
    """With every latency zero but pod creation, the refill estimate is the pod creation's mean."""
    prof = get_profile("openkruise-head")
    assert 1.0 < refill_estimate(prof) < 3.0
    zero = prof.with_overrides(
        latencies={**dict.fromkeys(LATENCY_DOCS, 0), "pod.create": "exp(2s)"}
    )
    assert refill_estimate(zero) == pytest.approx(2.0)


def test_goal_parsing() -> None:
    """SLOs and shares parse; mistakes name the option and the reason."""
    slo = parse_slo("p99 < 1.5s")
    assert (slo.stat, slo.seconds, slo.metric) == ("p99", 1.5, "latency_p99")
    assert slo.tail_share == pytest.approx(0.01)
    assert parse_slo("p99.9<=250ms").metric == "latency_p999"
    assert parse_slo("max<2s").tail_share == 0.0
    assert parse_max_share("1%") == pytest.approx(0.01)
    assert parse_max_share("0.25") == 0.25
    for text, why in [
        ("p98<1s", "unsupported statistic 'p98'"),
        ("p99 1s", "cannot read"),
        ("p99<0s", "must be > 0"),
    ]:
        with pytest.raises(PlanningError, match=why) as info:
            parse_slo(text)
        assert str(info.value).startswith("--slo: ")
    with pytest.raises(PlanningError, match=r"--max-cold: must be in \[0, 1\)"):
        parse_max_share("150%")


@pytest.mark.parametrize("n", [1000, 2000, 5000, 10000, 41000])
def test_nearest_rank_percentiles_are_exact(n: int) -> None:
    """p99.9 of 1..n is the value of rank ceil(0.999 n) exactly (floats made 99.9/100*1000
    999.0000000000001, and 99.9*41000/100 40959.00000000001)."""
    values = list(range(1, n + 1))
    assert percentile(values, 99.9) == n * 999 // 1000
    assert percentile(values, 99) == n * 99 // 100
    assert percentile(values, 50) == n // 2
    assert percentile(values, 100) == n
    assert percentile(values, 0) == 1
    assert percentile([], 99) is None


def test_a_trace_counts_for_the_pools_its_rows_name(tmp_path: Path) -> None:
    """A trace workload with a default template: each pool's rate is its own rows' (not all for the default)."""
    (tmp_path / "t.csv").write_text(
        "time,template\n" + "".join(f"{t},{'code' if t % 3 == 0 else ''}\n" for t in range(60))
    )
    scenario = parse_scenario(
        {
            "duration": "60s",
            "pools": [{"name": "base", "replicas": 4}, {"name": "code", "replicas": 4}],
            "workloads": [
                {"template": "base", "arrivals": {"kind": "trace", "file": "t.csv"}, "hold": "5s"}
            ],
        },
        base_dir=tmp_path,
    )
    base, code = scenario.pools
    assert offered_rate(scenario, base) == pytest.approx(40 / 60)
    assert offered_rate(scenario, code) == pytest.approx(20 / 60)
    estimate = analytic_estimate(scenario, code, None, 0.01)
    assert estimate.rate == pytest.approx(20 / 60) and estimate.replicas is not None
    assert estimate.replicas > 1
    assert "arrivals are not Poisson: Erlang uses their mean rate only" in estimate.notes


def test_wilson_interval_is_not_empty_at_zero() -> None:
    """0 of n: the upper bound is z²/(n + z²), about 3.84/n (the rule of three at 95%)."""
    low, high = wilson_interval(0, 330)
    assert low == 0.0 and high == pytest.approx(3.8415 / (330 + 3.8415), rel=1e-4)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    with pytest.raises(ValueError, match="trials"):
        wilson_interval(0, 0)


def test_a_share_no_replication_saw_has_a_binomial_interval() -> None:
    """Three runs of 110 claims with no cold one: [0, 1.15%], not the spread's [0, 0].

    A share's interval covers the Wilson interval of the pooled counts, and
    records the claims it is a share of; a share seen often keeps the wider
    of the two intervals.
    """
    rows: list[dict[str, float | None]] = [
        {"cold_share": 0.0, "delivered": 110.0, "claims": 110.0, "failed_share": 0.0}
        for _ in range(3)
    ]
    out = aggregate(rows, shares=RUN_SHARES)
    cold = out["cold_share"]
    assert (cold.mean, cold.low, cold.trials) == (0.0, 0.0, 330.0)
    assert cold.high == pytest.approx(0.0115, abs=1e-4)
    # Without the claims counted, a share keeps the Student-t interval alone.
    assert aggregate(rows)["cold_share"].high == 0.0
    spread = aggregate(
        [{"cold_share": 0.1, "delivered": 1000.0}, {"cold_share": 0.3, "delivered": 1000.0}],
        shares=RUN_SHARES,
    )["cold_share"]
    t_half = t_quantile(0.975, 1) * math.sqrt(0.02) / math.sqrt(2)
    assert spread.high == pytest.approx(min(1.0, 0.2 + t_half))
    # One replication: no interval, as for every metric.
    one = aggregate(rows[:1], shares=RUN_SHARES)["cold_share"]
    assert (one.low, one.high, one.trials) == (None, None, 110.0)


def test_a_share_seen_alike_in_few_claims_has_the_binomial_interval_on_both_sides() -> None:
    """Three runs with 1 cold claim of 2 delivered each: the spread is zero, but 3 of 6 claims
    only show the share within Wilson's [18.8%, 81.2%], on the low side as on the high."""
    rows: list[dict[str, float | None]] = [{"cold_share": 0.5, "delivered": 2.0} for _ in range(3)]
    cold = aggregate(rows, shares=RUN_SHARES)["cold_share"]
    low, high = wilson_interval(3, 6)
    assert (cold.mean, cold.std, cold.trials) == (0.5, 0.0, 6.0)
    assert cold.low == pytest.approx(low)
    assert cold.high == pytest.approx(high)
    assert cold.low == pytest.approx(0.1876, abs=1e-4)

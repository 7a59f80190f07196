"""Statistics across replications: mean, standard deviation and a Student-t confidence interval.

Replications are independent runs (different seeds) of the same point, so a
metric's per-run values are i.i.d. and the interval ``mean ± t(0.975, n-1) ·
s / √n`` covers the metric's expectation 95% of the time (for roughly normal
per-run values; with few replications the interval is wide, as it should be).

A share (cold, failed, waited) is a count of claims out of a count of claims,
and the spread between replications says nothing about an event none of them
saw: every run with 0 cold claims gives the interval [0, 0]. A share's
interval therefore also covers the Wilson interval of the counts pooled over
the replications (0 of 330 claims: [0%, 1.15%]), whichever reaches further.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any

__all__ = ["Estimate", "ShareBase", "aggregate", "estimate", "t_quantile", "wilson_interval"]

_NORMAL = NormalDist()

_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
"""Student's t 0.975 quantiles for 1..30 degrees of freedom (the 95% two-sided interval)."""


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    Exact in closed form for 1 and 2 degrees of freedom; the 95% interval's
    ``p = 0.975`` is tabulated (to 4 decimals) up to 30; other quantiles up to
    :data:`_EXACT_DF` degrees of freedom invert the exact distribution
    function (relative error below 1e-9); beyond, a Cornish-Fisher expansion
    around the normal quantile (relative error below 3e-6 up to p = 0.9999).
    """
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if df < 1:
        raise ValueError("df must be >= 1")
    if p == 0.975 and df <= len(_T975):
        return _T975[df - 1]
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    if df <= _EXACT_DF:
        return _t_inverse(p, df)
    return _cornish_fisher(p, df)


_EXACT_DF = 30
"""Up to here quantiles invert the exact distribution function (its series has ``df / 2``
terms). The expansion's error falls as ``df**-5``: at 3 degrees of freedom it is 2.7% at
p = 0.999 (a 99.8% interval that narrow), past 30 below 3e-6."""


def _cornish_fisher(p: float, df: int) -> float:
    z = _NORMAL.inv_cdf(p)
    n = float(df)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / n + g2 / n**2 + g3 / n**3 + g4 / n**4


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for t >= 0, in closed form for a whole ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(2, df, 2):  # 1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...
            term *= cos2 * (k - 1) / k
            total += term
        return sin * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(3, df, 2):  # cos + 2/3 cos^3 + 2*4/(3*5) cos^5 + ...
        term *= cos2 * (k - 1) / k
        total += term
    return 2 / math.pi * (theta + sin * total)


def _t_inverse(p: float, df: int) -> float:
    """The ``p`` quantile by bisection on the exact distribution function."""
    central = abs(2 * p - 1)  # P(|T| <= t) for the quantile's magnitude t
    low, high = 0.0, 1.0
    while _t_central(high, df) < central:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if mid in (low, high):
            break
        if _t_central(mid, df) < central:
            low = mid
        else:
            high = mid
    t = (low + high) / 2
    return t if p >= 0.5 else -t


@dataclass(frozen=True)
class Estimate:
    """A metric over replications: ``n`` values, their mean, spread and 95% interval."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None
    trials: float | None = None
    """For a share: the claims it is a share of, over all replications (its interval's basis)."""

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (None with a single value)."""
        return None if self.high is None else self.high - self.mean

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``trials`` only for a share)."""
        d = asdict(self)
        if self.trials is None:
            del d["trials"]
        return d


def wilson_interval(
    successes: float, trials: float, confidence: float = 0.95
) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``successes / trials`` (trials > 0).

    Unlike the normal approximation it is not empty at 0 or 1: 0 of ``n``
    gives ``[0, z²/(n + z²)]``, about ``3.84/n`` at 95% (the rule of three).
    """
    if trials <= 0:
        raise ValueError("trials must be > 0")
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    p = min(1.0, max(0.0, successes / trials))
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials))
    # At 0 (or all) the bound is exactly 0 (or 1): rounding would leave 1e-19.
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return low, high


def estimate(
    values: Iterable[float | None],
    confidence: float = 0.95,
    *,
    upper: float | None = None,
    trials: Iterable[float | None] | None = None,
) -> Estimate | None:
    """The estimate of the defined values (None when there are none).

    ``upper`` bounds the interval from above (1.0 for a share). ``trials``
    makes the values shares: each value's number of trials (claims), in the
    same order; the interval then also covers the Wilson interval of the
    pooled counts (module docstring).
    """
    if trials is not None:
        return _share_estimate(values, trials, confidence)
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(vals)
    if n == 0:
        return None
    if any(math.isinf(v) for v in vals):
        # An unbounded value (a percentile falling on claims never delivered):
        # the mean is unbounded, and the interval reaches down to the smallest.
        low = min(vals) if n > 1 else None
        return Estimate(
            n=n, mean=math.inf, std=None, low=low, high=None if low is None else math.inf
        )
    mean = math.fsum(vals) / n
    if n == 1:
        return Estimate(n=1, mean=mean, std=None, low=None, high=None)
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    low = mean - half
    if low < 0 <= min(vals):
        # A metric that cannot be negative (a latency, a share, a count) keeps its
        # interval at or above zero: the normal approximation overshoots there.
        low = 0.0
    high = mean + half
    if upper is not None and high > upper >= max(vals):
        high = upper
    return Estimate(n=n, mean=mean, std=std, low=low, high=high)


def _share_estimate(
    values: Iterable[float | None], trials: Iterable[float | None], confidence: float
) -> Estimate | None:
    pairs = [
        (float(v), float(n))
        for v, n in zip(values, trials, strict=True)
        if v is not None and not math.isnan(v) and n is not None and n > 0
    ]
    est = estimate((v for v, _ in pairs), confidence, upper=1.0)
    if est is None:
        return None
    total = math.fsum(n for _, n in pairs)
    if est.n < 2 or est.low is None or est.high is None:
        # One replication: no interval (as for every metric), but its basis is known.
        return replace(est, trials=total)
    hits = math.fsum(round(v * n) for v, n in pairs)
    low, high = wilson_interval(hits, total, confidence)
    return replace(est, low=min(est.low, low), high=max(est.high, high), trials=total)


ShareBase = Callable[[Mapping[str, float | None]], float | None]
"""The number of claims a share in a row is of, read from the same row."""


def aggregate(
    rows: Sequence[Mapping[str, float | None]],
    confidence: float = 0.95,
    *,
    shares: Mapping[str, ShareBase] | None = None,
) -> dict[str, Estimate]:
    """One estimate per metric name found in ``rows`` (names undefined everywhere are left out).

    Metrics named ``*_share`` keep their interval at or below 1; those named
    in ``shares`` are shares of the claims their function reads from the row,
    and their interval covers the pooled counts' Wilson interval too.
    """
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    out: dict[str, Estimate] = {}
    for name in names:
        upper = 1.0 if name.endswith("_share") else None
        base = (shares or {}).get(name)
        trials = None if base is None else [base(row) for row in rows]
        est = estimate((row.get(name) for row in rows), confidence, upper=upper, trials=trials)
        if est is not None:
            out[name] = est
    return out

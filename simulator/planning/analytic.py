"""The analytic estimate of a pool size, from Erlang's formulas, to set next to the simulation.

A warm pool of ``S`` replicas is a group of ``S`` refill "servers": each warm
claim takes one sandbox, which the SandboxSet replaces; the slot is busy from
the claim until the replacement is available, ``L`` seconds on average (the
*refill time*). With Poisson claims of rate ``λ`` the offered load is
``a = λL`` and

* with **create-on-no-stock** a claim that finds the pool empty is created
  cold, the pool is an M/G/S/S loss system and the cold share is
  Erlang-B(S, a), whatever the refill-time distribution;
* **without** it the claim waits (retries) for a refill: with exponential
  refill the pool is M/M/S, the share that waits is Erlang-C(S, a) and a wait
  exceeds ``t`` with probability ``C · exp(-(S - a) t / L)``.

A latency goal such as ``p99 < 1s`` becomes a goal on that share: it holds
while at most 1% of the claims miss it, and only a cold claim (or one that
waits a whole retry) does. A cold claim misses it with a probability
:func:`cold_miss_share` estimates by sampling the cold path's steps (the
mean cold latency says nothing of the tail), so at most 1% / that
probability of the claims may be cold.

:func:`refill_estimate` adds up the mean latencies of the steps a
replacement goes through in the model (:data:`REFILL_STEPS`, from the claim's
lock write on); the simulation measures the real mean by Little's law on the
SandboxSet controller's counts, ``(S - mean available) / warm claim rate``,
plus the time the controller still counts a claimed sandbox as available:
the claim's lock write (measured) and the watch lag until the controller's
cache sees it (see :func:`simulator.planning.measure.pool_metrics`).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pytest_kruise_agents.claiming.retry import CLAIM_RETRY
from simulator.erlang import erlang_b, erlang_c
from simulator.planning.arrivals import PoissonArrivals, TraceArrivals, TraceRow
from simulator.planning.errors import PlanningError
from simulator.planning.figures import three_figures
from simulator.planning.scenario import PoolSpec, Scenario, WorkloadSpec
from simulator.profile import Profile

__all__ = [
    "COLD_DRAWS",
    "COLD_STEPS",
    "ERLANG_C_ORDER",
    "NO_SHARE_LIMIT",
    "REFILL_STEPS",
    "AnalyticEstimate",
    "Slo",
    "analytic_estimate",
    "arrivals_note",
    "cold_latency_estimate",
    "cold_miss_share",
    "erlang_curve",
    "latency_share_note",
    "offered_rate",
    "parse_max_share",
    "parse_slo",
    "pool_workloads",
    "refill_estimate",
    "size_for_loss",
    "size_for_wait",
    "wait_tail",
    "waits_for_refill",
]

ERLANG_C_ORDER = (
    "Erlang-C assumes exponential refills served in arrival order, while a waiting claim retries "
    "on its own schedule (back-off 1 s, 2 s, 4 s, ... at HEAD, every 25 ms in v0.3.0): a new "
    "claim may take a refill before one asleep between attempts, so the shares differ"
)
"""Why Erlang-C's waiting share differs from the simulated one, printed next to it."""

_NEW_SANDBOX_STEPS: tuple[tuple[str, str], ...] = (
    ("api.create", "the (replacement) Sandbox is created"),
    ("watch.lag", "it reaches the Sandbox controller"),
    ("controller.reconcile", "the Sandbox reconcile"),
    ("api.create", "its Pod is created"),
    ("watch.lag", "the Pod reaches the scheduler"),
    ("scheduler.bind", "the scheduler picks a node"),
    ("api.update", "the binding is written (a patch)"),
    ("watch.lag", "the kubelet sees the bound Pod"),
    ("pod.create", "the kubelet creates the pod sandbox"),
    ("image.pull_cached", "the image is already on the node (image.pull on a fresh node)"),
    ("container.start", "the container starts"),
    ("container.ready", "the readiness probe passes"),
    ("api.update", "the kubelet writes the Pod ready (a status patch)"),
    ("watch.lag", "the Sandbox controller sees it"),
    ("controller.reconcile", "the Sandbox reconcile that finds the Pod ready"),
    ("api.update", "the Sandbox is written ready (a status patch)"),
    ("watch.lag", "the sandbox-manager's cache sees it available"),
)
"""A new Sandbox's steps, from its create until the sandbox-manager can hand it out.

Patches (the binding, both status writes) cost ``api.update``: the API server
charges a patch as an update (``simulator.apiserver._VERB_LATENCY``), so
``api.update_status`` (the SandboxSet's own status write) is on no claim's path.
"""

REFILL_STEPS: tuple[tuple[str, str], ...] = (
    ("api.update", "the claim locks the picked sandbox (an update)"),
    ("watch.lag", "the lock reaches the SandboxSet controller's cache"),
    ("controller.reconcile", "the SandboxSet reconcile"),
    *_NEW_SANDBOX_STEPS,
)
"""The steps of one refill in the model, by latency name (see ``simulator.profile.LATENCY_DOCS``).

The slot is busy from the pick (the sandbox is then the claim's, while the
lock is written) until the manager's cache sees the replacement available.
"""


def latency_share_note(slo: Slo, miss: float, cold_latency: float) -> str:
    """How a percentile goal becomes a cold share: its tail over the share of cold claims that miss it."""
    tail = slo.tail_share or 0.0
    return (
        f"{slo.text} lets {_percent(tail)} of the claims miss it and a cold claim misses it "
        f"{_percent(miss)} of the time (estimated from {COLD_DRAWS:,} draws of its steps; "
        f"{three_figures(cold_latency)}s on average): "
        f"at most {_percent(min(1.0, tail / miss))} of the claims may be cold"
    )


def _percent(share: float) -> str:
    """A share as a short percentage: 0.01 is ``1%``, 0.2231 ``22.3%``, 0.0013 ``0.13%``."""
    return f"{share * 100:.3g}%"


def refill_estimate(profile: Profile) -> float:
    """Mean seconds from a warm claim's pick to its replacement being available (sum of step means)."""
    return math.fsum(profile.latency(name).mean() for name, _ in REFILL_STEPS)


COLD_STEPS: tuple[str, ...] = (
    "manager.pick",
    *(n for n, _ in _NEW_SANDBOX_STEPS),
    "runtime.init",
)
"""The steps of a claim created on no stock, by latency name: the pick, a new Sandbox's, the ``/init``.

The claim's own create is the lock; the manager then waits for the Sandbox
to be ready, as a replacement's steps make it.
"""

COLD_DRAWS = 20_000
"""Cold deliveries drawn to estimate the share that misses a latency goal (about 0.1 s)."""

_COLD_SEED = 20_240_611
"""The seed of those draws: the same profile and goal always give the same estimate."""


def cold_latency_estimate(profile: Profile) -> float:
    """Mean delivery of a claim created on no stock (the sum of :data:`COLD_STEPS`' means)."""
    return math.fsum(profile.latency(name).mean() for name in COLD_STEPS)


def cold_miss_share(profile: Profile, slo: Slo) -> float:
    """The share of cold claims that miss ``slo``'s threshold, from :data:`COLD_DRAWS` draws.

    Each draw adds one sample of each of :data:`COLD_STEPS` (from a generator
    of its own with a fixed seed: the model's own draws stay untouched and the
    estimate is the same every time). The mean says little about the tail:
    with the openkruise-head profile cold claims take 1.76 s on average, yet a
    fifth of them take 2 s or more. 0.0 when no draw missed (below one in
    :data:`COLD_DRAWS`).
    """
    rng = random.Random(_COLD_SEED)
    steps = [profile.latency(name) for name in COLD_STEPS]
    missed = 0
    for _ in range(COLD_DRAWS):
        if not slo.met(math.fsum(step.sample(rng) for step in steps)):
            missed += 1
    return missed / COLD_DRAWS


_SLO = re.compile(
    # The value is any text: the project's duration reader reads it (``1m30s`` too) and
    # names what it cannot read.
    r"^\s*(?P<stat>p\d+(?:\.\d+)?|max|mean)\s*(?P<op><=|<)\s*(?P<value>[^<=\s](?:.*\S)?)\s*$",
    re.IGNORECASE,
)
_QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


@dataclass(frozen=True)
class Slo:
    """A goal on delivery latency: ``stat`` (``p99``, ``max``, ``mean``) below ``seconds``."""

    stat: str
    seconds: float
    text: str
    inclusive: bool = False
    """``<=`` rather than ``<``."""

    @property
    def metric(self) -> str:
        """The run metric the goal reads (``latency_p99``, ``latency_max``, ...)."""
        return "latency_" + self.stat.replace(".", "")

    @property
    def judged_metric(self) -> str:
        """The run metric the goal is judged on: a percentile (or the max) of all claims.

        A claim not delivered counts as slower than any delivered one
        (``latency_p99_all``); a mean goal reads the delivered claims' mean.
        """
        return self.metric if self.stat == "mean" else self.metric + "_all"

    @property
    def tail_share(self) -> float | None:
        """The share of claims allowed above the threshold (0.01 for p99; None for mean)."""
        if self.stat == "max":
            return 0.0
        q = _QUANTILES.get(self.stat)
        # Rounded: 1 - 0.99 is 0.010000000000000009, which plan.json would print.
        return None if q is None else round(1.0 - q / 100.0, 12)

    def met(self, value: float | None) -> bool:
        """Whether a measured value meets the goal (an undefined one does not)."""
        if value is None:
            return False
        return value <= self.seconds if self.inclusive else value < self.seconds


def parse_slo(text: str, option: str = "--slo") -> Slo:
    """``"p99<1s"`` → :class:`Slo`; :class:`PlanningError` names ``option`` and the reason.

    Only text is a goal (a number has no statistic): anything else is refused too.
    """
    from simulator.latency import parse_seconds

    if not isinstance(text, str):
        raise PlanningError(f"{option}: expected a goal such as 'p99<1s', got {text!r}")
    m = _SLO.match(text)
    if m is None:
        raise PlanningError(
            f"{option}: cannot read {text!r}: expected <stat><<value>, e.g. 'p99<1s', "
            f"with stat one of {', '.join(_QUANTILES)}, max, mean"
        )
    stat = m.group("stat").lower()
    if stat not in _QUANTILES and stat not in ("max", "mean"):
        raise PlanningError(
            f"{option}: unsupported statistic {stat!r}: use one of {', '.join(_QUANTILES)}, max, mean"
        )
    try:
        # A space between number and unit reads as before (``1 s``).
        seconds = parse_seconds(m.group("value").replace(" ", ""))
    except ValueError as exc:
        raise PlanningError(f"{option}: {exc}") from None
    if seconds <= 0:
        raise PlanningError(f"{option}: the threshold must be > 0, got {m.group('value')!r}")
    return Slo(stat=stat, seconds=seconds, text=text.strip(), inclusive=m.group("op") == "<=")


def parse_max_share(text: str | float, option: str = "--max-cold") -> float:
    """``"1%"``, ``"0.01"`` or ``0.01`` → 0.01; :class:`PlanningError` names the option and the reason.

    A number is the share itself, as its text is (a scenario's goals and a
    Python caller give numbers, the command line text); a bool is no share.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise PlanningError(f"{option}: expected a share such as 1% or 0.01, got {text!r}")
    raw = text.strip() if isinstance(text, str) else str(text)
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise PlanningError(
            f"{option}: expected a share such as 1% or 0.01, got {text!r}"
        ) from None
    if not 0.0 <= value < 1.0:
        raise PlanningError(f"{option}: must be in [0, 1) (0% to 99.9%), got {text!r}")
    return value


def _claims_from(wl: WorkloadSpec, pool: PoolSpec) -> bool:
    """Whether workload ``wl`` claims from ``pool`` (a trace: any of its rows does)."""
    if isinstance(wl.arrivals, TraceArrivals):
        return any(_row_pool(wl, r) == (pool.namespace, pool.name) for r in wl.arrivals.rows)
    return (wl.namespace, wl.template) == (pool.namespace, pool.name)


def pool_workloads(scenario: Scenario, pool: PoolSpec) -> list[WorkloadSpec]:
    """The workloads that claim from ``pool`` (a trace's: when any of its rows does)."""
    return [wl for wl in scenario.workloads if _claims_from(wl, pool)]


def arrivals_note(scenario: Scenario, pool: PoolSpec) -> str | None:
    """Why Erlang's answer for ``pool`` may miss (its arrivals are not Poisson), or ``None``."""
    if all(isinstance(wl.arrivals, PoissonArrivals) for wl in pool_workloads(scenario, pool)):
        return None
    return "arrivals are not Poisson: Erlang uses their mean rate only"


def waits_for_refill(scenario: Scenario, pool: PoolSpec) -> bool:
    """Whether a claim of ``pool`` may wait for a refill: a workload of it has no create-on-no-stock.

    With create-on-no-stock a claim that finds no stock is created cold; it
    retries only after a failure (an ``/init`` error, a lost node), which a
    larger pool does not prevent.
    """
    return any(not wl.claim.create_on_no_stock for wl in pool_workloads(scenario, pool))


def _row_pool(wl: WorkloadSpec, row: TraceRow) -> tuple[str, str | None]:
    """The pool a trace row claims from: its own template and namespace, else the workload's."""
    return (row.namespace or wl.namespace, row.template or wl.template)


def offered_rate(scenario: Scenario, pool: PoolSpec) -> float:
    """Mean sandboxes claimed per second from ``pool`` over the measured window.

    A trace names the pool row by row (the workload's ``template`` is only
    the default), so only the rows that claim from ``pool`` count.
    """
    lo, hi = scenario.warmup, scenario.horizon
    total = 0.0
    for wl in scenario.workloads:
        arrivals = wl.arrivals
        if isinstance(arrivals, TraceArrivals):
            key = (pool.namespace, pool.name)
            n = sum(1 for r in arrivals.rows if lo <= r.time < hi and _row_pool(wl, r) == key)
            total += float(n) * wl.claim.replicas
        elif _claims_from(wl, pool):
            total += arrivals.expected(lo, hi) * wl.claim.replicas
    return total / (hi - lo) if hi > lo else 0.0


def size_for_loss(load: float, target: float) -> tuple[int, float]:
    """The smallest S with Erlang-B(S, load) <= ``target``, and that blocking probability."""
    if target <= 0:
        raise ValueError("target must be > 0")
    s = 0
    b = 1.0
    while b > target:
        s += 1
        b = load * b / (s + load * b)
    return s, b


def wait_tail(servers: int, load: float, refill: float, t: float) -> float:
    """P(wait > t) in M/M/S with mean service ``refill`` (1.0 at or above capacity)."""
    if servers <= load:
        return 1.0
    c = erlang_c(servers, load)
    return c * math.exp(-(servers - load) * t / refill)


def size_for_wait(load: float, refill: float, t: float, target: float) -> tuple[int, float]:
    """The smallest S with P(wait > t) <= ``target`` in M/M/S, and that probability."""
    if target <= 0:
        raise ValueError("target must be > 0")
    s = max(1, math.floor(load) + 1)
    while (p := wait_tail(s, load, refill, t)) > target:
        s += 1
    return s, p


NO_SHARE_LIMIT = "no goal limits the {share}: any size meets that part of the goals"
"""The note of an estimate whose goals leave Erlang's share free (``{share}``: what is free)."""


@dataclass
class AnalyticEstimate:
    """Erlang's answer for one pool, with the figures it rests on and what it leaves out.

    ``target`` is the share Erlang sizes for; ``None`` when no goal limits it
    (then ``replicas`` is ``None`` too: Erlang has no size to give, and any size
    meets that part of the goals). ``cold_miss_share`` is the estimated share of
    cold claims that miss the latency goal (see :func:`cold_miss_share`), when a
    percentile goal was translated into a cold share.
    """

    pool: str
    rate: float
    refill_s: float
    load: float
    model: Literal["erlang-b", "erlang-c"]
    target: float | None
    replicas: int | None
    value: float | None
    cold_latency_s: float
    notes: list[str] = field(default_factory=list)
    cold_miss_share: float | None = None
    at_replicas: int | None = None
    """The pool's own size, where ``simulate`` sets the formula against the simulation."""
    value_at_replicas: float | None = None
    """The formula's share at ``at_replicas``: the cold share (Erlang-B), or the share of
    claims that wait for a refill (Erlang-C)."""

    @property
    def compared_with(self) -> str:
        """The simulated share the formula stands for: a pool's claims either wait for a
        refill (never cold: ``waited_share``) or are created cold (``cold_share``)."""
        return "cold_share" if self.model == "erlang-b" else "waited_share"

    def at(self, replicas: int) -> AnalyticEstimate:
        """This estimate with the formula's share at ``replicas`` (a pool's own size)."""
        value = erlang_curve(self.load, [replicas], self.model)[0]
        return replace(self, at_replicas=replicas, value_at_replicas=value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the simulated share the formula is set against."""
        return {**asdict(self), "compared_with": self.compared_with}

    def describe(self) -> str:
        """One line: the formula, the load and the answer."""
        what = "cold share = Erlang-B" if self.model == "erlang-b" else "P(wait) from Erlang-C"
        if self.target is None:
            return f"{what}: no size to give ({'; '.join(self.notes)})"
        if self.replicas is None:
            return f"{what}: no pool size meets the goal ({'; '.join(self.notes)})"
        return (
            f"{what}(S, a) with a = λ·L = {three_figures(self.rate)}/s x "
            f"{three_figures(self.refill_s)}s = {three_figures(self.load)}: "
            f"S = {self.replicas} ({self.value:.3%} <= {self.target:.3%})"
        )


def analytic_estimate(
    scenario: Scenario,
    pool: PoolSpec,
    slo: Slo | None,
    max_cold: float | None,
    *,
    refill_s: float | None = None,
) -> AnalyticEstimate:
    """Erlang's smallest ``replicas`` for ``pool`` meeting ``slo`` and ``max_cold``.

    ``refill_s`` overrides the profile's refill estimate (e.g. with the
    refill time the simulation measured). When no goal limits the share
    Erlang computes (the cold share, or the waiting share without
    create-on-no-stock), the estimate has no ``target`` and no ``replicas``.
    """
    profile = scenario.cluster.build_profile()
    refill = refill_s if refill_s is not None else refill_estimate(profile)
    rate = offered_rate(scenario, pool)
    load = rate * refill
    cold_latency = cold_latency_estimate(profile)
    notes: list[str] = []
    workloads = pool_workloads(scenario, pool)
    create = all(wl.claim.create_on_no_stock for wl in workloads)
    note = arrivals_note(scenario, pool)
    if note is not None:
        notes.append(note)

    miss: float | None = None

    def answer(
        model: Literal["erlang-b", "erlang-c"],
        target: float | None,
        replicas: int | None = None,
        value: float | None = None,
        *more: str,
    ) -> AnalyticEstimate:
        return AnalyticEstimate(
            pool.key,
            rate,
            refill,
            load,
            model,
            target,
            replicas,
            value,
            cold_latency,
            [*notes, *more],
            miss,
        )

    tail = slo.tail_share if slo is not None else None
    if create:
        targets = [t for t in (max_cold,) if t is not None]
        free = "cold share"
        if slo is not None and tail is not None:
            # A pQ goal holds while at most 1 - Q/100 of the claims miss it. Warm
            # claims meet it; a cold one misses with probability ``miss``, so the
            # cold share may be up to tail / miss (every claim, when that is >= 1).
            miss = cold_miss_share(profile, slo)
            drawn = f"estimated from {COLD_DRAWS:,} draws of its steps"
            if miss > tail:
                targets.append(tail / miss)
                if tail > 0:
                    notes.append(latency_share_note(slo, miss, cold_latency))
            elif miss > 0:
                free = (
                    f"cold share (a cold claim misses {slo.text} {_percent(miss)} of the time, "
                    f"{drawn}: within the {_percent(tail)} the goal lets miss, even if every "
                    "claim is cold)"
                )
            else:
                free = (
                    f"cold share (no cold claim misses {slo.text} in {COLD_DRAWS:,} draws of its "
                    f"steps, {three_figures(cold_latency)}s on average)"
                )
        if slo is not None and slo.stat == "mean":
            notes.append("a mean goal is not translated into a cold share; only --max-cold is used")
        if not targets:
            # A cold claim still meets the latency goal: Erlang-B has nothing to size.
            return answer("erlang-b", None, None, None, NO_SHARE_LIMIT.format(share=free))
        target = min(targets)
        if target <= 0:
            return answer(
                "erlang-b",
                target,
                None,
                None,
                "a zero share is never met by a loss system with Poisson arrivals",
            )
        s, b = size_for_loss(load, target)
        return answer("erlang-b", target, s, b)
    # Waiting: the claim retries until a refill lands. No claim is cold, so
    # only the latency goal's tail limits the share that waits.
    notes.append("Erlang-C assumes exponential refill times and first-come first-served waiting")
    if slo is None or tail is None:
        why = "waiting share (no claim is cold: it waits for a refill)"
        if slo is not None:
            why = f"waiting share ({slo.text} gives no tail share)"
        return answer("erlang-c", None, None, None, NO_SHARE_LIMIT.format(share=why))
    if tail <= 0:
        return answer(
            "erlang-c", tail, None, None, "a zero share of waits is never met with Poisson arrivals"
        )
    first_retry = CLAIM_RETRY.duration if profile.retry == "exponential" else 0.025
    budget = slo.seconds - 0.2
    if budget <= first_retry:
        # Any wait costs at least one retry sleep, which already breaks the goal.
        budget = 0.0
        notes.append(
            f"a waiting claim sleeps >= {first_retry:g}s before its retry: every wait misses the goal"
        )
    s, p = size_for_wait(load, refill, max(budget, 0.0), tail)
    return answer("erlang-c", tail, s, p)


def erlang_curve(load: float, sizes: list[int], model: str = "erlang-b") -> list[float]:
    """Erlang-B (or Erlang-C: every claim of an empty pool waits) at each size, for plots."""
    if model == "erlang-b":
        return [erlang_b(s, load) for s in sizes]
    return [erlang_c(s, load) if s > 0 else 1.0 for s in sizes]

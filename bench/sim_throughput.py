"""Simulated claims per wall second of the full model, against a bare SimPy warm pool.

Prints, for the same arrivals in the same run:

1. the full model (profile defaults, pool 1,000, Poisson 200 claims/s, 200,000
   claims, each sandbox held exp(5 s) then killed) and a bare SimPy model of the
   same pool (a ``Store`` of sandboxes refilled after the same mean delay), as
   claims per wall second over the whole run and their ratio (goal: full >= 0.2x
   bare), with the SimPy events each model schedules per claim and the wall time
   per event;
2. cost per claim (wall, and CPU, which other work on the machine does not
   inflate) from pool 100 to pool 100,000 (20,000 claims at 20/s) and from
   10,000 to 1,000,000 claims (pool 100,000, 200/s) (goal: flat within 25%:
   nothing scans the whole pool per claim); for run length, each run's
   average, the cost of each tenth of it, and the cost of the 5,000 claims
   before claim 10,000, 100,000 and 1,000,000 of the longest run;
3. peak memory (max RSS) of pool 100,000 with 1,000,000 claims (goal < 2 GiB);
   the same run is part 2's longest;
4. where a claim's time goes in the full model (part 1's configuration,
   20,000 claims): wall microseconds and SimPy events per claim by the
   process or callback each event resumes (controller workers, the manager's
   claim path, watch deliveries to informer caches, the kubelet, ...), timed
   around each ``env.step()``.

Every per-claim cost (parts 1, 2 and 4) leaves out the run's warm-up: the
claims that end in its first 25 s of simulated time (five mean holds; 5,000
claims at 200/s, 500 at 20/s). Until the first holds end no claim deletes a
sandbox, so a run's start is cheaper, and a run made mostly of its start
would read as a cheaper model. Claims per second (part 1) are over the whole
run, as the bare model's are.

A run in which any claim failed, or which did not end within its time limit,
is reported and the script exits non-zero: its figures would not be the
model's. Each configuration runs in its own subprocess so that its peak RSS is
its own; a subprocess that fails has its error shown and stops the script.
Each part-2 configuration but the largest runs ``--repeat`` times (default 2)
and the run of least CPU per claim counts. ``--parts`` picks parts
(comma-separated: 1, 2a, 2b, 3, 4); ``--skip-memory`` skips the largest run
(part 3 and 2b's longest); ``--big FILE`` reuses the largest run's figures
(the JSON line ``--one full 100000 1000000 200`` prints) made earlier on the
same commit. ``--quick`` shrinks the runs (claims tenfold in parts 1 and 2a,
pools up to 10,000, runs of 10,000 to 40,000 claims in 2b, the largest run
pool 10,000 with 40,000 claims, 10,000 claims in part 4); the output says
which sizes were run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import Any

import simpy
from bench_options import positive_int

FULL_RATE = 200.0
HOLD = "exp(5s)"
WARMUP_S = 25.0
"""Simulated seconds of a run's start left out of its per-claim cost: five mean holds.

By then the sandboxes released per second are within 1% of the claims per
second (1 - exp(-5)), so a claim costs what it does for the rest of the run.
"""
RUN_LIMIT_S = 36_000.0
"""Simulated seconds a run may take to reach each of its measuring points."""
WINDOWS = 10
"""The timed claims of a full run are measured in this many equal windows too."""
PROBE_AT = (10_000, 100_000, 1_000_000)
"""Points of a run at which the cost of the claims just before is measured."""
PROBE = 5_000
"""How many claims before each of those points are measured."""
PARTS = ("1", "2a", "2b", "3", "4")


def warmup_claims(rate: float) -> int:
    """How many claims of a run at ``rate`` per second are its warm-up (see ``WARMUP_S``)."""
    return round(rate * WARMUP_S)


def nodes_for(pool: int, rate: float) -> list[dict[str, Any]]:
    """Enough node capacity for the pool plus held and cold sandboxes, in 64 nodes."""
    pods = int(pool * 1.2 + rate * 5 * 4 + 2000)
    per_node = pods // 64 + 1
    return [
        {"name": f"node-{i}", "cpu": str(per_node), "memory": f"{per_node}Gi", "max_pods": per_node}
        for i in range(1, 65)
    ]


POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: base, namespace: default}}
spec:
  replicas: {replicas}
  runtimes: [{{name: agent-runtime}}]
  template:
    spec:
      containers:
        - name: sandbox
          image: registry.example.com/sandbox:v1
          resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"""


def filled(pool: int, claims: int, rate: float, seed: int) -> tuple[Any, Any]:
    """A cluster whose pool is full, and its (not yet started) Poisson workload."""
    from simulator.cluster import Cluster
    from simulator.workloads import PoissonWorkload

    cluster = Cluster(seed=seed, nodes=nodes_for(pool, rate), log=False)
    cluster.apply(POOL.format(replicas=pool))
    cluster.wait_for_pool("base", timeout=36_000)
    cluster.records.clear()
    work = PoissonWorkload(cluster.manager, template="base", rate=rate, count=claims, hold=HOLD)
    return cluster, work


def outcome(model: str, pool: int, claims: int, rate: float, stats: Any) -> dict[str, Any]:
    """What a run of the full model came to: its claims delivered and failed, and why."""
    return {
        "model": model,
        "pool": pool,
        "claims": claims,
        "rate": rate,
        "finished": stats.delivered + stats.failed >= claims,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "errors": dict(stats.errors),
    }


def run_full(pool: int, claims: int, rate: float, seed: int = 1) -> dict[str, Any]:
    """The full model: fill the pool, then time ``claims`` Poisson claims.

    The per-claim costs are those of the claims after the warm-up
    (``warmup_claims``): on average, by tenths, and for the ``PROBE`` claims
    that end before claim 10,000, 100,000 and 1,000,000 (those within the
    run). Claims per second and events per claim are over the whole run. A
    run that does not reach a measuring point within ``RUN_LIMIT_S`` stops
    there, with ``finished`` false.
    """
    from simulator.collector import simulation_gc

    warm = warmup_claims(rate)
    if claims <= warm:
        raise SystemExit(f"--one: CLAIMS {claims} must exceed the run's warm-up of {warm} claims")
    t0 = time.perf_counter()
    cluster, work = filled(pool, claims, rate, seed)
    fill_wall = time.perf_counter() - t0
    env = cluster.env
    t1 = time.perf_counter()
    c1 = time.process_time()
    e1 = scheduled(env)
    tenths = [warm + (claims - warm) * k // WINDOWS for k in range(WINDOWS + 1)]
    probes = [(n - PROBE, n) for n in PROBE_AT if warm <= n - PROBE and n <= claims]
    marks = sorted({0, *tenths, *(m for pair in probes for m in pair)})
    cpu_at = {0: c1}
    wall_at = {0: t1}
    with simulation_gc():  # as Cluster.advance and run_until run the model
        work.start()
        for upto in marks[1:]:
            if not cluster.run_until(partial(ended, work.stats, upto), timeout=RUN_LIMIT_S):
                return outcome("full", pool, claims, rate, work.stats)
            cpu_at[upto] = time.process_time()
            wall_at[upto] = time.perf_counter()
    wall = wall_at[claims] - t1
    events = scheduled(env) - e1
    measured = claims - warm
    recs = list(cluster.records)
    latencies = [r.latency for r in recs if r.warm and r.latency is not None]
    latencies.sort()
    return {
        **outcome("full", pool, claims, rate, work.stats),
        "warmup_claims": warm,
        "wall_s": wall,
        "fill_wall_s": fill_wall,
        "claims_per_s": work.stats.delivered / wall,
        "us_per_claim": (wall_at[claims] - wall_at[warm]) / measured * 1e6,
        "cpu_us_per_claim": (cpu_at[claims] - cpu_at[warm]) / measured * 1e6,
        "cpu_us_per_claim_by_window": [
            (cpu_at[b] - cpu_at[a]) / (b - a) * 1e6 for a, b in pairwise(tenths)
        ],
        "cpu_us_per_claim_before": {b: (cpu_at[b] - cpu_at[a]) / (b - a) * 1e6 for a, b in probes},
        "events_per_claim": events / claims,
        "cold_share": sum(r.warm is False for r in recs) / max(1, len(recs)),
        "warm_p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else None,
        "virtual_s": cluster.now,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_breakdown(pool: int, claims: int, rate: float, seed: int = 1) -> dict[str, Any]:
    """The full model's wall time and events per claim by what each event resumes.

    The warm-up claims run untimed; from then on each ``env.step()`` is timed
    and charged to the first callback of the event it processes: a process (by
    its generator's qualified name), or a plain callback (by its qualified
    name or class). The timing itself adds about a microsecond per event,
    charged to the owners alike.
    """
    from simulator.collector import simulation_gc

    warm = warmup_claims(rate)
    if claims <= warm:
        raise SystemExit(f"--one: CLAIMS {claims} must exceed the run's warm-up of {warm} claims")
    cluster, work = filled(pool, claims, rate, seed)
    env = cluster.env
    step = env.step
    clock = time.perf_counter
    spent: defaultdict[str, float] = defaultdict(float)
    count: defaultdict[str, int] = defaultdict(int)

    def timed_step() -> None:
        owner = owner_of(env._queue[0][3]) if env._queue else "none"
        t = clock()
        step()
        spent[owner] += clock() - t
        count[owner] += 1

    with simulation_gc():
        work.start()
        if not cluster.run_until(partial(ended, work.stats, warm), timeout=RUN_LIMIT_S):
            return outcome("breakdown", pool, claims, rate, work.stats)
        env.step = timed_step  # run_until looks it up at every step
        if not cluster.run_until(partial(ended, work.stats, claims), timeout=RUN_LIMIT_S):
            return outcome("breakdown", pool, claims, rate, work.stats)
    measured = claims - warm
    ranked = sorted(spent, key=spent.__getitem__, reverse=True)
    return {
        **outcome("breakdown", pool, claims, rate, work.stats),
        "warmup_claims": warm,
        "us_per_claim": {k: spent[k] / measured * 1e6 for k in ranked},
        "events_per_claim": {k: count[k] / measured for k in ranked},
    }


def owner_of(event: simpy.Event) -> str:
    """What ``event`` resumes: the generator of a waiting process, else its first callback."""
    for cb in event.callbacks or ():
        proc = getattr(cb, "__self__", None)
        if isinstance(proc, simpy.Process):
            code = getattr(proc._generator, "gi_code", None)
            return code.co_qualname if code is not None else type(proc._generator).__qualname__
        cb = getattr(cb, "func", cb)  # a partial (a watch delivery's): what it calls
        return str(getattr(cb, "__qualname__", type(cb).__qualname__))
    return "none"


def run_bare(
    pool: int, claims: int, rate: float, refill: float = 1.5, seed: int = 1
) -> dict[str, Any]:
    """A bare SimPy warm pool: a Store of sandboxes, each taken item refilled after ``refill``."""
    import random

    from simulator.collector import simulation_gc

    env = simpy.Environment()
    rng = random.Random(seed)
    store = simpy.Store(env)
    for i in range(pool):
        store.put(i)
    done = [0]

    def refill_one(item: int) -> Any:
        yield env.timeout(rng.expovariate(1.0 / refill))
        yield store.put(item)

    def claim() -> Any:
        item = yield store.get()
        env.process(refill_one(item))
        done[0] += 1

    def arrivals() -> Any:
        for _ in range(claims):
            yield env.timeout(rng.expovariate(rate))
            env.process(claim())

    t0 = time.perf_counter()
    e0 = scheduled(env)
    env.process(arrivals())
    with simulation_gc():  # the collector policy the full model runs under, for like with like
        env.run()
    wall = time.perf_counter() - t0
    events = scheduled(env) - e0
    return {
        "model": "bare",
        "pool": pool,
        "claims": claims,
        "rate": rate,
        "wall_s": wall,
        "claims_per_s": claims / wall,
        "us_per_claim": wall / claims * 1e6,
        "events_per_claim": events / claims,
    }


def ended(stats: Any, n: int) -> bool:
    """Whether ``n`` claims of a workload with ``stats`` have ended."""
    return bool(stats.delivered + stats.failed >= n)


def scheduled(env: simpy.Environment) -> int:
    """How many events ``env`` has scheduled so far (SimPy numbers each one it queues)."""
    # SimPy keeps no public count; its tie-break counter is one. Reading it
    # consumes a number, which only shifts later tie-break numbers, not their order.
    return int(next(env._eid))


def run_problem(r: dict[str, Any]) -> str | None:
    """Why a full-model run's figures are not the model's, or None when they are."""
    if "finished" not in r:  # a --big file from before the script checked its runs
        return "made by an older version of this script (no delivered/failed check); run it again"
    problems = []
    if not r["finished"]:
        ended_n = r["delivered"] + r["failed"]
        problems.append(
            f"did not end within its time limit ({ended_n:,} of {r['claims']:,} claims ended)"
        )
    if r["failed"]:
        errors = ", ".join(f"{k} x{v:,}" for k, v in sorted(r["errors"].items()))
        problems.append(f"{r['failed']:,} of {r['claims']:,} claims failed ({errors})")
    if not problems:
        return None
    return f"delivered {r['delivered']:,}; " + "; ".join(problems)


def checked(r: dict[str, Any], what: str) -> dict[str, Any]:
    """``r`` when its run delivered every claim; else say why and stop the script (exit 1)."""
    problem = None if r["model"] == "bare" else run_problem(r)
    if problem is not None:
        sys.exit(
            f"sim_throughput: {what} ({r['model']}, pool {r['pool']:,}, {r['claims']:,} claims at "
            f"{r['rate']:g}/s): {problem}. Its figures would not be the model's; none printed."
        )
    return r


def in_subprocess(model: str, pool: int, claims: int, rate: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter and return its (checked) figures.

    The child's stderr goes straight to ours, so that its error, if any, is shown.
    """
    args = ["--one", model, str(pool), str(claims), str(rate)]
    out = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(
            f"sim_throughput: the run `{' '.join(args)}` failed (exit {out.returncode}); "
            "its error is above"
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return checked(result, "a run")


def cheapest(
    repeat: int, model: str, pool: int, claims: int, rate: float
) -> tuple[dict[str, Any], str]:
    """Run a configuration ``repeat`` times; the run of least CPU per claim, and all of theirs.

    Other work on the machine only ever adds to a run's cost (as with
    ``timeit``, the least is the best estimate of what the model costs); on
    a shared VM one run in a few came out up to 50% dearer.
    """
    runs = [in_subprocess(model, pool, claims, rate) for _ in range(repeat)]
    best = min(runs, key=lambda r: float(r["cpu_us_per_claim"]))
    if repeat == 1:
        return best, ""
    return best, "  [runs: " + ", ".join(f"{r['cpu_us_per_claim']:,.0f}" for r in runs) + " us]"


def per_claim(r: dict[str, Any]) -> str:
    """Wall and CPU microseconds per claim (CPU is robust to other work on the machine)."""
    return f"{r['us_per_claim']:8.1f} us/claim wall, {r['cpu_us_per_claim']:8.1f} us CPU"


def marginal(r: dict[str, Any]) -> str:
    """CPU per claim of the claims just before claim 10,000, 100,000, ... of one run."""
    at = {int(k): v for k, v in r["cpu_us_per_claim_before"].items()}
    if not at:
        return "  (run too short for the per-point costs)"
    first = at[min(at)]
    return (
        f"  at points of this run (CPU per claim of the {PROBE:,} claims before each): "
        + ", ".join(f"claim {n:,}: {v:,.0f} us (x{v / first:.2f})" for n, v in sorted(at.items()))
    )


def by_window(r: dict[str, Any]) -> str:
    """CPU microseconds per claim in each tenth after the warm-up, and the last against the first.

    Measured in one process within minutes, this trend is less exposed to
    other work on the machine than runs made at different times.
    """
    w = r["cpu_us_per_claim_by_window"]
    return (
        f"  by tenths after the first {r['warmup_claims']:,}: "
        + " ".join(f"{x:,.0f}" for x in w)
        + f"  (last/first x{w[-1] / w[0]:.2f})"
    )


def parts_option(text: str) -> set[str]:
    """``--parts``: comma-separated names among ``PARTS`` (spaces around them are ignored)."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        what = f"unknown part {unknown[0]!r}" if unknown[0] else "an empty part name"
        raise argparse.ArgumentTypeError(f"{what} (valid: {', '.join(PARTS)}, comma-separated)")
    return set(names)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (see above)")
    parser.add_argument(
        "--one", nargs=4, metavar=("MODEL", "POOL", "CLAIMS", "RATE"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--parts",
        type=parts_option,
        default=None,
        metavar="LIST",
        help=f"which parts to run, comma-separated (default: all of {','.join(PARTS)})",
    )
    parser.add_argument(
        "--big",
        metavar="JSON",
        help="figures of the largest run (the last line printed by --one full POOL CLAIMS 200), "
        "made earlier on the same commit, instead of running it again",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=2,
        metavar="N",
        help="runs of each part-2 configuration but the largest; the cheapest counts (default 2)",
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="skip the largest run (part 3, 2b's longest)"
    )
    args = parser.parse_args()
    if args.one:
        model, pool, claims, rate = args.one
        models: dict[str, Callable[[int, int, float], dict[str, Any]]] = {
            "full": run_full,
            "bare": run_bare,
            "breakdown": run_breakdown,
        }
        fn = models[model]
        print(json.dumps(fn(int(pool), int(claims), float(rate))))
        return

    parts: set[str] = set(PARTS) if args.parts is None else args.parts
    if args.skip_memory:
        if args.parts is not None and "3" in args.parts:
            parser.error("--parts 3 is the largest run, which --skip-memory skips")
        parts.discard("3")
    scale = 10 if args.quick else 1
    mem_pool = 10_000 if args.quick else 100_000
    mem_claims = 40_000 if args.quick else 1_000_000
    big: dict[str, Any] | None = None
    if args.big:
        with open(args.big) as f:
            big = json.loads(f.read().strip().splitlines()[-1])
        if (big["pool"], big["claims"]) != (mem_pool, mem_claims):
            parser.error(f"--big holds pool {big['pool']} / {big['claims']} claims")
        big = checked(big, "the --big run")

    print(
        f"# sim_throughput on {platform.node()} ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"# per-claim costs leave out each run's warm-up, the claims that end in its first "
        f"{WARMUP_S:g} s ({warmup_claims(FULL_RATE):,} at {FULL_RATE:g}/s, "
        f"{warmup_claims(20.0):,} at 20/s): until holds end, no claim deletes a sandbox; "
        "claims/s are over whole runs"
    )

    if "1" in parts:
        claims = 200_000 // scale
        full = in_subprocess("full", 1000, claims, FULL_RATE)
        bare = in_subprocess("bare", 1000, claims, FULL_RATE)
        print("\n## 1. Full model vs bare SimPy warm pool (pool 1,000, 200 claims/s)")
        print(
            f"full model: {full['claims_per_s']:,.0f} claims/s ({full['claims']:,} claims: "
            f"{full['delivered']:,} delivered, {full['failed']:,} failed, in {full['wall_s']:.1f} s; "
            f"{full['cpu_us_per_claim']:,.0f} us CPU per claim after the first "
            f"{full['warmup_claims']:,}; cold share {full['cold_share']:.3%}, warm p99 "
            f"{full['warm_p99_ms']:.0f} ms virtual)"
        )
        print(f"bare model: {bare['claims_per_s']:,.0f} claims/s")
        print(f"ratio full/bare: {full['claims_per_s'] / bare['claims_per_s']:.3f}  (goal >= 0.2)")
        fe, be = full["events_per_claim"], bare["events_per_claim"]
        print(
            f"SimPy events per claim: full {fe:.1f}, bare {be:.1f}; wall per event: full "
            f"{full['wall_s'] / (fe * claims) * 1e6:.2f} us, bare "
            f"{bare['wall_s'] / (be * claims) * 1e6:.2f} us; at the bare model's cost per event "
            f"the full model would reach ratio {be / fe:.3f}"
        )

    def largest() -> dict[str, Any]:
        nonlocal big
        if big is None:
            big = in_subprocess("full", mem_pool, mem_claims, FULL_RATE)
        return big

    if "2a" in parts:
        pools = (100, 1000, 10_000) if args.quick else (100, 1000, 10_000, 100_000)
        print(f"\n## 2a. Cost per claim against pool size ({20_000 // scale:,} claims at 20/s)")
        base = None
        for pool in pools:
            r, tries = cheapest(args.repeat, "full", pool, 20_000 // scale, 20.0)
            base = base or r["cpu_us_per_claim"]
            print(
                f"pool {pool:>7,}: {per_claim(r)}  x{r['cpu_us_per_claim'] / base:.2f} CPU  "
                f"(fill {r['fill_wall_s']:.1f} s wall, cold {r['cold_share']:.2%}){tries}"
            )

    if "2b" in parts:
        # Every run well past its warm-up (5,000 claims), so that the shortest is no start.
        runs = (10_000, 20_000) if args.quick else (10_000, 100_000)
        print(
            f"\n## 2b. Cost per claim against run length (pool {mem_pool:,}, 200/s; the longest run "
            "is part 3's)"
        )
        base = None
        for n in runs:
            r, tries = cheapest(args.repeat, "full", mem_pool, n, FULL_RATE)
            base = base or r["cpu_us_per_claim"]
            print(f"claims {n:>9,}: {per_claim(r)}  x{r['cpu_us_per_claim'] / base:.2f} CPU{tries}")
            print(by_window(r))
        if not args.skip_memory:
            r = largest()
            print(
                f"claims {mem_claims:>9,}: {per_claim(r)}  x{r['cpu_us_per_claim'] / base:.2f} CPU"
                + ("  (from --big)" if args.big else "")
            )
            print(by_window(r))
            print(marginal(r))

    if "3" in parts:
        r = largest()
        print(f"\n## 3. Peak memory, pool {mem_pool:,} with {mem_claims:,} claims")
        print(
            f"max RSS {r['max_rss_mib']:,.0f} MiB (goal < 2048 MiB at pool 100,000 and "
            f"1,000,000 claims); {r['claims_per_s']:,.0f} claims/s; fill {r['fill_wall_s']:.0f} s wall"
            + ("  (from --big)" if args.big else "")
        )

    if "4" in parts:
        claims = 10_000 if args.quick else 20_000
        r = in_subprocess("breakdown", 1000, claims, FULL_RATE)
        total = sum(r["us_per_claim"].values())
        print(
            f"\n## 4. Where a claim's time goes (full model, pool 1,000, 200/s, {claims:,} claims, "
            f"the {claims - r['warmup_claims']:,} after the warm-up timed; {total:,.0f} us wall "
            "per claim in env.step)"
        )
        for owner, us in r["us_per_claim"].items():
            if us < 1:
                break
            ev = r["events_per_claim"][owner]
            print(
                f"{us:7,.0f} us/claim {us / total:6.1%}  {ev:6.2f} events/claim "
                f"{us / ev:6.1f} us/event  {owner}"
            )


if __name__ == "__main__":
    main()

"""Capacity planning speed: one large run end to end, and a 16-point sweep on 1 and 2 workers.

Prints, each with a baseline measured in the same run:

1. a large ``simulate``-style run through the planning runner (pool 1,000,
   Poisson 200 claims/s held exp(5 s), sampling, outcomes, summary and
   report), as simulated claims per wall second and peak memory (max RSS),
   against the same arrivals driven straight into the cluster with
   ``PoissonWorkload`` (no sampling, no measurement): the ratio is the
   planning layer's own cost. The issue asks for 1,000,000 claims; at the
   model's few hundred claims per second that is about an hour per run, so
   the default is 100,000 claims and the figure for a million is
   extrapolated (per-claim cost is flat in run length: see
   docs/benchmarks.md), and the output says so. ``--claims 1000000`` runs it.
2. a 16-point sweep (pool sizes 1..16, one replication of ~1,000 claims
   each) run serially and on 2 worker processes: wall times and the
   parallel efficiency ``T1 / (2 * T2)`` (goal >= 0.8), and the CPU time the
   runs used (each run measures its own), which tells how many cores the
   runs actually got: the machine's cores may be shared with other work, so
   the script prints the load average too.

Each configuration of part 1 runs in its own subprocess so that its peak RSS
is its own; one that fails has its error shown, then one line naming it and
its exit status, and the script exits 1. ``--quick`` shrinks part 1 to 10,000 claims and the sweep points
to ~300 claims. ``--claims N`` must be at least 1,000 (5 s of arrivals: a
shorter run may have none to measure), and ``--skip-large`` with
``--skip-sweep`` is refused: together they measure nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_options import at_least

RATE = 200.0
POOL = 1000
HOLD = "exp(5s)"
MIN_CLAIMS = 1000
"""The large run's least size: fewer arrivals than this (5 s of them) may be none at all."""


def big_scenario(claims: int) -> dict[str, Any]:
    """Pool 1,000 under Poisson 200/s for ``claims / 200`` seconds, on enough nodes."""
    pods = int(POOL * 1.2 + RATE * 5 * 4 + 2000)
    per_node = pods // 64 + 1
    return {
        "name": "bench-large",
        "seed": 1,
        "replications": 1,
        "duration": claims / RATE,
        "warmup": 0,
        "sample_interval": 1.0,
        "cluster": {
            "nodes": [
                {
                    "name": "node",
                    "count": 64,
                    "cpu": str(per_node),
                    "memory": f"{per_node}Gi",
                    "max_pods": per_node,
                }
            ]
        },
        "pools": [{"name": "base", "replicas": POOL, "cpu": "100m", "memory": "64Mi"}],
        "workloads": [
            {"template": "base", "arrivals": {"kind": "poisson", "rate": RATE}, "hold": HOLD}
        ],
    }


def run_planning(claims: int) -> dict[str, Any]:
    """The planning runner end to end: run, summary, report (in a temp directory)."""
    from simulator.planning.loading import parse_scenario
    from simulator.planning.outputs import summary_payload, write_summary
    from simulator.planning.report import write_report
    from simulator.planning.runner import run_once
    from simulator.planning.study import summarise_point

    scenario = parse_scenario(big_scenario(claims))
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = run_once(scenario)
    t_run = time.perf_counter() - t0
    summary = summarise_point({}, scenario, [result])
    with tempfile.TemporaryDirectory() as out:
        write_summary(
            Path(out),
            summary_payload(
                "simulate", scenario, "bench", [summary], executor="serial", interrupted=False
            ),
        )
        write_report(Path(out), "simulate", scenario, "bench", [summary])
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    n = result.metrics["claims"] or 0.0
    return {
        "model": "planning",
        "claims": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "run_wall_s": t_run,
        "report_wall_s": wall - t_run,
        "claims_per_s": n / wall,
        "cold_share": result.metrics["cold_share"],
        "p99_ms": (result.metrics["latency_p99"] or 0) * 1000,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_direct(claims: int) -> dict[str, Any]:
    """The same cluster, pool and arrivals driven by PoissonWorkload, nothing measured."""
    from simulator.cluster import Cluster
    from simulator.collector import simulation_gc
    from simulator.planning.loading import parse_scenario
    from simulator.workloads import PoissonWorkload

    scenario = parse_scenario(big_scenario(claims))
    c0 = time.process_time()
    t0 = time.perf_counter()
    cluster = Cluster(seed=1, nodes=scenario.cluster.node_specs(), log=False)
    cluster.apply(scenario.pools[0].sandboxset())
    cluster.wait_for_pool("base", timeout=36_000)
    work = PoissonWorkload(
        cluster.manager, template="base", rate=RATE, duration=claims / RATE, hold=HOLD
    )
    stats = work.stats
    with simulation_gc():  # as the planning runner runs the model
        cluster.env.run(until=work.start())
        cluster.run_until(lambda: stats.delivered + stats.failed >= stats.arrivals, timeout=36_000)
    wall = time.perf_counter() - t0
    return {
        "model": "direct",
        "claims": stats.arrivals,
        "wall_s": wall,
        "cpu_s": time.process_time() - c0,
        "claims_per_s": stats.arrivals / wall,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_subprocess(model: str, claims: int) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter and return its figures."""
    return side_by_side([model], claims)[0]


def side_by_side(models: list[str], claims: int) -> list[dict[str, Any]]:
    """Run configurations in fresh interpreters at the same time; their figures, in order.

    A child's stderr goes straight to ours, so that its error, if any, is
    shown; a child that fails ends the script (exit 1) with one line naming
    it and its exit status, after stopping the others (their figures would
    be half a comparison).
    """
    commands = [["--one", model, str(claims)] for model in models]
    procs = [
        subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
        for args in commands
    ]
    results = []
    for i, (args, proc) in enumerate(zip(commands, procs, strict=True)):
        out, _ = proc.communicate()
        if proc.returncode != 0:
            for other in procs[i + 1 :]:
                other.kill()
                other.wait()
            sys.exit(
                f"planning: the run `{' '.join(args)}` failed (exit {proc.returncode}); "
                "its error is above"
            )
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def sweep_points(claims_per_point: int) -> list[Any]:
    """16 pool sizes of a steady scenario (5 claims/s), one replication each."""
    from simulator.planning.loading import parse_scenario
    from simulator.planning.overrides import apply_overrides
    from simulator.planning.study import Point

    base = parse_scenario(
        {
            "name": "bench-sweep",
            "seed": 1,
            "replications": 1,
            "duration": claims_per_point / 5.0,
            "warmup": 0,
            "cluster": {"nodes": 8},
            "pools": [{"name": "base", "replicas": 1}],
            "workloads": [
                {"template": "base", "arrivals": {"kind": "poisson", "rate": 5}, "hold": "exp(30s)"}
            ],
        }
    )
    return [
        Point({"pools.base.replicas": n}, apply_overrides(base, [("pools.base.replicas", n)]))
        for n in range(1, 17)
    ]


def time_sweep(workers: int, claims_per_point: int) -> tuple[float, float, list[Any]]:
    """Wall seconds of the 16-point sweep on ``workers`` (start-up included) and its runs' CPU seconds."""
    from simulator.planning.executors import make_executor
    from simulator.planning.study import run_points

    points = sweep_points(claims_per_point)
    t0 = time.perf_counter()
    executor = make_executor(workers)
    try:
        summaries, _ = run_points(points, executor, stop=threading.Event())
    finally:
        executor.close()
    wall = time.perf_counter() - t0
    # Each run measures its own CPU time, in whichever process made it.
    cpu = sum(r.cpu_s for s in summaries for r in s.runs)
    return wall, cpu, summaries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="10,000 claims; sweep points of ~300 claims"
    )
    parser.add_argument(
        "--claims",
        type=at_least(MIN_CLAIMS, f"{MIN_CLAIMS / RATE:g} s of arrivals at {RATE:g}/s"),
        default=None,
        help=f"claims of the large run, at least {MIN_CLAIMS:,} (default 100,000; 10,000 with "
        "--quick)",
    )
    parser.add_argument("--skip-large", action="store_true", help="only the sweep")
    parser.add_argument("--skip-sweep", action="store_true", help="only the large run")
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="run the large run and its baseline at the same time (one core each)",
    )
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CLAIMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.skip_large and args.skip_sweep:
        parser.error("--skip-large and --skip-sweep together leave nothing to measure")
    if args.one:
        model, claims = args.one
        fn = run_planning if model == "planning" else run_direct
        print(json.dumps(fn(int(claims))))
        return

    print(
        f"# planning bench on {platform.node()} ({os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    if not args.skip_large:
        claims = args.claims if args.claims is not None else 10_000 if args.quick else 100_000
        print(
            f"\n## 1. One run end to end: pool {POOL:,}, Poisson {RATE:g}/s, {claims:,} claims held {HOLD}"
        )
        if args.side_by_side:
            print("(the run and its baseline ran at the same time, one process each)")
            plan, direct = side_by_side(["planning", "direct"], claims)
        else:
            plan = in_subprocess("planning", claims)
            direct = in_subprocess("direct", claims)
        print(
            f"planning runner: {plan['claims_per_s']:,.0f} claims/s ({plan['claims']:,.0f} claims in "
            f"{plan['wall_s']:.1f} s wall, {plan['cpu_s']:.1f} s CPU: run {plan['run_wall_s']:.1f} s, "
            f"summary and report {plan['report_wall_s']:.1f} s); peak RSS {plan['max_rss_mib']:,.0f} MiB; "
            f"cold {plan['cold_share']:.2%}, p99 {plan['p99_ms']:.0f} ms virtual"
        )
        print(
            f"direct PoissonWorkload (baseline): {direct['claims_per_s']:,.0f} claims/s "
            f"({direct['wall_s']:.1f} s wall, {direct['cpu_s']:.1f} s CPU); "
            f"peak RSS {direct['max_rss_mib']:,.0f} MiB"
        )
        print(
            f"ratio planning/direct: {plan['claims_per_s'] / direct['claims_per_s']:.2f} by wall time, "
            f"{direct['cpu_s'] / plan['cpu_s'] * plan['claims'] / direct['claims']:.2f} by CPU time"
        )
        if claims < 1_000_000:
            per_claim = plan["wall_s"] / plan["claims"]
            per_cpu = plan["cpu_s"] / plan["claims"]
            print(
                f"1,000,000 claims NOT run: extrapolated from this run's {per_claim * 1e6:,.0f} us/claim "
                f"wall ({per_cpu * 1e6:,.0f} us CPU), about {per_claim * 1e6 / 60:,.0f} min of wall time "
                f"({per_cpu * 1e6 / 60:,.0f} min of CPU); peak RSS grows with the claims kept for the "
                f"summary (measured {plan['max_rss_mib']:,.0f} MiB at {claims:,})."
            )

    if args.skip_sweep:
        return
    per_point = 300 if args.quick else 1000
    print(f"\n## 2. 16-point sweep (pool 1..16, ~{per_point:,} claims per point), 1 vs 2 workers")
    t1, c1, s1 = time_sweep(1, per_point)
    t2, c2, s2 = time_sweep(2, per_point)
    same = [p.metrics for p in s1] == [p.metrics for p in s2]
    print(f"1 worker (serial): {t1:.1f} s wall; its runs used {c1:.1f} s of CPU")
    print(
        f"2 worker processes: {t2:.1f} s wall (start-up and imports included); its runs used "
        f"{c2:.1f} s of CPU"
    )
    print(
        f"speed-up {t1 / t2:.2f}, parallel efficiency T1/(2*T2) = {t1 / (2 * t2):.2f}  (goal >= 0.8)"
    )
    print(
        f"the runs' CPU on 2 workers vs serial: x{c2 / c1:.2f} (1.00: no cost of running in parallel); "
        f"cores the runs got: {c1 / t1:.2f} of 1 serially, {c2 / t2:.2f} of 2 in parallel"
    )
    print(f"identical figures on both: {same}")
    print(
        f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other work on the same cores lowers the efficiency)"
    )


if __name__ == "__main__":
    main()

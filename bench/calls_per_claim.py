"""Python calls and SimPy events per claim on the benchmark path, counted by cProfile.

Runs part 1's configuration of ``sim_throughput.py`` (pool 1,000, Poisson 200
claims/s, each sandbox held exp(5 s) then killed, seed 1), fills the pool
unprofiled, then profiles ``--claims`` claims (default 5,000) and prints the
Python function calls per claim (every call cProfile sees, recursive ones
included) and the SimPy events scheduled per claim.

Unlike wall or CPU time, the count does not move with other work on the
machine: the same model and seed make the same calls. That makes it the
measure to compare two versions of the model with on a shared machine (the
figures in docs/benchmarks.md were counted this way). ``--tree DIR`` counts
the model of another checkout (say a ``git worktree`` of an earlier commit):
its ``simulator`` and ``pytest_kruise_agents`` are imported instead of this
one's, under this script's configuration.

By default the profile starts with the first claim, as the recorded figures
were counted, so a run's warm-up is in it (until the first holds end, claims
delete no sandbox: see sim_throughput.py). ``--after-warmup`` runs the
warm-up's claims unprofiled first and profiles the next ``--claims``, which
weighs the release path as the rest of a long run does.

A run in which a claim fails, or which does not end within its time limit, is
reported and the script exits 1: its count would not be the model's.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import platform
import pstats
import sys
from functools import partial
from pathlib import Path
from typing import Any

import sim_throughput as st
from bench_options import positive_int

POOL = 1000
SEED = 1


def count(claims: int, *, after_warmup: bool) -> dict[str, Any]:
    """Profile ``claims`` claims of part 1's configuration; calls and events per claim."""
    from simulator.collector import simulation_gc

    skip = st.warmup_claims(st.FULL_RATE) if after_warmup else 0
    cluster, work = st.filled(POOL, skip + claims, st.FULL_RATE, SEED)
    env = cluster.env
    profile = cProfile.Profile()
    # Start from an empty youngest generation, so that collections (and the
    # finalizers they call, which the profile counts) fall at the same points of
    # the run whatever this process allocated before: without it, a driver that
    # imported other modules counted 3,677.2 calls per claim against 3,678.2.
    gc.collect()
    with simulation_gc():  # as the benchmark runs the model
        work.start()
        ok = skip == 0 or cluster.run_until(
            partial(st.ended, work.stats, skip), timeout=st.RUN_LIMIT_S
        )
        e0 = st.scheduled(env)
        profile.enable()
        ok = ok and cluster.run_until(
            partial(st.ended, work.stats, skip + claims), timeout=st.RUN_LIMIT_S
        )
        profile.disable()
        e1 = st.scheduled(env)
    stats: Any = pstats.Stats(profile)  # its ``stats`` dict is not in the stubs
    calls = sum(entry[1] for entry in stats.stats.values())
    return {
        "claims": claims,
        "skipped": skip,
        "finished": ok,
        "delivered": work.stats.delivered,
        "failed": work.stats.failed,
        "errors": dict(work.stats.errors),
        "calls_per_claim": calls / claims,
        "events_per_claim": (e1 - e0) / claims,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--claims", type=positive_int, default=5000, help="claims profiled (default 5,000)"
    )
    parser.add_argument(
        "--after-warmup",
        action="store_true",
        help="profile the claims after the run's warm-up instead of from its start",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        metavar="DIR",
        help="count the model of this checkout instead of this one's",
    )
    args = parser.parse_args()
    if args.tree is not None:
        if not (args.tree / "simulator").is_dir():
            parser.error(f"--tree: {args.tree} holds no simulator/ package")
        sys.path.insert(0, str(args.tree.resolve()))
    import simulator

    r = count(args.claims, after_warmup=args.after_warmup)
    where = Path(simulator.__file__).resolve().parent.parent
    print(f"# calls_per_claim on {platform.node()}, Python {platform.python_version()}, {where}")
    if not r["finished"] or r["failed"]:
        errors = ", ".join(f"{k} x{v:,}" for k, v in sorted(r["errors"].items())) or "none failed"
        sys.exit(
            f"calls_per_claim: the run did not deliver every claim (delivered {r['delivered']:,}, "
            f"failed {r['failed']:,}: {errors}; ended in time: {r['finished']}); its count would "
            "not be the model's"
        )
    since = (
        f"after the first {r['skipped']:,} (the warm-up)"
        if r["skipped"]
        else "from the run's start (its warm-up included)"
    )
    print(
        f"{r['claims']:,} claims of part 1's configuration (pool {POOL:,}, Poisson "
        f"{st.FULL_RATE:g}/s, held {st.HOLD}, seed {SEED}), profiled {since}: "
        f"{r['calls_per_claim']:,.1f} Python calls per claim, "
        f"{r['events_per_claim']:.2f} SimPy events per claim"
    )


if __name__ == "__main__":
    main()

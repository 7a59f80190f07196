"""What the scheduler's search for a node costs a pod, by cluster size.

For each node count (default 100, 1,000 and 5,000 identical nodes of the
default size), a cluster of that many nodes gets ``--pods`` bare pods (default
300, 100m CPU and 128Mi each: every node fits every pod) and the scheduler's
decision for each pod (``Nodes._schedule_one``: its requests, the search for a
node, the reservation) is timed, CPU and wall. Two runs per node count, in the
same process:

- the model as it is: kube-scheduler's ``numFeasibleNodesToFind`` nodes that
  fit, from where the last search stopped (``percentage_of_nodes_to_score``
  left at its adaptive default);
- the baseline: ``percentage_of_nodes_to_score: 100``, every node for every pod,
  which is how the model searched before it followed kube-scheduler (the same
  decisions, event for event).

It prints the cost per pod of each and their ratio (model / baseline: below 1
is cheaper), with the nodes each search looked at. CPU time is the figure to
compare on a shared machine (other work inflates the wall time more). Each
configuration runs ``--repeat`` times (default 3) and the least CPU counts.

``--tree DIR`` measures the model of another checkout (a ``git worktree`` of an
earlier commit, say): its ``simulator`` and ``pytest_kruise_agents`` are
imported instead of this one's. A model without the knob has no baseline to
run: its own search is printed alone.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench_options import positive_int

SEED = 1
POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: p{i}, namespace: default}}
spec:
  containers:
    - name: main
      image: registry.example.com/sandbox:v1
      resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}
"""


def schedule(nodes: int, pods: int, knobs: dict[str, Any]) -> tuple[float, float, int | None]:
    """Schedule ``pods`` pods on ``nodes`` nodes; the CPU and wall seconds their decisions took,
    and the nodes their searches looked at (``None`` from a model that does not count them)."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=SEED, nodes=nodes, log=False, **knobs)
    sched = cluster.nodes
    inner = sched._schedule_one
    spent = [0.0, 0.0]
    done = [0]

    def timed(key: Any, pod: Any) -> None:
        c0, w0 = time.process_time(), time.perf_counter()
        inner(key, pod)
        spent[0] += time.process_time() - c0
        spent[1] += time.perf_counter() - w0
        done[0] += 1

    sched._schedule_one = timed  # type: ignore[method-assign]  # this cluster's only
    cluster.apply("---\n".join(POD.format(i=i) for i in range(pods)))
    if not cluster.run_until(lambda: done[0] >= pods, timeout=600):
        sys.exit(f"scheduler_search: {done[0]} of {pods} pods scheduled on {nodes} nodes")
    looked: int | None = getattr(sched, "nodes_looked", None)
    return spent[0], spent[1], looked


def measure(nodes: int, pods: int, knobs: dict[str, Any]) -> dict[str, float]:
    """CPU and wall seconds per pod, and the nodes a pod's search looked at."""
    from simulator import nodes as nodes_module

    cpu, wall, looked = schedule(nodes, pods, knobs)
    if looked is not None:
        return {"cpu": cpu / pods, "wall": wall / pods, "looked": looked / pods}
    # An earlier model (``--tree``) scores each node in a method of its own: the nodes looked
    # at are its calls, counted in a second run, not clocked (the count slows the score).
    score = nodes_module._Node.score  # type: ignore[attr-defined]
    calls = [0]

    def counted(self: Any, ask: Any, selector: Any) -> Any:
        calls[0] += 1
        return score(self, ask, selector)

    nodes_module._Node.score = counted  # type: ignore[attr-defined]
    try:
        schedule(nodes, pods, knobs)
    finally:
        nodes_module._Node.score = score  # type: ignore[attr-defined]
    return {"cpu": cpu / pods, "wall": wall / pods, "looked": calls[0] / pods}


def best(nodes: int, pods: int, knobs: dict[str, Any], repeat: int) -> dict[str, float]:
    """The run of least CPU per pod of ``repeat``."""
    return min((measure(nodes, pods, knobs) for _ in range(repeat)), key=lambda r: r["cpu"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nodes",
        type=positive_int,
        nargs="+",
        default=[100, 1000, 5000],
        help="node counts (default 100 1000 5000)",
    )
    parser.add_argument("--pods", type=positive_int, default=300, help="pods per run (300)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per figure (3)")
    parser.add_argument(
        "--tree", type=Path, metavar="DIR", help="measure the model of this checkout instead"
    )
    args = parser.parse_args()
    if args.tree is not None:
        if not (args.tree / "simulator").is_dir():
            parser.error(f"--tree: {args.tree} holds no simulator/ package")
        sys.path.insert(0, str(args.tree.resolve()))
    import simulator
    from simulator.profile import Profile

    where = Path(simulator.__file__).resolve().parent.parent
    has_knob = "percentage_of_nodes_to_score" in Profile.model_fields
    print(f"# scheduler_search on {platform.node()}, Python {platform.python_version()}, {where}")
    print(
        f"# {args.pods:,} pods of 100m/128Mi per run, default nodes (64 CPU, 256Gi, 250 pods), "
        f"least CPU of {args.repeat} runs; baseline: percentage_of_nodes_to_score 100"
    )
    if not has_knob:
        print("# this model has no percentage_of_nodes_to_score: its own search only")
    print(
        f"{'nodes':>6} | {'looked/pod':>10} | {'CPU us/pod':>10} | {'wall us/pod':>11} | "
        f"{'baseline looked':>15} | {'baseline CPU us':>15} | {'ratio (CPU)':>11}"
    )
    for count in args.nodes:
        model = best(count, args.pods, {}, args.repeat)
        line = (
            f"{count:>6,} | {model['looked']:>10,.1f} | {model['cpu'] * 1e6:>10,.0f} | "
            f"{model['wall'] * 1e6:>11,.0f}"
        )
        if has_knob:
            base = best(count, args.pods, {"percentage_of_nodes_to_score": 100}, args.repeat)
            line += (
                f" | {base['looked']:>15,.1f} | {base['cpu'] * 1e6:>15,.0f} | "
                f"{model['cpu'] / base['cpu']:>11.3f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()

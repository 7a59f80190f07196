"""What a namespaced list and a fault consult cost as the rest of the cluster grows.

Prints, each figure beside a baseline measured in the same run (CPU time, the
median of ``--repeat`` rounds, so other work on a shared machine moves both
alike), and their ratio:

1. a namespaced list (``Cluster.list``, ``Cluster.table`` and the API server's
   ``peek_list``) of ``--per-namespace`` SandboxTemplates in ``default``, with
   only that namespace in the cluster, then with 49 more namespaces holding
   as many each (50 namespaces): a list should cost what its namespace holds;
2. a claim from a warm pool (with the refill it sets off) under 1 fault, then
   under ``--faults`` faults of the same kind on other targets, for two kinds:
   ``api_latency`` selecting kind SandboxTemplate (which the claim path never
   calls) and ``pod_start_failure`` selecting another namespace each. The
   faults never match the claim path, so it should cost what it costs under
   one.

A ratio near 1 means the figure does not grow with what the call does not
need; before the eighteenth session the list grew with the whole kind and
each consult with every open fault of its kind (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench_options import positive_int

POOL = """
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
          resources: {{requests: {{cpu: 100m, memory: 128Mi}}}}
"""


def _template(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:v1"}]}}},
    }


def _cpu(fn: Callable[[], object], rounds: int) -> float:
    """Median CPU seconds of ``fn()`` over ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def lists(per_namespace: int, repeat: int) -> list[tuple[str, float, float]]:
    """(what, seconds with 1 namespace, seconds with 50) for each namespaced list."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=1, nodes=1)

    def add(namespace: str) -> None:
        for i in range(per_namespace):
            cluster.apply(_template(f"t{i:05d}", namespace))

    api = cluster.world.api
    calls: dict[str, Callable[[], object]] = {
        "Cluster.list": lambda: cluster.list("SandboxTemplate", "default"),
        "Cluster.table": lambda: cluster.table("SandboxTemplate", "default"),
        "ApiServer.peek_list": lambda: api.peek_list("SandboxTemplate", "default"),
    }
    add("default")
    one = {what: _cpu(fn, repeat) for what, fn in calls.items()}
    for n in range(1, 50):
        add(f"team-{n:02d}")
    many = {what: _cpu(fn, repeat) for what, fn in calls.items()}
    return [(what, one[what], many[what]) for what in calls]


def _claims_cost(kind: str, faults: int, claims: int) -> float:
    """CPU seconds per claim of ``claims`` warm claims under ``faults`` faults of ``kind``."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=1)
    cluster.apply(POOL.format(replicas=claims + 20))
    cluster.wait_for_pool("base")
    for i in range(faults):
        if kind == "api_latency":
            selector = {"kind": "SandboxTemplate"}
            cluster.inject(kind, latency="fixed(1ms)", selector=selector, id=f"f{i}")
        else:
            cluster.inject(kind, selector={"namespace": f"team-{i:05d}"}, id=f"f{i}")
    t0 = time.process_time()
    for _ in range(claims):
        cluster.create_sandbox("base", timeout=3600)
    spent = time.process_time() - t0
    assert all(f.fired == 0 for f in cluster.faults), "a fault meant for other targets fired"
    return spent / claims


def fault_consults(faults: int, claims: int, repeat: int) -> list[tuple[str, float, float]]:
    """(kind, seconds a claim under 1 fault, under ``faults``) for each fault kind measured."""
    out = []
    for kind in ("api_latency", "pod_start_failure"):
        one = statistics.median(_claims_cost(kind, 1, claims) for _ in range(repeat))
        many = statistics.median(_claims_cost(kind, faults, claims) for _ in range(repeat))
        out.append((kind, one, many))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-namespace", type=positive_int, default=200)
    parser.add_argument("--faults", type=positive_int, default=10_000)
    parser.add_argument("--claims", type=positive_int, default=100)
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--parts", default="1,2", help="parts to run (comma-separated: 1, 2)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(f"python {platform.python_version()}, {platform.machine()}; CPU time, median")
    if "1" in parts:
        n = args.per_namespace
        print(f"\n1. a list of {n} SandboxTemplates in one namespace (ms)")
        print(f"{'call':<22}{'1 namespace':>13}{'50 namespaces':>15}{'ratio':>8}")
        for what, one, many in lists(n, max(args.repeat, 5)):
            print(f"{what:<22}{one * 1e3:>13.3f}{many * 1e3:>15.3f}{many / one:>8.2f}")
    if "2" in parts:
        print(f"\n2. a warm claim with its refill ({args.claims} claims; ms a claim)")
        print(f"{'fault kind':<22}{'1 fault':>13}{f'{args.faults:,} faults':>15}{'ratio':>8}")
        for kind, one, many in fault_consults(args.faults, args.claims, args.repeat):
            print(f"{kind:<22}{one * 1e3:>13.3f}{many * 1e3:>15.3f}{many / one:>8.2f}")


if __name__ == "__main__":
    main()

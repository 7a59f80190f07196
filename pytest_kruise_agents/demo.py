"""``kruise-agents demo``: a tour of the fake cluster's claim system, printed as it happens."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError

__all__ = ["POOL_YAML", "run_demo"]

POOL_YAML = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: base
  namespace: default
spec:
  replicas: 5
  runtimes:
    - name: agent-runtime
  template:
    spec:
      containers:
        - name: sandbox
          image: registry.example.com/agent-sandbox:v1
          resources:
            requests: {cpu: 500m, memory: 512Mi}
"""

CLAIM_YAML = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata:
  name: batch
  namespace: default
spec:
  templateName: base
  replicas: 8
  claimTimeout: 2m
  labels:
    team: demo
"""


def run_demo(seed: int = 42, console: Console | None = None) -> None:
    """Build a cluster with a warm pool, claim through both paths, and print what happened."""
    from simulator.cluster import Cluster

    out = console or Console()
    cluster = Cluster(seed=seed)
    out.rule("[bold]1. A warm pool")
    cluster.apply(POOL_YAML)
    cluster.wait_for_pool("base")
    out.print(
        f"SandboxSet default/base filled with 5 ready sandboxes at t={cluster.now:.2f}s (virtual)"
    )
    out.out(cluster.table("sbs", "default"), highlight=False)

    out.rule("[bold]2. E2B-style claims: Sandbox.create(template='base')")
    for _ in range(3):
        sbx = cluster.create_sandbox("base", timeout=600, metadata={"userId": "alice"})
        rec = cluster.last_record()
        out.print(
            f"  {cluster.sandbox_id(sbx):<28} {'warm' if rec.warm else 'cold'}  "
            f"{(rec.latency or 0) * 1000:7.1f} ms"
        )

    out.rule("[bold]3. A burst of 10 drains the pool: the rest are created on no stock (cold)")
    results: list[Sandbox | ClaimError] = cluster.create_sandboxes(10, "base")
    start = len(cluster.records) - 10
    for rec, res in zip(list(cluster.records)[start:], results, strict=True):
        if isinstance(res, ClaimError):
            out.print(f"  failed: {res.code} {res}")
            continue
        out.print(
            f"  {cluster.sandbox_id(res):<28} {'warm' if rec.warm else 'cold'}  "
            f"{(rec.latency or 0) * 1000:7.1f} ms"
        )

    out.rule("[bold]4. A batch SandboxClaim of 8, delivered gradually")
    cluster.apply(CLAIM_YAML)
    seen = -1
    for _ in range(600):
        claimed = len(
            cluster.list("sbx", "default", labels={"agents.kruise.io/claim-name": "batch"})
        )
        if claimed != seen:
            out.print(f"  t={cluster.now:7.2f}s  sandboxes labelled claim-name=batch: {claimed}")
            seen = claimed
        claim = cluster.get("sbc", "batch")
        if claim.status.phase == "Completed":
            break
        cluster.advance(0.05)
    claim = cluster.get("sbc", "batch")
    out.print(f"  phase={claim.status.phase}  message={claim.status.message!r}")

    out.rule("[bold]5. The pool refills")
    cluster.advance(30)
    out.out(cluster.table("sbs", "default"), highlight=False)
    out.out(cluster.table("sbc", "default"), highlight=False)
    out.out(cluster.table("sbx", "default"), highlight=False)

    out.rule("[bold]6. Claim records")
    table = Table("id", "path", "sandbox", "warm", "latency ms", "attempts", "error")
    for rec in cluster.records:
        table.add_row(
            str(rec.id),
            rec.path,
            rec.sandbox or "-",
            "-" if rec.warm is None else ("warm" if rec.warm else "cold"),
            "-" if rec.latency is None else f"{rec.latency * 1000:.1f}",
            str(rec.attempts),
            rec.error or "",
        )
    out.print(table)
    warm = [r.latency for r in cluster.records if r.warm and r.latency is not None]
    cold = [r.latency for r in cluster.records if r.warm is False and r.latency is not None]
    if warm:
        out.print(f"warm deliveries: {len(warm)}, max {max(warm) * 1000:.1f} ms (sub-second)")
    if cold:
        out.print(f"cold deliveries: {len(cold)}, max {max(cold):.2f} s")

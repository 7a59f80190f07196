"""``kruise-agents demo``: a tour of the fake cluster's claim system, printed as it happens."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import ClaimError

if TYPE_CHECKING:
    from pathlib import Path

    from simulator.records import ClaimRecord

__all__ = [
    "DEMO_API_KEY",
    "POOL_YAML",
    "run_capacity_plan",
    "run_cluster_tour",
    "run_demo",
    "run_e2b_tour",
]

DEMO_API_KEY = "e2b_demo_0000000000000000000000000000000000000"
"""The API key of the demo server's only team (``default``)."""

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


def _section(out: Console, title: str) -> None:
    """A section's heading: a rule around it where it fits, else the bold title, wrapped.

    A rule crops its title to the line with "…" ("2. E2B-style claims: Sandbox.create…"
    at 40 columns).
    """
    if cell_len(title) + 6 <= out.width:
        out.rule(f"[bold]{title}")
    else:
        out.print(Text(title, style="bold"))


_KEEP = "\x00"
"""Stands for a space the wrap must not break at, while a line is wrapped."""

_NUMBER_AND_WORD = re.compile(r"(?<=\d) (?=[A-Za-z%])")
"""The space between a number and the word after it (``152.7 ms``, ``9 replicas``)."""


def _say(out: Console, text: str, *, highlight: bool = True) -> None:
    """Print ``text``, each line wrapped at spaces to the console, never inside a value.

    Rich wraps at any space, so a narrow terminal got ``1564.1`` at the end
    of a line and ``ms`` on the next. Here a number keeps the word after it,
    a continuation keeps its line's indent, and a word longer than the line
    (a path) is left whole for the terminal to fold: rich breaks nothing.
    """
    for line in text.split("\n"):
        body = line.lstrip(" ")
        indent = line[: len(line) - len(body)]
        wrapped = textwrap.wrap(
            _NUMBER_AND_WORD.sub(_KEEP, body),
            width=max(out.width, len(indent) + 1),
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        for part in wrapped or [""]:
            out.print(part.replace(_KEEP, " "), highlight=highlight, soft_wrap=True)


def _rows(out: Console, padded: Sequence[str], compact: Sequence[str]) -> None:
    """Data rows in columns where they fit the console, else with one space between fields.

    Either way a row is one line that rich does not break (the terminal folds
    one still too long): a latency stays on its row, with its unit.
    """
    fits = all(cell_len(row) <= out.width for row in padded)
    for row in padded if fits else compact:
        out.print(row, soft_wrap=True)


_UNLIMITED = 100_000
"""A width no table of the demo reaches."""

_RECORD_HEADERS = ("id", "path", "sandbox", "warm", "latency ms", "attempts", "error")


def _record_cells(rec: ClaimRecord) -> tuple[str, ...]:
    return (
        str(rec.id),
        rec.path,
        rec.sandbox or "-",
        "-" if rec.warm is None else ("warm" if rec.warm else "cold"),
        "-" if rec.latency is None else f"{rec.latency * 1000:.1f}",
        str(rec.attempts),
        rec.error or "",
    )


def _print_records(out: Console, records: Iterable[ClaimRecord]) -> None:
    """The claim records as a table where it fits the console, else one line per record.

    Rich fits a table that is too wide by cutting its cells ("default/base-dc…");
    folded over lines, the names and errors would still be hard to read.
    """
    rows = [_record_cells(rec) for rec in records]
    table = Table(*_RECORD_HEADERS, box=box.SIMPLE_HEAD, pad_edge=False)
    for row in rows:
        table.add_row(*row)
    # Measured without the console's limit: rich clamps a measure to the width it has.
    if out.measure(table, options=out.options.update_width(_UNLIMITED)).maximum <= out.width:
        out.print(table)
        return
    # Too narrow for the table: one line per record where they all fit, else two, the
    # sandbox on the first and its delivery (latency, attempts, error) on the second.
    heads: list[str] = []
    deliveries: list[str] = []
    for row in rows:
        cells = dict(zip(_RECORD_HEADERS, row, strict=True))
        latency = f" {cells['latency ms']} ms" if cells["latency ms"] != "-" else ""
        error = f", error: {cells['error']}" if cells["error"] else ""
        heads.append(f"#{cells['id']} {cells['path']} {cells['sandbox']}")
        deliveries.append(f"{cells['warm']}{latency}, attempts {cells['attempts']}{error}")
    lines = [f"{head} {delivery}" for head, delivery in zip(heads, deliveries, strict=True)]
    if all(cell_len(line) <= out.width for line in lines):
        for line in lines:
            out.print(Text(line), soft_wrap=True)
        return
    for head, delivery in zip(heads, deliveries, strict=True):
        out.print(Text(head), soft_wrap=True)
        _say(out, f"    {delivery}", highlight=False)


def _claim_rows(out: Console, created: Sequence[tuple[str, ClaimRecord]]) -> None:
    """One row per claim: the sandbox, warm or cold, the latency."""
    padded = []
    compact = []
    for sandbox_id, rec in created:
        kind = "warm" if rec.warm else "cold"
        latency = (rec.latency or 0) * 1000
        padded.append(f"  {sandbox_id:<28} {kind}  {latency:7.1f} ms")
        compact.append(f"  {sandbox_id} {kind} {latency:.1f} ms")
    _rows(out, padded, compact)


def run_demo(seed: int = 42, console: Console | None = None) -> None:
    """The whole tour: the cluster's claim paths, then the E2B server with the real SDKs."""
    out = console or Console()
    run_cluster_tour(seed, out)
    run_e2b_tour(seed, out)
    run_capacity_plan(seed, out)


def run_cluster_tour(seed: int = 42, console: Console | None = None) -> None:
    """Build a cluster with a warm pool, claim through both paths, and print what happened."""
    from simulator.cluster import Cluster

    out = console or Console()
    cluster = Cluster(seed=seed)
    _section(out, "1. A warm pool")
    cluster.apply(POOL_YAML)
    cluster.wait_for_pool("base")
    _say(
        out,
        f"SandboxSet default/base filled with 5 ready sandboxes at t={cluster.now:.2f}s (virtual)",
    )
    out.out(cluster.table("sbs", "default"), highlight=False)

    _section(out, "2. E2B-style claims: Sandbox.create(template='base')")
    created: list[tuple[str, ClaimRecord]] = []
    for _ in range(3):
        sbx = cluster.create_sandbox("base", timeout=600, metadata={"userId": "alice"})
        created.append((cluster.sandbox_id(sbx), cluster.last_record()))
    _claim_rows(out, created)

    _section(out, "3. A burst of 10 drains the pool: the rest are created on no stock (cold)")
    results: list[Sandbox | ClaimError] = cluster.create_sandboxes(10, "base")
    start = len(cluster.records) - 10
    created = []
    for rec, res in zip(list(cluster.records)[start:], results, strict=True):
        if isinstance(res, ClaimError):
            _claim_rows(out, created)
            created = []
            _say(out, f"  failed: {res.code} {res}")
            continue
        created.append((cluster.sandbox_id(res), rec))
    _claim_rows(out, created)

    _section(out, "4. A batch SandboxClaim of 8, delivered gradually")
    cluster.apply(CLAIM_YAML)
    seen = -1
    for _ in range(600):
        claimed = len(
            cluster.list("sbx", "default", labels={"agents.kruise.io/claim-name": "batch"})
        )
        if claimed != seen:
            _rows(
                out,
                [f"  t={cluster.now:7.2f}s  sandboxes labelled claim-name=batch: {claimed}"],
                [f"  t={cluster.now:.2f}s  claim-name=batch: {claimed}"],
            )
            seen = claimed
        claim = cluster.get("sbc", "batch")
        if claim.status.phase == "Completed":
            break
        cluster.advance(0.05)
    claim = cluster.get("sbc", "batch")
    _say(out, f"  phase={claim.status.phase}  message={claim.status.message!r}")

    _section(out, "5. The pool refills")
    cluster.advance(30)
    out.out(cluster.table("sbs", "default"), highlight=False)
    out.out(cluster.table("sbc", "default"), highlight=False)
    out.out(cluster.table("sbx", "default"), highlight=False)

    _section(out, "6. Claim records")
    _print_records(out, cluster.records)
    warm = [r.latency for r in cluster.records if r.warm and r.latency is not None]
    cold = [r.latency for r in cluster.records if r.warm is False and r.latency is not None]
    if warm:
        _say(out, f"warm deliveries: {len(warm)}, max {max(warm) * 1000:.1f} ms (sub-second)")
    if cold:
        _say(out, f"cold deliveries: {len(cold)}, max {max(cold):.2f} s")


def run_e2b_tour(seed: int = 42, console: Console | None = None) -> None:
    """Serve a fake cluster over HTTP and use it with the unmodified e2b SDKs."""
    from e2b import Sandbox
    from e2b_code_interpreter import Sandbox as CodeInterpreter

    from pytest_kruise_agents.backends import SimBackend
    from pytest_kruise_agents.e2b.app import create_app
    from pytest_kruise_agents.e2b.server import ServerThread
    from pytest_kruise_agents.e2b.settings import ApiKey, Settings
    from pytest_kruise_agents.loopback import direct_to_loopback

    out = console or Console()

    # Each line is a call and its result, the export line a command to copy:
    # the terminal may fold them, but rich must not break them.
    def say(text: str, *, highlight: bool = True) -> None:
        out.print(text, highlight=highlight, soft_wrap=True)

    _section(out, "7. The E2B-compatible server, used by the real e2b SDK")
    backend = SimBackend.default(seed=seed, replicas=3)
    key = ApiKey(key=DEMO_API_KEY, team="default", id="demo")
    try:
        # direct_to_loopback: a proxy in HTTP_PROXY cannot reach the server on loopback.
        with (
            direct_to_loopback(),
            ServerThread(create_app(backend, Settings(api_keys=[key]))) as server,
        ):
            say("A client points the unmodified SDK at it with:")
            say(
                f"  export E2B_API_URL={server.url} E2B_SANDBOX_URL={server.url} "
                f"E2B_API_KEY={DEMO_API_KEY}",
                highlight=False,
            )
            opts = {"api_key": DEMO_API_KEY, "api_url": server.url, "sandbox_url": server.url}
            sbx = Sandbox.create(template="base", metadata={"user": "demo"}, **opts)  # type: ignore[arg-type]
            say(f"Sandbox.create(template='base') -> {sbx.sandbox_id}")
            result = sbx.commands.run("echo hello from $E2B_SANDBOX_ID; uname -s")
            say(
                f"sbx.commands.run(...) -> exit {result.exit_code}, stdout {result.stdout!r}",
                highlight=False,
            )
            sbx.files.write("/home/user/hello.txt", "written through envd")
            say(
                f"sbx.files.read('/home/user/hello.txt') -> {sbx.files.read('/home/user/hello.txt')!r}"
            )
            ci = CodeInterpreter.create(**opts)
            execution = ci.run_code("sum(i * i for i in range(10))")
            say(
                f"CodeInterpreter.create() -> {ci.sandbox_id}; "
                f"run_code('sum(i * i for i in range(10))') -> {execution.text}",
                highlight=False,
            )
            listed = Sandbox.list(**opts).next_items()  # type: ignore[arg-type]
            say(
                f"Sandbox.list() sees {len(listed)} sandboxes: "
                + ", ".join(info.sandbox_id for info in listed)
            )
            ci.kill()
            sbx.kill()
            say("both killed; their workspaces and processes are gone")
            for rec in backend.records()[-2:]:
                warm = "warm" if rec["warm"] else "cold"
                say(
                    f"  claim of {rec['template']}: {warm}, {rec['latency'] * 1000:.1f} ms "
                    "of virtual time from request to delivery"
                )
    finally:
        backend.close()


def run_capacity_plan(
    seed: int = 42, console: Console | None = None, out_dir: Path | None = None
) -> None:
    """A short capacity plan for the demo pool; prints it and the path of its HTML report.

    The report goes to ``out_dir``, by default a new ``kruise-agents-plan-*``
    directory under the temp directory, left for the user to open.
    """
    from simulator.planning import quick_plan

    out = console or Console()
    _section(out, "8. A capacity plan for this pool")
    plan = quick_plan(POOL_YAML, seed=seed, out_dir=out_dir)
    _say(out, plan.text, highlight=False)

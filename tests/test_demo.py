"""``make demo`` runs the tour: the claim paths on the cluster, then the server with the real SDKs."""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from pytest_kruise_agents.demo import run_e2b_tour

KRUISE_AGENTS = Path(sys.executable).with_name("kruise-agents")


def test_e2b_tour_claims_runs_a_command_and_a_line_of_code() -> None:
    # Narrow, as in a small terminal: no line may be broken by the console.
    console = Console(record=True, width=40)
    run_e2b_tour(seed=3, console=console)
    text = console.export_text()
    assert re.search(
        r"^  export E2B_API_URL=\S+ E2B_SANDBOX_URL=\S+ E2B_API_KEY=e2b_\w+$", text, re.M
    )
    assert "Sandbox.create(template='base') -> default--base-" in text
    assert "exit 0" in text and "hello from default--base-" in text
    assert "'written through envd'" in text
    assert "-> 285" in text
    assert "Sandbox.list() sees 2 sandboxes" in text
    assert text.count("warm,") == 2


def test_e2b_tour_reaches_its_server_past_a_proxy_in_the_environment(dead_proxy: str) -> None:
    """``make demo`` on a machine behind a proxy (``HTTP_PROXY``): the SDK would send every call
    to it, and no proxy reaches this host's loopback. In a process of its own, as the SDK
    reads the proxy variables once per process."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pytest_kruise_agents.demo import run_e2b_tour; run_e2b_tour()",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", **os.environ},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Sandbox.list() sees 2 sandboxes" in proc.stdout


def test_cluster_tour_shows_warm_cold_batch_and_tables() -> None:
    from pytest_kruise_agents.demo import run_cluster_tour

    console = Console(record=True, width=200)
    run_cluster_tour(seed=42, console=console)
    text = console.export_text()
    for heading in (
        "1. A warm pool",
        "3. A burst of 10",
        "4. A batch SandboxClaim",
        "6. Claim records",
    ):
        assert heading in text
    assert "warm deliveries:" in text and "(sub-second)" in text
    assert "cold deliveries:" in text
    assert "phase=Completed" in text


def test_capacity_plan_ends_the_demo_with_a_report_path(tmp_path: Path) -> None:
    """The plan's last line is where its report is; written where the caller asks (the
    command leaves it in a temp directory for the user to open, a test in its own)."""
    from pytest_kruise_agents.demo import run_capacity_plan

    console = Console(record=True, width=200)
    run_capacity_plan(seed=42, console=console, out_dir=tmp_path)
    text = console.export_text()
    assert "8. A capacity plan for this pool" in text
    assert text.splitlines()[-1].strip() == f"report: {tmp_path / 'report.html'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "summary.json"]


def test_a_negative_seed_is_refused_before_the_tour_starts() -> None:
    """The capacity plan (the last section) takes no negative seed: the command says so
    first, in one line naming the option, instead of a traceback after two sections."""
    proc = subprocess.run(
        [str(KRUISE_AGENTS), "demo", "--seed", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "error: --seed: must be 0 or more, got -5\n"


@pytest.mark.parametrize("width", [80, 40], ids=["redirected", "narrow"])
def test_the_claim_records_table_loses_no_value(width: int) -> None:
    """Redirected (80 columns) or in a narrow terminal, each sandbox name and error is whole:
    folded over lines where it does not fit, never cut with "…"."""
    from pytest_kruise_agents.demo import run_cluster_tour

    console = Console(record=True, width=width)
    run_cluster_tour(seed=42, console=console)
    text = console.export_text()

    assert "…" not in text
    records = text[text.index("6. Claim records") :]
    folded = "".join(records.replace("│", "").split())
    for name in re.findall(r"default/base-\w+", _wide_records()):
        assert name in folded


def _wide_records() -> str:
    """The records section of the tour on a console wide enough for every value."""
    from pytest_kruise_agents.demo import run_cluster_tour

    console = Console(record=True, width=300)
    run_cluster_tour(seed=42, console=console)
    text = console.export_text()
    return text[text.index("6. Claim records") :]


@functools.cache
def _narrow_tour() -> str:
    """The cluster tour and the capacity plan on a console of 40 columns."""
    from pytest_kruise_agents.demo import run_capacity_plan, run_cluster_tour

    console = Console(record=True, width=40)
    run_cluster_tour(seed=42, console=console)
    # Named as the command's own directory: a path as long as the demo's, wrapped the same.
    with tempfile.TemporaryDirectory(prefix="kruise-agents-plan-") as reports:
        run_capacity_plan(seed=42, console=console, out_dir=Path(reports))
    return console.export_text()


def test_a_narrow_terminal_keeps_each_claim_row_and_each_value_with_its_unit() -> None:
    """At 40 columns a row is one line (its latency on it) and no number loses its unit."""
    lines = _narrow_tour().splitlines()
    text = "\n".join(lines)

    rows = [line for line in lines if line.startswith("  default--base-")]
    assert len(rows) == 13  # sections 2 and 3
    assert all(re.fullmatch(r"  default--base-\w+ (warm|cold) \d+\.\d ms", row) for row in rows)
    batch = [line for line in lines if "claim-name=batch" in line]
    assert batch and all(re.fullmatch(r"  t=\d+\.\d\ds  claim-name=batch: \d", b) for b in batch)
    records = text[text.index("6. Claim records") :]
    deliveries = re.findall(r"^    (?:warm|cold) \d+\.\d ms, attempts \d$", records, re.M)
    assert len(deliveries) == 21
    # A line never ends on a number whose unit went to the next line ("1564.1" / "ms").
    for line, after in itertools.pairwise(lines):
        if re.search(r"\d$", line):
            assert not re.match(r"\s*(ms|s|%|replicas|replications|draws)\b", after), (line, after)
    assert all(
        len(line) <= 40 for line in lines if not line.startswith(("NAME", "base", "batch", "  /"))
    )


def test_wrapped_prose_keeps_its_indent_and_breaks_no_path() -> None:
    lines = _narrow_tour().splitlines()
    plan = lines[next(i for i, line in enumerate(lines) if "8. A capacity plan" in line) :]

    first_item = next(i for i, line in enumerate(plan) if line.startswith("  Erlang-B:"))
    assert all(line.startswith("  ") for line in plan[first_item:])  # items stay indented
    assert plan[-1].strip().endswith("report.html")
    assert plan[-1].strip().startswith("/")  # the report's path whole, on its own line


def test_the_tour_reports_each_claim_as_its_record_says() -> None:
    """The rows of sections 2 and 3, the records table and the closing lines agree: each
    claim's sandbox, warm or cold, and latency in ms; the warm and cold counts and maxima."""
    from pytest_kruise_agents.demo import run_cluster_tour

    console = Console(record=True, width=200)
    run_cluster_tour(seed=42, console=console)
    text = console.export_text()
    records = text[text.index("6. Claim records") :]

    rows = re.findall(r"^  default--(base-\w+) +(warm|cold) +(\d+\.\d) ms$", text, re.M)
    table = re.findall(
        r"^ \d+ +(?:e2b|sandboxclaim) +default/(base-\w+) +(warm|cold) +(\d+\.\d) +\d+ *$",
        records,
        re.M,
    )
    assert len(rows) == 13 and len(table) == 21
    assert rows == table[:13]  # the E2B claims come first, in the order they were made
    warm = [float(ms) for _, kind, ms in table if kind == "warm"]
    cold = [float(ms) for _, kind, ms in table if kind == "cold"]
    assert f"\nwarm deliveries: {len(warm)}, max {max(warm):.1f} ms (sub-second)\n" in records
    assert max(warm) < 1000 < min(cold)
    assert f"\ncold deliveries: {len(cold)}, max {max(cold) / 1000:.2f} s\n" in records
    # Section 1 says what its table shows, the pool of 5 all available, and section 5
    # shows it refilled; section 4 prints a line each time the batch's count grows.
    assert "filled with 5 ready sandboxes" in text
    assert len(re.findall(r"^base +5 +5 +5 +5 ", text, re.M)) == 2
    batch = [int(n) for n in re.findall(r"claim-name=batch: (\d+)$", text, re.M)]
    assert batch[0] == 0 and batch[-1] == 8 and batch == sorted(set(batch))


def test_the_demo_command_runs_every_section_in_order(tmp_path: Path) -> None:
    """``make demo``: the cluster tour, the E2B server with the real SDK, the capacity plan
    (its report left in the temp directory); any seed of 0 or more."""
    proc = subprocess.run(
        [str(KRUISE_AGENTS), "demo", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120", "TMPDIR": str(tmp_path)},
    )

    assert (proc.returncode, proc.stderr) == (0, "")
    headings = re.findall(r"^\S* ?(\d)\. ", proc.stdout, re.M)
    assert headings == [str(n) for n in range(1, 9)]
    # The path stays whole; a long one goes to a line of its own after "report:".
    assert re.search(rf"report:\s+{re.escape(str(tmp_path))}/\S+/report\.html\n\Z", proc.stdout)

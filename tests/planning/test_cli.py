"""The simulate, plan and sweep commands: outputs, exit codes, bad input, and Ctrl-C."""

from __future__ import annotations

import contextlib
import csv
import html
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pytest_kruise_agents.cli import app

from .conftest import TINY

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    # A wide terminal: long temporary paths must not wrap inside the messages checked.
    result = runner.invoke(app, list(args), env={"COLUMNS": "1000"})
    return result.exit_code, result.output


def test_simulate_writes_summary_report_and_claims(tiny_file: Path, tmp_path: Path) -> None:
    """simulate prints the table, the goals and the limits, and writes its three files."""
    out = tmp_path / "out"
    code, text = _invoke(
        "simulate", str(tiny_file), "--out", str(out), "--claims-csv", "--replications", "1"
    )
    assert code == 0, text
    assert "delivery p99" in text and "goal delivery p99 of all claims < 1 s" in text
    assert "What limits delivery" in text
    assert {p.name for p in out.iterdir()} == {"summary.json", "report.html", "claims.csv"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["replications"] == 1 and not summary["interrupted"]


def test_simulate_sizes_erlang_for_the_scenarios_own_goals(
    tiny_file: Path, tiny: Any, tmp_path: Path
) -> None:
    """summary.json's Erlang size is for the scenario's goals (tiny: p99<1s, 5% cold), none
    without goals. Before, it was always Erlang's size for a 1% cold share nobody asked for."""
    from simulator.planning.analytic import analytic_estimate, parse_slo

    expected = analytic_estimate(tiny, tiny.pools[0], parse_slo("p99<1s"), 0.05)
    for sets, target, replicas in [
        ((), expected.target, expected.replicas),
        (("--set", "goals=null"), None, None),
    ]:
        out = tmp_path / f"o{len(sets)}"
        code, text = _invoke(
            "simulate", str(tiny_file), "--replications", "1", "--out", str(out), *sets
        )
        assert code == 0, text
        (analytic,) = json.loads((out / "summary.json").read_text())["analytic"]
        assert (analytic["target"], analytic["replicas"]) == (target, replicas)
        assert analytic["at_replicas"] == 4 and analytic["value_at_replicas"] is not None
    assert expected.target != 0.01


def test_sweep_runs_the_grid(tiny_file: Path, tmp_path: Path) -> None:
    """sweep runs every combination of its --set values and prints one row per point."""
    code, text = _invoke(
        "sweep",
        str(tiny_file),
        "--set",
        "pools.base.replicas=2,6",
        "--set",
        "duration=10s",
        "--replications",
        "1",
        "--out",
        str(tmp_path / "sw"),
    )
    assert code == 0, text
    summary = json.loads((tmp_path / "sw" / "summary.json").read_text())
    assert [p["labels"] for p in summary["points"]] == [
        {"pools.base.replicas": 2, "duration": "10s"},
        {"pools.base.replicas": 6, "duration": "10s"},
    ]


@pytest.mark.parametrize(
    ("second", "named"),
    [
        ("pools.base.replicas=3,4", "pools.base.replicas"),
        ("pools[0].replicas=3", "pools[0].replicas"),
    ],
)
def test_a_field_swept_twice_is_refused_naming_both_options(
    tiny_file: Path, tmp_path: Path, second: str, named: str
) -> None:
    """Every point would take the second values only: the first ones would never run."""
    out = tmp_path / "never"
    code, text = _invoke(
        "sweep",
        str(tiny_file),
        "--set",
        "pools.base.replicas=1,2",
        "--set",
        second,
        "--out",
        str(out),
    )
    assert code == 2, text
    assert text == (
        f"error: --set {second}: {named} is already swept by --set pools.base.replicas=1,2\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "swept", "sweep"),
    [
        (["--seed", "5"], ["--set", "seed=1,2"], "--set seed=1,2"),
        (["--replications", "2"], ["--set", "replications=1"], "--set replications=1"),
        (["--seed", "5"], [], "the scenario's sweep['seed']"),
    ],
)
def test_an_option_a_sweep_varies_is_refused_naming_both(
    tiny_file: Path, tmp_path: Path, option: list[str], swept: list[str], sweep: str
) -> None:
    """``--seed 5`` beside a sweep of ``seed``: every point would run the swept values, the
    option none of them. It used to be ignored without a word (the points ran seeds 1 and 2)."""
    if not swept:
        tiny_file.write_text(tiny_file.read_text() + "sweep: {seed: [1, 2]}\n")
    out = tmp_path / "never"
    code, text = _invoke("sweep", str(tiny_file), *option, *swept, "--out", str(out))
    assert code == 2, text
    field = option[0].removeprefix("--")
    assert text == (
        f"error: {' '.join(option)}: {field} is already swept by {sweep} "
        "(each point runs the swept values): give one or the other\n"
    )
    assert not out.exists()


def _cramped_sweep(tmp_path: Path, sizes: str, *extra: str) -> tuple[int, str, Path]:
    """``sweep`` of the cramped scenario (one node of 10 pod slots) over the pool sizes."""
    from .test_plan import CRAMPED

    path = tmp_path / "cramped.yaml"
    path.write_text(CRAMPED.replace("duration: 40s", "duration: 10s"))
    out = tmp_path / "sw"
    code, text = _invoke(
        "sweep", str(path), "--set", f"pools.base.replicas={sizes}", "--replications", "1",
        "--out", str(out), *extra,
    )  # fmt: skip
    return code, " ".join(text.split()), out


def test_a_sweep_point_that_does_not_fit_is_a_row_not_an_abort(tmp_path: Path) -> None:
    """11 replicas never fill on the node: its row says so with the reason, 4 and 6 are measured.

    Before, the sweep ended with exit 2 and wrote nothing: the runs of 4 were lost.
    """
    code, text, out = _cramped_sweep(tmp_path, "4,11,6", "--claims-csv")
    assert code == 0, text
    assert "cramped: 2 point(s), 1 does not fit, mean [95% interval]" in text
    assert re.search(r" 11 \W+ does not fit \W+ - \W+ - ", text), text  # its row in the table
    assert (
        "pools.base.replicas=11: does not fit on the nodes: pool default/base did not fill: "
        "10 of 11 available"
    ) in text
    assert text.count(" done (") == 2  # one run of 4, one of 6: none twice, none of 11
    summary = json.loads((out / "summary.json").read_text())
    assert [p["labels"] for p in summary["points"]] == [
        {"pools.base.replicas": 4},
        {"pools.base.replicas": 6},
    ]
    (unfit,) = summary["does_not_fit"]
    assert unfit["labels"] == {"pools.base.replicas": 11}
    assert unfit["reason"].startswith("pool default/base did not fill: 10 of 11 available")
    with (out / "claims.csv").open() as fh:
        sizes = {row["pools.base.replicas"] for row in csv.DictReader(fh)}
    assert sizes == {"4", "6"}  # one row per claim: the point that did not fit made none
    report = (out / "report.html").read_text()
    rows = report.split("<h2>Points</h2>")[1].split("</table>")[0].split("<tr>")[2:]
    assert [r.split("</td>")[0] for r in rows] == ["<td>4", "<td>11", "<td>6"]
    assert "does not fit" in rows[1] and "did not fill" in rows[1]
    assert "does not fit" not in rows[0] + rows[2]


def test_a_sweep_where_no_point_fits_says_so_and_exits_1(tmp_path: Path) -> None:
    """Neither size fills: one clear line, exit 1, and the files say why each does not fit."""
    code, text, out = _cramped_sweep(tmp_path, "11,12")
    assert code == 1, text
    assert "No point of the sweep fits on the scenario's nodes" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"] == []
    assert [u["labels"] for u in summary["does_not_fit"]] == [
        {"pools.base.replicas": 11},
        {"pools.base.replicas": 12},
    ]
    report = (out / "report.html").read_text()
    assert "No point of the sweep fits on the scenario" in report and "<img" not in report


def test_a_sweep_over_profiles_says_each_one_ran(tiny_file: Path, tmp_path: Path) -> None:
    """The report and summary.json name every profile the points ran, not the scenario's alone."""
    code, text = _invoke(
        "sweep",
        str(tiny_file),
        "--set",
        "cluster.profile=openkruise-head,openkruise-v0.3.0",
        "--set",
        "duration=5s",
        "--replications",
        "1",
        "--out",
        str(tmp_path / "sw"),
    )
    assert code == 0, text
    said = "openkruise-head; openkruise-v0.3.0 (by point)"
    assert json.loads((tmp_path / "sw" / "summary.json").read_text())["scenario"]["profile"] == said
    assert f"profile <code>{said}</code>" in (tmp_path / "sw" / "report.html").read_text()


def test_a_sweep_over_duration_and_replications_reports_what_the_points_ran(
    tiny_file: Path, tmp_path: Path
) -> None:
    """The report's header and summary.json give each point's duration and replications, not the file's."""
    code, text = _invoke(
        "sweep",
        str(tiny_file),
        "--set",
        "duration=3s,5s",
        "--set",
        "warmup=2s",
        "--replications",
        "1",
        "--out",
        str(tmp_path / "sw"),
    )
    assert code == 0, text
    scenario = json.loads((tmp_path / "sw" / "summary.json").read_text())["scenario"]
    assert (scenario["duration_s"], scenario["warmup_s"], scenario["replications"]) == (
        [3.0, 5.0],
        2.0,
        1,
    )
    said = "1 replication(s) of 3s (+2s warm-up); 1 replication(s) of 5s (+2s warm-up) (by point)"
    assert f"{said}.</p>" in (tmp_path / "sw" / "report.html").read_text()


def test_a_bad_seed_or_replications_option_is_named_as_typed(tiny_file: Path) -> None:
    """--seed and --replications are named as the options they are, not as a --set."""
    code, text = _invoke("simulate", str(tiny_file), "--seed", "-5", "--set", "duration=2s")
    assert code == 2
    assert text.strip() == "error: --seed -5: seed: must be >= 0, got -5"


def test_plan_prints_erlang_and_the_answer(tiny_file: Path, tmp_path: Path) -> None:
    """plan prints Erlang's estimate next to the simulated answer and exits 0 when one is found."""
    code, text = _invoke(
        "plan",
        str(tiny_file),
        "--pool",
        "base",
        "--max-cold",
        "60%",
        "--range",
        "1:3",
        "--replications",
        "1",
        "--out",
        str(tmp_path / "pl"),
    )
    assert code == 0, text
    assert "Erlang (profile refill)" in text and "simulated" in text
    plan = json.loads((tmp_path / "pl" / "summary.json").read_text())["plan"]
    assert plan["answer"] in (1, 2, 3)


def _plan(tiny_file: Path, out: Path, *options: str) -> tuple[int, str, dict[str, Any]]:
    """``plan`` of the tiny scenario's pool on one replication; its exit code, output and plan."""
    code, text = _invoke(
        "plan", str(tiny_file), "--pool", "base", "--replications", "1", "--out", str(out), *options
    )
    summary = out / "summary.json"
    return code, text, json.loads(summary.read_text())["plan"] if summary.exists() else {}


def test_plan_takes_overrides_and_writes_the_claims_at_its_answer(
    tiny_file: Path, tmp_path: Path
) -> None:
    """--set changes the scenario as for simulate; claims.csv holds the runs at the answer only."""
    out = tmp_path / "pl"
    code, text, plan = _plan(
        tiny_file,
        out,
        "--max-cold",
        "60%",
        "--range",
        "1:3",
        "--set",
        "duration=20s",
        "--claims-csv",
    )
    assert code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["duration_s"] == 20.0
    assert len(plan["candidates"]) >= 2  # the answer and at least one other size were run
    with (out / "claims.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {row["pools.base.replicas"] for row in rows} == {str(plan["answer"])}
    assert {row["replication"] for row in rows} == {"0"}
    (at_answer,) = [
        p for p in summary["points"] if p["labels"] == {"pools.base.replicas": plan["answer"]}
    ]
    assert len(rows) == at_answer["metrics"]["claims"]["mean"] > 0


def test_plan_without_an_answer_writes_no_claims(tiny_file: Path, tmp_path: Path) -> None:
    """No size meets the goals: exit 1, and no claims.csv (there is no answer to describe)."""
    out = tmp_path / "pl"
    code, text, plan = _plan(tiny_file, out, "--slo", "p50<1ms", "--range", "1:1", "--claims-csv")
    assert code == 1, text
    assert plan["answer"] is None
    assert "No claims.csv: no size in 1..1 meets the goals." in text
    assert not (out / "claims.csv").exists()


def test_plan_max_failed_replaces_the_scenarios_own(tmp_path: Path) -> None:
    """A scenario holding ``max_failed: 0.1%``: ``--max-failed 0.5%`` replaces it, whether the
    scenario's other goals are taken (no --slo, no --max-cold) or not."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY.replace("max_cold: 5%}", "max_cold: 5%, max_failed: 0.1%}"))
    code, text, plan = _plan(scenario, tmp_path / "a", "--max-failed", "0.5%", "--range", "4:4")
    assert code in (0, 1), text
    assert (plan["slo"], plan["max_cold"], plan["max_failed"]) == ("p99<1s", 0.05, 0.005)
    code, text, plan = _plan(scenario, tmp_path / "b", "--range", "4:4")
    assert code in (0, 1), text
    assert plan["max_failed"] == 0.001


def test_plan_max_failed_replaces_only_the_scenarios_failed_goal(
    tiny_file: Path, tmp_path: Path
) -> None:
    """--max-failed alone keeps the scenario's latency and cold goals; with --max-cold, it adds to it."""
    code, text, plan = _plan(tiny_file, tmp_path / "a", "--max-failed", "0.1%", "--range", "4:4")
    assert code in (0, 1), text
    assert (plan["slo"], plan["max_cold"], plan["max_failed"]) == ("p99<1s", 0.05, 0.001)
    # The failed share is held to the stricter of 0.1% and the p99's 1% tail.
    goals = {g["name"]: g["limit"] for g in plan["candidates"][0]["goals"]}
    assert goals == {"latency_p99_all": 1.0, "failed_share": 0.001, "cold_share": 0.05}
    code, text, plan = _plan(
        tiny_file, tmp_path / "b", "--max-cold", "60%", "--max-failed", "2%", "--range", "4:4"
    )
    assert code == 0, text
    assert (plan["slo"], plan["max_cold"], plan["max_failed"]) == (None, 0.6, 0.02)
    goals = {g["name"]: g["limit"] for g in plan["candidates"][0]["goals"]}
    assert goals == {"failed_share": 0.02, "cold_share": 0.6}


def test_plan_reports_the_failed_limit_it_applies(tiny_file: Path, tmp_path: Path) -> None:
    """A --max-failed looser than the p99's 1% tail: the report and plan show the 1% applied."""
    out = tmp_path / "pl"
    code, text, plan = _plan(
        tiny_file, out, "--slo", "p99<1s", "--max-failed", "5%", "--range", "4:4"
    )
    assert code in (0, 1), text
    assert (plan["max_failed"], plan["failed_limit"]) == (0.05, 0.01)
    report = (out / "report.html").read_text()
    assert "failed share &lt;= 1.00%" in report
    assert "5.00%" not in report
    code, text, plan = _plan(tiny_file, tmp_path / "b", "--max-cold", "60%", "--range", "4:4")
    assert plan["failed_limit"] is None, text  # no latency goal and no --max-failed: no limit


def test_bad_input_exits_2_with_one_clear_message(tiny_file: Path, tmp_path: Path) -> None:
    """A bad file, field, option or override: exit 2 and a message naming it; no output written."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("rate: 2", "rate: 0"))
    out = tmp_path / "never"
    cases = [
        (
            ["simulate", str(bad), "--out", str(out)],
            f"{bad}:11: workloads[0].arrivals.rate: must be > 0",
        ),
        (["simulate", str(tmp_path / "absent.yaml")], "cannot read the file"),
        (
            ["simulate", str(tiny_file), "--set", "pools.nope.replicas=3"],
            "error: --set pools.nope.replicas=3: pools.nope.replicas: "
            "no item named 'nope' (items: base)",
        ),
        (["plan", str(tiny_file), "--pool", "base", "--slo", "p99~1s"], "--slo: cannot read"),
        (["plan", str(tiny_file), "--pool", "base", "--max-cold", "2"], "--max-cold: must be in"),
        (["plan", str(tiny_file), "--pool", "nope", "--max-cold", "1%"], "--pool: no pool 'nope'"),
        (
            ["plan", str(tiny_file), "--pool", "base", "--max-cold", "1%", "--range", "9:3"],
            "--range",
        ),
        (["sweep", str(tiny_file)], "--set: give at least one"),
        (
            ["simulate", str(tiny_file), "--set", "pools.base.replicas=true", "--out", str(out)],
            "--set pools.base.replicas=true: pools[0].replicas: "
            "must be an integer, got the boolean true",
        ),
        (
            [
                "plan",
                str(tiny_file),
                "--pool",
                "base",
                "--set",
                "workloads[0].claim.csi_mounts=true",
            ],
            "--set workloads[0].claim.csi_mounts=true: workloads[0].claim.csi_mounts: "
            "must be an integer, got the boolean true",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--set", "pools.base.replicas=5"],
            "--set pools.base.replicas=5: plan searches pools[0].replicas itself; "
            "give --range LOW:HIGH instead",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--set", "pools[0].replicas=5"],
            "plan searches pools[0].replicas itself",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--set", "duration=10s,20s"],
            "give one value here (sweep takes several)",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--max-failed", "2"],
            "--max-failed: must be in [0, 1)",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--set", "goals=null", "--max-failed", "1%"],
            "give a goal: --slo (e.g. 'p99<1s') and/or --max-cold (e.g. 1%); "
            "--max-failed only adds to them",
        ),
    ]
    for args, message in cases:
        code, text = _invoke(*args)
        assert code == 2, (args, text)
        assert message in " ".join(text.split()), (args, text)
    assert not out.exists()


def test_brackets_in_user_text_are_printed_as_typed_never_read_as_markup(
    tiny_file: Path, tmp_path: Path
) -> None:
    """A ``[tag]`` or ``[/tag]`` in an override, a path or a name is text: no crash, nothing dropped."""
    out = tmp_path / "never"
    folder = tmp_path / "[" / "a] [red]"  # the path reads ".../[/a] [red]/bad.yaml"
    folder.mkdir(parents=True)
    bad = folder / "bad.yaml"
    bad.write_text(TINY.replace("rate: 2", "rate: 0"))
    cases = [
        (
            ["simulate", str(tiny_file), "--set", "pools[/x].replicas=3", "--out", str(out)],
            "error: --set pools[/x].replicas=3: pools[/x].replicas: no item named '/x'",
        ),
        (
            ["simulate", str(tiny_file), "--set", "pools[base].replicas=true", "--out", str(out)],
            "error: --set pools[base].replicas=true: pools[0].replicas: must be an integer",
        ),
        (
            ["plan", str(tiny_file), "--pool", "base", "--set", "pools[base].replicas=5"],
            "error: --set pools[base].replicas=5: plan searches pools[0].replicas itself",
        ),
        (["simulate", str(bad), "--out", str(out)], f"error: {bad}:11: workloads[0]"),
    ]
    for args, message in cases:
        code, text = _invoke(*args)
        assert code == 2, (args, text)
        assert message in " ".join(text.split()), (args, text)
    assert not out.exists()

    named = tmp_path / "named.yaml"
    named.write_text(TINY.replace("name: tiny", 'name: "t [/b] [red]x"'))
    code, text = _invoke(
        "simulate", str(named), "--replications", "1", "--out", str(tmp_path / "o")
    )
    assert code == 0, text
    assert "simulate t [/b] [red]x: 1 run(s) started" in text
    assert "t [/b] [red]x: 1 replication(s)" in text
    code, text = _invoke(
        "sweep",
        str(named),
        "--set",
        "description=x [/i],y [b]",
        "--replications",
        "1",
        "--set",
        "duration=10s",
        "--out",
        str(tmp_path / "sw"),
    )
    assert code == 0, text
    assert "t [/b] [red]x: 2 point(s)" in text
    assert "x [/i]" in text and "y [b]" in text


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_running(
    command: str, tiny_file: Path, tmp_path: Path
) -> None:
    """``--out`` naming a file, or a path under one: exit 2 naming ``--out``, nothing run."""
    extra = {
        "simulate": [],
        "plan": ["--pool", "base", "--max-cold", "50%"],
        "sweep": ["--set", "pools.base.replicas=2,3"],
    }[command]
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me\n")
    for out, message in (
        (blocker, f"error: --out: {blocker}: is a file, not a folder"),
        (blocker / "sub", f"error: --out: {blocker / 'sub'}: {blocker} is a file, not a folder"),
    ):
        code, text = _invoke(command, str(tiny_file), "--out", str(out), *extra)
        assert code == 2, text
        assert message in " ".join(text.split()), text
        assert "started" not in text and "Traceback" not in text
    assert blocker.read_text() == "keep me\n"


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_an_empty_out_is_refused_and_no_file_here_is_touched(
    command: str, tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out ""`` (a script's ``--out "$OUTDIR"`` with the variable unset) is not the current
    directory: exit 2 naming ``--out``, nothing run, the files there as they were."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "claims.csv").write_text("my,own,data\n")
    (here / "summary.json").write_text('{"mine": 1}\n')
    monkeypatch.chdir(here)
    code, text = _invoke(command, str(tiny_file), "--out", "", *_SHORT[command])
    assert code == 2, text
    assert text == "error: --out: must not be empty\n"
    assert {p.name for p in here.iterdir()} == {"claims.csv", "summary.json"}
    assert (here / "claims.csv").read_text() == "my,own,data\n"


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_an_empty_scenario_is_refused_naming_the_argument(command: str) -> None:
    """A script's ``kruise-agents simulate "$SCENARIO"`` with the variable unset."""
    code, text = _invoke(command, "", *_SHORT[command])
    assert code == 2, text
    assert text.startswith("error: scenario: must not be empty (a scenario file, or a shipped")
    assert len(text.strip().splitlines()) == 1, text


def test_an_out_holding_a_users_own_files_is_refused_before_running(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--out .`` in a folder with a ``claims.csv`` no run wrote: refused, the file kept."""
    (tmp_path / "claims.csv").write_text("my,own,data\n")
    monkeypatch.chdir(tmp_path)
    code, text = _invoke("simulate", str(tiny_file), "--out", ".")
    assert code == 2, text
    assert text.startswith("error: --out: .: holds claims.csv that no kruise-agents run wrote")
    assert "started" not in text
    assert (tmp_path / "claims.csv").read_text() == "my,own,data\n"


def test_files_that_are_not_utf8_are_named(tiny_file: Path, tmp_path: Path) -> None:
    """A scenario or trace file that is not UTF-8 text: exit 2 naming the file."""
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(TINY.encode("utf-16"))
    code, text = _invoke("simulate", str(utf16))
    assert code == 2, text
    assert f"error: {utf16}: cannot read the file: not UTF-8 text (byte 0xff at offset 0)" in (
        " ".join(text.split())
    )
    trace = tmp_path / "trace.csv"
    trace.write_bytes("time\n1\n".encode("utf-16"))
    scenario = tmp_path / "traced.yaml"
    scenario.write_text(TINY.replace("kind: poisson, rate: 2", "kind: trace, file: trace.csv"))
    code, text = _invoke("simulate", str(scenario))
    assert code == 2, text
    assert f"cannot read trace {str(trace)!r}: not UTF-8 text" in " ".join(text.split()), text


def test_goals_with_nothing_measured_are_not_measured_not_missed(
    tmp_path: Path,
) -> None:
    """No claim in the measured window (as when interrupted early): "not measured", not "missed"."""
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(TINY.replace("rate: 2", "rate: 0.0001"))
    out = tmp_path / "out"
    code, text = _invoke("simulate", str(quiet), "--out", str(out))
    assert code == 0, text
    text = " ".join(text.split())
    assert "tiny: 2 replication(s)" in text
    assert (
        "goal delivery p99 of all claims < 1 s: not measured (no value in the 2 replication(s))"
        in text
    )
    assert "missed" not in text and "one replication" not in text
    report = (out / "report.html").read_text()
    assert ">not measured</span>" in report and ">missed<" not in report


def test_ctrl_c_stops_cleanly_with_partial_results(tiny_file: Path, tmp_path: Path) -> None:
    """SIGINT during a long simulate: it stops at the next step, writes partial results, exits 130."""
    long = tmp_path / "long.yaml"
    long.write_text(TINY.replace("duration: 40s", "duration: 10h"))
    out = tmp_path / "partial"
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "kruise-agents"),
            "simulate",
            str(long),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        assert "run(s) started" in proc.stderr.readline()
        # The first run is under way (its pools are full, claims are flowing).
        assert "run 1 under way" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Interrupted: partial results written" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["points"][0]["runs"][0]["interrupted"] is True
    assert (out / "report.html").exists()


def test_the_default_output_folder_stays_inside_kruise_agents_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scenario named ``../../evil`` writes under ``kruise-agents-out``, never beside or above it."""
    scenario = tmp_path / "evil.yaml"
    scenario.write_text(
        TINY.replace("name: tiny", "name: ../../evil").replace("replications: 2", "replications: 1")
    )
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    code, text = _invoke("simulate", str(scenario))
    assert code == 0, text
    assert (work / "kruise-agents-out" / "evil-simulate" / "summary.json").is_file()
    assert not (tmp_path / "evil-simulate").exists()


def test_no_claims_csv_of_an_earlier_run_survives_next_to_new_results(
    tiny_file: Path, tmp_path: Path
) -> None:
    """A command into a folder that holds an earlier claims.csv removes it unless it writes its own.

    Before, a plan that found no size left the claims.csv of an earlier plan
    next to its new summary.json, which reads as the claims of this run.
    """
    out = tmp_path / "again"
    code, text, _ = _plan(
        tiny_file,
        out,
        "--max-cold",
        "60%",
        "--range",
        "1:3",
        "--set",
        "duration=20s",
        "--claims-csv",
    )
    assert code == 0 and (out / "claims.csv").exists(), text
    code, text, plan = _plan(tiny_file, out, "--slo", "p50<1ms", "--range", "1:1", "--claims-csv")
    assert code == 1 and plan["answer"] is None, text
    assert not (out / "claims.csv").exists()
    for claims in (["--claims-csv"], []):
        code, text = _invoke(
            "simulate", str(tiny_file), "--out", str(out), "--replications", "1", *claims
        )
        assert code == 0, text
        assert (out / "claims.csv").exists() == bool(claims)
    assert {p.name for p in out.iterdir()} == {"summary.json", "report.html"}


def test_the_default_output_folder_replaces_each_run_of_unsafe_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``steady (v2)``: each run of characters other than letters, digits, ``.``, ``_``, ``-`` is one ``_``."""
    scenario = tmp_path / "v2.yaml"
    scenario.write_text(
        TINY.replace("name: tiny", "name: steady (v2)").replace(
            "replications: 2", "replications: 1"
        )
    )
    monkeypatch.chdir(tmp_path)
    code, text = _invoke("simulate", str(scenario), "--set", "duration=5s")
    assert code == 0, text
    assert (tmp_path / "kruise-agents-out" / "steady_v2-simulate" / "summary.json").is_file()


def test_plan_into_sizes_the_nodes_cannot_hold_ends_with_its_verdict(tmp_path: Path) -> None:
    """A range whose sizes never fill on the one node: exit 1 with the reason, files written.

    Before, the first size that did not fill ended the plan with exit 2 and wrote nothing.
    """
    from .test_plan import CRAMPED

    path = tmp_path / "cramped.yaml"
    path.write_text(CRAMPED)
    out = tmp_path / "pl"
    code, text = _invoke(
        "plan", str(path), "--pool", "base", "--max-cold", "0.1%", "--range", "11:20",
        "--out", str(out),
    )  # fmt: skip
    assert code == 1, text
    assert "from 11 replicas up the pool does not fit on the nodes" in text
    summary = json.loads((out / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["answer"] is None and plan["does_not_fit"][0]["replicas"] == 11
    # The sizes that do not fit are points that do not fit, as a sweep lists them.
    assert summary["does_not_fit"][0]["labels"] == {"pools.base.replicas": 11}
    assert summary["does_not_fit"][0]["reason"] == plan["does_not_fit"][0]["reason"]
    assert (out / "report.html").is_file()


_KRUISE = str(Path(sys.executable).parent / "kruise-agents")

_SHORT = {
    "simulate": [],
    "plan": ["--pool", "base", "--max-cold", "60%", "--range", "1:3"],
    "sweep": ["--set", "pools.base.replicas=2,4"],
}
"""Options that make each command a few short runs that end with exit 0."""


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_a_reader_that_leaves_early_changes_neither_the_files_nor_the_exit_status(
    command: str, tiny_file: Path, tmp_path: Path
) -> None:
    """``kruise-agents plan ... | head -1`` (or ``| true``): the files are written, exit 0, no word.

    Before, the tables were printed before the files were written, and the closed pipe
    ended the command with exit 1 (for plan: "no size meets the goals") and no file.
    """
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [_KRUISE, command, str(tiny_file), "--replications", "1", "--set", "duration=10s",
         "--out", str(out), *_SHORT[command]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the command prints a line
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["interrupted"] is False
    for noise in ("Traceback", "Broken pipe", "BrokenPipe", "Exception ignored", "Aborted"):
        assert noise not in stderr, stderr


def _session(leader: int) -> list[int]:
    """The processes of the session ``leader`` started (its workers, forkserver, resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # After the command name (which may hold spaces): state, ppid, pgrp, session.
            if int(stat.rsplit(")", 1)[1].split()[3]) == leader:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("signum", "code", "workers"),
    [(signal.SIGTERM, 143, "2"), (signal.SIGHUP, 129, "1")],
    ids=["SIGTERM-2-workers", "SIGHUP-serial"],
)
def test_sigterm_and_sighup_stop_like_ctrl_c_and_leave_no_process(
    signum: signal.Signals, code: int, workers: str, tiny_file: Path, tmp_path: Path
) -> None:
    """SIGTERM (a supervisor, CI) or SIGHUP (a closed terminal) stops as Ctrl-C does.

    The runs stop, the workers are shut down, partial results are written marked
    interrupted, the exit code is 143 (129 for SIGHUP), and nothing the command started
    outlives it. Before, the main process died at once and the workers, the forkserver
    and the resource tracker ran on for ever.
    """
    long = tmp_path / "long.yaml"
    long.write_text(TINY.replace("duration: 40s", "duration: 10h"))
    out = tmp_path / "partial"
    proc = subprocess.Popen(
        [_KRUISE, "simulate", str(long), "--out", str(out), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: what it starts can be found, and cleaned up
    )
    try:
        assert proc.stderr is not None
        assert "run(s) started" in proc.stderr.readline()
        if workers == "1":
            assert "run 1 under way" in proc.stderr.readline()
        else:
            deadline = time.monotonic() + 60
            while len(_session(proc.pid)) < 2 + int(workers) and time.monotonic() < deadline:
                time.sleep(0.2)  # the workers are up (and running, or filling their pools)
            # Seen before the signal, so that "none left" below means they went.
            assert len(_session(proc.pid)) >= 2 + int(workers)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
        deadline = time.monotonic() + 20
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _session(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind, in its own group
        proc.wait()
    assert proc.returncode == code, stderr
    assert left == [], "processes left behind"
    assert "Interrupted: partial results written" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert (out / "report.html").exists()


@pytest.mark.parametrize("command", ["simulate", "plan", "sweep"])
def test_an_out_that_cannot_be_written_is_refused_before_running(
    command: str, tiny_file: Path, tmp_path: Path
) -> None:
    """A read-only place (/proc, a folder without write permission): exit 2, one line, nothing run.

    Before, only "is a file" was checked: the runs went ahead and ended in a traceback.
    """
    from .test_outputs import _unwritable

    out = _unwritable(tmp_path)
    code, text = _invoke(command, str(tiny_file), "--out", str(out), *_SHORT[command])
    assert code == 2, text
    assert text.startswith(f"error: --out: {out}: cannot write there: "), text
    assert len(text.strip().splitlines()) == 1, text
    assert "started" not in text


def test_an_error_while_writing_the_results_is_one_line(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that refuses the files after the runs (a disk that filled): exit 2, one line."""
    from simulator.planning import commands

    from .test_outputs import _unwritable

    monkeypatch.setattr(commands, "check_out_dir", lambda out: None)  # as if it changed since
    out = _unwritable(tmp_path)
    code, text = _invoke("simulate", str(tiny_file), "--out", str(out), "--replications", "1")
    assert code == 2, text
    assert f"error: --out: {out}: cannot write the results: " in text
    assert "Traceback" not in text and "wrote" not in text


def test_ctrl_c_while_the_files_are_written_waits_for_them(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (twice) after the runs, while the files are written: all of them are this run's.

    The signals wait until every file is written, then the command exits 130; the files
    hold the whole run ("interrupted": false). Before, the first Ctrl-C aborted between
    two files and left the new summary.json next to the earlier run's report.html.
    """
    from simulator.planning import commands

    out = tmp_path / "out"
    code, text = _invoke(
        "simulate", str(tiny_file), "--out", str(out), "--replications", "1", "--claims-csv"
    )
    assert code == 0, text
    from simulator.planning.report import render_report as render

    def render_then_ctrl_c(*args: Any, **kwargs: Any) -> str:
        page = render(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        return page

    monkeypatch.setattr(commands, "render_report", render_then_ctrl_c)
    code, text = _invoke(
        "simulate", str(tiny_file), "--out", str(out), "--replications", "1", "--seed", "777"
    )
    assert code == 130, text
    assert "Stopped after the last run ended: the results are whole." in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["seed"] == 777 and summary["interrupted"] is False
    assert "seed 777," in (out / "report.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "summary.json"]


@pytest.mark.parametrize("columns", ["40", "80"])
def test_tables_fold_values_instead_of_cutting_them(
    columns: str, tiny_file: Path, tmp_path: Path
) -> None:
    """At any width (80 when redirected, a 40-column terminal) no value is cut with "…"."""
    for args in (
        ["sweep", "--set", "pools.base.replicas=2,4",
         "--set", "cluster.profile=openkruise-head,openkruise-v0.3.0"],
        ["plan", *_SHORT["plan"]],
    ):  # fmt: skip
        command, *options = args
        result = runner.invoke(
            app,
            [command, str(tiny_file), "--replications", "1", "--set", "duration=10s",
             "--out", str(tmp_path / command), *options],
            env={"COLUMNS": columns},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "…" not in result.output, result.output


@pytest.mark.parametrize("size_range", ["2147483648:2147483648", "1:3000000000", "2147483648:"])
def test_a_range_above_what_replicas_holds_is_refused_up_front(
    size_range: str, tiny_file: Path
) -> None:
    """A size above 2**31-1 (replicas is an int32): exit 2 naming --range, before any run.

    Before, the search started and the error then blamed a ``--set`` nobody gave.
    """
    code, text = _invoke("plan", str(tiny_file), "--pool", "base", "--max-cold", "5%",
                         "--range", size_range)  # fmt: skip
    assert code == 2, text
    assert text.strip() == (
        f"error: --range: sizes must be at most 2147483647 (a SandboxSet's replicas is an "
        f"int32), got {size_range!r}"
    )


@pytest.mark.parametrize(
    ("size_range", "sizes"),
    [
        ("0:2147483647", (0, 2147483647)),  # the whole of an int32's sizes
        ("2147483647:", (2147483647, None)),
        (":40", (None, 40)),
        ("7:7", (7, 7)),
    ],
)
def test_a_range_takes_every_size_a_sandboxset_holds(
    size_range: str, sizes: tuple[int | None, int | None]
) -> None:
    """``--range`` reads LOW:HIGH, either side open, from 0 up to 2147483647 included."""
    from simulator.planning.commands import parse_range

    assert parse_range(size_range) == sizes


def test_a_scenario_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    """~600 nested levels: exit 2 and one line naming the file, not a 1,100-line traceback."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000 + "\n")
    code, text = _invoke("simulate", str(deep))
    assert code == 2, text
    assert text.strip() == (
        f"error: {deep}: cannot read the file: nested too deeply (a scenario needs a few levels)"
    )


def test_a_terminal_that_hangs_up_stops_the_runs_and_keeps_their_results(
    tiny_file: Path, tmp_path: Path
) -> None:
    """The terminal closes under a run (SIGHUP, then EIO on every write): exit 129, files written.

    Rich answers only EPIPE quietly; before, the first write to the hung-up terminal
    raised EIO and the command died with exit 1 and no file.
    """
    long = tmp_path / "long.yaml"
    long.write_text(TINY.replace("duration: 40s", "duration: 10h"))
    out = tmp_path / "partial"
    master, terminal = pty.openpty()
    proc = subprocess.Popen(
        [_KRUISE, "simulate", str(long), "--out", str(out)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        shown = b""
        deadline = time.monotonic() + 120
        while b"simulate tiny" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                shown += os.read(master, 65536)  # the progress bar: the runs are under way
        assert b"simulate tiny" in shown, shown
        time.sleep(0.5)
        os.close(master)  # the terminal hangs up: writes to it fail with EIO from now on
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 129
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert (out / "report.html").exists()


def test_simulate_says_why_erlang_c_differs_from_the_simulation(tmp_path: Path) -> None:
    """Next to Erlang-C's waiting share, the terminal and the report say why the simulated one
    differs: Erlang-C serves waits in order, the claims retry on their own schedule.

    Before, the line and the report's section gave the two shares with no word on why.
    """
    waiting = tmp_path / "waiting.yaml"
    waiting.write_text(
        TINY.replace("replications: 2", "replications: 1").replace(
            "hold: exp(10s)", "hold: exp(10s)\n    claim: {create_on_no_stock: false}"
        )
    )
    out = tmp_path / "out"
    code, text = _invoke("simulate", str(waiting), "--out", str(out))
    assert code == 0, text
    why = (
        "Erlang-C assumes exponential refills served in arrival order, while a waiting claim "
        "retries on its own schedule (back-off 1 s, 2 s, 4 s, ... at HEAD, every 25 ms in "
        "v0.3.0): a new claim may take a refill before one asleep between attempts, so the "
        "shares differ"
    )
    line = next(line for line in text.splitlines() if line.startswith("Erlang-C"))
    assert line.endswith(f"; {why}"), line
    assert html.escape(why) in (out / "report.html").read_text()


def test_simulate_sets_erlang_c_against_the_waited_share_when_claims_wait(
    tmp_path: Path,
) -> None:
    """Claims that wait for a refill (create_on_no_stock false) are never cold: the terminal,
    the report and summary.json all set Erlang-C's waiting share at the pool's size against
    the simulated share of claims that waited, and give its value.

    Before, the terminal and the report compared Erlang-B's cold share with a simulated cold
    share that cannot be nonzero, while summary.json said "erlang-c" with no value.
    """
    from simulator.erlang import erlang_b, erlang_c

    waiting = tmp_path / "waiting.yaml"
    waiting.write_text(
        TINY.replace("replications: 2", "replications: 1").replace(
            "hold: exp(10s)", "hold: exp(10s)\n    claim: {create_on_no_stock: false}"
        )
    )
    out = tmp_path / "out"
    code, text = _invoke("simulate", str(waiting), "--out", str(out))
    assert code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    (a,) = summary["analytic"]
    assert (a["model"], a["at_replicas"], a["compared_with"]) == ("erlang-c", 4, "waited_share")
    assert a["value_at_replicas"] == pytest.approx(erlang_c(4, a["load"]))
    waited = summary["points"][0]["pools"]["default/base"]["waited_share"]["mean"]
    line = next(line for line in text.splitlines() if line.startswith("Erlang"))
    assert line.startswith(
        f"Erlang-C for default/base at 4 replicas: {a['value_at_replicas']:.2%} of the claims "
        f"wait (a = 2/s x {a['refill_s']:.3g}s); simulated, claims that waited: {waited:.2%}"
    ), line
    assert "Erlang-B" not in text
    report = (out / "report.html").read_text()
    assert "Erlang-C next to the simulation" in report and "Erlang-B" not in report
    assert f"{a['value_at_replicas']:.2%}" in report

    # With create-on-no-stock, the same figures are Erlang-B's and the cold share.
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY.replace("replications: 2", "replications: 1"))
    code, text = _invoke("simulate", str(tiny), "--out", str(out))
    assert code == 0, text
    (a,) = json.loads((out / "summary.json").read_text())["analytic"]
    assert (a["model"], a["at_replicas"], a["compared_with"]) == ("erlang-b", 4, "cold_share")
    assert a["value_at_replicas"] == pytest.approx(erlang_b(4, a["load"]))
    assert f"Erlang-B for default/base at 4 replicas: {a['value_at_replicas']:.2%} cold" in text
    assert "not Poisson" not in text
    # Evenly spaced arrivals are not Erlang's: the line says the formula takes their mean rate.
    tiny.write_text(
        TINY.replace("replications: 2", "replications: 1").replace(
            "kind: poisson", "kind: constant"
        )
    )
    code, text = _invoke("simulate", str(tiny), "--out", str(out))
    assert code == 0, text
    (line,) = [row for row in text.splitlines() if row.startswith("Erlang-B for")]
    assert line.endswith("; arrivals are not Poisson: Erlang uses their mean rate only"), line


def test_an_interrupted_simulate_keeps_what_it_measured_and_says_the_point_is_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C half-way through the first run: the claims in flight are left out, not failed;
    the terminal, the report and summary.json say the point is partial, and why.

    Before, the claims in flight counted as failed (``unfinished``) and "What limits
    delivery" said they were still in flight when a drain of 600 s ended.
    """
    from simulator.planning import commands
    from simulator.planning.study import run_points as real

    def ctrl_c_half_way(*args: Any, stop: Any, on_progress: Any, **kw: Any) -> Any:
        def progress(index: int, fraction: float) -> None:
            on_progress(index, fraction)
            if fraction >= 0.5:
                stop.set()

        return real(*args, stop=stop, on_progress=progress, **kw)

    monkeypatch.setattr(commands, "run_points", ctrl_c_half_way)
    small = tmp_path / "small.yaml"
    small.write_text(TINY.replace("replicas: 4", "replicas: 1"))
    out = tmp_path / "out"
    code, text = _invoke("simulate", str(small), "--out", str(out))
    assert code == 130, text
    summary = json.loads((out / "summary.json").read_text())
    point = summary["points"][0]
    (run,) = point["runs"]
    assert run["interrupted"] and run["in_flight_at_stop"] > 0
    assert point["metrics"]["failed_share"]["mean"] == 0 and "unfinished" not in point["failures"]
    note = (
        f"partial: 1 of 2 replication(s) did not run; 1 of 2 replication(s) stopped early "
        f"(measured {run['measured_s']:.3g}s of the 40s window; {run['in_flight_at_stop']} "
        "claim(s) in flight at the stop left out)"
    )
    assert point["partial"] == note
    assert note in " ".join(text.split()), text
    assert "were still in flight" not in text
    report = (out / "report.html").read_text()
    assert f'<p class="warn">{note}</p>' in report


HIDE_CURSOR = "\x1b[?25l"  # what rich's live bar writes first


def _simulate_output(tiny_file: Path, out: Path, **streams: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "120", "FORCE_COLOR": "1"}
    env.pop("TTY_INTERACTIVE", None)
    env.pop("NO_COLOR", None)
    return subprocess.Popen(
        [_KRUISE, "simulate", str(tiny_file), "--replications", "1", "--out", str(out)],
        env=env,
        **streams,
    )


def test_force_color_on_a_pipe_colours_the_log_but_draws_no_bar(
    tiny_file: Path, tmp_path: Path
) -> None:
    """CI sets FORCE_COLOR for coloured logs: the runs are logged a line each, not redrawn."""
    proc = _simulate_output(
        tiny_file, tmp_path / "o", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = (s.decode() for s in proc.communicate(timeout=300))

    assert proc.returncode == 0, stderr
    assert HIDE_CURSOR not in stderr and "\r" not in stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    assert "simulate tiny: 1 run(s) started" in plain
    assert "run 1 done (" in plain
    assert "\x1b[" in stdout  # coloured, as FORCE_COLOR asks


def test_a_real_terminal_gets_the_live_bar(tiny_file: Path, tmp_path: Path) -> None:
    master, terminal = pty.openpty()
    proc = _simulate_output(
        tiny_file, tmp_path / "o", stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    shown = b""
    try:
        while True:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=300)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = shown.decode(errors="replace")

    assert proc.returncode == 0, text
    assert HIDE_CURSOR in text
    assert "run 1 done (" not in re.sub(r"\x1b\[[0-9;]*m", "", text)

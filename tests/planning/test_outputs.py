"""The files a command writes: each whole or not at all, none of an earlier run left beside them."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
import threading
from pathlib import Path

import pytest

from simulator.planning import outputs
from simulator.planning.errors import PlanningError
from simulator.planning.executors import SerialExecutor
from simulator.planning.outputs import check_out_dir, replacing, write_claims_csv, write_outputs
from simulator.planning.overrides import apply_overrides
from simulator.planning.scenario import Scenario
from simulator.planning.study import Point, run_points


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path: Path) -> None:
    """A write that fails part-way leaves the old file and no temporary one; one that ends renames."""
    path = tmp_path / "summary.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(path) as fh:
        fh.write("half of the new")
        raise RuntimeError("stopped part-way")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    with replacing(path) as fh:
        fh.write("new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    # The umask's mode, as a plain open gives (not a temporary file's private 0600).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_the_files_of_an_earlier_run_go_before_any_new_one_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run's three files are gone before the first new one is written.

    So a command stopped hard between two files (a second Ctrl-C, a kill) leaves
    none of the earlier run's files next to this run's.
    """
    for name in ("summary.json", "claims.csv", "report.html"):
        (tmp_path / name).write_text("earlier run\n")
    seen: list[str] = []

    def killed(out_dir: Path, payload: dict[str, object]) -> Path:
        seen.extend(p.name for p in out_dir.iterdir())
        raise KeyboardInterrupt  # stopped hard as the first file is written

    monkeypatch.setattr(outputs, "write_summary", killed)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tmp_path, {"a": 1}, "<html></html>")
    assert seen == []
    monkeypatch.undo()
    files = write_outputs(tmp_path, {"a": 1}, "<html></html>")
    assert [f.name for f in files] == ["summary.json", "report.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "summary.json"]


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write in: /proc for root (mode bits do not stop root)."""
    if os.geteuid() == 0:
        return Path("/proc/kruise-agents-test-out")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder / "out"


def test_an_out_folder_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    """check_out_dir creates the folder and a file in it (then removes both), or says why not."""
    out = _unwritable(tmp_path)
    with pytest.raises(PlanningError, match=rf"^--out: {out}: cannot write there: \w"):
        check_out_dir(out)
    fine = tmp_path / "a" / "b" / "out"
    check_out_dir(fine)
    assert not (tmp_path / "a").exists()  # the probe leaves nothing behind
    (tmp_path / "kept").mkdir()
    check_out_dir(tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.mark.parametrize(
    "files",
    [
        {"claims.csv": "my,own,data\n"},
        {"claims.csv": "my,own,data\n", "summary.json": '{"mine": 1}\n'},
        {"summary.json": "not even json\n", "report.html": "<p>my page</p>\n"},
    ],
)
def test_a_folder_holding_files_no_command_wrote_is_refused_and_they_are_kept(
    tmp_path: Path, files: dict[str, str]
) -> None:
    """A command replaces the files of an earlier *run* there (docs/planning.md): a user's own
    ``claims.csv`` or ``summary.json`` (``--out .`` in the wrong folder) is refused, not deleted."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    named = ", ".join(sorted(files))
    with pytest.raises(
        PlanningError, match=rf"^--out: {tmp_path}: holds {named} that no kruise-agents run wrote"
    ):
        check_out_dir(tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files


def test_a_folder_holding_an_earlier_runs_files_is_taken(tmp_path: Path) -> None:
    write_outputs(tmp_path, {"command": "simulate", "points": []}, "<html></html>")
    (tmp_path / "claims.csv").write_text("replication,workload\n")
    (tmp_path / "notes.txt").write_text("the user's, not a command's output\n")
    check_out_dir(tmp_path)


def test_an_error_while_writing_is_one_error_naming_out(tmp_path: Path) -> None:
    """A folder that refuses the files (full, read-only, gone): a PlanningError naming --out."""
    out = _unwritable(tmp_path)
    with pytest.raises(PlanningError, match=rf"^--out: {out}: cannot write the results: \w"):
        write_outputs(out, {"a": 1}, "<html></html>")


def test_claims_csv_says_why_each_cold_claim_was_created(tmp_path: Path, tiny: Scenario) -> None:
    """``cold_reason`` is appended after the earlier columns (kept in their order): the reason
    a cold claim's attempt created its sandbox, empty for a warm one; the run counts the cold
    deliveries by reason. Eight claims at one instant on a pool of 4, then four one by one
    while it refills: four go cold with every candidate in flight, later ones on no stock."""
    scenario = apply_overrides(
        tiny,
        [
            ("pools.base.replicas", 4),
            (
                "workloads[0].arrivals",
                {
                    "kind": "bursts",
                    "bursts": [
                        {"at": "10s", "count": 8, "over": "0s"},
                        {"at": "10.5s", "count": 4, "over": "0.2s"},
                    ],
                },
            ),
            ("workloads[0].hold", "forever"),
            ("replications", 1),
        ],
    )
    (summary,), _ = run_points(
        [Point({}, scenario)], SerialExecutor(), stop=threading.Event(), keep_claims=True
    )
    path = write_claims_csv(tmp_path, [summary])
    assert path is not None
    with path.open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[:8] == [
        "replication",
        "workload",
        "pool",
        "requested",
        "delivered",
        "latency",
        "warm",
        "attempts",
    ]
    assert reader.fieldnames[-2:] == ["failed", "cold_reason"]
    reasons = [(r["warm"], r["cold_reason"]) for r in rows]
    assert {reason for warm, reason in reasons if warm == "True"} == {""}
    cold = [reason for warm, reason in reasons if warm == "False"]
    assert cold.count("AllCandidatesPicked") == 4 and cold.count("NoStock") > 0
    metrics = summary.runs[0].metrics
    assert metrics["cold_all_picked"] == 4
    assert metrics["cold_no_stock"] == cold.count("NoStock")
    assert summary.runs[0].pools["default/base"]["cold_no_stock"] == cold.count("NoStock")


def test_claims_csv_of_runs_that_had_no_claim_is_the_header_alone(
    tmp_path: Path, tiny: Scenario
) -> None:
    """Runs that kept their claims and had none (no arrival in the measured window) still
    write the ``claims.csv`` asked for: its header, no row. (A hunt met it: Poisson arrivals
    at 2/s with a 4.3 s gap across a 4 s window.) Only runs that kept no claims write none."""
    scenario = apply_overrides(
        tiny,
        [
            ("workloads[0].arrivals", {"kind": "bursts", "bursts": [{"at": "1h", "count": 1}]}),
            ("duration", "10s"),
            ("replications", 1),
        ],
    )
    (summary,), _ = run_points(
        [Point({}, scenario)], SerialExecutor(), stop=threading.Event(), keep_claims=True
    )
    assert summary.runs[0].claims == [] and summary.runs[0].metrics["claims"] == 0
    path = write_claims_csv(tmp_path, [summary])
    assert path == tmp_path / "claims.csv"
    with path.open() as fh:
        reader = csv.DictReader(fh)
        assert list(reader) == []
        assert reader.fieldnames is not None and reader.fieldnames[0] == "replication"

    (unkept,), _ = run_points([Point({}, scenario)], SerialExecutor(), stop=threading.Event())
    assert unkept.runs[0].claims is None
    assert write_claims_csv(tmp_path, [unkept]) is None
    assert not path.exists()  # an earlier run's file goes, as the docs say


def test_an_unbounded_figure_is_null_in_summary_json(tmp_path: Path) -> None:
    """JSON has no infinity: an unbounded percentile of all claims is written ``null``."""
    path = outputs.write_summary(
        tmp_path, {"metrics": {"latency_p99_all": math.inf, "runs": [1.5, math.inf]}}
    )
    assert json.loads(path.read_text()) == {
        "metrics": {"latency_p99_all": None, "runs": [1.5, None]}
    }
    assert "Infinity" not in path.read_text()


@pytest.mark.parametrize("name", ["claims.csv", "report.html"])
def test_an_output_name_taken_by_a_folder_is_refused_before_anything_is_removed(
    tmp_path: Path, name: str
) -> None:
    """A folder named ``claims.csv`` beside an earlier run's files: refused by the check made
    before the runs, and by the write too, which then removes none of the earlier run's files.

    The write used to remove the earlier ``summary.json``, fail on the folder after the runs
    (``cannot write the results: Is a directory``) and leave the earlier ``report.html``
    alone, which the next command then refused as a file no run wrote.
    """
    write_outputs(tmp_path, {"command": "simulate", "points": []}, "<html>earlier</html>")
    (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / name).mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    why = (
        rf"^--out: {tmp_path}: {name} is a folder, not a file \(a command writes its {name} there\)"
    )
    with pytest.raises(PlanningError, match=why):
        check_out_dir(tmp_path)
    with pytest.raises(PlanningError, match=why):
        write_outputs(tmp_path, {"command": "simulate", "points": []}, "<html>new</html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert json.loads((tmp_path / "summary.json").read_text())["command"] == "simulate"

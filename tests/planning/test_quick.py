"""quick_plan: the short capacity plan ``make demo`` ends with."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from pytest_kruise_agents.demo import POOL_YAML
from simulator.planning import quick_plan
from simulator.planning.errors import PlanningError


def test_quick_plan_of_the_demo_pool(tmp_path: Path) -> None:
    """A few lines naming the pool, Erlang's and the simulated answers, and the report's path."""
    qp = quick_plan(POOL_YAML, rate=1.0, duration=60.0, replications=1, out_dir=tmp_path)
    assert qp.report == tmp_path / "report.html" and qp.report.exists()
    assert (tmp_path / "summary.json").exists()
    lines = qp.text.splitlines()
    assert lines[0].startswith("Capacity plan for pool default/base")
    assert any(line.strip().startswith("Erlang-B:") for line in lines)
    (simulated,) = [line for line in lines if line.strip().startswith("simulated:")]
    # One replication: no interval, and the answer says how sure it is.
    assert "over 1 replication, one replication: no interval (" in simulated
    assert lines[-1] == f"  report: {qp.report}"
    assert qp.result.answer is not None
    # A notebook shows a line, not the runs' data (which stays in the result).
    assert repr(qp) == f"<QuickPlan answer={qp.result.answer} report={str(qp.report)!r}>"
    assert str(qp) == qp.text
    assert len(repr(qp.result)) < 200
    assert repr(qp.result).startswith(f"<PlanResult pool=default/base answer={qp.result.answer} ")
    assert all(len(repr(c)) < 100 for c in qp.result.candidates.values())
    assert all(len(repr(c.summary)) < 200 for c in qp.result.candidates.values())


def test_a_pool_without_the_agent_runtime_is_refused_before_any_run(tmp_path: Path) -> None:
    """Every E2B create of such a pool fails at ``/init`` (reference §16): said at once."""
    pool = POOL_YAML.replace("  runtimes:\n    - name: agent-runtime\n", "")
    assert pool != POOL_YAML
    with pytest.raises(PlanningError, match=r"^pool_yaml: SandboxSet default/base has no runtimes"):
        quick_plan(pool, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_default_output_directory_is_a_new_private_one() -> None:
    """Not a fixed path in the shared temp directory another user could own or plant."""
    first = quick_plan(POOL_YAML, rate=1.0, duration=30.0, replications=1)
    second = quick_plan(POOL_YAML, rate=1.0, duration=30.0, replications=1)
    try:
        assert first.report.parent != second.report.parent
        for plan in (first, second):
            out = plan.report.parent
            assert out.parent == Path(tempfile.gettempdir())
            assert out.name.startswith("kruise-agents-plan-")
            assert stat.S_IMODE(out.stat().st_mode) == 0o700
            assert out.stat().st_uid == os.getuid()
    finally:
        for plan in (first, second):
            shutil.rmtree(plan.report.parent, ignore_errors=True)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pool_yaml": "not: [valid"}, r"^pool_yaml: invalid YAML at line 1"),
        (
            {"pool_yaml": POOL_YAML.replace("containers:", "containers: 3\n      x:", 1)},
            r"^pool_yaml: ",
        ),
        ({"slo": "p99<"}, r"^slo: cannot read 'p99<'"),
        ({"max_cold": "lots"}, r"^max_cold: "),
    ],
)
def test_bad_arguments_are_one_planning_error_naming_the_argument(
    arguments: dict[str, str], message: str, tmp_path: Path
) -> None:
    """A malformed pool, goal or cold share raises PlanningError naming the Python argument.

    Before, a malformed ``pool_yaml`` raised the manifest loader's InvalidError
    (naming ``manifest``), and a bad ``slo`` named the CLI's ``--slo``.
    """
    with pytest.raises(PlanningError, match=message):
        quick_plan(out_dir=tmp_path, **arguments)  # type: ignore[arg-type]


def test_out_dir_may_be_text_and_is_checked_before_anything_runs(tmp_path: Path) -> None:
    """``out_dir`` is a path or its text; one that cannot be a folder to write in is refused
    naming it at once (not after the plan's seconds of runs, as an AttributeError or an
    OSError), and nothing is written."""
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    with pytest.raises(PlanningError, match=rf"^out_dir: {a_file}: is a file, not a folder$"):
        quick_plan(POOL_YAML, out_dir=a_file, duration=3600.0)
    (tmp_path / "summary.json").write_text("mine")  # the user's, no run's: never replaced
    with pytest.raises(PlanningError, match=r"^out_dir: .*: holds summary.json that no"):
        quick_plan(POOL_YAML, out_dir=str(tmp_path), duration=3600.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "summary.json"]

    out = tmp_path / "plan"
    qp = quick_plan(POOL_YAML, rate=1.0, duration=60.0, replications=1, out_dir=str(out))
    assert qp.report == out / "report.html"

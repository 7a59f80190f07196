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
    with pytest.raises(
        PlanningError,
        match=r"^pool_yaml: SandboxSet default/base has no agent runtime \(runtimes: "
        r"\[\{name: agent-runtime\}\], or an init container named runtime\): every E2B create",
    ):
        quick_plan(pool, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_pool_whose_runtime_is_an_init_container_named_runtime_is_planned(
    tmp_path: Path,
) -> None:
    """The pool has the agent runtime by the claim path's own rule (upstream #441): its E2B
    creates initialise the runtime and succeed, so it is planned, not refused.

    Before, quick_plan looked only at ``runtimes`` and said every create would fail.
    """
    pool = POOL_YAML.replace("  runtimes:\n    - name: agent-runtime\n", "").replace(
        "    spec:\n      containers:",
        "    spec:\n      initContainers: [{name: runtime, image: registry.example.com/rt:v1}]\n"
        "      containers:",
    )
    assert "runtimes" not in pool and "initContainers" in pool
    qp = quick_plan(pool, rate=1.0, duration=30.0, replications=1, out_dir=tmp_path)
    assert qp.result.answer is not None
    assert qp.result.all_failed_at is None


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


def test_an_interrupted_plan_leaves_no_folder_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C while the report is written (the demo's section 8): no temp folder is left
    holding only summary.json, its path never printed."""
    import simulator.planning.quick as quick

    def interrupted(*args: object, **kwargs: object) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(quick, "write_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quick_plan(POOL_YAML, rate=1.0, duration=30.0, replications=1)

    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_cold": 2}, "max_cold: must be in [0, 1) (0% to 99.9%), got 2"),
        ({"max_cold": None}, "max_cold: expected a share such as 1% or 0.01, got None"),
        ({"slo": 5}, "slo: expected a goal such as 'p99<1s', got 5"),
        ({"rate": "x"}, "rate: expected a rate such as 5 or '300/min', got 'x'"),
        ({"rate": True}, "rate: expected a rate such as 5 or '300/min', got True"),
        ({"rate": -1}, "rate: must be > 0.0, got -1.0"),
        ({"rate": "2/day"}, "rate: unknown rate unit 'day': use /s, /min or /h"),
        ({"hold": "soon"}, "hold: invalid latency 'soon': expected a duration"),
        ({"duration": -1}, "duration: must be > 0.0, got -1.0"),
        ({"duration": "soon"}, "duration: invalid duration 'soon'"),
        ({"duration": 1e9, "rate": 1e-6}, "duration: too long for quick_plan (about 1.67e+07"),
        ({"replications": 0}, "replications: must be >= 1, got 0"),
        ({"replications": "2"}, "replications: must be an integer, got the text '2'"),
        ({"seed": -1}, "seed: must be >= 0, got -1"),
        ({"seed": True}, "seed: must be an integer, got the boolean true"),
        ({"pool_yaml": 5}, "pool_yaml: expected a SandboxSet manifest (its YAML text, or a"),
        ({"pool_yaml": ""}, "pool_yaml: expected exactly one object, got 0"),
        (
            {"pool_yaml": "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {}}"},
            "pool_yaml: must be a SandboxSet, got Pod",
        ),
        (
            {
                "pool_yaml": POOL_YAML[: POOL_YAML.index("  template:")]
                + "  templateRef: {name: t}\n"
            },
            "pool_yaml: spec.templateRef ('t') is not supported in scenarios",
        ),
        ({"out_dir": 5}, "out_dir: expected a path or its text, got 5"),
    ],
)
def test_every_argument_is_refused_naming_it_before_anything_runs(
    arguments: dict[str, object], message: str, tmp_path: Path
) -> None:
    """One PlanningError naming the Python argument and the reason, nothing written.

    Before, ``slo=5`` was a TypeError from ``re``, ``rate="x"`` a ValueError
    about a format code, and the scenario's refusals named its fields
    (``quick_plan: workloads[0].arrivals.rate: ...``), not the arguments.
    """
    out = tmp_path / "out"
    with pytest.raises(PlanningError) as caught:
        quick_plan(**({"pool_yaml": POOL_YAML, "out_dir": out} | arguments))  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert not out.exists()


def test_the_other_forms_of_a_value_are_accepted_as_the_cli_and_scenarios_accept_them(
    tmp_path: Path,
) -> None:
    """``max_cold=0.01`` (as ``--max-cold 0.01``), ``rate="60/min"`` and ``duration="30s"``
    (as a scenario writes them) plan the same as ``"1%"``, ``1.0`` and ``30.0``.

    Before, a float ``max_cold`` was an AttributeError and a text rate a ValueError.
    """
    numbers = quick_plan(
        POOL_YAML, rate=1.0, max_cold="1%", duration=30.0, replications=1, out_dir=tmp_path / "a"
    )
    texts = quick_plan(
        POOL_YAML,
        rate="60/min",
        max_cold=0.01,
        duration="30s",
        replications=1,
        out_dir=tmp_path / "b",
    )
    assert texts.result.answer == numbers.result.answer
    assert texts.result.max_cold == numbers.result.max_cold == 0.01
    assert texts.text.splitlines()[0] == numbers.text.splitlines()[0].replace(
        "1% cold", "0.01 cold"
    )


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

"""The HTML reports open in headless Chromium without errors, and their plots render.

Chromium must be installed (``apt-get install -y chromium``); the test fails,
rather than skips, when it is not, since CI installs it.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from simulator.planning.analytic import analytic_estimate
from simulator.planning.diagnose import check_goals, limits
from simulator.planning.executors import SerialExecutor
from simulator.planning.loading import parse_scenario
from simulator.planning.outputs import summary_payload, write_claims_csv, write_summary
from simulator.planning.overrides import apply_overrides
from simulator.planning.plan import plan
from simulator.planning.report import render_report, write_report
from simulator.planning.scenario import Scenario
from simulator.planning.study import Point, run_points

from .chromium import CHROMIUM, inspect_pages
from .conftest import TINY

FAULTY = TINY.replace("duration: 40s", "duration: 30s") + (
    "faults:\n  - {kind: runtime_init_failure, probability: 0.5, start: 10s, duration: 10s}\n"
)


def _colour_pixels(png: bytes, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    pixels = (mpimg.imread(io.BytesIO(png), format="png")[:, :, :3] * 255).astype(int)
    return int((np.abs(pixels - np.array(rgb)).max(axis=2) <= tolerance).sum())


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A simulate, a sweep (over the pool size) and a plan report of small runs."""
    out = tmp_path_factory.mktemp("reports")
    base: Scenario = parse_scenario(FAULTY, source="faulty.yaml")
    stop = threading.Event()
    summaries, _ = run_points([Point({}, base)], SerialExecutor(), stop=stop, keep_claims=True)
    s = summaries[0]
    analytic = [analytic_estimate(base, p, None, 0.01) for p in base.pools]
    goals = check_goals(s, base.goals) if base.goals else []
    found = limits(s, base)
    write_summary(
        out / "simulate",
        summary_payload(
            "simulate",
            base,
            "faulty.yaml",
            summaries,
            executor="serial",
            interrupted=False,
            analytic=analytic,
            goals=goals,
            limits=found,
        ),
    )
    write_claims_csv(out / "simulate", summaries)
    paths = {
        "simulate": write_report(
            out / "simulate",
            "simulate",
            base,
            "faulty.yaml",
            summaries,
            analytic=analytic,
            goals=goals,
            limits=found,
        )
    }
    axis = "pools.base.replicas"
    points = [Point({axis: n}, apply_overrides(base, [(axis, n)])) for n in (2, 6)]
    swept, _ = run_points(points, SerialExecutor(), stop=stop)
    paths["sweep"] = write_report(out / "sweep", "sweep", base, "faulty.yaml", swept, axes=[axis])
    result = plan(
        base, "base", slo=None, max_cold=0.5, low=1, high=3, executor=SerialExecutor(), stop=stop
    )
    planned = [c.summary for _, c in sorted(result.candidates.items())]
    paths["plan"] = write_report(out / "plan", "plan", base, "faulty.yaml", planned, plan=result)
    return paths


def test_reports_render_without_errors(reports: dict[str, Path], tmp_path: Path) -> None:
    """Each report loads with no console error, every plot decodes, and the screenshot shows them."""
    assert Path(CHROMIUM).exists(), "install Chromium: apt-get install -y chromium"
    pages = inspect_pages(list(reports.values()), tmp_path / "profile")
    expected_plots = {"simulate": 4, "sweep": 4, "plan": 5}
    for (kind, path), page in zip(reports.items(), pages, strict=True):
        assert page.errors == [], f"{kind}: {page.errors}"
        assert page.title.startswith(f"{kind}: tiny")
        assert len(page.images) == expected_plots[kind], (kind, page.images)
        for img in page.images:
            assert img["complete"] and img["width"] > 300 and img["height"] > 200, (kind, img)
        shot = page.screenshot
        assert shot.startswith(b"\x89PNG") and len(shot) > 50_000
        pixels = mpimg.imread(io.BytesIO(shot), format="png")
        assert pixels.shape[0] > 1500 and pixels.shape[1] >= 1000
        # matplotlib's first two colours appear only inside the plots.
        assert _colour_pixels(shot, (31, 119, 180)) > 500, kind
        assert _colour_pixels(shot, (255, 127, 14)) > 50, kind
        assert path.stat().st_size < 2_000_000


def test_report_and_summary_contents(reports: dict[str, Path]) -> None:
    """The simulate report shows goals, limits and the Erlang table; summary.json and claims.csv agree."""
    html = reports["simulate"].read_text()
    for needle in (
        "<h2>Goals</h2>",
        "What limits delivery",
        "Erlang-B next to the simulation",
        "runtime_init_failure",
    ):
        assert needle in html
    assert "<script" not in html
    summary = json.loads((reports["simulate"].parent / "summary.json").read_text())
    assert summary["command"] == "simulate"
    point = summary["points"][0]
    assert point["replications"] == 2 and point["complete"]
    assert set(point["metrics"]["latency_p99"]) == {"n", "mean", "std", "low", "high"}
    csv_lines = (reports["simulate"].parent / "claims.csv").read_text().splitlines()
    assert csv_lines[0].startswith("replication,workload,pool,requested,delivered,latency,warm")
    assert len(csv_lines) - 1 == sum(r["metrics"]["claims"] for r in point["runs"])
    assert "Candidates" in reports["plan"].read_text()
    assert "cold share against pool size" in reports["sweep"].read_text()


def test_a_plan_with_no_claims_marks_its_goals_not_measured_not_missed() -> None:
    """A pool nobody claims from: the Candidates table says ``not measured``, as simulate's Goals do.

    Before, each goal read ``<span class="bad">-</span> (uncertain)`` (a miss)
    beside "meets: yes", while the terminal said no claims were measured.
    """
    scenario = parse_scenario(
        TINY.replace(
            "  - {name: base, replicas: 4}\n",
            "  - {name: base, replicas: 4}\n  - {name: idle, replicas: 2}\n",
        ).replace("duration: 40s", "duration: 10s"),
        source="tiny.yaml",
    )
    result = plan(
        scenario,
        "idle",
        slo=None,
        max_cold=0.01,
        low=2,
        high=2,
        executor=SerialExecutor(),
        stop=threading.Event(),
    )
    planned = [c.summary for _, c in sorted(result.candidates.items())]
    html = render_report("plan", scenario, "tiny.yaml", planned, plan=result)
    start = html.index("<h2>Candidates</h2>")
    table = html[start : html.index("</table>", start)]
    assert '<span class="bad">' not in table
    assert "(uncertain)" not in table
    assert '<span class="note">not measured</span> (no claims were measured)' in table
    assert '<span class="note">yes</span> (no claims were measured)' in table


def test_a_sweep_over_bursts_says_erlang_uses_their_mean_rate(tmp_path: Path) -> None:
    """The sweep's cold-share plot of a bursty workload says why Erlang-B can miss it, as
    ``simulate`` says next to its estimate; a Poisson workload's caption says nothing more.

    Before, a burst of 167/s read as "Erlang-B at 55.6 claims/s" with no word on the gap.
    """
    axis = "pools.base.replicas"
    captions = {}
    for name, arrivals in (
        ("burst", {"kind": "bursts", "bursts": [{"at": "5s", "count": 12, "over": "1s"}]}),
        ("poisson", {"kind": "poisson", "rate": 2}),
    ):
        base = apply_overrides(
            parse_scenario(TINY, source="tiny.yaml"),
            [("workloads[0].arrivals", arrivals), ("replications", 1), ("duration", "20s")],
        )
        points = [Point({axis: n}, apply_overrides(base, [(axis, n)])) for n in (2, 4)]
        swept, _ = run_points(points, SerialExecutor(), stop=threading.Event())
        page = write_report(tmp_path / name, "sweep", base, "tiny.yaml", swept, axes=[axis])
        captions[name] = page.read_text()
    note = "arrivals are not Poisson: Erlang uses their mean rate only"
    assert note in captions["burst"]
    assert note not in captions["poisson"] and "claims/s." in captions["poisson"]


def test_a_sweep_over_a_dotted_pool_reports_that_pool(tmp_path: Path) -> None:
    """``pools.web.v2.replicas`` is the pool ``web.v2``'s (the longest name, as ``--set`` reads it).

    Before, the report took the part after ``pools`` alone, ``web``: another
    pool's figures, or a KeyError where there is no pool ``web``.
    """
    base = parse_scenario(
        TINY.replace("  - {name: base, replicas: 4}", "  - {name: web.v2, replicas: 4}")
        .replace("template: base", "template: web.v2")
        .replace("replications: 2", "replications: 1"),
        source="tiny.yaml",
    )
    for axis in ("pools.web.v2.replicas", "pools[web.v2].replicas"):
        points = [Point({axis: n}, apply_overrides(base, [(axis, n)])) for n in (2, 4)]
        swept, _ = run_points(points, SerialExecutor(), stop=threading.Event())
        page = render_report("sweep", base, "tiny.yaml", swept, axes=[axis])
        assert "Cold share of default/web.v2 against its replicas" in page

"""The report's comparison plots: their point labels are short, and no two of them overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from simulator.planning.formatting import point_labels
from simulator.planning.plots import metric_figure
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate

AXES: dict[str, list[object]] = {
    "pools.base.replicas": [6, 8, 10, 12, 14],
    "cluster.profile": ["openkruise-head", "openkruise-v0.3.0"],
    "workloads[0].arrivals.rate": ["300/min", "10/s", "20/s"],
}


def sweep_labels(points: int) -> list[str]:
    """The labels of the first ``points`` points of a sweep over the three axes above."""
    grid = itertools.product(*AXES.values())
    return point_labels([dict(zip(AXES, values, strict=True)) for values in grid][:points])


def shown_boxes(fig: Figure) -> list[tuple[int, Bbox]]:
    """(tick index, bounding box on the canvas) of every x tick label drawn with some text."""
    fig.draw_without_rendering()
    (ax,) = fig.axes
    return [
        (i, label.get_window_extent())
        for i, label in enumerate(ax.get_xticklabels())
        if label.get_text()
    ]


@pytest.mark.parametrize("points", [1, 3, 6, 12, 30])
def test_sweep_labels_never_overlap_and_are_all_shown(points: int) -> None:
    """Up to 30 points of a three-axis sweep: every point is labelled, no label touches another."""
    labels = sweep_labels(points)
    fig = metric_figure(labels, [Estimate(2, 0.5, 0.1, 0.4, 0.6)] * points, ylabel="s", title="p99")
    boxes = shown_boxes(fig)
    assert [i for i, _ in boxes] == list(range(points))
    for (_, a), (_, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)


def test_too_many_points_show_every_kth_label_without_overlap() -> None:
    """120 points do not fit side by side: the first and every k-th label after it are shown."""
    labels = [f"replicas={n}, profile=openkruise-v0.3.0" for n in range(120)]
    fig = metric_figure(labels, [Estimate(2, 0.5, 0.1, 0.4, 0.6)] * 120, ylabel="s", title="p99")
    boxes = shown_boxes(fig)
    shown = [i for i, _ in boxes]
    step = shown[1] - shown[0]
    assert shown == list(range(0, 120, step)) and step > 1
    for (_, a), (_, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()][::step] == labels[::step]


def test_few_short_labels_stay_horizontal() -> None:
    """Pool sizes of a plan read across, as usual."""
    fig = metric_figure(["4", "5", "6"], [None, None, None], ylabel="s", title="p99")
    (ax,) = fig.axes
    assert [label.get_rotation() for label in ax.get_xticklabels()] == [0, 0, 0]


def test_point_labels_name_each_axis_by_the_end_of_its_path() -> None:
    """The last part of each path names the axis, unless two axes end alike."""
    assert sweep_labels(1) == ["replicas=6, profile=openkruise-head, rate=300/min"]
    assert point_labels([{"pools.a.replicas": 1, "pools.b.replicas": 2}]) == [
        "pools.a.replicas=1, pools.b.replicas=2"
    ]
    assert point_labels([{"cluster.latencies.image.pull": "exp(1s)"}, {}]) == [
        "image.pull=exp(1s)",
        "base",
    ]


def _tick_texts(fig: Figure) -> list[str]:
    fig.draw_without_rendering()
    ax = fig.axes[0]
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text()]


def test_every_share_plot_reads_in_percent() -> None:
    """The cold share is a percentage in the bar plot and in the plot against pool size
    alike: each axis says %, and each tick is written as one.

    Before, the plot against pool size drew it as a bare fraction (0..1, label "cold
    share") next to a bar plot in % and a goal given in %.
    """
    from simulator.planning.plots import erlang_figure

    est = [Estimate(2, 0.276, 0.04, 0.0, 0.64), Estimate(2, 0.11, 0.01, 0.06, 0.16)]
    bars = metric_figure(
        ["replicas=4", "replicas=6"], est, ylabel="% of delivered", title="Cold", percent=True
    )
    linear = erlang_figure([4, 6], est, [("Erlang-B, profile refill 1.79s", 3.57)], goal=0.05)
    log = erlang_figure([4, 6], est, [("Erlang-B", 3.57)], goal=0.01)
    for fig in (bars, linear, log):
        ax = fig.axes[0]
        assert "%" in ax.get_ylabel(), ax.get_ylabel()
        ticks = _tick_texts(fig)
        assert ticks and all(t.endswith("%") for t in ticks), ticks
    # The points sit at their percentages: 27.6% is drawn at 27.6, not 0.276.
    drawn = [np.asarray(line.get_ydata(), dtype=float) for line in linear.axes[0].get_lines()]
    assert max(float(ys.max()) for ys in drawn) > 1


def _under_legend(fig: Figure) -> dict[str, float]:
    """The share of each curve's points the legend box hides (the hunt's measure)."""
    fig.draw_without_rendering()
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    box = legend.get_window_extent()
    hidden = {}
    for line in ax.get_lines():
        pts = ax.transData.transform(line.get_xydata())
        hidden[str(line.get_label())] = sum(box.contains(x, y) for x, y in pts) / len(pts)
    return hidden


def test_the_latency_cdf_legend_hides_no_curve(tiny: Scenario) -> None:
    """Warm and cold curves of three pool sizes: the legend covers no point of any of them.

    Before, the legend sat in the lower right, where the cold curves (1-3 s, rising from
    0) are drawn, and hid about 40% of their points.
    """
    from simulator.planning.overrides import apply_overrides
    from simulator.planning.plots import latency_cdf_figure
    from simulator.planning.runner import run_once

    groups = [
        (f"replicas={n}", [run_once(apply_overrides(tiny, [("pools.base.replicas", n)]))])
        for n in (1, 2, 4)
    ]
    for fig in (latency_cdf_figure(groups), latency_cdf_figure([("", groups[0][1])])):
        hidden = _under_legend(fig)
        assert len(hidden) >= 2 and set(hidden.values()) == {0.0}, hidden

"""The report's plots, drawn with matplotlib (Agg, no pyplot state) and returned as PNG bytes.

Each function takes plain figures (summaries, runs) and returns one PNG, so
the report can embed it as base64 and the file stands alone.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter

from simulator.planning.analytic import erlang_curve
from simulator.planning.metrics import RunResult
from simulator.planning.scenario import Scenario
from simulator.planning.stats import Estimate

__all__ = [
    "claims_rate_plot",
    "erlang_figure",
    "erlang_plot",
    "latency_cdf_figure",
    "latency_cdf_plot",
    "metric_figure",
    "metric_plot",
    "node_plot",
    "pool_plot",
]

_SIZE = (8.0, 3.6)
_DPI = 96


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _time_axis(t: Sequence[float]) -> tuple[list[float], str]:
    span = t[-1] if t else 0.0
    if span > 3 * 3600:
        return [x / 3600 for x in t], "hours since the workload started"
    if span > 600:
        return [x / 60 for x in t], "minutes since the workload started"
    return list(t), "seconds since the workload started"


def _scale(span_unit: str) -> float:
    return (
        3600.0
        if span_unit.startswith("hours")
        else 60.0
        if span_unit.startswith("minutes")
        else 1.0
    )


def _shade(ax: Axes, scenario: Scenario, unit: str) -> None:
    k = _scale(unit)
    if scenario.warmup > 0:
        ax.axvspan(0, scenario.warmup / k, color="0.9", label="warm-up")
    for f in scenario.faults:
        end = f.start + (f.duration if f.duration is not None else scenario.horizon - f.start)
        ax.axvspan(
            f.start / k,
            max(end, f.start + scenario.horizon / 200) / k,
            color="#f4cccc",
            alpha=0.6,
            label=f"fault: {f.kind}",
        )


def _ecdf(runs: Sequence[RunResult], kind: str) -> tuple[list[float], list[float]]:
    pairs: list[tuple[float, float]] = []
    for r in runs:
        q = r.warm_q if kind == "warm" else r.cold_q
        n = r.warm_n if kind == "warm" else r.cold_n
        if q:
            w = n / len(q)
            pairs.extend((v, w) for v in q)
    pairs.sort()
    total = sum(w for _, w in pairs)
    xs: list[float] = []
    ys: list[float] = []
    acc = 0.0
    for v, w in pairs:
        acc += w
        xs.append(max(v, 1e-4))
        ys.append(acc / total)
    return xs, ys


def latency_cdf_plot(groups: Sequence[tuple[str, Sequence[RunResult]]]) -> bytes:
    """Delivery latency CDF, warm (solid) and cold (dashed), per group of runs."""
    return _png(latency_cdf_figure(groups))


def latency_cdf_figure(groups: Sequence[tuple[str, Sequence[RunResult]]]) -> Figure:
    """The figure of :func:`latency_cdf_plot`, its legend beside the axes."""
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    colors = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"]
    for i, (label, runs) in enumerate(groups):
        color = colors[i % len(colors)]
        for kind, style in (("warm", "-"), ("cold", "--")):
            xs, ys = _ecdf(runs, kind)
            if xs:
                name = f"{label} {kind}" if label else kind
                ax.step(xs, ys, where="post", linestyle=style, color=color, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("delivery latency (s, log scale)")
    ax.set_ylabel("share of claims delivered")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Delivery latency, warm (from the pool) vs cold (created on no stock)")
    if ax.get_legend_handles_labels()[0]:
        # Outside the axes, right of them: every corner inside holds a curve (warm ones rise
        # at the left, cold ones at the right from 0 to 1), and a legend there hides it.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def pool_plot(run: RunResult, scenario: Scenario) -> bytes:
    """Available and creating sandboxes of each pool over time."""
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    t, unit = _time_axis(run.series["t"])
    _shade(ax, scenario, unit)
    for i, pool in enumerate(scenario.pools):
        color = f"C{i % 10}"
        ax.plot(t, run.series[f"available:{pool.key}"], color=color, label=f"{pool.key} available")
        ax.plot(
            t,
            run.series[f"creating:{pool.key}"],
            color=color,
            linestyle=":",
            label=f"{pool.key} creating",
        )
    ax.set_xlabel(unit)
    ax.set_ylabel("sandboxes")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Warm pool: available and creating sandboxes")
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


_RATE_BINS = 150
"""At most this many bars in the claims-per-second plot: finer samples are averaged."""


def _rebin(t: Sequence[float], values: Sequence[float]) -> tuple[list[float], list[float]]:
    k = max(1, -(-len(t) // _RATE_BINS))
    xs = [t[min(i + k - 1, len(t) - 1)] for i in range(0, len(t), k)]
    ys = [sum(values[i : i + k]) / len(values[i : i + k]) for i in range(0, len(values), k)]
    return xs, ys


def claims_rate_plot(run: RunResult, scenario: Scenario) -> bytes:
    """Claims per second: arrivals, warm and cold deliveries, failures."""
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    t, unit = _time_axis(run.series["t"])
    _shade(ax, scenario, unit)
    for key, label, color in (
        ("rate_arrivals", "requested", "0.4"),
        ("rate_warm", "delivered warm", "C0"),
        ("rate_cold", "delivered cold", "C1"),
        ("rate_failed", "failed", "C3"),
    ):
        values = run.series.get(key) or []
        if any(values):
            xs, ys = _rebin(t, values)
            ax.step(xs, ys, where="pre", color=color, label=label, linewidth=1)
    ax.set_xlabel(unit)
    ax.set_ylabel("claims per second")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Claims per second")
    ax.legend(loc="best", fontsize="small")
    return _png(fig)


def node_plot(run: RunResult, scenario: Scenario) -> bytes:
    """Node CPU and memory allocation (whole cluster, and the busiest node's CPU)."""
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    t, unit = _time_axis(run.series["t"])
    _shade(ax, scenario, unit)
    ax.plot(
        t, [100 * v for v in run.series["node_cpu"]], color="C0", label="CPU requested (cluster)"
    )
    ax.plot(
        t, [100 * v for v in run.series["node_mem"]], color="C2", label="memory requested (cluster)"
    )
    ax.plot(
        t,
        [100 * v for v in run.series["node_cpu_peak"]],
        color="C0",
        linestyle=":",
        label="CPU, busiest node",
    )
    ax.set_xlabel(unit)
    ax.set_ylabel("% of allocatable")
    ax.set_ylim(0, 105)
    ax.grid(True, alpha=0.3)
    pending = run.series.get("pending_pods") or []
    if any(pending):
        ax2 = ax.twinx()
        ax2.plot(t, pending, color="C3", linewidth=1, label="pods waiting for a node")
        ax2.set_ylabel("pods waiting", color="C3")
        ax2.set_ylim(bottom=0)
    ax.set_title("Node utilisation (resource requests)")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


_SHARE_AXES = {
    "erlang-b": ("Erlang-B", "simulated cold share (95% CI)", "cold share, % of delivered"),
    "erlang-c": ("Erlang-C", "simulated share that waited (95% CI)", "claims that waited, %"),
}
"""Per model: its name, the simulated points' legend, and the share's axis label."""


def _percent_ticks(ax: Axes) -> None:
    """Write the y ticks as percentages (``0.1%``, ``10%``), minor ones unlabelled."""
    # Fixed-point, not ``1e-05``: a share reads as a percentage at any size.
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: f"{v:.12f}".rstrip("0").rstrip(".") + "%")
    )
    ax.yaxis.set_minor_formatter(NullFormatter())


def erlang_plot(
    sizes: Sequence[int],
    estimates: Sequence[Estimate | None],
    loads: Sequence[tuple[str, float]],
    *,
    goal: float | None = None,
    title: str = "Cold share against pool size",
    model: str = "erlang-b",
) -> bytes:
    """Simulated share (mean and 95% interval) by pool size, with Erlang's curves, in %."""
    return _png(erlang_figure(sizes, estimates, loads, goal=goal, title=title, model=model))


def erlang_figure(
    sizes: Sequence[int],
    estimates: Sequence[Estimate | None],
    loads: Sequence[tuple[str, float]],
    *,
    goal: float | None = None,
    title: str = "Cold share against pool size",
    model: str = "erlang-b",
) -> Figure:
    """The figure of :func:`erlang_plot`: Erlang-B's cold share (or, with ``model``
    ``erlang-c``, Erlang-C's waiting share) at each size, with the simulated points.

    Shares are drawn in percent, as every other share of the report.
    """
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    _, simulated, ylabel = _SHARE_AXES[model]
    lo = 0
    hi = max(max(sizes, default=1), 1)
    grid = list(range(lo, hi + max(2, hi // 10) + 1))
    for i, (label, load) in enumerate(loads):
        curve = erlang_curve(load, grid, model)
        ax.plot(grid, [100 * max(v, 1e-6) for v in curve], color=f"C{i + 1}", label=label)
    xs: list[int] = []
    ys: list[float] = []
    err_lo: list[float] = []
    err_hi: list[float] = []
    for s, est in zip(sizes, estimates, strict=True):
        if est is None:
            continue
        xs.append(s)
        y = max(est.mean, 1e-6)
        ys.append(y)
        low = est.low if est.low is not None else est.mean
        high = est.high if est.high is not None else est.mean
        err_lo.append(max(0.0, y - max(low, 1e-6)))
        err_hi.append(max(0.0, max(high, 1e-6) - y))
    if xs:
        ax.errorbar(
            xs,
            [100 * y for y in ys],
            yerr=[[100 * e for e in err_lo], [100 * e for e in err_hi]],
            fmt="o",
            color="C0",
            capsize=3,
            label=simulated,
        )
    if goal is not None and goal > 0:
        ax.axhline(100 * goal, color="C3", linestyle="--", linewidth=1, label=f"goal {goal:.2%}")
    # A log scale shows small shares (the usual goals); large ones read better linearly.
    log = not ys or min(ys) < 0.02 or (goal is not None and goal < 0.02)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=100 * max(1e-5, min([*ys, goal or 1.0]) / 20))
    else:
        ax.set_ylim(0, 102)
    _percent_ticks(ax)
    ax.set_xlabel("pool replicas")
    ax.set_ylabel(f"{ylabel} (log scale)" if log else ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return fig


def _overlapping(labels: Sequence[Text]) -> bool:
    """Whether any two non-empty ``labels`` (in axis order) touch, with a pixel of margin."""
    boxes = [t.get_window_extent() for t in labels if t.get_text()]
    return any(a.x1 + 1 > b.x0 for a, b in itertools.pairwise(boxes))


def _set_tick_labels(fig: Figure, ax: Axes, labels: Sequence[str], *, vertical: bool) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize="small", rotation=90 if vertical else 0, ha="center")
    # Tick labels take their text and place at draw time: draw to measure them.
    fig.draw_without_rendering()


def _fit_tick_labels(fig: Figure, ax: Axes, labels: Sequence[str]) -> None:
    """Label the categories ``0..n-1`` of the x axis so that no label overlaps another.

    Horizontal, one line per ``, ``-separated part, when they fit; else on one
    line, vertical; else vertical with every k-th label only (the first, and
    every k-th after it), for the smallest such k.
    """
    FigureCanvasAgg(fig)  # measured with the renderer the PNG is drawn with
    _set_tick_labels(fig, ax, [t.replace(", ", "\n") for t in labels], vertical=False)
    if not _overlapping(ax.get_xticklabels()):
        return
    _set_tick_labels(fig, ax, labels, vertical=True)
    ticks = ax.get_xticklabels()
    if not _overlapping(ticks):
        return
    # The first k that can fit, from the widest label and the tick spacing.
    widest = max(t.get_window_extent().width for t in ticks)
    x0, x1 = ax.transData.transform([(0, 0), (1, 0)])[:, 0]
    step = max(2, math.ceil((widest + 2) / max(x1 - x0, 1e-9)))
    while True:
        shown = [t if i % step == 0 else "" for i, t in enumerate(labels)]
        _set_tick_labels(fig, ax, shown, vertical=True)
        if step >= len(labels) or not _overlapping(ax.get_xticklabels()):
            return
        step += 1


def metric_figure(
    labels: Sequence[str],
    estimates: Sequence[Estimate | None],
    *,
    ylabel: str,
    title: str,
    limit: float | None = None,
    percent: bool = False,
) -> Figure:
    """The figure of :func:`metric_plot`, its x labels laid out so none overlaps another."""
    fig = Figure(figsize=_SIZE)
    ax = fig.add_subplot()
    k = 100.0 if percent else 1.0
    xs = list(range(len(labels)))
    means = [(e.mean * k if e is not None else float("nan")) for e in estimates]
    lows = [(e.mean - e.low) * k if e is not None and e.low is not None else 0.0 for e in estimates]
    highs = [
        (e.high - e.mean) * k if e is not None and e.high is not None else 0.0 for e in estimates
    ]
    ax.bar(xs, means, yerr=[lows, highs], capsize=3, color="C0", alpha=0.8)
    if percent:
        _percent_ticks(ax)
    if limit is not None:
        ax.axhline(limit * k, color="C3", linestyle="--", linewidth=1, label="goal")
        ax.legend(loc="best", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    _fit_tick_labels(fig, ax, labels)
    return fig


def metric_plot(
    labels: Sequence[str],
    estimates: Sequence[Estimate | None],
    *,
    ylabel: str,
    title: str,
    limit: float | None = None,
    percent: bool = False,
) -> bytes:
    """One metric per point (mean and 95% interval), e.g. p99 across a sweep."""
    return _png(
        metric_figure(labels, estimates, ylabel=ylabel, title=title, limit=limit, percent=percent)
    )

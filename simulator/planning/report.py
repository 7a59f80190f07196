"""``report.html``: one self-contained page (no script, no network) with tables and plots.

The plots are PNG images embedded as base64 ``data:`` URIs, so the file can
be mailed or attached to a ticket and opens anywhere.

* ``simulate``: summary and pool tables, Erlang next to the simulated cold
  share, latency CDF (warm vs cold), pool levels, claims per second and node
  utilisation of the first replication;
* ``sweep``: one row per point, comparative plots (p99, cold share, CDFs per
  point) and, when a pool's replicas are swept, the cold share against pool
  size with the Erlang-B curve; a point that does not fit on the nodes has a
  row saying so, with the reason, and no place in the plots;
* ``plan``: the candidates, the explanation, the cold share against pool size
  with the Erlang-B curves and the goal, then the ``simulate`` plots of the answer.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from simulator.planning import plots
from simulator.planning.analytic import ERLANG_C_ORDER, AnalyticEstimate, erlang_curve
from simulator.planning.figures import three_figures
from simulator.planning.formatting import (
    METRIC_ROWS,
    POOL_ROWS,
    fmt_estimate,
    fmt_interval,
    fmt_value,
    label_of,
    point_labels,
)
from simulator.planning.outputs import replacing
from simulator.planning.plan import Goal, PlanResult
from simulator.planning.scenario import Scenario
from simulator.planning.study import (
    NO_POINT_FITS,
    PointSummary,
    UnfitPoint,
    profiles_ran,
    runs_ran,
)

__all__ = ["render_report", "write_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1000px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
.note { color: #555; font-size: 0.92em; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
.warn { background: #fff4e5; border-left: 4px solid #f79009; padding: 0.5em 1em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _summary_table(s: PointSummary) -> str:
    rows = []
    for metric, label in METRIC_ROWS:
        est = s.metrics.get(metric)
        if est is None:
            continue
        rows.append([_e(label), _e(fmt_value(metric, est.mean)), _e(fmt_interval(metric, est))])
    return _table(["metric", "mean", "95% interval"], rows)


def _pool_table(s: PointSummary) -> str:
    keys = list(s.pools)
    rows = []
    for metric, label in POOL_ROWS:
        rows.append([_e(label), *(_e(fmt_estimate(metric, s.pools[k].get(metric))) for k in keys)])
    return _table(["pool", *keys], rows)


def _failures(s: PointSummary) -> str:
    if not s.failures:
        return '<p class="note">No claim failed.</p>'
    rows = [
        [_e(reason), _e(f"{est.mean:,.1f}"), _e(fmt_interval("n", est))]
        for reason, est in sorted(s.failures.items())
    ]
    return _table(["failure reason", "claims per run", "95% interval"], rows)


_FORMULAS = {
    "erlang-b": (
        "Erlang-B",
        "simulated cold share",
        "Erlang-B(S, λL) is the cold share of a pool of S replicas under Poisson claims of rate λ "
        "when a refill takes L on average and a claim that finds the pool empty is created cold "
        "(create-on-no-stock).",
    ),
    "erlang-c": (
        "Erlang-C",
        "simulated share of claims that waited",
        "Erlang-C(S, λL) is the share of claims that wait for a refill in a pool of S replicas "
        "whose claims do not create on no stock (M/M/S: Poisson claims of rate λ, exponential "
        "refills of mean L); such claims are never cold, and the simulated share counts those "
        f"that needed more than one attempt. {ERLANG_C_ORDER}.",
    ),
}
"""Per model: its name, the simulated share it is set against, and what it means."""

_PLOTTED = {
    "erlang-b": ("Erlang-B", "cold_share", "cold share"),
    "erlang-c": ("Erlang-C", "waited_share", "share of claims that waited"),
}
"""Per model, in the plots against pool size: its name, the pool's share drawn, its words."""


def _analytic_rows(
    s: PointSummary, analytic: Sequence[AnalyticEstimate], model: str
) -> list[list[str]]:
    """The rows of ``model``'s table: the formula at each pool's size, with the profile's and
    the measured refill, and the simulated share it stands for."""
    rows = []
    for a in analytic:
        pool = s.pools.get(a.pool, {})
        replicas = pool.get("replicas")
        if a.model != model or replicas is None:
            continue
        size = int(replicas.mean)
        refill = pool.get("refill_s")
        at_profile = erlang_curve(a.rate * a.refill_s, [size], model)[0]
        at_measured = (
            "-"
            if refill is None
            else (
                f"{three_figures(refill.mean)}s → "
                f"{erlang_curve(a.rate * refill.mean, [size], model)[0]:.2%}"
            )
        )
        rows.append(
            [
                _e(a.pool),
                _e(size),
                _e(f"{three_figures(a.rate)}/s"),
                _e(f"{three_figures(a.refill_s)}s → {at_profile:.2%}"),
                _e(at_measured),
                _e(fmt_estimate(a.compared_with, pool.get(a.compared_with))),
            ]
        )
    return rows


def _analytic_table(s: PointSummary, analytic: Sequence[AnalyticEstimate]) -> str:
    """Erlang's share at each pool's size next to the simulated one: one table per formula
    (Erlang-B for pools whose claims are created cold, Erlang-C for those whose claims wait)."""
    parts = []
    for model, (name, simulated, meaning) in _FORMULAS.items():
        rows = _analytic_rows(s, analytic, model)
        if not rows:
            continue
        head = ["pool", "replicas", "claim rate", f"{name}, profile refill"]
        head += [f"{name}, measured refill", simulated]
        parts += [f"<h2>{name} next to the simulation</h2>", _table(head, rows)]
        parts.append(
            f'<p class="note">{_e(meaning)} The profile refill adds up the mean latency of each '
            "step of a replacement; the measured refill is (S - mean available) / warm claim "
            "rate (Little's law).</p>"
        )
    return "".join(parts)


def _run_plots(s: PointSummary, scenario: Scenario, title: str) -> str:
    if not s.runs:
        return ""
    run = s.runs[0]
    parts = [f"<h2>{_e(title)}</h2>"]
    parts.append(
        _img(
            plots.latency_cdf_plot([("", s.runs)]),
            "latency CDF",
            f"Delivery latency CDF over {len(s.runs)} replication(s), warm and cold claims.",
        )
    )
    parts.append(
        _img(
            plots.pool_plot(run, scenario),
            "pool levels",
            "Pool available and creating over time (replication 0); grey: warm-up, red: fault windows.",
        )
    )
    parts.append(
        _img(
            plots.claims_rate_plot(run, scenario),
            "claims per second",
            "Claims per second (replication 0).",
        )
    )
    parts.append(
        _img(
            plots.node_plot(run, scenario),
            "node utilisation",
            "Node CPU and memory requested (replication 0).",
        )
    )
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon: the browser asks for no favicon.ico next to the file.
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _header(
    kind: str,
    scenario: Scenario,
    source: str,
    interrupted: bool,
    summaries: Sequence[PointSummary],
) -> str:
    parts = [f"<h1>{_e(kind)}: {_e(scenario.name)}</h1>"]
    if scenario.description:
        parts.append(f"<p>{_e(scenario.description)}</p>")
    parts.append(
        f'<p class="note">Scenario <code>{_e(source)}</code>, profile '
        f"<code>{_e(profiles_ran(scenario, summaries))}</code>, seed {scenario.seed}, "
        f"{_e(runs_ran(scenario, summaries))}.</p>"
    )
    if interrupted:
        parts.append('<p class="warn">Interrupted: these are partial results.</p>')
    return "".join(parts)


def render_report(
    kind: str,
    scenario: Scenario,
    source: str,
    summaries: Sequence[PointSummary],
    *,
    interrupted: bool = False,
    plan: PlanResult | None = None,
    analytic: Sequence[AnalyticEstimate] = (),
    axes: Sequence[str] = (),
    goals: Sequence[Goal] = (),
    limits: Sequence[str] = (),
    rows: Sequence[PointSummary | UnfitPoint] | None = None,
) -> str:
    """The report as HTML text (see the module docstring).

    ``rows`` are a sweep's points in order, those that do not fit among them
    (default: ``summaries``).
    """
    body = [_header(kind, scenario, source, interrupted, summaries)]
    if kind == "simulate" and summaries:
        s = summaries[0]
        body.append(_diagnosis(goals, limits))
        body += ["<h2>Summary</h2>", _partial(s), _summary_table(s)]
        body += ["<h2>Pools</h2>", _pool_table(s)]
        body += ["<h2>Failures</h2>", _failures(s), _analytic_table(s, analytic)]
        body.append(_run_plots(s, scenario, "Plots"))
    elif kind == "sweep":
        body.append(_sweep(summaries, summaries if rows is None else rows, axes))
    elif kind == "plan" and plan is not None:
        body.append(_plan(plan, scenario))
    return _page(f"{kind}: {scenario.name}", "".join(body))


def _partial(s: PointSummary) -> str:
    """The warning that a point is partial, and why (empty for a complete point)."""
    note = s.partial_note()
    return "" if note is None else f'<p class="warn">{_e(note)}</p>'


def _diagnosis(goals: Sequence[Goal], limits: Sequence[str]) -> str:
    parts: list[str] = []
    if goals:
        rows = []
        for g in goals:
            mark = "ok" if g.met else "bad" if g.estimate is not None else "note"
            verdict = f'<span class="{mark}">{_e(g.verdict)}</span>'
            rows.append(
                [
                    _e(label_of(g.name)),
                    _e(f"{g.symbol} {fmt_value(g.name, g.limit)}"),
                    _e(fmt_estimate(g.name, g.estimate)),
                    f"{verdict} {_e(f'({g.confidence})')}",
                ]
            )
        parts += ["<h2>Goals</h2>", _table(["goal", "limit", "measured", "verdict"], rows)]
    if limits:
        parts.append("<h2>What limits delivery</h2>")
        parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in limits) + "</ul>")
    return "".join(parts)


_SWEEP_METRICS = {
    "latency_p50": "delivery p50",
    "latency_p99": "delivery p99",
    "cold_share": "cold share",
    "failed_share": "failed share",
    "node_cpu_peak": "node CPU peak",
    "idle_sandbox_hours": "idle sandbox-hours",
}


def _sweep_cells(row: PointSummary | UnfitPoint, axes: Sequence[str]) -> list[str]:
    """A row of the Points table: the point's labels, then its figures or why it does not fit."""
    cells = [_e(row.labels.get(a)) for a in axes]
    if isinstance(row, PointSummary) and not row.complete and cells:
        cells[-1] += ' <span class="bad">(partial)</span>'  # the notes below say why
    if isinstance(row, UnfitPoint):
        # No figures: the first cell says why, the others stay empty.
        cells.append(f'<span class="bad">does not fit</span><br><small>{_e(row.reason)}</small>')
        return cells + ["-"] * (len(_SWEEP_METRICS) - 1)
    for m in _SWEEP_METRICS:
        est = row.metrics.get(m)
        interval = fmt_interval(m, est)
        small = f"<br><small>{_e(interval)}</small>" if interval else ""
        cells.append(_e(fmt_value(m, None if est is None else est.mean)) + small)
    return cells


def _sweep(
    summaries: Sequence[PointSummary],
    rows: Sequence[PointSummary | UnfitPoint],
    axes: Sequence[str],
) -> str:
    if not rows:
        return "<p>No point finished.</p>"
    parts = ["<h2>Points</h2>"]
    if not summaries:
        parts.append(
            f'<p class="warn">{_e(NO_POINT_FITS)}: the pools never filled at any point '
            "(the reasons are below); add nodes, or make the pools or their sandboxes smaller.</p>"
        )
    parts.append(_table([*axes, *_SWEEP_METRICS.values()], [_sweep_cells(r, axes) for r in rows]))
    notes = ["Means over the replications; below them, the 95% intervals."] if summaries else []
    if len(rows) > len(summaries):
        notes.append(
            "A point that does not fit is one whose pools never filled on the nodes: it has "
            "no figures and no place in the plots."
        )
    parts.append(f'<p class="note">{_e(" ".join(notes))}</p>')
    partial = [
        f"<li>{_e(_point_name(s.labels))}: {_e(note)}</li>"
        for s in summaries
        if (note := s.partial_note()) is not None
    ]
    if partial:
        parts.append('<div class="warn"><ul>' + "".join(partial) + "</ul></div>")
    if not summaries:
        return "".join(parts)
    labels = point_labels([s.labels for s in summaries])
    parts.append("<h2>Comparison</h2>")
    parts.append(
        _img(
            plots.metric_plot(
                labels,
                [s.metrics.get("latency_p99") for s in summaries],
                ylabel="seconds",
                title="Delivery p99 by point",
            ),
            "p99 by point",
            "Delivery p99 per point (mean and 95% interval over replications).",
        )
    )
    parts.append(
        _img(
            plots.metric_plot(
                labels,
                [s.metrics.get("cold_share") for s in summaries],
                ylabel="% of delivered",
                title="Cold share by point",
                percent=True,
            ),
            "cold share by point",
            "Cold share per point (mean and 95% interval).",
        )
    )
    parts.append(
        _img(
            plots.latency_cdf_plot(
                [(lab, s.runs) for lab, s in zip(labels, summaries, strict=True)][:6]
            ),
            "latency CDF by point",
            "Delivery latency CDF per point (at most six points drawn).",
        )
    )
    replica_axes = [a for a in axes if a.startswith("pools") and a.endswith("replicas")]
    if replica_axes and len(axes) == 1:
        from simulator.planning.analytic import (
            arrivals_note,
            offered_rate,
            refill_estimate,
            waits_for_refill,
        )

        scenario = summaries[0].scenario
        axis = replica_axes[0]
        pool_key = _pool_of_axis(scenario, axis)
        pool = next(p for p in scenario.pools if p.key == pool_key)
        rate = offered_rate(scenario, pool)
        refill = refill_estimate(scenario.cluster.build_profile())
        measured = [
            e.mean
            for s in summaries
            if (e := s.pools.get(pool_key, {}).get("refill_s")) is not None
        ]
        # Claims that wait for a refill are never cold: Erlang-C's waiting share is theirs.
        model = "erlang-c" if waits_for_refill(scenario, pool) else "erlang-b"
        name, share, what = _PLOTTED[model]
        loads = [(f"{name}, profile refill {three_figures(refill)}s", rate * refill)]
        if measured:
            median = sorted(measured)[len(measured) // 2]
            loads.append((f"{name}, measured refill {three_figures(median)}s", rate * median))
        sizes = [int(s.labels[axis]) for s in summaries]
        parts.append(
            _img(
                plots.erlang_plot(
                    sizes,
                    [s.pools.get(pool_key, {}).get(share) for s in summaries],
                    loads,
                    title=f"{what.capitalize()} against pool size",
                    model=model,
                ),
                f"{what} against pool size",
                f"{what.capitalize()} of {pool_key} against its replicas, with {name} at "
                f"{three_figures(rate)} claims/s"
                + ("" if (note := arrivals_note(scenario, pool)) is None else f" ({note})")
                + ".",
            )
        )
    return "".join(parts)


def _point_name(labels: dict[str, object]) -> str:
    """``pools.base.replicas=8``: a point by its labels, as ``--set`` gives them."""
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "base"


def _pool_of_axis(scenario: Scenario, axis: str) -> str:
    from simulator.planning.overrides import canonical_path, split_path

    # Resolved as the override resolved it: a pool's name may hold dots
    # (``pools.web.v2.replicas``), so the part after ``pools`` is not its name.
    parts = split_path(canonical_path(scenario, axis))
    ref = parts[1] if len(parts) > 1 else 0
    if isinstance(ref, int):
        return scenario.pools[ref].key
    return scenario.pool(str(ref)).key


def _plan(plan: PlanResult, scenario: Scenario) -> str:
    goals = []
    if plan.slo is not None:
        goals.append(f"delivery {plan.slo.text}")
    if plan.max_cold is not None:
        goals.append(f"cold share <= {plan.max_cold:.2%}")
    limit = plan.failed_limit
    if limit is not None:
        # The limit applied, which a latency goal can make stricter than --max-failed.
        goals.append(f"failed share <= {limit:.2%}")
    parts = [
        "<h2>Answer</h2>",
        f"<p>Pool <code>{_e(plan.pool)}</code>, goals: {_e(', '.join(goals))}, range {plan.low}..{plan.high}.</p>",
    ]
    answer = (
        f'<span class="ok">{plan.answer} replicas</span>'
        if plan.answer is not None
        else f'<span class="bad">{_e(plan.none_found)}</span>'
    )
    parts.append(f"<p>Simulated: {answer}. Erlang: {_e(plan.analytic.describe())}.</p>")
    if plan.analytic_measured is not None:
        parts.append(
            f"<p>Erlang with the measured refill: {_e(plan.analytic_measured.describe())}.</p>"
        )
    parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in plan.explanation) + "</ul>")
    rows = []
    for size, cand in sorted(plan.candidates.items()):
        cells = [_e(size), *(_candidate_goal(g) for g in cand.goals)]
        if cand.no_claims:
            # Nothing could miss the goals: said as the terminal says it, not as a pass.
            cells.append(f'<span class="note">yes</span> {_e(f"({cand.confidence})")}')
        else:
            cells.append(
                '<span class="ok">yes</span>' if cand.meets else '<span class="bad">no</span>'
            )
        rows.append(cells)
    goal_names = (
        [label_of(g.name) for g in next(iter(plan.candidates.values())).goals]
        if plan.candidates
        else []
    )
    parts += ["<h2>Candidates</h2>", _table(["replicas", *goal_names, "meets"], rows)]
    if plan.candidates:
        sizes = sorted(plan.candidates)
        model = plan.analytic.model
        name, share, what = _PLOTTED[model]
        loads = [
            (f"{name}, profile refill {three_figures(plan.analytic.refill_s)}s", plan.analytic.load)
        ]
        if plan.analytic_measured is not None:
            loads.append(
                (
                    f"{name}, measured refill {three_figures(plan.analytic_measured.refill_s)}s",
                    plan.analytic_measured.load,
                )
            )
        # --max-cold is a goal on the cold share; claims that wait are never cold.
        goal = plan.max_cold if model == "erlang-b" else None
        parts.append(
            _img(
                plots.erlang_plot(
                    sizes,
                    [plan.candidates[s].summary.pools.get(plan.pool, {}).get(share) for s in sizes],
                    loads,
                    goal=goal,
                    title=f"{what.capitalize()} against pool size",
                    model=model,
                ),
                f"{what} against pool size",
                f"Simulated {what} of the candidates with the {name} curves"
                + (" and the goal." if goal is not None else "."),
            )
        )
        if plan.slo is not None:
            parts.append(
                _img(
                    plots.metric_plot(
                        [str(s) for s in sizes],
                        [
                            plan.candidates[s].summary.pools.get(plan.pool, {}).get(plan.slo.metric)
                            for s in sizes
                        ],
                        ylabel="seconds",
                        title=f"Delivery {plan.slo.stat} by pool size",
                        limit=plan.slo.seconds,
                    ),
                    "latency by pool size",
                    f"Delivery {plan.slo.stat} of the pool's own claims (mean and 95% interval) "
                    "at each candidate; dashed: the goal.",
                )
            )
    best = plan.best
    if best is not None:
        parts += ["<h2>At the answer</h2>", _summary_table(best.summary), _pool_table(best.summary)]
        parts.append(
            _run_plots(best.summary, best.summary.scenario, f"Plots at {best.replicas} replicas")
        )
    return "".join(parts)


def _candidate_goal(g: Goal) -> str:
    """One goal's cell in the plan's Candidates table, as the Goals table of ``simulate`` marks it.

    A goal no replication measured is ``not measured`` (a note, not a miss).
    """
    if g.estimate is None:
        return f'<span class="note">{_e(g.verdict)}</span> {_e(f"({g.confidence})")}'
    mark = "ok" if g.met else "bad"
    sure = "" if g.certain else " (uncertain)"
    return f'<span class="{mark}">{_e(fmt_estimate(g.name, g.estimate))}</span>{_e(sure)}'


def write_report(
    out_dir: Path,
    kind: str,
    scenario: Scenario,
    source: str,
    summaries: Sequence[PointSummary],
    *,
    interrupted: bool = False,
    plan: PlanResult | None = None,
    analytic: Sequence[AnalyticEstimate] = (),
    axes: Sequence[str] = (),
    goals: Sequence[Goal] = (),
    limits: Sequence[str] = (),
    rows: Sequence[PointSummary | UnfitPoint] | None = None,
) -> Path:
    """Render (see :func:`render_report`) and write ``report.html``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    text = render_report(
        kind,
        scenario,
        source,
        summaries,
        interrupted=interrupted,
        plan=plan,
        analytic=analytic,
        axes=axes,
        goals=goals,
        limits=limits,
        rows=rows,
    )
    with replacing(path) as fh:
        fh.write(text)
    return path

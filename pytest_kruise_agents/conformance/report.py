"""The results of a run: a pass/fail/skip table, a Markdown report and JUnit XML.

One :class:`Outcome` per check that ran. The terminal table uses rich when
it is installed (plain text otherwise); the Markdown report lists every
check by level with its behaviour, reference section and, for failures and
skips, what was expected and what was seen; the JUnit XML has one
``testcase`` per check (``classname`` = ``conformance.<level>``, ``name`` =
the check id) so CI systems show checks by id.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pytest_kruise_agents.conformance.registry import LEVELS, Check

__all__ = [
    "Outcome",
    "Status",
    "render_table",
    "summary_line",
    "to_junit",
    "to_markdown",
]

Status = Literal["pass", "fail", "skip"]

_LABEL: Final[dict[str, str]] = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
_STYLE: Final[dict[str, str]] = {"pass": "green", "fail": "bold red", "skip": "yellow"}


@dataclass
class Outcome:
    """How one check ended: ``status``, and for failures and skips a ``message``."""

    check: Check
    status: Status
    message: str = ""
    duration: float = 0.0


def _counts(outcomes: Sequence[Outcome]) -> Counter[str]:
    return Counter(o.status for o in outcomes)


def summary_line(outcomes: Sequence[Outcome]) -> str:
    """``"45 passed, 2 failed, 3 skipped"``."""
    n = _counts(outcomes)
    return f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"


def _plain_table(outcomes: Sequence[Outcome]) -> str:
    width = max([len(o.check.id) for o in outcomes] + [5])
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for o in outcomes:
        lines.append(f"{o.check.id:<{width}}  {_LABEL[o.status]:<6}  {o.message}".rstrip())
    return "\n".join(lines) + "\n"


def render_table(outcomes: Sequence[Outcome], *, width: int = 120, color: bool = False) -> str:
    """The pass/fail/skip table as text (rich if installed), ending with the summary line."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional for the suite itself
        return _plain_table(outcomes) + summary_line(outcomes) + "\n"
    table = Table(title="E2B conformance", title_justify="left", expand=False)
    table.add_column("Check", no_wrap=True)
    table.add_column("Level", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for o in outcomes:
        table.add_row(
            o.check.id,
            o.check.level,
            f"[{_STYLE[o.status]}]{_LABEL[o.status]}[/]",
            o.message,
        )
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, no_color=not color, highlight=False
    )
    console.print(table)
    console.print(summary_line(outcomes))
    return buf.getvalue()


def _md_cell(text: str) -> str:
    # One line; a | would end the cell and a <word> would vanish as an HTML tag.
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def to_markdown(outcomes: Sequence[Outcome], info: Mapping[str, str]) -> str:
    """The Markdown report: the run's settings, the summary, then one table per level."""
    lines = ["# E2B conformance report", ""]
    for key, value in info.items():
        lines.append(f"- **{key}**: {_md_cell(value)}")
    lines += ["", f"**Result: {summary_line(outcomes)}**", ""]
    by_level: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_level.setdefault(o.check.level, []).append(o)
    for level in LEVELS:
        rows = by_level.get(level)
        if not rows:
            continue
        n = _counts(rows)
        lines += [
            f"## {level} ({n['pass']} passed, {n['fail']} failed, {n['skip']} skipped)",
            "",
            "| Check | Result | Behaviour | Reference | Detail |",
            "|---|---|---|---|---|",
        ]
        for o in rows:
            lines.append(
                f"| `{o.check.id}` | {_LABEL[o.status]} | {_md_cell(o.check.statement)} | "
                f"{_md_cell(o.check.section)} | {_md_cell(o.message)} |"
            )
        lines.append("")
    return "\n".join(lines)


def to_junit(outcomes: Sequence[Outcome], info: Mapping[str, str]) -> str:
    """JUnit XML: one ``testsuite`` named ``e2b-conformance``, one ``testcase`` per check."""
    n = _counts(outcomes)
    suite = ET.Element(
        "testsuite",
        {
            "name": "e2b-conformance",
            "tests": str(len(outcomes)),
            "failures": str(n["fail"]),
            "errors": "0",
            "skipped": str(n["skip"]),
            "time": f"{sum(o.duration for o in outcomes):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in info.items():
        ET.SubElement(props, "property", {"name": key, "value": value})
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"conformance.{o.check.level}",
                "name": o.check.id,
                "time": f"{o.duration:.3f}",
            },
        )
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", {"name": "statement", "value": o.check.statement})
        ET.SubElement(case_props, "property", {"name": "section", "value": o.check.section})
        if o.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": o.message})
            failure.text = o.message
        elif o.status == "skip":
            ET.SubElement(case, "skipped", {"message": o.message})
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"

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
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pytest_kruise_agents.conformance.registry import LEVELS, Check

__all__ = [
    "Outcome",
    "Status",
    "clean",
    "render_table",
    "summary_line",
    "to_junit",
    "to_markdown",
    "unwritable",
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


def summary_line(outcomes: Sequence[Outcome], interrupted: str | None = None) -> str:
    """``"45 passed, 2 failed, 3 skipped"``, followed by ``interrupted`` (what to say of an
    interrupted run) as ``"...; <interrupted>"``."""
    n = _counts(outcomes)
    line = f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
    return f"{line}; {interrupted}" if interrupted else line


_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters other than tab and newlines (not allowed in XML 1.0, harmful on a terminal)."""

_NOT_TEXT: Final = re.compile("[\ud800-\udfff\ufffe\uffff]")
"""Lone surrogates and the non-characters U+FFFE/U+FFFF: legal in a JSON string (so in what a
server answers), but not in XML 1.0, and a surrogate cannot even be encoded as UTF-8."""


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(text: str) -> str:
    """``text`` with each control character (but tab and newlines) shown as ``\\xNN``, and
    each lone surrogate, U+FFFE and U+FFFF as ``\\uXXXX``: every output can hold the result."""
    return _NOT_TEXT.sub(_escape, _CONTROL.sub(_escape, text))


def _plain_table(outcomes: Sequence[Outcome]) -> str:
    width = max([len(o.check.id) for o in outcomes] + [5])
    lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
    for o in outcomes:
        lines.append(f"{o.check.id:<{width}}  {_LABEL[o.status]:<6}  {o.message}".rstrip())
    return "\n".join(lines) + "\n"


def render_table(
    outcomes: Sequence[Outcome],
    *,
    width: int = 120,
    color: bool = False,
    interrupted: str | None = None,
) -> str:
    """The pass/fail/skip table as text (rich if installed), ending with the summary line
    (see :func:`summary_line` for ``interrupted``)."""
    summary = summary_line(outcomes, interrupted)
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:  # rich is optional for the suite itself
        return clean(_plain_table(outcomes) + summary) + "\n"
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
            Text(clean(o.message)),  # Text: a [tag] in server text is not markup
        )
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, no_color=not color, highlight=False
    )
    console.print(table)
    console.print(Text(clean(summary)), style="bold red" if interrupted else None)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    # One line; a | would end the cell and a <word> would vanish as an HTML tag.
    return " ".join(clean(text).split()).replace("|", "\\|").replace("<", "&lt;")


def to_markdown(
    outcomes: Sequence[Outcome], info: Mapping[str, str], *, interrupted: str | None = None
) -> str:
    """The Markdown report: the run's settings, the summary (see :func:`summary_line` for
    ``interrupted``), then one table per level."""
    lines = ["# E2B conformance report", ""]
    for key, value in info.items():
        lines.append(f"- **{key}**: {_md_cell(value)}")
    lines += ["", f"**Result: {_md_cell(summary_line(outcomes, interrupted))}**", ""]
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


def to_junit(
    outcomes: Sequence[Outcome],
    info: Mapping[str, str],
    *,
    interrupted: Sequence[Outcome] = (),
) -> str:
    """JUnit XML: one ``testsuite`` named ``e2b-conformance``, one ``testcase`` per check.

    ``interrupted`` are the checks a Ctrl-C stopped before they ended: each is a
    ``testcase`` with an ``<error message="interrupted before it ended">``.
    Control characters of server text are shown as ``\\xNN`` (XML 1.0 cannot hold them).
    """
    n = _counts(outcomes)
    suite = ET.Element(
        "testsuite",
        {
            "name": "e2b-conformance",
            "failures": str(n["fail"]),
            "tests": str(len(outcomes) + len(interrupted)),
            "errors": str(len(interrupted)),
            "skipped": str(n["skip"]),
            "time": f"{sum(o.duration for o in [*outcomes, *interrupted]):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in info.items():
        ET.SubElement(props, "property", {"name": key, "value": clean(value)})
    for o in [*outcomes, *interrupted]:
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
        message = clean(o.message)
        if o in interrupted:
            ET.SubElement(case, "error", {"message": "interrupted before it ended"})
        elif o.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": message})
            failure.text = message
        elif o.status == "skip":
            ET.SubElement(case, "skipped", {"message": message})
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def unwritable(path: Path) -> str | None:
    """Why a report cannot be written to ``path`` (``None`` if it can).

    It is tried, not judged by permission bits (which do not bind root): the
    file is opened for appending, and removed again if it did not exist.
    """
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    if not existed:
        os.unlink(path)
    return None

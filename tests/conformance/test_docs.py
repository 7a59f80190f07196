"""``docs/conformance.md`` stays true to the suite: its catalogue and breakage table are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_kruise_agents.conformance.registry import CHECKS, LEVELS
from pytest_kruise_agents.e2b.breakage import BREAKAGES

from .test_breakages import BROKEN_CHECK

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def test_the_catalogue_lists_every_check_as_the_registry_defines_it() -> None:
    catalogue = DOC.read_text().split("\n## The checks\n", 1)[1]
    rows = [line for line in catalogue.splitlines() if line.startswith("| `")]
    wanted = []
    for check in sorted(CHECKS, key=lambda c: LEVELS.index(c.level)):  # stable: by level
        deps = ", ".join(f"`{d}`" for d in check.depends) or "-"
        wanted.append(f"| `{check.id}` | {_cell(check.statement)} | {check.section} | {deps} |")
    assert rows == wanted


def test_the_breakage_table_names_every_breakage_and_the_check_it_breaks() -> None:
    text = DOC.read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| .+ \| `([a-z.-]+)` \|$", text, re.MULTILINE))
    assert rows == BROKEN_CHECK
    assert set(rows) == set(BREAKAGES)


def test_the_counts_of_checks_the_docs_give_are_the_registrys() -> None:
    """The README's count, and the sample report's totals (a run that passes every check, its
    core section), are the number of checks the registry holds."""
    readme = (DOC.parents[1] / "README.md").read_text()
    assert f"Each of the {len(CHECKS)} checks has an id" in readme
    text = DOC.read_text()
    assert f"**Result: {len(CHECKS)} passed, 0 failed, 0 skipped**" in text
    core = sum(1 for c in CHECKS if c.level == "core")
    assert f"## core ({core} passed, 0 failed, 0 skipped)" in text


def test_the_levels_table_names_every_level_once_in_the_registrys_order() -> None:
    """docs/conformance.md's Levels table has a row per level of the registry (what
    ``--levels`` takes), in its order, and the catalogue a section per level."""
    text = DOC.read_text()
    table = text.split("\n## Levels\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z]+)` \|", table, re.MULTILINE)
    assert rows == list(LEVELS)
    catalogue = text.split("\n## The checks\n", 1)[1]
    assert re.findall(r"^### ([a-z]+)$", catalogue, re.MULTILINE) == list(LEVELS)

"""docs/plugin.md stays true to the plugin: what a user reads there exists, and what exists is read.

The quickstart (``test_quickstart.py``), the annotated example (``test_typing.py``) and the
Hypothesis one (``test_fixtures.py``) are run where they are tested; here the page's other
examples run as one downstream suite, and its tables (options, marker keywords, fixtures) and
each fixture's section are held to the code, read with :mod:`ast` where the code is the
plugin's own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pytest_kruise_agents.plugin.marker import MARKER_KEYWORDS
from pytest_kruise_agents.plugin.options import OPTIONS
from pytest_kruise_agents.plugin.reporting import JUNIT_INI

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugin.md"
PLUGIN = ROOT / "pytest_kruise_agents" / "plugin"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)


def _prose() -> str:
    """The page without its code blocks."""
    return _FENCE.sub("", DOC.read_text(encoding="utf-8"))


def _section(heading: str) -> str:
    """The prose under the heading that starts with ``heading``, up to the next heading of its
    level or above."""
    text = _prose()
    match = re.search(rf"^{re.escape(heading)}.*$", text, re.MULTILINE)
    assert match, f"plugin.md has no heading {heading!r}"
    level = len(heading.split(" ", 1)[0])
    for m in _HEADING.finditer(text, match.end()):
        if len(m.group(1)) <= level:
            return text[match.start() : m.start()]
    return text[match.start() :]


def _rows(text: str) -> list[list[str]]:
    """The cells of every table row in ``text`` (the header and separator rows included)."""
    return [
        [c.strip() for c in line.strip().split("|")[1:-1]]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def _in_backticks(name: str, text: str) -> bool:
    """Whether ``name`` is written as code in ``text`` (`` `name` ``, `` `x.name(...)` ``, ...;
    a code span may run over a line break)."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    return any(word.search(span) for span in re.findall(r"`[^`]+`", text))


# --------------------------------------------------------------------------- the examples


def test_the_fixture_examples_pass_as_a_downstream_suite(suite: pytest.Pytester) -> None:
    """Every Python example of the page that is a test, but for the quickstart's, the annotated
    one and the Hypothesis one (run by their own tests), passes as written, each in a test file
    of its own (``import pytest`` added where an example uses it without importing it, as a
    snippet may): every test of them passes, none fails, errors or is skipped."""
    blocks = [code for lang, code in _FENCE.findall(DOC.read_text(encoding="utf-8"))]
    tests = 0
    for index, code in enumerate(blocks):
        if "def test_" not in code or code.startswith(("# app.py", "# test_app.py")):
            continue
        if "from pytest_kruise_agents.plugin import" in code:
            continue  # test_typing.py runs it, with each fixture's type checked
        if "kruise_cluster_factory" in code:
            continue  # test_fixtures.py runs it, on a busy machine too
        if "pytest." in code and "import pytest" not in code:
            code = "import pytest\n" + code
        suite.path.joinpath(f"test_doc_{index}.py").write_text(code, encoding="utf-8")
        tests += len(re.findall(r"^(?:async )?def test_", code, re.MULTILINE))
    assert tests >= 10, "the page's examples were not found"
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=tests)


# --------------------------------------------------------------------------- the tables


def test_the_options_table_spells_every_option_as_the_plugin_does() -> None:
    """One row per option of the plugin, with its flag, ini key and environment variable as
    ``pytest --help`` gives them, and the marker keyword that sets it, if any."""
    rows = _rows(_section("## Configuration"))
    header = rows[0]
    assert header[:5] == ["option", "command line", "ini key", "environment", "marker"]
    table = {row[0]: row for row in rows[2:] if len(row) == len(header)}
    assert list(table) == [opt.name.replace("_", " ") for opt in OPTIONS]
    for opt in OPTIONS:
        row = table[opt.name.replace("_", " ")]
        marker = f"`{opt.name}=`" if opt.name in MARKER_KEYWORDS else "\N{EN DASH}"
        assert row[1:5] == [f"`{opt.cli}`", f"`{opt.ini}`", f"`{opt.env}`", marker], opt.name


def test_the_junit_ini_key_is_documented() -> None:
    """The ini key that is no option of the table has its own paragraph."""
    assert f"`{JUNIT_INI} = false`" in _section("### `kruise_e2b`")


def test_the_marker_table_lists_the_keywords_the_marker_takes() -> None:
    """The keyword table is the marker's keywords, in the order its error message lists them."""
    rows = _rows(_section("### The `kruise` marker"))
    assert rows[0][0] == "keyword"
    assert [row[0] for row in rows[2:]] == [f"`{k}`" for k in MARKER_KEYWORDS]


def _fixtures() -> list[str]:
    """The public fixtures the plugin defines (read from its source)."""
    tree = ast.parse((PLUGIN / "__init__.py").read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if ast.unparse(target) == "pytest.fixture":
                names.append(node.name)
    return names


def test_every_fixture_has_a_row_and_a_section() -> None:
    """The fixtures of the page's contents and of the "Annotating fixtures" table are the
    plugin's, and each has a section of its own, headed by its name."""
    fixtures = _fixtures()
    assert "kruise_e2b" in fixtures
    contents = _prose().split("- [Fixtures](#fixtures):", 1)[1].split("\n- ", 1)[0]
    assert sorted(re.findall(r"`(\w+)`", contents)) == sorted(fixtures)
    rows = _rows(_section("### Annotating fixtures"))
    assert sorted(row[0] for row in rows[2:]) == sorted(f"`{f}`" for f in fixtures)
    headings = re.findall(r"^### `(\w+)`", _prose(), re.MULTILINE)
    assert sorted(set(headings) & set(fixtures)) == sorted(fixtures)


# --------------------------------------------------------------------------- each fixture's API

SECTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("clock.py", "KruiseClock"): ("### `kruise_clock`",),
    ("clock.py", "Waited"): ("### `kruise_clock`",),
    ("faults.py", "KruiseFaults"): ("### `kruise_faults`",),
    ("faults.py", "FaultView"): ("### `kruise_faults`",),
    ("factories.py", "ClusterFactory"): ("### `kruise_cluster_factory`",),
    ("factories.py", "SandboxSetFactory"): ("### `sandboxset`",),
    ("factories.py", "SandboxClaimFactory"): ("### `sandbox_claim`",),
    ("factories.py", "E2BSandboxFactory"): ("### `e2b_sandbox`",),
    ("server.py", "KruiseE2B"): ("### `kruise_e2b`",),
    ("benchmark.py", "DeliveryBenchmark"): (
        "### `delivery_benchmark`",
        "## The delivery benchmark",
    ),
}
"""Each class a fixture gives (or whose objects it returns), and the sections that describe it."""


def _public_api(module: str, class_name: str) -> list[str]:
    """The names a user of ``class_name`` may reach: its public methods and properties and their
    parameters, its fields, and the public attributes its ``__init__`` sets."""
    tree = ast.parse((PLUGIN / module).read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    names: list[str] = []
    for item in cls.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            names.append(item.target.id)
        if not isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if item.name == "__init__":
            names += [
                target.attr
                for node in ast.walk(item)
                if isinstance(node, ast.Assign | ast.AnnAssign)
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Attribute) and not target.attr.startswith("_")
            ]
            continue
        if item.name.startswith("_") and item.name != "__call__":
            continue
        if item.name != "__call__":
            names.append(item.name)
        args = item.args
        names += [
            a.arg
            for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
            if a is not None and a.arg != "self"
        ]
    return list(dict.fromkeys(names))


@pytest.mark.parametrize(("module", "class_name"), list(SECTIONS), ids=lambda v: str(v))
def test_every_public_name_of_a_fixtures_value_is_in_its_section(
    module: str, class_name: str
) -> None:
    """A method, property, field or parameter a user can reach on the fixture's value is
    written as code in the fixture's section (a method that is named only in the source is
    one a user cannot know of, and a parameter the page does not name one it cannot pass)."""
    text = "".join(_section(heading) for heading in SECTIONS[module, class_name])
    names = _public_api(module, class_name)
    assert names or class_name == "ClusterFactory"
    missing = [name for name in names if not _in_backticks(name, text)]
    assert missing == [], f"{class_name}: not in {SECTIONS[module, class_name]}"

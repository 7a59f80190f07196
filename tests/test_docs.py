"""The concept pages in docs/ stay true to the code.

``docs/models.md`` and ``docs/profiles-and-faults.md`` are checked against the
code they describe: every name the code defines must be documented, the
documented defaults must match, and the examples must run. So are the tables
of ``docs/server.md`` (the config file, ``serve``'s options, the in-process
settings, the routes) and ``docs/conformance.md``'s options, both ways.

Python blocks are executed one by one, each in a fresh namespace. A first line
of ``# requires: cluster`` marks a block that needs the whole fake cluster (it
runs too). A first line of ``# signature`` marks a block that
shows an API's signature as a stub; it is compiled, and its parameters are
compared with the source (read with :mod:`ast`, not imported). Any other block
must not touch ``simulator.cluster``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_kruise_agents.api import keys, load_manifests, printer_columns
from pytest_kruise_agents.api.manifest import KINDS, RESOURCE_ALIASES
from pytest_kruise_agents.claiming import state
from pytest_kruise_agents.claiming.extensions import KNOWN_KEYS
from simulator.faults import FAULT_KINDS, SELECTOR_KEYS, SELECTOR_VALUES
from simulator.latency import parse_latency
from simulator.profile import DEFAULT_LATENCIES, LATENCY_DOCS, PROFILES, Profile

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MODELS = DOCS / "models.md"
PROFILES_AND_FAULTS = DOCS / "profiles-and-faults.md"

REQUIRES_CLUSTER = "# requires: cluster"
SIGNATURE = "# signature"

_FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a doc page."""

    path: Path
    line: int
    lang: str
    code: str

    @property
    def marker(self) -> str:
        return self.code.split("\n", 1)[0].strip()

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path, lang: str) -> list[Block]:
    """The fenced ``lang`` blocks of ``path``, with the line of their opening fence."""
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _FENCE.finditer(text)
        if m.group(1) == lang
    ]


def prose(path: Path) -> str:
    """The page without its code blocks (so that names are found in text and tables)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def section(path: Path, heading: str) -> str:
    """The text under ``heading`` (e.g. ``"## Knobs"``) up to the next heading of its level."""
    text = prose(path)
    start = text.find(f"\n{heading}\n")
    assert start >= 0, f"{path.name} has no section {heading!r}"
    level = len(heading.split(" ", 1)[0])
    for m in _HEADING.finditer(text, start + len(heading) + 2):
        if len(m.group(1)) <= level:
            return text[start : m.start()]
    return text[start:]


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell`` (exactly one such row)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in _CELL_SPLIT.split(line.strip())[1:-1]]
        if cells and cells[0] == first_cell:
            rows.append(cells)
    assert len(rows) == 1, f"expected one table row for {first_cell}, found {len(rows)}"
    return rows[0]


def code(value: object) -> str:
    """How a value is written in a table cell: ``repr`` in backticks."""
    return f"`{value!r}`"


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("name", list(LATENCY_DOCS))
def test_every_latency_is_documented_with_its_default(name: str) -> None:
    """Each latency name has a row in the latency table showing its default distribution."""
    row = table_row(section(PROFILES_AND_FAULTS, "## Latencies"), f"`{name}`")
    assert row[1] == f"`{DEFAULT_LATENCIES[name]}`", name
    assert row[2], f"latency {name} has no meaning"


def test_the_printed_forms_of_latencies_are_what_str_prints() -> None:
    """Each ``fixed(...)`` example of the spec syntax prints as written (and reads back)."""
    text = section(PROFILES_AND_FAULTS, "### Latency spec syntax")
    (bullet,) = [b for b in text.split("\n- ") if b.startswith("`str(distribution)`")]
    examples = re.findall(r"`(fixed\([^`]*\))`", bullet)
    assert examples
    assert [str(parse_latency(e)) for e in examples] == examples


def test_both_profiles_use_the_documented_latencies() -> None:
    """The latency table is the default table, and every built-in profile uses it."""
    assert set(DEFAULT_LATENCIES) == set(LATENCY_DOCS)
    for profile in PROFILES.values():
        assert profile.latencies == DEFAULT_LATENCIES, profile.name


@pytest.mark.parametrize("knob", Profile.knob_names())
def test_every_knob_is_documented_with_its_default(knob: str) -> None:
    """Each knob has a row with its default and, where v0.3.0 differs, that value."""
    row = table_row(section(PROFILES_AND_FAULTS, "## Knobs"), f"`{knob}`")
    field = Profile.model_fields[knob]
    assert row[1] == code(field.default), knob
    assert row[3], f"knob {knob} has no meaning"
    if knob in ("name", "description"):
        return
    head = getattr(PROFILES["openkruise-head"], knob)
    old = getattr(PROFILES["openkruise-v0.3.0"], knob)
    assert head == field.default, f"openkruise-head sets {knob}; the table assumes it does not"
    assert row[2] == (code(old) if old != head else ""), knob


def test_every_public_name_of_profiles_and_latencies_is_documented() -> None:
    """Each name ``simulator.latency`` exports and each public method of ``Profile`` (as a
    call, ``latency(``) appears in profiles-and-faults.md, written as code: what a user can
    call is told there."""
    import simulator.latency

    text = PROFILES_AND_FAULTS.read_text(encoding="utf-8")
    methods = [
        name
        for name, value in vars(Profile).items()
        if not name.startswith("_")
        and callable(getattr(Profile, name, None))
        and name not in vars(Profile.__mro__[1])
        and not isinstance(value, property)
    ]
    assert {"with_overrides", "knob_names", "latency"} <= set(methods)
    written = [rf"\b{re.escape(name)}\b" for name in simulator.latency.__all__]
    written += [rf"\b{re.escape(name)}\(" for name in methods]
    spans = re.findall(r"``?([^`\n]+)``?", text)
    missing = [w for w in written if not any(re.search(w, span) for span in spans)]
    assert missing == []


def test_every_profile_is_documented() -> None:
    """Each built-in profile is named in the profiles table."""
    text = section(PROFILES_AND_FAULTS, "## Profiles")
    for name in PROFILES:
        assert f"`{name}`" in text, name


def _fault_kind_params(description: str) -> tuple[list[str], list[str]]:
    """The selector attributes and parameters named in a FAULT_KINDS description."""
    selectors: list[str] = []
    params: list[str] = []
    inside = re.search(r"\(([^()]*)\)\s*$", description)
    for part in (inside.group(1) if inside else "").split(";"):
        head, _, rest = part.strip().partition(" ")
        if head == "selector:":
            selectors += [s.strip() for s in rest.split(",") if s.strip()]
        elif head == "param":
            params += [s.strip() for s in rest.split(",") if s.strip()]
    return selectors, params


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_every_fault_kind_is_documented(kind: str) -> None:
    """Each fault kind has a row with its selector attributes and parameters, and a mapping."""
    row = table_row(section(PROFILES_AND_FAULTS, "### Fault kinds"), f"`{kind}`")
    selectors, params = _fault_kind_params(FAULT_KINDS[kind])
    assert selectors, f"cannot read the selector of {kind} from FAULT_KINDS"
    for attr in selectors:
        assert f"`{attr}`" in row[2], f"{kind}: selector attribute {attr} not documented"
    # The keys the kind's check takes, no more and no less (FAULT_KINDS is held to them
    # in tests/simulator/test_faults.py).
    every_key = set().union(*SELECTOR_KEYS.values())
    assert {key for key in every_key if f"`{key}`" in row[2]} == SELECTOR_KEYS[kind], kind
    for param in params:
        assert f"`{param}`" in row[3], f"{kind}: parameter {param} not documented"
    mapping = section(PROFILES_AND_FAULTS, "### How the vocabulary maps to known tools")
    table_row(mapping, f"`{kind}`")


@pytest.mark.parametrize("key", [k for k in SELECTOR_VALUES if k != "controller"])
def test_the_fixed_selector_values_are_the_ones_a_fault_takes(key: str) -> None:
    """The bullet of each selector attribute with a fixed set of values (``verb``, ``kind``,
    ``client``, ``informer``) lists exactly ``SELECTOR_VALUES[key]``, in its order (the
    ``controller`` values are the stall table's, checked above)."""
    text = section(PROFILES_AND_FAULTS, "### Fault kinds")
    start = text.index(f"\n- **`{key}`**:")
    end = text.find("\n- **", start + 1)
    bullet = text[start : end if end >= 0 else None].split("\n\n")[0]
    listed = [
        value
        for line in bullet.splitlines()
        if not line.lstrip("- ").startswith("(")  # a remark, not a value
        for value in re.findall(r"`([^`]+)`", line)
        if value != key
    ]
    assert listed == list(SELECTOR_VALUES[key])


def test_every_fault_field_is_documented() -> None:
    """Each field of Fault has a row in the fault field table."""
    from simulator.faults import Fault

    text = section(PROFILES_AND_FAULTS, "## Faults")
    for name in Fault.model_fields:
        table_row(text, f"`{name}`")


def _stall_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "simulator").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        names.update(re.findall(r'^STALL_NAME\s*=\s*"([^"]+)"', source, re.MULTILINE))
        names.update(re.findall(r'_stall\(\s*"([^"]+)"\s*\)', source))
    return names


def test_every_stallable_component_is_documented() -> None:
    """Each name a component honours in controller_stall faults is listed."""
    names = _stall_names()
    assert {"sandboxset", "sandboxclaim"} <= names
    row = table_row(section(PROFILES_AND_FAULTS, "### Fault kinds"), "`controller_stall`")
    for name in sorted(names):
        assert f"`{name}`" in row[2], f"controller_stall: component {name!r} not documented"


def _signatures(tree: ast.Module, class_name: str) -> dict[str, str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                item.name: _describe(item)
                for item in node.body
                if isinstance(item, ast.FunctionDef)
            }
    raise AssertionError(f"no class {class_name}")


def _describe(fn: ast.FunctionDef) -> str:
    decorators = [ast.unparse(d) for d in fn.decorator_list]
    returns = ast.unparse(fn.returns) if fn.returns else ""
    return f"{decorators} ({ast.unparse(fn.args)}) -> {returns}"


def test_the_documented_cluster_signatures_match_the_source() -> None:
    """The ``# signature`` stub of Cluster agrees with simulator/cluster.py (read, not imported)."""
    stubs = [b for b in blocks(PROFILES_AND_FAULTS, "python") if b.marker == SIGNATURE]
    assert stubs, "profiles-and-faults.md shows no Cluster signature"
    documented = _signatures(ast.parse(stubs[0].code), "Cluster")
    source = ROOT / "simulator" / "cluster.py"
    actual = _signatures(ast.parse(source.read_text(encoding="utf-8")), "Cluster")
    for name, signature in documented.items():
        assert name in actual, f"Cluster.{name} is documented but does not exist"
        assert signature == actual[name], f"Cluster.{name}"


_DOC_CALL = re.compile(r"`(\w+)\(([^`()]*)\)`")


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every table row in ``text``."""
    return [
        [c.strip() for c in _CELL_SPLIT.split(line.strip())[1:-1]]
        for line in text.splitlines()
        if line.startswith("|")
    ]


def _documented_calls(text: str) -> list[tuple[str, list[tuple[str, bool]]]]:
    """Each ``name(a, b=, c=None)`` written in ``text``: its arguments, and whether each is a
    keyword (written with ``=``)."""
    calls = []
    for m in _DOC_CALL.finditer(text):
        arguments = [(a.split("=", 1)[0].strip(), "=" in a) for a in m.group(2).split(",")]
        calls.append((m.group(1), [(n, kw) for n, kw in arguments if n.isidentifier()]))
    return calls


def _misnamed(fn: ast.FunctionDef, arguments: list[tuple[str, bool]], positional: bool) -> set[str]:
    """The arguments ``fn`` has no parameter for (keywords ``**`` takes are its own)."""
    args = fn.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)} - {"self"}
    return {
        name
        for name, keyword in arguments
        if name not in names and ((keyword and args.kwarg is None) or (not keyword and positional))
    }


@pytest.mark.parametrize(
    ("page", "heading", "positional"),
    [
        (ROOT / "README.md", "### Python API (`simulator.cluster.Cluster`)", True),
        (PROFILES_AND_FAULTS, "## The cluster API", False),
        (PROFILES_AND_FAULTS, "## Faults", False),
    ],
)
def test_the_cluster_calls_the_docs_write_out_name_their_parameters_as_the_source(
    page: Path, heading: str, positional: bool
) -> None:
    """A call written with a keyword (``clear_faults(fault_id=None)``) uses a parameter of the
    source: one written as documented must not be a TypeError. The first column of the
    README's table of calls names the positional parameters as the source does too
    (``set_latency(name, value)``); prose may say ``inject(fault)`` of a ``Fault`` given."""
    source = ROOT / "simulator" / "cluster.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Cluster"]
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    methods["Cluster"] = methods["__init__"]
    text = section(page, heading)
    first_column = "\n".join(row[0] for row in _table_rows(text)) if positional else ""
    calls = [
        (name, arguments, strict)
        for part, strict in ((text, False), (first_column, True))
        for name, arguments in _documented_calls(part)
        if name in methods
    ]
    assert calls
    wrong = [
        f"{name}({', '.join(n for n, _ in arguments)}) names {sorted(unknown)}"
        for name, arguments, strict in calls
        if (unknown := _misnamed(methods[name], arguments, strict))
    ]
    assert wrong == [], "\n".join(wrong)


def test_every_public_call_of_the_cluster_is_in_the_readme_table() -> None:
    """Each public method and property of ``Cluster`` (read from simulator/cluster.py with
    :mod:`ast`) is named in the first column of the README's table of calls, as ``name`` or
    ``name(...)``: a call a user can make is one the table tells of."""
    source = ROOT / "simulator" / "cluster.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Cluster"]
    public = {
        f.name for f in cls.body if isinstance(f, ast.FunctionDef) and not f.name.startswith("_")
    }
    readme = section(ROOT / "README.md", "### Python API (`simulator.cluster.Cluster`)")
    first_column = " ".join(row[0] for row in _table_rows(readme))
    named = set(re.findall(r"`(\w+)(?:\(|`)", first_column))
    assert sorted(public - named) == []


# --------------------------------------------------------------------------- models


def test_every_kind_and_kubectl_name_is_documented() -> None:
    """Each kind and each name ``resolve_kind`` accepts appears in models.md."""
    text = prose(MODELS)
    for kind in KINDS:
        assert kind in text, kind
    for alias in RESOURCE_ALIASES:
        assert f"`{alias}`" in text, alias


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("## Sandbox (`sbx`)", "Sandbox"),
        ("## SandboxSet (`sbs`)", "SandboxSet"),
        ("## SandboxClaim (`sbc`)", "SandboxClaim"),
        ("## SandboxTemplate (`sbt`)", "SandboxTemplate"),
    ],
)
def test_every_spec_and_status_field_is_documented(heading: str, kind: str) -> None:
    """Each ``spec`` field of a kind (its manifest name) has a row in its section's field
    table (``scaleStrategy.maxUnavailable`` counts for ``scaleStrategy``), and each
    ``status`` field is named in the section."""
    import pytest_kruise_agents.api as api

    text = section(MODELS, heading)
    first_cells = " ".join(row[0] for row in _table_rows(text))
    documented = {name.split(".")[0] for name in re.findall(r"`([\w.]+)`", first_cells)}
    spec = getattr(api, f"{kind}Spec")
    missing = [
        f.alias or n for n, f in spec.model_fields.items() if (f.alias or n) not in documented
    ]
    status = getattr(api, f"{kind}Status", None)
    for n, f in status.model_fields.items() if status is not None else ():
        if f"`{f.alias or n}`" not in text:
            missing.append(f"status.{f.alias or n}")
    assert missing == []


def test_every_function_of_the_api_package_is_documented() -> None:
    """Each function ``pytest_kruise_agents.api`` exports (not its model classes, told by
    their field tables) and each helper of ``claiming.state`` is named in models.md."""
    import inspect

    import pytest_kruise_agents.api as api

    functions = [n for n in api.__all__ if inspect.isfunction(getattr(api, n))]
    helpers = [n for n in state.__all__ if inspect.isfunction(getattr(state, n))]
    assert "load_manifests" in functions and "sandbox_state" in helpers
    # Written as code: in a backtick span of the text (one may wrap a line), or in an example.
    written = [
        *re.findall(r"`([^`]+)`", prose(MODELS)),
        *(b.code for b in blocks(MODELS, "python")),
    ]
    named = {name for part in written for name in re.findall(r"\w+", part)}
    assert [n for n in (*functions, *helpers) if n not in named] == []


def test_every_well_known_key_is_documented() -> None:
    """Each label, annotation and reserved name of api/keys.py appears in models.md."""
    text = prose(MODELS)
    for name in keys.__all__:
        if name in ("API_VERSION", "GROUP", "BLACKLISTED_PREFIXES"):
            continue
        value = getattr(keys, name)
        assert f"`{value}`" in text, f"keys.{name} = {value!r}"
        assert f"`{name}`" in text, f"keys.{name}"


E2B_CREATE = "## E2B create: `create_sandbox` and its metadata keys"


def test_every_e2b_extension_key_is_in_the_create_table() -> None:
    """Each ``e2b.agents.kruise.io/*`` key the sandbox-manager knows has a row of its own."""
    text = section(MODELS, E2B_CREATE)
    first_cells = " ".join(row[0] for row in _table_rows(text))
    missing = [key for key in KNOWN_KEYS if f"`{key}`" not in first_cells]
    assert missing == []


def test_every_create_keyword_is_documented() -> None:
    """``create_sandbox``'s keywords are in the README's row and in the create table."""
    source = ROOT / "simulator" / "cluster.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Cluster"]
    (create,) = [
        f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "create_sandbox"
    ]
    keywords = [a.arg for a in create.args.kwonlyargs]
    readme = section(ROOT / "README.md", "### Python API (`simulator.cluster.Cluster`)")
    (row,) = [r for r in _table_rows(readme) if r[0].startswith("`create_sandbox(")]
    assert [k for k in keywords if f"{k}=" not in row[0]] == []
    table = " ".join(row[0] for row in _table_rows(section(MODELS, E2B_CREATE)))
    assert [k for k in keywords if f"`{k}" not in table] == []


def test_every_derived_state_reason_is_documented() -> None:
    """Each reason ``sandbox_state`` can return is in the derived-state table."""
    text = section(MODELS, "## Derived sandbox state")
    reasons = [getattr(state, n) for n in state.__all__ if n.startswith("REASON_")]
    assert len(reasons) == 12
    for reason in reasons:
        assert f"`{reason}`" in text, reason


@pytest.mark.parametrize(
    ("heading", "first_cell", "knob"),
    [
        ("## SandboxClaim (`sbc`)", "`templateName`", "claim_namespace_scoped"),
        ("## SandboxClaim (`sbc`)", "`annotations`", "claim_annotations_on_pod"),
        ("## Recycling: a killed sandbox back to its pool", None, "recycle_on_kill"),
    ],
)
def test_behaviour_the_built_in_profiles_differ_on_says_which_profile_does_what(
    heading: str, first_cell: str | None, knob: str
) -> None:
    """Where models.md describes what one of v0.3.0's knobs changes, it names the knob and
    both profiles (the page otherwise reads as if every profile behaved like HEAD)."""
    head, old = PROFILES["openkruise-head"], PROFILES["openkruise-v0.3.0"]
    assert getattr(head, knob) != getattr(old, knob)
    text = section(MODELS, heading)
    # The field's row, or else the section's opening paragraph.
    said = table_row(text, first_cell)[2] if first_cell else text.split("\n\n")[1]
    for name in (f"`{knob}`", "`openkruise-head`", "`openkruise-v0.3.0`"):
        assert name in said, name


_EVENT_KIND = re.compile(r"[a-z]+\.[a-z_]+")


def _logged_kinds() -> set[str]:
    """The event kinds simulator/ writes as literals: the first argument of each
    ``record(...)`` call (both branches of a conditional one, or what a variable given
    there is assigned in its module) and each ``why=`` given."""
    found: set[str] = set()

    def literal(node: ast.expr, assigned: dict[str, list[ast.expr]]) -> None:
        if isinstance(node, ast.IfExp):
            literal(node.body, assigned)
            literal(node.orelse, assigned)
        elif isinstance(node, ast.Name):
            for value in assigned.get(node.id, []):
                literal(value, {})
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _EVENT_KIND.fullmatch(node.value)
        ):
            found.add(node.value)

    for path in (ROOT / "simulator").rglob("*.py"):
        nodes = list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
        assigned: dict[str, list[ast.expr]] = {}
        for node in nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
        for node in nodes:
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "record" and node.args:
                literal(node.args[0], assigned)
            for keyword in node.keywords:
                if keyword.arg == "why":
                    literal(keyword.value, assigned)
    return found


def test_every_event_kind_is_in_the_event_log_table() -> None:
    """Each event kind the model logs (as a literal in simulator/) has its place in the
    table of models.md's event log section; the kinds made up at run time
    (``sandboxset.create_batch``, ``kubelet.resize_deferred``, ``<component>.reconcile_error``)
    are written there by hand."""
    kinds = _logged_kinds()
    assert {"manager.claim", "user.apply", "kubelet.running", "gc.orphan_deleted"} <= kinds
    text = section(MODELS, "## The event log")
    assert sorted(k for k in kinds if f"`{k}`" not in text) == []


@pytest.mark.parametrize("kind", ["Sandbox", "SandboxSet", "SandboxClaim", "Pod"])
def test_printer_columns_are_documented(kind: str) -> None:
    """The columns table lists each kind's columns, and its wide extras, in order."""
    row = table_row(section(MODELS, "## kubectl-style tables"), kind)
    assert row[1] == f"`{' '.join(printer_columns(kind))}`"
    extra = printer_columns(kind, wide=True)[len(printer_columns(kind)) :]
    assert row[2] == (f"`{' '.join(extra)}`" if extra else "—")


@pytest.mark.parametrize("block", blocks(MODELS, "yaml"), ids=lambda b: b.where)
def test_yaml_examples_load(block: Block) -> None:
    """Every YAML manifest in models.md is valid."""
    if "apiVersion:" not in block.code:
        pytest.skip("not a manifest")
    assert load_manifests(block.code)


# --------------------------------------------------------------------------- examples


PYTHON_BLOCKS = [b for path in (MODELS, PROFILES_AND_FAULTS) for b in blocks(path, "python")]


def test_there_are_examples() -> None:
    """Both pages have runnable Python examples (so that the example test checks something)."""
    for path in (MODELS, PROFILES_AND_FAULTS):
        runnable = [
            b
            for b in PYTHON_BLOCKS
            if b.path == path and b.marker not in (REQUIRES_CLUSTER, SIGNATURE)
        ]
        assert runnable, path.name


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.where)
def test_python_examples_run(block: Block) -> None:
    """Every Python block compiles; those that need no cluster run without error."""
    compiled = compile(block.code, block.where, "exec")
    if block.marker == SIGNATURE:
        return
    if block.marker != REQUIRES_CLUSTER:
        assert "simulator.cluster" not in block.code, (
            f"{block.where} uses simulator.cluster: start it with {REQUIRES_CLUSTER!r}"
        )
    exec(compiled, {"__name__": f"docs_example_{block.line}"})


def test_the_python_examples_type_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's cluster tour and every example of models.md and profiles-and-faults.md
    pass ``mypy --strict`` as written (with pydantic's plugin, as the project checks itself):
    a careful user copying one narrows what may be ``None`` or another kind, and the
    example shows how. One mypy run; its cache is kept apart from ``make typecheck``'s."""
    from tests.mypy_run import run_mypy

    readme = [b for b in blocks(ROOT / "README.md", "python") if "Cluster(seed=7)" in b.code]
    examples = [b for b in (*readme, *PYTHON_BLOCKS) if b.marker != SIGNATURE]
    files = {}
    for block in examples:
        name = f"{block.path.stem.replace('-', '_')}_{block.line}.py"
        (tmp_path / name).write_text(block.code, encoding="utf-8")
        files[name] = block.where
    (tmp_path / "mypy.ini").write_text("[mypy]\nplugins = pydantic.mypy\n")
    monkeypatch.chdir(tmp_path)  # the packages are found installed, as a user's are
    out, err, _ = run_mypy(
        [
            *("--strict", "--config-file", "mypy.ini", "--no-error-summary"),
            *("--cache-dir", str(ROOT / ".mypy_cache" / "tests-docs-examples"), *sorted(files)),
        ]
    )
    assert err == ""
    # Named by the page and line of the block, not of the temporary file.
    problems = [
        f"{files[file]} (+{line}): {message}"
        for file, line, message in (row.split(":", 2) for row in out.splitlines() if ": " in row)
        if file in files and "note:" not in message
    ]
    assert problems == []


def test_readme_example_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's Python example runs and prints the values its comments show."""
    readme = DOCS.parent / "README.md"
    (block,) = [b for b in blocks(readme, "python") if "Cluster(seed=7)" in b.code]
    exec(compile(block.code, block.where, "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "True 0.101"
    assert "base   5          5" in out


def test_readme_server_example_runs_against_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's E2B example works unchanged against ``kruise-agents serve``'s app."""
    from pytest_kruise_agents.backends import SimBackend
    from pytest_kruise_agents.e2b.app import create_app
    from pytest_kruise_agents.e2b.server import ServerThread
    from pytest_kruise_agents.e2b.settings import ApiKey, Settings

    readme = DOCS.parent / "README.md"
    (block,) = [b for b in blocks(readme, "python") if "e2b_code_interpreter" in b.code]
    backend = SimBackend.default(seed=1, replicas=2)
    key = "e2b_readme_000000000000000000000000000000000000"
    app = create_app(backend, Settings(api_keys=[ApiKey(key=key, team="default")]))
    with ServerThread(app) as server:
        monkeypatch.setenv("E2B_API_URL", server.url)
        monkeypatch.setenv("E2B_SANDBOX_URL", server.url)
        monkeypatch.setenv("E2B_API_KEY", key)
        # Each commented expression must evaluate to what its comment shows.
        namespace: dict[str, object] = {"__name__": "readme_server_example"}
        for line in block.code.splitlines():
            code, _, comment = line.partition("#")
            if not code.strip():
                continue
            expected = re.match(r"\s*('.*?')", comment)
            if expected and "=" not in code.split("(")[0]:
                value = eval(code, namespace)
                assert repr(value) == expected.group(1), (line, value)
            else:
                exec(code, namespace)
    backend.close()


# --------------------------------------------------------------------------- server, conformance


SERVER = DOCS / "server.md"
CONFORMANCE = DOCS / "conformance.md"


def _rows_by_first_cell(text: str, start: str = "`") -> dict[str, list[str]]:
    """The rows of the tables in ``text`` whose first cell starts with ``start`` (code: the
    header rows left out), by their first cell."""
    rows = [row for row in _table_rows(text) if row and row[0].startswith(start)]
    by_first = {row[0]: row for row in rows}
    assert len(by_first) == len(rows), "a first cell is given twice"
    return by_first


def _yaml_scalar(value: object) -> str:
    """How the config table writes a scalar default: as YAML writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_the_config_table_has_a_row_for_each_field_of_the_config_file() -> None:
    """Each field of ``kruise-agents serve``'s config file has a row of the table, and each
    row is a field: a field left out is a setting nobody finds, a row of no field a key the
    file refuses (``unknown field``). A scalar default is written as the table shows it;
    the fields of ``clock``, of a listed node and of an API key are in their row, and so are
    a listed node's defaults, which are not a counted node's."""
    from pytest_kruise_agents.e2b.config import (
        ApiKeyConfig,
        ClockConfig,
        ClusterConfig,
        NodeConfig,
    )

    rows = _rows_by_first_cell(section(SERVER, "## The cluster config file"))
    fields = {(f.alias or name): f for name, f in ClusterConfig.model_fields.items()}
    assert set(rows) == {f"`{name}`" for name in fields}
    for name, info in fields.items():
        default = info.get_default(call_default_factory=True)
        if name in ("sandboxsets", "apiKeys"):
            continue  # None: the defaults made when the file has none (the row says which)
        if default is None or isinstance(default, bool | int | str):
            assert rows[f"`{name}`"][1] == f"`{_yaml_scalar(default)}`", name

    def named(row: list[str], model: type[ClockConfig | NodeConfig | ApiKeyConfig]) -> list[str]:
        text = " ".join(row[1:])
        return [
            alias
            for name, info in model.model_fields.items()
            if not re.search(rf"\b{re.escape(alias := info.alias or name)}\b", text)
        ]

    clock = rows["`clock`"]
    assert named(clock, ClockConfig) == []
    for name in ("mode", "speed"):
        assert f"{name}: {ClockConfig.model_fields[name].default}" in clock[1], name
    nodes = rows["`nodes`"]
    assert named(nodes, NodeConfig) == []
    for name in ("cpu", "memory", "maxPods"):
        info = next(f for n, f in NodeConfig.model_fields.items() if (f.alias or n) == name)
        written = [f"`{name}: {info.default}`", f'`{name}: "{info.default}"`']
        assert any(w in nodes[2] for w in written), f"a listed node's default {name}"
    assert named(rows["`apiKeys`"], ApiKeyConfig) == []


def _click_command(name: str) -> Any:
    """The Click command of ``kruise-agents <name>``."""
    import typer

    from pytest_kruise_agents.cli import app

    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _long_flags(command: Any) -> dict[str, Any]:
    """Each option of ``command`` by its long flag (``--help`` left out)."""
    return {
        next(o for o in param.opts if o.startswith("--")): param
        for param in command.params
        if param.name != "help"
    }


def test_the_serve_option_table_is_the_commands_options_with_their_defaults() -> None:
    """``kruise-agents serve``'s options are the table's rows, no more and no fewer, and a
    default the command has is the one the table gives (``None``: the config's)."""
    rows = _rows_by_first_cell(section(SERVER, "## Starting it"), "`--")
    documented = {cell.strip("`").split()[0]: row for cell, row in rows.items()}
    options = _long_flags(_click_command("serve"))
    assert set(documented) == set(options)
    for flag, param in options.items():
        if param.default is not None:
            assert documented[flag][1] == f"`{param.default}`", flag
        else:
            assert "config" in documented[flag][1], flag


def _plugin_options() -> list[str]:
    """The names the conformance plugin adds its pytest options under (read with :mod:`ast`
    from its ``pytest_addoption``: its ``add(name, ...)`` calls)."""
    source = ROOT / "pytest_kruise_agents" / "conformance" / "plugin.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (hook,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "pytest_addoption"
    ]
    return [
        call.args[0].value
        for call in ast.walk(hook)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "add"
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ]


def test_the_conformance_option_table_is_the_commands_and_the_plugins_options() -> None:
    """Each option of ``kruise-agents conformance`` has a row naming its pytest twin (the
    plugin's option of the same name under ``--kruise-conformance-``) and the environment
    variable the command reads it from; the plugin has no option the table does not give."""
    from pytest_kruise_agents.conformance.plugin import OPTION_PREFIX

    rows = _rows_by_first_cell(section(CONFORMANCE, "## Running it"), "`--")
    options = _long_flags(_click_command("conformance"))
    assert set(rows) == {f"`{flag}`" for flag in options}
    plugin = _plugin_options()
    for flag, param in options.items():
        row = rows[f"`{flag}`"]
        name = flag.removeprefix("--")
        if name in plugin:
            assert row[1].startswith(f"`{OPTION_PREFIX}{name}`"), flag
        else:
            assert f"`{OPTION_PREFIX}" not in row[1], flag
        env = param.envvar
        assert row[2] == (f"`{env}`" if env else ""), flag
    assert set(plugin) <= {flag.removeprefix("--") for flag in options}
    usage = blocks(CONFORMANCE, "sh")[0].code
    assert [flag for flag in options if flag not in usage] == []


def test_the_settings_table_is_the_settings_with_their_defaults() -> None:
    """Each field of the in-process server's ``Settings`` has a row with its default, and each
    row is a field (``create_app(backend, Settings(...))``, server.md's "In a Python process")."""
    import dataclasses

    from pytest_kruise_agents.e2b.settings import Settings

    rows = _rows_by_first_cell(section(SERVER, "## In a Python process"))
    fields = [f for f in dataclasses.fields(Settings) if f.init]
    assert set(rows) == {f"`{f.name}`" for f in fields}
    for f in fields:
        assert rows[f"`{f.name}`"][1] == code(f.default), f.name


def test_the_in_process_example_serves_the_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    """server.md's in-process example runs as written, with the real SDK over HTTP, and
    prints what its comment says."""
    (block,) = [b for b in blocks(SERVER, "python") if "ServerThread(app)" in b.code]
    exec(compile(block.code, block.where, "exec"), {"__name__": "docs_in_process_example"})
    assert capsys.readouterr().out == "2\n"


def _route_table(header: str) -> set[tuple[str, str]]:
    """``(method, path)`` of each row of server.md's table under the header row ``header``."""
    text = SERVER.read_text(encoding="utf-8")
    start = text.index(f"\n{header}\n")
    table = text[start + 1 :].split("\n\n", 1)[0]
    return {(row[0], row[1].strip("`")) for row in _table_rows(table)[2:]}


def _paths_as_documented(route: Any) -> set[tuple[str, str]]:
    path = route.path.replace("{sandboxID}", "{id}").replace("{templateID}", "{id}")
    return {(method, path) for method in route.methods - {"HEAD"}}


def test_the_route_tables_are_the_served_routes() -> None:
    """The control plane's table lists the routes served natively (each served under
    ``/kruise/api`` too), ``/health`` and ``/metrics``, and no other; the admin API's table
    lists its routes and no other (tests/e2b/test_admin.py asks only the one way)."""
    from fastapi.routing import APIRoute

    from pytest_kruise_agents.e2b import admin, control

    served = {
        pair
        for route in control.router.routes
        if isinstance(route, APIRoute)
        for pair in _paths_as_documented(route)
    }
    served |= {("GET", "/health"), ("GET", "/metrics")}
    assert _route_table("| method | path | success | notes |") == served
    admin_routes = {
        pair
        for route in admin.router.routes
        if isinstance(route, APIRoute)
        for pair in _paths_as_documented(route)
    }
    assert _route_table("| method | path | body / query | answer |") == admin_routes


@pytest.mark.parametrize(
    ("written", "target"),
    [
        ("SimBackend.default", "pytest_kruise_agents.backends.sim:SimBackend.default"),
        ("ServerThread", "pytest_kruise_agents.e2b.server:ServerThread"),
    ],
)
def test_the_in_process_calls_show_their_parameters_and_defaults(written: str, target: str) -> None:
    """The calls server.md's "In a Python process" writes out with their defaults name every
    keyword parameter of the source (``**config`` aside), each with its default."""
    import importlib
    import inspect

    module, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    text = " ".join(section(SERVER, "## In a Python process").split())
    (call,) = re.findall(rf"`{re.escape(written)}\(([^`]*)\)`", text)
    node = ast.parse(f"f({call})", mode="eval").body
    assert isinstance(node, ast.Call)
    shown = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    parameters = inspect.signature(obj).parameters.values()
    defaults = {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    }
    assert shown == defaults

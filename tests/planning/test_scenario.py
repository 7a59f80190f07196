"""Scenario files: what they accept, and one clear error (file, line, field path, reason) for what they refuse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from simulator.planning.arrivals import BurstArrivals, DiurnalArrivals, TraceArrivals, TraceRow
from simulator.planning.errors import ScenarioError
from simulator.planning.loading import load_scenario, parse_scenario, shipped_scenarios
from simulator.planning.overrides import (
    apply_overrides,
    canonical_path,
    parse_axis,
    parse_value,
    split_path,
)
from simulator.planning.scenario import MAX_SAMPLES_PER_RUN, PoolSpec, Scenario

from .conftest import SCENARIOS, TINY


def _error(text: str, tmp_path: Path, name: str = "bad.yaml") -> ScenarioError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_is_valid(path: Path) -> None:
    """Each file in scenarios/ loads, is named after its file, and has a description."""
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.description


def test_shorthand_pool_and_rates_in_any_unit(tiny: Scenario) -> None:
    """Shorthand pools become SandboxSets; '120/min' is 2 per second; durations read as Go durations."""
    text = TINY.replace("rate: 2", "rate: 120/min").replace("duration: 40s", "duration: 2m")
    scenario = parse_scenario(text)
    assert scenario.workloads[0].arrivals.rate == 2.0  # type: ignore[union-attr]
    assert scenario.duration == 120.0
    sbs = scenario.pools[0].sandboxset()
    assert (sbs.metadata.name, sbs.spec.replicas) == ("base", 4)
    assert scenario.horizon == 125.0


def test_error_names_file_line_path_and_reason(tmp_path: Path) -> None:
    """A bad rate is refused with the file, its line, the field path and why."""
    err = _error(TINY.replace("rate: 2", "rate: -1"), tmp_path)
    assert err.source.endswith("bad.yaml")
    assert err.path == "workloads[0].arrivals.rate"
    assert err.line == 11  # the line of "arrivals: {kind: poisson, rate: -1}"
    assert "must be > 0" in err.reason
    assert str(err).startswith(f"{err.source}:11: workloads[0].arrivals.rate: must be > 0")


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        ("rate: 2", "rat: 2", "workloads[0].arrivals.rat", "unknown field (did you mean 'rate'?)"),
        ("kind: poisson", "kind: poison", "workloads[0].arrivals", "unknown kind 'poison'"),
        ("template: base", "template: other", "workloads[0].template", "no pool default/other"),
        ("{name: base, replicas: 4}", "{name: base}", "pools[0].replicas", "required value"),
        (
            "{name: base, replicas: 4}",
            "{name: base, replicas: 4, image: 'Not An Image'}",
            "pools[0].image",
            "not a valid image reference",
        ),
        (
            "{name: base, replicas: 4}",
            "{name: base, replicas: 4, cpu: lots}",
            "pools[0].cpu",
            "invalid quantity",
        ),
        (
            "{name: base, replicas: 4}",
            "{name: base, replicas: 4, cpu: '1', cpu_limit: 500m}",
            "pools[0].cpu_limit",
            "below the CPU request '1'",
        ),
        (
            "hold: exp(10s)",
            "hold: exp(10s)\n    claim: {cpu_request: '-1'}",
            "workloads[0].claim.cpu_request",
            "must be a positive CPU quantity",
        ),
        ("duration: 40s", "duration: 40 parsecs", "duration", "invalid duration"),
        ("{nodes: 2}", "{nodes: many}", "cluster.nodes", "must be an integer or a list"),
        ("{nodes: 2}", "{nodes: [{cpu: lots}]}", "cluster.nodes[0].cpu", "invalid quantity"),
        ("{nodes: 2}", "{profile: head}", "cluster.profile", "unknown profile 'head'"),
        # Past MAX_NODES (5000) the nodes' pod ranges and host IPs are no addresses.
        (
            "{nodes: 2}",
            "{nodes: 5001}",
            "cluster.nodes",
            "must be at most 5000 (Kubernetes' supported cluster size), got 5001",
        ),
        (
            "{nodes: 2}",
            "{nodes: [{name: a, count: 3000}, {name: b, count: 3000}]}",
            "cluster.nodes",
            "must list at most 5000 nodes (Kubernetes' supported cluster size), got 6000 "
            "(the groups' counts added up)",
        ),
        ("{nodes: 2}", "{nodes: [{count: 5001}]}", "cluster.nodes[0].count", "5000"),
        (
            "{nodes: 2}",
            "{knobs: {create_qpz: 5}}",
            "cluster.knobs.create_qpz",
            "did you mean 'create_qps'",
        ),
        (
            "{nodes: 2}",
            "{knobs: {expectation_timeout_s: .inf}}",
            "cluster.knobs.expectation_timeout_s",
            "must be a number of seconds over 0, at most 3153600000 (100 years), got inf",
        ),
        (
            "{nodes: 2}",
            "{latencies: {image.pull: 'gamma(1s)'}}",
            "cluster.latencies['image.pull']",
            "unknown distribution 'gamma'",
        ),
        ("hold: exp(10s)", "hold: exp(-1s)", "workloads[0].hold", "invalid latency"),
        ("replications: 2", "replications: 0", "replications", "must be >= 1"),
        ("replications: 2", "replications: 10001", "replications", "must be <= 10000, got 10001"),
        (
            "hold: exp(10s)",
            "hold: exp(10s)\n    claim: {path: sandboxclaim, replicas: 1001}",
            "workloads[0].claim.replicas",
            "must be <= 1000, got 1001",
        ),
        ("max_cold: 5%}", "max_cold: 500%}", "goals.max_cold", "must be in [0, 1)"),
        ("{slo: p99<1s", "{slo: p99>1s", "goals.slo", "cannot read 'p99>1s'"),
        (
            "goals:",
            "faults:\n  - {kind: watch_lag, latency: 1s, selector: {informer: manager}}\ngoals:",
            "faults[0].selector",
            "informer='manager' names nothing",
        ),
        (
            "goals:",
            "faults:\n  - {kind: api_latency, start: 5s}\ngoals:",
            "faults[0].latency",
            "needs a latency",
        ),
        (
            "goals:",
            "faults:\n  - {kind: api_error, code: 200}\ngoals:",
            "faults[0].code",
            "answers 429 or a 5xx status, got 200",
        ),
        (
            "goals:",
            "faults:\n  - {kind: api_error, probability: .nan}\ngoals:",
            "faults[0].probability",
            "must be a number between 0 and 1, got nan",
        ),
        (
            "goals:",
            "faults:\n  - {kind: runtime_init_failure, code: 302}\ngoals:",
            "faults[0].code",
            "answers a 4xx or 5xx status, got 302",
        ),
        (
            "goals:",
            "faults:\n  - {kind: node_loss, start: 5s, selector: {node: node-9}}\ngoals:",
            "faults[0].selector.node",
            "no node named 'node-9' (nodes: node-1, node-2)",
        ),
        (
            "goals:",
            "faults:\n  - {kind: api_error, selector: {client: kubelet/node-3}}\ngoals:",
            "faults[0].selector.client",
            "no node named 'node-3' (nodes: node-1, node-2)",
        ),
    ],
)
def test_each_bad_field_is_named(
    old: str, new: str, path: str, reason: str, tmp_path: Path
) -> None:
    """Every kind of mistake points at its field."""
    assert old in TINY
    err = _error(TINY.replace(old, new), tmp_path)
    assert err.path == path
    assert reason in err.reason
    assert err.line is not None


def test_a_fault_may_name_any_node_of_the_cluster() -> None:
    """Node names follow the node groups (``<group>-<n>``); a fault naming one of them is fine."""
    groups = TINY.replace("{nodes: 2}", "{nodes: [{name: small, count: 1}, {name: big, count: 2}]}")
    text = groups.replace(
        "goals:", "faults:\n  - {kind: node_loss, start: 5s, selector: {node: big-2}}\ngoals:"
    )
    assert parse_scenario(text).faults[0].selector == {"node": "big-2"}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text.replace("big-2", "big-3"))
    assert info.value.path == "faults[0].selector.node"
    assert info.value.reason == "no node named 'big-3' (nodes: small-1, big-1, big-2)"


def test_cross_field_errors(tmp_path: Path) -> None:
    """Pools defined twice, E2B-only options on the SandboxClaim path, bad sweeps."""
    twice = TINY.replace(
        "  - {name: base, replicas: 4}",
        "  - {name: base, replicas: 4}\n  - {name: base, replicas: 2}",
    )
    assert _error(twice, tmp_path).path == "pools[1].name"
    sbc = TINY.replace(
        "hold: exp(10s)", "hold: exp(10s)\n    claim: {path: sandboxclaim, auto_pause: true}"
    )
    err = _error(sbc, tmp_path)
    assert (err.path, err.reason) == (
        "workloads[0].claim.auto_pause",
        "an E2B option (needs path: e2b)",
    )
    e2b = TINY.replace("hold: exp(10s)", "hold: exp(10s)\n    claim: {replicas: 3}")
    assert _error(e2b, tmp_path).path == "workloads[0].claim.replicas"
    sweep = TINY + "sweep:\n  pools.base.replicas: [2, -1]\n"
    err = _error(sweep, tmp_path)
    assert err.path == "sweep['pools.base.replicas']"
    assert "value -1: pools[0].replicas: must be >= 0" in err.reason
    empty = TINY + "sweep:\n  duration: [10s]\n  pools.base.replicas: []\n"
    err = _error(empty, tmp_path)
    assert (err.path, err.reason) == (
        "sweep['pools.base.replicas']",
        "must list at least one value",
    )
    assert err.line == TINY.count("\n") + 3  # the empty list's own line, as every error has one


def test_yaml_errors(tmp_path: Path) -> None:
    """Malformed YAML, duplicate keys and a non-mapping document are refused with their line."""
    err = _error("name: a\nduration: [1,\n", tmp_path)
    assert "invalid YAML" in err.reason
    assert err.line == 3
    err = _error(TINY + "seed: 5\n", tmp_path)
    assert "duplicate key 'seed'" in err.reason
    assert "must be a mapping" in _error("- just\n- a list\n", tmp_path).reason
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    "name", ["trace-replay", "trace-replay.yaml", "scenarios/trace-replay.yaml"]
)
def test_a_shipped_scenario_is_found_by_name_from_anywhere(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the docs write them, from any directory (an installed wheel has no scenarios/ in
    the working directory): the shipped file, its traces read beside it."""
    monkeypatch.chdir(tmp_path)
    assert set(shipped_scenarios()) == {p.stem for p in SCENARIOS.glob("*.yaml")}
    scenario = load_scenario(name)
    assert scenario.name == "trace-replay"


def test_a_file_in_the_working_directory_wins_over_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "steady.yaml").write_text(TINY)
    assert load_scenario("steady.yaml").name == load_scenario(tmp_path / "steady.yaml").name
    assert load_scenario("steady.yaml").name != load_scenario("scenarios/steady.yaml").name


def test_a_missing_file_lists_the_shipped_names(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"shipped scenarios, by name: burst-255, .*steady"):
        load_scenario("stedy")


def test_an_empty_scenario_name_is_refused_naming_the_argument() -> None:
    """``""`` is no file (``Path("")`` reads as the current directory): not ``: cannot read
    the file: Is a directory``, but the argument and the reason."""
    with pytest.raises(
        ScenarioError, match=r"^scenario: must not be empty \(a scenario file, or a shipped"
    ):
        load_scenario("")


def test_the_wheel_ships_the_scenarios_and_both_packages_typed() -> None:
    """pyproject puts scenarios/ inside simulator.planning, where :func:`shipped_scenarios`
    looks first; both packages carry py.typed (their API is typed for mypy users)."""
    root = SCENARIOS.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"] == {"scenarios": "simulator/planning/scenarios"}
    for package in wheel["packages"]:
        assert (root / package / "py.typed").is_file()


def test_manifest_pools(tmp_path: Path) -> None:
    """A pool may be Kubernetes YAML; its problems are reported inside the manifest field."""
    manifest = """\
  - manifest: |
      apiVersion: agents.kruise.io/v1alpha1
      kind: SandboxSet
      metadata: {name: base, namespace: default}
      spec:
        replicas: 7
        template:
          spec:
            containers: [{name: c, image: registry.example.com/x:v1}]
"""
    text = TINY.replace("  - {name: base, replicas: 4}\n", manifest)
    scenario = parse_scenario(text)
    assert (scenario.pools[0].name, scenario.pools[0].replicas) == ("base", 7)
    bad = text.replace("replicas: 7", "replicas: seven")
    err = _error(bad, tmp_path)
    assert err.path == "pools[0].manifest"
    assert "SandboxSet/base spec.replicas" in err.reason
    # Only the pool is applied: a templateRef's SandboxTemplate would never exist.
    by_ref = text.replace(
        "        template:\n          spec:\n"
        "            containers: [{name: c, image: registry.example.com/x:v1}]\n",
        "        templateRef: {name: python}\n",
    )
    assert "templateRef" in by_ref
    err = _error(by_ref, tmp_path)
    assert err.path == "pools[0].manifest"
    assert err.reason.startswith("spec.templateRef ('python') is not supported in scenarios")


def test_trace_rows_and_their_errors(tmp_path: Path) -> None:
    """Trace rows are read relative to the scenario; a bad row names the CSV file, line and column."""
    (tmp_path / "t.csv").write_text("time,template,hold\n1.5,base,30s\n0.5,,\n")
    text = TINY.replace(
        "arrivals: {kind: poisson, rate: 2}", "arrivals: {kind: trace, file: t.csv}"
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    arrivals = load_scenario(path).workloads[0].arrivals
    assert isinstance(arrivals, TraceArrivals)
    assert [(r.time, r.template, r.hold) for r in arrivals.rows] == [
        (0.5, None, None),
        (1.5, "base", 30.0),
    ]
    (tmp_path / "t.csv").write_text("time,template,hold\n1.5,base,30s\n2,base,soon\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.source, info.value.line, info.value.path) == (
        str(tmp_path / "t.csv"),
        3,
        "hold",
    )
    (tmp_path / "t.csv").write_text("time,template\n1,nope\n")
    with pytest.raises(
        ScenarioError,
        match=r"workloads\[0\]\.arrivals\.file: trace row at 1s claims from default/nope",
    ):
        load_scenario(path)
    (tmp_path / "t.csv").unlink()
    with pytest.raises(ScenarioError, match=r"cannot read trace"):
        load_scenario(path)


def test_overrides_by_path() -> None:
    """--set paths reach list items by index or by name, and latency names keep their dots."""
    base = parse_scenario(TINY)
    changed = apply_overrides(
        base,
        [
            ("pools.base.replicas", 9),
            ("workloads[0].arrivals.rate", "3/s"),
            ("cluster.latencies.image.pull", "exp(1s)"),
        ],
    )
    assert changed.pools[0].replicas == 9
    assert changed.workloads[0].arrivals.rate == 3.0  # type: ignore[union-attr]
    assert changed.cluster.latencies == {"image.pull": "exp(1s)"}
    assert base.pools[0].replicas == 4  # the original is untouched
    assert split_path("cluster.latencies.api.create") == ["cluster", "latencies", "api.create"]
    axis = parse_axis("cluster.latencies.pod.create=uniform(1s, 2s),exp(3s)")
    assert axis.values == ("uniform(1s, 2s)", "exp(3s)")
    assert parse_axis("pools[0].replicas=1,2,3").values == (1, 2, 3)


def test_a_quoted_override_value_is_one_value_commas_and_all() -> None:
    """A comma inside a quoted string does not separate values; an apostrophe opens nothing."""
    assert parse_axis('description="Hello, world"').values == ("Hello, world",)
    assert parse_axis("description='it''s, ok',x").values == ("it's, ok", "x")
    assert parse_axis('description="a\\", b",c').values == ('a", b', "c")
    assert parse_axis("description=it's,ok").values == ("it's", "ok")


@pytest.mark.parametrize("value", ['"Hello', "'it", "{a", "a: b: c", "*nope"])
def test_an_override_value_yaml_cannot_read_is_refused_naming_the_option(value: str) -> None:
    """Text YAML cannot read is refused, the option named as typed, not taken as it stands."""
    with pytest.raises(ScenarioError) as info:
        parse_axis(f"description={value}")
    assert info.value.source == f"--set description={value}"
    assert info.value.path == "description"
    assert f"cannot read {value!r} as a YAML value" in info.value.reason


@pytest.mark.parametrize("text", ["workloads.base.user=", "pools.base.replicas=1,,2", "seed=3,"])
def test_an_empty_override_value_is_refused_naming_the_option(text: str) -> None:
    """An empty value (``--set workloads.base.user=``) is refused naming the option as typed, as
    every refused override is (docs/planning.md); before, the message named only ``--set``."""
    with pytest.raises(ScenarioError) as info:
        parse_axis(text)
    assert str(info.value) == f"--set {text}: {text.split('=')[0]}: empty value"


@pytest.mark.parametrize(
    ("path", "value", "where", "reason"),
    [
        ("pools.nope.replicas", 3, "pools.nope.replicas", "no item named 'nope'"),
        ("pools[5].replicas", 3, "pools[5].replicas", "index 5 out of range"),
        ("pools.base.replicas", -2, "pools[0].replicas", "must be >= 0"),
        ("workloads[0].arrivals.rate", "fast", "workloads[0].arrivals.rate", "expected a rate"),
        (
            "faults",
            [{"kind": "pod_kill", "selector": {"node": "big-1"}}],
            "faults[0].selector.node",
            "no node named 'big-1' (nodes: node-1, node-2)",
        ),
    ],
)
def test_bad_overrides_are_named(path: str, value: object, where: str, reason: str) -> None:
    """A bad --set names itself, the field and the reason; the scenario is left as it was."""
    base = parse_scenario(TINY)
    with pytest.raises(ScenarioError) as info:
        apply_overrides(base, [(path, value)])
    assert info.value.source.startswith("--set")
    assert info.value.path == where
    assert reason in info.value.reason


def test_a_bad_override_among_several_names_itself_alone() -> None:
    """Of several overrides, the error names the one that set the refused field, as typed."""
    base = parse_scenario(TINY)
    sets = [("duration", "2m"), ("pools.base.replicas", -3), ("replications", 2)]
    with pytest.raises(ScenarioError) as info:
        apply_overrides(base, sets)
    assert (
        str(info.value) == "--set pools.base.replicas=-3: pools[0].replicas: must be >= 0, got -3"
    )
    typed = ["--set duration=2m", "--set pools.base.replicas=4", "--seed -5"]
    with pytest.raises(ScenarioError) as info:
        apply_overrides(
            base, [("duration", "2m"), ("pools.base.replicas", 4), ("seed", -5)], typed=typed
        )
    assert str(info.value) == "--seed -5: seed: must be >= 0, got -5"


@pytest.mark.parametrize(
    ("timeout", "reason"),
    [
        (2592001, "must be <= 2592000, got 2592001"),
        (10**9, "must be <= 2592000"),
        (45.2, "must be a whole number of seconds, got 45.2"),
        ("1.5s", "must be >= 30"),
    ],
)
def test_a_claim_timeout_the_create_would_refuse_is_refused_at_load(
    timeout: object, reason: str
) -> None:
    """The E2B create takes 30 s to 30 days, in whole seconds: a scenario may not ask more.

    Past 30 days the timeout was cut to 30 days without a word, and 45.2 became 46, where
    every path of the create answers 400 (or refuses a fraction).
    """
    base = parse_scenario(TINY)
    with pytest.raises(ScenarioError) as info:
        apply_overrides(base, [("workloads[0].claim.timeout", timeout)])
    assert info.value.path == "workloads[0].claim.timeout"
    assert reason in info.value.reason
    for fine in (30, "10m", 2592000):
        assert apply_overrides(base, [("workloads[0].claim.timeout", fine)])


@pytest.mark.parametrize(
    ("text", "value"), [("n", False), ("y", True), ("1:30", "1:30"), ("1e3", 1000.0), ("08", 8.0)]
)
def test_an_override_value_reads_as_the_file_reads_it(text: str, value: object) -> None:
    """``--set`` values go through the scenario file's reader (go-yaml's rules): ``1:30`` was
    90 after ``--set`` and text in the file, ``n`` the text 'n' after ``--set`` and false in
    the file."""
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def _override(text: str) -> Scenario:
    """The tiny scenario with one ``--set`` as the command line reads it (``path=value``)."""
    axis = parse_axis(text)
    (value,) = axis.values
    return apply_overrides(parse_scenario(TINY), [(axis.path, value)])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        # pydantic alone reads true as 1 and false as 0.
        (
            "pools.base.replicas=true",
            "--set pools.base.replicas=true: pools[0].replicas: "
            "must be an integer, got the boolean true",
        ),
        ("seed=false", "--set seed=false: seed: must be an integer, got the boolean false"),
        (
            "cluster.nodes=true",
            "--set cluster.nodes=true: cluster.nodes: "
            "must be an integer or a list, got the boolean true",
        ),
        (
            "cluster.knobs.create_qps=true",
            "--set cluster.knobs.create_qps=true: cluster.knobs.create_qps: "
            "must be a number, got the boolean true",
        ),
        (
            "goals.max_cold=true",
            "--set goals.max_cold=true: goals.max_cold: "
            "must be a string or a number, got the boolean true",
        ),
        # ... and 1 or 'yes' as true.
        ("claims_csv=1", "--set claims_csv=1: claims_csv: must be a boolean, got 1"),
        (
            "workloads[0].claim.create_on_no_stock='yes'",
            "--set workloads[0].claim.create_on_no_stock='yes': "
            "workloads[0].claim.create_on_no_stock: must be a boolean, got the text 'yes'",
        ),
        # ... and quoted digits as a number, 3.0 as the integer 3.
        (
            "pools.base.replicas='3'",
            "--set pools.base.replicas='3': pools[0].replicas: must be an integer, got the text '3'",
        ),
        (
            "cluster.knobs.claim_workers='5'",
            "--set cluster.knobs.claim_workers='5': cluster.knobs.claim_workers: "
            "must be an integer, got the text '5'",
        ),
        (
            "pools.base.replicas=3.0",
            "--set pools.base.replicas=3.0: pools[0].replicas: must be an integer, got 3.0",
        ),
        (
            "pools.base.replicas=1.5",
            "--set pools.base.replicas=1.5: pools[0].replicas: must be an integer, got 1.5",
        ),
    ],
)
def test_an_override_keeps_the_kind_yaml_gives_it(option: str, message: str) -> None:
    """A boolean is no number, a number no boolean, quoted digits no number: one error, nothing set."""
    with pytest.raises(ScenarioError) as info:
        _override(option)
    assert str(info.value) == message


def test_fields_that_take_text_still_take_it() -> None:
    """Durations, rates and latencies read text; quantities read numbers too (as Kubernetes does)."""
    assert _override("duration='30'").duration == 30.0
    arrivals = _override("workloads[0].arrivals.rate='120/min'").workloads[0].arrivals
    assert arrivals.rate == 2.0  # type: ignore[union-attr]
    assert _override("cluster.latencies.image.pull='3'").cluster.latencies == {"image.pull": "3"}
    assert _override("pools.base.cpu=2").pools[0].cpu == "2"
    assert _override("pools.base.memory=1073741824").pools[0].memory == "1073741824"
    assert _override("workloads[0].claim.cpu_request=0.5").workloads[0].claim.cpu_request == "0.5"
    assert _override("cluster.knobs.create_qps=5").cluster.build_profile().create_qps == 5.0


def test_a_scenario_file_keeps_the_kinds_too(tmp_path: Path) -> None:
    """The file is read as an override is: ``replicas: true`` is refused where it is written."""
    err = _error(TINY.replace("replicas: 4}", "replicas: true}"), tmp_path)
    assert (err.path, err.line) == ("pools[0].replicas", 8)
    assert err.reason == "must be an integer, got the boolean true"
    err = _error(
        TINY.replace("hold: exp(10s)", "hold: exp(10s)\n    claim: {csi_mounts: '1'}"), tmp_path
    )
    assert (err.path, err.reason) == (
        "workloads[0].claim.csi_mounts",
        "must be an integer, got the text '1'",
    )
    bursts = "{kind: bursts, bursts: [{at: 1s, count: true}]}"
    err = _error(TINY.replace("{kind: poisson, rate: 2}", bursts), tmp_path)
    assert (err.path, err.reason) == (
        "workloads[0].arrivals.bursts[0].count",
        "must be an integer, got the boolean true",
    )


def test_shortened_scales_times_and_counts() -> None:
    """Shortening scales durations, burst times and counts, pool sizes and the diurnal day; not rates."""
    scenario = load_scenario(SCENARIOS / "burst-255.yaml")
    short = scenario.shortened(0.01)
    assert short.duration == pytest.approx(1.8)
    assert short.pools[0].replicas == 30
    bursts = short.workloads[0].arrivals
    assert isinstance(bursts, BurstArrivals)
    assert (bursts.bursts[0].at, bursts.bursts[0].count, bursts.bursts[0].over) == pytest.approx(
        (0.3, 100, 0.6)
    )
    day = load_scenario(SCENARIOS / "diurnal.yaml").shortened(0.1).workloads[0].arrivals
    assert isinstance(day, DiurnalArrivals)
    assert day.period == pytest.approx(360.0)
    assert scenario.pools[0].replicas == 3000  # the original is untouched
    # Never below a run's worth: at least 1 s of duration, 1 replica and a 1 s fault window.
    tiny = load_scenario(SCENARIOS / "node-loss.yaml").shortened(0.0001)
    assert tiny.duration == 1.0 and all(p.replicas == 1 for p in tiny.pools)
    assert all(f.duration is None or f.duration == 1.0 for f in tiny.faults)
    assert any(f.duration == 1.0 for f in tiny.faults)
    # The drain is not shortened: claims in flight may still finish (10 min by default).
    assert tiny.drain == scenario.drain == 600.0


def _trace_scenario(tmp_path: Path) -> Path:
    """The tiny scenario replaying ``t.csv`` (two rows), from a folder of its own."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "t.csv").write_text("time,template\n1,base\n2,base\n")
    (folder / "u.csv").write_text("time,template\n1,base\n2,base\n3,base\n4,base\n")
    path = folder / "s.yaml"
    path.write_text(
        TINY.replace("arrivals: {kind: poisson, rate: 2}", "arrivals: {kind: trace, file: t.csv}")
    )
    return path


def test_an_override_of_a_trace_file_replays_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--set (or a sweep) of ``arrivals.file`` reads that file, relative to the scenario file.

    Before, the rows of the old file were kept, so the old trace was replayed
    and a missing file went unnoticed.
    """
    monkeypatch.chdir(tmp_path)  # not the scenario's folder: the file is found beside the scenario
    scenario = load_scenario(_trace_scenario(tmp_path))
    changed = apply_overrides(scenario, [("workloads[0].arrivals.file", "u.csv")])
    arrivals = changed.workloads[0].arrivals
    assert isinstance(arrivals, TraceArrivals)
    assert [r.time for r in arrivals.rows] == [1.0, 2.0, 3.0, 4.0]
    # Another field changed: the rows already read are kept (a shortened trace stays short).
    short = scenario.shortened(0.5)
    kept = apply_overrides(short, [("pools.base.replicas", 2)]).workloads[0].arrivals
    assert kept == short.workloads[0].arrivals
    with pytest.raises(ScenarioError) as info:
        apply_overrides(scenario, [("workloads[0].arrivals.file", "nope.csv")])
    assert str(info.value).startswith(
        "--set workloads[0].arrivals.file=nope.csv: workloads[0].arrivals.file: cannot read trace"
    )
    assert "nope.csv" in info.value.reason
    (tmp_path / "scenarios" / "bad.csv").write_text("time\n1\nsoon\n")
    with pytest.raises(ScenarioError, match=r"^--set .*bad\.csv:3: time: "):
        apply_overrides(scenario, [("workloads[0].arrivals.file", "bad.csv")])


def test_a_sweep_of_a_missing_trace_file_is_refused_at_load(tmp_path: Path) -> None:
    """The scenario's own sweep names a trace file that does not exist: refused when loaded."""
    path = _trace_scenario(tmp_path)
    path.write_text(path.read_text() + 'sweep: {"workloads[0].arrivals.file": [u.csv, gone.csv]}\n')
    with pytest.raises(ScenarioError, match=r"value 'gone\.csv': .*cannot read trace"):
        load_scenario(path)


def test_a_workload_is_labelled_by_its_template_unless_named() -> None:
    """``name`` defaults to the template, also after an override of the template; a given name stays."""
    two = TINY.replace(
        "  - {name: base, replicas: 4}",
        "  - {name: base, replicas: 4}\n  - {name: other, replicas: 2}",
    )
    scenario = parse_scenario(two)
    assert scenario.workloads[0].label == "base"
    moved = apply_overrides(scenario, [("workloads[0].template", "other")])
    assert moved.workloads[0].label == "other"
    named = apply_overrides(scenario, [("workloads[0].name", "chat")])
    assert apply_overrides(named, [("workloads[0].template", "other")]).workloads[0].label == "chat"


@pytest.mark.parametrize("name", ["1", "007", "1.5", "yes", "null"])
def test_a_shorthand_pool_keeps_a_numeric_looking_name_a_string(name: str) -> None:
    """A pool named ``007`` or ``yes`` is that name, not the number or boolean YAML would read."""
    pool = PoolSpec(name=name, namespace="007", replicas=1, cpu="1", cpu_limit="2")
    sbs = pool.sandboxset()
    assert (sbs.metadata.name, sbs.metadata.namespace) == (name, "007")
    assert pool.key == f"007/{name}"


@pytest.mark.parametrize(
    ("arrivals", "where"),
    [
        ("{kind: poisson, rate: 1e20}", "workloads[0].arrivals.rate"),
        ("{kind: constant, rate: 1e9}", "workloads[0].arrivals.rate"),
        (
            "{kind: bursts, bursts: [{at: 1s, count: 1000000000000}]}",
            "workloads[0].arrivals.bursts",
        ),
        ("{kind: diurnal, mean: 1e15}", "workloads[0].arrivals.mean"),
        (
            "{kind: diurnal, table: [[0, 1], [1h, 1e20]], period: 2h}",
            "workloads[0].arrivals.table",
        ),
    ],
)
def test_more_arrivals_than_a_run_can_take_are_refused(
    arrivals: str, where: str, tmp_path: Path
) -> None:
    """A workload drawing more than 10,000,000 arrivals in a run is refused, naming the field.

    Before, ``rate: 1e20`` was accepted and the run never ended: gaps below the float
    resolution stopped the clock while memory grew, and Ctrl-C could not stop it. A diurnal
    day counts its largest rate (thinning draws at it), a burst its count.
    """
    err = _error(TINY.replace("{kind: poisson, rate: 2}", arrivals), tmp_path)
    assert err.path == where
    assert err.line == 11
    assert "arrivals in the run's 45s (warm-up + duration), more than the 10,000,000" in err.reason


def test_an_override_that_makes_too_many_arrivals_is_refused(tiny: Scenario) -> None:
    """The count is rate x horizon: a longer ``duration`` can push an accepted rate over it."""
    busy = apply_overrides(tiny, [("workloads[0].arrivals.rate", 1e5)])  # 4.5e6: accepted
    with pytest.raises(ScenarioError) as info:
        apply_overrides(busy, [("duration", "1h")])
    assert info.value.path == "workloads[0].arrivals.rate"
    assert "about 3.6e+08 arrivals in the run's 3605s" in info.value.reason


@pytest.mark.parametrize(
    ("duration", "interval"),
    [("1s", 0.05), ("60s", 0.1), ("10h", 60.0), ("1000h", 60.0)],
)
def test_the_default_sample_interval_takes_about_600_samples_at_most_one_a_minute(
    tiny: Scenario, duration: str, interval: float
) -> None:
    """The horizon (warm-up + duration) over 600, within 0.05 s and 60 s (docs/planning.md)."""
    scenario = apply_overrides(tiny, [("warmup", 0), ("duration", duration)])
    assert scenario.sampling_interval == pytest.approx(interval)
    given = apply_overrides(scenario, [("sample_interval", "5m")])
    assert given.sampling_interval == 300.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # 20,000 h at the default one a minute: 1.2 million samples (1 GB, 2.5 minutes).
        (
            [("duration", "20000h")],
            "about 1.2e+06 samples in the run's 7.2e+07s of warm-up and duration at one "
            "every 60s (the default, at most 1m), more than the 100,000 a run takes: set a "
            "sample_interval of at least 721s",
        ),
        ([("duration", "2000000h")], "about 1.2e+08 samples"),
        ([("sample_interval", "1ms"), ("duration", "10m")], "at one every 0.001s, more than"),
    ],
)
def test_a_run_of_more_samples_than_it_can_take_is_refused(
    tiny: Scenario, overrides: list[tuple[str, object]], reason: str
) -> None:
    """Past 100,000 samples (warm-up + duration) one error names ``sample_interval``.

    Before, a long default run sampled once a minute whatever its claims: 2,000,000 h
    never ended.
    """
    idle = apply_overrides(tiny, [("workloads[0].arrivals.rate", 1e-6)])
    with pytest.raises(ScenarioError) as info:
        apply_overrides(idle, overrides)
    assert info.value.path == "sample_interval"
    assert reason in info.value.reason
    # The sample interval the error asks for takes the same run.
    found = re.search(r"a sample_interval of at least (\S+)s", info.value.reason)
    assert found is not None
    longer = apply_overrides(idle, [*overrides[-1:], ("sample_interval", float(found[1]))])
    assert longer.sampling_interval == float(found[1])


def test_the_drain_is_not_counted_as_sampled(tiny: Scenario) -> None:
    """``drain`` is the longest wait for claims in flight, and the run stops once they settle:
    a 10 ms interval over 11 minutes and a generous drain runs (as it did before the check)."""
    scenario = apply_overrides(
        tiny,
        [("warmup", "1m"), ("duration", "10m"), ("drain", "2h"), ("sample_interval", "10ms")],
    )
    assert scenario.sampling_interval == 0.01
    assert apply_overrides(scenario, [("duration", "940s")]).horizon == 1000  # 100,000: taken
    with pytest.raises(ScenarioError, match="samples in the run's 1001s of warm-up and duration"):
        apply_overrides(scenario, [("duration", "941s")])  # 100,100: refused


def test_a_drain_of_more_steps_than_it_may_take_is_refused(tiny: Scenario) -> None:
    """A run whose claims never settle takes the whole drain: 720 h at 10 ms (259 million
    steps) would never end, so past 1,000,000 steps one error names ``drain``."""
    scenario = apply_overrides(tiny, [("sample_interval", "10ms"), ("duration", "1m")])
    with pytest.raises(ScenarioError) as info:
        apply_overrides(scenario, [("drain", "720h")])
    assert info.value.path == "drain"
    assert info.value.reason == (
        "2.592e+06s at one sample every 0.01s is about 2.59e+08 steps if the claims in flight "
        "never settle, more than the 1,000,000 a drain may take: set a drain of at most "
        "10000s, or a longer sample_interval"
    )
    assert apply_overrides(scenario, [("drain", "10000s")]).drain == 10000
    with pytest.raises(ScenarioError, match="drain may take"):
        apply_overrides(scenario, [("drain", "10001s")])


@pytest.mark.parametrize("span", [57700, 414000, 820000])
def test_the_suggested_sample_interval_is_accepted_despite_round_off(
    tiny: Scenario, span: int
) -> None:
    """``57700 / 0.577`` is 100000.00000000001 in floating point: the suggestion still runs."""
    short = apply_overrides(tiny, [("warmup", 0), ("duration", f"{span}s")])
    with pytest.raises(ScenarioError) as info:
        apply_overrides(short, [("sample_interval", span / 2e5)])
    found = re.search(r"a sample_interval of at least (\S+)s", info.value.reason)
    assert found is not None
    assert span / float(found[1]) > MAX_SAMPLES_PER_RUN  # by round-off only
    taken = apply_overrides(short, [("sample_interval", f"{found[1]}s")])
    assert taken.sampling_interval == float(found[1])


@pytest.mark.parametrize(
    "text",
    ["[" * 5000 + "]" * 5000, "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 600))],
    ids=["flow", "block"],
)
def test_a_file_nested_too_deeply_is_one_error_naming_it(text: str, tmp_path: Path) -> None:
    """Hundreds of nested levels: one ScenarioError naming the file, not a RecursionError."""
    err = _error(text, tmp_path, "deep.yaml")
    assert str(err) == (
        f"{tmp_path / 'deep.yaml'}: cannot read the file: nested too deeply "
        "(a scenario needs a few levels)"
    )


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        (
            "template: base",
            "template: base\n    user: 'not a label value!'",
            "workloads[0].user",
            "invalid value 'not a label value!': a label value must consist of alphanumeric "
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
            "(it becomes the owner label of the sandbox)",
        ),
        (
            "template: base",
            "template: base\n    user: ''",
            "workloads[0].user",
            "must be a non-empty string (it becomes the owner label of the sandbox)",
        ),
        (
            "hold: exp(10s)",
            "hold: exp(10s)\n    claim: {metadata: {'bad key!': x}}",
            "workloads[0].claim.metadata",
            "Bad metadata: key 'bad key!' is not a valid qualified name",
        ),
        (
            "hold: exp(10s)",
            "hold: exp(10s)\n    claim: {metadata: {agents.kruise.io/owner: x}}",
            "workloads[0].claim.metadata",
            "Bad metadata: key 'agents.kruise.io/owner' uses a reserved prefix",
        ),
        (
            "hold: exp(10s)",
            "hold: exp(10s)\n    claim: {metadata: {e2b.agents.kruise.io/nope: x}}",
            "workloads[0].claim.metadata",
            "Bad extension param: e2b.agents.kruise.io/nope: unknown or reserved extension key",
        ),
    ],
)
def test_a_workload_is_refused_what_the_create_path_would_refuse(
    old: str, new: str, path: str, reason: str, tmp_path: Path
) -> None:
    """A workload's user and claim metadata are checked at load by the create path's own rules.

    Unchecked, a user that is no label value ran as if upstream's lock write
    could store it, and a bad metadata key failed every claim as a 400 that
    named no field of the scenario.
    """
    err = _error(TINY.replace(old, new, 1), tmp_path)
    assert (err.path, err.reason) == (path, reason)
    assert err.line is not None


def test_an_override_of_the_user_is_checked_too(tiny: Scenario) -> None:
    """``--set workloads[0].user=...`` is refused as the file would be; the scenario is unchanged."""
    with pytest.raises(ScenarioError) as info:
        apply_overrides(tiny, [("workloads[0].user", "Alice Smith")])
    assert info.value.path == "workloads[0].user"
    assert "a label value must consist of alphanumeric characters" in info.value.reason
    assert tiny.workloads[0].user != "Alice Smith"
    assert apply_overrides(tiny, [("workloads[0].user", "alice")]).workloads[0].user == "alice"


@pytest.mark.parametrize(
    ("group", "reason"),
    [
        (
            "{name: GPU Pool, count: 2}",
            "invalid value 'GPU Pool-2': a lowercase RFC 1123 subdomain must consist of lower "
            "case alphanumeric characters, '-' or '.', start and end with an alphanumeric "
            "character, and have at most 253 characters (its nodes are named GPU Pool-1 ... "
            "GPU Pool-2)",
        ),
        ("{name: gpu., count: 1}", "invalid value 'gpu.-1'"),
        ("{name: UPPER}", "invalid value 'UPPER-1'"),
        ("{name: 'x/y'}", "invalid value 'x/y-1'"),
        ("{name: " + "a" * 251 + ", count: 10}", "and have at most 253 characters"),
    ],
)
def test_a_node_group_name_must_make_node_names(group: str, reason: str, tmp_path: Path) -> None:
    """Node names are DNS-1123 subdomains (``ValidateNodeName``): a group makes ``<name>-<n>``."""
    err = _error(TINY.replace("{nodes: 2}", f"{{nodes: [{group}]}}"), tmp_path)
    assert err.path == "cluster.nodes[0].name"
    assert reason in err.reason
    assert err.line is not None


def test_node_group_names_with_dots_and_dashes_are_fine() -> None:
    """``gpu.a100`` and ``pool-b`` make valid node names (``gpu.a100-1``)."""
    text = TINY.replace("{nodes: 2}", "{nodes: [{name: gpu.a100}, {name: pool-b, count: 2}]}")
    names = list(parse_scenario(text).cluster.node_names())
    assert names == ["gpu.a100-1", "pool-b-1", "pool-b-2"]


_DOTTED = """\
name: dotted
duration: 1m
pools: [{name: web, replicas: 1}, {name: web.v2, replicas: 3}, {name: "123", replicas: 2}]
workloads: [{template: web.v2, arrivals: {kind: poisson, rate: 1}, hold: 10s}]
"""


@pytest.mark.parametrize(
    ("path", "replicas"),
    [
        ("pools[web.v2].replicas", [1, 5, 2]),
        ("pools.web.v2.replicas", [1, 5, 2]),  # the longest name that matches
        ("pools.web.replicas", [5, 3, 2]),
        ("pools[web].replicas", [5, 3, 2]),
        ("pools.123.replicas", [1, 3, 5]),  # digits after a dot: a name
        ("pools[2].replicas", [1, 3, 5]),  # digits in brackets: an index
    ],
)
def test_a_list_item_is_named_by_a_name_with_dots(path: str, replicas: list[int]) -> None:
    """A name holding dots is written in brackets, or after a dot (the longest name that matches)."""
    base = parse_scenario(_DOTTED)
    changed = apply_overrides(base, [(path, 5)])
    assert [p.replicas for p in changed.pools] == replicas
    assert canonical_path(base, path).startswith("pools[")
    assert split_path("pools[web.v2].replicas") == ["pools", "web.v2", "replicas"]


def test_a_sweep_names_a_dotted_pool_in_brackets() -> None:
    """The scenario's own ``sweep`` takes the bracket form, checked at load like any path."""
    scenario = parse_scenario(_DOTTED + "sweep: {'pools[web.v2].replicas': [2, 4]}\n")
    assert scenario.sweep == {"pools[web.v2].replicas": [2, 4]}


def test_a_value_given_twice_in_a_sweep_is_refused() -> None:
    """``sweep: {pools.base.replicas: [1, 1]}`` (or ``--set pools.base.replicas=1,1``) would run
    two points with the same labels, which the table, ``summary.json`` and ``claims.csv``
    could not tell apart: refused, naming the value. ``1`` and ``true`` are two values."""
    text = TINY + "sweep: {pools.base.replicas: [1, 2, 1]}\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="tiny.yaml")
    assert str(info.value) == (
        "tiny.yaml:14: sweep['pools.base.replicas']: value 1 given twice "
        "(a sweep runs each value once)"
    )
    with pytest.raises(ScenarioError) as info:
        parse_axis("pools.base.replicas=1,2,1")
    assert str(info.value) == (
        "--set pools.base.replicas=1,2,1: pools.base.replicas: value 1 given twice "
        "(a sweep runs each value once)"
    )
    assert parse_axis("claims_csv=true,1").values == (True, 1)


@pytest.mark.parametrize("knob", ["name", "description"])
def test_a_profiles_name_given_as_a_number_is_no_knob_either(knob: str) -> None:
    """The reason is that it is no knob, not that its value is of the wrong kind."""
    text = TINY.replace("{nodes: 2}", f"{{nodes: 2, knobs: {{{knob}: 5}}}}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="tiny.yaml")
    assert info.value.path == f"cluster.knobs.{knob}"
    assert info.value.reason.startswith(f"the profile's {knob}, not a knob")


@pytest.mark.parametrize("knob", ["name", "description"])
def test_a_profiles_name_or_description_is_no_knob(knob: str) -> None:
    """``knobs: {name: openkruise-v0.3.0}`` on the HEAD profile: refused, naming the knob.

    It used to rename the profile: the reports then said a HEAD cluster ran
    ``openkruise-v0.3.0 (changed: ... retry ...)``, and a name of no built-in profile
    (``foo``) hid every change the scenario made.
    """
    text = TINY.replace("{nodes: 2}", f"{{nodes: 2, knobs: {{{knob}: openkruise-v0.3.0}}}}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="tiny.yaml")
    assert info.value.path == f"cluster.knobs.{knob}"
    assert info.value.reason == (
        f"the profile's {knob}, not a knob: choose a profile by its name "
        "(the profile setting beside the knobs)"
    )


def test_a_sweep_varying_a_field_under_two_paths_is_refused_at_load() -> None:
    """``pools.base.replicas`` and ``pools[0].replicas`` in one ``sweep``: one error, as for
    two ``--set`` options; the second's values would replace the first's in every point.

    It used to run both points at 3 replicas while the table and ``summary.json``
    labelled them 1 and 2.
    """
    text = TINY + "sweep:\n  pools.base.replicas: [1, 2]\n  pools[0].replicas: [3]\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="tiny.yaml")
    assert str(info.value) == (
        "tiny.yaml:16: sweep['pools[0].replicas']: pools[0].replicas is already swept by "
        "sweep['pools.base.replicas'] (a sweep varies a field once)"
    )
    # Two fields of one item are two axes.
    both = parse_scenario(TINY + "sweep: {pools.base.replicas: [1, 2], pools.base.cpu: [1]}\n")
    assert list(both.sweep) == ["pools.base.replicas", "pools.base.cpu"]


@pytest.mark.parametrize(
    ("path", "where", "reason"),
    [
        # No item web.v3: the longest name that matches is web, which has no field v3.
        ("pools.web.v3.replicas", "pools[0].v3", "unknown field"),
        (
            "pools.nope.replicas",
            "pools.nope.replicas",
            "no item named 'nope' (items: web, web.v2, 123); a name with dots may be "
            "written in brackets: pools[web.v2]",
        ),
        (
            "pools[nope].replicas",
            "pools[nope].replicas",
            "no item named 'nope' (items: web, web.v2, 123)",
        ),
        ("cluster[profile]", "cluster[profile]", "a list item's name where a field name"),
        ("pools[web.v2", "pools[web.v2", "cannot read the path at '[web.v2'"),
    ],
)
def test_a_bad_item_name_is_named(path: str, where: str, reason: str) -> None:
    """A name no item has, or a bracket where none belongs, is one error naming the path."""
    base = parse_scenario(_DOTTED)
    with pytest.raises(ScenarioError) as info:
        apply_overrides(base, [(path, 5)])
    assert info.value.path == where
    assert reason in info.value.reason


@pytest.mark.parametrize("path", ["e2b", "sandboxclaim"])
def test_csi_mounts_without_the_runtime_init_are_refused(path: str, tmp_path: Path) -> None:
    """CSI mounts are made by the runtime's ``/init``: skipping it failed every claim with a 400.

    Refused at load by the claim path's own rule (``ValidateAndInitClaimOptions``).
    """
    claim = f"claim: {{path: {path}, csi_mounts: 1, skip_init_runtime: true}}"
    err = _error(TINY.replace("hold: exp(10s)", f"hold: exp(10s)\n    {claim}"), tmp_path)
    assert err.path == "workloads[0].claim.csi_mounts"
    assert err.reason == (
        "CSI mounts need the runtime to be initialised, but skip_init_runtime is true"
    )
    assert err.line is not None


def test_merge_keys_work_in_a_scenario() -> None:
    """A workload may reuse another with ``<<: *w`` (the loader used to refuse every merge)."""
    text = TINY.replace("  - template: base\n", "  - &w\n    template: base\n").replace(
        "goals:", "  - <<: *w\n    hold: 20s\ngoals:"
    )
    scenario = parse_scenario(text)
    assert [w.hold for w in scenario.workloads] == ["exp(10s)", "20s"]
    assert scenario.workloads[1].arrivals == scenario.workloads[0].arrivals


def test_an_inline_pool_manifest_is_read_as_kubectl_reads_it() -> None:
    """A ``manifest:`` written as a mapping keeps a date and a time of day as text, as the
    same manifest given as a text block does (it became a date object and 750)."""
    pool = """\
  - manifest:
      apiVersion: agents.kruise.io/v1alpha1
      kind: SandboxSet
      metadata:
        name: base
        annotations: {released: 2024-05-01, window: 12:30}
      spec:
        replicas: 4
        template: {spec: {containers: [{name: c, image: busybox}]}}
"""
    scenario = parse_scenario(TINY.replace("  - {name: base, replicas: 4}\n", pool))
    annotations = scenario.pools[0].sandboxset().metadata.annotations
    assert annotations == {"released": "2024-05-01", "window": "12:30"}


def test_node_groups_carry_labels_and_other_resources() -> None:
    """A pool's ``nodeSelector`` can aim at a group (its ``labels``), and a group declares
    extended resources such as GPUs (``allocatable``); the kubelet's own labels are there too."""
    text = TINY.replace(
        "{nodes: 2}",
        "{nodes: [{name: cpu}, {name: gpu, labels: {pool: gpu}, allocatable: {nvidia.com/gpu: 8}}]}",
    )
    specs = parse_scenario(text).cluster.node_specs()
    assert [(s.name, s.labels, s.allocatable) for s in specs] == [
        ("cpu-1", {}, {}),
        ("gpu-1", {"pool": "gpu"}, {"nvidia.com/gpu": "8"}),
    ]


@pytest.mark.parametrize(
    ("group", "reason"),
    [
        ("{labels: {pool: 'a b'}}", "invalid value 'a b'"),
        (
            "{allocatable: {nvidia.com/gpu: 0.5}}",
            "nvidia.com/gpu: Invalid value: '0.5': must be an integer",
        ),
        ("{allocatable: {cpu: 4}}", "'cpu' is the node's own field 'cpu'"),
    ],
)
def test_bad_node_group_labels_and_resources_are_named(
    group: str, reason: str, tmp_path: Path
) -> None:
    err = _error(TINY.replace("{nodes: 2}", f"{{nodes: [{group}]}}"), tmp_path)
    assert err.path.startswith("cluster.nodes[0]")
    assert reason in err.reason


def test_a_trace_row_with_more_fields_than_the_header_is_refused(tmp_path: Path) -> None:
    """A stray comma (one field more than the header) names the CSV file, line and counts.

    Before, the surplus fields reached the reader as a list and the run
    ended with a traceback (``'list' object has no attribute 'strip'``).
    """
    (tmp_path / "t.csv").write_text("time,template\n1,base\n5,base,extra\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        TINY.replace("arrivals: {kind: poisson, rate: 2}", "arrivals: {kind: trace, file: t.csv}")
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{tmp_path / 't.csv'}:3: row: 3 fields, the header has 2"


@pytest.mark.parametrize(
    ("header", "row", "column"),
    [
        ("time,template,time", "1,base,50", "time"),
        ("time,template,template", "1,base,x", "template"),
    ],
)
def test_a_trace_column_named_twice_is_refused_naming_file_line_and_column(
    tmp_path: Path, header: str, row: str, column: str
) -> None:
    """Two ``time`` (or ``template``) columns are ambiguous: refused, not the last one kept."""
    (tmp_path / "t.csv").write_text(f"{header}\n{row}\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        TINY.replace("arrivals: {kind: poisson, rate: 2}", "arrivals: {kind: trace, file: t.csv}")
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{tmp_path / 't.csv'}:1: {column}: column given twice in the header"


def test_a_trace_row_without_a_template_in_a_workload_without_one_names_its_line(
    tmp_path: Path,
) -> None:
    """A row that names no pool, where the workload names none either, is refused at its line.

    Before, it read ``trace row at 7s claims from default/None, which is no pool``,
    naming the scenario, not the CSV line at fault.
    """
    (tmp_path / "t.csv").write_text("time,template\n1,base\n2,base\n7\n")
    path = tmp_path / "s.yaml"
    path.write_text(
        TINY.replace(
            "  - template: base\n    arrivals: {kind: poisson, rate: 2}",
            "  - arrivals: {kind: trace, file: t.csv}",
        )
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (
        str(info.value) == f"{tmp_path / 't.csv'}:4: template: empty, and the workload gives none"
    )
    (tmp_path / "t.csv").write_text("time,template\n1,base\n")
    assert load_scenario(path).workloads[0].template is None
    (tmp_path / "t.csv").write_text("time\n7\n")
    path.write_text(
        TINY.replace("arrivals: {kind: poisson, rate: 2}", "arrivals: {kind: trace, file: t.csv}")
    )
    with pytest.raises(ScenarioError) as info:
        apply_overrides(load_scenario(path), [("workloads[0].template", None)])
    assert (info.value.path, info.value.reason) == (
        "workloads[0].template",
        "required: the trace row at 7s names no template",
    )


def test_a_trace_takes_its_rows_from_its_file_only(tmp_path: Path) -> None:
    """``rows:`` under a trace's arrivals is refused as an unknown field, naming its line.

    Before, written ``rows`` were taken: the ``file`` was never read (a missing
    one went unnoticed) and the rows skipped every check of a trace row, so
    negative and unsorted times were all replayed at the first time.
    """
    path = tmp_path / "s.yaml"
    path.write_text(
        TINY.replace(
            "arrivals: {kind: poisson, rate: 2}",
            "arrivals: {kind: trace, file: no-such.csv, rows: [{time: 5}, {time: -2}]}",
        )
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert (err.path, err.reason) == (
        "workloads[0].arrivals.rows",
        "unknown field (a trace's rows are read from its file)",
    )
    assert err.line is not None
    with pytest.raises(ScenarioError, match=r"arrivals\.rows: unknown field"):
        parse_scenario(
            {
                "pools": [{"name": "base", "replicas": 1}],
                "workloads": [
                    {"template": "base", "arrivals": {"kind": "trace", "file": "t.csv", "rows": []}}
                ],
            }
        )


ROWS_REFUSED = "unknown field (a trace's rows are read from its file)"


def test_an_override_cannot_write_a_traces_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--set`` (and a sweep) cannot write a trace's ``rows`` either, as docs/planning.md says:
    refused as in a file, naming the override as typed, whether it sets the rows, a row, or an
    ``arrivals`` (a workload, the workloads) that carries them. Setting the ``file`` or another
    field still keeps the rows read from the file.

    Before, ``--set workloads[0].arrivals.rows=[...]`` replaced the rows read from the file with
    rows no check had read (unsorted ones were replayed all at the first time), and an
    ``arrivals`` mapping with ``rows`` had them dropped without a word."""
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario(_trace_scenario(tmp_path))
    written = [{"time": 5, "template": "base"}, {"time": 1, "template": "base"}]
    arrivals = {"kind": "trace", "file": "u.csv", "rows": written}
    workload = {"template": "base", "arrivals": arrivals}
    for path, value in [
        ("workloads[0].arrivals.rows", written),
        ("workloads.base.arrivals.rows", []),
        ("workloads[0].arrivals.rows[0].time", 3),
        ("workloads[0].arrivals", arrivals),
        ("workloads[0]", workload),
        ("workloads", [workload]),
    ]:
        with pytest.raises(ScenarioError) as info:
            apply_overrides(scenario, [(path, value)])
        err = info.value
        assert (err.path, err.reason) == ("workloads[0].arrivals.rows", ROWS_REFUSED), path
        assert err.source.startswith(f"--set {path}="), path
    # A Poisson workload turned into a trace by an override: the same.
    poisson = parse_scenario(TINY, base_dir=tmp_path / "scenarios")
    with pytest.raises(ScenarioError, match=r"arrivals\.rows: unknown field"):
        apply_overrides(poisson, [("workloads[0].arrivals", arrivals)])
    # Without rows, the file is read; another field leaves the rows read from the file.
    del arrivals["rows"]
    changed = apply_overrides(poisson, [("workloads[0].arrivals", arrivals)])
    assert isinstance(changed.workloads[0].arrivals, TraceArrivals)
    assert [r.time for r in changed.workloads[0].arrivals.rows] == [1.0, 2.0, 3.0, 4.0]
    kept = apply_overrides(scenario, [("workloads[0].hold", "10s")]).workloads[0].arrivals
    assert kept == scenario.workloads[0].arrivals
    # The scenario's own sweep: refused when the file is loaded.
    (tmp_path / "sweep").mkdir()
    swept = _trace_scenario(tmp_path / "sweep")
    swept.write_text(swept.read_text() + 'sweep: {"workloads[0].arrivals.rows": [[], []]}\n')
    with pytest.raises(ScenarioError, match=r"arrivals\.rows: unknown field"):
        load_scenario(swept)


def test_a_trace_row_time_and_hold_are_not_negative() -> None:
    """A trace row built in Python is checked as a CSV row is."""
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        TraceRow(time=-2.0)
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        TraceRow(time=1.0, hold=-1.0)


@pytest.mark.parametrize(
    ("arrivals", "field", "reason"),
    [
        ("{kind: diurnal, table: [[0, 1], [1h, 3]], amplitude: 0.9}", "amplitude", "a curve"),
        ("{kind: diurnal, table: [[0, 1], [1h, 3]], peak: 3h}", "peak", "a curve"),
        ("{kind: diurnal, mean: 1, shape: linear}", "shape", "a table"),
    ],
)
def test_a_diurnal_field_of_the_other_form_is_refused_by_name(
    tmp_path: Path, arrivals: str, field: str, reason: str
) -> None:
    """A curve's ``amplitude``/``peak`` beside a table, or a table's ``shape`` beside a curve,
    would be ignored without a word: refused, naming the field and its line."""
    err = _error(TINY.replace("{kind: poisson, rate: 2}", arrivals), tmp_path)
    assert err.path == f"workloads[0].arrivals.{field}"
    assert err.reason.startswith("belongs to ") and reason in err.reason
    assert err.line == 11


def test_a_diurnal_scenario_of_either_form_takes_overrides() -> None:
    """Each form reads back from its own dump: an override of a table or a curve still applies."""
    for arrivals in ("{kind: diurnal, table: [[0, 1], [1h, 3]]}", "{kind: diurnal, mean: 1}"):
        base = parse_scenario(TINY.replace("{kind: poisson, rate: 2}", arrivals))
        changed = apply_overrides(base, [("duration", "20s")])
        assert changed.workloads[0].arrivals == base.workloads[0].arrivals


def test_each_limit_takes_the_value_it_names(tiny_text: str) -> None:
    """10,000 replications, a SandboxClaim of 1,000, exactly 10,000,000 arrivals in a run
    (1,000/s over 10,000 s of warm-up and duration) and a CPU limit equal to the request are
    all accepted: each limit is the largest value allowed, not the first refused."""
    text = (
        tiny_text.replace("replications: 2", "replications: 10000")
        .replace("duration: 40s", "duration: 9995s")
        .replace("{kind: poisson, rate: 2}", "{kind: constant, rate: 1000}")
        .replace(
            "hold: exp(10s)", "hold: exp(10s)\n    claim: {path: sandboxclaim, replicas: 1000}"
        )
        .replace(
            "{name: base, replicas: 4}", "{name: base, replicas: 4, cpu: 500m, cpu_limit: 500m}"
        )
    )
    scenario = parse_scenario(text)
    assert scenario.replications == 10_000
    assert scenario.workloads[0].claim.replicas == 1000
    assert scenario.workloads[0].arrivals.draws(scenario.horizon) == ("rate", 10_000_000.0)
    assert scenario.pools[0].cpu_limit == "500m"

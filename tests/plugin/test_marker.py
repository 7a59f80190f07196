"""``@pytest.mark.kruise(...)``: one test's own pools, seed, profile, faults; bad uses named."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def literal(pattern: str) -> str:
    """``pattern`` for fnmatch with ``[`` taken literally (``*`` stays a wildcard)."""
    return pattern.replace("[", "[[]")


def test_the_marker_is_registered(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(seed=1)
        def test_a(kruise_cluster, kruise_options):
            assert kruise_cluster.ctx.seed == 1
            assert (kruise_options.seed, kruise_options.backend, kruise_options.pools) == (1, "sim", None)
        """
    )
    suite.runpytest("--strict-markers").assert_outcomes(passed=1)
    suite.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.kruise(*seed=None*"])


def test_marker_gives_a_test_its_own_pools_nodes_and_profile(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        POOL = '''
        apiVersion: agents.kruise.io/v1alpha1
        kind: SandboxSet
        metadata: {name: custom, namespace: team-a}
        spec:
          replicas: 1
          template: {spec: {containers: [{name: c, image: i}]}}
        '''

        def ready(cluster):
            return {p.metadata.name: p.status.available_replicas for p in cluster.list("sbs")}

        def test_default(kruise_cluster):
            assert ready(kruise_cluster) == {"base": 3, "code-interpreter-v1": 3}
            assert len(kruise_cluster.nodes.specs) == 4

        @pytest.mark.kruise(pools=1, nodes=2, profile="openkruise-v0.3.0")
        def test_replicas(kruise_cluster):
            assert ready(kruise_cluster) == {"base": 1, "code-interpreter-v1": 1}
            assert len(kruise_cluster.nodes.specs) == 2
            assert kruise_cluster.profile.name == "openkruise-v0.3.0"

        @pytest.mark.kruise(pools={"agents": 2})
        def test_named(kruise_cluster):
            assert ready(kruise_cluster) == {"agents": 2}

        @pytest.mark.kruise(pools=POOL)
        def test_yaml(kruise_cluster):
            assert ready(kruise_cluster) == {"custom": 1}

        @pytest.mark.kruise(pools={})
        def test_none(kruise_cluster):
            assert ready(kruise_cluster) == {}

        @pytest.mark.kruise(pools=0)
        def test_empty(kruise_cluster):
            # The default pools with no sandbox ready: every create is cold.
            assert ready(kruise_cluster) == {"base": 0, "code-interpreter-v1": 0}
        """
    )
    suite.runpytest().assert_outcomes(passed=6)


def test_marker_latencies_and_knobs_merge_over_the_config_files(suite: pytest.Pytester) -> None:
    """docs/plugin.md: the marker's ``latencies`` and ``knobs`` are merged over the config
    file's, name by name (its ``pools`` and ``faults`` replace the file's)."""
    suite.makefile(
        ".yaml",
        cluster="""
latencies: {runtime.init: 2s, pod.create: 3s}
knobs: {init_attempts: 2, recycle_on_kill: false}
""",
    )
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(
            config="cluster.yaml",
            latencies={"pod.create": "4s"},
            knobs={"init_attempts": 5},
        )
        def test_a(kruise_cluster, kruise_backend):
            values = {n: kruise_backend.latency(n)["value"] for n in ("runtime.init", "pod.create")}
            assert values == {"runtime.init": "fixed(2s)", "pod.create": "fixed(4s)"}
            profile = kruise_cluster.profile
            assert (profile.init_attempts, profile.recycle_on_kill) == (5, False)
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_marker_faults_latencies_and_knobs(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.claiming.errors import ClaimError

        @pytest.mark.kruise(
            faults=[{"kind": "runtime_init_failure", "selector": {"template": "base"}}],
            latencies={"runtime.init": "2s"},
            knobs={"init_attempts": 2},
        )
        def test_a(kruise_cluster):
            assert [f.kind for f in kruise_cluster.faults] == ["runtime_init_failure"]
            assert kruise_cluster.profile.init_attempts == 2
            with pytest.raises(ClaimError, match="after 2 attempts"):
                kruise_cluster.create_sandbox("base")
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_a_marker_faults_start_counts_from_the_tests_start(suite: pytest.Pytester) -> None:
    """docs/plugin.md: a marker fault's ``start`` counts from the test's start (pools ready).

    The pools fill first, in virtual time: ``start=5`` is 5 s after the test
    gets its cluster, and a stall ``start=2, duration=5`` holds [2 s, 7 s) of
    the test, not a window that closed while the pools filled.
    """
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(faults=[
            {"kind": "node_loss", "id": "loss", "start": 5, "duration": 60,
             "selector": {"node": "node-1"}},
            {"kind": "controller_stall", "id": "stall", "start": "2s", "duration": 5,
             "selector": {"controller": "sandboxset"}},
        ])
        def test_a(kruise_cluster):
            t0 = kruise_cluster.now
            assert t0 > 7  # the pools took longer than both starts to fill
            windows = {f.id: (f.start, f.duration) for f in kruise_cluster.faults}
            assert windows == {"loss": (t0 + 5, 60.0), "stall": (t0 + 2, 5.0)}
            kruise_cluster.advance(4.9)
            assert kruise_cluster.log.of_kind("node.") == []
            kruise_cluster.advance(0.2)
            assert [e.time for e in kruise_cluster.log.of_kind("node.")][:1] == [t0 + 5]
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_markers_merge_closest_first(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.kruise(seed=1, nodes=2)

        def test_module(kruise_cluster):
            assert (kruise_cluster.ctx.seed, len(kruise_cluster.nodes.specs)) == (1, 2)

        @pytest.mark.kruise(seed=2)
        class TestClass:
            def test_class(self, kruise_cluster):
                assert (kruise_cluster.ctx.seed, len(kruise_cluster.nodes.specs)) == (2, 2)

            @pytest.mark.kruise(nodes=3)
            def test_function(self, kruise_cluster):
                assert (kruise_cluster.ctx.seed, len(kruise_cluster.nodes.specs)) == (2, 3)
        """
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_a_keyword_given_as_none_gives_the_run_wide_value_back(suite: pytest.Pytester) -> None:
    """The closest marker wins per keyword, ``None`` included: ``seed=None`` on a function
    under a module's ``seed=1`` gives it the run's seed (``--kruise-seed``), as if no
    marker had set one; a keyword the function does not name keeps the module's value."""
    suite.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.kruise(seed=1, nodes=2)

        @pytest.mark.kruise(seed=None)
        def test_function(kruise_cluster, kruise_options):
            assert (kruise_cluster.ctx.seed, len(kruise_cluster.nodes.specs)) == (9, 2)
            assert (kruise_options.seed, kruise_options.nodes) == (9, 2)
        """
    )
    suite.runpytest("--kruise-seed", "9").assert_outcomes(passed=1)


def test_marker_config_is_relative_to_the_test_file(suite: pytest.Pytester) -> None:
    tests = suite.mkdir("tests")
    tests.joinpath("cluster.yaml").write_text("seed: 11\n")
    tests.joinpath("test_a.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.kruise(config='cluster.yaml')\n"
        "def test_a(kruise_cluster):\n"
        "    assert kruise_cluster.ctx.seed == 11\n"
    )
    suite.runpytest().assert_outcomes(passed=1)


BAD = [
    pytest.param("sed=1", "sed: unknown keyword (did you mean 'seed'?); known: seed, *", id="typo"),
    pytest.param(
        "1",
        "takes keyword arguments only, got positional [1]; a project's own kruise marker "
        "cannot mark a test that uses a pytest-kruise-agents fixture",
        id="positional",
    ),
    pytest.param("seed='one'", "seed: must be an integer, got 'one'", id="seed"),
    pytest.param("profile=''", "profile: must be a profile name, got ''", id="profile-empty"),
    pytest.param(
        "pools=True",
        "pools: must be an int, a mapping, YAML text or a list, got True",
        id="pools-bool",
    ),
    pytest.param(
        "knobs={1: 2}", "knobs: must be a mapping of names to values, got {1: 2}", id="knobs-keys"
    ),
    pytest.param("pools=-1", "pools: must be at least 0, got -1", id="pools-negative"),
    pytest.param("seed=-5", "seed: must be at least 0, got -5", id="seed-negative"),
    pytest.param("nodes=0", "nodes: must be at least 1, got 0", id="nodes"),
    pytest.param(
        "clock='fast'", "clock: must be virtual or realtime[:SPEED], got 'fast'", id="clock"
    ),
    pytest.param(
        "clock='realtime:5e6'",
        "clock: speed must be at most 1e+06 (the fake cluster's limit), got '5e6'",
        id="clock-too-fast",
    ),
    pytest.param(
        "faults=[{'probability': 1}]",
        "faults[0]: must be a mapping with a 'kind', got {'probability': 1}",
        id="fault-kind",
    ),
    pytest.param("pools={'base': -1}", "pools['base']: must be at least 0, got -1", id="pools"),
    pytest.param(
        "config='nope.yaml'", "config: config file '*nope.yaml' does not exist", id="config"
    ),
    pytest.param("config='.'", "config: config file '*' is a directory", id="config-directory"),
    pytest.param(
        "config='/dev/null'",
        "config: config file '/dev/null' is not a regular file",
        id="config-not-a-regular-file",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_a_bad_marker_errors_the_test_naming_keyword_and_test(
    suite: pytest.Pytester, kwargs: str, message: str
) -> None:
    suite.makepyfile(
        f"""
        import pytest

        @pytest.mark.kruise({kwargs})
        def test_a(kruise_cluster):
            pass

        def test_b(kruise_cluster):
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a*",
            f"pytest-kruise-agents: @pytest.mark.kruise {literal(message)}",
        ]
    )


RECIPE_ERRORS = [
    pytest.param(
        "profile='openkruise-hed'",
        "@pytest.mark.kruise profile: unknown profile 'openkruise-hed' (did you mean 'openkruise-head'?)*",
        id="profile",
    ),
    pytest.param(
        "latencies={'runtime.int': '1s'}",
        "*unknown latency 'runtime.int' (did you mean 'runtime.init'?)*",
        id="latency",
    ),
    pytest.param(
        "knobs={'pause_pod_grace_s': float('inf')}",
        "*invalid value for profile knob 'pause_pod_grace_s': must be a number of seconds"
        " from 0 to under 60 (an E2B pause waits 60 s for its pod), got inf*",
        id="knob-range",
    ),
    pytest.param(
        "faults=[{'kind': 'meteor'}]",
        "@pytest.mark.kruise faults[0].kind: unsupported value 'meteor': must be 'api_conflict', *",
        id="fault",
    ),
    pytest.param(
        "faults=[{'kind': 'watch_lag', 'selector': {'informer': 'manager'}}]",
        "@pytest.mark.kruise faults[0].selector: informer='manager' names nothing: *",
        id="fault-selector",
    ),
    pytest.param(
        "nodes=2, faults=[{'kind': 'node_loss', 'selector': {'node': 'node-99'}}]",
        "@pytest.mark.kruise faults[0].selector.node: no node named 'node-99'"
        " (nodes: node-1, node-2)",
        id="fault-node",
    ),
    pytest.param(
        "nodes=10**6",
        "@pytest.mark.kruise nodes: must be at most 5000 (Kubernetes' supported cluster size),"
        " got 1000000",
        id="nodes-too-many",
    ),
    pytest.param(
        "nodes=1, pools=50",
        "@pytest.mark.kruise pools: SandboxSet default/base: */50 available after 600s;"
        " a pod of it is unschedulable: 0/1 nodes are available: 1 Insufficient cpu. *",
        id="pools-too-big",
    ),
    pytest.param(
        "pools='kind: Pod'",
        "@pytest.mark.kruise pools: *",
        id="pools-yaml",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), RECIPE_ERRORS)
def test_a_marker_the_cluster_cannot_take_errors_the_test(
    suite: pytest.Pytester, kwargs: str, message: str
) -> None:
    suite.makepyfile(
        f"""
        import pytest

        @pytest.mark.kruise({kwargs})
        def test_a(kruise_cluster):
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"pytest-kruise-agents: {literal(message)}"])


def test_a_bad_marker_errors_the_test_even_without_a_fixture_of_the_plugin(
    suite: pytest.Pytester,
) -> None:
    """The keywords are checked for every marked test, not only where a fixture reads them."""
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(sed=3)
        def test_typo():
            pass

        @pytest.mark.kruise(config="nope.yaml")
        def test_missing_config():
            pass

        @pytest.mark.kruise(profile="openkruise-hed")
        def test_profile_typo():
            pass

        @pytest.mark.kruise(knobs={"retri": "fixed"})
        def test_knob_typo():
            pass

        @pytest.mark.kruise(seed=3)
        def test_good():
            pass

        def test_unmarked():
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=2, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_typo*",
            "pytest-kruise-agents: @pytest.mark.kruise sed: unknown keyword (did you mean 'seed'?)*",
            "*ERROR at setup of test_missing_config*",
            "pytest-kruise-agents: @pytest.mark.kruise config: config file *nope.yaml'"
            " does not exist*",
            "*@pytest.mark.kruise profile: unknown profile 'openkruise-hed'*",
            "*unknown profile knob 'retri'*",
        ],
        consecutive=False,
    )


PROJECT_MARKER = """
import sys

import pytest


@pytest.mark.kruise("v1.6")  # the project's own marker: the OpenKruise version it needs
def test_needs_kruise():
    pass


@pytest.mark.kruise
def test_bare_marker():
    # Nothing to check, so nothing is built: the simulator stays unloaded.
    assert "simulator" not in sys.modules


@pytest.mark.kruise("v1.6")
@pytest.mark.kruise(seed=3)
def test_both():
    pass
"""


def test_a_projects_own_kruise_marker_is_left_alone_on_a_test_using_no_fixture(
    suite: pytest.Pytester,
) -> None:
    """A marker with a positional argument cannot be this plugin's (it takes keywords only):
    on a test that asks for none of the plugin's fixtures it is the project's business."""
    suite.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
        "markers = kruise(version): needs this OpenKruise version\n"
    )
    suite.makepyfile(PROJECT_MARKER)
    result = suite.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:schemathesis")
    result.assert_outcomes(passed=3)


def test_a_projects_own_kruise_marker_on_a_test_using_a_fixture_says_they_clash(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise("v1.6")
        def test_a(kruise_cluster):
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    message = (
        "takes keyword arguments only, got positional ['v1.6']; a project's own kruise "
        "marker cannot mark a test that uses a pytest-kruise-agents fixture"
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a*",
            f"pytest-kruise-agents: @pytest.mark.kruise {literal(message)}",
        ]
    )

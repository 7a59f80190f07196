"""Every fixture, as a downstream suite uses it, in inner pytest runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pools import RECYCLING_POOL

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def test_kruise_cluster_is_fresh_for_every_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from simulator.cluster import Cluster

        def test_first(kruise_cluster):
            assert isinstance(kruise_cluster, Cluster)
            kruise_cluster.create_sandbox("base")
            assert kruise_cluster.last_record().warm

        def test_second_sees_none_of_it(kruise_cluster):
            assert len(kruise_cluster.records) == 0
            pool = kruise_cluster.get("sbs", "base")
            assert pool.status.available_replicas == 3
        """
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_no_test_can_change_what_later_tests_clusters_are_built_from(
    suite: pytest.Pytester,
) -> None:
    """The tests of one recipe build their clusters from one Profile and one list of
    NodeSpecs: a test that edits them in place through its cluster (the profile's latencies,
    an empirical latency's samples, a node's images or labels) is refused, and the tests after
    it run as the ones before it did, byte for byte (the same seed and calls)."""
    suite.makefile(".yaml", cluster="nodes:\n  - {name: n1, labels: {zone: a}}\n  - {name: n2}\n")
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError
        from simulator.latency import Fixed

        pytestmark = pytest.mark.kruise(latencies={"pod.create": "empirical(100ms, 300ms)"})
        LOGS = []

        def burst(cluster):
            cluster.create_sandboxes(8, "base")
            cluster.advance(60)
            LOGS.append(cluster.log.text())

        def test_a_first(kruise_cluster):
            burst(kruise_cluster)

        def test_b_edits_what_its_cluster_was_built_from(kruise_cluster):
            latencies = kruise_cluster.profile.latencies
            with pytest.raises(InvalidError) as err:
                latencies["pod.create"] = Fixed(value=30.0)
            assert err.value.field == "latencies"
            with pytest.raises(TypeError):
                latencies["pod.create"].samples[:] = [30.0]
            node = kruise_cluster.nodes.specs[0]
            with pytest.raises(AttributeError):
                node.images.append("registry.example.com/e2b/base:v1")
            with pytest.raises(InvalidError) as err:
                node.labels["zone"] = "b"
            assert err.value.field == "labels"

        def test_c_runs_as_a_did(kruise_cluster):
            burst(kruise_cluster)
            assert LOGS[1] == LOGS[0]
        """
    )
    suite.runpytest("-p", "no:randomly", "--kruise-config", "cluster.yaml").assert_outcomes(
        passed=3
    )


def test_kruise_backend_wraps_the_same_cluster(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from pytest_kruise_agents.backends import Backend, Caller, CreateRequest

        def test_a(kruise_cluster, kruise_backend):
            assert isinstance(kruise_backend, Backend)
            assert kruise_backend.cluster is kruise_cluster
            view = kruise_backend.create_sandbox(Caller("default", "u"), CreateRequest("base"))
            assert kruise_cluster.describe(view.sandbox_id, user="u").metadata.name == view.name
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_kruise_clock_moves_virtual_time(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError
        from pytest_kruise_agents.claiming.errors import ClaimError

        def test_advance_fires_the_sandbox_timeout(kruise_cluster, kruise_clock):
            sbx = kruise_cluster.create_sandbox("base", timeout=60)
            sid = kruise_cluster.sandbox_id(sbx)
            start = kruise_clock.now()
            kruise_clock.advance(59)
            assert kruise_clock.now() == pytest.approx(start + 59)
            kruise_cluster.describe(sid)
            kruise_clock.advance(2)
            with pytest.raises(ClaimError):
                kruise_cluster.describe(sid)
            assert kruise_clock.now_dt() == kruise_cluster.now_dt()

        def test_run_until(kruise_clock):
            start = kruise_clock.now()
            assert kruise_clock.run_until(lambda: kruise_clock.now() >= start + 10)
            assert kruise_clock.now() >= start + 10
            later = kruise_clock.now()
            assert not kruise_clock.run_until(lambda: False, timeout=5)
            assert kruise_clock.now() == pytest.approx(later + 5)

        def run_until_the_sandbox_stops(kruise_clock):
            from e2b import Sandbox

            sbx = Sandbox.create(timeout=30)
            start = kruise_clock.now()
            assert kruise_clock.run_until(lambda: not sbx.is_running(), timeout=120)
            assert 25 < kruise_clock.now() - start < 35

        def test_run_until_may_ask_the_server(kruise_e2b, kruise_clock):
            run_until_the_sandbox_stops(kruise_clock)

        @pytest.mark.kruise(clock="realtime:50")
        def test_run_until_may_ask_the_server_in_realtime(kruise_e2b, kruise_clock, kruise_backend):
            # At x50 a wall millisecond is 50 virtual ones, and the HTTP calls around the wait
            # take what a busy machine gives them: bounds on the model's clock instead.
            from datetime import timedelta
            from e2b import Sandbox

            start = kruise_clock.now()  # before the create: its timeout counts from later
            sbx = Sandbox.create(timeout=30)
            end = sbx.get_info().end_at
            assert kruise_clock.run_until(lambda: not sbx.is_running(), timeout=120)
            assert kruise_clock.now() - start > 29  # endAt is in whole seconds
            assert kruise_clock.now_dt() >= end

            def shutdowns():
                with kruise_backend.locked() as cluster:
                    return cluster.log.of_kind("sandbox.shutdown")

            # Past endAt the server already says "not running"; the controller's shutdown
            # follows a few virtual milliseconds later, on the model's clock.
            assert kruise_clock.run_until(lambda: bool(shutdowns()), timeout=60)
            (shutdown,) = shutdowns()
            at = kruise_backend.epoch + timedelta(seconds=shutdown.time)
            assert timedelta(0) <= at - end < timedelta(seconds=1)  # its timer fired at endAt

        def test_bad_input(kruise_clock):
            with pytest.raises(InvalidError, match="seconds"):
                kruise_clock.advance(-1)

        @pytest.mark.kruise(clock="realtime:100")
        def test_realtime_waits_on_the_wall_clock(kruise_clock):
            assert kruise_clock.mode == "realtime"
            start = kruise_clock.now()
            assert kruise_clock.run_until(lambda: kruise_clock.now() > start + 1, timeout=60)
            with pytest.raises(InvalidError, match="realtime mode"):
                kruise_clock.advance(1)

        @pytest.mark.kruise(clock="realtime")
        def test_a_realtime_clock_reads_the_wall_clocks_date(kruise_clock):
            # The SDK's endAt is then on the test's own clock, as with `serve`.
            from datetime import UTC, datetime

            assert abs((kruise_clock.now_dt() - datetime.now(UTC)).total_seconds()) < 10
        """
    )
    suite.runpytest().assert_outcomes(passed=7)


def test_kruise_faults_by_name_scoped_and_cleared(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError
        from pytest_kruise_agents.claiming.errors import ClaimError

        @pytest.fixture
        def cleared_afterwards(kruise_backend):
            yield
            # Torn down after kruise_faults (set up before it): everything is undone.
            assert kruise_backend.faults() == []
            with kruise_backend.locked() as cluster:
                assert str(cluster.profile.latency("runtime.init")) != "fixed(3s)"

        def test_for_the_test(cleared_afterwards, kruise_faults, kruise_cluster):
            f = kruise_faults.inject("runtime_init_failure", selector={"template": "base"})
            assert f["id"] and [x["id"] for x in kruise_faults.active()] == [f["id"]]
            with pytest.raises(ClaimError, match="init runtime"):
                kruise_cluster.create_sandbox("base")
            kruise_faults.set_latency("runtime.init", "3s")

        def test_in_a_block(kruise_faults, kruise_cluster):
            with kruise_faults.fault("runtime_init_failure"):
                with pytest.raises(ClaimError):
                    kruise_cluster.create_sandbox("base")
            assert kruise_faults.active() == []
            kruise_cluster.create_sandbox("base")

        def test_latency_in_a_block(kruise_faults, kruise_cluster):
            with kruise_faults.latency("runtime.init", "800ms"):
                kruise_cluster.create_sandbox("base")
                assert kruise_cluster.last_record().latency > 0.8
            kruise_cluster.create_sandbox("base")
            assert kruise_cluster.last_record().latency < 0.5

        def test_unknown_names(kruise_faults):
            with pytest.raises(InvalidError, match="kind: unsupported value 'meteor_strike'"):
                kruise_faults.inject("meteor_strike")
            with pytest.raises(InvalidError, match="unknown latency 'runtime.int'"):
                kruise_faults.set_latency("runtime.int", "1s")
        """
    )
    suite.runpytest().assert_outcomes(passed=4)


def test_kruise_faults_hands_back_a_dict_and_a_live_view(suite: pytest.Pytester) -> None:
    """docs/plugin.md, ``kruise_faults``: ``inject`` and ``fault`` give the fault as a plain dict
    (JSON-ready: recorded under xdist, sent as JSON), and ``view`` reads it live as it acts
    (``fired`` counts), as ``Cluster.inject``'s does, by key or attribute."""
    suite.makepyfile(
        """
        import json
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError
        from simulator.faults import Fault

        def test_live_view(kruise_faults, kruise_cluster):
            slow = {"latency": "1s", "selector": {"client": "sandbox-manager"}}
            with kruise_faults.fault("api_latency", **slow) as f:
                v = kruise_faults.view(f)
                assert v["fired"] == 0 and v.fired == 0
                kruise_cluster.create_sandbox("base")
                assert v["fired"] > 0 and v.fired == v["fired"] and f["fired"] == 0
                (snapshot,) = kruise_faults.active()
                assert v == snapshot and dict(v) == snapshot  # the mapping it was
                (in_force,) = kruise_cluster.faults
                assert isinstance(v.fault, Fault) and v.fault == in_force  # the cluster's view
            fired = v["fired"]
            kruise_cluster.create_sandbox("base")
            assert v["fired"] == fired  # cleared: it acts no more, and still reads its count
            with pytest.raises(InvalidError, match="read-only"):
                v.fault.probability = 0.5
            assert kruise_faults.view(f["id"]) == v
            with pytest.raises(KeyError, match="'nope' was injected"):
                kruise_faults.view("nope")

        def test_a_view_reads_its_own_fault_when_an_id_is_reused(kruise_faults):
            first = kruise_faults.inject("api_error", id="flaky", probability=1.0)
            kruise_faults.clear("flaky")
            second = kruise_faults.inject("api_error", id="flaky", probability=0.25)
            assert kruise_faults.view(first).probability == 1.0
            assert kruise_faults.view(second).probability == 0.25
            assert kruise_faults.view("flaky").probability == 0.25  # an id names the latest

        def test_a_fault_block_ends_its_own_fault_not_a_later_one_under_its_id(
            kruise_faults, kruise_cluster
        ):
            # As Cluster.fault: the id was freed by the clear and names another fault now.
            scheduler = {"client": "kube-scheduler"}
            with kruise_faults.fault("api_error", id="x", selector=scheduler):
                kruise_faults.clear("x")
                kruise_faults.inject("api_latency", id="x", latency="1s", selector=scheduler)
            assert [(f.id, f.kind) for f in kruise_cluster.faults] == [("x", "api_latency")]
            with kruise_faults.fault("api_error", id="y", selector=scheduler):
                pass
            assert [f.id for f in kruise_cluster.faults] == ["x"]  # its own, still in force

        def test_inject_gives_a_plain_dict(kruise_faults, kruise_cluster, record_property):
            f = kruise_faults.inject("runtime_init_failure", count=1)
            assert type(f) is dict and json.loads(json.dumps(f)) == f
            record_property("fault", f)  # what xdist sends between processes
            assert (f["kind"], f["count"], f["fired"]) == ("runtime_init_failure", 1, 0)
            kruise_cluster.create_sandbox("base")  # the first /init fails, the second works
            assert kruise_faults.view(f)["fired"] == 1 and kruise_faults.active()[0]["fired"] == 1
            with pytest.raises(TypeError):
                kruise_faults.view(f)["fired"] = 0
        """
    )
    suite.runpytest().assert_outcomes(passed=4)
    suite.runpytest("-n", "2", "-p", "xdist").assert_outcomes(passed=4)


def test_sandboxset_applies_a_pool_and_waits_until_ready(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError

        def test_ready(sandboxset, kruise_cluster):
            pool = sandboxset("agents", replicas=4, labels={"team": "a"})
            assert pool.status.available_replicas == 4
            assert kruise_cluster.create_sandbox("agents").metadata.labels["team"] == "a"

        def test_from_a_manifest(sandboxset):
            pool = sandboxset(manifest={
                "apiVersion": "agents.kruise.io/v1alpha1",
                "kind": "SandboxSet",
                "metadata": {"name": "m", "namespace": "team-b"},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            })
            assert (pool.metadata.namespace, pool.status.available_replicas) == ("team-b", 2)

        def test_no_wait(sandboxset):
            assert sandboxset("later", replicas=2, wait=False).status.available_replicas == 0

        def test_bad_field_is_named(sandboxset):
            with pytest.raises(InvalidError, match="spec.replicas"):
                sandboxset("bad", replicas=-1)

        @pytest.mark.kruise(nodes=1)
        def test_a_pool_that_cannot_fit_times_out(sandboxset):
            sandboxset("huge", replicas=400, timeout=30)
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *TimeoutError: SandboxSet default/huge: */400 available after 30s; a pod of it is"
            " unschedulable: 0/1 nodes are available: 1 Insufficient cpu. preemption: *"
        ]
    )


def test_sandboxset_reapplied_with_a_new_image_waits_until_the_pool_runs_it(
    suite: pytest.Pytester,
) -> None:
    """A re-apply that changes the template returns once the pool's sandboxes run the new one."""
    suite.makepyfile(
        """
        def test_reapply(sandboxset, kruise_cluster):
            sandboxset("agents", replicas=2, image="registry.example.com/sandbox:v1")
            t0 = kruise_cluster.now
            pool = sandboxset("agents", replicas=2, image="registry.example.com/sandbox:v2")
            assert kruise_cluster.now > t0
            assert pool.status.observed_generation == pool.metadata.generation
            sbx = kruise_cluster.create_sandbox("agents")
            assert kruise_cluster.last_record().warm
            assert sbx.spec.template["spec"]["containers"][0]["image"].endswith(":v2")
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_sandboxset_reapplied_under_a_realtime_clock_waits_for_the_new_image_too(
    suite: pytest.Pytester,
) -> None:
    """Under a realtime clock the wait counts what the virtual one counts: the new revision's
    sandboxes available to the sandbox-manager, not the old ones still in the written status;
    and its timeout says what it counted."""
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(clock="realtime:100")
        def test_reapply(sandboxset, kruise_backend):
            sandboxset("agents", replicas=2, image="registry.example.com/sandbox:v1")
            sandboxset("agents", replicas=2, image="registry.example.com/sandbox:v2")
            with kruise_backend.locked() as cluster:
                sbx = cluster.create_sandbox("agents")
                assert cluster.last_record().warm
            assert sbx.spec.template["spec"]["containers"][0]["image"].endswith(":v2")

        @pytest.mark.kruise(clock="realtime:100")
        def test_timeout_counts_the_new_revision(sandboxset, kruise_backend):
            sandboxset("agents", replicas=2, image="registry.example.com/sandbox:v1")
            # The model's lock held from the apply to the check: the driver cannot run the
            # controller in between (at x100 a wall millisecond of a busy machine would do).
            with kruise_backend.locked(), pytest.raises(TimeoutError) as caught:
                sandboxset(
                    "agents", replicas=2, image="registry.example.com/sandbox:v2", timeout=0
                )
            # Checked at once: the controller has not yet seen the new spec.
            assert str(caught.value) == (
                "SandboxSet default/agents: 2/2 available (the controller has observed"
                " generation 1 of 2) after 0s"
            )
        """
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_sandbox_claim_applies_a_claim_and_waits_for_completed(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        def test_completed(sandbox_claim, kruise_cluster):
            claim = sandbox_claim("base", replicas=2, labels={"job": "x"})
            assert claim.status.phase == "Completed"
            assert claim.status.claimed_replicas == 2
            assert len(kruise_cluster.list("sbx", labels={"job": "x"})) == 2

        @pytest.mark.kruise(pools={"base": 1}, latencies={"pod.create": "60s"})
        def test_claim_timeout_completes_short(sandbox_claim):
            claim = sandbox_claim(replicas=2, claim_timeout="5s", create_on_no_stock=False)
            assert claim.status.phase == "Completed"
            assert claim.status.claimed_replicas == 1

        def test_no_wait(sandbox_claim):
            claim = sandbox_claim(name="mine", wait=False)
            assert claim.metadata.name == "mine"
            assert claim.status.phase is None

        def test_wait_has_a_limit(sandbox_claim):
            sandbox_claim(replicas=50, claim_timeout="10m", timeout=1)
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["E *TimeoutError: SandboxClaim default/claim-1: phase *, */50 claimed after 1s"]
    )


def test_sandbox_claim_takes_spec_fields_as_python_builds_them(suite: pytest.Pytester) -> None:
    """``sandbox_claim``'s keywords are SandboxClaimSpec fields as Python writes them: snake_case
    or camelCase at any depth, durations as strings, ``timedelta`` or seconds, parts as models;
    a wrong one raises one ``InvalidError`` naming it, and nothing is applied."""
    suite.makepyfile(
        """
        import re
        from datetime import timedelta

        import pytest
        from pytest_kruise_agents.api.errors import InvalidError
        from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig, InplaceUpdate

        SECONDS = [30, 30.0, timedelta(seconds=30), "30s"]

        @pytest.mark.parametrize("value", SECONDS)
        def test_durations(sandbox_claim, value):
            claim = sandbox_claim(
                claim_timeout=value, waitReadyTimeout=value, ttl_after_completed=value
            )
            assert claim.spec.claim_timeout == timedelta(seconds=30)
            assert claim.spec.wait_ready_timeout == timedelta(seconds=30)
            assert claim.spec.ttl_after_completed == timedelta(seconds=30)

        @pytest.mark.parametrize("mount", [
            {"pv_name": "pv", "mount_path": "/m"},
            {"pvName": "pv", "mountPath": "/m"},
            CSIMountConfig(pv_name="pv", mount_path="/m"),
        ])
        def test_nested_parts(sandbox_claim, mount):
            claim = sandbox_claim(
                dynamic_volumes_mount=[mount],
                inplace_update=InplaceUpdate(image="python:3.13"),
                wait=False,
            )
            assert claim.spec.dynamic_volumes_mount[0].pv_name == "pv"
            assert claim.spec.inplace_update.image == "python:3.13"

        BAD = [
            ({"claim_timeout": 0}, "SandboxClaim/claim-1 spec.claim_timeout: must be at least 1s"),
            ({"claimTimeout": "soon"}, "SandboxClaim/claim-1 spec.claimTimeout: "),
            ({"claim_timout": "3s"},
             "spec.claim_timout: unknown field (did you mean 'claim_timeout'?)"),
            ({"dynamic_volumes_mount": [{"mount_path": "/m"}]},
             "spec.dynamic_volumes_mount[0].pvName: required value"),
            ({"name": "Bad_Name"}, "SandboxClaim/Bad_Name metadata.name: "),
        ]

        @pytest.mark.parametrize(("kw", "message"), BAD)
        def test_a_wrong_field_is_named(sandbox_claim, kruise_cluster, kw, message):
            with pytest.raises(InvalidError, match=re.escape(message)):
                sandbox_claim("base", **kw)
            assert kruise_cluster.list("sbc") == []
        """
    )
    suite.runpytest().assert_outcomes(passed=12)


def test_a_pool_of_no_replicas_is_ready_when_the_test_starts(suite: pytest.Pytester) -> None:
    """docs/plugin.md: every test starts with its pools ready, an empty one too.

    Ready means the sandbox-manager's cache holds the SandboxSet: until then
    it answers a create 400 "Template or Checkpoint not found". From an empty
    pool the first create is cold, on either clock.
    """
    suite.makepyfile(
        """
        import pytest
        from e2b import Sandbox

        @pytest.mark.kruise(pools={"base": 0})
        def test_in_python(kruise_cluster):
            kruise_cluster.create_sandbox("base")
            assert not kruise_cluster.last_record().warm

        @pytest.mark.kruise(pools={"base": 0})
        def test_over_the_sdk(kruise_e2b, kruise_cluster):
            Sandbox.create("base").kill()
            assert not kruise_cluster.last_record().warm

        @pytest.mark.kruise(pools={"base": 0}, clock="realtime:20")
        def test_over_the_sdk_in_realtime(kruise_e2b, kruise_cluster):
            Sandbox.create("base").kill()

        @pytest.mark.kruise(pools=0)
        def test_pools_0_are_the_default_pools_empty(kruise_cluster):
            assert [s.metadata.name for s in kruise_cluster.list("sbs")] == [
                "base", "code-interpreter-v1"
            ]
            kruise_cluster.create_sandbox("code-interpreter-v1")
            assert not kruise_cluster.last_record().warm
        """
    )
    suite.runpytest().assert_outcomes(passed=4)


def test_kruise_e2b_serves_the_cluster_to_the_unmodified_sdk(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import os
        from e2b import Sandbox

        def test_env_and_sdk(kruise_e2b, kruise_cluster):
            assert os.environ["E2B_API_URL"] == kruise_e2b.url
            assert os.environ["E2B_SANDBOX_URL"] == kruise_e2b.url
            assert os.environ["E2B_API_KEY"] == kruise_e2b.api_key
            assert kruise_e2b.url.startswith("http://127.0.0.1:")
            sbx = Sandbox.create(metadata={"who": "test"})
            assert sbx.commands.run("echo hi").stdout == "hi\\n"
            assert kruise_cluster.last_record().warm
            assert kruise_e2b.sandboxes() == {sbx.sandbox_id: "running"}
            sbx.kill()
            assert kruise_e2b.sandboxes() == {}

        def test_explicit_connection(kruise_e2b):
            sbx = Sandbox.create("code-interpreter-v1", **kruise_e2b.connection())
            assert sbx.files.write("a.txt", "x").path.endswith("a.txt")
            sbx.kill()

        def test_env_is_restored():
            assert os.environ.get("E2B_API_URL") is None
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_kruise_e2b_unsets_the_sdk_variables_that_would_send_it_elsewhere(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/plugin.md: ``E2B_DOMAIN`` and ``E2B_DEBUG`` (a developer's shell may export them)
    are unset for the test, so the SDK goes where the fixture's URLs say; restored after."""
    monkeypatch.setenv("E2B_DOMAIN", "sandboxes.example.com")
    monkeypatch.setenv("E2B_DEBUG", "true")
    suite.makepyfile(
        """
        import os
        from e2b import Sandbox

        def test_sdk(kruise_e2b):
            assert "E2B_DOMAIN" not in os.environ and "E2B_DEBUG" not in os.environ
            sbx = Sandbox.create()
            assert sbx.commands.run("echo hi").stdout == "hi\\n"
            sbx.kill()

        def test_env_is_restored():
            assert os.environ["E2B_DOMAIN"] == "sandboxes.example.com"
            assert os.environ["E2B_DEBUG"] == "true"
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_kruise_e2b_reaches_its_server_past_a_proxy_in_the_environment(
    suite: pytest.Pytester, dead_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy (``HTTP_PROXY``) the SDK would send every call to it, and no proxy can
    reach this host's loopback: the fixture adds the loopback hosts to ``NO_PROXY`` and
    ``no_proxy``, after the hosts they list, and ``kruise_e2b.env`` lists them too. Restored
    after the test, as the ``E2B_*`` variables are."""
    monkeypatch.setenv("NO_PROXY", "corp.example")
    suite.makepyfile(
        f"""
        import os
        from e2b import Sandbox

        def test_sdk(kruise_e2b):
            assert os.environ["HTTP_PROXY"] == {dead_proxy!r}
            sbx = Sandbox.create()
            assert sbx.commands.run("echo hi").stdout == "hi\\n"
            sbx.kill()

        def test_env(kruise_e2b):
            expected = "corp.example,127.0.0.1,localhost,::1"
            assert (os.environ["NO_PROXY"], os.environ["no_proxy"]) == (expected, expected)
            assert kruise_e2b.env["NO_PROXY"] == kruise_e2b.env["no_proxy"] == expected

        def test_env_is_restored():
            assert os.environ["NO_PROXY"] == "corp.example"
            assert "no_proxy" not in os.environ
        """
    )
    # A process of its own: the SDK reads the proxy variables once per process.
    suite.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=3)


def test_kruise_cluster_and_the_sdk_act_as_one_owner(suite: pytest.Pytester) -> None:
    """A sandbox ``kruise_cluster.create_sandbox`` made is the SDK key's own, and the other way round.

    The cluster's default owner (``DEFAULT_USER``) is the id of the default
    API key that ``E2B_API_KEY`` holds: before, ``Sandbox.connect(id)`` of a
    cluster-made sandbox raised SandboxNotFoundException and
    ``Sandbox.kill(id)`` silently did nothing.
    """
    suite.makepyfile(
        """
        from e2b import Sandbox
        from simulator.cluster import DEFAULT_USER

        def test_cluster_made_sandbox_through_the_sdk(kruise_e2b, kruise_cluster):
            sbx = kruise_cluster.create_sandbox("base")
            sid = kruise_cluster.sandbox_id(sbx)
            assert sbx.metadata.annotations["agents.kruise.io/owner"] == DEFAULT_USER
            assert [s.sandbox_id for s in Sandbox.list().next_items()] == [sid]
            assert Sandbox.connect(sid).sandbox_id == sid
            assert Sandbox.kill(sid) is True
            assert kruise_cluster.list_sandboxes() == ([], None)

        def test_sdk_made_sandbox_through_the_cluster(kruise_e2b, kruise_cluster):
            sbx = Sandbox.create()
            assert kruise_cluster.describe(sbx.sandbox_id).metadata.name
            assert kruise_cluster.last_record().owner == DEFAULT_USER
            kruise_cluster.kill(sbx.sandbox_id)
            assert kruise_e2b.sandboxes() == {}
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_sandboxes_left_behind_are_killed_and_reported(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from e2b import Sandbox

        def test_leaks_two(kruise_e2b):
            Sandbox.create().pause()
            Sandbox.create()

        def test_cleans_up(kruise_e2b):
            Sandbox.create().kill()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=2)
    # The two are listed by id, whichever comes first.
    result.stdout.re_match_lines(
        [
            r".*- kruise-agents: sandboxes left behind, killed at teardown -.*",
            r"test_sandboxes_left_behind_are_killed_and_reported\.py::test_leaks_two: 2 killed: "
            r"default--base-\w+ \((running|paused)\), default--base-\w+ \((running|paused)\)$",
        ]
    )
    assert "(running)" in result.stdout.str() and "(paused)" in result.stdout.str()
    assert "test_cleans_up:" not in result.stdout.str()


def test_sandboxes_the_factories_made_are_not_reported_as_left_behind(
    suite: pytest.Pytester,
) -> None:
    """``sandbox_claim`` and the SandboxClaim-path benchmark claim for the test, in either fixture
    order; only what the test itself leaves (the SDK sandbox) is reported."""
    suite.makepyfile(
        """
        from e2b import Sandbox
        from pytest_kruise_agents.delivery import Burst

        def test_claim_first(sandbox_claim, kruise_e2b):
            sandbox_claim("base", replicas=2)
            assert len(kruise_e2b.sandboxes()) == 2

        def test_claim_last(kruise_e2b, sandbox_claim):
            sandbox_claim("base", replicas=1, wait=False)

        def test_benchmark(delivery_benchmark, kruise_e2b):
            delivery_benchmark(Burst(2, path="sandboxclaim"))
            assert kruise_e2b.sandboxes() == {}  # the run deleted what it measured

        def test_own_leak_still_reported(kruise_e2b, sandbox_claim):
            sandbox_claim("base", replicas=1)
            Sandbox.create()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=4)
    output = result.stdout.str()
    assert "test_claim_first:" not in output
    assert "test_claim_last:" not in output
    assert "test_benchmark:" not in output
    result.stdout.re_match_lines(
        [r".*::test_own_leak_still_reported: 1 killed: default--base-\w+ \(running\)$"]
    )


def test_sandboxes_a_claim_took_from_another_namespace_are_the_factorys_too(
    suite: pytest.Pytester,
) -> None:
    """Under ``openkruise-v0.3.0`` a claim takes from pools in every namespace (bug #824):
    what it took elsewhere is still the factory's, not the test's leftovers."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.backends.sim import default_pools_yaml

        POOLS = [default_pools_yaml(1, pools=("base",)),
                 default_pools_yaml(6, namespace="other", pools=("base",))]

        @pytest.mark.kruise(profile="openkruise-v0.3.0", pools=POOLS)
        def test_claim(sandbox_claim, kruise_e2b):
            sandbox_claim("base", replicas=4)
            assert any(i.startswith("other--") for i in kruise_e2b.sandboxes())
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    assert "left behind" not in result.stdout.str()


def test_e2b_sandbox_creates_with_the_sdk_and_kills_at_teardown(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from e2b_code_interpreter import Sandbox as CodeInterpreter

        def test_sync(e2b_sandbox, kruise_e2b):
            sbx = e2b_sandbox()
            assert sbx.commands.run("pwd").stdout.strip().endswith("/home/user")
            other = e2b_sandbox("code-interpreter-v1", metadata={"k": "v"})
            assert other.get_info().metadata["k"] == "v"
            assert set(kruise_e2b.sandboxes()) == set(e2b_sandbox.created)

        def test_sdk_class(e2b_sandbox):
            sbx = e2b_sandbox(cls=CodeInterpreter)
            assert type(sbx) is CodeInterpreter
            assert sbx.get_info().template_id == "code-interpreter-v1"

        @pytest.mark.asyncio
        async def test_async(e2b_sandbox):
            sbx = await e2b_sandbox.acreate(timeout=120)
            assert (await sbx.commands.run("echo async")).stdout == "async\\n"
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=3)
    assert "left behind" not in result.stdout.str()


def test_failures_inside_fixtures_read_clearly(suite: pytest.Pytester) -> None:
    """Pools that cannot fill are blamed on where they come from: the marker's ``pools``, or
    the config file's ``sandboxsets`` (on the marker's nodes or the file's)."""
    suite.makefile(
        ".yaml",
        cluster="""
sandboxsets: |
  apiVersion: agents.kruise.io/v1alpha1
  kind: SandboxSet
  metadata: {name: big, namespace: default}
  spec:
    replicas: 300
    template: {spec: {containers: [{name: c, image: i}]}}
""",
    )
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.kruise(pools=300, nodes=1)
        def test_pools_too_big(kruise_cluster):
            pass

        @pytest.mark.kruise(config="cluster.yaml", nodes=1)
        def test_config_pools_too_big(kruise_cluster):
            pass
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "pytest-kruise-agents: @pytest.mark.kruise pools: SandboxSet default/base: "
            "*/300 available after 600s; a pod of it is unschedulable: "
            "0/1 nodes are available: 1 Insufficient cpu. preemption: *",
            "pytest-kruise-agents: *cluster.yaml: sandboxsets: SandboxSet default/big: "
            "*/300 available after 600s; a pod of it is unschedulable: "
            "0/1 nodes are available: 1 Too many pods. preemption: *",
        ],
        consecutive=False,
    )


def test_sandboxes_left_behind_are_killed_and_reported_whatever_faults_are_in_force(
    suite: pytest.Pytester,
) -> None:
    """Teardown lifts the faults still in force before it kills, so nothing goes unreported.

    ``kruise_faults`` listed first is torn down after ``kruise_e2b``: its
    faults (an API error on every call, a stalled controller) are still in
    force when the leftovers are killed, and ``e2b_sandbox``'s own kills run
    under them too.
    """
    suite.makepyfile(
        """
        import pytest
        from e2b import Sandbox
        from pytest_kruise_agents.plugin.server import claimed_sandboxes

        @pytest.fixture
        def nothing_left(kruise_backend):
            yield
            # Torn down last: every sandbox is gone.
            assert claimed_sandboxes(kruise_backend) == {}

        def test_api_error(kruise_faults, kruise_e2b):
            Sandbox.create()
            kruise_faults.inject("api_error", probability=1.0, code=500)

        def test_stalled(kruise_faults, kruise_e2b):
            Sandbox.create()
            kruise_faults.inject("controller_stall")

        def test_without_kruise_faults(kruise_backend, kruise_e2b):
            Sandbox.create()
            kruise_backend.inject("api_error", probability=1.0, code=500)

        def test_factory(nothing_left, kruise_faults, e2b_sandbox):
            e2b_sandbox()
            kruise_faults.inject("api_error", probability=1.0, code=500)
        """
    )
    result = suite.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.re_match_lines(
        [
            r".*- kruise-agents: sandboxes left behind, killed at teardown -.*",
            r".*::test_api_error: 1 killed: default--base-\w+ \(running\)$",
            r".*::test_stalled: 1 killed: default--base-\w+ \(running\)$",
            r".*::test_without_kruise_faults: 1 killed: default--base-\w+ \(running\)$",
        ]
    )
    assert "test_factory:" not in result.stdout.str()  # its own sandbox, killed by the factory


def test_a_latency_block_of_an_earlier_fixture_is_lifted_before_the_teardown_kills(
    suite: pytest.Pytester,
) -> None:
    """docs/plugin.md, ``kruise_e2b``: ``kruise_faults``' latencies are restored before the
    leftovers are killed, whatever the order of the fixtures: those of a ``with`` block too.

    A yield fixture set up before ``kruise_e2b`` ends its block after ``kruise_e2b`` is torn
    down: the kills ran under its 20 s deletes (20 s of wall time on a realtime clock).
    """
    suite.makepyfile(
        """
        import pytest
        from e2b import Sandbox

        @pytest.fixture
        def slow_deletes(kruise_faults, kruise_clock, kruise_backend):
            ended = []
            with kruise_faults.latency("api.delete", "20s"):
                yield ended
                # kruise_e2b is torn down first: its kills are over, the latency restored.
                assert kruise_backend.latency("api.delete")["changed"] is False
                assert kruise_clock.now() - ended[0] < 1, "the kills waited the 20 s deletes"
            assert kruise_backend.latency("api.delete")["changed"] is False

        def test_leak(slow_deletes, kruise_e2b, kruise_clock, kruise_backend):
            Sandbox.create()
            assert kruise_backend.latency("api.delete")["changed"] is True
            slow_deletes.append(kruise_clock.now())
        """
    )
    result = suite.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r".*::test_leak: 1 killed: default--base-\w+ \(running\)$"])


def test_a_kill_that_fails_is_reported_with_its_reason(suite: pytest.Pytester) -> None:
    """``reap`` tries every sandbox and returns why a kill failed; the summary says NOT killed."""
    suite.makepyfile(
        """
        from e2b import Sandbox
        from pytest_kruise_agents.plugin.reporting import leak_lines

        def test_reap_under_a_fault(kruise_e2b):
            first, second = Sandbox.create(), Sandbox.create()
            fault = kruise_e2b.backend.inject("api_error", probability=1.0, code=500)
            found = kruise_e2b.reap()
            assert sorted(sid for sid, _, _ in found) == sorted(
                [first.sandbox_id, second.sandbox_id]
            )
            assert all(state == "running" for _, state, _ in found)
            assert all(error and error.startswith("kill failed: 500") for _, _, error in found)
            kruise_e2b.backend.clear_faults(fault["id"])
            assert [error for _, _, error in kruise_e2b.reap()] == [None, None]
            assert kruise_e2b.sandboxes() == {}

        def test_lines():
            lines = leak_lines(
                [("t.py::test_a", [["default--a", "running"], ["default--b", "paused", "kill failed: 500 boom"]])]
            )
            assert lines == [
                "t.py::test_a: 1 killed: default--a (running); "
                "1 NOT killed: default--b (paused; kill failed: 500 boom)"
            ]
        """
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_a_sandboxset_manifest_that_is_not_one_sandboxset_changes_nothing(
    suite: pytest.Pytester,
) -> None:
    """``sandboxset(manifest=...)`` with two objects raises one InvalidError before applying any."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError

        POOL = '''
        apiVersion: agents.kruise.io/v1alpha1
        kind: SandboxSet
        metadata: {{name: {name}}}
        spec:
          replicas: 1
          template: {{spec: {{containers: [{{name: c, image: i}}]}}}}
        '''

        def test_two(sandboxset, kruise_cluster):
            before = [p.metadata.name for p in kruise_cluster.list("sbs")]
            two = POOL.format(name="one") + "---" + POOL.format(name="two")
            with pytest.raises(InvalidError, match="manifest: must be exactly one SandboxSet, "
                               "got SandboxSet, SandboxSet"):
                sandboxset(manifest=two)
            assert [p.metadata.name for p in kruise_cluster.list("sbs")] == before
        """
    )
    suite.runpytest().assert_outcomes(passed=1)


def test_a_sandboxset_manifest_with_other_pool_arguments_is_refused(
    suite: pytest.Pytester,
) -> None:
    """``manifest=`` is the whole pool: ``name``, ``replicas`` and the other arguments that
    shape one cannot go with it (one would be ignored). The call raises one ``InvalidError``
    naming them, and applies nothing; ``wait`` and ``timeout`` go with either."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError

        POOL = {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }

        def test_both(sandboxset, kruise_cluster):
            before = [p.metadata.name for p in kruise_cluster.list("sbs")]
            with pytest.raises(
                InvalidError,
                match="manifest: is the whole SandboxSet: name, replicas cannot go with it",
            ):
                sandboxset("other", replicas=5, manifest=POOL)
            with pytest.raises(InvalidError, match="manifest: .*: labels cannot go with it"):
                sandboxset(manifest=POOL, labels={"team": "a"})
            assert [p.metadata.name for p in kruise_cluster.list("sbs")] == before

        def test_wait_and_timeout_go_with_a_manifest(sandboxset):
            pool = sandboxset(manifest=POOL, wait=True, timeout=60)
            assert (pool.metadata.name, pool.status.available_replicas) == ("p", 2)
        """
    )
    suite.runpytest().assert_outcomes(passed=2)


def test_a_bad_timeout_is_refused_before_anything_is_applied(suite: pytest.Pytester) -> None:
    """``sandboxset(..., timeout=-5)`` and ``sandbox_claim(..., timeout=-5)`` change nothing
    (nor does an infinite or NaN timeout: a wait must have an end)."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError

        BAD = [
            (-5, "timeout: must be >= 0, got -5"),
            (float("nan"), "timeout: must be a finite number of seconds, got nan"),
            (float("inf"), "timeout: must be a finite number of seconds, got inf"),
        ]

        @pytest.mark.parametrize(("timeout", "message"), BAD)
        def test_sandboxset(sandboxset, kruise_cluster, timeout, message):
            before = [p.metadata.name for p in kruise_cluster.list("sbs")]
            with pytest.raises(InvalidError, match=message):
                sandboxset("tn", replicas=2, timeout=timeout)
            assert [p.metadata.name for p in kruise_cluster.list("sbs")] == before

        @pytest.mark.parametrize(("timeout", "message"), BAD)
        def test_sandbox_claim(sandbox_claim, kruise_cluster, timeout, message):
            with pytest.raises(InvalidError, match=message):
                sandbox_claim("base", timeout=timeout)
            assert kruise_cluster.list("sbc") == []

        def test_a_timeout_of_another_kind(sandbox_claim, kruise_cluster):
            with pytest.raises(InvalidError, match="timeout: must be a number of seconds, got '60'"):
                sandbox_claim("base", timeout="60")
            assert kruise_cluster.list("sbc") == []
        """
    )
    suite.runpytest().assert_outcomes(passed=7)


def test_e2b_sandbox_connection_keywords_replace_the_servers(suite: pytest.Pytester) -> None:
    """``e2b_sandbox(api_key=...)`` creates with that key (no duplicate-keyword TypeError)."""
    suite.makepyfile(
        """
        import pytest
        from e2b import AuthenticationException

        def test_key(e2b_sandbox, kruise_e2b):
            sbx = e2b_sandbox(api_key=kruise_e2b.api_key, api_url=kruise_e2b.url)
            assert sbx.is_running()
            with pytest.raises(AuthenticationException):
                e2b_sandbox(api_key="e2b_not-a-key")

        @pytest.mark.asyncio
        async def test_async_key(e2b_sandbox, kruise_e2b):
            sbx = await e2b_sandbox.acreate(api_key=kruise_e2b.api_key)
            assert await sbx.is_running()
        """
    )
    result = suite.runpytest()
    result.assert_outcomes(passed=2)
    assert "left behind" not in result.stdout.str()


def test_kruise_clock_refuses_times_that_are_no_finite_number_of_seconds(
    suite: pytest.Pytester,
) -> None:
    """An infinite, NaN, negative or non-numeric time is one ``InvalidError`` naming the argument,
    in either clock mode, and moves nothing."""
    suite.makepyfile(
        """
        import pytest
        from pytest_kruise_agents.api.errors import InvalidError

        BAD = [float("inf"), float("nan"), -1, "5", True]

        def check(kruise_clock, kruise_cluster):
            start, events = kruise_clock.now(), len(kruise_cluster.log)
            asked = []
            for bad in BAD:
                with pytest.raises(InvalidError, match="timeout: must be"):
                    kruise_clock.run_until(lambda: asked.append(bad) or False, timeout=bad)
            # Refused before any wait began: the predicate was never asked. (A realtime
            # clock moves meanwhile on its own, as far as the machine lets the test lag.)
            assert asked == [] and len(kruise_cluster.log) == events
            if kruise_clock.mode == "virtual":
                assert kruise_clock.now() == start

        def test_run_until(kruise_clock, kruise_cluster):
            check(kruise_clock, kruise_cluster)

        @pytest.mark.kruise(clock="realtime:10")
        def test_run_until_realtime(kruise_clock, kruise_cluster):
            check(kruise_clock, kruise_cluster)

        def test_advance(kruise_clock, kruise_cluster):
            start = kruise_clock.now()
            for bad in BAD:
                with pytest.raises(InvalidError, match="seconds: must be"):
                    kruise_clock.advance(bad)
            assert kruise_clock.now() == start
            kruise_clock.advance(1e-12)  # too small to move the clock: what is due now runs
            assert kruise_clock.now() == pytest.approx(start)

        def test_any_real_number_will_do(kruise_clock):
            from fractions import Fraction
            import numpy

            start = kruise_clock.now()
            kruise_clock.advance(numpy.int64(2))
            kruise_clock.advance(Fraction(1, 2))
            assert kruise_clock.now() == pytest.approx(start + 2.5)
            assert kruise_clock.run_until(lambda: False, timeout=numpy.float32(0.5)) is False
            assert kruise_clock.now() == pytest.approx(start + 3)

        @pytest.mark.kruise(clock="realtime:10")
        def test_advance_realtime(kruise_clock):
            with pytest.raises(InvalidError, match="seconds: time follows the wall clock"):
                kruise_clock.advance(1)
        """
    )
    suite.runpytest().assert_outcomes(passed=5)


def test_waiting_no_time_at_all_is_a_plain_no(suite: pytest.Pytester) -> None:
    """``timeout=0``: ``run_until`` returns False, the factories time out, as after any wait."""
    suite.makepyfile(
        """
        import pytest

        def test_run_until(kruise_clock, kruise_cluster):
            start = kruise_clock.now()
            due_now = kruise_cluster.env.timeout(0)
            assert kruise_clock.run_until(lambda: False, timeout=0) is False
            assert kruise_clock.now() == start
            assert not due_now.processed  # it only checks: nothing runs, not even what is due
            kruise_cluster.env.timeout(5)  # an event exactly at the deadline
            assert kruise_clock.run_until(lambda: False, timeout=5) is False
            assert kruise_clock.now() == pytest.approx(start + 5)

        def test_sandbox_claim(sandbox_claim):
            with pytest.raises(TimeoutError, match="after 0s"):
                sandbox_claim(timeout=0)

        def test_sandboxset(sandboxset):
            # On the virtual clock no time passes: the controller has not seen the set.
            with pytest.raises(TimeoutError, match="0/2 available .not yet seen by the controller. after 0s"):
                sandboxset("now", replicas=2, timeout=0)

        @pytest.mark.kruise(clock="realtime:50")
        def test_sandboxset_realtime(sandboxset, kruise_backend):
            # The model's lock held from the apply to the check: at x50 the pool fills in about
            # 110 wall milliseconds, which a busy machine may let pass in between. The message
            # ends there: a wait that ignored timeout=0 would end on the held model's stall.
            with kruise_backend.locked(), pytest.raises(TimeoutError, match="0/2 available .not yet seen by the controller. after 0s$"):
                sandboxset("later", replicas=2, timeout=0)
        """
    )
    suite.runpytest().assert_outcomes(passed=4)


def test_sandboxes_the_test_killed_to_be_recycled_are_not_left_behind(
    suite: pytest.Pytester,
) -> None:
    """A kill (204) of a ``cleanup-enabled`` sandbox recycles it: during its grace period E2B
    shows it paused, yet the test did not leave it behind, whether ``e2b_sandbox`` made it or
    the SDK did. Recycled and claimed again under the same id, it is another sandbox:
    ``e2b_sandbox``'s teardown spares it, and the report names it as the test's leftover.
    (One node with room for one sandbox: the pool cannot refill, so the next create gets the
    recycled one.)"""
    pool = "".join(f"  {line}\n" for line in RECYCLING_POOL.splitlines())
    suite.makefile(
        ".yaml",
        cluster=f"nodes:\n  - {{name: node-1, cpu: 8, memory: 16Gi, maxPods: 1}}\n"
        f"sandboxsets: |\n{pool}",
    )
    suite.makepyfile(
        """
        import pytest
        from e2b import Sandbox

        pytestmark = pytest.mark.kruise(config="cluster.yaml")

        def test_sdk_kill(kruise_e2b):
            sbx = Sandbox.create("reuse")
            sbx.kill()
            assert kruise_e2b.sandboxes() == {}

        def test_factory_kill(e2b_sandbox, kruise_e2b):
            e2b_sandbox("reuse").kill()
            assert kruise_e2b.sandboxes() == {}

        def test_claims_the_recycled_id_again(e2b_sandbox, kruise_e2b, kruise_clock):
            first = e2b_sandbox("reuse")
            first.kill()
            kruise_clock.advance(30)  # past the grace period: back in its pool
            assert Sandbox.create("reuse").sandbox_id == first.sandbox_id
        """
    )
    result = suite.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    output = result.stdout.str()
    assert "test_sdk_kill:" not in output
    assert "test_factory_kill:" not in output
    result.stdout.re_match_lines(
        [r".*::test_claims_the_recycled_id_again: 1 killed: default--reuse-\w+ \(running\)$"]
    )


def test_kruise_cluster_factory_gives_each_hypothesis_example_its_own_cluster(
    suite: pytest.Pytester,
) -> None:
    """docs/plugin.md's Hypothesis example runs as written; each call is a fresh cluster built
    from the test's options, marker included, in the same state every time."""
    text = (ROOT / "docs" / "plugin.md").read_text()
    start = text.index("### `kruise_cluster_factory` (Hypothesis)")
    (example,) = re.findall(r"```python\n(.*?)```", text[start : text.index("\n### ", start)], re.S)
    suite.makepyfile(
        test_example=example,
        test_marker="""
        import pytest

        @pytest.mark.kruise(pools={"base": 2}, seed=4)
        def test_built_from_the_marker(kruise_cluster_factory, kruise_cluster):
            first, second = kruise_cluster_factory(), kruise_cluster_factory()
            assert first is not second and first is not kruise_cluster
            assert first.get("sbs", "base").spec.replicas == 2
            first.create_sandboxes(3, "base")
            assert [r.warm for r in first.records] == [True, True, False]
            assert len(second.records) == 0 and second.log.text() == kruise_cluster.log.text()
        """,
    )
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_hypothesis_example_passes_on_a_busy_machine(suite: pytest.Pytester) -> None:
    """docs/plugin.md's Hypothesis example does not time its examples: a cluster takes tens of
    milliseconds to build on an idle machine and several hundred on a busy one (a CI runner,
    xdist workers on few CPUs), past Hypothesis's default 200 ms deadline, which would fail the
    example with ``DeadlineExceeded`` or ``FlakyFailure`` by the wall clock alone. Here each
    build is made to take 250 ms, as it may on such a machine."""
    text = (ROOT / "docs" / "plugin.md").read_text()
    start = text.index("### `kruise_cluster_factory` (Hypothesis)")
    (example,) = re.findall(r"```python\n(.*?)```", text[start : text.index("\n### ", start)], re.S)
    suite.makeconftest(
        """
        import time

        import pytest

        from pytest_kruise_agents.plugin.factories import ClusterFactory


        @pytest.fixture(autouse=True)
        def busy_machine(monkeypatch):
            build = ClusterFactory.__call__

            def slow(self):
                time.sleep(0.25)
                return build(self)

            monkeypatch.setattr(ClusterFactory, "__call__", slow)
        """
    )
    suite.makepyfile(test_example=example)
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_no_fixture_keeps_a_finished_tests_cluster_alive(suite: pytest.Pytester) -> None:
    """Test items live as long as the session: what a fixture leaves on one (its stash) must
    not hold the test's cluster, or a suite keeps every test's cluster (objects, event log,
    records) until it ends. (No SDK call here: a keep-alive connection holds its last
    request, and so that request's app, until its next one.)"""
    suite.makepyfile(
        """
        import gc
        import weakref

        CLUSTERS = []

        def test_faults(kruise_cluster, kruise_faults):
            CLUSTERS.append(weakref.ref(kruise_cluster))
            kruise_faults.inject("runtime_init_failure", count=1)
            with kruise_faults.latency("api.update", "400ms"):
                kruise_cluster.create_sandbox("base")

        def test_factories(kruise_cluster, sandboxset, sandbox_claim, kruise_faults):
            CLUSTERS.append(weakref.ref(kruise_cluster))
            sandboxset("extra", replicas=1)
            sandbox_claim("extra", replicas=1)

        def test_served(kruise_cluster, kruise_e2b, kruise_faults):
            CLUSTERS.append(weakref.ref(kruise_cluster))
            kruise_cluster.create_sandbox("base")  # left behind, killed at teardown

        def test_zz_none_is_alive(kruise_cluster):
            while gc.collect():  # until nothing more is freed
                pass
            assert [ref() is None for ref in CLUSTERS] == [True, True, True]
        """
    )
    suite.runpytest("-p", "no:randomly").assert_outcomes(passed=4)

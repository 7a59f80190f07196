"""The sandbox-manager's E2B operations: semantics and status codes of reference §5.3 and §6."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import parse_time
from pytest_kruise_agents.api.durations import MAX_DURATION
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import (
    BadRequestError,
    ClaimCanceledError,
    ClaimError,
    ClaimTimeoutError,
    ConflictError,
    InternalError,
    NotFoundError,
    RetryExhaustedError,
)
from pytest_kruise_agents.claiming.extensions import (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_CREATE_ON_NO_STOCK,
    KEY_NEVER_TIMEOUT,
    KEY_RESERVE_FAILED_SANDBOX,
    KEY_SKIP_INIT_RUNTIME,
)
from pytest_kruise_agents.claiming.recycle import ANN_CLEANUP
from pytest_kruise_agents.claiming.state import is_reserved_failed
from pytest_kruise_agents.claiming.timeouts import truncate
from pytest_kruise_agents.claiming.view import e2b_state
from simulator.latency import Fixed
from simulator.manager import (
    SandboxManager,
    decode_next_token,
    encode_next_token,
    sandbox_id,
)
from tests.claiming.test_listing import reference_page
from tests.simulator.test_claim import FakeController, HandWorld

U1 = "user-1"
U2 = "user-2"


class Setup:
    """A hand-built world with a manager, a fake controller and a ``base`` pool."""

    def __init__(self, replicas: int = 3, *, runtime: bool = True, **knobs: Any) -> None:
        self.hw = HandWorld(**knobs)
        self.hw.pool(replicas=replicas, runtime=runtime)
        self.controller = FakeController(self.hw, delay=1.0)
        self.manager = SandboxManager(self.hw.world, self.hw.runtime)
        self.manager.start()
        self.hw.settle()

    def create(self, **kwargs: Any) -> Sandbox:
        kwargs.setdefault("namespace", "default")
        kwargs.setdefault("user", U1)
        kwargs.setdefault("template", "base")
        sbx: Sandbox = self.hw.run(self.manager.create_sandbox(**kwargs))
        return sbx

    def stored(self, name: str, namespace: str = "default", *, cached: bool = False) -> Sandbox:
        """Sandbox ``namespace/name`` as the API server (or, ``cached``, the manager's cache)
        holds it; the test expects it to be there."""
        if cached:
            sbx = self.manager.cache.get("Sandbox", namespace, name)
        else:
            sbx = self.hw.api.peek("Sandbox", namespace, name)
        assert isinstance(sbx, Sandbox), f"no Sandbox {namespace}/{name}"
        return sbx

    def fail(self, **kwargs: Any) -> ClaimError:
        with pytest.raises(ClaimError) as err:
            self.create(**kwargs)
        return err.value

    def cancel_after(self, seconds: float, **kwargs: Any) -> ClaimCanceledError:
        """A create whose client goes away ``seconds`` after sending it: its error."""
        kwargs.setdefault("namespace", "default")
        kwargs.setdefault("user", U1)
        kwargs.setdefault("template", "base")
        env = self.hw.env
        proc = env.process(self.manager.create_sandbox(**kwargs))
        env.timeout(seconds).callbacks.append(lambda _ev: proc.interrupt("client gone"))
        with pytest.raises(ClaimCanceledError) as err:
            env.run(until=proc)
        return err.value


@pytest.fixture
def s() -> Setup:
    return Setup()


# -- create ---------------------------------------------------------------------------------------


def test_create_claims_a_warm_sandbox(s: Setup) -> None:
    """A warm create is delivered at once, owned by the key, ending ``timeout`` from now."""
    t0 = s.hw.ctx.now_dt()
    sbx = s.create(timeout_s=600, metadata={"app": "x", "label:team": "a"}, env_vars={"K": "v"})
    meta = sbx.metadata
    assert meta.annotations[keys.ANN_OWNER] == U1
    assert meta.annotations["app"] == "x" and meta.labels["team"] == "a"
    assert sbx.spec.shutdown_time == truncate(t0 + timedelta(seconds=600))
    assert sbx.spec.pause_time is None
    assert sbx.spec.template is not None
    pod_labels = sbx.spec.template["metadata"]["labels"]
    assert pod_labels[keys.LABEL_SANDBOX_NAME] == meta.name
    assert pod_labels["team"] == "a"
    rec = s.hw.world.records[0]
    assert rec.path == "e2b" and rec.delivered is not None and rec.attempts == 1
    assert rec.lock_type == "update" and rec.error is None
    assert [e.kind for e in s.hw.ctx.log.of_kind("manager.claim")] == ["manager.claim"]


def test_create_defaults_and_auto_pause(s: Setup) -> None:
    """Default lifetime 300 s; auto-pause sets pauseTime and a 100-year shutdownTime."""
    t0 = s.hw.ctx.now_dt()
    plain = s.create()
    assert plain.spec.shutdown_time == truncate(t0 + timedelta(seconds=300))
    paused = s.create(auto_pause=True, timeout_s=60)
    assert paused.spec.pause_time == truncate(t0 + timedelta(seconds=60))
    assert paused.spec.shutdown_time == paused.spec.pause_time + timedelta(days=36500)
    forever = s.create(metadata={KEY_NEVER_TIMEOUT: "true"})
    assert forever.spec.shutdown_time is None and forever.spec.pause_time is None


def test_the_profile_sets_the_default_lifetime_and_the_resume_floor() -> None:
    """``default_timeout_s`` is the lifetime of a create (and a connect) that gives none;
    ``min_resume_timeout_s`` the floor of the timeout a connect to a paused sandbox sets."""
    s = Setup(default_timeout_s=900.0, min_resume_timeout_s=1200.0)
    t0 = s.hw.ctx.now_dt()
    sbx = s.create()
    assert sbx.spec.shutdown_time == truncate(t0 + timedelta(seconds=900))
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    s.hw.run(s.manager.connect("default", U1, sid, 30))
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None and stored.spec.shutdown_time is not None
    end = stored.spec.shutdown_time - s.hw.ctx.now_dt()
    assert timedelta(seconds=1190) <= end <= timedelta(seconds=1200)


def test_create_sets_internet_access_labels(s: Setup) -> None:
    """``allow_internet_access`` becomes a Sandbox label and a pod label."""
    sbx = s.create(allow_internet_access=False)
    assert sbx.metadata.labels[keys.LABEL_ALLOW_INTERNET_ACCESS] == "false"
    assert sbx.spec.template is not None
    assert sbx.spec.template["metadata"]["labels"][keys.LABEL_ALLOW_INTERNET_ACCESS] == "false"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metadata": {KEY_CLAIM_TIMEOUT_SECONDS: "soon"}}, "Bad extension param: "),
        ({"metadata": {"agents.kruise.io/x": "1"}}, "Bad metadata: "),
        ({"metadata": {"label:agents.kruise.io/x": "1"}}, "reserved prefix"),
        ({"timeout_s": 10}, "timeout"),
        ({"timeout_s": 2_592_001}, "timeout"),
        ({"template": "missing"}, "Template or Checkpoint not found"),
        # The team's own namespace only: "base" is in "default", not in "other".
        ({"namespace": "other"}, "Template or Checkpoint not found"),
        (
            {
                "metadata": {KEY_SKIP_INIT_RUNTIME: "true"},
                "volume_mounts": [{"name": "pv", "path": "/d"}],
            },
            f"{KEY_SKIP_INIT_RUNTIME}: CSI mounts (volumeMounts, ",
        ),
        ({"volume_mounts": [{"name": 5, "path": "/d"}]}, "volumeMounts[0].name: must be a string"),
        ({"env_vars": {"BIG": "x" * 300_000}}, "envVars: with the metadata"),
    ],
)
def test_bad_requests_answer_400_and_change_nothing(
    s: Setup, kwargs: dict[str, Any], fragment: str
) -> None:
    """Bad input answers 400 before any write, and the failure is recorded."""
    writes = s.hw.api.writes
    err = s.fail(**kwargs)
    assert err.code == 400 and fragment in str(err)
    # Named as the request names it: not the claim options' internal fields.
    assert "csi_mounts" not in str(err) and "pv_name" not in str(err)
    assert s.hw.api.writes == writes
    rec = s.hw.world.records[0]
    assert rec.failed is not None and rec.error_code == 400 and rec.attempts == 0


def test_an_unexpected_error_inside_a_create_still_completes_its_record(s: Setup) -> None:
    """An exception that is no ClaimError (a defect) propagates, but the create's record is
    completed as failed with a 500 and logged: no record waits for ever."""

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")
        yield  # pragma: no cover - a generator, as try_claim is

    s.manager.claimer.try_claim = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="boom"):
        s.create()
    rec = s.hw.world.records[0]
    assert rec.failed is not None and rec.delivered is None
    assert (rec.error, rec.error_code) == ("RuntimeError: boom", 500)
    (line,) = s.hw.ctx.log.of_kind("manager.claim_failed")
    assert "code=500 reason=InternalError" in line.detail


def test_no_stock_is_retried_then_answers_500() -> None:
    """Without stock and no-stock creation, 10 attempts over 1…16 s back-offs end in a 500."""
    s = Setup(replicas=0)
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert isinstance(err, RetryExhaustedError) and err.code == 500
    elapsed = s.hw.ctx.now() - t0
    assert 95.0 <= elapsed <= 95.0 * 1.3 + 1
    assert str(err).startswith("timed out waiting for the condition, last error: no stock")
    assert '"key":"default/base","reason":"no stock","count":10' in str(err)
    rec = s.hw.world.records[0]
    assert rec.attempts == 10 and rec.pick_failures == {"NoStock": 10}
    assert rec.error_code == 500 and rec.error_reason == "RetryExhausted"


def test_an_untyped_terminal_error_is_wrapped_with_what_came_before() -> None:
    """§5.3 "Final error": a 503 on the lock after a 409 answers Internal with the last
    error and the pick failures, not the bare 503."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=4)
    cluster.apply(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\nmetadata: {name: base}\n"
        "spec: {replicas: 3, runtimes: [{name: agent-runtime}],\n"
        "       template: {spec: {containers: [{name: c, image: i}]}}}\n"
    )
    cluster.wait_for_pool("base")
    lock = {"verb": "update", "kind": "Sandbox", "client": "sandbox-manager"}
    cluster.inject("api_conflict", selector=lock, count=1)
    cluster.inject("api_error", selector=lock, code=503, start=cluster.now + 0.5, count=1)
    with pytest.raises(InternalError) as info:
        cluster.create_sandbox("base")
    message = str(info.value)
    assert message.startswith("injected 503 on update Sandbox, last error: injected conflict")
    assert '"reason":"conflict","count":1}]' in message
    rec = cluster.last_record()
    assert (rec.attempts, rec.error_code, rec.error) == (2, 500, message)


def test_fixed_retry_profile_retries_every_25ms_until_the_claim_timeout() -> None:
    """The v0.3.0 retry: 25 ms apart, bounded by the 60 s default claim timeout."""
    s = Setup(replicas=0, retry="fixed", e2b_default_claim_timeout_s=2.0)
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert err.code == 500
    assert s.hw.ctx.now() - t0 == pytest.approx(2.0, abs=0.1)
    rec = s.hw.world.records[0]
    assert 60 <= rec.attempts <= 80


def test_fixed_retry_without_a_claim_timeout_ends_at_the_profile_s_budget_and_says_so() -> None:
    """With no claim timeout upstream's steps are endless (ClaimTimeout/25 ms of 100 years);
    the model stops after ``fixed_retry_attempts`` attempts, and the error and the record
    name that budget: no silent cut."""
    s = Setup(replicas=0, retry="fixed", fixed_retry_attempts=40)
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert isinstance(err, RetryExhaustedError) and err.code == 500
    assert str(err).startswith(
        "retry budget exhausted: 40 attempts, the profile's fixed_retry_attempts "
        "(no claim timeout), last error: no stock"
    )
    rec = s.hw.world.records[0]
    assert rec.attempts == 40 and rec.pick_failures == {"NoStock": 40}
    assert (rec.error, rec.error_reason) == (str(err), "RetryExhausted")


def test_the_fixed_retry_budget_is_v030_s_one_minute_of_steps_by_default() -> None:
    """Unchanged, the budget is 2,400 attempts: ClaimTimeout/25 ms for v0.3.0's 1-minute
    claim timeout, so ``openkruise-head`` with ``retry: fixed`` stops after about 66 s."""
    s = Setup(replicas=0, retry="fixed")
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert "retry budget exhausted: 2400 attempts" in str(err)
    assert s.hw.world.records[0].attempts == 2400
    assert 2399 * 0.025 < s.hw.ctx.now() - t0 < 2399 * 0.030 + 2400 * PICK_S + 1e-6


def test_fixed_retry_without_a_claim_timeout_or_budget_retries_until_the_client_goes_away() -> None:
    """``fixed_retry_attempts=None`` is upstream's loop: past the 2,400 attempts of a minute,
    on until the client leaves."""
    s = Setup(replicas=0, retry="fixed", fixed_retry_attempts=None)
    err = s.cancel_after(200.0, metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert str(err) == "context canceled"
    rec = s.hw.world.records[0]
    assert rec.error_reason == "Canceled" and rec.attempts > 200 / 0.0305


def test_the_fixed_retry_budget_does_not_apply_under_a_claim_timeout() -> None:
    """A claim timeout sizes the steps itself (ClaimTimeout/25 ms) and ends the loop at its
    deadline, whatever ``fixed_retry_attempts`` says."""
    s = Setup(replicas=0, retry="fixed", fixed_retry_attempts=5)
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false", KEY_CLAIM_TIMEOUT_SECONDS: "2"})
    assert isinstance(err, ClaimTimeoutError)
    assert s.hw.ctx.now() - t0 == pytest.approx(2.0)
    assert s.hw.world.records[0].attempts > 60


PICK_S = 0.0005
"""The profile's ``manager.pick`` latency: each attempt of an empty pool lasts this long."""


def _retry_sleeps(s: Setup) -> list[float]:
    """The sleeps between the attempts of one create on an empty pool (no-stock creation off).

    Read from the claim record as the create runs: each attempt sets ``worker_acquired`` anew
    when it starts, and lasts one pick, so a gap between two starts is one pick and one sleep.
    """
    env = s.hw.env
    proc = env.process(
        s.manager.create_sandbox(
            namespace="default",
            user=U1,
            template="base",
            metadata={KEY_CREATE_ON_NO_STOCK: "false"},
        )
    )
    records = s.hw.world.records
    starts: list[float] = []
    while proc.is_alive:
        env.step()
        started = records[0].worker_acquired if len(records) else None
        if started is not None and (not starts or started != starts[-1]):
            starts.append(started)
    assert not proc.ok and records[0].attempts == len(starts)
    return [b - a - PICK_S for a, b in itertools.pairwise(starts)]


def test_each_back_off_is_its_base_times_a_jitter_drawn_from_1_to_1_3() -> None:
    """§5.3 / §9.1 (HEAD): the 9 sleeps between 10 attempts are 1, 2, 4, 8, 16, 16, 16, 16,
    16 s, each times its own factor drawn from U[1, 1.3]: strictly above the base (a draw of
    exactly 1 has probability zero), never above 1.3 times it, different from sleep to sleep
    and from seed to seed."""
    bases = [1.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0, 16.0]
    factors: list[tuple[float, ...]] = []
    for seed in range(1, 6):
        sleeps = _retry_sleeps(Setup(replicas=0, seed=seed))
        assert len(sleeps) == len(bases)
        ratios = tuple(sleep / base for sleep, base in zip(sleeps, bases, strict=True))
        assert all(1.0 + 1e-6 < r <= 1.3 + 1e-6 for r in ratios), ratios
        assert len({round(r, 6) for r in ratios}) == len(ratios), ratios
        factors.append(ratios)
    assert len(set(factors)) == len(factors)
    # Uniform on [1, 1.3]: 45 draws average 1.15 within a few hundredths.
    mean = sum(sum(f) for f in factors) / (len(factors) * len(bases))
    assert 1.1 < mean < 1.2


def test_the_v030_retry_sleeps_25ms_times_a_jitter_drawn_from_1_to_1_2() -> None:
    """§5.3 / §9.1 (v0.3.0): ``retry.OnError`` sleeps 25 ms times U[1, 1.2] between attempts:
    strictly above 25 ms, at most 30 ms, and no two runs of sleeps alike."""
    runs: list[tuple[float, ...]] = []
    for seed in (1, 2, 3):
        s = Setup(replicas=0, retry="fixed", e2b_default_claim_timeout_s=0.5, seed=seed)
        sleeps = _retry_sleeps(s)
        assert len(sleeps) >= 10
        assert all(0.025 + 1e-9 < x <= 0.030 + 1e-9 for x in sleeps), sleeps
        assert len({round(x, 9) for x in sleeps}) > len(sleeps) // 2
        runs.append(tuple(sleeps))
    assert len(set(runs)) == len(runs)


def test_a_waiting_claim_holds_one_deadline_however_many_times_it_retries() -> None:
    """The claim timeout is one timer per claim: the simulation's queue does not grow with
    the attempts of claims that wait for stock (a v0.3.0 claim retries every 25 ms)."""
    s = Setup(replicas=0, retry="fixed", e2b_default_claim_timeout_s=600.0)
    env = s.hw.env
    for _ in range(5):
        env.process(
            s.manager.create_sandbox(
                namespace="default",
                user=U1,
                template="base",
                metadata={KEY_CREATE_ON_NO_STOCK: "false"},
            )
        )
    env.run(until=env.now + 1.0)  # about 40 attempts each
    after_1s = len(env._queue)
    env.run(until=env.now + 9.0)  # about 400 attempts each
    assert len(env._queue) <= after_1s


def test_claim_timeout_bounds_the_whole_loop() -> None:
    """``claim-timeout-seconds`` ends the retry loop at the deadline with a 500."""
    s = Setup(replicas=0)
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false", KEY_CLAIM_TIMEOUT_SECONDS: "5"})
    assert isinstance(err, ClaimTimeoutError) and err.code == 500
    assert s.hw.ctx.now() - t0 == pytest.approx(5.0)
    assert str(err).startswith("context deadline exceeded, last error: no stock")


def test_claim_timeout_interrupts_an_attempt_and_cleans_up() -> None:
    """An attempt still initialising at the deadline is stopped and its sandbox deleted."""
    s = Setup(replicas=1, runtime=False)
    t0 = s.hw.ctx.now()
    err = s.fail(metadata={KEY_CLAIM_TIMEOUT_SECONDS: "1"})
    assert isinstance(err, ClaimTimeoutError)
    assert 1.0 <= s.hw.ctx.now() - t0 < 1.2
    s.hw.settle()
    assert s.hw.sandboxes() == []


def test_claim_timeout_during_the_cleanup_still_deletes_the_sandbox() -> None:
    """A deadline that falls while a failed attempt deletes its sandbox waits for the delete.

    A cut-short delete would leave a locked sandbox nobody owns; with
    never-timeout nothing would ever remove it.
    """
    s = Setup(replicas=1, runtime=False, latencies={"api.delete": Fixed(value=30.0)})
    err = s.fail(metadata={KEY_CLAIM_TIMEOUT_SECONDS: "20", KEY_NEVER_TIMEOUT: "true"})
    assert isinstance(err, ClaimTimeoutError)
    assert "last error: failed to init runtime" in str(err)
    s.hw.settle()
    assert s.hw.sandboxes() == []


def _deadline_failure(s: Setup, **kwargs: Any) -> tuple[ClaimError, str]:
    """The error of a create its claim timeout ends, and the sandbox its last attempt had."""
    err = s.fail(**kwargs)
    assert isinstance(err, ClaimTimeoutError) and err.code == 500
    rec = s.hw.world.records[-1]
    assert rec.error == str(err) and rec.error_reason == "ClaimTimeout"
    assert rec.sandbox is not None
    return err, rec.sandbox


def test_a_deadline_that_cuts_wait_ready_names_what_the_wait_saw() -> None:
    """The claim's deadline stops an attempt still waiting for its cold sandbox: the answer's
    last error is the wait-ready diagnosis of that sandbox, with the deadline as its cause
    (reference §5.2 step 6, §5.3), not ``<nil>``."""
    s = Setup(replicas=0)
    s.controller.delay = 30.0  # the cold sandbox takes longer than the claim may
    err, key = _deadline_failure(s, metadata={KEY_CLAIM_TIMEOUT_SECONDS: "3"})
    # The hand-built world's new sandbox has no phase yet (reason and state say so).
    assert str(err) == (
        f"context deadline exceeded, last error: sandbox {key} is not ready before wait "
        "timeout: reason=NotRunningResourceClaimed, state=paused, ready=false: context "
        "deadline exceeded, pick sandbox failures: []"
    )


def test_a_deadline_that_cuts_init_names_the_init_failures_so_far() -> None:
    """Stopped while its ``/init`` calls fail (a pool without agent-runtime), the attempt's
    error names the sandbox, the calls made and why the last one failed."""
    s = Setup(replicas=1, runtime=False)
    err, key = _deadline_failure(
        s, metadata={KEY_CLAIM_TIMEOUT_SECONDS: "1", KEY_CREATE_ON_NO_STOCK: "false"}
    )
    assert str(err).startswith(
        f"context deadline exceeded, last error: failed to init runtime of sandbox {key} after "
    )
    assert str(err).endswith(
        " attempts: connection refused: no agent-runtime in the sandbox: context deadline "
        "exceeded, pick sandbox failures: []"
    )


def test_a_deadline_that_cuts_a_later_attempt_names_that_attempts_sandbox() -> None:
    """The last error is the cut attempt's, not the one before it: its sandbox is the one the
    record names."""
    s = Setup(replicas=2, runtime=False)
    err, key = _deadline_failure(
        s, metadata={KEY_CLAIM_TIMEOUT_SECONDS: "5", KEY_CREATE_ON_NO_STOCK: "false"}
    )
    assert s.hw.world.records[-1].attempts == 2
    assert f"last error: failed to init runtime of sandbox {key} after " in str(err)
    assert str(err).count("sandbox default/") == 1


def test_a_deadline_that_cuts_the_mounts_names_them() -> None:
    """Stopped while its CSI volumes mount, the attempt's error says so."""
    s = Setup(replicas=1, latencies={"csi.mount": Fixed(value=30.0)})
    err, key = _deadline_failure(
        s,
        metadata={KEY_CLAIM_TIMEOUT_SECONDS: "2"},
        volume_mounts=[{"name": "pv-data", "path": "/data"}],
    )
    assert str(err) == (
        f"context deadline exceeded, last error: failed to mount csi volumes of sandbox {key}: "
        "context deadline exceeded, pick sandbox failures: []"
    )


def test_a_deadline_that_cuts_the_wait_for_a_claim_worker_says_so() -> None:
    """Before its lock an attempt waits for a claim worker; cut there, it says so."""
    s = Setup(replicas=2, claim_workers=1, latencies={"manager.pick": Fixed(value=5.0)})
    env = s.hw.env
    first = s.hw.outcome(s.manager.create_sandbox(namespace="default", user=U1, template="base"))
    second = s.hw.outcome(
        s.manager.create_sandbox(
            namespace="default",
            user=U1,
            template="base",
            metadata={KEY_CLAIM_TIMEOUT_SECONDS: "2"},
        )
    )
    env.run(until=env.all_of([first, second]))
    assert isinstance(first.value, Sandbox)
    assert str(second.value) == (
        "context deadline exceeded, last error: failed to acquire a claim worker: context "
        "deadline exceeded, pick sandbox failures: []"
    )


# -- the client going away (the request's context cancelled) ------------------------------------


def test_a_cancelled_create_stops_retrying_at_once() -> None:
    """Without stock the loop sleeps between attempts; the client leaving ends it there."""
    s = Setup(replicas=0)
    t0 = s.hw.ctx.now()
    err = s.cancel_after(4.0, metadata={KEY_CREATE_ON_NO_STOCK: "false"})
    assert err.code == 500 and str(err) == "context canceled"
    assert s.hw.ctx.now() - t0 == pytest.approx(4.0)
    rec = s.hw.world.records[0]
    assert rec.error == "context canceled" and rec.error_reason == "Canceled"
    assert rec.delivered is None and rec.failed == pytest.approx(t0 + 4.0)
    assert rec.attempts == 3  # at 0 s, after ~1 s and after ~3 s


@pytest.mark.parametrize("claim_timeout", [None, "60"], ids=["no-deadline", "deadline"])
def test_a_cancelled_create_deletes_what_it_locked(claim_timeout: str | None) -> None:
    """Cancelled while the runtime is initialised, the claim deletes its locked sandbox.

    Both loops: inline attempts (no claim timeout) and attempts in their own
    process under a deadline.
    """
    s = Setup(replicas=1, runtime=False)
    metadata = {KEY_NEVER_TIMEOUT: "true"}
    if claim_timeout is not None:
        metadata[KEY_CLAIM_TIMEOUT_SECONDS] = claim_timeout
    s.cancel_after(0.5, metadata=metadata)
    rec = s.hw.world.records[0]
    assert rec.locked is not None and rec.runtime_initialized is None
    s.hw.settle()
    assert s.hw.sandboxes() == []
    assert s.manager.claimer.in_flight == []


def test_pool_without_runtime_fails_then_skip_init_succeeds() -> None:
    """Against a pool without agent-runtime, every attempt fails at init and burns a sandbox."""
    s = Setup(replicas=4, runtime=False)
    err = s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false", KEY_CLAIM_TIMEOUT_SECONDS: "10"})
    assert err.code == 500 and "failed to init runtime" in str(err)
    s.hw.settle()
    left = len(s.hw.sandboxes())
    assert left < 4
    sbx = s.create(metadata={KEY_SKIP_INIT_RUNTIME: "true"})
    assert keys.ANN_INIT_RUNTIME_REQUEST not in sbx.metadata.annotations


def test_reserve_failed_sandbox_keeps_it_hidden() -> None:
    """``reserve-failed-sandbox`` keeps the failed sandbox, labelled, and hides it from the API."""
    s = Setup(replicas=1, runtime=False)
    s.fail(
        metadata={
            KEY_RESERVE_FAILED_SANDBOX: "true",
            KEY_CREATE_ON_NO_STOCK: "false",
            KEY_CLAIM_TIMEOUT_SECONDS: "8",
        }
    )
    s.hw.settle()
    (kept,) = s.hw.sandboxes()
    assert kept.metadata.labels[keys.LABEL_RESERVED_FAILED] == "true"
    with pytest.raises(NotFoundError):
        s.manager.describe("default", U1, sandbox_id(kept))
    assert s.manager.list_sandboxes("default", U1) == ([], None)


def test_create_limiter_denies_beyond_its_burst() -> None:
    """No-stock creations beyond the limiter's burst are refused until the deadline."""
    s = Setup(replicas=0, create_burst=2, create_qps=0.001)
    procs = [
        s.hw.outcome(
            s.manager.create_sandbox(
                namespace="default",
                user=U1,
                template="base",
                metadata={KEY_CLAIM_TIMEOUT_SECONDS: "3"},
            )
        )
        for _ in range(3)
    ]
    s.hw.env.run(until=s.hw.env.all_of(procs))
    values = [p.value for p in procs]
    assert sum(isinstance(v, Sandbox) for v in values) == 2
    (denied,) = [v for v in values if isinstance(v, ClaimError)]
    assert denied.code == 500 and "not allowed by rate limiter" in str(denied)


def test_the_create_limiter_grants_a_burst_of_49_then_49_per_second() -> None:
    """§5.1 / §9.1: the manager's no-stock creations pass one token bucket of 49 tokens a
    second, burst 49 (``--max-create-qps``); a denied create is a retriable failure.

    200 creates at once on an empty pool, with v0.3.0's retry (an attempt every 25 ms, so the
    demand never lets up) for 2.5 s: 49 creates go at the first instant, then about 49 in each
    following second, however many are waiting. A create's grant is the time its attempt
    picked, with the token; a create whose grant came is never denied again.
    """
    s = Setup(replicas=0, retry="fixed", e2b_default_claim_timeout_s=2.5)
    env = s.hw.env
    t0 = env.now
    procs = [
        s.hw.outcome(s.manager.create_sandbox(namespace="default", user=U1, template="base"))
        for _ in range(200)
    ]
    env.run(until=env.all_of(procs))
    grants = sorted(
        rec.picked - t0
        for rec in s.hw.world.records
        if rec.lock_type == "create" and rec.locked is not None and rec.picked is not None
    )
    first = PICK_S + 1e-9
    assert sum(g <= first for g in grants) == 49
    for second in (0, 1):
        n = sum(first + second < g <= first + second + 1 for g in grants)
        assert 46 <= n <= 51, (second, n)
    assert len(grants) < 200  # the demand outran the bucket throughout
    denied = sum(rec.pick_failures.get("RateLimited", 0) for rec in s.hw.world.records)
    assert denied > 200


def test_the_501st_concurrent_create_waits_for_a_claim_worker() -> None:
    """§5.1 / §5.2 step 1 / §9.1: the manager has 500 claim-worker slots, each held for one
    attempt's pick and lock and freed as soon as the lock is written.

    520 creates at once on a warm pool of 520, with a candidate window wide enough (1000)
    that no attempt misses a candidate: 500 start at once, the other 20 wait in request
    order, and each of them starts at the very instant an earlier create locks its sandbox.
    Nothing else delays them: every create is delivered warm at its first attempt.
    """
    s = Setup(replicas=520, candidate_count=1000)
    env = s.hw.env
    procs = [
        s.hw.outcome(s.manager.create_sandbox(namespace="default", user=U1, template="base"))
        for _ in range(520)
    ]
    env.run(until=env.all_of(procs))
    recs = list(s.hw.world.records)
    assert all(isinstance(p.value, Sandbox) for p in procs)
    assert {(rec.attempts, rec.lock_type) for rec in recs} == {(1, "update")}
    started = [rec.worker_acquired for rec in recs]
    assert started[:500] == [rec.requested for rec in recs[:500]]
    waited = recs[500:]
    locks = sorted(rec.locked for rec in recs if rec.locked is not None)
    assert [rec.worker_acquired for rec in waited] == locks[:20]
    assert locks[0] > waited[0].requested  # the first lock is written after a pick and a write


def test_admin_creates_in_any_namespace() -> None:
    """The admin team (namespace ``""``) claims from a pool of another namespace."""
    s = Setup(replicas=0)
    s.hw.pool("other", namespace="team-b", replicas=1)
    s.hw.settle()
    sbx = s.create(namespace="", template="other")
    assert sbx.metadata.namespace == "team-b"
    assert s.manager.describe("", U1, sandbox_id(sbx)) is not None


def test_no_stock_creation_is_delivered_when_ready() -> None:
    """An empty pool creates a sandbox (default create-on-no-stock) and waits for it."""
    s = Setup(replicas=0)
    sbx = s.create()
    rec = s.hw.world.records[0]
    assert rec.lock_type == "create" and rec.ready is not None
    assert sbx.spec.template is not None
    assert sbx.spec.template["metadata"]["labels"][keys.LABEL_SANDBOX_NAME] == ""


# -- describe / kill ------------------------------------------------------------------------------


def test_describe_right_after_create_uses_the_route_table(s: Setup) -> None:
    """The manager's own write is visible at once, before the watch event arrives."""
    sbx = s.create()
    sid = sandbox_id(sbx)
    assert sid == f"default--{sbx.metadata.name}" == s.manager.sandbox_id(sbx)
    assert s.manager.describe("default", U1, sid).metadata.resource_version == (
        sbx.metadata.resource_version
    )


def test_describe_and_kill_of_another_users_sandbox_is_404(s: Setup) -> None:
    """Ownership is checked for every user, the admin team included."""
    sid = sandbox_id(s.create())
    for namespace, user in (("default", U2), ("", U2), ("other", U1)):
        with pytest.raises(NotFoundError) as err:
            s.manager.describe(namespace, user, sid)
        assert err.value.code == 404
        assert str(err.value) == f"Sandbox route not found, maybe it is crashed or killed: {sid}"
        with pytest.raises(NotFoundError):
            s.hw.run(s.manager.kill(namespace, user, sid))
    assert s.manager.describe("", U1, sid) is not None


def test_pool_sandboxes_and_bad_ids_are_404(s: Setup) -> None:
    """A pool sandbox has no owner; a malformed id has no route."""
    pool_sbx = s.hw.sandboxes()[0]
    for sid in (sandbox_id(pool_sbx), "nonsense", "default--", "--x"):
        with pytest.raises(NotFoundError):
            s.manager.describe("default", U1, sid)


def test_kill_deletes_and_then_404s(s: Setup) -> None:
    """Kill deletes the sandbox; it is gone for describe at once and for kill afterwards."""
    sid = sandbox_id(s.create())
    s.hw.run(s.manager.kill("default", U1, sid))
    with pytest.raises(NotFoundError):
        s.manager.describe("default", U1, sid)
    s.hw.settle()
    with pytest.raises(NotFoundError):
        s.hw.run(s.manager.kill("default", U1, sid))
    assert len(s.hw.sandboxes()) == 2


def test_kill_of_a_sandbox_already_gone_still_succeeds(s: Setup) -> None:
    """A route known to the manager but whose Sandbox is already deleted answers 204."""
    sbx = s.create()
    s.hw.api.commit_delete("Sandbox", "default", sbx.metadata.name)
    s.hw.run(s.manager.kill("default", U1, sandbox_id(sbx)))


def _deleted_during_init(s: Setup, after: float) -> tuple[Sandbox, str]:
    """A never-timeout create whose sandbox is deleted ``after`` seconds into its ``/init``
    (which takes 0.9 s): the sandbox it delivered and the id of the one deleted."""
    env = s.hw.env
    proc = env.process(
        s.manager.create_sandbox(
            namespace="default", user=U1, template="base", metadata={KEY_NEVER_TIMEOUT: "true"}
        )
    )
    records = s.hw.world.records
    while len(records) == 0 or records[0].locked is None:
        env.step()
    rec = records[0]
    assert rec.sandbox is not None
    name = rec.sandbox.split("/")[1]
    s.hw.settle(after)
    s.hw.api.commit_delete("Sandbox", "default", name)
    sbx = env.run(until=proc)
    assert isinstance(sbx, Sandbox)
    return sbx, f"default--{name}"


@pytest.mark.parametrize("after", [0.2, 0.899])
def test_a_sandbox_deleted_during_init_is_not_delivered_nor_routed(after: float) -> None:
    """A sandbox deleted while its create's ``/init`` is in flight takes the call's connection
    with it: the attempt fails (``InitRuntimeFailed``) and the create retries onto a sandbox
    that exists (reference §5.2 steps 6-7, §5.3). The deleted one was never routed: describe,
    connect and ``/timeout`` answer 404 for it and the list omits it (reference §6.2), then and
    a day later, when a copy kept in the route table would still read running.

    Before, the ``/init`` answered as if the pod were there, and the create delivered the
    deleted sandbox (201 for a sandbox 404 everywhere from then on).
    """
    s = Setup(replicas=1, latencies={"runtime.init": Fixed(value=0.9)})
    sbx, gone = _deleted_during_init(s, after)
    name = sbx.metadata.name
    assert sandbox_id(sbx) != gone
    assert s.hw.api.peek("Sandbox", "default", name) is not None
    (rec,) = s.hw.world.records
    assert rec.attempts == 2 and rec.lock_type == "create"
    for wait in (0.2, 86400):
        s.hw.settle(wait)
        with pytest.raises(NotFoundError) as err:
            s.manager.describe("default", U1, gone)
        assert err.value.code == 404
        with pytest.raises(NotFoundError):
            s.hw.run(s.manager.connect("default", U1, gone, 60))
        with pytest.raises(NotFoundError):
            s.hw.run(s.manager.set_timeout("default", U1, gone, 60))
        listed = s.manager.list_sandboxes("default", U1)[0]
        assert [x.metadata.name for x in listed] == [name]
        assert s.manager.lookup(gone) is None


def _written_unseen(s: Setup, sbx: Sandbox, label: str) -> Sandbox:
    """Label ``sbx`` as a write of the manager's claimer that its cache has not seen yet (the
    watch lag after, say, the reserve write of a failed claim); return the stored copy."""
    now_stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert now_stored is not None
    cur = now_stored.model_copy(deep=True)
    cur.metadata.labels[label] = "true"
    stored: Sandbox = s.hw.api.commit_update(cur)
    s.manager.claimer.expect(stored)
    cached = s.manager.cache.get("Sandbox", "default", sbx.metadata.name)
    assert cached is not None and not s.manager.claimer.is_fresh(cached)
    return stored


def test_a_kill_within_the_watch_lag_of_a_reserve_write_keeps_the_reserved_failure(
    s: Setup,
) -> None:
    """Kill decides on a copy at least as new as the manager's own writes: its cache still holds
    the claimed, running copy, the API server the reserved one, so the kill answers 204 and
    the reserved failure stays (reference §6.2 DELETE, "not viewable ⇒ 204")."""
    sbx = s.create()
    s.hw.settle()
    stored = _written_unseen(s, sbx, keys.LABEL_RESERVED_FAILED)
    s.hw.run(s.manager.kill("default", U1, sandbox_id(sbx)))
    kept = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert kept is not None and kept.metadata.deletion_timestamp is None
    assert kept.metadata.resource_version == stored.metadata.resource_version
    assert not s.hw.ctx.log.of_kind("manager.kill")


def test_a_kill_within_the_watch_lag_of_another_write_still_deletes(s: Setup) -> None:
    """A stale cached copy of a sandbox that is still the caller's, and not reserved, on its
    fresh read: the kill deletes it, as it does from a fresh cache."""
    sbx = s.create()
    s.hw.settle()
    _written_unseen(s, sbx, "example.com/touched")
    s.hw.run(s.manager.kill("default", U1, sandbox_id(sbx)))
    gone = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert gone is None or gone.metadata.deletion_timestamp is not None
    assert len(s.hw.ctx.log.of_kind("manager.kill")) == 1


@pytest.mark.parametrize("seen", [False, True], ids=["within-the-watch-lag", "after-it"])
def test_a_reserved_failure_is_a_404_to_timeout_and_pause_as_to_describe(
    s: Setup, seen: bool
) -> None:
    """A reserved failure keeps its owner's route, yet E2B shows no such sandbox (reference §2):
    ``/timeout`` and ``/pause`` answer 404 for it, as describe and connect do, and write
    nothing. Within the watch lag of the reserve write the cache still holds the claimed,
    running copy; after it, the reserved one. Only kill answers 204 and keeps it (§6.2)."""
    sbx = s.create()
    s.hw.settle()
    stored = _written_unseen(s, sbx, keys.LABEL_RESERVED_FAILED)
    if seen:
        s.hw.settle()
        assert s.manager.claimer.is_fresh(s.stored(sbx.metadata.name, cached=True))
    sid = sandbox_id(sbx)
    writes = s.hw.api.writes
    for call in (
        s.manager.set_timeout("default", U1, sid, 60),
        s.manager.pause("default", U1, sid),
        s.manager.connect("default", U1, sid, 60),
    ):
        with pytest.raises(NotFoundError) as err:
            s.hw.run(call)
        assert err.value.code == 404
        assert str(err.value) == f"Sandbox route not found, maybe it is crashed or killed: {sid}"
    with pytest.raises(NotFoundError):
        s.manager.describe("default", U1, sid)
    assert s.hw.api.writes == writes
    s.hw.run(s.manager.kill("default", U1, sid))
    kept = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert kept is not None and kept.metadata.resource_version == stored.metadata.resource_version


def test_running_but_not_ready_is_reported_running(s: Setup) -> None:
    """A claimed sandbox whose pod is not Ready is still shown (as running)."""
    sbx = s.create()
    s.hw.settle()
    cur = s.stored(sbx.metadata.name).model_copy(deep=True)
    cur.status.conditions[0].status = "False"
    s.hw.api.commit_update(cur, subresource="status")
    s.hw.settle()
    assert s.manager.describe("default", U1, sandbox_id(sbx)) is not None


# -- timeout --------------------------------------------------------------------------------------


def test_set_timeout_may_shorten(s: Setup) -> None:
    """``POST /timeout`` always sets ``now + timeout``, shorter or longer."""
    sbx = s.create(timeout_s=3600)
    sid = sandbox_id(sbx)
    s.hw.settle(10)
    s.hw.run(s.manager.set_timeout("default", U1, sid, 60))
    now = s.hw.ctx.now_dt()
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    assert stored.spec.shutdown_time == truncate(now + timedelta(seconds=60))
    assert s.manager.describe("default", U1, sid).spec.shutdown_time == stored.spec.shutdown_time


def test_set_timeout_errors_are_500_except_404(s: Setup) -> None:
    """A bad timeout answers 500 (E2B spec), a foreign sandbox 404."""
    sid = sandbox_id(s.create())
    with pytest.raises(ClaimError) as err:
        s.hw.run(s.manager.set_timeout("default", U1, sid, 0))
    assert err.value.code == 500
    with pytest.raises(NotFoundError):
        s.hw.run(s.manager.set_timeout("default", U2, sid, 60))


def test_set_timeout_of_a_paused_sandbox_answers_500(s: Setup) -> None:
    """``/timeout`` answers 500 for anything but a 404: a paused sandbox (not running) too,
    and its end times stay as they are."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    before = s.stored(sbx.metadata.name).spec
    with pytest.raises(ClaimError) as err:
        s.hw.run(s.manager.set_timeout("default", U1, sid, 60))
    assert err.value.code == 500
    after = s.stored(sbx.metadata.name).spec
    assert (after.shutdown_time, after.pause_time) == (before.shutdown_time, before.pause_time)


def test_set_timeout_retries_on_conflict(s: Setup) -> None:
    """A conflicting write is re-read from the API server and retried."""
    sbx = s.create()
    s.hw.ctx.faults.inject(kind="api_conflict", count=2, selector={"client": "sandbox-manager"})
    s.hw.run(s.manager.set_timeout("default", U1, sandbox_id(sbx), 120))
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    assert stored.spec.shutdown_time == truncate(s.hw.ctx.now_dt() + timedelta(seconds=120))


def test_set_timeout_tries_its_write_five_times_then_answers_500() -> None:
    """``retry.RetryOnConflict(DefaultRetry)``: five tries. Four conflicts in a row are
    retried through; a fifth ends the call with a 500 (``/timeout`` answers 500 for all but
    404) and the sandbox keeps its end."""
    s = Setup()
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    selector = {"client": "sandbox-manager", "kind": "Sandbox"}
    four = s.hw.ctx.faults.inject(kind="api_conflict", count=4, selector=selector)
    s.hw.run(s.manager.set_timeout("default", U1, sid, 120))
    assert four.fired == 4
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    end = stored.spec.shutdown_time
    assert end == truncate(s.hw.ctx.now_dt() + timedelta(seconds=120))
    five = s.hw.ctx.faults.inject(kind="api_conflict", count=5, selector=selector)
    with pytest.raises(ClaimError) as err:
        s.hw.run(s.manager.set_timeout("default", U1, sid, 900))
    assert err.value.code == 500
    assert five.fired == 5
    assert s.stored(sbx.metadata.name).spec.shutdown_time == end


# -- pause / connect ------------------------------------------------------------------------------


def test_pause_waits_until_paused(s: Setup) -> None:
    """Pause returns once ``SandboxPaused=True``, the sandbox kept for its retention."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    assert stored.spec.paused is True
    cond = find_condition(stored.status.conditions, "SandboxPaused")
    assert cond is not None and cond.status == "True"
    # The retention (default forever) moves the shutdown time far away.
    assert stored.spec.shutdown_time is not None
    assert stored.spec.shutdown_time > s.hw.ctx.now_dt() + timedelta(days=365)


def test_pausing_a_paused_sandbox_answers_204_and_changes_nothing(s: Setup) -> None:
    """Reference §6.5: an already paused sandbox is pausable, and only the first writer flips
    ``spec.paused`` and sets the times; a later pause writes nothing (its retention header
    included), finds ``SandboxPaused=True`` and answers 204, where E2B answers 409."""
    sbx = s.create(timeout_s=600, auto_pause=True)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid, timedelta(hours=2)))
    before = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert before is not None
    writes = s.hw.api.writes
    s.hw.settle(30)  # a second write would move the times: now + retention
    for retention in (None, timedelta(hours=5)):
        assert s.hw.run(s.manager.pause("default", U1, sid, retention)) is None
    after = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert after is not None
    assert s.hw.api.writes == writes
    assert after.metadata.resource_version == before.metadata.resource_version
    assert (after.spec.shutdown_time, after.spec.pause_time) == (
        before.spec.shutdown_time,
        before.spec.pause_time,
    )
    assert [e.kind for e in s.hw.ctx.log.of_kind("manager.pause")] == ["manager.pause"] * 3


def test_a_second_pause_sent_while_the_first_stops_the_pod_waits_for_it_too(s: Setup) -> None:
    """Two pauses of one sandbox: the first writes, the second finds ``spec.paused`` already
    flipped, writes nothing, and answers only once ``SandboxPaused=True``, as the first does."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    env = s.hw.env
    ended: dict[str, float] = {}

    def pause(name: str, after: float) -> Any:
        yield env.timeout(after)
        yield from s.manager.pause("default", U1, sid)
        stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
        assert stored is not None
        cond = find_condition(stored.status.conditions, "SandboxPaused")
        assert cond is not None and cond.status == "True", name
        ended[name] = env.now

    t0 = env.now
    first = env.process(pause("first", 0))
    second = env.process(pause("second", 0.2))
    env.run(until=env.all_of([first, second]))
    assert set(ended) == {"first", "second"}
    assert ended["second"] - t0 > 0.5  # it waited for the controller (delay 1 s)
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    assert stored.spec.paused is True


def test_a_killed_sandbox_recycling_as_paused_is_still_a_409_to_pause() -> None:
    """A recycling kill's sandbox shows as paused, but a pause of it is refused (409), whether
    or not ``spec.paused`` was flipped before the trigger: it is on its way to its pool."""
    s = Setup()
    sbx = s.create()
    sid = sandbox_id(sbx)
    cur = s.stored(sbx.metadata.name).model_copy(deep=True)
    cur.metadata.annotations[keys.ANN_CLEANUP_ENABLED] = "true"
    cur.metadata.annotations[ANN_CLEANUP] = "true"
    cur.spec.paused = True
    s.hw.api.commit_update(cur)
    s.hw.settle()
    writes = s.hw.api.writes
    with pytest.raises(ConflictError, match="being recycled") as err:
        s.hw.run(s.manager.pause("default", U1, sid))
    assert err.value.code == 409
    assert s.hw.api.writes == writes


def test_pause_with_retention_sets_the_shutdown_time(s: Setup) -> None:
    """A retention given with the pause keeps the paused sandbox that long."""
    sbx = s.create()
    s.hw.run(s.manager.pause("default", U1, sandbox_id(sbx), timedelta(hours=2)))
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None and stored.spec.shutdown_time is not None
    assert stored.spec.shutdown_time <= s.hw.ctx.now_dt() + timedelta(hours=2)


@pytest.mark.parametrize(
    ("retention", "shown"),
    [
        (timedelta(seconds=-1), "-1s"),
        (timedelta(milliseconds=-1500), "-1.5s"),
        (timedelta(0), "0s"),
    ],
)
def test_a_retention_of_zero_or_less_is_a_400_naming_it_as_a_go_duration(
    s: Setup, retention: timedelta, shown: str
) -> None:
    """The 400 names the retention as every duration of the project reads (``-1.5s``), as the
    header's own text is named over HTTP: not Python's ``-1 day, 23:59:58.500000``. Nothing is
    written."""
    sid = sandbox_id(s.create())
    writes = s.hw.api.writes
    with pytest.raises(BadRequestError) as err:
        s.hw.run(s.manager.pause("default", U1, sid, retention))
    assert err.value.code == 400 and err.value.field == "retention"
    assert str(err.value) == f"retention: must be a positive duration, got {shown}"
    assert s.hw.api.writes == writes


@pytest.mark.parametrize(
    ("retention", "shown"),
    [
        (timedelta(days=200_000), "4800000h0m0s"),
        (MAX_DURATION + timedelta(microseconds=1), "2562047h47m16.854776s"),
    ],
)
def test_a_retention_longer_than_a_go_duration_is_the_headers_400(
    s: Setup, retention: timedelta, shown: str
) -> None:
    """Upstream's retention is a Go ``time.Duration`` (at most about 292 years): the header
    refuses ``4800000h`` with a 400, and so does a Python caller's ``timedelta`` (it paused
    the sandbox until the year 2573). The longest Go duration is taken. Nothing is written."""
    sid = sandbox_id(s.create())
    writes = s.hw.api.writes
    with pytest.raises(BadRequestError) as err:
        s.hw.run(s.manager.pause("default", U1, sid, retention))
    assert err.value.code == 400 and err.value.field == "retention"
    assert str(err.value) == (f"retention: out of range (at most 2562047h47m16s), got {shown}")
    assert s.hw.api.writes == writes
    s.hw.run(s.manager.pause("default", U1, sid, MAX_DURATION))
    namespace, name = sid.split("--")
    assert s.stored(name, namespace).status.phase == "Paused"


def test_pause_of_an_unpausable_sandbox_is_409() -> None:
    """A sandbox whose pod is not Ready cannot be paused."""
    s = Setup()
    sbx = s.create()
    s.hw.settle()
    cur = s.stored(sbx.metadata.name).model_copy(deep=True)
    cur.status.conditions[0].status = "False"
    s.hw.api.commit_update(cur, subresource="status")
    s.hw.settle()
    with pytest.raises(ConflictError):
        s.hw.run(s.manager.pause("default", U1, sandbox_id(sbx)))


def test_a_sandbox_past_its_end_is_a_404_to_pause_and_timeout_and_never_revived(
    s: Setup,
) -> None:
    """Past its shutdownTime a sandbox is dead (reference §1.3 row 2, §6.5), whether or not the
    Sandbox controller has deleted it yet: pause and ``/timeout`` answer 404, as describe and
    connect do, and write nothing. A pause must not give it a new end (forever, by default)."""
    sbx = s.create(timeout_s=30)
    sid = sandbox_id(sbx)
    s.hw.settle(31)  # the hand-built world has no controller to delete it
    writes = s.hw.api.writes
    for call in (
        s.manager.pause("default", U1, sid),
        s.manager.set_timeout("default", U1, sid, 600),
        s.manager.connect("default", U1, sid, 600),
    ):
        with pytest.raises(NotFoundError) as err:
            s.hw.run(call)
        assert err.value.code == 404
    with pytest.raises(NotFoundError):
        s.manager.describe("default", U1, sid)
    assert s.hw.api.writes == writes
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    assert stored.spec.paused is not True and stored.spec.shutdown_time == sbx.spec.shutdown_time


def test_connect_to_running_extends_only(s: Setup) -> None:
    """Connect to a running sandbox never shortens its timeout and reports not resumed."""
    sbx = s.create(timeout_s=3600)
    sid = sandbox_id(sbx)
    got, resumed = s.hw.run(s.manager.connect("default", U1, sid, 60))
    assert not resumed and got.spec.shutdown_time == sbx.spec.shutdown_time
    s.hw.settle(10)
    got, _ = s.hw.run(s.manager.connect("default", U1, sid, 7200))
    assert got.spec.shutdown_time == truncate(s.hw.ctx.now_dt() + timedelta(seconds=7200))


def test_connect_resumes_a_paused_sandbox_with_the_floor(s: Setup) -> None:
    """Connect to a paused sandbox resumes it with at least 300 s and waits until it runs."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    got, resumed = s.hw.run(s.manager.connect("default", U1, sid, 30))
    assert resumed and not got.spec.paused
    assert s.manager.describe("default", U1, sid) is not None
    stored = s.hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None and stored.spec.shutdown_time is not None
    end = stored.spec.shutdown_time - s.hw.ctx.now_dt()
    assert timedelta(seconds=290) <= end <= timedelta(seconds=300)
    resumed_sbx = s.hw.run(s.manager.resume("default", U1, sid, 30))
    assert resumed_sbx.metadata.name == sbx.metadata.name


def test_a_resume_that_never_runs_answers_500_after_ten_minutes(s: Setup) -> None:
    """Reference §9.1: a resume waits at most 10 min for the sandbox to run again; a
    sandbox that does not run by then answers 500 (its resume stays written)."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    s.hw.settle(5)
    s.controller.delay = 3600.0  # the resumed pod takes an hour
    started = s.hw.ctx.now()
    with pytest.raises(ClaimError) as err:
        s.hw.run(s.manager.connect("default", U1, sid, 600))
    assert err.value.code == 500
    assert 600 <= s.hw.ctx.now() - started < 601
    assert s.stored(sbx.metadata.name).spec.paused is False


def test_a_resume_that_keeps_meeting_conflicts_answers_400(s: Setup) -> None:
    """A resume write still in conflict after RetryOnConflict's five tries answers 400, as
    upstream's resume does; the sandbox stays paused."""
    sbx = s.create(timeout_s=600)
    sid = sandbox_id(sbx)
    s.hw.run(s.manager.pause("default", U1, sid))
    s.hw.settle(5)
    s.hw.ctx.faults.inject(
        kind="api_conflict", count=5, selector={"client": "sandbox-manager", "kind": "Sandbox"}
    )
    with pytest.raises(ClaimError) as err:
        s.hw.run(s.manager.connect("default", U1, sid, 600))
    assert err.value.code == 400
    assert s.stored(sbx.metadata.name).spec.paused is True


@pytest.mark.parametrize("past", [0.0, 0.01, 0.05])
def test_a_connect_at_the_auto_pause_instant_resumes_the_sandbox(past: float) -> None:
    """Read running, paused by its pauseTime before the extend is written: resumed (201), not
    answered as extended while it stays paused. (Whichever write wins, it runs afterwards.)"""
    from simulator.cluster import Cluster

    # One node: the instants below are those of this seed with every pod on it.
    cluster = Cluster(seed=2, nodes=[{"name": "node-1", "cpu": "64", "memory": "256Gi"}])
    cluster.apply(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\nmetadata: {name: base}\n"
        "spec: {replicas: 2, runtimes: [{name: agent-runtime}],\n"
        "       template: {spec: {containers: [{name: c, image: i}]}}}\n"
    )
    cluster.wait_for_pool("base")
    sbx = cluster.create_sandbox("base", timeout=60, auto_pause=True)
    sid = sandbox_id(sbx)
    assert sbx.spec.pause_time is not None
    cluster.advance(cluster.ctx.to_seconds(sbx.spec.pause_time) - cluster.now + past)
    got, resumed = cluster.connect(sid, 600)
    assert not got.spec.paused
    assert resumed == (past != 0.01)  # at +0.01 s the extend is written before the pause
    cluster.advance(5)
    assert not cluster.describe(sid).spec.paused


def test_connect_to_an_unknown_sandbox_is_404(s: Setup) -> None:
    """Connect needs the caller's sandbox."""
    with pytest.raises(NotFoundError):
        s.hw.run(s.manager.connect("default", U1, "default--nope", 60))


@pytest.mark.parametrize("op", ["connect", "resume"])
@pytest.mark.parametrize("offset", [0.0, 0.01, 0.02, 0.03, 0.05, 0.07])
def test_a_connect_racing_the_owners_recycling_kill_never_answers_after_it(
    offset: float, op: str
) -> None:
    """A connect (or the deprecated resume) sent ``offset`` s after the owner's kill of a
    recycling sandbox.

    Either it is answered before the kill (running, extended: it came first)
    or it answers 404: once its read shows the recycle trigger the sandbox is
    the caller's no longer. Before, an extend whose write conflicted with the
    kill's re-read the triggered copy, wrote the timeout anyway and answered
    200 with a ``Recycling`` sandbox after the kill's 204.
    """
    from simulator.cluster import Cluster
    from tests.pools import RECYCLING_POOL

    cluster = Cluster(seed=1, nodes=[{"name": "n1", "cpu": 8, "memory": "16Gi", "max_pods": 1}])
    cluster.apply(RECYCLING_POOL)
    cluster.wait_for_pool("reuse")
    sid = sandbox_id(cluster.create_sandbox("reuse", user=U1, timeout=900))
    manager, env = cluster.manager, cluster.env
    done: dict[str, float] = {}
    answer: dict[str, object] = {}

    def kill() -> Any:
        yield from manager.kill("default", U1, sid)
        done["kill"] = env.now

    def connect() -> Any:
        yield env.timeout(offset)
        try:
            if op == "connect":
                answer["connect"] = yield from manager.connect("default", U1, sid, 1200)
            else:
                answer["connect"] = (yield from manager.resume("default", U1, sid, 1200)), False
        except ClaimError as err:
            answer["connect"] = err.code
        done["connect"] = env.now

    env.process(kill())
    env.process(connect())
    cluster.advance(5)
    got = answer["connect"]
    if got == 404:
        return
    assert done["connect"] <= done["kill"], f"200 at {done['connect']} after the kill's 204"
    assert isinstance(got, tuple)
    sbx, resumed = got
    assert not resumed and ANN_CLEANUP not in sbx.metadata.annotations


# -- list -----------------------------------------------------------------------------------------


def _claim_spread(s: Setup, count: int, **kwargs: Any) -> list[str]:
    ids = []
    for _ in range(count):
        ids.append(sandbox_id(s.create(**kwargs)))
        s.hw.settle(1.5)
    return ids


def test_list_pages_in_claim_order() -> None:
    """Pages of ``limit`` items sorted by claim time, linked by the next token."""
    s = Setup(replicas=5)
    ids = _claim_spread(s, 5)
    page1, token1 = s.manager.list_sandboxes("default", U1, limit=2)
    assert [sandbox_id(x) for x in page1] == ids[:2] and token1 is not None
    page2, token2 = s.manager.list_sandboxes("default", U1, limit=2, next_token=token1)
    assert [sandbox_id(x) for x in page2] == ids[2:4] and token2 is not None
    page3, token3 = s.manager.list_sandboxes("default", U1, limit=2, next_token=token2)
    assert [sandbox_id(x) for x in page3] == ids[4:] and token3 is None


def test_list_token_round_trip_and_legacy_tokens() -> None:
    """Tokens are base64url JSON ``{key, id}``; a raw legacy key is accepted as a start."""
    token = encode_next_token("2026-01-01T00:00:05Z", "default--a")
    assert decode_next_token(token) == ("2026-01-01T00:00:05Z", "default--a")
    assert decode_next_token("2026-01-01T00:00:05Z") == ("2026-01-01T00:00:05Z", "")


def test_list_filters_by_owner_state_and_metadata() -> None:
    """Only the caller's sandboxes, in the asked states, whose annotations match every pair."""
    s = Setup(replicas=4)
    a = sandbox_id(s.create(metadata={"env": "prod", "team": "a"}))
    b = sandbox_id(s.create(metadata={"env": "dev", "team": "a"}))
    s.create(user=U2)
    s.hw.settle()
    s.hw.run(s.manager.pause("default", U1, b))
    s.hw.settle()

    def ids(**kwargs: Any) -> list[str]:
        return [sandbox_id(x) for x in s.manager.list_sandboxes("default", U1, **kwargs)[0]]

    assert sorted(ids()) == sorted([a, b])
    assert ids(states=("running",)) == [a]
    assert ids(states=("paused",)) == [b]
    assert ids(metadata={"env": "dev"}) == [b]
    assert ids(metadata={"env": "qa"}) == []
    assert sorted(ids(metadata={"team": "a"})) == sorted([a, b])
    assert ids(metadata={"env": "prod", "team": "a"}) == [a]
    assert ids(metadata={"env": "prod", "team": "b"}) == []
    assert s.manager.list_sandboxes("other", U1) == ([], None)
    assert len(s.manager.list_sandboxes("", U1)[0]) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"states": ("running", "dead")},
        {"metadata": {"agents.kruise.io/owner": "x"}},
        {"metadata": {"e2b.agents.kruise.io/x": "y"}},
        {"limit": 0},
        {"limit": 101},
    ],
)
def test_list_bad_parameters_are_400(s: Setup, kwargs: dict[str, Any]) -> None:
    """Bad states, blacklisted metadata keys and limits outside 1…100 answer 400."""
    with pytest.raises(BadRequestError) as err:
        s.manager.list_sandboxes("default", U1, **kwargs)
    assert err.value.code == 400


def _reference_list(
    manager: SandboxManager,
    namespace: str,
    user: str,
    *,
    states: Sequence[str],
    metadata: Mapping[str, str],
    limit: int,
    next_token: str | None,
    order: Literal["asc", "desc"],
    template: str | None,
    started_after: datetime | None,
) -> tuple[list[Sandbox], str | None]:
    """list_sandboxes as it was: every filter (the state too) asked of every owned
    sandbox, then a full sort and a slice after the cursor (tests.claiming.test_listing)."""
    now = manager.ctx.now_dt()
    items: list[tuple[str, str, Sandbox]] = []
    for sbx in manager.cache.by_index("Sandbox", "owner", f"{namespace or '*'}/{user}"):
        ann = sbx.metadata.annotations
        started = ann.get(keys.ANN_CLAIM_TIMESTAMP)
        if not started or is_reserved_failed(sbx) or not manager.claimer.is_fresh(sbx):
            continue
        if e2b_state(sbx, now) not in states:
            continue
        if any(ann.get(k) != v for k, v in metadata.items()):
            continue
        labels = sbx.metadata.labels
        label = labels.get(keys.LABEL_SANDBOX_TEMPLATE) or labels.get(keys.LABEL_SANDBOX_POOL, "")
        if template is not None and label != template:
            continue
        # startedAfter is inclusive, compared as instants (e2b-protocol.md §8).
        if started_after is not None and parse_time(started) < started_after:
            continue
        items.append((started, sandbox_id(sbx), sbx))
    return reference_page(items, limit=limit, next_token=next_token, order=order)


@cache
def _listed_world() -> tuple[Setup, list[str]]:
    """Nine claimed sandboxes (three per claim second, so times tie), two teams, two paused,
    one of another user; built once, only read by the tests that use it."""
    s = Setup(replicas=10)
    ids: list[str] = []
    for i in range(9):
        ids.append(sandbox_id(s.create(metadata={"team": "xy"[i % 2]})))
        if i % 3 == 2:
            s.hw.settle(1.0)
    s.create(user=U2)
    for sid in ids[2:4]:
        s.hw.run(s.manager.pause("default", U1, sid))
    s.hw.settle(2.0)
    return s, ids


@settings(max_examples=150, deadline=None)
@given(
    namespace=st.sampled_from(["default", "", "other"]),
    states=st.sampled_from([("running", "paused"), ("running",), ("paused",)]),
    metadata=st.sampled_from([{}, {"team": "x"}, {"team": "y"}, {"team": "z"}]),
    limit=st.integers(min_value=1, max_value=10),
    order=st.sampled_from(["asc", "desc"]),
    cursor=st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=8),  # the token naming one listed sandbox
        st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "zz", "e30"]),
    ),
    template=st.sampled_from([None, "base", "other"]),
    after_s=st.sampled_from([None, -10.0, -4.0, -3.0, -2.5, -1.5, -0.5, 0.0]),
)
def test_list_answers_as_the_full_sort_did(
    namespace: str,
    states: tuple[str, ...],
    metadata: dict[str, str],
    limit: int,
    order: Literal["asc", "desc"],
    cursor: int | str | None,
    template: str | None,
    after_s: float | None,
) -> None:
    """Over random filters, limits, orders and cursors the list gives the sandboxes, order
    and next token that filtering and sorting every sandbox gave (the reference above)."""
    s, ids = _listed_world()
    if isinstance(cursor, int):
        sbx = s.manager.cache.get("Sandbox", *ids[cursor].split("--"))
        assert sbx is not None
        cursor = encode_next_token(sbx.metadata.annotations[keys.ANN_CLAIM_TIMESTAMP], ids[cursor])
    now = s.hw.ctx.now_dt()
    query: dict[str, Any] = {
        "states": states,
        "metadata": metadata,
        "limit": limit,
        "next_token": cursor,
        "order": order,
        "template": template,
        "started_after": None if after_s is None else now + timedelta(seconds=after_s),
    }
    got, token = s.manager.list_sandboxes(namespace, U1, **query)
    want, want_token = _reference_list(s.manager, namespace, U1, **query)
    assert [sandbox_id(x) for x in got] == [sandbox_id(x) for x in want]
    assert token == want_token


def test_list_page_computes_states_of_its_own_items_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page asks the E2B state (the costly filter) of limit + 1 sandboxes, not of every
    sandbox of the caller: paging through n sandboxes is not n pages of n states each."""
    s, _ = _listed_world()
    ids = [sandbox_id(x) for x in s.manager.list_sandboxes("default", U1)[0]]
    assert len(ids) == 9
    asked: list[str] = []

    def counted(sbx: Sandbox, now: datetime) -> str | None:
        asked.append(sandbox_id(sbx))
        return e2b_state(sbx, now)

    monkeypatch.setattr("simulator.manager.e2b_state", counted)
    first, token = s.manager.list_sandboxes("default", U1, limit=2)
    assert [sandbox_id(x) for x in first] == ids[:2] and len(asked) == 3
    asked.clear()
    middle, _ = s.manager.list_sandboxes("default", U1, limit=2, next_token=token)
    assert [sandbox_id(x) for x in middle] == ids[2:4] and len(asked) == 3


@pytest.mark.parametrize(("offset", "listed"), [(-0.5, True), (0.0, True), (0.5, False)])
def test_started_after_compares_instants_with_the_whole_second_claim_stamp(
    offset: float, listed: bool
) -> None:
    """A sandbox stamped as claimed at second ``T`` started at ``T``: ``startedAfter`` ``T``
    lists it (inclusive), ``T + 0.5 s`` does not (it was cut to ``T``, which listed a sandbox
    started before the instant asked for)."""
    s = Setup(replicas=1)
    sbx = s.create()
    stamp = parse_time(sbx.metadata.annotations[keys.ANN_CLAIM_TIMESTAMP])
    got, _ = s.manager.list_sandboxes(
        "default", U1, started_after=stamp + timedelta(seconds=offset)
    )
    assert [sandbox_id(x) for x in got] == ([sandbox_id(sbx)] if listed else [])


def test_same_seed_same_log() -> None:
    """Two runs with the same seed and calls give the same event log."""

    def run() -> str:
        s = Setup(replicas=1, seed=7)
        s.create()
        s.fail(metadata={KEY_CREATE_ON_NO_STOCK: "false", KEY_CLAIM_TIMEOUT_SECONDS: "4"})
        s.create()
        return s.hw.ctx.log.text()

    assert run() == run()


# -- end to end, with the real nodes and controllers ---------------------------------------------


class Real:
    """A world with nodes, the Sandbox and SandboxSet controllers, the runtime and the manager."""

    def __init__(self, replicas: int = 3, *, runtime: bool = True, seed: int = 3) -> None:
        from pytest_kruise_agents.api.meta import ObjectMeta
        from pytest_kruise_agents.api.sandbox import RuntimeRef
        from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetSpec
        from simulator.context import SimContext
        from simulator.controllers.sandbox import SandboxController
        from simulator.controllers.sandboxset import SandboxSetController
        from simulator.nodes import Nodes, NodeSpec
        from simulator.profile import get_profile
        from simulator.runtime import AgentRuntime
        from simulator.world import World

        self.ctx = SimContext(seed=seed, profile=get_profile("openkruise-head"))
        self.env = self.ctx.env
        self.world = World(self.ctx)
        self.runtime = AgentRuntime(self.world)
        self.manager = SandboxManager(self.world, self.runtime)
        nodes = [NodeSpec(name=f"node-{i}", cpu="32", memory="128Gi") for i in (1, 2)]
        for component in (
            Nodes(self.world, nodes),
            SandboxController(self.world, self.runtime),
            SandboxSetController(self.world),
            self.manager,
        ):
            component.start()
        self.world.api.commit_create(
            SandboxSet(
                metadata=ObjectMeta(name="base", namespace="default"),
                spec=SandboxSetSpec(
                    replicas=replicas,
                    runtimes=[RuntimeRef(name="agent-runtime")] if runtime else None,
                    template={
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "python:3.12",
                                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                                }
                            ]
                        }
                    },
                ),
            )
        )

    def available(self) -> int:
        sbs = self.world.api.peek("SandboxSet", "default", "base")
        assert sbs is not None
        return int(sbs.status.available_replicas)

    def fill(self, count: int) -> None:
        while self.available() < count:
            assert self.env.now < 600, "pool did not fill"
            self.env.run(until=self.env.now + 1)

    def create(self, **kwargs: Any) -> Any:
        proc = self.env.process(
            self.manager.create_sandbox(namespace="default", user=U1, template="base", **kwargs)
        )
        return self.env.run(until=proc)


def test_end_to_end_warm_claim_is_delivered_and_the_pool_refills() -> None:
    """Pool → claim → delivered well under a second; the SandboxSet replaces the claimed one."""
    r = Real(replicas=3)
    r.fill(3)
    sbx = r.create()
    rec = r.world.records[0]
    assert rec.lock_type == "update" and rec.latency is not None and rec.latency < 1.0
    assert r.manager.describe("default", U1, sandbox_id(sbx)) is not None
    assert r.runtime.is_initialised(sbx)
    # The set sees the claim one watch lag later, then makes a replacement.
    while len(r.world.api.peek_list("Sandbox", "default")) < 4 or r.available() < 3:
        assert r.env.now < 600, "the pool was not refilled"
        r.env.run(until=r.env.now + 1)
    assert len(r.world.api.peek_list("Sandbox", "default")) == 4


def test_end_to_end_burst_beyond_the_pool_creates_on_no_stock() -> None:
    """Claims beyond the warm pool are created, scheduled, started and delivered when ready."""
    r = Real(replicas=2)
    r.fill(2)
    procs = [
        r.env.process(r.manager.create_sandbox(namespace="default", user=U1, template="base"))
        for _ in range(4)
    ]
    r.env.run(until=r.env.all_of(procs))
    recs = list(r.world.records)
    assert sorted(rec.lock_type or "" for rec in recs) == ["create", "create", "update", "update"]
    for rec in recs:
        assert rec.delivered is not None
        if rec.lock_type == "create":
            assert rec.ready is not None and rec.locked is not None and rec.ready > rec.locked
    listed, _ = r.manager.list_sandboxes("default", U1)
    assert len(listed) == 4


def test_end_to_end_pause_and_connect_resume() -> None:
    """Pause waits for the pod to go; connect recreates it, re-initialises the runtime, runs."""
    r = Real(replicas=1)
    r.fill(1)
    sid = sandbox_id(r.create(timeout_s=600))
    r.env.run(until=r.env.process(r.manager.pause("default", U1, sid)))
    assert r.manager.describe("default", U1, sid) is not None
    proc = r.env.process(r.manager.connect("default", U1, sid, 600))
    connected = r.env.run(until=proc)
    assert connected is not None
    sbx, resumed = connected
    assert resumed and sbx.status.phase == "Running"
    assert [e.detail for e in r.ctx.log.of_kind("runtime.reinit")] == [
        f"default/{sbx.metadata.name} ok"
    ]
    # The list reads the cache, which skips copies older than the manager's own last write.
    r.env.run(until=r.env.now + 1)
    (listed,) = r.manager.list_sandboxes("default", U1, states=("running",))[0]
    assert listed.metadata.name == sbx.metadata.name

"""The factory fixtures' classes, called directly (inner pytest runs are in test_fixtures.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.plugin.clock import KruiseClock
from pytest_kruise_agents.plugin.factories import SandboxClaimFactory, SandboxSetFactory


def test_sandbox_claim_waits_without_copying_the_claim_at_every_event(
    sim_backend: SimBackend, model_copies: list[Any]
) -> None:
    """``sandbox_claim`` looks at its claim after every event of the model: in place, so that
    only the claim applied and the one returned are copies."""
    factory = SandboxClaimFactory(KruiseClock(sim_backend), sim_backend)
    claim = factory("base", replicas=3)
    assert claim.status.claimed_replicas == 3
    assert [type(c).__name__ for c in model_copies] == ["SandboxClaim", "SandboxClaim"]


def test_a_refused_sandbox_claim_takes_no_name(sim_backend: SimBackend) -> None:
    """A call refused for a wrong field applies nothing and uses up no ``claim-N`` name: the
    claims after it are named, and so run, as if it had never been made."""
    factory = SandboxClaimFactory(KruiseClock(sim_backend), sim_backend)
    with pytest.raises(InvalidError, match="claim_timeout"):
        factory("base", claim_timeout="0s")
    with pytest.raises(InvalidError, match="replicas"):
        factory("base", replicas=0)

    assert [factory("base").metadata.name for _ in range(2)] == ["claim-1", "claim-2"]
    assert sorted(c.metadata.name for c in sim_backend.list("SandboxClaim")) == [
        "claim-1",
        "claim-2",
    ]


def test_a_generated_claim_name_skips_the_names_in_use(sim_backend: SimBackend) -> None:
    """``claim-N`` is never a name the test gave a claim, nor one a claim in the namespace has:
    applied onto that claim, the call returned it, Completed, and claimed nothing (with other
    replicas, it failed on ``claim-1``'s immutable spec)."""
    factory = SandboxClaimFactory(KruiseClock(sim_backend), sim_backend)
    given = factory("base", name="claim-1")
    sim_backend.apply(
        [
            SandboxClaim.model_validate(
                {"metadata": {"name": "claim-3"}, "spec": {"templateName": "base"}}
            )
        ]
    )

    second = factory("base", replicas=2)
    third = factory("base")

    assert (second.metadata.name, third.metadata.name) == ("claim-2", "claim-4")
    assert second.metadata.uid != given.metadata.uid
    assert second.status.claimed_replicas == 2
    assert sorted(c.metadata.name for c in sim_backend.list("SandboxClaim")) == [
        "claim-1",
        "claim-2",
        "claim-3",
        "claim-4",
    ]


@pytest.mark.parametrize(
    "runtimes, got",
    [
        ("agent-runtime", "got the text 'agent-runtime'"),
        (b"agent-runtime", "got b'agent-runtime'"),
        ({"agent-runtime"}, "got {'agent-runtime'}"),
        (3, "got 3"),
    ],
)
def test_sandboxset_runtimes_must_be_a_list_of_names(
    sim_backend: SimBackend, runtimes: Any, got: str
) -> None:
    """A text is a sequence of one-letter texts: taken as a list it would ask every sandbox of
    the pool for runtimes ``a``, ``g``, ``e``, ... . It is refused, as any other thing that is
    no list of names, and no pool is applied."""
    factory = SandboxSetFactory(KruiseClock(sim_backend), sim_backend)
    with pytest.raises(InvalidError) as refused:
        factory("p", runtimes=runtimes)

    assert (refused.value.field, refused.value.reason) == (
        "runtimes",
        f"must be a list of runtime names, {got}",
    )
    assert "p" not in [pool.metadata.name for pool in sim_backend.list("SandboxSet")]


def test_sandboxset_runtimes_are_the_names_given(sim_backend: SimBackend) -> None:
    factory = SandboxSetFactory(KruiseClock(sim_backend), sim_backend)
    pool = factory("p", replicas=1, runtimes=["agent-runtime", "csi"])
    assert [runtime.name for runtime in pool.spec.runtimes or []] == ["agent-runtime", "csi"]


@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    """A realtime backend (speed 1000) whose clock driver the test stops moving the model: the model's
    clock stands still, and a wait gives up after ``STALL_S`` (0.2) wall seconds of that."""
    monkeypatch.setattr("pytest_kruise_agents.plugin.clock.STALL_S", 0.2)
    backend = SimBackend.default(seed=3, replicas=1, clock="realtime", speed=1000)
    yield backend
    backend.close()


def test_a_realtime_sandboxset_timeout_says_the_virtual_time_waited(
    stalled: SimBackend, stop_clock: Callable[[SimBackend], None]
) -> None:
    """Not the timeout asked for: under a realtime clock the model may have run less (here
    nothing, its clock standing still), and the message says how long it did, and why."""
    factory = SandboxSetFactory(KruiseClock(stalled), stalled)
    # Stopped first: at x1000 a few wall milliseconds between the apply and the stop, under
    # load, were virtual seconds enough for the pool to fill.
    stop_clock(stalled)
    factory("p", replicas=2, wait=False)
    with pytest.raises(TimeoutError) as timed_out:
        factory.wait_ready("p", timeout=60)
    message = str(timed_out.value)
    assert message.startswith("SandboxSet default/p: 0/2 available")
    assert " after 0s" in message and "after 60s" not in message
    # At least STALL_S: how much more is the machine's doing (Waited's own test has the format).
    stood = re.search(r"; the model's clock stood still for (\d+\.\d) wall seconds$", message)
    assert stood is not None, message
    assert float(stood[1]) >= 0.2


def test_a_realtime_sandbox_claim_timeout_says_the_virtual_time_waited(
    stalled: SimBackend, stop_clock: Callable[[SimBackend], None]
) -> None:
    """As ``sandboxset``'s: the virtual seconds the model ran, and why it stopped early."""
    factory = SandboxClaimFactory(KruiseClock(stalled), stalled)
    stop_clock(stalled)
    with pytest.raises(TimeoutError) as timed_out:
        factory("base", replicas=1, timeout=60)
    message = str(timed_out.value)
    stood = re.search(
        r"claimed after 0s \(the model's clock stood still for (\d+\.\d) wall seconds\)$", message
    )
    assert stood is not None, message
    assert float(stood[1]) >= 0.2


def test_a_claim_given_a_name_takes_no_number(sim_backend: SimBackend) -> None:
    """docs/plugin.md: without ``name=``, claims are ``claim-1``, ``claim-2``, ... in the order
    they are applied: one applied under a name of the test's own uses up no number."""
    factory = SandboxClaimFactory(KruiseClock(sim_backend), sim_backend)
    assert factory("base", name="mine").metadata.name == "mine"
    assert [factory("base").metadata.name for _ in range(2)] == ["claim-1", "claim-2"]


def test_a_sandboxset_holds_three_sandboxes_unless_told_otherwise(
    sim_backend: SimBackend,
) -> None:
    """docs/plugin.md: ``sandboxset(name, replicas=3, ...)``: ready means all three available."""
    pool = SandboxSetFactory(KruiseClock(sim_backend), sim_backend)("agents")
    assert (pool.spec.replicas, pool.status.available_replicas) == (3, 3)

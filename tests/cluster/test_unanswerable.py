"""A call whose answer can never come ends with a typed error, and a create it cuts cleans up.

A create on a pool whose image never pulls, with ``never-timeout`` (so no
attempt's sandbox times out) and no claim timeout (HEAD's default), waits on
something that never happens. When the model runs out of events it is
:class:`~simulator.errors.NoAnswerError` (a 500, as upstream answers a claim
its client cut), and when the model stays busy it is the same error once the
call's bound of :data:`~simulator.cluster.CREATE_CALL_BOUND_S` has passed.
Either way the claim is cancelled and its locked sandbox is cleaned up.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError
from simulator.cluster import CREATE_CALL_BOUND_S, Cluster
from simulator.errors import NoAnswerError

from .conftest import pool_yaml

NEVER_TIMEOUT = {"e2b.agents.kruise.io/never-timeout": "true"}


def held_sandboxes(cluster: Cluster) -> list[str]:
    """Sandboxes still claimed by somebody."""
    return [
        s.metadata.name
        for s in cluster.list("sbx")
        if s.metadata.labels.get(keys.LABEL_SANDBOX_CLAIMED) == "true"
    ]


def test_a_create_nothing_can_answer_raises_no_answer_once_the_model_is_idle() -> None:
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0, image='"Bad Image"'))
    cluster.advance(1)
    with pytest.raises(NoAnswerError) as caught:
        cluster.create_sandbox("p", metadata=NEVER_TIMEOUT)
    err = caught.value
    assert isinstance(err, ClaimCanceledError)
    assert err.code == 500
    assert "create of template 'p'" in str(err)
    assert "no event is left" in str(err)
    rec = cluster.last_record()
    assert rec.done and rec.failed is not None and rec.delivered is None
    assert held_sandboxes(cluster) == []


def test_a_create_cut_when_idle_leaves_the_clock_at_the_last_event() -> None:
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0, image='"Bad Image"'))
    cluster.advance(1)
    with pytest.raises(NoAnswerError):
        cluster.create_sandbox("p", metadata=NEVER_TIMEOUT)
    assert cluster.now < 60  # not the far future, nor a bound it never waited for


def test_a_create_the_busy_model_never_answers_ends_at_the_call_bound() -> None:
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0))
    cluster.inject("image_pull_failure")  # until cleared: the kubelet backs off for ever
    cluster.advance(1)
    start = cluster.now
    with pytest.raises(NoAnswerError, match=f"no answer within {CREATE_CALL_BOUND_S:g} s"):
        cluster.create_sandbox("p", metadata=NEVER_TIMEOUT)
    assert start + CREATE_CALL_BOUND_S <= cluster.now < start + CREATE_CALL_BOUND_S + 60
    assert cluster.last_record().failed is not None
    assert held_sandboxes(cluster) == []


def test_a_burst_the_model_cannot_answer_gives_each_claim_its_error() -> None:
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0, image='"Bad Image"'))
    cluster.advance(1)
    results = cluster.create_sandboxes(2, "p", metadata=NEVER_TIMEOUT)
    assert [type(r) for r in results] == [NoAnswerError, NoAnswerError]
    assert all(isinstance(r, ClaimError) and r.code == 500 for r in results)
    assert held_sandboxes(cluster) == []


def test_a_create_with_a_claim_timeout_is_not_cut_by_the_call_bound() -> None:
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("p", replicas=0))
    cluster.inject("image_pull_failure")
    cluster.advance(1)
    long = int(CREATE_CALL_BOUND_S) + 600
    meta = {**NEVER_TIMEOUT, "e2b.agents.kruise.io/claim-timeout-seconds": str(long)}
    with pytest.raises(ClaimError) as caught:
        cluster.create_sandbox("p", metadata=meta)
    assert not isinstance(caught.value, NoAnswerError)
    assert "context deadline exceeded" in str(caught.value)


def test_a_create_with_no_room_fails_after_ten_sandbox_timeouts() -> None:
    """docs/fidelity.md (control plane): with no claim timeout and no room for a new pod, each
    of the 10 attempts creates a sandbox that waits until its own timeout (300 s by default)
    deletes it, so the create fails after about 3,100 s of simulated time (10 x 300 s plus
    the back-off), with a 500 naming the last sandbox deleted, and well before the call's
    bound."""
    cluster = Cluster(seed=1, nodes=1)
    cluster.apply(pool_yaml("big", 0, cpu="1000"))  # no node holds its pod
    cluster.advance(5)
    start = cluster.now
    with pytest.raises(ClaimError, match="was deleted before it became ready") as caught:
        cluster.create_sandbox("big")
    assert not isinstance(caught.value, NoAnswerError) and caught.value.code == 500
    assert 3000 < cluster.now - start < 3200 < CREATE_CALL_BOUND_S
    record = cluster.last_record()
    assert (record.attempts, record.error_reason) == (10, "RetryExhausted")
    assert held_sandboxes(cluster) == []


def test_run_of_a_process_waiting_for_ever_raises_no_answer_naming_it() -> None:
    cluster = Cluster(seed=0, nodes=1)

    def waits_for_ever() -> Generator[simpy.Event, Any, None]:
        yield cluster.env.event()

    with pytest.raises(NoAnswerError, match="waits_for_ever"):
        cluster.run(waits_for_ever())

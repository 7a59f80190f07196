"""The fast copies and comparisons of models (``pytest_kruise_agents.api.copying``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pytest_kruise_agents.api.copying import same_fields, shallow_copy
from pytest_kruise_agents.api.meta import Condition
from pytest_kruise_agents.api.pod import PodStatus
from pytest_kruise_agents.api.sandbox import PodInfo, SandboxStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
READY = Condition(type="Ready", status="True", reason="PodReady", last_transition_time=T0)


def status(**fields: object) -> SandboxStatus:
    base: dict[str, object] = {
        "phase": "Running",
        "conditions": [READY],
        "pod_info": PodInfo(node_name="n1", pod_ip="10.0.0.1", pod_uid="u"),
        "sandbox_ip": "10.0.0.1",
    }
    return SandboxStatus.model_validate({**base, **fields})


@pytest.mark.parametrize(
    "other",
    [
        status(),
        status(phase="Paused"),
        status(conditions=[]),
        status(conditions=[READY.model_copy(update={"status": "False"})]),
        status(pod_info=PodInfo(node_name="n2", pod_ip="10.0.0.1", pod_uid="u")),
        status(sandbox_ip=None),
        shallow_copy(status(), {"observed_generation": 3}),
    ],
)
def test_same_fields_answers_what_equality_answers(other: SandboxStatus) -> None:
    """For models without private attributes or extras, ``same_fields`` is ``==``, nested
    models, lists of them and unset fields included."""
    mine = status()
    assert same_fields(mine, other) == (mine == other)
    assert same_fields(other, mine) == (other == mine)


def test_models_of_two_types_are_never_the_same() -> None:
    """A status of another kind is another status, whatever fields the two hold."""
    assert not same_fields(SandboxStatus(), PodStatus())

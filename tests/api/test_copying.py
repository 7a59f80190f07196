"""The fast copies and comparisons of models (``pytest_kruise_agents.api.copying``)."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import pytest

from pytest_kruise_agents.api.base import KubeModel
from pytest_kruise_agents.api.copying import deep_copy, same_fields, shallow_copy
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


class _Left(KubeModel):
    size: int = 0


class _Right(KubeModel):
    size: int = 0


def test_models_of_two_types_with_the_same_fields_are_not_the_same() -> None:
    """Equal field values do not make two kinds of model one: the type is compared first."""
    assert not same_fields(_Left(), _Right())
    assert same_fields(_Left(), _Left())


def test_a_deep_copy_shares_nothing_held_in_a_dict_subclass_or_a_tuple() -> None:
    """An ``OrderedDict`` (a caller's JSON hook) or a tuple is copied with what it holds: a
    change to the copy never reaches the original."""
    original: dict[str, Any] = {"ordered": OrderedDict(items=[1]), "pair": ([2], {"k": [3]})}
    copied = deep_copy(original)
    copied["ordered"]["items"].append(9)
    copied["pair"][0].append(9)
    copied["pair"][1]["k"].append(9)
    assert original == {"ordered": {"items": [1]}, "pair": ([2], {"k": [3]})}
    assert copied == {"ordered": {"items": [1, 9]}, "pair": ([2, 9], {"k": [3, 9]})}

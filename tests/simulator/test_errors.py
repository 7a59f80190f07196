"""Errors raised in the model survive being copied: by SimPy, by pickle (a Dask worker's).

SimPy hands a process that waits on a failed one a copy made as ``type(e)(*e.args)``;
pickle rebuilds an error the same way (then restores its attributes). An error whose
``args`` are not its constructor's arguments could not be copied: the copy raised
``TypeError`` in place of the error (a scenario's bad ``user`` read "missing 1 required
positional argument: 'reason'").
"""

from __future__ import annotations

import pickle

import pytest
import simpy

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import BadRequestError
from simulator.apiserver import ApiError, ForbiddenError, UIDConflictError
from simulator.claim import shielded
from simulator.errors import ConflictError, NotFoundError
from simulator.planning.errors import ScenarioError

ERRORS = [
    InvalidError("spec.replicas", "must be >= 0"),
    ConflictError("metadata.resourceVersion", "the object has been modified"),
    NotFoundError("Sandbox", "default", "s1"),
    ApiError(500, "InternalError", "etcd is down"),
    ForbiddenError("pods.kruise.io", "no"),
    UIDConflictError("Sandbox", "s1", "uid-a", "uid-b"),
    ScenarioError("steady.yaml", "pools[0].replicas", "must be >= 0", line=3),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_built_again_from_its_args_is_the_same_error(error: Exception) -> None:
    """``type(e)(*e.args)`` gives the same error; pickle gives the same attributes too."""
    copy = type(error)(*error.args)
    assert copy.args == error.args
    if not isinstance(error, ScenarioError):  # its keyword-only line is pickle's to restore
        assert str(copy) == str(error)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert str(restored) == str(error)
    assert vars(restored) == vars(error)


def test_a_shielded_cleanup_raises_its_own_error_not_a_copy() -> None:
    """What a cleanup raises reaches the caller as raised: a claim error keeps its field."""
    env = simpy.Environment()
    error = BadRequestError("bad metadata", field="metadata", code=400)

    def cleanup() -> simpy.events.ProcessGenerator:
        yield env.timeout(1)
        raise error

    def caller() -> simpy.events.ProcessGenerator:
        try:
            yield from shielded(env, cleanup())
        except BadRequestError as caught:
            return caught
        return None

    proc = env.process(caller())
    env.run()
    assert proc.value is error
    assert proc.value.field == "metadata"

"""SimBackend in virtual mode, called from the main thread: Ctrl-C stops between two events."""

from __future__ import annotations

import signal

import pytest

from pytest_kruise_agents.backends import Caller, CreateRequest, ListQuery, SimBackend
from simulator.cluster import Cluster

ALICE = Caller("default", "alice")
POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: small, namespace: default}
spec:
  replicas: 1
  runtimes: [{name: agent-runtime}]
  template:
    spec:
      containers: [{name: sandbox, image: registry.example.com/sandbox:v1}]
"""


pytestmark = pytest.mark.usefixtures("python_sigint_handler")


def test_an_interrupted_create_cancels_its_claim_and_the_model_runs_on() -> None:
    cluster = Cluster(seed=3, nodes=2)
    cluster.apply(POOL)
    cluster.wait_for_pool("small")
    backend = SimBackend(cluster)
    try:
        backend.create_sandbox(ALICE, CreateRequest(template="small", timeout=600))
        # The next create must wait for a new sandbox; a SIGINT comes half a second in.
        cluster.env.timeout(0.5).callbacks.append(lambda _ev: signal.raise_signal(signal.SIGINT))
        with pytest.raises(KeyboardInterrupt):
            backend.create_sandbox(ALICE, CreateRequest(template="small", timeout=600))
        record = cluster.last_record()
        backend.advance(120)
        assert record.delivered is None
        assert record.error_reason == "Canceled"
        views, _ = backend.list_sandboxes(ALICE, ListQuery())
        assert len(views) == 1
        # The pool refills: no controller died with the interrupt.
        assert cluster.get("sbs", "small").status.available_replicas == 1
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        backend.close()

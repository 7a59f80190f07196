"""Fixtures for the behaviours of the whole fake cluster."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.cluster import Cluster


def pool_yaml(
    name: str = "base",
    replicas: int = 5,
    *,
    namespace: str = "default",
    agent_runtime: bool = True,
    image: str = "registry.example.com/sandbox:v1",
    cpu: str = "500m",
    memory: str = "512Mi",
) -> str:
    """A SandboxSet manifest."""
    runtimes = "  runtimes:\n    - name: agent-runtime\n" if agent_runtime else ""
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
{runtimes}  template:
    spec:
      containers:
        - name: sandbox
          image: {image}
          resources:
            requests: {{cpu: "{cpu}", memory: {memory}}}
"""


def claim_yaml(
    name: str, template: str = "base", *, namespace: str = "default", **spec: Any
) -> str:
    """A SandboxClaim manifest with extra spec fields given as camelCase keyword arguments."""
    lines = [
        "apiVersion: agents.kruise.io/v1alpha1",
        "kind: SandboxClaim",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        "spec:",
        f"  templateName: {template}",
    ]
    for key, value in spec.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(f"  {key}: {value}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def cluster() -> Cluster:
    """A fresh cluster with the default profile and nodes."""
    return Cluster(seed=11)


@pytest.fixture
def pooled(cluster: Cluster) -> Cluster:
    """A cluster whose SandboxSet ``base`` (5 replicas, agent-runtime) is full."""
    cluster.apply(pool_yaml())
    cluster.wait_for_pool("base")
    return cluster

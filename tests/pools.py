"""SandboxSet manifests shared by tests of several packages."""

from __future__ import annotations

__all__ = ["RECYCLING_POOL"]

RECYCLING_POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: reuse, namespace: default}
spec:
  replicas: 1
  runtimes: [{name: agent-runtime}]
  template:
    metadata:
      annotations: {agents.kruise.io/cleanup-enabled: "true"}
    spec:
      containers: [{name: sandbox, image: registry.example.com/e2b/reuse:v1}]
"""
"""One recycling (``cleanup-enabled``) sandbox: a kill returns it to its pool."""

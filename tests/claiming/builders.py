"""Builders for the claim-rule tests: sandboxes, sets, claims, a fixed clock, a scripted rng."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition, ObjectMeta, OwnerReference
from pytest_kruise_agents.api.sandbox import PodInfo, Sandbox, SandboxPhase, SandboxSpec
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetSpec

NOW = datetime(2026, 8, 1, 10, 0, 0, tzinfo=UTC)
"""The instant every test takes as ``now``."""

SBS_UID = "sbs-uid-1"


def pod_template(image: str = "python:3.12", **resources: dict[str, str]) -> dict[str, Any]:
    """A minimal pod template with one container ``main``."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if resources:
        container["resources"] = resources
    return {"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [container]}}


def make_sandbox(
    name: str = "demo-abc12",
    *,
    namespace: str = "default",
    phase: SandboxPhase | None = SandboxPhase.RUNNING,
    ready: bool = True,
    owned: bool = True,
    ip: str | None = "10.0.0.1",
    revision: str | None = "rev1",
    locked: str | None = None,
    created: datetime | None = NOW - timedelta(minutes=5),
    deleted: bool = False,
    paused: bool | None = None,
    shutdown: datetime | None = None,
    pause_time: datetime | None = None,
    recycled: int | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    template: dict[str, Any] | None = None,
) -> Sandbox:
    """A sandbox of pool ``demo``; by default a ready, owned, available one."""
    lbls = {
        keys.LABEL_SANDBOX_POOL: "demo",
        keys.LABEL_SANDBOX_TEMPLATE: "demo",
        keys.LABEL_SANDBOX_CLAIMED: "false" if owned else "true",
    }
    if revision is not None:
        lbls[keys.LABEL_TEMPLATE_HASH] = revision
    lbls.update(labels or {})
    anns = dict(annotations or {})
    if locked is not None:
        anns[keys.ANN_LOCK] = locked
    refs = []
    if owned:
        refs.append(
            OwnerReference(
                api_version=keys.API_VERSION,
                kind="SandboxSet",
                name="demo",
                uid=SBS_UID,
                controller=True,
                block_owner_deletion=True,
            )
        )
    sbx = Sandbox(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            creation_timestamp=created,
            deletion_timestamp=NOW - timedelta(seconds=1) if deleted else None,
            labels=lbls,
            annotations=anns,
            owner_references=refs,
        ),
        spec=SandboxSpec(
            paused=paused,
            shutdown_time=shutdown,
            pause_time=pause_time,
            template=template if template is not None else pod_template(),
        ),
    )
    sbx.status.phase = phase
    sbx.status.recycled_count = recycled
    if ip is not None:
        sbx.status.pod_info = PodInfo(pod_ip=ip)
    sbx.status.conditions.append(
        Condition(type="Ready", status="True" if ready else "False", reason="PodReady")
    )
    return sbx


def make_sandboxset(
    name: str = "demo",
    *,
    namespace: str = "default",
    replicas: int = 3,
    template: dict[str, Any] | None = None,
    template_ref: str | None = None,
    runtimes: Sequence[str] = (),
) -> SandboxSet:
    """A SandboxSet with an inline template (or a ``templateRef``)."""
    spec: dict[str, Any] = {"replicas": replicas}
    if template_ref is not None:
        spec["templateRef"] = {"name": template_ref}
    else:
        spec["template"] = template if template is not None else pod_template()
    if runtimes:
        spec["runtimes"] = [{"name": r} for r in runtimes]
    return SandboxSet(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=SBS_UID),
        spec=SandboxSetSpec.model_validate(spec),
    )


def make_claim(
    name: str = "claim-1",
    *,
    namespace: str = "default",
    uid: str = "claim-uid-1",
    generation: int = 1,
    **spec: Any,
) -> SandboxClaim:
    """A SandboxClaim of template ``demo``; ``spec`` keys are the Python field names."""
    fields: dict[str, Any] = {"template_name": "demo"}
    fields.update(spec)
    return SandboxClaim(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=uid, generation=generation),
        spec=SandboxClaimSpec(**fields),
    )


class ScriptedRng:
    """A RandomSource that answers from scripts, to pin exact draws in a test."""

    def __init__(
        self, randoms: Sequence[float] = (), starts: Sequence[int] = (), uniform: float = 0.0
    ) -> None:
        self._randoms = list(randoms)
        self._starts = list(starts)
        self._uniform = uniform
        self.randrange_calls: list[int] = []

    def random(self) -> float:
        return self._randoms.pop(0) if self._randoms else 0.0

    def randrange(self, stop: int, /) -> int:
        self.randrange_calls.append(stop)
        return (self._starts.pop(0) if self._starts else 0) % stop

    def uniform(self, a: float, b: float, /) -> float:
        return a + (b - a) * self._uniform

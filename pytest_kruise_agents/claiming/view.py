"""The E2B view of a claimed sandbox: what ``GET /sandboxes/{id}`` and list items show.

The sandbox-manager builds its ``Sandbox`` response from the Kubernetes object
(reference §6.3): ``startedAt`` is the claim timestamp, ``endAt`` the pause
time if set else the shutdown time (the zero time for a never-timeout
sandbox), ``cpuCount`` the CPU limit in cores (falling back to requests),
``memoryMB`` and ``diskSizeMB`` likewise, ``metadata`` every non-reserved label
and annotation plus the response-only keys, ``state`` ``running`` or
``paused`` (a claimed Running-not-Ready sandbox shows as ``running``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import parse_time
from pytest_kruise_agents.api.quantity import cpu_millis, memory_bytes
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.claiming.extensions import (
    KEY_RETURN_SANDBOX_IP,
    KEY_SANDBOX_IP,
    KEY_SANDBOX_RESOURCE,
    is_blacklisted,
)
from pytest_kruise_agents.claiming.modification import InitRuntimeRequest
from pytest_kruise_agents.claiming.recycle import recycle_pending
from pytest_kruise_agents.claiming.state import (
    REASON_CLAIMED_NOT_READY,
    pod_ip,
    sandbox_state,
)

__all__ = [
    "E2BState",
    "SandboxView",
    "e2b_state",
    "init_request",
    "sandbox_id",
    "sandbox_id_keys",
    "sandbox_view",
    "served_state",
    "split_sandbox_id",
    "template_resources",
]

E2BState = Literal["running", "paused"]


def sandbox_id(sbx: Sandbox) -> str:
    """The E2B sandbox id of a sandbox: ``<namespace>--<name>`` (DNS-label safe)."""
    return f"{sbx.metadata.namespace}--{sbx.metadata.name}"


def split_sandbox_id(sid: str) -> tuple[str, str] | None:
    """The first ``(namespace, name)`` reading of a sandbox id (split at its first ``--``), or ``None``.

    Only a guess when the namespace holds ``--`` itself (``team--x--base-abc``):
    an id names a sandbox through the manager's route table, keyed by the id
    (reference §6.8); :func:`sandbox_id_keys` gives every reading to look up.
    """
    ns, sep, name = sid.partition("--")
    if not sep or not ns or not name:
        return None
    return ns, name


def sandbox_id_keys(sid: str) -> list[tuple[str, str]]:
    """Every ``(namespace, name)`` whose sandbox id is ``sid``: one per ``--`` it could be split at.

    Upstream finds a sandbox by its id in the route table, keyed by the id
    (``<namespace>--<name>``); a namespace or a name may hold ``--`` itself, so
    the id of ``team--x/base-abc`` is ``team--x--base-abc``, which also reads
    as ``team/x--base-abc``. Looking each reading up finds whichever sandbox
    has that id, as the table would. Namespace first split first; empty parts
    are no reading.
    """
    keys_: list[tuple[str, str]] = []
    at = sid.find("--")
    while at != -1:
        ns, name = sid[:at], sid[at + 2 :]
        if ns and name:
            keys_.append((ns, name))
        at = sid.find("--", at + 1)
    return keys_


def served_state(sbx: Sandbox, now: datetime) -> tuple[SandboxState, str]:
    """:func:`sandbox_state` as the E2B side serves it: a kill asked to recycle it pauses it.

    From the kill on the sandbox is its caller's no longer: it takes no traffic
    and reads ``paused`` (upstream shows ``running`` until the controller's
    ``Recycling``, a watch lag later).
    """
    state, reason = sandbox_state(sbx, now)
    if state is SandboxState.RUNNING and recycle_pending(sbx):
        return SandboxState.PAUSED, reason
    return state, reason


def e2b_state(sbx: Sandbox, now: datetime) -> E2BState | None:
    """The E2B ``state`` of a claimed sandbox (``running``/``paused``), or ``None`` if not shown.

    A claimed sandbox whose pod runs but is not Ready is ``dead`` for pools and
    routing yet shown as ``running`` (§9 item 11). One a kill asked to recycle
    is ``paused`` (:func:`served_state`).
    """
    state, reason = served_state(sbx, now)
    if state is SandboxState.RUNNING:
        return "running"
    if state is SandboxState.PAUSED:
        return "paused"
    if state is SandboxState.DEAD and reason == REASON_CLAIMED_NOT_READY:
        return "running"
    return None


def init_request(sbx: Sandbox) -> InitRuntimeRequest | None:
    """The agent-runtime ``/init`` body persisted at claim time (env vars, access token)."""
    raw = sbx.metadata.annotations.get(keys.ANN_INIT_RUNTIME_REQUEST)
    if not raw:
        return None
    try:
        return InitRuntimeRequest.from_json(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SandboxView:
    """A claimed sandbox as the E2B API shows it (backend-neutral; see the module docstring)."""

    sandbox_id: str
    namespace: str
    name: str
    template_id: str
    state: E2BState
    started_at: datetime | None
    end_at: datetime | None
    """``None`` for a never-timeout sandbox (upstream writes the zero time)."""
    cpu_count: int
    memory_mb: int
    disk_size_mb: int
    metadata: dict[str, str] = field(default_factory=dict)
    envd_access_token: str = ""
    auto_pause: bool = False
    owner: str = ""


def template_resources(template: dict[str, Any] | None) -> tuple[int, int, int]:
    """``(cpuCount, memoryMB, diskSizeMB)`` of a pod template's first container.

    Limits win over requests; no CPU means 1, no memory or disk means 0.
    """
    spec = (template or {}).get("spec") or {}
    containers = spec.get("containers") or []
    res = (containers[0].get("resources") or {}) if containers else {}
    if not isinstance(res, dict):
        res = {}

    def pick(name: str) -> Any:
        for part in ("limits", "requests"):
            value = (res.get(part) or {}).get(name)
            if value is not None:
                return value
        return None

    cpu, mem, disk = pick("cpu"), pick("memory"), pick("ephemeral-storage")
    return (
        max(cpu_millis(cpu) // 1000, 1) if cpu is not None else 1,
        memory_bytes(mem) // (1024 * 1024) if mem is not None else 0,
        memory_bytes(disk) // (1024 * 1024) if disk is not None else 0,
    )


def sandbox_view(
    sbx: Sandbox, now: datetime, resolved: dict[str, Any] | None = None
) -> SandboxView | None:
    """The E2B view of ``sbx`` at ``now``, or ``None`` if the manager would not show it.

    ``resolved`` is the pod template of the SandboxTemplate a sandbox's
    ``templateRef`` names: its first container gives the CPU and memory.
    """
    state = e2b_state(sbx, now)
    if state is None:
        return None
    meta = sbx.metadata
    ann = meta.annotations
    template = sbx.spec.template if sbx.spec.template is not None else resolved
    cpu_count, memory_mb, disk_size_mb = template_resources(template)
    metadata = {k: v for k, v in meta.labels.items() if not is_blacklisted(k)}
    metadata.update({k: v for k, v in ann.items() if not is_blacklisted(k)})
    metadata[KEY_SANDBOX_RESOURCE] = f"{meta.namespace}/{meta.name}"
    ip = pod_ip(sbx)
    if ann.get(KEY_RETURN_SANDBOX_IP) == "true" and ip:
        metadata[KEY_SANDBOX_IP] = ip
    started = ann.get(keys.ANN_CLAIM_TIMESTAMP)
    end = sbx.spec.pause_time or sbx.spec.shutdown_time
    init = init_request(sbx)
    return SandboxView(
        sandbox_id=sandbox_id(sbx),
        namespace=meta.namespace or "",
        name=meta.name,
        template_id=meta.labels.get(keys.LABEL_SANDBOX_TEMPLATE)
        or meta.labels.get(keys.LABEL_SANDBOX_POOL, ""),
        state=state,
        started_at=parse_time(started) if started else None,
        end_at=end,
        cpu_count=cpu_count,
        memory_mb=memory_mb,
        disk_size_mb=disk_size_mb,
        metadata=metadata,
        envd_access_token=ann.get(keys.ANN_RUNTIME_ACCESS_TOKEN, "")
        or (init.access_token if init else ""),
        auto_pause=sbx.spec.pause_time is not None,
        owner=ann.get(keys.ANN_OWNER, ""),
    )

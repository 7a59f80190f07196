"""The ``network`` each sandbox was created with, for ``GET /sandboxes/{id}`` to report.

The sandbox-manager takes ``network {allowOut, denyOut}`` on create, enforces
it with TrafficPolicy objects and reports it in the sandbox's detail
(reference §6.2, §6.3). TrafficPolicies are not modelled and the Backend seam
carries no network, so the server keeps each claim's rules itself: reported,
never enforced (a fake sandbox's commands use the host's network).

An entry belongs to one claim of its sandbox, named by the claim's start time
and envd access token: a ``cleanup-enabled`` sandbox recycled into its pool
keeps its id, and whoever claims it next must not be shown the rules of the
claim before. Entries are dropped when the sandbox is gone.
"""

from __future__ import annotations

from datetime import datetime

from pytest_kruise_agents.api.e2b import SandboxNetwork, SandboxNetworkConfig
from pytest_kruise_agents.claiming.view import SandboxView

__all__ = ["SandboxNetworks", "reported_network"]

_Claim = tuple[datetime | None, str]


def _claim(view: SandboxView) -> _Claim:
    return view.started_at, view.envd_access_token


def reported_network(requested: SandboxNetworkConfig | None) -> SandboxNetwork | None:
    """What upstream reports of a create's ``network``: its egress lists, nothing else."""
    if requested is None:
        return None
    return SandboxNetwork(allow_out=requested.allow_out, deny_out=requested.deny_out)


class SandboxNetworks:
    """Sandbox id → the network of its current claim (see the module docstring).

    Written and read on the event loop; :meth:`forget` also runs on the
    backend's threads (its notifications): each call is one dict operation.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[_Claim, SandboxNetwork]] = {}

    def record(self, view: SandboxView, network: SandboxNetwork | None) -> None:
        """Remember the network the claim of ``view`` was created with (``None``: none)."""
        if network is None:
            self._by_id.pop(view.sandbox_id, None)
        else:
            self._by_id[view.sandbox_id] = (_claim(view), network)

    def of(self, view: SandboxView) -> SandboxNetwork | None:
        """The network of the claim ``view`` shows, if its create gave one."""
        entry = self._by_id.get(view.sandbox_id)
        if entry is None or entry[0] != _claim(view):
            return None
        return entry[1]

    def forget(self, sandbox_id: str) -> None:
        """Drop the sandbox's entry (it is gone)."""
        self._by_id.pop(sandbox_id, None)

    def __contains__(self, sandbox_id: object) -> bool:
        return sandbox_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

"""The wiring of one simulated cluster: API server, informer caches, clients, records, metrics.

Every component of the model (scheduler and kubelets, the three controllers,
the sandbox-manager) receives the :class:`World` and finds what it needs here:

* ``controller_cache`` — the agent-sandbox-controller's shared informer cache
  (Sandbox, SandboxSet, SandboxClaim, SandboxTemplate, Pod), with indexes ``owner-uid`` (the
  controller ownerRef UID of a Sandbox), ``claim-owner`` (the
  ``agents.kruise.io/owner`` annotation of a Sandbox), and the same ``pool``
  and ``name`` indexes as the manager's cache (the SandboxClaim controller
  claims through the same code);
* ``manager_cache`` — the sandbox-manager's cache (Sandbox, SandboxSet,
  SandboxTemplate), with
  index ``pool`` on Sandboxes (keys ``"<ns>/<template>"`` and ``"*/<template>"``
  for sandboxes that are available, or creating while SandboxSet-controlled:
  the candidate list of reference §5.2) and, for the subset that was
  pickable when last indexed (available, unlocked, with a pod IP), the same
  keys prefixed ``"pick:"``: claims walk those buckets instead of filtering
  the whole list on every pick; and index ``name`` on SandboxSets
  (key ``"*/<name>"``, for the admin's cross-namespace lookup);
* ``node_cache`` — the scheduler's and kubelets' cache of Pods, with index
  ``node`` (``spec.nodeName``, ``""`` while unscheduled). Kubelets make their
  own per-node clients with ``api.client(f"kubelet/{node}", ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import resolve_pod_template
from pytest_kruise_agents.claiming.selection import is_pickable
from pytest_kruise_agents.claiming.state import sandbox_state
from simulator.apiserver import ApiServer, Client
from simulator.context import SimContext
from simulator.informer import Informer
from simulator.metrics import ClusterMetrics
from simulator.records import ClaimRecords

__all__ = ["PICKABLE_PREFIX", "World"]

PICKABLE_PREFIX = "pick:"
"""Prefix of the ``pool`` index keys that hold only sandboxes pickable when last indexed."""


def _owner_uid(sbx: Any) -> Iterable[str]:
    ref = sbx.metadata.controller_ref()
    return (ref.uid,) if ref is not None else ()


def _claim_owner(sbx: Any) -> Iterable[str]:
    owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
    return (owner,) if owner else ()


def _template_of(sbx: Sandbox) -> str | None:
    labels = sbx.metadata.labels
    return labels.get(keys.LABEL_SANDBOX_TEMPLATE) or labels.get(keys.LABEL_SANDBOX_POOL)


def _set_name(sbs: Any) -> Iterable[str]:
    return (f"*/{sbs.metadata.name}",)


def _pod_node(pod: Any) -> Iterable[str]:
    return (str(pod.spec.get("nodeName") or ""),)


_POOL_KEY_CACHE_MAX = 1024
"""Pools whose index keys are kept built (see ``World._keys_of``)."""


class World:
    """One cluster's API server, caches and clients (see the module docstring)."""

    def __init__(self, ctx: SimContext, records: ClaimRecords | None = None) -> None:
        self.ctx = ctx
        prof = ctx.profile
        self.api = ApiServer(ctx)
        self.records = records if records is not None else ClaimRecords()
        self.metrics = ClusterMetrics()
        self._pool_key_cache: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}

        self.controller_cache = Informer(
            "agent-sandbox-controller",
            ("Sandbox", "SandboxSet", "SandboxClaim", "SandboxTemplate", "Pod"),
        )
        self.controller_cache.add_index("Sandbox", "owner-uid", _owner_uid)
        self.controller_cache.add_index("Sandbox", "claim-owner", _claim_owner)
        self.controller_cache.add_index("Sandbox", "pool", self._pool_keys)
        self.controller_cache.add_index("SandboxSet", "name", _set_name)
        self.controller_cache.add_index("SandboxTemplate", "owner-uid", _owner_uid)

        self.manager_cache = Informer(
            "sandbox-manager", ("Sandbox", "SandboxSet", "SandboxTemplate")
        )
        self.manager_cache.add_index("Sandbox", "pool", self._pool_keys)
        self.manager_cache.add_index("SandboxSet", "name", _set_name)

        self.node_cache = Informer("kube-system", ("Pod",))
        self.node_cache.add_index("Pod", "node", _pod_node)

        for inf in (self.controller_cache, self.manager_cache, self.node_cache):
            self.api.register(inf)

        self.controller_client: Client = self.api.client(
            "agent-sandbox-controller", prof.controller_qps, prof.controller_burst
        )
        self.manager_client: Client = self.api.client(
            "sandbox-manager", prof.manager_qps, prof.manager_burst
        )
        self.scheduler_client: Client = self.api.client(
            "kube-scheduler", prof.controller_qps, prof.controller_burst, stall_name="scheduler"
        )

    @staticmethod
    def pod_template(obj: Sandbox | SandboxSet, cache: Informer) -> dict[str, Any] | None:
        """``obj``'s pod template, a ``templateRef`` resolved through ``cache`` (or None)."""
        return resolve_pod_template(obj, lambda ns, name: cache.get("SandboxTemplate", ns, name))

    def _pool_keys(self, sbx: Any) -> Iterable[str]:
        # The manager's field index (reference §5.2): available sandboxes, or
        # creating ones still controlled by a SandboxSet, keyed by template.
        # Pickable ones are also filed under "pick:" keys, in the order they
        # became pickable: a pick then re-checks only what time alone changes.
        template = _template_of(sbx)
        if not template or sbx.metadata.deletion_timestamp is not None:
            return ()
        state, _ = sandbox_state(sbx, self.ctx.now_dt())
        ns = sbx.metadata.namespace
        if state is SandboxState.AVAILABLE and is_pickable(sbx):
            return self._keys_of(ns, template)[1]
        if state is SandboxState.AVAILABLE or (
            state is SandboxState.CREATING and sbx.metadata.controller_ref() is not None
        ):
            return self._keys_of(ns, template)[0]
        return ()

    def _keys_of(self, namespace: str, template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        # The pool keys and the pool-and-pick keys, built once per pool and
        # shared by all its sandboxes' index entries (a pool of 100,000 would
        # otherwise hold 800,000 strings).
        # Bounded: pools made and deleted under fresh names (one per job, per
        # test) would otherwise each keep an entry; after a clear, live pools
        # build theirs again (equal keys, so no index entry moves).
        cache = self._pool_key_cache
        keys_ = cache.get((namespace, template))
        if keys_ is None:
            if len(cache) >= _POOL_KEY_CACHE_MAX:
                cache.clear()
            pool = (f"{namespace}/{template}", f"*/{template}")
            keys_ = (pool, (*pool, *(PICKABLE_PREFIX + k for k in pool)))
            cache[(namespace, template)] = keys_
        return keys_

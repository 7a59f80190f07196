"""Recipes: a test's :class:`~pytest_kruise_agents.plugin.marker.ClusterSpec`, parsed once per run.

Turning a spec into a cluster has a costly part that is the same for every
test (reading and validating the config file, parsing the SandboxSet YAML,
validating the profile, latencies, knobs and faults) and a part that cannot
be shared (the cluster itself: SimPy processes cannot be copied, so every
test's cluster is built and its pools filled from scratch, in virtual time).
A :class:`RecipeBook` does the first part once per distinct spec;
:meth:`Recipe.build` does the second for each test.

Without a config file the plugin's cluster is the ``kruise-agents serve``
default with smaller pools (:data:`DEFAULT_REPLICAS` sandboxes in each of
``base`` and ``code-interpreter-v1``), so that a fresh cluster per test is
cheap; a config file without ``sandboxsets`` gets the server's defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import KubeObject, load_manifests
from pytest_kruise_agents.api.problems import format_path, reason
from pytest_kruise_agents.backends.sim import default_pools_yaml, opened
from pytest_kruise_agents.e2b.config import (
    POOL_READY_TIMEOUT_S,
    ClusterConfig,
    ConfigError,
    default_config,
    from_opening,
    load_config,
    unfilled,
)
from pytest_kruise_agents.e2b.settings import Settings
from pytest_kruise_agents.plugin.marker import ClusterSpec
from pytest_kruise_agents.plugin.options import ClockMode
from simulator.cluster import Cluster, default_nodes
from simulator.faults import Fault, check_node_names
from simulator.nodes import NodeSpec, too_many_nodes
from simulator.profile import Profile, get_profile

__all__ = [
    "DEFAULT_REPLICAS",
    "Recipe",
    "RecipeBook",
    "RecipeError",
    "config_clock",
    "records_limit",
    "run_clock",
]

DEFAULT_REPLICAS: Final = 3
"""Ready sandboxes in each default pool of the plugin's cluster (the server's default is 10)."""

DUMMY_API_KEY: Final = "e2b_kruise_agents_no_auth"
"""``E2B_API_KEY`` when the config disables auth and lists no key (the SDK insists on one)."""


class RecipeError(ValueError):
    """A spec that cannot become a cluster: ``<where>: <reason>``."""


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated, pre-parsed cluster description; :meth:`build` makes a fresh cluster of it."""

    source: str
    """Where the description came from (the config file, or the plugin default)."""
    pools_source: str
    """Where the pools came from, for a pool that cannot fill (the marker's ``pools``, the
    config file's ``sandboxsets``, or the plugin default)."""
    faults_source: str
    """Where the faults came from, for a fault the cluster refuses (the marker's or the file's)."""
    seed: int
    profile: Profile
    nodes: int | tuple[NodeSpec, ...]
    pools: tuple[KubeObject, ...]
    faults: tuple[Mapping[str, Any], ...]
    clock: ClockMode
    speed: float
    start: datetime | None
    """The config file's ``clock.start``: the date the clock reads once built (``None``: see
    :meth:`build`)."""
    settings: Settings
    api_key: str
    """What ``E2B_API_KEY`` is set to: the first non-admin key (else the admin key)."""
    admin_key: str | None
    records_limit: int | None = None
    """The config file's ``recordsLimit`` if it sets one (see :func:`records_limit`)."""

    def build(self) -> Cluster:
        """A new cluster: nodes, pools filled (in virtual time), faults injected.

        Each fault's ``start`` counts from the moment they are injected, the
        test's start (``None``: at once), not from virtual time 0.

        A virtual clock starts at the fixed epoch (the same dates every run); a
        realtime one reads the wall clock's now once its pools are filled, so
        that the SDK's ``endAt`` is on the test's own clock (as ``serve`` does);
        a config file's ``clock.start`` sets the opening date of either.
        """
        try:
            cluster = opened(self._filled, start=self.start, realtime=self.clock == "realtime")
        except InvalidError as exc:
            if exc.field != "start":
                raise
            # Known only once the fill is measured: a start too near 1970 for it.
            raise RecipeError(f"{self.source}: clock.start: {exc.reason}") from None
        for i, fault in enumerate(self.faults):
            # A fault's start counts from the test's start, as the config file's
            # count from the server's: the pools took virtual time to fill.
            fields = from_opening(fault, cluster.now)
            try:
                cluster.inject(fields.pop("kind"), **fields)
            except InvalidError as exc:
                # The recipe checks what it can; the cluster is the last word.
                raise RecipeError(f"{self.faults_source}[{i}].{exc}") from None
        return cluster

    def _filled(self, epoch: datetime) -> Cluster:
        """The recipe's cluster from ``epoch`` (virtual time 0), its pools filled."""
        nodes = self.nodes if isinstance(self.nodes, int) else list(self.nodes)
        cluster = Cluster(
            seed=self.seed,
            profile=self.profile,
            nodes=nodes,
            epoch=epoch,
            records_limit=self.records_limit,
        )
        # create() copies the models: the recipe's stay pristine for the next test. The
        # cluster is new, so the pools are created (as kubectl create, which takes a
        # generateName), and the stored ones are waited for: a generateName one has its
        # name only once created.
        pools = cluster.create(list(self.pools)) if self.pools else []
        for pool in pools:
            ns = pool.metadata.namespace or "default"
            try:
                cluster.wait_for_pool(pool.metadata.name, ns, timeout=POOL_READY_TIMEOUT_S)
            except TimeoutError as exc:
                raise RecipeError(f"{self.pools_source}: {unfilled(exc)}") from None
        return cluster


def _marker_pools(value: Any) -> list[Any]:
    if isinstance(value, int):
        # 0 too: the default pools, empty (every create is cold); `{}` means none.
        return [default_pools_yaml(value)]
    if isinstance(value, Mapping):
        return [default_pools_yaml(int(n), pools=(name,)) for name, n in value.items()]
    if isinstance(value, str):
        return [value]
    return list(value)


def _load_pools(docs: Sequence[Any], where: str) -> tuple[KubeObject, ...]:
    out: list[KubeObject] = []
    for doc in docs:
        try:
            loaded = load_manifests(doc)
        except InvalidError as exc:
            raise RecipeError(f"{where}: {exc}") from None
        for obj in loaded:
            if obj.kind != "SandboxSet":
                raise RecipeError(
                    f"{where}: {obj.kind}/{obj.metadata.name}: only SandboxSets belong here"
                )
        out.extend(loaded)
    return tuple(out)


def config_clock(cfg: ClusterConfig) -> ClockMode | None:
    """The clock mode a config file asks for: its ``clock.mode`` if it sets one, else ``None``.

    ``serve`` runs realtime by default (its clients must see timeouts happen);
    tests run in virtual time unless asked otherwise. A file that sets only
    ``clock.start`` (a date) or ``clock.speed`` (the pace of a realtime clock,
    should one be asked for) has not asked for realtime.
    """
    return cfg.clock.mode if "mode" in cfg.clock.model_fields_set else None


def records_limit(cfg: ClusterConfig) -> int | None:
    """The claim records a test's cluster keeps: the config file's ``recordsLimit`` if it sets
    one (``null``: all), else all.

    ``serve`` keeps the latest 10,000 by default: a server that stays up for days must not
    grow without end. A test's cluster lives for one test, whose records (``records``, the
    delivery benchmark's) are what it checks: it bounds them only when asked to.
    """
    return cfg.records_limit if "records_limit" in cfg.model_fields_set else None


def run_clock(
    clock: ClockMode | None, speed: float | None, cfg: ClusterConfig
) -> tuple[ClockMode, float]:
    """The clock a test gets: the option's (or marker's) mode, else the file's, else virtual;
    the option's speed, else the file's (which is 1 unless it sets one)."""
    return clock or config_clock(cfg) or "virtual", speed if speed is not None else cfg.clock.speed


def _recipe(spec: ClusterSpec, cfg: ClusterConfig, source: str) -> Recipe:
    marker = "@pytest.mark.kruise"
    if spec.pools is not None:
        pools_source = f"{marker} pools"
        pools = _load_pools(_marker_pools(json.loads(spec.pools)), pools_source)
    elif spec.config is None:
        pools_source = f"{source}: pools"
        pools = _load_pools([default_pools_yaml(DEFAULT_REPLICAS)], source)
    else:
        pools_source = f"{source}: sandboxsets"
        pools = _load_pools(cfg.pools_source(), pools_source)
    try:
        profile = get_profile(spec.profile or cfg.profile)
    except ValueError as exc:
        where = f"{marker} profile" if spec.profile else f"{source}: profile"
        raise RecipeError(f"{where}: {exc}") from None
    latencies = {**cfg.latencies, **(json.loads(spec.latencies) if spec.latencies else {})}
    knobs = {**cfg.knobs, **(json.loads(spec.knobs) if spec.knobs else {})}
    for knob in knobs:
        # Before with_overrides, whose own latencies argument a knob called latencies clashes with.
        problem = profile.knob_problem(knob)
        if problem is not None:
            raise RecipeError(f"{marker} knobs over {source}: {problem}")
    if latencies or knobs:
        try:
            profile = profile.with_overrides(latencies=latencies, **knobs)
        except ValueError as exc:
            raise RecipeError(f"{marker} latencies/knobs over {source}: {exc}") from None
    nodes: int | tuple[NodeSpec, ...]
    if spec.nodes is not None:
        # The marker's count (at least 1 there): the simulator's maximum, checked
        # before its nodes are made to be named below.
        problem = too_many_nodes(spec.nodes)
        if problem is not None:
            raise RecipeError(f"{marker} nodes: {problem}")
        nodes = spec.nodes
    elif isinstance(cfg.nodes, int):
        nodes = cfg.nodes
    else:
        nodes = tuple(n.spec() for n in cfg.nodes)
    faults: list[Mapping[str, Any]] = list(json.loads(spec.faults) if spec.faults else cfg.faults)
    node_names = dict.fromkeys(
        s.name for s in (default_nodes(nodes) if isinstance(nodes, int) else nodes)
    )
    faults_source = f"{marker} faults" if spec.faults else f"{source}: faults"
    for i, fault in enumerate(faults):
        where = f"{faults_source}[{i}]"
        try:
            checked = Fault.model_validate(fault)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise RecipeError(f"{where}.{format_path(err['loc'])}: {reason(err)}") from None
        try:
            check_node_names(checked.selector, node_names)
        except InvalidError as exc:
            raise RecipeError(f"{where}.{exc}") from None
    keys = cfg.keys()
    users = [k for k in keys if not k.admin]
    admins = [k for k in keys if k.admin]
    api_key = (users or admins)[0].key if keys else DUMMY_API_KEY
    clock, speed = run_clock(spec.clock, spec.speed, cfg)
    return Recipe(
        source=source,
        pools_source=pools_source,
        faults_source=faults_source,
        seed=spec.seed if spec.seed is not None else cfg.seed,
        profile=profile,
        nodes=nodes,
        pools=pools,
        faults=tuple(faults),
        clock=clock,
        speed=speed,
        start=cfg.clock.start,
        settings=Settings(api_keys=keys, auth_enabled=cfg.auth, domain=cfg.domain),
        api_key=api_key,
        admin_key=admins[0].key if admins else None,
        records_limit=records_limit(cfg),
    )


class RecipeBook:
    """Recipes by spec, and config files by path, each parsed once per run (per xdist worker)."""

    def __init__(self) -> None:
        self._configs: dict[Path, ClusterConfig] = {}
        self._recipes: dict[ClusterSpec, Recipe] = {}

    def config(self, path: Path | None) -> ClusterConfig:
        """The parsed config file (the default config for ``None``)."""
        if path is None:
            return default_config()
        cfg = self._configs.get(path)
        if cfg is None:
            try:
                cfg = self._configs[path] = load_config(path)
            except ConfigError as exc:
                raise RecipeError(str(exc)) from None
        return cfg

    def recipe(self, spec: ClusterSpec) -> Recipe:
        """The recipe of ``spec``; :class:`RecipeError` says what is wrong with it."""
        found = self._recipes.get(spec)
        if found is None:
            source = str(spec.config) if spec.config is not None else "<plugin default cluster>"
            found = self._recipes[spec] = _recipe(spec, self.config(spec.config), source)
        return found

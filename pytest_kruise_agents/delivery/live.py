"""Run a delivery workload against any E2B-compatible server, with the real E2B SDK, on the wall clock.

Each claim is ``Sandbox.create(template)`` followed by a command
(``true``) repeated until it succeeds: the latency is the wall-clock time
from the create call to the first successful command, which is what an
agent waits for. Claims run concurrently in threads; a rate workload starts
each at its arrival time (the SDK is imported before the clock starts, so
none waits for it). Each sandbox is killed once measured.

Sandbox traffic goes where the unmodified SDK sends it (each sandbox's own
host on a server with per-sandbox hosts, as E2B cloud is), or to one
``sandbox_url`` for a proxy that names the sandbox by headers, as our fake
server does (see :func:`run_on_server`).

A server on a loopback address is reached directly, not through a proxy that
``HTTP_PROXY`` names (:mod:`pytest_kruise_agents.loopback`).

Only the E2B path exists here: SandboxClaims need the Kubernetes API, which
an E2B server does not offer.

A Ctrl-C (or any exception in the calling thread) stops the run at once: the
claims still in flight are told to stop (a first command is not tried again),
the sandboxes already created are killed (waiting at most :data:`KILL_WAIT_S`),
and the interrupt is raised. A create the server has not answered yet cannot be
taken back from here: its thread (a daemon, which does not keep the process
alive) kills the sandbox if the answer still comes while the process runs; if
the process ends first its connection closes, and a server that cancels a
create whose client went away (as OpenKruise's sandbox-manager and this
project's fake do) creates nothing.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from pytest_kruise_agents.delivery.result import (
    WARM_THRESHOLD_S,
    Delivery,
    DeliveryResult,
    check_name,
)
from pytest_kruise_agents.delivery.workload import Workload, check_workload
from pytest_kruise_agents.loopback import direct_to_loopback

if TYPE_CHECKING:
    from e2b import Sandbox

__all__ = ["FIRST_COMMAND", "KILL_WAIT_S", "MAX_DEADLINE_S", "check_url", "run_on_server"]

_MAX_CLIENTS: Final = 1024
"""The most claims the live runner keeps in flight at once (one thread each)."""

FIRST_COMMAND: Final = "true"
"""The command whose first success marks a sandbox as delivered."""

COMMAND_RETRY_S: Final = 0.05
"""Pause between attempts of the first command."""

_LOOK_S: Final = 0.05
"""The longest the calling thread waits in one go (for an arrival, a slot, a claim).

A Ctrl-C's SIGINT may be delivered to any thread of the process (one of the claims',
the server's of an in-process fake), and Python raises it in the calling thread only
when that thread next runs: a wait without a timeout would hold it until the claims end.
"""

KILL_WAIT_S: Final = 5.0
"""After a Ctrl-C, how long the run waits for the kills of the sandboxes created so far."""

MAX_DEADLINE_S: Final = 9_999_999.0
"""The longest ``deadline_s``: the SDK sends a command's timeout as ``Connect-Timeout-Ms``,
which the Connect protocol limits to 10 digits of milliseconds (a longer one is refused, and
the command would be retried, refused, until the deadline)."""


def _api_domain(url: str) -> str | None:
    """The domain of an API at ``https://api.<domain>`` (port kept), else ``None``.

    The inverse of the SDK's default API URL, and the domain our fake server
    derives from the same ``Host``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.startswith("api.") or len(host) <= len("api."):
        return None
    return host.removeprefix("api.") + (f":{parts.port}" if parts.port else "")


def _connection(url: str, sandbox_url: str | None, domain: str | None) -> dict[str, Any]:
    """The SDK's options for the server at ``url`` but the API key (see :func:`run_on_server`)."""
    # debug off: E2B_DEBUG makes the SDK skip the API and talk to localhost,
    # measuring nothing of the server at ``url``.
    opts: dict[str, Any] = {"api_url": url, "debug": False}
    if sandbox_url:
        opts["sandbox_url"] = sandbox_url
    domain = domain or _api_domain(url)
    if domain:
        opts["domain"] = domain
    return opts


class _Stopped(Exception):
    """The run was interrupted: the claim stops where it is."""


class _Flight:
    """What the claims of one run share: whether the run was stopped, and the sandboxes
    created and not yet killed (the ones a stop must kill)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._held: dict[int, Sandbox] = {}

    def hold(self, index: int, sbx: Sandbox) -> None:
        with self._lock:
            self._held[index] = sbx

    def release(self, index: int) -> None:
        with self._lock:
            self._held.pop(index, None)

    def held(self) -> list[Sandbox]:
        with self._lock:
            return list(self._held.values())


def _claim(
    sandbox: type[Sandbox],
    index: int,
    t0: float,
    workload: Workload,
    connection: dict[str, Any],
    deadline_s: float,
    kill: bool,
    flight: _Flight,
) -> Delivery:
    start = time.perf_counter()
    sbx: Sandbox | None = None
    phases: dict[str, float] = {}
    error: str | None = None
    latency: float | None = None
    retries = 0
    try:
        # The deadline counts from here: a create that hangs must not outlive it
        # (the server then cancels the claim, as for any client that goes away).
        sbx = sandbox.create(workload.template, **{"request_timeout": deadline_s, **connection})
        flight.hold(index, sbx)
        phases["created"] = time.perf_counter() - start
        retries = _first_command(sbx, start, deadline_s, flight.stop)
        done = time.perf_counter() - start
        phases["first_command"] = done
        if done > deadline_s:  # the SDK's timeouts are not exact
            raise TimeoutError(f"no successful command within {deadline_s:g}s: took {done:.3f}s")
        latency = done
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if sbx is not None and kill:
            # The measurement is done (or the run stopped); a failed kill changes nothing.
            with contextlib.suppress(Exception):
                sbx.kill()
        flight.release(index)
    return Delivery(
        index=index,
        path="e2b",
        template=workload.template,
        requested=start - t0,
        latency=latency,
        warm=None if latency is None else latency <= WARM_THRESHOLD_S,
        sandbox_id=sbx.sandbox_id if sbx is not None else None,
        phases=phases,
        retries=retries,
        error=error,
    )


def _first_command(sbx: Sandbox, start: float, deadline_s: float, stop: threading.Event) -> int:
    """Run :data:`FIRST_COMMAND` until it succeeds within the deadline, or the run is
    ``stop``ped; return the retries."""
    retries = 0
    while True:
        if stop.is_set():
            raise _Stopped("the run was interrupted")
        left = deadline_s - (time.perf_counter() - start)
        if left <= 0:  # the SDK reads a timeout of 0 as none
            raise TimeoutError(f"no successful command within {deadline_s:g}s")
        try:
            # The time left, not a deadline of its own: the claim's deadline counts
            # from its create, and a command done after it is no delivery.
            sbx.commands.run(FIRST_COMMAND, timeout=left, request_timeout=left)
            return retries
        except Exception as exc:  # any failure of the first command is retried
            if time.perf_counter() - start > deadline_s:
                raise TimeoutError(f"no successful command within {deadline_s:g}s: {exc}") from exc
            retries += 1
            stop.wait(COMMAND_RETRY_S)


def _kill_all(sandboxes: Sequence[Sandbox], within: float) -> None:
    """Kill ``sandboxes`` at once, each in a thread of its own; wait ``within`` seconds at most.

    After a Ctrl-C: the user waits for this, and a server that does not answer must not
    hold the interrupt back (the sandboxes left then end at their own timeout).
    """

    def kill(sbx: Sandbox) -> None:
        with contextlib.suppress(Exception):
            sbx.kill(request_timeout=within)

    threads = [threading.Thread(target=kill, args=(s,), daemon=True) for s in sandboxes]
    for thread in threads:
        thread.start()
    end = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))


def _run_claims(
    times: Sequence[float], t0: float, claim: Callable[[int], Delivery]
) -> tuple[Delivery, ...]:
    """``claim(i)`` for each arrival ``i`` (from 1) at ``t0`` plus its time, each in a thread.

    One thread per claim in flight, up to ``_MAX_CLIENTS``: a burst is sent at once (a
    claim queued behind a pool would start late, and that wait would not be in its
    latency); a workload with no arrivals sends nothing. The threads are daemons, not an
    executor's: an executor's threads are waited for when the process exits, and a Ctrl-C
    would wait for every claim in flight (see the module docstring).
    """
    slots = threading.BoundedSemaphore(_MAX_CLIENTS)
    results: dict[int, Delivery] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = claim(i)
        except BaseException as exc:  # raised in the caller's thread, as a future's would be
            errors.append(exc)
        finally:
            slots.release()

    # Every wait of this thread is in steps of _LOOK_S: see there.
    threads: list[threading.Thread] = []
    for i, at in enumerate(times, start=1):
        while (delay := t0 + at - time.perf_counter()) > 0:
            time.sleep(min(delay, _LOOK_S))
        while not slots.acquire(timeout=_LOOK_S):
            pass
        thread = threading.Thread(target=run, args=(i,), name=f"delivery-{i}", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        while thread.is_alive():
            thread.join(_LOOK_S)
    if errors:
        raise errors[0]
    return tuple(results[i] for i in range(1, len(times) + 1))


def check_url(name: str, value: object) -> None:
    """Refuse ``value`` unless it is an ``http(s)://host[:port]`` URL, naming the parameter ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: must be an http:// or https:// URL with a host, got {value!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in 0..65535
    except ValueError as exc:
        raise ValueError(f"{name}: not a URL ({exc}), got {value!r}") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in host):
        # An empty URL would make the SDK fall back to E2B's cloud with the caller's key,
        # and one without a scheme or with a bad host would fail each claim only once sent.
        raise ValueError(f"{name}: must be an http:// or https:// URL with a host, got {value!r}")


def _check_text(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a non-empty ``str``, naming the parameter ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: must be a str, got {value!r}")
    if not value:
        # The SDK reads an empty key or domain as none given, and puts E2B_API_KEY or
        # E2B_DOMAIN (or e2b.app) in its place.
        raise ValueError(f"{name}: must not be empty")


def _check_deadline(deadline_s: object) -> float:
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float):
        raise TypeError(
            f"deadline_s: must be a positive finite number of seconds, got {deadline_s!r}"
        )
    if not (deadline_s > 0 and math.isfinite(deadline_s)):
        raise ValueError(
            f"deadline_s: must be a positive finite number of seconds, got {deadline_s!r}"
        )
    if deadline_s > MAX_DEADLINE_S:
        raise ValueError(
            f"deadline_s: must be at most {MAX_DEADLINE_S:.0f} seconds (the SDK sends each "
            "try's time left as Connect-Timeout-Ms, which holds at most 10 digits of "
            f"milliseconds), got {deadline_s!r}"
        )
    return float(deadline_s)


def run_on_server(
    workload: Workload,
    *,
    url: str,
    api_key: str,
    sandbox_url: str | None = None,
    domain: str | None = None,
    name: str | None = None,
    deadline_s: float = 120.0,
    kill: bool = True,
    seed: int = 0,
) -> DeliveryResult:
    """Run ``workload`` against the E2B server at ``url`` (see the module docstring).

    The arguments are checked before anything is sent: ``url`` (and
    ``sandbox_url``) must be ``http(s)://`` URLs with a host (the SDK would
    read an empty one as E2B's cloud), ``api_key`` (and ``domain``, if given) a
    non-empty str (the SDK would read an empty one as none given and use
    ``E2B_API_KEY``, ``E2B_DOMAIN``), ``name`` a str if given, ``deadline_s`` a
    positive number of seconds up to :data:`MAX_DEADLINE_S`.

    Without ``sandbox_url`` the SDK reaches each sandbox the way it does
    unconfigured: through ``E2B_SANDBOX_URL`` if that is set, else by the
    sandbox's domain (the one the server's create response names, else
    ``domain``) at ``https://49983-<sandboxID>.<domain>`` (envd's port), or at
    the gateway ``https://sandbox.<domain>`` for E2B's own domains.

    :param sandbox_url: one URL for all sandbox traffic, the sandbox named by the
        ``E2b-Sandbox-Id`` and ``E2b-Sandbox-Port`` headers (as ``E2B_SANDBOX_URL``):
        a proxy, such as our fake server's own URL.
    :param domain: the sandboxes' domain when the server's responses name none;
        by default ``url``'s host without its ``api.`` (the inverse of the SDK's
        ``https://api.<domain>``), else the SDK's (``E2B_DOMAIN``, else ``e2b.app``).
    :param deadline_s: a claim that has not run a command this long after its create was
        sent fails (the create itself included: its request times out then; each try of
        the command gets only the time left, and one done after the deadline is no delivery).
    :param kill: kill each sandbox once measured.
    :param seed: seeds the Poisson arrivals of a ``Rate`` workload.
    """
    check_workload(workload)
    if workload.path != "e2b":
        raise ValueError(
            "path: only 'e2b' can be measured against an E2B server URL "
            "(SandboxClaims need the Kubernetes API)"
        )
    check_url("url", url)
    _check_text("api_key", api_key)
    if sandbox_url is not None:
        check_url("sandbox_url", sandbox_url)
    if domain is not None:
        _check_text("domain", domain)
    check_name(name)
    deadline_s = _check_deadline(deadline_s)
    connection = {
        "api_key": api_key,
        **_connection(url, sandbox_url, domain),
    }
    times = workload.arrivals(random.Random(seed))
    # Imported before the clock starts: the first import takes a second or more,
    # and claims due meanwhile would wait for it and all be sent at once.
    from e2b import Sandbox

    flight = _Flight()
    t0 = time.perf_counter()
    # A proxy in HTTP_PROXY cannot reach this host's loopback: a server there is
    # reached directly (the SDK reads the variables when it first connects).
    with direct_to_loopback():
        try:
            deliveries = _run_claims(
                times,
                t0,
                lambda i: _claim(Sandbox, i, t0, workload, connection, deadline_s, kill, flight),
            )
        except BaseException:
            # Ctrl-C: stop now, not when the last claim in flight ends (up to deadline_s).
            flight.stop.set()
            if kill:
                _kill_all(flight.held(), KILL_WAIT_S)
            raise
    return DeliveryResult(
        name=name or workload.name,
        workload=workload,
        target=url,
        clock="wall",
        deliveries=deliveries,
    )

"""Loopback traffic goes straight to the server: the loopback hosts in ``NO_PROXY``/``no_proxy``.

HTTP clients send every request to the proxy that ``HTTP_PROXY`` (or
``http_proxy``, ``ALL_PROXY``) names, a request to ``http://127.0.0.1`` too,
unless ``NO_PROXY`` (or ``no_proxy``) lists its host: the E2B SDK's transport
does, and so do httpx and Python's urllib. A proxy cannot reach the fake
server on this host's loopback (its own loopback is another host's), so on a
machine behind a proxy every call to the server failed, as a connection refused
by the server's own address. Go's ``net/http`` never proxies loopback; this
module gives the project's own clients the same rule, by adding the loopback
hosts to both variables (their values kept), as each client reads one or the
other.

The E2B SDK reads these variables once per process, when it first connects
(its connection pool is shared, and built then): the variables must be set
before a process's first SDK call, not only before the call to the fake server.

Standard library only: the pytest plugin, the conformance suite and the
delivery benchmark all use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

__all__ = ["LOOPBACK_HOSTS", "NO_PROXY_VARIABLES", "direct_to_loopback", "no_proxy_environ"]

LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
"""The hosts the fake server is reached at: its default address, its name, the IPv6 one."""

NO_PROXY_VARIABLES: Final = ("NO_PROXY", "no_proxy")
"""Both spellings: the SDK's transport reads ``NO_PROXY`` before ``no_proxy``, httpx and urllib
the other way round."""


def no_proxy_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``NO_PROXY`` and ``no_proxy`` as ``environ`` (default: the process's) has them, with
    each of :data:`LOOPBACK_HOSTS` they lack appended.

    Both get the same list: every entry of either (a client that reads only one
    must not lose the other's hosts), then the loopback hosts. Idempotent: a
    second call on the result changes nothing.
    """
    env = os.environ if environ is None else environ
    entries: list[str] = []
    for name in NO_PROXY_VARIABLES:
        for entry in env.get(name, "").split(","):
            entry = entry.strip()
            if entry and entry not in entries:
                entries.append(entry)
    entries += [host for host in LOOPBACK_HOSTS if host not in entries]
    value = ",".join(entries)
    return dict.fromkeys(NO_PROXY_VARIABLES, value)


@contextmanager
def direct_to_loopback() -> Iterator[None]:
    """Within the block, the process's ``NO_PROXY`` and ``no_proxy`` list the loopback hosts;
    after it, they are as they were (unset if they were)."""
    saved = {name: os.environ.get(name) for name in NO_PROXY_VARIABLES}
    os.environ.update(no_proxy_environ())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

"""Request targets in absolute form: ``GET http://host/path`` is ``GET /path`` sent to ``host``.

RFC 9112 §3.2.2: a server MUST accept the absolute form, which clients send
to proxies (and which some proxies pass on). uvicorn (h11) hands the target
on as the path, so no route matched it (404 ``no route GET
/http://host/path``). Go's net/http, under upstream, routes such a request by
the target's path and takes the target's authority as its host, ignoring the
``Host`` header; :func:`origin_form` makes the ASGI scope say the same.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from starlette.types import Scope

__all__ = ["origin_form"]

_ABSOLUTE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://")
"""The start of an absolute-form target: a URI scheme, then an authority."""


def origin_form(scope: Scope) -> Scope:
    """``scope`` as if its target were in origin form; ``scope`` itself if it already is.

    The path is the target's (``/`` if it has none; uvicorn split the query
    off already) and the ``Host`` header the target's authority, without
    user info, as Go's ``URL.Host``. The scope given is not changed.
    """
    raw: bytes = scope.get("raw_path") or b""
    root: bytes = scope.get("root_path", "").encode("latin-1")
    target = raw[len(root) :] if raw.startswith(root) else raw
    if _ABSOLUTE.match(target) is None:
        return scope
    authority, slash, rest = target.split(b"://", 1)[1].partition(b"/")
    path = slash + rest if slash else b"/"
    host = authority.rpartition(b"@")[2]
    rewritten = dict(scope)
    rewritten["raw_path"] = root + path
    rewritten["path"] = scope.get("root_path", "") + unquote(path.decode("latin-1"))
    if host:
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
        rewritten["headers"] = [*headers, (b"host", host)]
    return rewritten

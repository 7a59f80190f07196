"""How deeply a JSON (or YAML) body nests, measured before any parser recurses into it.

Every JSON parser behind the server recurses once per level of arrays and
objects: protobuf-py's (envd's Connect messages) on the C stack, without a
limit, so a body of 30,000 ``[`` (30 KB) crashed the whole process; Python's
``json`` and the validators after it on Python's stack, which ends in a
``RecursionError`` a few hundred levels down. So each route that parses
JSON measures the body first (:func:`json_depth`, a linear scan that
recurses nowhere; :func:`depth_over`) and refuses one nested deeper than
:data:`MAX_JSON_DEPTH` with its own error shape and :func:`too_deep_message`.

The admin apply's YAML manifests nest without brackets too (indentation,
``- - x``, aliases): :func:`yaml_depth` measures them from the YAML parser's
events, which recurse nowhere (the composer and constructor after it do).

Upstream's Go decoders (``encoding/json``, protojson) read up to
:data:`GO_JSON_DEPTH` levels; no request of the E2B API needs more than a
few (docs/fidelity.md).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate, count
from operator import sub
from typing import Final

import yaml

from pytest_kruise_agents.api.goyaml import YamlLoader

__all__ = [
    "GO_JSON_DEPTH",
    "MAX_JSON_DEPTH",
    "depth_over",
    "json_depth",
    "too_deep_message",
    "yaml_depth",
    "yaml_depth_over",
]

MAX_JSON_DEPTH: Final = 200
"""The deepest nesting of arrays and objects a JSON body may have here.

Bound by what reads a body after it is parsed: the surrogate repair
(``replace_surrogates``) takes two Python frames a level, within the 1,000
of Python's limit; pydantic serialises 255 levels at most.
"""

GO_JSON_DEPTH: Final = 10_000
"""The deepest nesting Go's ``encoding/json`` and protojson decode (deeper is a decode error)."""

# A JSON string, escapes included; one left open runs to the end of the body.
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
# Each opening bracket weighs 2, each closing one 0: the running sum of the
# weights less the count of brackets read is the depth after each bracket.
_WEIGHTS: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(data: bytes | bytearray) -> int:
    """The deepest nesting of arrays and objects in JSON ``data``: 0 for a scalar, 1 for ``[]``.

    Brackets inside strings nest nothing. ``data`` need not be valid JSON:
    a body that is not is measured as far as it reads as JSON (an unclosed
    string runs to its end), so the count is never lower than what a
    parser would reach before failing. Bytes in UTF-16 or UTF-32 (which
    ``json.loads`` detects) are measured as the text they encode.
    """
    raw = bytes(data)
    encoding = json.detect_encoding(raw)
    if encoding not in ("utf-8", "utf-8-sig"):
        raw = raw.decode(encoding, errors="replace").encode("utf-8", errors="replace")
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depths = map(sub, accumulate(brackets.translate(_WEIGHTS)), count(1))
    return max(depths, default=0)


def depth_over(data: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> int | None:
    """:func:`json_depth` of ``data`` if it is over ``limit``, else ``None``.

    A body with no more opening brackets than ``limit`` cannot nest deeper:
    it is passed without a scan (two byte counts), which keeps a large body
    of few brackets (a command's input, base64 in one string) cheap.
    """
    # In UTF-8, -16 and -32 alike, each "[" or "{" of the text holds its ASCII byte.
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth = json_depth(data)
    return depth if depth > limit else None


def yaml_depth(text: str) -> int:
    """The deepest nesting of sequences and mappings in YAML ``text``: 0 for a scalar.

    An alias counts as deep as the node it refers to, where it stands (the
    loaded document holds that node there); a merge key (``<<: *base``) one
    level deeper than the merged mapping ends up, never less. Text that is no
    YAML is measured as far as it parses: the loader refuses it afterwards.
    """
    heights: dict[str, int] = {}  # of each anchored node so far: what an alias to it adds
    # Per open collection: its anchor and the height of its highest child so far.
    open_: list[tuple[str | None, list[int]]] = []
    deepest = 0
    try:
        for event in yaml.parse(text, Loader=YamlLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_.append((event.anchor, [0]))
                deepest = max(deepest, len(open_))
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, below = open_.pop()
                height = below[0] + 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, height = None, heights.get(event.anchor or "", 0)
            elif isinstance(event, yaml.ScalarEvent):
                anchor, height = event.anchor, 0
            else:
                continue
            if anchor is not None:
                heights[anchor] = height
            if open_:
                parent = open_[-1][1]
                parent[0] = max(parent[0], height)
            deepest = max(deepest, len(open_) + height)
    except yaml.YAMLError:
        pass  # the loader answers it, with its line and column
    return deepest


_YAML_OPENERS: Final = "[{-:?"
"""The characters one of which each sequence or mapping of YAML text needs to begin."""


def yaml_depth_over(text: str, limit: int = MAX_JSON_DEPTH) -> int | None:
    """:func:`yaml_depth` of ``text`` if it is over ``limit``, else ``None``.

    Each collection of the text needs one of ``[{-:?`` (an alias only repeats
    one), so a text with no more of them than ``limit`` is passed without parsing.
    """
    if sum(text.count(c) for c in _YAML_OPENERS) <= limit:
        return None
    depth = yaml_depth(text)
    return depth if depth > limit else None


def too_deep_message(depth: int) -> str:
    """Why a body ``depth`` levels deep is refused (without the field it is in)."""
    return (
        f"nested too deeply: {depth} levels of arrays and objects, "
        f"more than the {MAX_JSON_DEPTH} this server reads"
    )

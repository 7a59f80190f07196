"""Header values with parameters (``form-data; name="file"; filename="..."``), read as Go reads them.

envd takes an upload part's target path from its ``Content-Disposition``
``filename``, parsed by Go's ``mime.ParseMediaType``. Go strings are bytes,
so a UTF-8 name (what httpx and browsers send) arrives intact; an RFC 2231 /
5987 extended parameter (``filename*=UTF-8''%E6%97%A5.txt``, continuations
``filename*0*=``...) is decoded and wins over the plain one. This module is a
port of that parser over the UTF-8-decoded header (python-multipart's
``parse_options_header`` re-encodes as Latin-1, which mangled every
non-ASCII name).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

__all__ = ["parse_media_type"]

_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _is_token_char(char: str) -> bool:
    return " " < char < "\x7f" and char not in _TSPECIALS


def _consume_token(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and _is_token_char(text[end]):
        end += 1
    return text[:end], text[end:]


def _consume_value(text: str) -> tuple[str, str] | None:
    """A token or a quoted string (unescaped) and the rest; ``None`` if neither starts ``text``."""
    if not text.startswith('"'):
        token, rest = _consume_token(text)
        return (token, rest) if token else None
    value: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(value), text[i + 1 :]
        # Go's MSIE rule: a backslash escapes only a special character; before
        # anything else it is a literal backslash (an unescaped Windows path).
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _TSPECIALS:
            value.append(text[i + 1])
            i += 2
            continue
        if char in "\r\n":
            return None
        value.append(char)
        i += 1
    return None  # no closing quote


def _consume_param(text: str) -> tuple[str, str, str] | None:
    """``; key=value`` at the start of ``text``: the lower-cased key, the value, the rest."""
    rest = text.lstrip()
    if not rest.startswith(";"):
        return None
    key, rest = _consume_token(rest[1:].lstrip())
    if not key:
        return None
    rest = rest.lstrip()
    if not rest.startswith("="):
        return None
    consumed = _consume_value(rest[1:].lstrip())
    if consumed is None:
        return None
    return key.lower(), consumed[0], consumed[1]


def _percent_decode(value: str) -> str | None:
    if _BAD_ESCAPE.search(value):
        return None
    return unquote_to_bytes(value).decode("utf-8", "replace")


def _decode_extended(value: str) -> str | None:
    """An RFC 2231 ``charset'language'%XX`` value; ``None`` unless its charset is UTF-8 or ASCII."""
    parts = value.split("'", 2)
    if len(parts) != 3 or parts[0].lower() not in ("utf-8", "us-ascii"):
        return None
    return _percent_decode(parts[2])


def _stitch(name: str, pieces: dict[str, str]) -> str | None:
    """The value of parameter ``name`` from its starred pieces (``name*`` or ``name*0``...)."""
    single = pieces.get(name + "*")
    if single is not None:
        return _decode_extended(single)
    found: list[str] = []
    index = 0
    while True:
        plain = pieces.get(f"{name}*{index}")
        if plain is not None:
            found.append(plain)
        else:
            encoded = pieces.get(f"{name}*{index}*")
            if encoded is None:
                break
            decoded = _decode_extended(encoded) if index == 0 else _percent_decode(encoded)
            found.append(decoded or "")
        index += 1
    return "".join(found) if found else None


def _is_media_type(text: str) -> bool:
    """Whether ``text`` is ``token`` or ``token/token`` (a disposition or a media type)."""
    major, rest = _consume_token(text)
    if not major or not rest:
        return bool(major)
    minor, rest = _consume_token(rest[1:]) if rest[0] == "/" else ("", rest)
    return bool(minor) and not rest


def parse_media_type(value: str) -> tuple[str, dict[str, str]] | None:
    """``(type, params)`` of a header value as Go's ``mime.ParseMediaType``; ``None`` if malformed.

    The type and the parameter names are lower-cased; a parameter given twice
    with different values makes the whole value malformed.
    """
    base, _, _ = value.partition(";")
    media_type = base.strip().lower()
    if not _is_media_type(media_type):
        return None
    params: dict[str, str] = {}
    starred: dict[str, dict[str, str]] = {}
    text = value[len(base) :]
    while text.strip():
        consumed = _consume_param(text)
        if consumed is None:
            if text.strip() == ";":
                break  # a trailing semicolon is tolerated
            return None
        key, item, text = consumed
        target = starred.setdefault(key.split("*", 1)[0], {}) if "*" in key else params
        if target.get(key, item) != item:
            return None  # a duplicate parameter with another value
        target[key] = item
    for name, pieces in starred.items():
        stitched = _stitch(name, pieces)
        if stitched is not None:
            params[name] = stitched
    return media_type, params

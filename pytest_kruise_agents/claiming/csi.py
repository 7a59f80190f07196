"""The ``csi-volume-config`` extension key's JSON, read as the sandbox-manager reads it (§5.5).

Upstream decodes the key's value with Go's ``encoding/json`` into
``[]CSIMountConfig``; :func:`parse_csi_config` decodes it the same way:

- ``null`` is a nil list (no mounts, as ``[]``); an element ``null`` is a
  config with every field unset;
- an object's keys are matched to the fields' JSON names, exactly first and
  then case-insensitively (``PVNAME`` sets ``pvName``); a key no field has
  is ignored;
- the keys are read in order, so a key written twice keeps its later value,
  and two ``attributes`` objects merge; ``null`` leaves a string or a bool as
  it was (unset, or what the key said before) and clears ``attributes``;
- a value of another JSON type than its field's is refused, naming the
  field: a string or a number is no bool, a number no string (Go's
  ``UnmarshalTypeError``, the earliest in the text when there are several);
- a lone surrogate escape (``"\\ud800"``) is U+FFFD.

Then the configs are checked as the model checks every CSI mount:
``pvName`` and ``mountPath`` are required and non-empty.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig

__all__ = ["parse_csi_config"]

# The Go type of each field of CSIMountConfig, by its JSON name.
_STRING: Final = "string"
_BOOL: Final = "bool"
_MAP: Final = "map"
_FIELDS: Final[dict[str, str]] = {
    "mountID": _STRING,
    "pvName": _STRING,
    "mountPath": _STRING,
    "subPath": _STRING,
    "readOnly": _BOOL,
    "attributes": _MAP,
}
if set(_FIELDS) != {f.alias for f in CSIMountConfig.model_fields.values()}:  # pragma: no cover
    raise AssertionError("csi._FIELDS must name every field of CSIMountConfig")

# Go's foldName: ASCII letters fold by case; of the other runes only the long
# s and the Kelvin sign fold (Unicode simple folding) onto an ASCII letter,
# and the fields' names are ASCII.
_FOLD: Final = str.maketrans(
    {chr(c): chr(c - 32) for c in range(ord("a"), ord("z") + 1)} | {"\u017f": "S", "\u212a": "K"}
)
_FOLDED: Final = {name.translate(_FOLD): name for name in _FIELDS}

_CSI_LIST: TypeAdapter[list[CSIMountConfig]] = TypeAdapter(list[CSIMountConfig])


class _Object:
    """A JSON object as its key-value pairs, in order: a key may come twice, and Go reads
    every one."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _no_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; they are no JSON, and Go refuses them.
    raise ValueError(f"{name} is not a JSON value")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_Object, parse_constant=_no_constant)


def parse_csi_config(text: str) -> list[CSIMountConfig]:
    """The CSI mounts ``text`` (a JSON ``[]CSIMountConfig``) gives, decoded as Go decodes it.

    Raises :class:`ValueError` whose message names the offending field
    (``[0].readOnly: must be true or false, not a JSON string``), or says why
    ``text`` is no JSON (``invalid JSON: ...``).
    """
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"must be a JSON list of CSI mount configs, not {_kind(data)}")
    configs = [_config(f"[{i}]", item) for i, item in enumerate(data)]
    try:
        return _CSI_LIST.validate_python(configs)
    except ValidationError as exc:
        first = exc.errors()[0]
        index, *names = first["loc"]
        where = "".join(f".{name}" for name in names)
        raise ValueError(f"[{index}]{where}: {first['msg']}") from exc


def _config(where: str, item: Any) -> dict[str, Any]:
    """The fields one element of the list sets, by JSON name."""
    if item is None:
        return {}
    if not isinstance(item, _Object):
        raise ValueError(f"{where}: must be a JSON object (a CSI mount config), not {_kind(item)}")
    fields: dict[str, Any] = {}
    for key, value in item.pairs:
        name = key if key in _FIELDS else _FOLDED.get(key.translate(_FOLD))
        if name is None:
            continue
        path = f"{where}.{name}"
        kind = _FIELDS[name]
        if value is None:
            if kind == _MAP:
                fields.pop(name, None)  # null sets a map to nil, and leaves a string or bool
        elif kind == _MAP:
            fields[name] = _attributes(path, value, fields.get(name, {}))
        elif kind == _BOOL:
            if not isinstance(value, bool):
                raise ValueError(f"{path}: must be true or false, not {_kind(value)}")
            fields[name] = value
        else:
            if not isinstance(value, str):
                raise ValueError(f"{path}: must be a JSON string, not {_kind(value)}")
            fields[name] = replace_surrogates(value)
    return fields


def _attributes(path: str, value: Any, current: dict[str, str]) -> dict[str, str]:
    """``attributes`` after ``value`` is decoded into it: Go fills the map it has."""
    if not isinstance(value, _Object):
        raise ValueError(f"{path}: must be a JSON object of strings, not {_kind(value)}")
    out = dict(current)
    for key, item in value.pairs:
        if item is not None and not isinstance(item, str):
            raise ValueError(f"{path}[{json.dumps(key)}]: must be a JSON string, not {_kind(item)}")
        # A null element is the zero string.
        out[replace_surrogates(key)] = "" if item is None else replace_surrogates(item)
    return out


def _kind(value: Any) -> str:
    """``value``'s JSON type, as Go's type errors name it."""
    if isinstance(value, bool):
        return "a JSON bool"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, list):
        return "a JSON array"
    return "a JSON object"

"""YAML read as kubectl reads it: go-yaml v2's scalars, merge keys and syntax, on PyYAML.

kubectl (``sigs.k8s.io/yaml`` v1.4, over its copy of go-yaml v2) and PyYAML
both claim YAML 1.1, but they read plain scalars differently: go-yaml has no
base-60 numbers (``12:30`` is text), takes ``y``/``n`` as booleans, ``1e3``
and ``08`` as floats and ``0o17`` as 15 (Go's ``strconv`` rules), and keeps a
timestamp as the text written. :class:`YamlLoader` resolves every plain scalar
with go-yaml's ``resolve`` (:func:`resolve_scalar`), merges ``<<`` keys in
go-yaml's order, skips tabs where libyaml does, and refuses a ``%YAML`` other
than 1.1. The manifest, scenario and server-config readers all use it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Hashable
from typing import Any

import yaml

from pytest_kruise_agents.api.e2b import replace_surrogates

__all__ = ["YamlLoader", "resolve_scalar"]

_TAG = "tag:yaml.org,2002:"

_WORDS: dict[str, tuple[str, Any]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), ("bool", True)),
    **dict.fromkeys(("on", "On", "ON"), ("bool", True)),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), ("bool", False)),
    **dict.fromkeys(("off", "Off", "OFF"), ("bool", False)),
    **{word: ("null", None) for word in ("", "~", "null", "Null", "NULL")},
    **{word: ("float", math.nan) for word in (".nan", ".NaN", ".NAN")},
    **{sign + word: ("float", math.inf) for sign in ("", "+") for word in (".inf", ".Inf", ".INF")},
    **{"-" + word: ("float", -math.inf) for word in (".inf", ".Inf", ".INF")},
}
"""go-yaml v2's ``resolveMap``: the words that are a boolean, null or a special float."""

_HINTS = {"+": "S", "-": "S", ".": ".", **dict.fromkeys("0123456789", "D")}
_HINTS.update(dict.fromkeys("yYnNtTfFoO~", "M"))
"""go-yaml's ``resolveTable``: what the first character says a plain scalar may be.

Any other first character (``<``, ``=``, a letter) makes it text at once.
"""

_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
"""go-yaml's ``yamlStyleFloat``."""

_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
"""What Go's ``strconv.ParseFloat`` takes of a text that starts with a dot."""

_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})"
    r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?)?"
)
"""go-yaml's ``allowedTimestampFormats`` (the dates Go's layouts ``2006-1-2...`` match)."""

_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``, then ``ParseUint``, as go-yaml tries them; else None."""
    signed = text[:1] in ("+", "-")
    digits = text[1:] if signed else text
    if not digits:
        return None
    base = 10
    if digits[0] == "0":
        prefix = digits[1:2].lower()
        if len(digits) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], digits[2:]
        else:
            # A leading zero means octal to Go: 0755 is 493, 08 no integer.
            base, digits = 8, digits[1:]
    if any(c not in _DIGITS[base] for c in digits):
        return None
    value = int(digits, base) if digits else 0
    if text.startswith("-"):
        value = -value
    if -(2**63) <= value < 2**63 or (not signed and value < 2**64):
        return value
    return None


def _go_float(text: str) -> float | None:
    """``strconv.ParseFloat`` of a decimal text: None where Go reports it out of range."""
    value = float(text)
    return value if math.isfinite(value) else None


def resolve_scalar(text: str, *, timestamps: bool = True) -> tuple[str, Any]:
    """go-yaml v2's ``resolve`` of a plain scalar: its tag (``int``, ``str``...) and value.

    A timestamp's value is its text: go-yaml keeps an untyped timestamp as
    the string written ("for backward compatibility"), and so does kubectl.
    ``timestamps=False`` is go-yaml's reading under another explicit tag.
    """
    hint = _HINTS.get(text[:1], "N" if not text else "")
    if not hint:
        return "str", text
    if text in _WORDS:
        return _WORDS[text]
    if hint == ".":
        value = _go_float(text) if _DOT_FLOAT.fullmatch(text) else None
        return ("float", value) if value is not None else ("str", text)
    if hint in ("D", "S"):
        if timestamps and _TIMESTAMP.fullmatch(text):
            return "timestamp", text
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return "int", number
        value = _go_float(plain) if _YAML_FLOAT.fullmatch(plain) else None
        if value is not None:
            return "float", value
    return "str", text


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loading as kubectl reads YAML (go-yaml v2, see the module docstring).

    A key given twice in one mapping is refused: PyYAML silently keeps the last
    value; kubectl's strict validation refuses the manifest, and a silently
    dropped field is exactly the kind of mistake worth an error. A key merged in
    with ``<<`` is no duplicate. A document that aliases too much (a "billion
    laughs" bomb: a few hundred bytes that expand to millions of nodes) is
    refused, as go-yaml refuses it.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            if value == "<<":
                # go-yaml's ``isMerge`` reads a plain ``<<`` key as a merge.
                return _TAG + "merge"
            return _TAG + resolve_scalar(value)[0]
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    def scan_to_next_token(self) -> None:
        # libyaml skips a tab as a space in flow context and where no simple key
        # may start (after ``key:``, ``- ``): ``team:<TAB>platform`` is a value.
        # PyYAML skips spaces only and refuses the tab.
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " " or (
                self.peek() == "\t" and (self.flow_level or not self.allow_simple_key)
            ):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if not self.scan_line_break():  # type: ignore[no-untyped-call]
                return
            if not self.flow_level:
                self.allow_simple_key = True

    def process_directives(self) -> Any:
        result = super().process_directives()  # type: ignore[no-untyped-call]
        # go-yaml v2 reads YAML 1.1 only; PyYAML takes any 1.x.
        if self.yaml_version not in (None, (1, 1)):
            raise yaml.parser.ParserError(
                None, None, "found incompatible YAML document (%YAML 1.1 only)", None
            )
        return result

    def construct_document(self, node: yaml.Node) -> Any:
        _check_aliasing(node)
        return super().construct_document(node)

    def construct_scalar(self, node: yaml.ScalarNode | yaml.MappingNode) -> Any:
        # PyYAML decodes "\\ud83d\\ude00" (as json.dumps writes an emoji) to two lone
        # surrogates, which no UTF-8 encoder takes: read as Go's JSON decoder reads them
        # (the pair is the emoji, a lone one U+FFFD), so JSON behind a "---", a BOM or a
        # comment is read as the same JSON without them.
        return replace_surrogates(super().construct_scalar(node))

    def construct_go_scalar(self, node: yaml.ScalarNode) -> Any:
        """A plain scalar as go-yaml resolves it, or one with an explicit ``!!int``-like tag.

        An explicit tag must agree with what the text resolves to, but for an
        integer under ``!!float`` (go-yaml: ``cannot decode !!str `x` as a !!int``).
        """
        text = str(self.construct_scalar(node))
        wanted = node.tag.removeprefix(_TAG)
        tag, value = resolve_scalar(text, timestamps=wanted == "timestamp")
        if tag == wanted:
            return value
        if (tag, wanted) == ("int", "float"):
            return float(value)
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot decode !!{tag} `{text}` as a !!{wanted}", node.start_mark
        )

    def construct_merge_text(self, node: yaml.ScalarNode) -> str:
        """A ``<<`` that is no mapping key is the text ``<<``."""
        return str(self.construct_scalar(node))

    def construct_go_binary(self, node: yaml.ScalarNode) -> str:
        """``!!binary``: go-yaml decodes the base64 to a string (kubectl sends that text)."""
        text = str(self.construct_scalar(node))
        try:
            data = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
        except (binascii.Error, ValueError):
            raise yaml.constructor.ConstructorError(
                None, None, "!!binary value contains invalid base64 data", node.start_mark
            ) from None
        # Go's JSON encoder writes each invalid UTF-8 byte as U+FFFD.
        return data.decode("utf-8", errors="replace")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        self._refuse_duplicates(node, deep)
        mapping: dict[Any, Any] = {}
        # In go-yaml's order: a merged map's keys are set where the ``<<`` stands,
        # over the keys before it, under the keys after it.
        for key_node, value_node in _go_pairs(node):
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def _refuse_duplicates(self, node: yaml.MappingNode, deep: bool) -> None:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if _is_merge(key_node) or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)


for _name in ("null", "bool", "int", "float", "timestamp"):
    YamlLoader.add_constructor(_TAG + _name, YamlLoader.construct_go_scalar)
YamlLoader.add_constructor(_TAG + "merge", YamlLoader.construct_merge_text)
YamlLoader.add_constructor(_TAG + "binary", YamlLoader.construct_go_binary)


def _is_merge(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "merge" and node.value == "<<"


def _go_pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """The key/value nodes of ``node`` in the order go-yaml v2 sets them, merges expanded."""
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if _is_merge(key_node):
            pairs.extend(_merged_pairs(value_node))
        else:
            pairs.append((key_node, value_node))
    return pairs


def _merged_pairs(node: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        return _go_pairs(node)
    if isinstance(node, yaml.SequenceNode) and all(
        isinstance(item, yaml.MappingNode) for item in node.value
    ):
        # Earlier maps take precedence (the merge spec, go-yaml): set them last.
        return [pair for item in reversed(node.value) for pair in _go_pairs(item)]
    raise yaml.constructor.ConstructorError(
        None, None, "map merge requires map or sequence of maps as the value", node.start_mark
    )


def _allowed_alias_ratio(decoded: int) -> float:
    """go-yaml's ``allowedAliasRatio``: the share of decoded nodes that may come from aliases.

    0.99 up to 400,000 decoded nodes, 0.10 from 4,000,000, a straight line between.
    """
    if decoded <= 400_000:
        return 0.99
    if decoded >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decoded - 400_000) / 3_600_000


class _AliasCount:
    """Nodes go-yaml would decode in one document, and how many of them through an alias."""

    def __init__(self) -> None:
        self.decoded = 0
        self.aliased = 0
        self.size: dict[int, int] = {}
        """Expanded size of each node decoded so far (by id): what an alias to it decodes."""
        self.open: set[int] = set()

    def visit(self, node: yaml.Node) -> int:
        """Count ``node`` as decoded where it stands; return its expanded size."""
        key = id(node)
        if key in self.open:
            raise yaml.constructor.ConstructorError(
                None, None, "an anchor's value refers to the anchor itself", node.start_mark
            )
        if key in self.size:
            # PyYAML's composer gives an alias the anchored node itself: a
            # node met again is an alias, decoded again whole by go-yaml.
            size = self.size[key]
            self.decoded += size
            self.aliased += size
            # Within one expansion the share only grows and the allowed
            # share only falls: checking at its end is checking throughout.
            if (
                self.aliased > 100
                and self.decoded > 1000
                and self.aliased / self.decoded > _allowed_alias_ratio(self.decoded)
            ):
                raise yaml.constructor.ConstructorError(
                    None, None, "document contains excessive aliasing", node.start_mark
                )
            return size
        self.decoded += 1
        self.open.add(key)
        size = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                size += self.visit(item)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                size += self.visit(key_node) + self.visit(value_node)
        self.open.discard(key)
        self.size[key] = size
        return size


def _check_aliasing(node: yaml.Node) -> None:
    """Refuse a document whose aliases expand as go-yaml refuses them ("excessive aliasing").

    go-yaml counts every node it decodes, an alias's whole value each time
    it is used, and fails once more than 100 came through aliases, more than
    1,000 in all, and the aliased share passes :func:`_allowed_alias_ratio`.
    PyYAML shares an alias's value instead of copying it, but everything
    after loading (validation, hashing, copying) walks the expansion.
    """
    _AliasCount().visit(node)

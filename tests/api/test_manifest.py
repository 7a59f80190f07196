"""Manifests: loading YAML/JSON/dicts into models with one clear error, and dumping them back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api import (
    InvalidError,
    ObjectMeta,
    Pod,
    Sandbox,
    SandboxClaim,
    SandboxSet,
    SandboxTemplate,
    dump,
    dump_all,
    load_manifest,
    load_manifests,
    resolve_kind,
)
from pytest_kruise_agents.api.manifest import (
    KINDS,
    RESOURCE_ALIASES,
    listing_order,
    to_manifest_dict,
)
from pytest_kruise_agents.api.sandboxclaim import SandboxClaimSpec
from pytest_kruise_agents.api.sandboxtemplate import resolve_pod_template

POOL_YAML = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: pool
  namespace: team-a
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: main
        image: python:3.12
"""

CLAIM_YAML = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata:
  name: my-claim
spec:
  templateName: pool
  replicas: 2
  claimTimeout: 30s
"""


def claim_dict(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": "my-claim"},
        "spec": {"templateName": "pool", **spec},
    }


def error_of(source: Any) -> InvalidError:
    with pytest.raises(InvalidError) as info:
        load_manifests(source)
    return info.value


# --------------------------------------------------------------------------- kinds


def test_every_kubectl_name_resolves_to_its_kind() -> None:
    """Singular, plural and short names all resolve, case-insensitively."""
    for name, kind in RESOURCE_ALIASES.items():
        assert resolve_kind(name) == kind
        assert resolve_kind(name.upper()) == kind
    assert resolve_kind("sbx") == "Sandbox"
    assert resolve_kind("sbs") == "SandboxSet"
    assert resolve_kind("sbc") == "SandboxClaim"
    assert resolve_kind("po") == "Pod"
    assert resolve_kind("sbt") == "SandboxTemplate"


def test_kind_names_and_group_qualified_plurals_resolve() -> None:
    """``SandboxClaim`` and ``sandboxclaims.agents.kruise.io`` work as with kubectl."""
    assert resolve_kind("SandboxClaim") == "SandboxClaim"
    assert resolve_kind("sandboxclaims.agents.kruise.io") == "SandboxClaim"
    assert resolve_kind("sandboxsets.v1alpha1.agents.kruise.io") == "SandboxSet"
    assert resolve_kind("pods.v1") == "Pod"


def test_unknown_resource_names_are_an_invalid_resource() -> None:
    """An unknown resource name raises InvalidError on the field ``resource``."""
    with pytest.raises(InvalidError) as info:
        resolve_kind("deployments")
    assert info.value.field == "resource"
    assert "deployments" in info.value.reason


def test_the_kind_registry_covers_every_alias() -> None:
    """Every alias points at a registered kind, and every kind has aliases."""
    assert set(RESOURCE_ALIASES.values()) == set(KINDS)


# --------------------------------------------------------------------------- loading


def test_a_multi_document_yaml_stream_loads_in_order() -> None:
    """Documents separated by ``---`` become models of their kinds, in order."""
    objs = load_manifests(POOL_YAML + "---\n" + CLAIM_YAML)
    assert [type(o) for o in objs] == [SandboxSet, SandboxClaim]
    pool, claim = objs
    assert isinstance(pool, SandboxSet) and isinstance(claim, SandboxClaim)
    assert pool.metadata.namespace == "team-a"
    assert pool.spec.replicas == 3
    assert claim.spec.claim_timeout == timedelta(seconds=30)


def test_empty_documents_are_skipped() -> None:
    """Leading, trailing and repeated ``---`` separators yield no objects."""
    assert len(load_manifests("---\n" + POOL_YAML + "---\n---\n" + CLAIM_YAML + "---\n")) == 2
    assert load_manifests("") == []


def test_json_text_loads() -> None:
    """JSON text of one object or of an array of objects loads."""
    assert isinstance(load_manifest(json.dumps(claim_dict())), SandboxClaim)
    objs = load_manifests(json.dumps([claim_dict(), claim_dict()]))
    assert len(objs) == 2


@pytest.mark.parametrize("before", ["", "---\n", "\ufeff", "# generated\n"])
def test_escaped_characters_outside_the_bmp_read_as_go_reads_json(before: str) -> None:
    """``json.dumps`` writes an emoji as a surrogate pair: it is the emoji, however it is read.

    JSON behind a ``---``, a BOM or a comment goes through the YAML reader, which kept the
    pair as two lone surrogates: the object could then not be written as UTF-8. A lone
    surrogate is U+FFFD, as Go's JSON decoder reads it.
    """
    manifest = claim_dict()
    manifest["metadata"]["annotations"] = {"note": "\U0001f600 ok", "lone": "\ud800 x"}
    claim = load_manifest(before + json.dumps(manifest))
    assert claim.metadata.annotations == {"note": "\U0001f600 ok", "lone": "\ufffd x"}
    assert "\U0001f600 ok" in dump(claim, "json").encode("utf-8").decode("utf-8")


def test_dicts_lists_and_models_load() -> None:
    """A dict, a list of dicts and already-built models are all accepted.

    A model comes back as an equal, new object: it was checked as its manifest.
    """
    built = SandboxClaim(
        metadata=ObjectMeta(name="built"), spec=SandboxClaimSpec(template_name="pool")
    )
    objs = load_manifests([claim_dict(), built])
    assert isinstance(objs[0], SandboxClaim)
    assert objs[1] == built and objs[1] is not built
    assert load_manifest(built) == built


def test_an_edited_model_is_validated_as_its_manifest() -> None:
    """get -> edit the copy -> apply: the edit is checked as ``kubectl apply`` checks it."""
    pool = load_manifest(POOL_YAML)
    assert isinstance(pool, SandboxSet)
    pool.spec.replicas = -3
    err = error_of(pool)
    assert (err.field, err.reason) == ("SandboxSet/pool spec.replicas", "must be >= 0, got -3")


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_set_on_an_integer_field_is_refused_as_in_a_manifest(value: bool) -> None:
    """``replicas = True`` is the manifest's ``replicas: true``: refused, with the same words
    (pydantic would write it as the number 1, which the strict load then took)."""
    word = "true" if value else "false"
    pool = load_manifest(POOL_YAML)
    assert isinstance(pool, SandboxSet)
    yaml_err = error_of(POOL_YAML.replace("replicas: 3", f"replicas: {word}"))
    pool.spec.replicas = value
    err = error_of(pool)
    assert (err.field, err.reason) == (yaml_err.field, yaml_err.reason)
    assert (err.field, err.reason) == (
        "SandboxSet/pool spec.replicas",
        f"must be an integer, got the boolean {word}",
    )


def test_a_boolean_in_a_nested_models_integer_field_is_refused() -> None:
    """The check reaches every model of the object, its metadata included."""
    claim = load_manifest(CLAIM_YAML)
    assert isinstance(claim, SandboxClaim)
    claim.metadata.generation = True
    assert error_of(claim).field == "SandboxClaim/my-claim metadata.generation"


def test_an_edited_model_breaking_a_cross_field_rule_is_one_invalid_error() -> None:
    """A value of the wrong type set on a model is refused, not a crash later."""
    pool = load_manifest(POOL_YAML)
    assert isinstance(pool, SandboxSet)
    pool.spec.template_ref = {"name": "x"}  # type: ignore[assignment]
    err = error_of(pool)
    assert err.field == "SandboxSet/pool spec"
    assert err.reason == "templateRef and template are mutually exclusive"


def test_an_edited_template_or_metadata_is_checked() -> None:
    """The pod template and metadata rules apply to a model as to a manifest."""
    pool = load_manifest(POOL_YAML)
    assert isinstance(pool, SandboxSet) and pool.spec.template is not None
    pool.spec.template["spec"]["containers"][0]["name"] = "Main_X"
    assert error_of(pool).field == "SandboxSet/pool spec.template.spec.containers[0].name"
    claim = SandboxClaim(
        metadata=ObjectMeta(name="c", labels={"bad key": "x"}), spec={"templateName": "p"}
    )
    assert error_of(claim).field == "SandboxClaim/c metadata.labels[bad key]"


def test_a_model_that_cannot_be_written_as_a_manifest_is_refused() -> None:
    """A field holding something no manifest can (an arbitrary object) is one InvalidError."""
    claim = load_manifest(CLAIM_YAML)
    claim.spec.env_vars = {"A": object()}  # type: ignore[union-attr]
    err = error_of(claim)
    assert err.field.startswith("SandboxClaim/my-claim")


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30), (2.5, 2.5), ("45s", 45), (timedelta(minutes=2), 120)]
)
def test_a_duration_set_on_a_model_keeps_its_python_convenience(value: Any, seconds: float) -> None:
    """From Python a bare number is seconds, set by attribute as when validated (get, edit, apply)."""
    claim = load_manifest(CLAIM_YAML)
    assert isinstance(claim, SandboxClaim)
    claim.spec.claim_timeout = value
    (loaded,) = load_manifests(claim)
    assert loaded.spec.claim_timeout == timedelta(seconds=seconds)  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["soon", [30], True])
def test_a_bad_duration_set_on_a_model_names_its_field(value: Any) -> None:
    """Anything else is written as it is, and the strict load names the field."""
    claim = load_manifest(CLAIM_YAML)
    assert isinstance(claim, SandboxClaim)
    claim.spec.claim_timeout = value
    assert error_of(claim).field == "SandboxClaim/my-claim spec.claimTimeout"


def test_a_kind_list_is_unwrapped() -> None:
    """``kind: List`` contributes its items."""
    doc = {"apiVersion": "v1", "kind": "List", "items": [claim_dict(), claim_dict(replicas=3)]}
    objs = load_manifests(doc)
    assert [o.kind for o in objs] == ["SandboxClaim", "SandboxClaim"]


def test_pods_load_at_api_version_v1() -> None:
    """A Pod manifest uses ``apiVersion: v1``."""
    pod = load_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert isinstance(pod, Pod)


def test_yaml_timestamps_load_as_utc_times() -> None:
    """Unquoted YAML timestamps become aware UTC datetimes."""
    obj = load_manifest(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: Sandbox\n"
        "metadata: {name: s}\nspec: {shutdownTime: 2026-01-01T00:05:00Z}\n"
    )
    assert isinstance(obj, Sandbox)
    assert obj.spec.shutdown_time == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


@given(st.datetimes(timezones=st.just(UTC)))
def test_a_dumped_time_loads_back_as_the_same_instant(when: datetime) -> None:
    """Any year (1 too: strftime would write it "1") and any microsecond survive dump then load."""
    sandbox = Sandbox.model_validate({"metadata": {"name": "s"}, "spec": {"shutdownTime": when}})
    assert load_manifest(to_manifest_dict(sandbox)).spec.shutdown_time == when  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("0001-01-01T00:00:00+05:30", datetime.min.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59-01:00", datetime.max.replace(microsecond=0, tzinfo=UTC)),
    ],
)
def test_a_time_beyond_what_a_datetime_holds_is_clamped(text: str, instant: datetime) -> None:
    """Go reads these (their UTC instant is in year 0 or 10000): they become the nearest time a
    datetime holds, as deadlines are clamped, and dump as that time."""
    for kind, spec in (("Sandbox", {"pauseTime": text}), ("SandboxClaim", {"shutdownTime": text})):
        if kind == "SandboxClaim":
            spec["templateName"] = "base"
        obj: Any = load_manifest(
            {"apiVersion": "agents.kruise.io/v1alpha1", "kind": kind, "metadata": {"name": "s"}}
            | {"spec": spec}
        )
        when = obj.spec.pause_time if kind == "Sandbox" else obj.spec.shutdown_time
        assert when == instant
        assert load_manifest(dump(obj)) == obj


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01",
        "2026-01-01 00:05:00Z",
        "2026-01-01T00:05:00",
        "20260101T000500Z",
        "2026-01-01t00:05:00z",
        "2026-06-30T23:59:60Z",
    ],
)
def test_a_manifest_time_is_exactly_rfc_3339(text: str) -> None:
    """``metav1.Time`` parses ``time.RFC3339``: no bare date, space, missing offset, basic form,
    lower-case T or Z, or leap second."""
    with pytest.raises(InvalidError) as info:
        load_manifest(
            "apiVersion: agents.kruise.io/v1alpha1\nkind: Sandbox\n"
            f"metadata: {{name: s}}\nspec: {{shutdownTime: '{text}'}}\n"
        )
    assert info.value.field == "Sandbox/s spec.shutdownTime"
    assert info.value.reason.startswith(f"invalid RFC 3339 time '{text}'")


def test_an_unquoted_date_in_an_annotation_is_its_text() -> None:
    """kubectl's YAML reader keeps a timestamp-looking scalar as the string written."""
    obj = load_manifest(
        "apiVersion: agents.kruise.io/v1alpha1\nkind: Sandbox\nmetadata:\n  name: s\n"
        "  annotations: {day: 2026-01-01, at: 2026-01-01 00:05:00}\n"
        "spec: {template: {spec: {containers: [{name: c, image: i}]}}}\n"
    )
    assert obj.metadata.annotations == {"day": "2026-01-01", "at": "2026-01-01 00:05:00"}


def test_load_manifest_wants_exactly_one_object() -> None:
    """load_manifest refuses a source with zero or several objects."""
    with pytest.raises(InvalidError) as info:
        load_manifest(POOL_YAML + "---\n" + CLAIM_YAML)
    assert info.value.field == "manifest"
    assert "exactly one" in info.value.reason
    with pytest.raises(InvalidError):
        load_manifest("")


# --------------------------------------------------------------------------- errors


def test_a_bound_violation_names_the_object_and_the_camelcase_field() -> None:
    """``replicas: 0`` on a claim is reported at ``SandboxClaim/my-claim spec.replicas``."""
    error = error_of(claim_dict(replicas=0))
    assert error.field == "SandboxClaim/my-claim spec.replicas"
    assert error.reason.startswith("must be >= 1")
    assert error.code == 422


def test_replicas_are_int32_as_in_the_crd() -> None:
    """A count beyond an int32 is refused, not scaled towards."""
    error = error_of(claim_dict(replicas=2**31))
    assert error.field == "SandboxClaim/my-claim spec.replicas"
    assert error.reason.startswith("must be <= 2147483647")
    pool = yaml.safe_load(POOL_YAML)
    pool["spec"]["replicas"] = 99999999999999999999
    assert error_of(pool).field == "SandboxSet/pool spec.replicas"


@pytest.mark.parametrize(
    ("metadata", "field", "reason"),
    [
        ({"name": "Bad Name!"}, "metadata.name", "a lowercase RFC 1123 subdomain"),
        ({"name": "x" * 254}, "metadata.name", "at most 253 characters"),
        ({"name": "ok", "namespace": "Team"}, "metadata.namespace", "a lowercase RFC 1123 label"),
        (
            {"name": "ok", "namespace": "a.b"},
            "metadata.namespace",
            "alphanumeric characters or '-'",
        ),
    ],
)
def test_names_and_namespaces_are_dns_1123(
    metadata: dict[str, str], field: str, reason: str
) -> None:
    """Names are DNS-1123 subdomains and namespaces DNS-1123 labels, as the API server wants."""
    doc = claim_dict()
    doc["metadata"] = metadata
    error = error_of(doc)
    assert error.field.endswith(field)
    assert reason in error.reason
    doc["metadata"] = {"name": "a-b.c-1", "namespace": "team-1"}
    assert load_manifests(doc)[0].metadata.name == "a-b.c-1"


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a, *a]\nkind: SandboxSet", "[" * 100_000],
)
def test_a_self_referencing_or_endlessly_nested_document_is_refused(text: str) -> None:
    """No RecursionError escapes: one InvalidError on the manifest."""
    error = error_of(text)
    assert error.field.startswith(("manifest", "document[0]"))


def test_bytes_that_are_not_utf8_are_refused() -> None:
    """The reason says where the decoding failed."""
    error = error_of(b"kind: \xff")
    assert (error.field, error.reason) == (
        "manifest",
        "not UTF-8 text: invalid start byte at byte 6",
    )


def test_a_missing_required_field_is_a_required_value() -> None:
    """A claim without ``templateName`` names that field."""
    doc = claim_dict()
    del doc["spec"]["templateName"]
    error = error_of(doc)
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.templateName",
        "required value",
    )


def test_an_unknown_field_is_rejected_by_name() -> None:
    """A typo in a field name answers ``unknown field`` at that path, with the field meant."""
    error = error_of(claim_dict(replica=2))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.replica",
        "unknown field (did you mean 'replicas'?)",
    )
    error = error_of(claim_dict(zzz=2))
    assert (error.field, error.reason) == ("SandboxClaim/my-claim spec.zzz", "unknown field")


def test_a_bad_duration_says_why() -> None:
    """An unparsable duration keeps the duration parser's message."""
    error = error_of(claim_dict(claimTimeout="abc"))
    assert error.field == "SandboxClaim/my-claim spec.claimTimeout"
    assert error.reason.startswith("invalid duration 'abc'")


@pytest.mark.parametrize("text", [" 30s", "30s ", "\u0663\u0660s"])
def test_a_duration_is_read_as_go_reads_it(text: str) -> None:
    """``metav1.Duration`` hands the string to ``time.ParseDuration`` untrimmed, ASCII digits only."""
    error = error_of(claim_dict(claimTimeout=text))
    assert error.field == "SandboxClaim/my-claim spec.claimTimeout"
    assert error.reason.startswith(f"invalid duration {text!r}")


def test_a_wrong_type_shows_the_offending_value() -> None:
    """A string where an integer belongs names the type, and the value with its kind."""
    error = error_of(claim_dict(replicas="two"))
    assert error.reason == "must be an integer, got the text 'two'"


def test_list_items_and_map_keys_are_addressed_in_the_path() -> None:
    """List indexes and non-identifier map keys appear in brackets."""
    error = error_of(claim_dict(dynamicVolumesMount=[{"pvName": "pv", "mountPath": ""}]))
    assert error.field == "SandboxClaim/my-claim spec.dynamicVolumesMount[0].mountPath"
    assert error.reason == "must not be empty"
    doc = claim_dict()
    doc["metadata"]["labels"] = {"example.com/team": 7}
    assert error_of(doc).field == "SandboxClaim/my-claim metadata.labels[example.com/team]"


def test_dynamic_volume_mounts_are_keyed_by_mount_path() -> None:
    """A map-list keyed by ``mountPath``: a second mount at the same path is refused, the error
    naming that mount's key as every other per-item error names its item."""
    mounts = [{"pvName": "a", "mountPath": "/data"}, {"pvName": "b", "mountPath": "/data"}]
    error = error_of(claim_dict(dynamicVolumesMount=mounts))
    assert error.field == "SandboxClaim/my-claim spec.dynamicVolumesMount[1].mountPath"
    assert error.reason == "duplicate value '/data'"


def test_a_value_matching_no_union_member_is_one_error() -> None:
    """An IntOrString that is neither reports one reason, not one per member."""
    doc = yaml.safe_load(POOL_YAML)
    doc["spec"]["scaleStrategy"] = {"maxUnavailable": [1]}
    error = error_of(doc)
    assert error.field == "SandboxSet/pool spec.scaleStrategy.maxUnavailable"
    assert error.reason == "must be an integer or a string, got a list"


def test_a_cross_field_rule_is_reported_on_its_object() -> None:
    """A SandboxSet with neither template nor templateRef names ``spec``."""
    doc = yaml.safe_load(POOL_YAML)
    del doc["spec"]["template"]
    error = error_of(doc)
    assert error.field == "SandboxSet/pool spec"
    assert "template" in error.reason


def test_an_enum_value_lists_the_allowed_values() -> None:
    """An unknown pod phase lists the phases."""
    error = error_of(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Up"}}
    )
    assert error.field == "Pod/p status.phase"
    assert "'Running'" in error.reason and "'Up'" in error.reason


def test_an_unnamed_object_is_identified_by_its_document_index() -> None:
    """Without a name, the field path starts with ``document[i]``."""
    doc = claim_dict(replicas=0)
    del doc["metadata"]
    assert error_of([claim_dict(), doc]).field == "document[1] spec.replicas"


def test_a_missing_or_unknown_kind_is_reported_on_kind() -> None:
    """``kind`` missing or unknown is an error at ``document[i] kind``."""
    missing = error_of(POOL_YAML + "---\nmetadata: {name: x}\n")
    assert missing.field == "document[1] kind"
    assert missing.reason.startswith("required value")
    unknown = error_of({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert unknown.field == "document[0] kind"
    assert "Deployment" in unknown.reason


def test_the_api_version_must_match_the_kind() -> None:
    """A CRD at the wrong version, a Pod at a CRD version, and a missing version are rejected."""
    wrong = claim_dict()
    wrong["apiVersion"] = "agents.kruise.io/v1beta1"
    error = error_of(wrong)
    assert error.field == "SandboxClaim/my-claim apiVersion"
    assert "agents.kruise.io/v1alpha1" in error.reason
    pod = {"apiVersion": "agents.kruise.io/v1alpha1", "kind": "Pod", "metadata": {"name": "p"}}
    assert error_of(pod).field == "Pod/p apiVersion"
    unversioned = claim_dict()
    del unversioned["apiVersion"]
    assert error_of(unversioned).reason.startswith("required value")


def test_errors_inside_a_list_carry_the_item_index() -> None:
    """An unnamed bad item of a ``kind: List`` is addressed as ``document[i].items[j]``."""
    bad = claim_dict(replicas=0)
    del bad["metadata"]
    doc = {"apiVersion": "v1", "kind": "List", "items": [claim_dict(), bad]}
    assert error_of(doc).field == "document[0].items[1] spec.replicas"


def test_malformed_yaml_is_a_manifest_error_with_its_line() -> None:
    """A YAML syntax error raises InvalidError('manifest', ...) with the line number."""
    error = error_of("kind: SandboxClaim\nmetadata:\n  name: [x\nspec: {}\n")
    assert error.field == "manifest"
    assert "line" in error.reason


def test_a_key_given_twice_is_an_error_not_a_silent_override() -> None:
    """A duplicate key in one YAML mapping is refused with its line, as kubectl does."""
    error = error_of(CLAIM_YAML + "  replicas: 5\n")
    assert error.field == "manifest"
    assert "duplicate key 'replicas'" in error.reason
    assert "line 9" in error.reason


def test_yaml_merge_keys_may_be_overridden() -> None:
    """Keys merged in with ``<<`` are not duplicates."""
    text = (
        "- &pod {apiVersion: v1, kind: Pod, metadata: {name: a}}\n"
        "- <<: *pod\n"
        "  metadata: {name: b}\n"
    )
    assert [o.metadata.name for o in load_manifests(text)] == ["a", "b"]


@pytest.mark.parametrize(
    ("part", "value", "field"),
    [
        ("metadata", {"name": "my-claim", "labels": {1: "a"}}, "metadata.labels"),
        ("spec", {"templateName": "pool", "envVars": {True: "x"}}, "spec.envVars"),
        (
            "spec",
            {"templateName": "pool", "dynamicVolumesMount": [{None: 1}]},
            "spec.dynamicVolumesMount[0]",
        ),
    ],
)
def test_a_key_that_is_no_string_is_refused_where_it_is(part: str, value: Any, field: str) -> None:
    """JSON has only string keys: YAML's ``{1: a}`` is one error naming the map."""
    doc = claim_dict()
    doc[part] = value
    error = error_of(doc)
    assert error.field == f"SandboxClaim/my-claim {field}"
    assert error.reason.startswith("a key must be a string, got ")


def alias_bomb(levels: int) -> str:
    """A pool whose template holds ``levels`` anchors, each aliasing the one before nine times."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return POOL_YAML + "".join(f"        {line}\n" for line in lines).replace(
        "        a0:", "      extra:\n        a0:", 1
    )


def test_a_document_that_aliases_too_much_is_refused_at_once() -> None:
    """A few hundred bytes expanding to millions of nodes: refused as go-yaml refuses it, before
    anything walks the expansion (nine times the time per level otherwise)."""
    error = error_of(alias_bomb(6))
    assert error.field == "manifest"
    assert "document contains excessive aliasing" in error.reason
    # Aliases that expand modestly, as anchors are used in practice, are fine.
    pool = load_manifest(alias_bomb(3))
    assert isinstance(pool, SandboxSet) and pool.spec.template is not None
    assert len(pool.spec.template["spec"]["extra"]["a2"]) == 9


def test_bytes_are_read_as_utf8_text() -> None:
    """A manifest read from a binary file loads like text."""
    assert isinstance(load_manifest(CLAIM_YAML.encode()), SandboxClaim)


def test_a_non_object_document_is_rejected() -> None:
    """A scalar document is not an object."""
    error = error_of("just text")
    assert error.field == "document[0]"
    assert "expected an object" in error.reason


def test_non_manifest_inputs_are_rejected() -> None:
    """Something that is neither text, a mapping nor a sequence is refused."""
    error = error_of(42)
    assert error.field == "manifest"


# --------------------------------------------------------------------------- dumping


def test_dump_yaml_is_camelcase_block_style_without_nulls() -> None:
    """``dump`` prints what ``kubectl get -o yaml`` shows."""
    text = dump(load_manifest(CLAIM_YAML))
    assert text.startswith("apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxClaim\nmetadata:\n")
    assert "templateName: pool\n" in text
    assert "claimTimeout: 30s\n" in text
    assert "null" not in text
    assert "{" not in text  # block style throughout
    assert "labels" not in text  # empty maps are omitted, like Go's omitempty


def test_dump_json_uses_four_space_indentation() -> None:
    """``dump(..., 'json')`` prints kubectl-style JSON that parses back to the manifest dict."""
    claim = load_manifest(CLAIM_YAML)
    text = dump(claim, "json")
    assert text.startswith('{\n    "apiVersion": "agents.kruise.io/v1alpha1",\n')
    assert json.loads(text) == to_manifest_dict(claim)


def test_dumped_strings_that_look_like_other_types_are_double_quoted() -> None:
    """Label values such as ``"true"`` and empty strings stay strings, quoted as kubectl does."""
    sbx = Sandbox(metadata=ObjectMeta(name="s", labels={"claimed": "true", "empty": ""}))
    text = dump(sbx)
    assert 'claimed: "true"' in text
    assert 'empty: ""' in text


YAML11_BOOLEANS = [
    *"yYnN",
    *(
        word
        for base in ("yes", "no", "on", "off", "true", "false")
        for word in (base, base.capitalize(), base.upper())
    ),
]
"""Every string go-yaml v2 (YAML 1.1) reads as a boolean."""


@pytest.mark.parametrize("word", YAML11_BOOLEANS)
def test_every_yaml_1_1_boolean_is_quoted(word: str) -> None:
    """go-yaml v2 reads ``y``, ``N``, ``Off``... as booleans: ``gpu: y`` applied with kubectl
    would be ``true`` and refused, so kubectl quotes them, keys as values."""
    sbx = Sandbox(metadata=ObjectMeta(name="s", labels={"gpu": word}, annotations={word: "v"}))
    text = dump(sbx)
    assert f'gpu: "{word}"\n' in text
    assert f'"{word}": v\n' in text
    assert load_manifest(text) == sbx


@pytest.mark.parametrize("word", ["yo", "nope", "YES!", "t", "f", "yEs", "nO"])
def test_words_that_are_no_boolean_stay_plain(word: str) -> None:
    """Only the resolver's exact words are quoted (``yEs`` is no boolean to go-yaml)."""
    text = dump(Sandbox(metadata=ObjectMeta(name="s", annotations={"a": word})))
    assert f"a: {word}\n" in text


@pytest.mark.parametrize("text", ["1e3", "1E5", "08", "0o17", "-.5e3", "0x1F", "+1", ".5", "~"])
def test_text_go_yaml_would_read_as_a_number_is_quoted(text: str) -> None:
    """A dump loads back equal: text that go-yaml (kubectl, ``load_manifests``) reads as a
    number or null when plain is written quoted, as a value and as a key. PyYAML's own
    resolver left ``1e3``, ``08`` and ``0o17`` plain, and they came back as numbers."""
    sbx = Sandbox(metadata=ObjectMeta(name="s", annotations={"a": text, "1e3": "key"}))
    dumped = dump(sbx)
    assert f'a: "{text}"\n' in dumped
    assert '"1e3": key\n' in dumped
    assert load_manifest(dumped) == sbx


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('{"x": 1}', """'{"x": 1}'"""),
        ("a: b", "'a: b'"),
        ("#x", "'#x'"),
        (" lead", "' lead'"),
        ("it's", "it's"),
        ("'", "''''"),
        ("[x", "'[x'"),
        ("2001-12-14", '"2001-12-14"'),
        ("12:34:56", '"12:34:56"'),
        ("a\x85b", '"a\\Nb"'),
    ],
)
def test_text_that_cannot_stand_plain_is_single_quoted_as_kubectl_writes_it(
    text: str, written: str
) -> None:
    """go-yaml (``kubectl get -o yaml``) single-quotes text that only cannot stand plain (JSON
    in an annotation, ``a: b``, a leading blank) and double-quotes what it would read as
    another type (a date, a base-60 number); a YAML 1.1 line break (NEL) is escaped so that
    it loads back. Before, everything quoted was double-quoted, with backslash escapes."""
    sbx = Sandbox(metadata=ObjectMeta(name="s", annotations={"a": text}))
    dumped = dump(sbx)
    assert f"\n    a: {written}\n" in dumped
    assert load_manifest(dumped) == sbx


def test_dump_sorts_keys_at_every_level_as_kubectl_prints_them() -> None:
    """kubectl prints an unstructured object, Go maps: keys sorted in every mapping, the pod
    template's too; list items keep their order."""
    doc = yaml.safe_load(POOL_YAML)
    doc["metadata"]["labels"] = {"zone": "a", "app": "b"}
    doc["spec"]["template"]["spec"]["containers"].append({"name": "aux", "image": "busybox:1"})
    pool = load_manifest(doc)
    data = to_manifest_dict(pool)

    def sorted_everywhere(value: Any) -> bool:
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(map(sorted_everywhere, value.values()))
        if isinstance(value, list):
            return all(map(sorted_everywhere, value))
        return True

    assert sorted_everywhere(data)
    assert list(data["metadata"]) == ["labels", "name", "namespace"]
    containers = data["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"image": "python:3.12", "name": "main"},
        {"image": "busybox:1", "name": "aux"},
    ]
    text = dump(pool)
    assert "metadata:\n  labels:\n    app: b\n    zone: a\n  name: pool\n" in text
    assert "containers:\n      - image: python:3.12\n        name: main\n" in text
    assert list(json.loads(dump(pool, "json"))["spec"]) == sorted(data["spec"])


def test_yaml_keys_follow_go_yamls_order_json_keys_go_jsons() -> None:
    """go-yaml v2 sorts numbers within keys by value and letters after other characters;
    encoding/json sorts by bytes."""
    keys = ["item10", "item9", "a_b", "aB", "a-b", "ab", "x1", "x01"]
    sbx = Sandbox(metadata=ObjectMeta(name="s", annotations=dict.fromkeys(keys, "v")))
    text = dump(sbx)
    block = text[text.index("annotations:\n") :].splitlines()[1 : len(keys) + 1]
    assert [line.strip().split(":")[0] for line in block] == [
        "a-b",
        "a_b",
        "aB",
        "ab",
        "item9",
        "item10",
        "x1",
        "x01",
    ]
    annotations = json.loads(dump(sbx, "json"))["metadata"]["annotations"]
    assert list(annotations) == sorted(keys)
    assert list(to_manifest_dict(sbx)["metadata"]["annotations"]) == sorted(keys)


def test_json_escapes_html_characters_as_go_does() -> None:
    """encoding/json writes ``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes; the
    text still reads back as the same value."""
    note = "a<b && c>d \u2028\u2029 é"
    sbx = Sandbox(metadata=ObjectMeta(name="s", annotations={"note": note}))
    text = dump(sbx, "json")
    assert '"note": "a\\u003cb \\u0026\\u0026 c\\u003ed \\u2028\\u2029 é"' in text
    assert load_manifest(text) == sbx
    yaml_text = dump(Sandbox(metadata=ObjectMeta(name="s", annotations={"note": "a<b && c>d"})))
    assert "note: a<b && c>d\n" in yaml_text


def test_a_pod_conditions_empty_reason_and_message_are_left_out() -> None:
    """v1.PodCondition marks reason and message omitempty; a CRD's metav1.Condition needs them."""
    cond = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    pod = load_manifest(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main", "image": "i"}]},
            "status": {
                "conditions": [cond, {**cond, "type": "X", "reason": "Why", "message": "m"}]
            },
        }
    )
    data = to_manifest_dict(pod)
    assert data["status"]["conditions"] == [
        cond,
        {**cond, "type": "X", "reason": "Why", "message": "m"},
    ]
    assert load_manifest(dump(pod)) == pod
    sbx = Sandbox.model_validate({"metadata": {"name": "s"}, "status": {"conditions": [cond]}})
    assert to_manifest_dict(sbx)["status"]["conditions"] == [{**cond, "message": "", "reason": ""}]


def test_multi_line_strings_dump_as_literal_blocks() -> None:
    """A multi-line annotation dumps as a ``|`` block."""
    sbx = Sandbox(metadata=ObjectMeta(name="s", annotations={"script": "echo a\necho b\n"}))
    assert "script: |\n" in dump(sbx)


def test_free_form_templates_are_dumped_verbatim() -> None:
    """Empty maps inside a pod template are kept; only empty optional model fields go."""
    doc = yaml.safe_load(POOL_YAML)
    doc["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    data = to_manifest_dict(load_manifest(doc))
    assert data["spec"]["template"]["spec"]["containers"][0]["resources"] == {}
    assert "conditions" not in data["status"]


def test_dump_all_is_a_kind_list() -> None:
    """Several objects dump as ``kind: List`` with an empty list resourceVersion."""
    data = yaml.safe_load(dump_all(load_manifests(POOL_YAML + "---\n" + CLAIM_YAML)))
    assert data["apiVersion"] == "v1"
    assert data["kind"] == "List"
    assert list(data) == ["apiVersion", "items", "kind", "metadata"]
    assert [item["kind"] for item in data["items"]] == ["SandboxSet", "SandboxClaim"]
    assert data["metadata"] == {"resourceVersion": ""}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_dump_and_load_round_trip(fmt: Literal["yaml", "json"]) -> None:
    """Loading what was dumped gives equal models, one by one or as a List."""
    objs = load_manifests(POOL_YAML + "---\n" + CLAIM_YAML)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    objs.append(
        Sandbox(
            metadata=ObjectMeta(name="s", creation_timestamp=now, labels={"a": "b"}),
        )
    )
    assert load_manifests(dump_all(objs, fmt)) == objs
    for obj in objs:
        assert load_manifest(dump(obj, fmt)) == obj


@pytest.mark.parametrize(
    ("source", "field", "empty"),
    [
        (CLAIM_YAML, "labels", {}),
        (CLAIM_YAML, "annotations", {}),
        (CLAIM_YAML, "envVars", {}),
        (CLAIM_YAML, "runtimes", []),
        (CLAIM_YAML, "dynamicVolumesMount", []),
        (CLAIM_YAML, "inplaceUpdate", {}),
        (CLAIM_YAML, "inplaceUpdate", {"resources": {}}),
        (POOL_YAML, "runtimes", []),
        (POOL_YAML, "persistentContents", []),
        (POOL_YAML, "volumeClaimTemplates", []),
        (POOL_YAML, "scaleStrategy", {}),
    ],
)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_an_empty_list_or_map_the_user_wrote_stays_in_the_dump(
    source: str, field: str, empty: Any, fmt: Literal["yaml", "json"]
) -> None:
    """The API server keeps a custom resource's ``[]`` as written, and left out it would load
    back as unset: another spec (another revision of a pool, a new generation of a claim)."""
    doc = yaml.safe_load(source)
    doc["spec"][field] = empty
    obj = load_manifest(doc)
    assert to_manifest_dict(obj)["spec"][field] == empty
    assert load_manifest(dump(obj, fmt)) == obj


def test_an_empty_list_or_map_that_is_the_default_is_left_out() -> None:
    """Where the model cannot tell empty from absent (labels, finalizers, conditions), as omitempty."""
    doc = yaml.safe_load(CLAIM_YAML)
    doc["metadata"] |= {"labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": []}
    data = to_manifest_dict(load_manifest(doc))
    assert data["metadata"] == {"name": "my-claim", "namespace": "default"}
    assert "conditions" not in data["status"]


def test_an_unknown_output_format_is_refused() -> None:
    """Only yaml and json are output formats."""
    with pytest.raises(ValueError, match="xml"):
        dump(load_manifest(CLAIM_YAML), "xml")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SandboxTemplate


def sandbox_template(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxTemplate",
        "metadata": {"name": "tpl"},
        "spec": spec,
    }


def test_a_sandbox_template_round_trips_through_yaml() -> None:
    """A SandboxTemplate loads and dumps as kubectl shows it: camelCase, no status."""
    template = {"spec": {"containers": [{"name": "main", "image": "img:1"}]}}
    (obj,) = load_manifests(
        sandbox_template(template=template, runtimes=[{"name": "agent-runtime"}])
    )
    assert isinstance(obj, SandboxTemplate)
    doc = to_manifest_dict(obj)
    assert doc["kind"] == "SandboxTemplate" and "status" not in doc
    assert doc["spec"] == {"template": template, "runtimes": [{"name": "agent-runtime"}]}
    assert load_manifests(dump(obj)) == [obj]


def test_a_sandbox_template_needs_a_valid_pod_template() -> None:
    """No template, or a container without an image, is refused at the field concerned."""
    assert str(error_of(sandbox_template())) == "SandboxTemplate/tpl spec.template: required value"
    err = error_of(sandbox_template(template={"spec": {"containers": [{"name": "c"}]}}))
    assert err.field == "SandboxTemplate/tpl spec.template.spec.containers[0].image"
    assert err.reason == "required value"


def test_a_pod_template_is_resolved_inline_or_through_its_reference() -> None:
    """``resolve_pod_template``: the object's own template, else the one its templateRef names."""
    (tpl,) = load_manifests(
        sandbox_template(template={"spec": {"containers": [{"name": "c", "image": "i"}]}})
    )
    assert isinstance(tpl, SandboxTemplate)
    ref = Sandbox.model_validate(
        {"metadata": {"name": "s"}, "spec": {"templateRef": {"name": "tpl"}}}
    )
    known = {("default", "tpl"): tpl}
    assert resolve_pod_template(ref, lambda ns, n: known.get((ns, n))) is tpl.spec.template
    assert resolve_pod_template(ref, lambda ns, n: None) is None
    inline = Sandbox.model_validate({"metadata": {"name": "s"}, "spec": {"template": {"a": 1}}})
    assert resolve_pod_template(inline, lambda ns, n: tpl) == {"a": 1}
    assert resolve_pod_template(Sandbox(), lambda ns, n: tpl) is None


# --------------------------------------------------------------------------- the first problem


def test_two_bad_fields_with_equal_values_are_two_fields_not_a_union() -> None:
    """Errors merge only when they are the members of one union at one location.

    ``"two"`` is interned: two fields holding it once made one garbled error on ``spec``.
    """
    error = error_of(claim_dict(replicas="two", claimTimeout="two"))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.replicas",
        "must be an integer, got the text 'two'",
    )
    error = error_of(claim_dict(createOnNoStock="maybe", skipInitRuntime="maybe"))
    assert error.field == "SandboxClaim/my-claim spec.createOnNoStock"
    doc = claim_dict()
    doc["metadata"]["labels"] = {"a": 1, "b": 1}
    assert error_of(doc).field == "SandboxClaim/my-claim metadata.labels.a"


# --------------------------------------------------------------------------- strict decoding


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"replicas": True}, "spec.replicas", "must be an integer, got the boolean true"),
        ({"replicas": "3"}, "spec.replicas", "must be an integer, got the text '3'"),
        # 2.0 reaches the API server as 2 (Go writes an integral float so): see
        # test_an_integral_float_is_an_integer.
        ({"replicas": 2.5}, "spec.replicas", "must be an integer, got 2.5"),
        (
            {"createOnNoStock": "yes"},
            "spec.createOnNoStock",
            "must be a boolean, got the text 'yes'",
        ),
        ({"createOnNoStock": 1}, "spec.createOnNoStock", "must be a boolean, got 1"),
        ({"templateName": 5}, "spec.templateName", "must be a string, got 5"),
        ({"claimTimeout": 30}, "spec.claimTimeout", "expected a duration string"),
        ({"labels": {"a": True}}, "spec.labels.a", "must be a string, got the boolean true"),
    ],
)
def test_manifest_values_are_never_converted_to_another_kind(
    spec: dict[str, Any], field: str, reason: str
) -> None:
    """As the API server decodes JSON: ``true`` is no 1, ``"3"`` no 3, ``1`` no boolean."""
    error = error_of(claim_dict(**spec))
    assert error.field == f"SandboxClaim/my-claim {field}"
    assert reason in error.reason


def test_an_int_or_string_keeps_its_kind() -> None:
    """``maxUnavailable: true`` is refused; ``"3"`` is a string, hence a malformed percentage."""
    doc = yaml.safe_load(POOL_YAML)
    doc["spec"]["updateStrategy"] = {"maxUnavailable": True}
    error = error_of(doc)
    assert (error.field, error.reason) == (
        "SandboxSet/pool spec.updateStrategy.maxUnavailable",
        "must be an integer or a string, got the boolean true",
    )
    doc["spec"]["updateStrategy"] = {"maxUnavailable": "3"}
    assert "percentage" in error_of(doc).reason


def test_manifests_use_camelcase_names_only() -> None:
    """A snake_case key is an unknown field that points at its camelCase name."""
    error = error_of(claim_dict(claim_timeout="5m"))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.claim_timeout",
        "unknown field (did you mean 'claimTimeout'?)",
    )
    doc = yaml.safe_load(POOL_YAML)
    doc["spec"]["update_strategy"] = {"maxUnavailable": 1}
    assert error_of(doc).reason == "unknown field (did you mean 'updateStrategy'?)"
    doc = yaml.safe_load(POOL_YAML)
    doc["metadata"]["owner_references"] = []
    assert error_of(doc).field == "SandboxSet/pool metadata.owner_references"


@pytest.mark.parametrize("typo", ["template_name", "templatename", "templateNme"])
def test_a_required_field_misspelt_is_reported_as_the_typo_not_as_missing(typo: str) -> None:
    """The user did write the field: the error names what they wrote, with the name meant,
    as for any other unknown field (not "spec.templateName: required value")."""
    doc = claim_dict()
    doc["spec"] = {typo: "pool"}
    error = error_of(doc)
    assert (error.field, error.reason) == (
        f"SandboxClaim/my-claim spec.{typo}",
        "unknown field (did you mean 'templateName'?)",
    )


def test_a_required_field_left_out_beside_an_unrelated_unknown_one_is_missing() -> None:
    """Only a near-miss of the missing field's name stands for it."""
    doc = claim_dict()
    doc["spec"] = {"replicas": 1}
    error = error_of(doc)
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.templateName",
        "required value",
    )


def test_python_constructors_keep_their_conveniences() -> None:
    """From Python: snake_case names, and a number of seconds as a duration."""
    spec = SandboxClaimSpec(template_name="pool", claim_timeout=30)
    assert spec.claim_timeout == timedelta(seconds=30)
    claim = SandboxClaim.model_validate(
        {"metadata": {"name": "c"}, "spec": {"template_name": "pool", "replicas": 2}}
    )
    assert claim.spec.replicas == 2


def test_a_json_key_given_twice_is_refused() -> None:
    """JSON keeps the last of two equal keys; the API server refuses them, and so do we."""
    text = json.dumps(claim_dict())[:-2] + ', "replicas": 1, "replicas": 2}}'
    error = error_of(text)
    assert (error.field, error.reason) == ("manifest", "invalid JSON: duplicate key 'replicas'")


def test_enum_values_load_from_text() -> None:
    """A status phase is text in a manifest, and a member once loaded."""
    doc = claim_dict()
    doc["status"] = {"phase": "Completed"}
    claim = load_manifest(doc)
    assert isinstance(claim, SandboxClaim) and claim.status.phase == "Completed"
    doc["status"] = {"phase": "Done"}
    error = error_of(doc)
    assert error.field == "SandboxClaim/my-claim status.phase"
    assert error.reason == "unsupported value 'Done': must be 'Claiming' or 'Completed'"


# --------------------------------------------------------------------------- null is unset


def test_a_null_field_is_an_unset_one() -> None:
    """Helm's ``labels:`` with nothing after it: no labels; a null strategy gets its default."""
    (pool, claim) = load_manifests("""
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata:
  name: helm
  namespace:
  labels:
  annotations:
spec:
  replicas: 0
  updateStrategy:
  template:
    metadata:
      labels:
    spec:
      containers: [{name: m, image: i}]
---
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: cl}
spec:
  templateName: helm
  labels:
  envVars:
""")
    assert isinstance(pool, SandboxSet) and isinstance(claim, SandboxClaim)
    assert pool.metadata.labels == {} and pool.metadata.namespace == "default"
    assert pool.spec.update_strategy.max_unavailable == "20%"
    assert claim.spec.labels is None and claim.spec.env_vars is None
    doc = yaml.safe_load(POOL_YAML)
    doc["spec"]["updateStrategy"] = {"maxUnavailable": None}
    loaded = load_manifest(doc)
    assert isinstance(loaded, SandboxSet)
    assert loaded.spec.update_strategy.max_unavailable == "20%"


def test_a_null_required_field_is_a_missing_one() -> None:
    """``templateName: null`` is a required value; a null label value is no string."""
    error = error_of(claim_dict(templateName=None))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.templateName",
        "required value",
    )
    doc = claim_dict()
    doc["metadata"]["labels"] = {"a": None}
    error = error_of(doc)
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim metadata.labels.a",
        "must be a string, got null",
    )


# --------------------------------------------------------------------------- read as kubectl reads

POOL_ARGS = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: pool}}
spec:
  replicas: {replicas}
  template:
    spec:
      containers: [{{name: c, image: busybox, args: [{arg}]}}]
"""


def pool_args(replicas: str = "1", arg: str = "x") -> SandboxSet:
    pool = load_manifest(POOL_ARGS.format(replicas=replicas, arg=arg))
    assert isinstance(pool, SandboxSet)
    return pool


def args_of(pool: SandboxSet) -> Any:
    return pool.spec.template["spec"]["containers"][0]["args"]  # type: ignore[index]


def test_a_time_of_day_is_text_not_a_base_60_number() -> None:
    """go-yaml has no base-60: ``12:30`` is an argument as written, an annotation a string,
    and ``replicas: 1:30`` no 90 but text, which an integer field refuses."""
    assert args_of(pool_args(arg="--at, 12:30, 16:9")) == ["--at", "12:30", "16:9"]
    claim = load_manifest(
        CLAIM_YAML.replace("  name: my-claim\n", "  name: c\n  annotations:\n    window: 12:30\n")
    )
    assert claim.metadata.annotations == {"window": "12:30"}
    error = error_of(CLAIM_YAML.replace("replicas: 2", "replicas: 1:30"))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.replicas",
        "must be an integer, got the text '1:30'",
    )


@pytest.mark.parametrize(
    ("field", "written", "value"),
    [("reserveFailedSandbox", "y", True), ("createOnNoStock", "N", False)],
)
def test_go_yaml_booleans_are_booleans(field: str, written: str, value: bool) -> None:
    """``y`` and ``N`` are booleans to kubectl: a boolean field takes them."""
    claim = load_manifest(CLAIM_YAML + f"  {field}: {written}\n")
    assert claim.model_dump(by_alias=True)["spec"][field] is value


@pytest.mark.parametrize("written", ["y", "1e3", "0o17", "08"])
def test_a_go_yaml_number_or_boolean_is_no_string(written: str) -> None:
    """kubectl sends ``gpu: y`` as ``true`` and ``1e3`` as 1000: a string field refuses them."""
    error = error_of(CLAIM_YAML + f"  envVars: {{GPU: {written}}}\n")
    assert error.field == "SandboxClaim/my-claim spec.envVars.GPU"
    assert error.reason.startswith("must be a string, got ")


@pytest.mark.parametrize("written", ["3.0", "3.", "0.3e1", "!!float 3", "08", "0o3", "0x3"])
def test_an_integral_float_is_an_integer(written: str) -> None:
    """Go writes ``float64(3)`` as ``3``: kubectl sends these as the integer 3."""
    expected = 8 if written == "08" else 3
    assert pool_args(replicas=written).spec.replicas == expected


@pytest.mark.parametrize("number", ["3.0", "3e0"])
def test_an_integral_json_float_is_an_integer(number: str) -> None:
    """apimachinery decodes JSON ``3.0`` and writes it back as ``3``; 3.5 is still no integer."""
    text = json.dumps(claim_dict(replicas=0)).replace('"replicas": 0', f'"replicas": {number}')
    assert load_manifest(text).spec.replicas == 3  # type: ignore[union-attr]
    assert args_of(pool_args(arg="1.0")) == [1]
    error = error_of(text.replace(number, "3.5"))
    assert (error.field, error.reason) == (
        "SandboxClaim/my-claim spec.replicas",
        "must be an integer, got 3.5",
    )


@pytest.mark.parametrize(("arg", "word"), [(".inf", "+Inf"), ("-.inf", "-Inf"), (".nan", "NaN")])
def test_a_yaml_float_json_cannot_carry_is_refused(arg: str, word: str) -> None:
    """kubectl fails (``json: unsupported value: +Inf``); it was stored as null or nan."""
    error = error_of(POOL_ARGS.format(replicas=1, arg=f"--ratio, {arg}"))
    assert error.field == "SandboxSet/pool spec.template.spec.containers[0].args[1]"
    assert error.reason.startswith(f"unsupported value {word}: ")


@pytest.mark.parametrize(
    ("number", "word"), [("NaN", "NaN"), ("-Infinity", "-Inf"), ("1e400", "+Inf")]
)
def test_a_json_number_past_a_float_is_refused(number: str, word: str) -> None:
    """``NaN`` and ``Infinity`` are no JSON and ``1e400`` no float64, to kubectl."""
    text = json.dumps(claim_dict(labels={"a": "b"})).replace('"b"', number)
    error = error_of(text)
    assert error.field == "SandboxClaim/my-claim spec.labels.a"
    assert error.reason.startswith(f"unsupported value {word}: ")


def test_a_stream_of_json_objects_is_read_in_order() -> None:
    """What ``kubectl get -o json | jq '.items[]'`` prints: one object after another."""
    first, second = (json.dumps(claim_dict(), indent=2), json.dumps(claim_dict(replicas=3)))
    claims = load_manifests(f"{first}\n{second}{second}\n")
    assert [c.spec.replicas for c in claims] == [1, 3, 3]  # type: ignore[union-attr]


def test_json_that_fails_is_not_read_as_yaml() -> None:
    """A trailing comma is a JSON error (kubectl's), not flow-style YAML that reads it."""
    text = json.dumps(claim_dict()).replace('"my-claim"}', '"my-claim",}')
    error = error_of(text)
    assert error.field == "manifest"
    assert error.reason.startswith("invalid JSON at line 1, column ")
    # Flow-style YAML that starts with a brace is still read.
    assert load_manifest("{apiVersion: v1, kind: Pod, metadata: {name: p}}").kind == "Pod"


def test_a_typed_list_gives_its_items_their_kind() -> None:
    """The API server's ``SandboxClaimList`` leaves the items' kind out; kubectl fills it in."""
    doc = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaimList",
        "metadata": {"resourceVersion": "12"},
        "items": [{"metadata": {"name": "c1"}, "spec": {"templateName": "pool"}}],
    }
    (claim,) = load_manifests(doc)
    assert isinstance(claim, SandboxClaim) and claim.metadata.name == "c1"
    # A kind: List need not be at v1, and an item with a kind of its own keeps it.
    doc = {"apiVersion": "agents.kruise.io/v1alpha1", "kind": "List", "items": [claim_dict()]}
    assert [o.kind for o in load_manifests(doc)] == ["SandboxClaim"]
    assert load_manifests({"kind": "SandboxClaimList", "items": None}) == []


def test_merge_keys_give_earlier_maps_precedence() -> None:
    """``<<: [*a, *b]`` takes a key from ``a`` first; a ``<<`` after a key overrides it."""
    text = CLAIM_YAML + (
        "  labels: &a {tier: gold, team: a}\n"
        "  annotations: &b {tier: silver}\n"
        "  envVars:\n    tier: bronze\n    <<: [*a, *b]\n"
    )
    assert load_manifest(text).spec.env_vars == {"tier": "gold", "team": "a"}  # type: ignore[union-attr]


def test_kubectl_yaml_syntax_is_read() -> None:
    """A tab after a colon, a plain ``=`` and ``!!binary`` read as go-yaml reads them."""
    pool = load_manifest(
        POOL_ARGS.format(replicas=1, arg="--sep, =").replace(
            "metadata: {name: pool}",
            "metadata:\n  name: pool\n  annotations:\n    team:\t!!binary cGxhdGZvcm0=",
        )
    )
    assert pool.metadata.annotations == {"team": "platform"}
    assert args_of(pool) == ["--sep", "="]  # type: ignore[arg-type]
    error = error_of("%YAML 1.2\n---\n" + CLAIM_YAML)
    assert error.reason.startswith("invalid YAML: found incompatible YAML document")


_CLAIM_JSON = (
    '{"apiVersion": "agents.kruise.io/v1alpha1", "kind": "SandboxClaim",'
    ' "metadata": {"name": "NAME"}, "spec": {"templateName": "t"}}'
)


def test_a_json_stream_after_leading_blank_lines_is_read_as_json() -> None:
    """kubectl reads a text whose first non-blank character is ``{`` as a stream of JSON
    objects, however it is indented (``jq`` output pasted after a blank line)."""
    text = "\n  " + _CLAIM_JSON.replace("NAME", "a") + "\n" + _CLAIM_JSON.replace("NAME", "b")
    assert [o.metadata.name for o in load_manifests(text)] == ["a", "b"]


def test_a_control_character_in_json_is_a_json_error() -> None:
    """A control character where a JSON value should be is no sign of YAML: the error is JSON's."""
    with pytest.raises(InvalidError, match=r"invalid JSON at line 1, column 30: Expecting value"):
        load_manifests('{"apiVersion": "v1", "kind": \x01}')


def test_a_kind_list_without_items_is_empty() -> None:
    """apimachinery reads ``kind: List`` with no ``items`` as an empty list, not an unknown kind."""
    assert load_manifests("apiVersion: v1\nkind: List\n") == []


def test_a_typed_list_item_with_empty_kind_and_api_version_takes_the_lists() -> None:
    """``UnstructuredList`` gives an item whose kind and apiVersion are both empty the list's."""
    (claim,) = load_manifests(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxClaimList",
            "items": [
                {
                    "apiVersion": "",
                    "kind": "",
                    "metadata": {"name": "x"},
                    "spec": {"templateName": "t"},
                }
            ],
        }
    )
    assert isinstance(claim, SandboxClaim) and claim.metadata.name == "x"


def test_an_object_whose_name_is_no_string_is_named_by_its_position() -> None:
    """``metadata.name: 5`` names nothing: the error points at the document instead."""
    text = "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxClaim\nmetadata: {name: 5}\n"
    with pytest.raises(
        InvalidError, match=r"^document\[0\] metadata\.name: must be a string, got 5"
    ):
        load_manifests(text + "spec: {templateName: t}\n")


@pytest.mark.parametrize("number", ["9.223372036854775808e18", "1e19"])
def test_a_float_at_or_past_2_to_the_63_stays_a_float(number: str) -> None:
    """kubectl writes an integral float as an integer, but apimachinery reads one at or past
    2^63 back as a float: ``replicas`` then gets no integer."""
    text = (
        "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\nmetadata: {name: s}\n"
        f"spec: {{replicas: {number}, template: {{spec: {{containers: [{{name: a, image: b}}]}}}}}}\n"
    )
    with pytest.raises(InvalidError, match=r"SandboxSet/s spec\.replicas: must be an integer, got"):
        load_manifests(text)


def test_a_resource_name_is_read_without_surrounding_blanks() -> None:
    """``kubectl get ' sbx '`` names the sandboxes."""
    assert resolve_kind(" sbx ") == "Sandbox"


def test_listing_order_sorts_by_namespace_then_name() -> None:
    """``listing_order`` is the API server's list order: namespace first, then name."""
    objs = load_manifests(
        """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: a, namespace: team-b}
spec: {templateName: t}
---
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: b, namespace: team-a}
spec: {templateName: t}
---
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: a, namespace: team-a}
spec: {templateName: t}
"""
    )
    ordered = sorted(objs, key=listing_order)
    assert [(o.metadata.namespace, o.metadata.name) for o in ordered] == [
        ("team-a", "a"),
        ("team-a", "b"),
        ("team-b", "a"),
    ]

"""Specification of the claim modification and sandbox construction (§5.1, §5.2, §3, §9)."""

from __future__ import annotations

import json
import sys
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import PauseStrategy, Sandbox
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.api.validation import ANNOTATIONS_MAX, annotations_size
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import (
    E2B_INPLACE_NAMES,
    KEY_CPU_LIMIT,
    KEY_CPU_REQUEST,
    KEY_IMAGE,
    RESERVE_FOREVER,
)
from pytest_kruise_agents.claiming.modification import (
    INPLACE_OPTION_NAMES,
    RUNTIME_INIT_OPTION_NAMES,
    UUID_STAND_IN,
    ClaimOptions,
    InitRuntimeRequest,
    InplaceNames,
    RuntimeInitNames,
    check_inplace_target,
    claim_annotations,
    claim_annotations_problem,
    failed_sandbox_cleanup,
    modify_for_claim,
    needs_wait_ready,
    new_sandbox_from_sandboxset,
    pod_template_revision,
    sandboxset_has_agent_runtime,
    sandboxset_revision,
    validate_claim_options,
)
from pytest_kruise_agents.claiming.sandboxclaim import SANDBOXCLAIM_INPLACE_NAMES
from pytest_kruise_agents.claiming.state import is_claimed, sandbox_state
from pytest_kruise_agents.claiming.timeouts import FOREVER, LATEST

from .builders import NOW, SBS_UID, make_sandbox, make_sandboxset, pod_template

FRACTIONAL_NOW = NOW + timedelta(microseconds=123_456)


def options(**overrides: Any) -> ClaimOptions:
    """Claim options for user alice on template demo with lock lock-1."""
    base: dict[str, Any] = {
        "namespace": "default",
        "user": "alice",
        "template": "demo",
        "lock_string": "lock-1",
    }
    base.update(overrides)
    return ClaimOptions(**base)


def pod_labels(sbx: Sandbox) -> dict[str, str]:
    """The labels of the sandbox's pod template."""
    assert sbx.spec.template is not None
    labels: dict[str, str] = sbx.spec.template["metadata"]["labels"]
    return labels


def first_container(sbx: Sandbox) -> dict[str, Any]:
    """The first container of the sandbox's pod template."""
    assert sbx.spec.template is not None
    container: dict[str, Any] = sbx.spec.template["spec"]["containers"][0]
    return container


class TestInitRuntimeRequest:
    """The /init body."""

    def test_json_shape(self) -> None:
        """The body is compact JSON with envVars (sorted) then accessToken."""
        req = InitRuntimeRequest(env_vars={"B": "2", "A": "1"}, access_token="tok")
        assert req.to_json() == '{"envVars":{"A":"1","B":"2"},"accessToken":"tok"}'

    def test_round_trip(self) -> None:
        """The persisted annotation parses back to the same request."""
        req = InitRuntimeRequest(env_vars={"K": "v"}, access_token="t")
        assert InitRuntimeRequest.from_json(req.to_json()) == req

    def test_it_is_written_as_go_writes_it_utf8_as_is_and_html_escaped(self) -> None:
        """The bytes the 256 KiB limit counts are Go's ``json.Marshal``'s: "é" is 2 bytes
        (Python's default writes 6), ``<`` is 6 (``\\u003c``, Go's HTML-safe escape).

        Before, the rule refused env vars of non-ASCII text upstream accepts, and let
        through ``<``-heavy ones upstream's API server refuses.
        """
        req = InitRuntimeRequest(env_vars={"G": "é" * 10, "H": "<&>"}, access_token="t")
        text = req.to_json()
        assert text == (
            '{"envVars":{"G":"' + "é" * 10 + '","H":"\\u003c\\u0026\\u003e"},"accessToken":"t"}'
        )
        assert len(text.encode()) == 83  # what Go 1.26 writes for the same request
        assert InitRuntimeRequest.from_json(text) == req


class TestValidate:
    """validate_claim_options."""

    def test_valid(self) -> None:
        """Minimal options validate."""
        validate_claim_options(options())

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"user": ""}, "user"),
            ({"template": ""}, "template"),
            ({"candidate_count": 0}, "candidate_count"),
            ({"candidate_count": sys.maxsize + 1}, "candidate_count"),  # islice's limit
            ({"csi_mounts": [CSIMountConfig(pv_name="p", mount_path="/m")]}, "csi_mounts"),
            ({"cpu_request": "0"}, "cpu_request"),
            ({"cpu_limit": "-1"}, "cpu_limit"),
            ({"cpu_limit": "much"}, "cpu_limit"),
            ({"inplace_image": ""}, "inplace_image"),
        ],
    )
    def test_invalid(self, overrides: dict[str, Any], field: str) -> None:
        """Invalid options are a 400 naming the field."""
        with pytest.raises(BadRequestError) as info:
            validate_claim_options(options(**overrides))
        assert info.value.field == field
        assert info.value.message.startswith(field)

    @pytest.mark.parametrize(
        ("names", "message"),
        [
            (
                RUNTIME_INIT_OPTION_NAMES,
                "csi_mounts: CSI mounts need the runtime to be initialised, "
                "but init_runtime is not set",
            ),
            (
                RuntimeInitNames("spec.dynamicVolumesMount", "spec.skipInitRuntime is true"),
                "spec.dynamicVolumesMount: CSI mounts need the runtime to be initialised, "
                "but spec.skipInitRuntime is true",
            ),
        ],
    )
    def test_csi_without_init_runtime_is_named_as_the_request_names_it(
        self, names: RuntimeInitNames, message: str
    ) -> None:
        """The refusal names the request's mounts and says why it has no runtime init."""
        mounts = [CSIMountConfig(pv_name="p", mount_path="/m")]
        with pytest.raises(BadRequestError) as info:
            validate_claim_options(options(csi_mounts=mounts, runtime_init_names=names))
        assert (info.value.field, info.value.message) == (names.csi_mounts, message)

    def test_csi_with_init_runtime_is_fine(self) -> None:
        """CSI mounts are allowed once the runtime is initialised."""
        validate_claim_options(
            options(
                csi_mounts=[CSIMountConfig(pv_name="p", mount_path="/m")],
                init_runtime=InitRuntimeRequest(access_token="t"),
            )
        )


class TestModifyForClaim:
    """modify_for_claim: the object the claim's lock Update writes."""

    def test_input_is_not_mutated(self) -> None:
        """The input sandbox is left exactly as it was."""
        sbx = make_sandbox(
            template=pod_template(requests={"cpu": "1"}, limits={"cpu": "2"}),
        )
        before = sbx.model_dump()
        modify_for_claim(
            sbx,
            options(
                labels={"l": "1"},
                annotations={"a": "1"},
                inplace_image="python:3.13",
                cpu_request="500m",
                cpu_limit="1",
                init_runtime=InitRuntimeRequest({"E": "v"}, "tok"),
                csi_mounts=[CSIMountConfig(pv_name="p", mount_path="/m")],
                claim_name="c",
                shutdown_time=NOW,
            ),
            NOW,
        )
        assert sbx.model_dump() == before

    def test_basic_claim(self) -> None:
        """A claim clears owner refs, marks claimed, stamps the time and takes the lock."""
        out = modify_for_claim(make_sandbox(), options(), FRACTIONAL_NOW)
        meta = out.metadata
        assert meta.owner_references == []
        assert is_claimed(out)
        assert meta.labels[keys.LABEL_SANDBOX_CLAIMED] == "true"
        assert meta.annotations[keys.ANN_CLAIM_TIMESTAMP] == "2026-08-01T10:00:00Z"
        assert meta.annotations[keys.ANN_LOCK] == "lock-1"
        assert meta.annotations[keys.ANN_OWNER] == "alice"
        assert pod_labels(out)[keys.LABEL_OWNER] == "alice"
        assert keys.ANN_UPDATED_METADATA_IN_CLAIM not in meta.annotations
        assert keys.ANN_INIT_RUNTIME_REQUEST not in meta.annotations
        assert sandbox_state(out, NOW)[0].value == "running"

    def test_user_labels_and_annotations(self) -> None:
        """User labels go to the sandbox and its pod; annotations to the sandbox; keys recorded."""
        out = modify_for_claim(
            make_sandbox(),
            options(
                labels={"team": "a", "app": "x"},
                annotations={"note": "hi"},
                pod_labels={keys.LABEL_SANDBOX_NAME: "demo-abc12"},
            ),
            NOW,
        )
        assert out.metadata.labels["team"] == "a"
        assert out.metadata.annotations["note"] == "hi"
        assert pod_labels(out)["team"] == "a" and pod_labels(out)["app"] == "x"
        assert pod_labels(out)[keys.LABEL_SANDBOX_NAME] == "demo-abc12"
        assert keys.LABEL_SANDBOX_NAME not in out.metadata.labels
        assert "note" not in (out.spec.template or {})["metadata"].get("annotations", {})
        assert json.loads(out.metadata.annotations[keys.ANN_UPDATED_METADATA_IN_CLAIM]) == {
            "labels": ["app", "team"],
            "annotations": ["note"],
        }

    def test_labels_alone_are_recorded_for_recycle(self) -> None:
        """A claim that adds labels and no annotation still records them in
        ``updated-metadata-in-claim``: a recycle drops exactly the keys recorded there."""
        out = modify_for_claim(make_sandbox(), options(labels={"team": "a"}), NOW)
        assert json.loads(out.metadata.annotations[keys.ANN_UPDATED_METADATA_IN_CLAIM]) == {
            "labels": ["team"],
            "annotations": [],
        }

    def test_pod_annotations(self) -> None:
        """pod_annotations go to the pod template only."""
        out = modify_for_claim(make_sandbox(), options(pod_annotations={"p": "1"}), NOW)
        assert (out.spec.template or {})["metadata"]["annotations"] == {"p": "1"}
        assert "p" not in out.metadata.annotations

    def test_claim_name_label_can_be_overwritten_by_user_labels(self) -> None:
        """The claim-name label is set first, so spec.labels can overwrite it (#311)."""
        out = modify_for_claim(make_sandbox(), options(claim_name="c1"), NOW)
        assert out.metadata.labels[keys.LABEL_CLAIM_NAME] == "c1"
        clash = options(claim_name="c1", labels={keys.LABEL_CLAIM_NAME: "other"})
        assert (
            modify_for_claim(make_sandbox(), clash, NOW).metadata.labels[keys.LABEL_CLAIM_NAME]
            == "other"
        )

    def test_lock_and_claimed_label_cannot_be_overwritten(self) -> None:
        """The claimed label and the lock are written after user metadata."""
        sneaky = options(
            labels={keys.LABEL_SANDBOX_CLAIMED: "false"},
            annotations={keys.ANN_LOCK: "mine", keys.ANN_OWNER: "mallory"},
        )
        out = modify_for_claim(make_sandbox(), sneaky, NOW)
        assert out.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "true"
        assert out.metadata.annotations[keys.ANN_LOCK] == "lock-1"
        assert out.metadata.annotations[keys.ANN_OWNER] == "alice"

    def test_times_are_truncated(self) -> None:
        """Shutdown and pause times are written truncated to whole seconds."""
        out = modify_for_claim(
            make_sandbox(),
            options(
                shutdown_time=FRACTIONAL_NOW + timedelta(hours=1),
                pause_time=FRACTIONAL_NOW + timedelta(minutes=5),
                paused_retention=timedelta(minutes=55),
            ),
            NOW,
        )
        assert out.spec.shutdown_time == NOW + timedelta(hours=1)
        assert out.spec.pause_time == NOW + timedelta(minutes=5)
        assert out.metadata.annotations[keys.ANN_RESERVE_PAUSED_DURATION] == "55m0s"

    def test_forever_retention_annotation(self) -> None:
        """A forever paused retention is written as "forever"."""
        out = modify_for_claim(make_sandbox(), options(paused_retention=FOREVER), NOW)
        assert out.metadata.annotations[keys.ANN_RESERVE_PAUSED_DURATION] == "forever"

    def test_init_runtime_and_csi(self) -> None:
        """Runtime init persists the request and token; CSI persists its config JSON."""
        out = modify_for_claim(
            make_sandbox(),
            options(
                init_runtime=InitRuntimeRequest({"K": "v"}, "tok-1"),
                csi_mounts=[CSIMountConfig(pv_name="pv", mount_path="/data", read_only=True)],
            ),
            NOW,
        )
        ann = out.metadata.annotations
        assert ann[keys.ANN_INIT_RUNTIME_REQUEST] == '{"envVars":{"K":"v"},"accessToken":"tok-1"}'
        assert ann[keys.ANN_RUNTIME_ACCESS_TOKEN] == "tok-1"
        assert json.loads(ann[keys.ANN_CSI_VOLUME_CONFIG]) == [
            {"pvName": "pv", "mountPath": "/data", "readOnly": True}
        ]

    def test_inplace_image_changes_first_container_only(self) -> None:
        """An in-place image goes to the first container of the pod template."""
        template = pod_template()
        template["spec"]["containers"].append({"name": "side", "image": "busybox"})
        out = modify_for_claim(
            make_sandbox(template=template), options(inplace_image="python:3.13"), NOW
        )
        assert first_container(out)["image"] == "python:3.13"
        assert (out.spec.template or {})["spec"]["containers"][1]["image"] == "busybox"

    def test_inplace_cpu_only_where_already_set(self) -> None:
        """CPU requests and limits change only if the container already has them."""
        sbx = make_sandbox(template=pod_template(requests={"cpu": "1", "memory": "1Gi"}))
        out = modify_for_claim(sbx, options(cpu_request="2", cpu_limit="4"), NOW)
        resources = first_container(out)["resources"]
        assert resources == {"requests": {"cpu": "2", "memory": "1Gi"}}

    def test_inplace_cpu_adds_no_cpu_to_a_section_without_one(self) -> None:
        """A limits section with memory only gets no CPU limit: resizing cannot add one (that
        would change the pod's QoS class), even where the section itself exists."""
        template = pod_template(requests={"memory": "1Gi"}, limits={"memory": "2Gi"})
        out = modify_for_claim(
            make_sandbox(template=template), options(cpu_request="2", cpu_limit="4"), NOW
        )
        resources = first_container(out)["resources"]
        assert resources == {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}

    def test_inplace_without_inline_template_is_a_400(self) -> None:
        """An in-place update of a templateRef sandbox has no container to change: 400."""
        sbx = make_sandbox()
        sbx.spec.template = None
        with pytest.raises(BadRequestError, match="inplace_image"):
            modify_for_claim(sbx, options(inplace_image="python:3.13"), NOW)

    @pytest.mark.parametrize(
        ("names", "asked", "field"),
        [
            (E2B_INPLACE_NAMES, {"inplace_image": "python:3.13"}, KEY_IMAGE),
            (E2B_INPLACE_NAMES, {"cpu_limit": "2"}, KEY_CPU_LIMIT),
            (
                SANDBOXCLAIM_INPLACE_NAMES,
                {"cpu_request": "2", "cpu_limit": "2"},
                "spec.inplaceUpdate.resources.requests.cpu",
            ),
        ],
    )
    def test_inplace_refusal_names_the_field_the_request_gave(
        self, names: InplaceNames, asked: dict[str, str], field: str
    ) -> None:
        """The 400 names the E2B key or SandboxClaim field of the first change asked for."""
        sbx = make_sandbox()
        sbx.spec.template = None
        with pytest.raises(BadRequestError) as info:
            modify_for_claim(sbx, options(inplace_names=names, **asked), NOW)
        assert info.value.field == field
        assert str(info.value).startswith(f"{field}: in-place update needs")

    def test_check_inplace_target_refuses_only_what_modify_would(self) -> None:
        """The check alone raises the 400 the modification would, and only then."""
        bare = make_sandbox()
        bare.spec.template = None
        check_inplace_target(bare, options())  # nothing in place asked: nothing to refuse
        check_inplace_target(make_sandbox(template=pod_template()), options(cpu_limit="2"))
        asked = options(inplace_names=E2B_INPLACE_NAMES, cpu_limit="2")
        with pytest.raises(BadRequestError) as checked:
            check_inplace_target(bare, asked)
        with pytest.raises(BadRequestError) as modified:
            modify_for_claim(bare, asked, NOW)
        assert str(checked.value) == str(modified.value)
        assert checked.value.field == KEY_CPU_LIMIT

    def test_options_name_their_inplace_fields_as_their_path_does(self) -> None:
        """E2B options name the extension keys; options made directly, their own fields."""
        assert options().inplace_names == INPLACE_OPTION_NAMES
        assert INPLACE_OPTION_NAMES == ("inplace_image", "cpu_request", "cpu_limit")
        assert E2B_INPLACE_NAMES == (KEY_IMAGE, KEY_CPU_REQUEST, KEY_CPU_LIMIT)

    def test_template_ref_sandbox_claims_without_pod_labels(self) -> None:
        """A sandbox without an inline pod template is claimed; only its own metadata changes."""
        sbx = make_sandbox()
        sbx.spec.template = None
        out = modify_for_claim(sbx, options(labels={"x": "1"}), NOW)
        assert out.spec.template is None
        assert out.metadata.labels["x"] == "1"


class TestNewSandboxFromSandboxSet:
    """new_sandbox_from_sandboxset for the controller and for no-stock claims."""

    def test_pool_sandbox(self) -> None:
        """A pool sandbox has the pool labels, the revision and a controller ref to the set."""
        sbs = make_sandboxset(runtimes=["agent-runtime"])
        sbx = new_sandbox_from_sandboxset(sbs, for_claim=False)
        meta = sbx.metadata
        assert meta.name == "" and meta.generate_name == "demo-"
        assert meta.namespace == "default"
        assert meta.labels[keys.LABEL_SANDBOX_POOL] == "demo"
        assert meta.labels[keys.LABEL_SANDBOX_TEMPLATE] == "demo"
        assert meta.labels[keys.LABEL_SANDBOX_CLAIMED] == "false"
        assert meta.labels[keys.LABEL_TEMPLATE_HASH] == sandboxset_revision(sbs)
        (ref,) = meta.owner_references
        assert (ref.kind, ref.api_version, ref.name, ref.uid) == (
            "SandboxSet",
            keys.API_VERSION,
            "demo",
            SBS_UID,
        )
        assert ref.controller is True and ref.block_owner_deletion is True
        assert keys.ANN_SANDBOX_PRIORITY not in meta.annotations
        assert sbx.spec.runtimes is not None and sbx.spec.runtimes[0].name == "agent-runtime"
        assert sbx.spec.template == sbs.spec.template

    def test_explicit_revision(self) -> None:
        """The controller may pass the revision it computed."""
        sbx = new_sandbox_from_sandboxset(make_sandboxset(), for_claim=False, revision="r9")
        assert sbx.metadata.labels[keys.LABEL_TEMPLATE_HASH] == "r9"

    def test_no_stock_sandbox(self) -> None:
        """A no-stock sandbox has priority 100, no owner ref and no template hash."""
        sbx = new_sandbox_from_sandboxset(make_sandboxset(), for_claim=True)
        assert sbx.metadata.annotations[keys.ANN_SANDBOX_PRIORITY] == "100"
        assert sbx.metadata.owner_references == []
        assert keys.LABEL_TEMPLATE_HASH not in sbx.metadata.labels
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_POOL] == "demo"

    def test_template_ref_names_the_template_label(self) -> None:
        """With a templateRef the sandbox-template label is the referenced template's name."""
        sbx = new_sandbox_from_sandboxset(make_sandboxset(template_ref="tpl"), for_claim=False)
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE] == "tpl"
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_POOL] == "demo"
        assert sbx.spec.template_ref is not None and sbx.spec.template_ref.name == "tpl"

    def test_a_resolved_template_is_embedded_with_its_metadata(self) -> None:
        """The manager's create resolves the templateRef: a copy of the template, no reference."""
        resolved = pod_template()
        resolved["metadata"] = {"labels": {"team": "ml"}, "annotations": {"note": "x"}}
        sbs = make_sandboxset(template_ref="tpl")
        sbx = new_sandbox_from_sandboxset(sbs, for_claim=True, resolved=resolved)
        assert sbx.spec.template_ref is None
        assert sbx.spec.template == resolved and sbx.spec.template is not resolved
        assert sbx.metadata.labels["team"] == "ml"
        assert sbx.metadata.annotations["note"] == "x"
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE] == "tpl"
        # An inline set ignores it: its own template wins.
        inline = new_sandbox_from_sandboxset(make_sandboxset(), for_claim=True, resolved=resolved)
        assert "team" not in inline.metadata.labels

    def test_a_pool_sandbox_keeps_the_reference_and_takes_the_template_metadata(self) -> None:
        """The controller's pool sandbox of a templateRef set: metadata as a no-stock one's (§2).

        With ``keep_reference`` the sandbox keeps the reference (the Sandbox
        controller builds its pod from the template, §3) and takes the
        template's labels and annotations, internal keys stripped except the
        cleanup ones, exactly as the no-stock create does (§5.2).
        """
        resolved = pod_template()
        resolved["metadata"] = {
            "labels": {"team": "ml", keys.LABEL_SANDBOX_CLAIMED: "true"},
            "annotations": {keys.ANN_CLEANUP_ENABLED: "true", keys.ANN_LOCK: "x"},
        }
        sbs = make_sandboxset(template_ref="tpl")
        pool = new_sandbox_from_sandboxset(
            sbs, for_claim=False, resolved=resolved, keep_reference=True, share=True
        )
        cold = new_sandbox_from_sandboxset(sbs, for_claim=True, resolved=resolved)
        assert pool.spec.template is None
        assert pool.spec.template_ref is not None and pool.spec.template_ref.name == "tpl"
        assert pool.metadata.labels["team"] == "ml"
        assert pool.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "false"
        assert pool.metadata.annotations == {keys.ANN_CLEANUP_ENABLED: "true"}
        assert pool.metadata.labels[keys.LABEL_TEMPLATE_HASH] == sandboxset_revision(sbs)
        shared = {keys.LABEL_TEMPLATE_HASH}
        assert {k: v for k, v in pool.metadata.labels.items() if k not in shared} == (
            cold.metadata.labels
        )
        cold_ann = dict(cold.metadata.annotations)
        del cold_ann[keys.ANN_SANDBOX_PRIORITY]
        assert pool.metadata.annotations == cold_ann
        # The stored template's metadata is not shared with the sandbox.
        pool.metadata.labels["x"] = "1"
        assert "x" not in resolved["metadata"]["labels"]

    def test_keep_reference_needs_a_template_ref(self) -> None:
        """An inline set has nothing to keep: its own template wins, as without the flag."""
        resolved = pod_template()
        resolved["metadata"] = {"labels": {"team": "ml"}}
        sbx = new_sandbox_from_sandboxset(
            make_sandboxset(), for_claim=False, resolved=resolved, keep_reference=True
        )
        assert "team" not in sbx.metadata.labels and sbx.spec.template is not None

    def test_generate_name_is_truncated(self) -> None:
        """generateName is at most 58 characters."""
        sbx = new_sandbox_from_sandboxset(make_sandboxset("x" * 63), for_claim=False)
        assert sbx.metadata.generate_name == "x" * 58

    def test_internal_keys_from_template_are_stripped(self) -> None:
        """Inherited agents.kruise.io/* keys are dropped except the cleanup ones."""
        template = pod_template()
        template["metadata"] = {
            "labels": {"app": "demo", keys.LABEL_SANDBOX_CLAIMED: "true"},
            "annotations": {
                keys.ANN_LOCK: "sneaky",
                "agents.kruise.io/cleanup-enabled": "true",
                "agents.kruise.io/cleanup-retain-on-failure": "true",
                "team": "a",
            },
        }
        sbx = new_sandbox_from_sandboxset(make_sandboxset(template=template), for_claim=False)
        assert sbx.metadata.labels["app"] == "demo"
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "false"
        assert sbx.metadata.annotations == {
            "agents.kruise.io/cleanup-enabled": "true",
            "agents.kruise.io/cleanup-retain-on-failure": "true",
            "team": "a",
        }

    def test_set_is_not_mutated_and_copies_are_deep(self) -> None:
        """The SandboxSet is untouched, and changing the sandbox does not change the set."""
        sbs = make_sandboxset()
        before = sbs.model_dump()
        sbx = new_sandbox_from_sandboxset(sbs, for_claim=True)
        assert sbx.spec.template is not None
        sbx.spec.template["spec"]["containers"][0]["image"] = "changed"
        assert sbs.model_dump() == before

    def test_share_reuses_the_template_and_owner_reference(self) -> None:
        """share=True: pool sandboxes hold the set's template parts and one owner reference."""
        sbs = make_sandboxset()
        a = new_sandbox_from_sandboxset(sbs, for_claim=False, share=True)
        b = new_sandbox_from_sandboxset(sbs, for_claim=False, share=True)
        assert sbs.spec.template is not None and a.spec.template is not None
        assert a.spec.template["spec"] is sbs.spec.template["spec"]
        assert a.metadata.owner_references[0] is b.metadata.owner_references[0]
        copied = new_sandbox_from_sandboxset(sbs, for_claim=False)
        assert copied.spec.template is not None
        assert copied.spec.template["spec"] is not sbs.spec.template["spec"]
        assert copied.metadata.owner_references[0] is not a.metadata.owner_references[0]
        assert copied == a


class TestRevision:
    """sandboxset_revision."""

    def test_deterministic_hex(self) -> None:
        """The revision is a stable FNV-32a hex string."""
        rev = sandboxset_revision(make_sandboxset())
        assert rev == sandboxset_revision(make_sandboxset())
        assert all(c in "0123456789abcdef" for c in rev) and len(rev) <= 8

    def test_template_changes_revision_replicas_do_not(self) -> None:
        """Template, runtimes and persistent contents change the revision; replicas do not."""
        base = sandboxset_revision(make_sandboxset(replicas=1))
        assert sandboxset_revision(make_sandboxset(replicas=50)) == base
        assert sandboxset_revision(make_sandboxset(template=pod_template("python:3.13"))) != base
        assert sandboxset_revision(make_sandboxset(runtimes=["agent-runtime"])) != base

    def test_persistent_contents_and_pause_strategy_change_the_revision(self) -> None:
        """Every part a pool sandbox copies from the set counts: persistent contents and the
        pause strategy, as the template and runtimes do."""
        base = sandboxset_revision(make_sandboxset())
        contents = make_sandboxset()
        contents.spec.persistent_contents = ["memory"]
        assert sandboxset_revision(contents) != base
        hibernate = make_sandboxset()
        hibernate.spec.pause_strategy = PauseStrategy(type="Hibernate")
        assert sandboxset_revision(hibernate) not in (base, sandboxset_revision(contents))

    def test_key_order_does_not_matter(self) -> None:
        """The canonical JSON sorts keys, so dict order does not change the revision."""
        a = {
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "m", "image": "i"}]},
        }
        b = {
            "spec": {"containers": [{"image": "i", "name": "m"}]},
            "metadata": {"labels": {"b": "2", "a": "1"}},
        }
        assert sandboxset_revision(make_sandboxset(template=a)) == sandboxset_revision(
            make_sandboxset(template=b)
        )

    def test_a_pod_templates_revision_follows_its_content_not_its_key_order(self) -> None:
        """pod_template_revision: the same template in any key order gives one revision (8 hex
        digits, CRC-32 of the canonical JSON); another image another."""
        a = pod_template("python:3.12")
        b = dict(reversed(list(a.items())))
        rev = pod_template_revision(a)
        assert rev == pod_template_revision(b) and len(rev) == 8 and int(rev, 16) >= 0
        assert rev == format(
            zlib.crc32(json.dumps(a, sort_keys=True, separators=(",", ":")).encode()), "08x"
        )
        assert pod_template_revision(pod_template("python:3.13")) != rev

    def test_known_fnv_value(self) -> None:
        """FNV-32a is implemented with the standard offset and prime."""
        sbs = make_sandboxset(template_ref="t")
        # Canonical JSON: {"templateRef":{"name":"t"}}; FNV-1a 32 of those bytes.
        h = 0x811C9DC5
        for byte in b'{"templateRef":{"name":"t"}}':
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
        assert sandboxset_revision(sbs) == format(h, "x")


def test_needs_wait_ready() -> None:
    """Created sandboxes and in-place updates wait for readiness; plain pool claims do not."""
    assert not needs_wait_ready("update", options())
    assert needs_wait_ready("create", options())
    assert needs_wait_ready("speculate", options())  # a sandbox made for the claim, as "create"
    assert needs_wait_ready("update", options(inplace_image="python:3.13"))
    assert needs_wait_ready("update", options(cpu_limit="2"))


class TestFailedCleanup:
    """failed_sandbox_cleanup (clearFailedSandbox)."""

    @pytest.mark.parametrize("reserve", [None, timedelta(0)])
    def test_default_deletes(self, reserve: timedelta | None) -> None:
        """Without a reservation a failed sandbox is deleted."""
        assert failed_sandbox_cleanup(make_sandbox(owned=False), reserve, NOW) is None

    def test_positive_reserves_until(self) -> None:
        """A positive reservation labels the sandbox and sets shutdownTime = now + d."""
        sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(days=1))
        out = failed_sandbox_cleanup(sbx, timedelta(minutes=10), FRACTIONAL_NOW)
        assert out is not None
        assert out.metadata.labels[keys.LABEL_RESERVED_FAILED] == "true"
        assert out.spec.shutdown_time == NOW + timedelta(minutes=10)
        assert keys.LABEL_RESERVED_FAILED not in sbx.metadata.labels

    def test_a_reservation_past_the_calendar_ends_at_its_last_second(self) -> None:
        """Like every time the claim rules write, a reservation a clock near the year 9999
        cannot hold ends at :data:`LATEST` rather than failing the cleanup (OverflowError)."""
        near_the_end = datetime(9999, 6, 1, 12, 0, 0, 500_000, tzinfo=UTC)
        out = failed_sandbox_cleanup(make_sandbox(owned=False), timedelta(days=365), near_the_end)
        assert out is not None and out.spec.shutdown_time == LATEST

    def test_negative_reserves_forever(self) -> None:
        """A negative reservation labels the sandbox and keeps its shutdownTime."""
        sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(days=1))
        out = failed_sandbox_cleanup(sbx, RESERVE_FOREVER, NOW)
        assert out is not None
        assert out.metadata.labels[keys.LABEL_RESERVED_FAILED] == "true"
        assert out.spec.shutdown_time == NOW + timedelta(days=1)


def test_agent_runtime_detection() -> None:
    """A set has the agent runtime via runtimes or an init container named runtime."""
    assert sandboxset_has_agent_runtime(make_sandboxset(runtimes=["agent-runtime"]))
    assert not sandboxset_has_agent_runtime(make_sandboxset(runtimes=["csi"]))
    template = pod_template()
    template["spec"]["initContainers"] = [{"name": "runtime", "image": "rt"}]
    assert sandboxset_has_agent_runtime(make_sandboxset(template=template))
    assert not sandboxset_has_agent_runtime(make_sandboxset())
    # A templateRef set (#441): the init container is in the template it names.
    assert sandboxset_has_agent_runtime(make_sandboxset(template_ref="t"), template)
    assert not sandboxset_has_agent_runtime(make_sandboxset(template_ref="t"), pod_template())
    assert not sandboxset_has_agent_runtime(make_sandboxset(template_ref="t"))


label_maps = st.dictionaries(
    st.from_regex(r"\A[a-z][a-z0-9-]{0,8}[a-z0-9]\Z"),
    st.from_regex(r"\A[a-z0-9]{0,8}\Z"),
    max_size=4,
)


@given(labels=label_maps, annotations=label_maps, claim_name=st.none() | st.just("c"))
def test_modify_never_mutates_and_always_locks(
    labels: dict[str, str], annotations: dict[str, str], claim_name: str | None
) -> None:
    """For any user metadata the input is unchanged and the output is locked and claimed."""
    sbx = make_sandbox()
    before = sbx.model_dump()
    out = modify_for_claim(
        sbx, options(labels=labels, annotations=annotations, claim_name=claim_name), NOW
    )
    assert sbx.model_dump() == before
    assert out.metadata.annotations[keys.ANN_LOCK] == "lock-1"
    assert out.metadata.annotations[keys.ANN_OWNER] == "alice"
    assert is_claimed(out)
    for k, v in labels.items():
        assert pod_labels(out)[k] == v


def test_claim_annotations_are_what_the_lock_write_adds() -> None:
    """:func:`claim_annotations` is exactly what :func:`modify_for_claim` writes over the picked
    sandbox's own annotations, keys and values, in upstream's order."""
    opts = options(
        annotations={"team.example.com/a": "1"},
        labels={"l": "v"},
        paused_retention=timedelta(hours=1),
        init_runtime=InitRuntimeRequest(env_vars={"A": "1"}, access_token="tok"),
        csi_mounts=[CSIMountConfig(pv_name="pv", mount_path="/data")],
    )
    own = {"team.example.com/notes": "n"}
    claimed = modify_for_claim(make_sandbox(annotations=own), opts, NOW)
    written = claim_annotations(opts, NOW)
    assert claimed.metadata.annotations == {**own, **written}
    assert next(iter(written)) == "team.example.com/a"
    assert list(written)[-2:] == [keys.ANN_LOCK, keys.ANN_OWNER]


def test_claim_annotations_problem_asks_the_api_servers_rule_of_the_least_written() -> None:
    """Refused exactly when the lock write onto a sandbox with no annotations of its own would
    be (over 256 KiB): what the early check refuses, the commit would. A lock string not drawn
    yet counts as a UUID's."""
    init = InitRuntimeRequest(env_vars={}, access_token=UUID_STAND_IN)
    base = options(user="u" * 36, lock_string=UUID_STAND_IN, init_runtime=init)
    room = ANNOTATIONS_MAX - annotations_size(claim_annotations(base, NOW))
    env = '"V":""'  # what one more env var adds to the init request, beyond its value
    fits = options(
        user="u" * 36,
        lock_string="",
        init_runtime=InitRuntimeRequest({"V": "x" * (room - len(env))}, UUID_STAND_IN),
    )
    assert claim_annotations_problem(fits) is None
    claimed = modify_for_claim(make_sandbox(annotations={}), fits.with_lock(UUID_STAND_IN), NOW)
    assert annotations_size(claimed.metadata.annotations) == ANNOTATIONS_MAX
    over = options(
        user="u" * 36,
        lock_string="",
        init_runtime=InitRuntimeRequest({"V": "x" * (room - len(env) + 1)}, UUID_STAND_IN),
    )
    problem = claim_annotations_problem(over)
    assert problem is not None
    assert problem == (
        ANNOTATIONS_MAX + 1,
        f"may not be more than 256 KiB in total, got {ANNOTATIONS_MAX + 1} bytes",
    )


def test_the_size_check_counts_the_fixed_keys_even_with_nothing_else_to_spare() -> None:
    """With no token, lock or owner text to pad the bound, the manager's own keys (the claim
    time, the retention, the lock and owner keys) still count: near 256 KiB of JSON-escaped
    env (6 bytes a character) the early check refuses exactly what the exact count refuses."""
    # The exact count passes 256 KiB 48 characters under ANNOTATIONS_MAX // 6.
    for n in range(ANNOTATIONS_MAX // 6 - 60, ANNOTATIONS_MAX // 6 + 2, 3):
        opts = ClaimOptions(
            namespace="default",
            user="u",
            template="base",
            lock_string="",
            paused_retention=FOREVER,
            init_runtime=InitRuntimeRequest(env_vars={"K": "<" * n}, access_token=""),
        )
        written = claim_annotations(opts.with_lock(UUID_STAND_IN), datetime(2000, 1, 1, tzinfo=UTC))
        over = annotations_size(written) > ANNOTATIONS_MAX
        assert (claim_annotations_problem(opts) is not None) is over, n


def test_a_csi_config_too_big_for_the_annotations_is_refused() -> None:
    """The CSI config is stored as an annotation too: one whose JSON alone passes 256 KiB is
    refused, however little else the claim writes."""
    mount = CSIMountConfig(pv_name="pv", mount_path="/data", attributes={"k": "x" * 270_000})
    opts = options(csi_mounts=[mount], init_runtime=InitRuntimeRequest(access_token=UUID_STAND_IN))
    problem = claim_annotations_problem(opts)
    assert problem is not None and problem[0] > ANNOTATIONS_MAX


_ANY_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
    max_size=40,
)


# The long value's length: anywhere, or near where the claim passes 256 KiB at 6 bytes a
# character (Go's JSON escapes) or at 4 (UTF-8), where a wrong bound would show.
_LONG = st.one_of(
    st.integers(0, 70_000),
    st.integers(ANNOTATIONS_MAX // 6 - 2_000, ANNOTATIONS_MAX // 6 + 2_000),
    st.integers(ANNOTATIONS_MAX // 4 - 3_000, ANNOTATIONS_MAX // 4 + 1_000),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    annotations=st.dictionaries(_ANY_TEXT, _ANY_TEXT, max_size=5),
    env=st.dictionaries(_ANY_TEXT, _ANY_TEXT, max_size=5),
    long=_LONG,
    char=st.sampled_from(["a", "é", "𝄞", "<", "\x01", "\u2028"]),
    into_env=st.booleans(),
)
# Over 256 KiB only as JSON-escaped env (6 bytes a character), under it at 4 bytes a character.
@example(annotations={}, env={}, long=45_000, char="<", into_env=True)
@example(annotations={}, env={}, long=45_000, char="\u2028", into_env=True)
def test_the_size_check_skips_building_only_claims_that_surely_fit(
    annotations: dict[str, str], env: dict[str, str], long: int, char: str, into_env: bool
) -> None:
    """The early size check skips building the claim's annotations only when their bound (6
    bytes a character, keys written twice, the fixed keys) is under 256 KiB: what it skips,
    the exact count passes too, and it refuses exactly what the exact count refuses."""
    if into_env:
        env = {**env, "K": char * long}
    else:
        annotations = {**annotations, "k": char * long}
    opts = ClaimOptions(
        namespace="default",
        user="user",
        template="base",
        lock_string="",
        annotations=annotations,
        labels={"team": "a"},
        init_runtime=InitRuntimeRequest(env_vars=env, access_token=UUID_STAND_IN),
    )
    written = claim_annotations(opts.with_lock(UUID_STAND_IN), datetime(2000, 1, 1, tzinfo=UTC))
    size = annotations_size(written)
    event("over 256 KiB" if size > ANNOTATIONS_MAX else "within 256 KiB")
    expected = (
        None
        if size <= ANNOTATIONS_MAX
        else (size, f"may not be more than 256 KiB in total, got {size} bytes")
    )
    assert claim_annotations_problem(opts) == expected

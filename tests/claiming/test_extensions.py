"""Specification of E2B create metadata parsing: every extension key, valid and invalid (§5.5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.api.validation import ANNOTATIONS_MAX
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import (
    BAD_METADATA_PREFIX,
    KEY_SKIP_INIT_RUNTIME,
    KNOWN_KEYS,
    RESERVE_FOREVER,
    TOKEN_STAND_IN,
    CreateRequest,
    E2BCreateOptions,
    check_env_vars_request,
    create_spec,
    e2b_claim_options,
    env_vars_problem,
    is_dns1123_label,
    is_image_reference,
    is_label_value,
    is_qualified_name,
    parse_create_metadata,
    with_access_token,
)
from pytest_kruise_agents.claiming.modification import (
    ClaimOptions,
    InitRuntimeRequest,
    modify_for_claim,
)
from pytest_kruise_agents.claiming.timeouts import FOREVER

from .builders import NOW, make_sandbox

E = "e2b.agents.kruise.io/"


def parse(**entries: str) -> E2BCreateOptions:
    """Parse metadata given as short extension names (``claim_timeout_seconds=...``)."""
    return parse_create_metadata({E + k.replace("_", "-"): v for k, v in entries.items()})


def rejects(metadata: dict[str, str], key: str) -> BadRequestError:
    """Assert the metadata is a 400 whose message names ``key``; return the error."""
    with pytest.raises(BadRequestError) as info:
        parse_create_metadata(metadata)
    err = info.value
    assert err.code == 400
    assert key in err.message
    return err


def test_no_metadata_gives_defaults() -> None:
    """Without metadata every option has its default."""
    assert parse_create_metadata(None) == E2BCreateOptions()
    opts = parse_create_metadata({})
    assert opts.create_on_no_stock is True
    assert opts.reserve_failed_for is None
    assert opts.csi_mounts == [] and opts.annotations == {} and opts.labels == {}


def test_known_keys_all_use_the_e2b_prefix() -> None:
    """KNOWN_KEYS lists each e2b.agents.kruise.io/ key once."""
    assert all(k.startswith(E) for k in KNOWN_KEYS)
    assert len(set(KNOWN_KEYS)) == len(KNOWN_KEYS)
    for short in (
        "claim-timeout-seconds",
        "wait-ready-timeout-seconds",
        "create-on-no-stock",
        "skip-init-runtime",
        "never-timeout",
        "reserve-failed-sandbox",
        "reserve-failed-sandbox-for",
        "reserve-paused-sandbox-duration",
        "image",
        "cpu-request",
        "cpu-limit",
        "csi-volume-config",
        "csi-volume-name",
        "csi-mount-point",
        "csi-subpath",
        "return-sandbox-ip",
        "sandbox-name",
        "sandbox-generate-name",
    ):
        assert E + short in KNOWN_KEYS


def test_extension_keys_are_removed_from_annotations() -> None:
    """Extension keys never become annotations; other keys do."""
    opts = parse_create_metadata({E + "never-timeout": "true", "userId": "alice"})
    assert opts.annotations == {"userId": "alice"}


class TestTimeouts:
    """claim-timeout-seconds and wait-ready-timeout-seconds."""

    def test_claim_timeout(self) -> None:
        """A positive claim timeout is kept in seconds."""
        assert parse(claim_timeout_seconds="60").claim_timeout_seconds == 60

    @pytest.mark.parametrize("value", ["0", "-5"])
    def test_claim_timeout_non_positive_is_ignored(self, value: str) -> None:
        """A claim timeout <= 0 is ignored, not rejected."""
        assert parse(claim_timeout_seconds=value).claim_timeout_seconds is None

    def test_wait_ready_timeout(self) -> None:
        """The wait-ready timeout is kept in seconds."""
        assert parse(wait_ready_timeout_seconds="45").wait_ready_timeout_seconds == 45

    @pytest.mark.parametrize("key", ["claim-timeout-seconds", "wait-ready-timeout-seconds"])
    @pytest.mark.parametrize("value", ["abc", "1.5", "", " 5", "5s"])
    def test_non_integer_is_rejected(self, key: str, value: str) -> None:
        """A timeout that is not a plain integer is a 400 naming the key."""
        err = rejects({E + key: value}, E + key)
        assert err.message.startswith("Bad extension param: ")
        assert err.field == E + key

    @pytest.mark.parametrize("key", ["claim-timeout-seconds", "wait-ready-timeout-seconds"])
    def test_a_timeout_no_go_duration_holds_is_rejected(self, key: str) -> None:
        """Past 9223372036 s a Go ``time.Duration`` overflows (upstream's would wrap into a
        negative or arbitrary timeout): a 400 naming the key, a deliberate difference listed
        in docs/fidelity.md. The largest that fits (about 292 years) is kept."""
        kept = parse_create_metadata({E + key: "9223372036"})
        assert 9223372036 in (kept.claim_timeout_seconds, kept.wait_ready_timeout_seconds)
        err = rejects({E + key: "9999999999"}, E + key)
        assert err.message == (
            f"Bad extension param: {E + key}: 9999999999 seconds is out of range "
            "(at most 9223372036)"
        )


class TestBooleans:
    """create-on-no-stock, skip-init-runtime, never-timeout, return-sandbox-ip."""

    def test_create_on_no_stock_false_disables(self) -> None:
        """create-on-no-stock "false" turns no-stock creation off."""
        assert parse(create_on_no_stock="false").create_on_no_stock is False
        assert parse(create_on_no_stock="true").create_on_no_stock is True

    def test_flags(self) -> None:
        """The "true" flags switch their options on."""
        opts = parse(skip_init_runtime="true", never_timeout="true", return_sandbox_ip="true")
        assert opts.skip_init_runtime and opts.never_timeout and opts.return_sandbox_ip

    @pytest.mark.parametrize(
        ("value", "meaning"),
        [(v, True) for v in ("1", "t", "T", "TRUE", "true", "True")]
        + [(v, False) for v in ("0", "f", "F", "FALSE", "false", "False")],
    )
    def test_every_go_boolean_spelling_is_read(self, value: str, meaning: bool) -> None:
        """The flags are read with Go's ``strconv.ParseBool``: each of its spellings counts."""
        assert parse(never_timeout=value).never_timeout is meaning
        assert parse(create_on_no_stock=value).create_on_no_stock is meaning

    @pytest.mark.parametrize("value", ["yes", "tRUE", "on", " true", ""])
    def test_other_spellings_are_no_boolean(self, value: str) -> None:
        """What ``strconv.ParseBool`` refuses is a 400 naming the key."""
        rejects({E + "never-timeout": value}, E + "never-timeout")

    @pytest.mark.parametrize(
        "key", ["create-on-no-stock", "skip-init-runtime", "never-timeout", "return-sandbox-ip"]
    )
    def test_non_boolean_is_rejected(self, key: str) -> None:
        """A value that is not a boolean is a 400 naming the key."""
        rejects({E + key: "yes please"}, E + key)


class TestReserve:
    """reserve-failed-sandbox(-for) and reserve-paused-sandbox-duration."""

    def test_reserve_failed_bool_means_forever(self) -> None:
        """reserve-failed-sandbox "true" keeps failed sandboxes forever (negative duration)."""
        opts = parse(reserve_failed_sandbox="true")
        assert opts.reserve_failed_for == RESERVE_FOREVER
        assert opts.reserve_failed_for is not None and opts.reserve_failed_for < timedelta(0)
        assert parse(reserve_failed_sandbox="false").reserve_failed_for is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("never", None),
            ("forever", RESERVE_FOREVER),
            ("10m", timedelta(minutes=10)),
            ("0s", None),
            # Positive in Go, so it reserves (never rounded down to "delete").
            ("1ns", timedelta(microseconds=1)),
        ],
    )
    def test_reserve_failed_for(self, value: str, expected: timedelta | None) -> None:
        """reserve-failed-sandbox-for takes never, forever or a duration >= 0."""
        assert parse(reserve_failed_sandbox_for=value).reserve_failed_for == expected

    def test_reserve_failed_for_beats_the_bool(self) -> None:
        """The duration form takes precedence over the boolean."""
        opts = parse(reserve_failed_sandbox="true", reserve_failed_sandbox_for="never")
        assert opts.reserve_failed_for is None

    @pytest.mark.parametrize("value", ["-1s", "later", "10"])
    def test_reserve_failed_for_invalid(self, value: str) -> None:
        """A negative or malformed reserve duration is a 400."""
        rejects({E + "reserve-failed-sandbox-for": value}, E + "reserve-failed-sandbox-for")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("forever", FOREVER), ("30m", timedelta(minutes=30)), ("1ns", timedelta(microseconds=1))],
    )
    def test_reserve_paused_duration(self, value: str, expected: timedelta) -> None:
        """The paused retention is forever or a positive duration."""
        assert parse(reserve_paused_sandbox_duration=value).reserve_paused_duration == expected

    @pytest.mark.parametrize("value", ["0s", "-1h", "never", ""])
    def test_reserve_paused_duration_invalid(self, value: str) -> None:
        """A non-positive or malformed paused retention is a 400."""
        key = E + "reserve-paused-sandbox-duration"
        rejects({key: value}, key)


class TestInplace:
    """image, cpu-request, cpu-limit and the memory keys."""

    @pytest.mark.parametrize(
        "image",
        [
            "python:3.12",
            "nginx",
            "library/nginx:1.25-alpine",
            "registry.example.com:5000/team/app:v1.2.3",
            "ghcr.io/org/app@sha256:" + "a" * 64,
            "localhost/app_x__y:latest",
        ],
    )
    def test_valid_images(self, image: str) -> None:
        """Well-formed image references are accepted and kept."""
        assert parse(image=image).image == image
        assert parse(image=image).inplace_update

    @pytest.mark.parametrize(
        "image",
        ["", "UPPER:tag", "team/App", "app:", ":tag", "app@sha256:short", "a b", "app:-bad"],
    )
    def test_invalid_images(self, image: str) -> None:
        """Malformed image references are a 400 naming the image key."""
        rejects({E + "image": image}, E + "image")

    def test_cpu(self) -> None:
        """Positive CPU quantities are kept as given."""
        opts = parse(cpu_request="500m", cpu_limit="2")
        assert (opts.cpu_request, opts.cpu_limit) == ("500m", "2")

    @pytest.mark.parametrize("key", ["cpu-request", "cpu-limit"])
    @pytest.mark.parametrize("value", ["0", "-1", "lots", "0m"])
    def test_cpu_must_be_positive(self, key: str, value: str) -> None:
        """A zero, negative or malformed CPU quantity is a 400."""
        rejects({E + key: value}, E + key)

    @pytest.mark.parametrize("key", ["memory-request", "memory-limit"])
    def test_memory_resize_is_rejected(self, key: str) -> None:
        """Memory resize is not supported: 400."""
        err = rejects({E + key: "1Gi"}, E + key)
        assert "memory" in err.message


class TestCSI:
    """csi-volume-config, csi-volume-name/mount-point/subpath and volumeMounts."""

    def test_config_json(self) -> None:
        """A JSON list of CSI mount configs is parsed into models."""
        config = [{"pvName": "pv-1", "mountPath": "/data", "readOnly": True}]
        opts = parse(csi_volume_config=json.dumps(config))
        assert opts.csi_mounts == [
            CSIMountConfig(pv_name="pv-1", mount_path="/data", read_only=True)
        ]

    @pytest.mark.parametrize(
        "value",
        [
            "not json",
            '{"pvName": "x", "mountPath": "/d"}',
            '[{"pvName": "x"}]',
            '[{"pvName": "", "mountPath": "/d"}]',
            '[{"pvName": "x", "mountPath": "/d", "readOnly": "yes"}]',
        ],
    )
    def test_config_invalid(self, value: str) -> None:
        """Malformed or incomplete CSI config JSON is a 400 naming the key."""
        rejects({E + "csi-volume-config": value}, E + "csi-volume-config")

    def test_config_is_decoded_as_go_decodes_it(self) -> None:
        """Upstream's ``json.Unmarshal``: a key no field has is ignored, ``null`` is no mounts,
        and a string is no bool (``parse_csi_config`` has the rest)."""
        key = E + "csi-volume-config"
        extra = '[{"pvName": "x", "mountPath": "/d", "volumeHandle": "h"}]'
        assert parse_create_metadata({key: extra}).csi_mounts == [
            CSIMountConfig(pv_name="x", mount_path="/d")
        ]
        assert parse_create_metadata({key: "null"}).csi_mounts == []
        err = rejects({key: '[{"pvName": "x", "mountPath": "/d", "readOnly": "yes"}]'}, key)
        assert err.message == (
            f"Bad extension param: {key}: [0].readOnly: must be true or false, not a JSON string"
        )
        assert err.field == key

    def test_single_mount(self) -> None:
        """csi-volume-name with csi-mount-point (and subpath) make one mount."""
        opts = parse(csi_volume_name="pv-2", csi_mount_point="/mnt", csi_subpath="sub")
        assert opts.csi_mounts == [
            CSIMountConfig(pv_name="pv-2", mount_path="/mnt", sub_path="sub")
        ]

    def test_an_empty_subpath_is_no_subpath(self) -> None:
        """``csi-subpath: ""`` mounts the volume's root, as no subpath does (Go's omitempty
        string): the stored CSI config carries no ``subPath``."""
        opts = parse(csi_volume_name="pv-2", csi_mount_point="/mnt", csi_subpath="")
        assert opts.csi_mounts == [CSIMountConfig(pv_name="pv-2", mount_path="/mnt")]

    @pytest.mark.parametrize(
        ("given_", "missing"),
        [
            ({"csi-volume-name": "pv"}, "csi-mount-point"),
            ({"csi-mount-point": "/mnt"}, "csi-volume-name"),
            ({"csi-subpath": "s"}, "csi-volume-name"),
        ],
    )
    def test_single_mount_needs_both(self, given_: dict[str, str], missing: str) -> None:
        """csi-volume-name and csi-mount-point are required together."""
        rejects({E + k: v for k, v in given_.items()}, E + missing)

    def test_volume_mounts_become_csi_mounts(self) -> None:
        """Request-body volumeMounts map name to pvName and path to mountPath."""
        opts = parse_create_metadata(None, volume_mounts=[{"name": "pv-3", "path": "/w"}])
        assert opts.csi_mounts == [CSIMountConfig(pv_name="pv-3", mount_path="/w")]

    def test_volume_mounts_need_name_and_path(self) -> None:
        """A volume mount without a path is a 400 naming volumeMounts[i].path."""
        with pytest.raises(BadRequestError, match=r"volumeMounts\[0\]\.path"):
            parse_create_metadata(None, volume_mounts=[{"name": "pv"}])

    @pytest.mark.parametrize("part", ["name", "path"])
    def test_volume_mount_values_are_strings(self, part: str) -> None:
        """A Python caller's ``{"name": 5}`` is a 400 naming ``volumeMounts[0].name``, not a
        pydantic error about the mount model's own field (``pv_name``)."""
        mount: dict[str, object] = {"name": "pv", "path": "/w", part: 5}
        with pytest.raises(BadRequestError) as info:
            parse_create_metadata(None, volume_mounts=[mount])  # type: ignore[list-item]
        assert info.value.field == f"volumeMounts[0].{part}"
        assert info.value.message == f"volumeMounts[0].{part}: must be a string, got int 5"


class TestNames:
    """sandbox-name and sandbox-generate-name are for clones only."""

    @pytest.mark.parametrize("key", ["sandbox-name", "sandbox-generate-name"])
    def test_rejected_on_claim(self, key: str) -> None:
        """On a claim the clone-only name keys are a 400."""
        rejects({E + key: "my-sbx"}, E + key)

    def test_accepted_on_clone(self) -> None:
        """On a clone, DNS-label names are accepted (a generateName may end in '-')."""
        opts = parse_create_metadata(
            {E + "sandbox-name": "my-sbx", E + "sandbox-generate-name": "clone-"}, for_clone=True
        )
        assert (opts.sandbox_name, opts.sandbox_generate_name) == ("my-sbx", "clone-")
        with pytest.raises(BadRequestError):
            parse_create_metadata({E + "sandbox-name": "Not_A_Label"}, for_clone=True)


class TestLabelsAndOtherKeys:
    """label:<key> entries and plain metadata keys."""

    def test_label_entries_become_labels(self) -> None:
        """label:<key> entries are labels, not annotations."""
        opts = parse_create_metadata({"label:app": "my-app", "label:team.io/x": ""})
        assert opts.labels == {"app": "my-app", "team.io/x": ""}
        assert opts.annotations == {}

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("label:bad key", "v"),
            ("label:", "v"),
            ("label:-x", "v"),
            ("label:app", "has space"),
            ("label:app", "x" * 64),
            ("label:agents.kruise.io/owner", "me"),
            ("label:e2b.agents.kruise.io/x", "me"),
        ],
    )
    def test_bad_label_entries(self, key: str, value: str) -> None:
        """Invalid label keys or values, and reserved prefixes, are a 400 naming the entry."""
        err = rejects({key: value}, key)
        assert err.message.startswith("Bad extension param: ")

    @pytest.mark.parametrize(
        "key", ["agents.kruise.io/lock", "e2b.agents.kruise.io/unknown", "bad key", "x/"]
    )
    def test_bad_plain_keys(self, key: str) -> None:
        """Plain keys must be qualified names outside the reserved prefixes."""
        rejects({key: "v"}, key)

    @pytest.mark.parametrize("key", [E + "sandbox-resource", E + "sandbox-ip"])
    def test_response_only_keys_are_rejected(self, key: str) -> None:
        """Response-only keys cannot be sent."""
        rejects({key: "v"}, key)

    def test_plain_keys_become_annotations(self) -> None:
        """Qualified names outside the reserved prefixes become annotations, values untouched."""
        opts = parse_create_metadata({"userId": "alice", "example.com/note": "any value at all"})
        assert opts.annotations == {"userId": "alice", "example.com/note": "any value at all"}


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("a", True),
        ("app.kubernetes.io/name", True),
        ("A_b-c.d", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("", False),
        ("-app", False),
        ("app-", False),
        ("/app", False),
        ("Example.com/app", False),
        ("a/b/c", False),
        ("ex_ample.com/app", False),
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]) + "/app", True),  # a 253-char prefix
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]) + "/app", False),
    ],
)
def test_is_qualified_name(key: str, ok: bool) -> None:
    """Qualified names follow Kubernetes' [prefix/]name rules."""
    assert is_qualified_name(key) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("my-sbx", True),
        ("0", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("", False),
        ("My-sbx", False),
        ("-sbx", False),
        ("sbx-", False),
        ("a.b", False),
    ],
)
def test_is_dns1123_label(value: str, ok: bool) -> None:
    """An RFC 1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends."""
    assert is_dns1123_label(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("v1", True), ("a.b_c-d", True), ("x" * 64, False), ("-a", False), ("a b", False)],
)
def test_is_label_value(value: str, ok: bool) -> None:
    """Label values may be empty, at most 63 characters, alphanumeric at both ends."""
    assert is_label_value(value) is ok


def test_an_image_tag_is_ascii_only() -> None:
    """A tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]*``, as Go's ``\\w`` reads: no other letters."""
    assert is_image_reference("python:3.12_x")
    assert not is_image_reference("python:3.12é")


def test_is_image_reference_limits_name_length() -> None:
    """An image name longer than 255 characters is rejected."""
    assert not is_image_reference("a" * 256)
    assert is_image_reference("a" * 255)


@given(st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9]{0,10}\Z"), st.text(max_size=20), max_size=5))
def test_plain_qualified_keys_round_trip(metadata: dict[str, str]) -> None:
    """Any metadata of simple keys comes back unchanged as annotations."""
    opts = parse_create_metadata(metadata)
    assert opts.annotations == metadata
    assert opts.labels == {}


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=4))
def test_parsing_never_fails_other_than_bad_request(metadata: dict[str, str]) -> None:
    """Arbitrary metadata either parses or is a BadRequestError; nothing else escapes."""
    try:
        opts = parse_create_metadata(metadata)
    except BadRequestError as err:
        assert err.code == 400
    else:
        assert set(opts.annotations) <= set(metadata)


class TestE2BClaimOptions:
    """From a parsed E2B create request to the shared claim options."""

    def test_defaults(self) -> None:
        """A plain create: 300 s lifetime, runtime init with the token, unbounded waits."""
        opts = e2b_claim_options(
            parse_create_metadata({"userId": "u"}),
            namespace="team-a",
            user="key-1",
            template="demo",
            lock_string="L",
            access_token="tok",
            now=NOW,
            env_vars={"K": "v"},
        )
        assert (opts.namespace, opts.user, opts.template) == ("team-a", "key-1", "demo")
        assert opts.shutdown_time == NOW + timedelta(seconds=300)
        assert opts.pause_time is None
        assert opts.init_runtime == InitRuntimeRequest({"K": "v"}, "tok")
        assert opts.claim_timeout is None and opts.wait_ready_timeout is None
        assert opts.annotations == {"userId": "u"}
        assert opts.create_on_no_stock and opts.label_pod_with_sandbox_name

    def test_a_requests_timeouts_beat_the_managers_defaults(self) -> None:
        """``claim-timeout-seconds`` and ``wait-ready-timeout-seconds`` win over the defaults
        (v0.3.0's 60 s); a key not given, or not positive (ignored), takes the default."""

        def options(metadata: dict[str, str]) -> tuple[timedelta | None, timedelta | None]:
            opts = e2b_claim_options(
                parse_create_metadata(metadata),
                namespace="team-a",
                user="key-1",
                template="demo",
                lock_string="L",
                access_token="tok",
                now=NOW,
                default_claim_timeout_s=60,
                default_wait_ready_timeout_s=60,
            )
            return opts.claim_timeout, opts.wait_ready_timeout

        given_ = {E + "claim-timeout-seconds": "5", E + "wait-ready-timeout-seconds": "7"}
        assert options(given_) == (timedelta(seconds=5), timedelta(seconds=7))
        minute = timedelta(seconds=60)
        assert options({}) == (minute, minute)
        ignored = {E + "claim-timeout-seconds": "0", E + "wait-ready-timeout-seconds": "-1"}
        assert options(ignored) == (minute, minute)

    def test_extensions_flow_through(self) -> None:
        """Extension keys set timeouts, retention, reservation, in-place and skip-init."""
        opts = e2b_claim_options(
            parse_create_metadata(
                {
                    E + "claim-timeout-seconds": "60",
                    E + "wait-ready-timeout-seconds": "20",
                    E + "reserve-paused-sandbox-duration": "1h",
                    E + "reserve-failed-sandbox": "true",
                    E + "skip-init-runtime": "true",
                    E + "return-sandbox-ip": "true",
                    E + "create-on-no-stock": "false",
                    E + "image": "python:3.13",
                    "label:app": "x",
                }
            ),
            namespace="",
            user="key-1",
            template="demo",
            lock_string="L",
            access_token="tok",
            now=NOW,
            timeout_s=600,
            auto_pause=True,
            allow_internet_access=False,
        )
        assert opts.pause_time == NOW + timedelta(seconds=600)
        assert opts.shutdown_time == opts.pause_time + timedelta(hours=1)
        assert opts.paused_retention == timedelta(hours=1)
        assert opts.claim_timeout == timedelta(seconds=60)
        assert opts.wait_ready_timeout == timedelta(seconds=20)
        assert opts.reserve_failed_for == RESERVE_FOREVER
        assert opts.init_runtime is None
        assert opts.annotations[keys.ANN_RETURN_SANDBOX_IP] == "true"
        assert opts.create_on_no_stock is False
        assert opts.inplace_image == "python:3.13"
        assert opts.labels == {"app": "x", keys.LABEL_ALLOW_INTERNET_ACCESS: "false"}
        assert opts.pod_labels == {keys.LABEL_ALLOW_INTERNET_ACCESS: "false"}

    def test_never_timeout(self) -> None:
        """never-timeout sets neither time."""
        opts = e2b_claim_options(
            parse_create_metadata({E + "never-timeout": "true"}),
            namespace="n",
            user="u",
            template="t",
            lock_string="L",
            access_token="tok",
            now=NOW,
            auto_pause=True,
        )
        assert (opts.shutdown_time, opts.pause_time) == (None, None)

    def test_pod_is_labelled_with_the_picked_sandbox_name(self) -> None:
        """The E2B claim labels the pod template with the picked sandbox's name."""
        opts = e2b_claim_options(
            E2BCreateOptions(),
            namespace="default",
            user="u",
            template="demo",
            lock_string="L",
            access_token="tok",
            now=NOW,
        )
        out = modify_for_claim(make_sandbox("demo-xyz"), opts, NOW)
        assert (out.spec.template or {})["metadata"]["labels"][
            keys.LABEL_SANDBOX_NAME
        ] == "demo-xyz"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (is_label_value, "x\n"),
        (is_qualified_name, "team\n"),
        (is_qualified_name, "example.com\n/team"),
        (is_dns1123_label, "name\n"),
        (is_image_reference, "python:3.12\n"),
    ],
    ids=["label-value", "qualified-name", "key-prefix", "dns-label", "image"],
)
def test_a_trailing_newline_is_no_part_of_a_valid_value(
    check: Callable[[str], bool], value: str
) -> None:
    """Go's ``$`` ends the text; Python's also matches before a final newline: whole matches only."""
    assert check(value) is False
    assert check(value.replace("\n", "")) is True


def test_a_label_or_key_with_a_trailing_newline_is_a_bad_request() -> None:
    """``label:team: "x\\n"`` would make a label the API server refuses: 400, naming the key."""
    rejects({"label:team": "x\n"}, "label:team")
    rejects({"team\n": "x"}, "team")
    with pytest.raises(BadRequestError):
        parse(claim_timeout_seconds="30\n")


def test_metadata_over_the_annotation_limit_is_a_bad_request() -> None:
    """Stored as annotations, more than 256 KiB could never be written: a 400, not a sandbox
    whose own dump no longer loads."""
    big = "x" * (100 * 1024)
    fits = {"a": big, "b": big}
    assert parse_create_metadata(fits).annotations == fits
    with pytest.raises(BadRequestError) as info:
        parse_create_metadata({**fits, "c": big})
    assert info.value.code == 400
    assert "may not be more than 256 KiB in total" in info.value.message


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({1: "a"}, "got the key 1 (int)"),
        ({"a": 1}, "got the value 1 (int)"),
        ({None: None}, "got the key None (NoneType)"),
    ],
)
def test_metadata_that_is_not_text_names_the_part_that_is_not(
    metadata: dict[object, object], reason: str
) -> None:
    """The reason names the key or the value that is not a string, with its own type (a bad key
    once said "got str", the type of its good value)."""
    with pytest.raises(BadRequestError) as info:
        parse_create_metadata(metadata)  # type: ignore[arg-type]
    assert info.value.message.endswith(f"keys and values must be strings, {reason}")


def _claim_options(
    metadata: dict[str, str],
    mounts: list[dict[str, str]] | None = None,
    env_vars: dict[str, str] | None = None,
) -> ClaimOptions:
    """The options of a create checked before its token is drawn (as the manager makes them)."""
    return e2b_claim_options(
        parse_create_metadata(metadata, volume_mounts=mounts),
        namespace="default",
        user="u",
        template="t",
        lock_string="",
        access_token=TOKEN_STAND_IN,
        now=NOW,
        env_vars=env_vars,
    )


def test_csi_mounts_without_runtime_init_are_refused_as_the_request_names_them() -> None:
    """Upstream's ValidateAndInitClaimOptions refuses CSI mounts whose runtime init is skipped:
    the 400 names what the caller sent (the skip-init key, volumeMounts), not the claim
    options' internal fields (csi_mounts, init_runtime)."""
    with pytest.raises(BadRequestError) as info:
        _claim_options({KEY_SKIP_INIT_RUNTIME: "true"}, [{"name": "pv", "path": "/w"}])
    err = info.value
    assert (err.code, err.field) == (400, KEY_SKIP_INIT_RUNTIME)
    assert err.message.startswith(f"Bad extension param: {KEY_SKIP_INIT_RUNTIME}: CSI mounts")
    assert "volumeMounts" in err.message
    assert "csi_mounts" not in err.message and "init_runtime" not in err.message


def test_an_in_place_update_the_sandbox_cannot_take_is_refused_naming_its_key() -> None:
    """A sandbox with no inline pod template (a templateRef pool's) has no image to change:
    the 400 names the key the caller sent, not the claim options' field (inplace_image)."""
    sbx = make_sandbox()
    sbx.spec.template = None
    with pytest.raises(BadRequestError) as info:
        modify_for_claim(sbx, _claim_options({E + "image": "python:3.13"}), NOW)
    assert (info.value.code, info.value.field) == (400, E + "image")
    assert "inplace_image" not in info.value.message


def test_the_access_token_is_put_in_once_the_request_is_checked() -> None:
    """Options checked with the stand-in token take the drawn one, and nothing else changes."""
    opts = _claim_options({}, [{"name": "pv", "path": "/w"}], {"K": "v"})
    assert opts.init_runtime == InitRuntimeRequest({"K": "v"}, TOKEN_STAND_IN)
    drawn = with_access_token(opts, "tok-1")
    assert drawn.init_runtime == InitRuntimeRequest({"K": "v"}, "tok-1")
    assert replace(drawn, init_runtime=opts.init_runtime) == opts
    skipped = _claim_options({KEY_SKIP_INIT_RUNTIME: "true"})
    assert with_access_token(skipped, "tok-1") is skipped  # no runtime init, no token


def test_a_token_longer_than_a_uuid_is_checked_against_the_annotation_limit() -> None:
    """The env vars' size was checked with a UUID-long stand-in: a drawn token that is longer
    (a token_source of another shape) is checked again, with the same 400. (The manager's own
    keys, about 300 bytes with the init request around the env vars, count too.)"""
    full = _claim_options({}, env_vars={"K": "x" * (256 * 1024 - 400)})
    assert with_access_token(full, "u" * len(TOKEN_STAND_IN)).init_runtime is not None
    with pytest.raises(BadRequestError, match=r"^envVars: with the metadata"):
        with_access_token(full, "t" * 1000)


def _create(metadata: dict[str, str], env_vars: dict[str, str] | None = None) -> None:
    e2b_claim_options(
        parse_create_metadata(metadata),
        namespace="default",
        user="u" * 36,
        template="demo",
        lock_string="",
        access_token=TOKEN_STAND_IN,
        now=NOW,
        env_vars=env_vars,
    )


def test_metadata_that_fits_alone_but_not_with_the_managers_keys_is_a_bad_request() -> None:
    """The lock write stores the metadata with the manager's own keys (lock, owner,
    claim-timestamp, the init request, ...): when those take it past 256 KiB on any sandbox,
    the API server would refuse the write; refused first, as a 400 naming the metadata."""
    just_fits = {"big": "x" * (ANNOTATIONS_MAX - 3)}
    assert parse_create_metadata(just_fits).annotations == just_fits
    with pytest.raises(BadRequestError) as info:
        _create(just_fits)
    assert info.value.code == 400 and info.value.field == "metadata"
    assert info.value.message.startswith(
        BAD_METADATA_PREFIX + "with the sandbox-manager's own keys"
    )
    assert "may not be more than 256 KiB in total" in info.value.message
    _create({"big": "x" * (ANNOTATIONS_MAX - 1000)})


def test_env_vars_past_the_annotations_name_env_vars() -> None:
    """With env vars sent, the 400 names envVars: they are what went over."""
    with pytest.raises(BadRequestError) as info:
        _create({"big": "x" * 200_000}, {"V": "y" * 62_000})
    assert info.value.field == "envVars"
    assert info.value.message.startswith("envVars: with the metadata, the sandbox's annotations")


@pytest.mark.parametrize(
    ("env", "field", "message"),
    [
        (
            {"A=B": "1"},
            "envVars",
            "envVars: invalid variable name 'A=B': a name must not contain '='",
        ),
        ({"": "1"}, "envVars", "envVars: invalid variable name '': a name must not be empty"),
        ({"A": "x\0y"}, "envVars.A", "envVars.A: must not contain a NUL character"),
        ({"my-var": "\0"}, "envVars.my-var", "envVars.my-var: must not contain a NUL character"),
    ],
)
def test_env_vars_no_process_can_carry_are_a_bad_request(
    env: dict[str, str], field: str, message: str
) -> None:
    """Every create path refuses them with one 400 naming the field and the key, in the words
    of the E2B server's own check (``env_vars_problem`` is that check, for any field)."""
    problem = env_vars_problem("envVars", env)
    assert problem is not None and (problem.field, problem.message) == (field, message)
    checks: list[Callable[[], None]] = [
        lambda: check_env_vars_request(env),
        lambda: _create({}, env),
    ]
    for check in checks:
        with pytest.raises(BadRequestError) as info:
            check()
        assert (info.value.code, info.value.field, info.value.message) == (400, field, message)
    assert env_vars_problem("process.envs", {"A": "x=y", "B": ""}) is None


# -- the create request: one value, checked once -------------------------------------


def test_a_create_spec_holds_its_own_copies_of_the_callers_mappings() -> None:
    """A create may run after its caller changed what it passed (a SimPy process, a realtime
    server's pending call), and a burst shares one spec: the spec keeps copies."""
    metadata, env = {"team": "x"}, {"A": "1"}
    mounts = [{"name": "pv", "path": "/a"}]
    request = CreateRequest("base", metadata=metadata, env_vars=env, volume_mounts=mounts)
    spec = create_spec("default", "alice", request)
    metadata["team"] = env["A"] = mounts[0]["path"] = "changed"
    mounts.append({"name": "late", "path": "/late"})
    assert (spec.namespace, spec.user, spec.request.template) == ("default", "alice", "base")
    assert spec.request.metadata == {"team": "x"}
    assert spec.request.env_vars == {"A": "1"}
    assert spec.request.volume_mounts == ({"name": "pv", "path": "/a"},)


def test_a_create_spec_reads_mappings_not_given_as_empty() -> None:
    """``None`` for metadata or env vars (as a Python caller may write) is none given."""
    request = CreateRequest("base", metadata=None, env_vars=None)  # type: ignore[arg-type]
    spec = create_spec("", "alice", request)
    assert (spec.request.metadata, spec.request.env_vars, spec.request.volume_mounts) == (
        {},
        {},
        None,
    )


@pytest.mark.parametrize(
    ("namespace", "user", "request_", "field"),
    [
        (5, "", CreateRequest(5, auto_pause=1), "template"),  # type: ignore[arg-type]
        (5, "", CreateRequest("base", metadata=5), "namespace"),  # type: ignore[arg-type]
        ("ns", "", CreateRequest("base", metadata=[("a", "b")], timeout="x"), "metadata"),  # type: ignore[arg-type]
        ("ns", "", CreateRequest("base", timeout=30.0, env_vars=5), "timeout"),  # type: ignore[arg-type]
        ("ns", "", CreateRequest("base", env_vars=5), "user"),  # type: ignore[arg-type]
        ("ns", "u", CreateRequest("base", env_vars=5, auto_pause=1), "env_vars"),  # type: ignore[arg-type]
        (
            "ns",
            "u",
            CreateRequest("base", auto_pause=1, allow_internet_access=1),  # type: ignore[arg-type]
            "auto_pause",
        ),
        (
            "ns",
            "u",
            CreateRequest("base", allow_internet_access=1, volume_mounts=5),  # type: ignore[arg-type]
            "allow_internet_access",
        ),
        ("ns", "u", CreateRequest("base", volume_mounts=[{"path": 5}]), "volume_mounts[0].path"),  # type: ignore[dict-item]
    ],
)
def test_a_create_of_the_wrong_kind_names_its_first_wrong_field(
    namespace: str, user: str, request_: CreateRequest, field: str
) -> None:
    """Fields are checked in one order, whichever path the create came by (the cluster's
    keywords, the backend's request): the first wrong one is named, by its Python name."""
    with pytest.raises(InvalidError) as err:
        create_spec(namespace, user, request_)
    assert err.value.field == field


def test_the_backend_seams_create_request_is_the_claim_systems() -> None:
    """One type, re-exported by the Backend seam: nothing converts one into another."""
    from pytest_kruise_agents.backends import CreateRequest as SeamRequest

    assert SeamRequest is CreateRequest

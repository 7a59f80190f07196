"""The E2B wire models read what the SDK's generated client writes, and write what it reads."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from e2b.api.client.models import (
    ConnectSandbox as SdkConnect,
)
from e2b.api.client.models import (
    ConnectSandboxV2 as SdkConnectV2,
)
from e2b.api.client.models import (
    Error as SdkError,
)
from e2b.api.client.models import (
    ListedSandbox as SdkListed,
)
from e2b.api.client.models import (
    NewSandbox as SdkNewSandbox,
)
from e2b.api.client.models import (
    NewSandboxV2 as SdkNewSandboxV2,
)
from e2b.api.client.models import (
    Sandbox as SdkSandbox,
)
from e2b.api.client.models import (
    SandboxAutoResumeConfig,
    SandboxNetworkConfig,
    SandboxVolumeMount,
)
from e2b.api.client.models import (
    SandboxDetail as SdkDetail,
)
from e2b.api.client.models import (
    SandboxPauseRequest as SdkPause,
)
from e2b.api.client.models import (
    SandboxTimeoutRequest as SdkTimeout,
)
from e2b.api.client.models import (
    Template as SdkTemplate,
)
from e2b.api.client.models import (
    TemplateWithBuilds as SdkTemplateWithBuilds,
)
from pydantic import ValidationError

from pytest_kruise_agents.api.e2b import (
    ZERO_TIME,
    ConnectSandbox,
    ConnectSandboxV2,
    Error,
    ListedSandbox,
    NewSandbox,
    NewSandboxV2,
    SandboxDetail,
    SandboxLifecycle,
    SandboxPauseRequest,
    SandboxResponse,
    SandboxTimeoutRequest,
    TemplateBuild,
    TemplateDetail,
    TemplateInfo,
    replace_surrogates,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


# --------------------------------------------------------------------------- requests


def test_a_null_is_read_as_gos_decoder_reads_it() -> None:
    """A non-pointer field keeps its zero value, a map or list entry gets it; a pointer
    field's ``null`` is "not given". Nothing of the caller's mapping changes."""
    body: dict[str, Any] = {
        "templateID": None,
        "timeout": None,
        "autoPause": None,
        "metadata": {"a": None, "b": "x"},
        "envVars": {"A": None},
        "network": {"allowOut": [None], "httpsPorts": [None, 443]},
    }
    model = NewSandboxV2.model_validate(body)
    assert (model.template_id, model.timeout, model.auto_pause) == ("", None, False)
    assert (model.metadata, model.env_vars) == ({"a": "", "b": "x"}, {"A": ""})
    assert model.network is not None
    assert (model.network.allow_out, model.network.https_ports) == ([""], [0, 443])
    assert body["metadata"] == {"a": None, "b": "x"}
    assert SandboxTimeoutRequest.model_validate({"TIMEOUT": None}).timeout == 0


def test_the_published_request_schemas_allow_the_nulls_the_server_takes() -> None:
    """A bool field and the entries of a string map may be ``null``; a required integer
    (``/timeout``'s) may not, its zero being below its minimum."""
    create = NewSandboxV2.model_json_schema(by_alias=True)["properties"]
    assert {"type": "null"} in create["autoPause"]["anyOf"]
    assert create["autoPause"]["default"] is False
    maps = [b for b in create["metadata"]["anyOf"] if b.get("type") == "object"]
    assert {"type": "null"} in maps[0]["additionalProperties"]["anyOf"]
    timeout = SandboxTimeoutRequest.model_json_schema(by_alias=True)["properties"]["timeout"]
    assert "anyOf" not in timeout and timeout["type"] == "integer"


def test_a_v2_create_body_of_the_sdk_reads_with_every_field() -> None:
    sent = SdkNewSandboxV2(
        template_id="base",
        timeout=120,
        auto_pause=True,
        auto_pause_memory=False,
        auto_resume=SandboxAutoResumeConfig(enabled=True),
        allow_internet_access=False,
        network=SandboxNetworkConfig(allow_out=["1.1.1.1"], deny_out=["0.0.0.0/0"]),
        metadata={"k": "v"},
        env_vars={"A": "1"},
        volume_mounts=[SandboxVolumeMount(name="vol", path="/mnt")],
    ).to_dict()
    assert "allow_internet_access" in sent  # snake_case on the wire

    body = NewSandboxV2.model_validate(sent)

    assert body.template_id == "base"
    assert body.timeout == 120
    assert body.auto_pause is True
    assert body.auto_pause_memory is False
    assert body.auto_resume is not None and body.auto_resume.enabled
    assert body.allow_internet_access is False
    assert body.network is not None and body.network.deny_out == ["0.0.0.0/0"]
    assert body.metadata == {"k": "v"}
    assert body.env_vars == {"A": "1"}
    assert body.volume_mounts is not None and body.volume_mounts[0].path == "/mnt"


def test_an_omitted_timeout_is_none_so_the_server_default_applies() -> None:
    body = NewSandboxV2.model_validate({"templateID": "base", "metadata": {}, "envVars": {}})
    assert body.timeout is None
    assert body.auto_pause is False


def test_body_keys_match_the_fields_whatever_their_case_as_gos_decoder_matches_them() -> None:
    body = NewSandboxV2.model_validate(
        {
            "templateid": "base",
            "Timeout": 600,
            "MetaData": {"Team": "x"},
            "ENVVARS": {"a": "1"},
            "network": {"ALLOWOUT": ["1.1.1.1"]},
            "VolumeMounts": [{"NAME": "vol", "Path": "/mnt"}],
            "autoResume": {"Enabled": True},
        }
    )

    assert body.template_id == "base"
    assert body.timeout == 600
    assert body.metadata == {"Team": "x"}  # a map's keys are data: kept as sent
    assert body.env_vars == {"a": "1"}
    assert body.network is not None and body.network.allow_out == ["1.1.1.1"]
    assert body.volume_mounts is not None and body.volume_mounts[0].path == "/mnt"
    assert body.auto_resume is not None and body.auto_resume.enabled is True


@pytest.mark.parametrize(
    ("sent", "timeout"),
    [
        ('{"timeout": 100, "TIMEOUT": 600}', 600),
        ('{"TIMEOUT": 600, "timeout": 100}', 100),
        ('{"Timeout": 100, "tImEoUt": 600}', 600),
    ],
)
def test_a_key_written_twice_in_different_cases_keeps_its_last_value(
    sent: str, timeout: int
) -> None:
    """Go decodes the keys in order into the one field they both match: the last one stays."""
    assert SandboxTimeoutRequest.model_validate_json(sent).timeout == timeout
    assert ConnectSandboxV2.model_validate_json(sent).timeout == timeout


def test_a_key_matches_a_field_in_unicode_case_too() -> None:
    """Go upper-cases both sides, Unicode letters included: a dotless i (U+0131) is "I"."""
    body = NewSandboxV2.model_validate({"templateID": "base", "t\u0131meout": 600})
    assert body.timeout == 600


def test_a_v1_create_body_carries_secure() -> None:
    sent = SdkNewSandbox(template_id="base", timeout=300, secure=True).to_dict()
    body = NewSandbox.model_validate(sent)
    assert body.secure is True
    assert body.timeout == 300


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"templateID": 3}, "templateID"),
        ({"templateID": "base", "timeout": "300"}, "timeout"),
        ({"templateID": "base", "timeout": 1.5}, "timeout"),
        ({"templateID": "base", "metadata": {"k": 1}}, "metadata"),
        ({"templateID": "base", "autoPause": "yes"}, "autoPause"),
        ({"timeout": 30}, "templateID"),
    ],
)
def test_wrong_types_are_refused_as_go_would(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        NewSandboxV2.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_unknown_request_fields_are_ignored() -> None:
    body = NewSandboxV2.model_validate({"templateID": "base", "futureField": {"x": 1}})
    assert body.template_id == "base"


def test_connect_v1_needs_a_timeout_and_v2_does_not() -> None:
    assert ConnectSandbox.model_validate(SdkConnect(timeout=60).to_dict()).timeout == 60
    with pytest.raises(ValidationError):
        ConnectSandbox.model_validate({})
    assert ConnectSandboxV2.model_validate(SdkConnectV2().to_dict()).timeout == 300
    assert ConnectSandboxV2.model_validate({}).timeout is None


def test_timeout_and_pause_requests_read_the_sdk_bodies() -> None:
    assert SandboxTimeoutRequest.model_validate(SdkTimeout(timeout=0).to_dict()).timeout == 0
    pause = SandboxPauseRequest.model_validate(SdkPause(require_healthy_guest=True).to_dict())
    assert pause.require_healthy_guest is True


# --------------------------------------------------------------------------- responses


def test_the_create_response_parses_in_the_sdk_with_null_traffic_token() -> None:
    wire = SandboxResponse(
        template_id="base",
        sandbox_id="default--base-abc12",
        envd_version="0.6.13",
        envd_access_token="tok",
        domain=None,
        started_at=T0,
        end_at=T1,
        cpu_count=2,
        memory_mb=2048,
        disk_size_mb=0,
        metadata={"k": "v"},
        state="running",
    ).to_wire()

    assert wire["trafficAccessToken"] is None
    assert wire["domain"] is None
    assert wire["clientID"] == ""
    assert wire["startedAt"] == "2026-01-01T12:00:00Z"
    parsed = SdkSandbox.from_dict(wire)
    assert parsed.sandbox_id == "default--base-abc12"
    assert parsed.envd_access_token == "tok"
    assert parsed.envd_version == "0.6.13"


def test_an_empty_access_token_is_left_out() -> None:
    wire = SandboxResponse(template_id="t", sandbox_id="s", envd_version="0.6.13").to_wire()
    assert "envdAccessToken" not in wire
    assert "startedAt" not in wire


def test_listed_and_detail_parse_in_the_sdk() -> None:
    common: dict[str, Any] = {
        "template_id": "base",
        "sandbox_id": "default--base-abc12",
        "started_at": T0,
        "end_at": ZERO_TIME,
        "cpu_count": 1,
        "memory_mb": 512,
        "disk_size_mb": 0,
        "state": "paused",
        "envd_version": "0.6.13",
        "metadata": {"a": "b"},
    }
    listed = SdkListed.from_dict(ListedSandbox(**common).to_wire())
    assert listed.state.value == "paused"
    assert listed.end_at.year == 1  # Go's zero time: a never-timeout sandbox

    detail_wire = SandboxDetail(
        **common,
        envd_access_token="tok",
        domain="example.test",
        lifecycle=SandboxLifecycle(on_timeout="pause", auto_resume=False),
    ).to_wire()
    assert detail_wire["lifecycle"] == {"onTimeout": "pause", "autoResume": False}
    assert detail_wire["allowInternetAccess"] is None
    assert "trafficAccessToken" not in detail_wire  # E2B's SandboxDetail has none
    detail = SdkDetail.from_dict(detail_wire)
    assert detail.domain == "example.test"
    assert detail.lifecycle.on_timeout.value == "pause"  # type: ignore[union-attr]


def template_info() -> TemplateInfo:
    """The ``GET /templates`` entry of a pool named base."""
    return TemplateInfo(
        template_id="base",
        build_id="6f0b6a44-1f7e-5a0c-9a57-0d7c1c6b1a11",
        cpu_count=2,
        memory_mb=2048,
        disk_size_mb=0,
        aliases=["base"],
        names=["base"],
        created_at=T0,
        updated_at=T0,
        envd_version="0.6.13",
    )


def template_build(build_id: str) -> TemplateBuild:
    """The one build of :func:`template_info`'s pool."""
    return TemplateBuild(
        build_id=build_id,
        created_at=T0,
        updated_at=T0,
        cpu_count=2,
        memory_mb=2048,
        disk_size_mb=0,
        envd_version="0.6.13",
    )


def test_templates_parse_in_the_sdk() -> None:
    info = template_info()
    wire = info.to_wire()
    assert wire["createdBy"] is None and wire["lastSpawnedAt"] is None
    assert SdkTemplate.from_dict(wire).build_status.value == "ready"

    build = template_build(info.build_id)
    detail = TemplateDetail(**info.model_dump(), builds=[build]).to_wire()
    parsed = SdkTemplateWithBuilds.from_dict(detail)
    assert str(parsed.builds[0].build_id) == info.build_id


_NULLS_IN_ORDER = """
import json
from pytest_kruise_agents.api.e2b import SandboxDetail, SandboxResponse, TemplateInfo
for model in (SandboxResponse, SandboxDetail, TemplateInfo):
    print(list(dict.fromkeys(model.NULLABLE)))
"""


def test_null_fields_are_written_in_the_same_order_whatever_the_hash_seed() -> None:
    """The same run answers the same bytes: null keys do not follow the string hash seed
    (a set of them did: ``GET /templates`` differed between ``PYTHONHASHSEED`` 1 and 2)."""
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _NULLS_IN_ORDER],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    info = template_info()
    assert list(info.to_wire())[-2:] == ["createdBy", "lastSpawnedAt"]


def test_the_error_body_parses_in_the_sdk_and_keeps_extras() -> None:
    wire = Error(code=400, message="timeout: bad", request_id="r1", field="timeout").to_wire()
    assert wire == {"code": 400, "message": "timeout: bad", "request_id": "r1", "field": "timeout"}
    parsed = SdkError.from_dict(wire)
    assert parsed.code == 400 and parsed.message == "timeout: bad"


def test_allow_internet_access_is_read_in_snake_case_only() -> None:
    """Its JSON name is ``allow_internet_access`` (in any case, as Go matches keys); the
    camelCase spelling matches no field and is ignored, as Go's decoder ignores it."""
    assert (
        NewSandboxV2.model_validate(
            {"templateID": "b", "ALLOW_INTERNET_ACCESS": False}
        ).allow_internet_access
        is False
    )
    assert (
        NewSandboxV2.model_validate(
            {"templateID": "b", "allowInternetAccess": False}
        ).allow_internet_access
        is None
    )


def test_a_letter_whose_upper_case_is_two_letters_matches_no_field() -> None:
    """``ß`` has no simple upper case (Python's ``upper()`` makes ``SS``, Go keeps ``ß``):
    ``allow_internet_acceß`` is no spelling of ``allow_internet_access``."""
    body = NewSandboxV2.model_validate({"templateID": "b", "allow_internet_acce\u00df": True})
    assert body.allow_internet_access is None


def test_lone_surrogates_in_keys_and_values_read_as_replacement_characters() -> None:
    """As Go's decoder reads them; a value with nothing to replace is the same object."""
    assert replace_surrogates({"\ud800": 1, "k": ["\udc00x"]}) == {
        "\ufffd": 1,
        "k": ["\ufffdx"],
    }
    assert replace_surrogates({"\udbff": 1}) == {"\ufffd": 1}  # a key alone
    clean = {"k": ["v"], "n": 1}
    assert replace_surrogates(clean) is clean
    assert replace_surrogates("\ud83d\ude00") == "\U0001f600"  # a pair is one character
    body = NewSandboxV2.model_validate({"templateID": "b", "metadata": {"\ud800k": "v\udfff"}})
    assert body.metadata == {"\ufffdk": "v\ufffd"}


def test_a_template_entry_is_public_with_one_ready_build_never_spawned() -> None:
    """Reference §6.4: ``public: true``; a SandboxSet is one build, always ready."""
    wire = template_info().to_wire()
    assert (wire["public"], wire["buildCount"], wire["spawnCount"]) == (True, 1, 0)
    assert wire["buildStatus"] == "ready"
    build = template_build(template_info().build_id)
    assert build.to_wire()["status"] == "ready"

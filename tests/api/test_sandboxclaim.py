"""SandboxClaim: what it must hold for the sandboxes it claims to stay valid objects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pytest_kruise_agents.api import InvalidError, SandboxClaim, load_manifest


def claim(name: str = "c", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": name},
        "spec": {"templateName": "base", **spec},
    }


def problem(doc: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(InvalidError) as info:
        load_manifest(doc)
    return info.value.field, info.value.reason


def test_a_name_longer_than_a_label_value_is_refused() -> None:
    """Each claimed sandbox carries the claim's name as its ``claim-name`` label (at most 63).

    A deliberate difference: upstream accepts the claim and every attempt to
    claim a sandbox then fails at the API server.
    """
    name = "claim-" + "x" * 70
    field, reason = problem(claim(name))
    assert field == f"SandboxClaim/{name} metadata.name"
    assert "at most 63 characters" in reason and "claim-name" in reason
    assert load_manifest(claim("c" * 63)).metadata.name == "c" * 63


@pytest.mark.parametrize(
    ("spec", "field", "why"),
    [
        ({"labels": {"team": "search team"}}, "spec.labels.team", "invalid value 'search team'"),
        ({"labels": {"k": "x" * 64}}, "spec.labels.k", "at most 63 characters"),
        ({"labels": {"bad key": "x"}}, "spec.labels[bad key]", "invalid key 'bad key'"),
        ({"annotations": {"not/a/key": "1"}}, "spec.annotations[not/a/key]", "one '/'"),
        ({"annotations": {"big": "x" * 300_000}}, "spec.annotations", "256 KiB"),
    ],
)
def test_labels_and_annotations_must_make_valid_sandbox_metadata(
    spec: dict[str, Any], field: str, why: str
) -> None:
    """They are written onto each claimed sandbox, so they follow the metadata rules."""
    where, reason = problem(claim(**spec))
    assert where == f"SandboxClaim/c {field}"
    assert why in reason


def test_valid_labels_and_free_text_annotations_load() -> None:
    """Empty label values and annotation values of any text are fine."""
    loaded = load_manifest(
        claim(labels={"example.com/team": "", "app": "v1"}, annotations={"note": "free text!"})
    )
    assert isinstance(loaded, SandboxClaim)
    assert loaded.spec.annotations == {"note": "free text!"}


def test_python_built_claims_are_not_checked() -> None:
    """As all metadata rules: they are the API server's checks of what it is sent."""
    built = SandboxClaim.model_validate(
        {"metadata": {"name": "c" * 70}, "spec": {"templateName": "b", "labels": {"a b": "c"}}}
    )
    assert built.spec.labels == {"a b": "c"}


@pytest.mark.parametrize(("cpu", "text"), [(1, "1"), (0.5, "0.5"), ("500m", "500m")])
def test_inplace_update_quantities_may_be_numbers(cpu: Any, text: str) -> None:
    """``cpu: 1`` is a quantity, as in a pod template: kept as its text."""
    loaded = load_manifest(claim(inplaceUpdate={"resources": {"requests": {"cpu": cpu}}}))
    assert isinstance(loaded, SandboxClaim)
    assert loaded.spec.inplace_update is not None
    assert loaded.spec.inplace_update.resources is not None
    assert loaded.spec.inplace_update.resources.requests == {"cpu": text}


@pytest.mark.parametrize(
    ("cpu", "why"), [("abc", "invalid quantity 'abc'"), (True, "must be a string, got the boolean")]
)
def test_inplace_update_quantities_must_parse(cpu: Any, why: str) -> None:
    """A quantity that does not parse is refused at apply, not at every claim attempt."""
    where, reason = problem(claim(inplaceUpdate={"resources": {"limits": {"cpu": cpu}}}))
    assert where == "SandboxClaim/c spec.inplaceUpdate.resources.limits.cpu"
    assert why in reason


@pytest.mark.parametrize(
    ("resources", "field", "name"),
    [
        ({"requests": {"cpu": "1", "memory": "1500Mi"}}, "requests.memory", "memory"),
        ({"limits": {"memory": "3Gi"}}, "limits.memory", "memory"),
        (
            {"requests": {"ephemeral-storage": "1Gi"}},
            "requests[ephemeral-storage]",
            "ephemeral-storage",
        ),
        ({"limits": {"nvidia.com/gpu": "1"}}, "limits[nvidia.com/gpu]", "nvidia.com/gpu"),
    ],
)
def test_inplace_update_resizes_cpu_only(resources: dict[str, Any], field: str, name: str) -> None:
    """Only CPU is resized in place: another resource is refused naming it, as the E2B path's
    ``memory-request`` is (400), rather than dropped at every claim."""
    where, reason = problem(claim(inplaceUpdate={"resources": resources}))
    assert where == f"SandboxClaim/c spec.inplaceUpdate.resources.{field}"
    assert reason == f"{name} resize is not supported, only cpu"
    cpu: Any = load_manifest(claim(inplaceUpdate={"resources": {"limits": {"cpu": "2"}}}))
    assert cpu.spec.inplace_update.resources.limits == {"cpu": "2"}


@pytest.mark.parametrize("part", ["requests", "limits"])
@pytest.mark.parametrize("cpu", ["0", "-1", "0m", -2])
def test_an_inplace_cpu_of_zero_or_less_is_refused_at_apply(part: str, cpu: Any) -> None:
    """Every claim attempt would refuse it (as the E2B path's ``cpu-request`` is a 400): refused
    at apply, naming the field, rather than timing the claim out with no word of why."""
    where, reason = problem(claim(inplaceUpdate={"resources": {part: {"cpu": cpu}}}))
    assert where == f"SandboxClaim/c spec.inplaceUpdate.resources.{part}.cpu"
    assert reason == f"must be greater than 0, got {str(cpu)!r}"


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("", "must not be empty"),
        (" python:3.13", "must not have leading or trailing whitespace"),
        ("python:3.13\n", "must not have leading or trailing whitespace"),
    ],
)
def test_an_inplace_image_must_be_one_a_pod_can_have(image: str, why: str) -> None:
    """It is written into each claimed sandbox's pod template, which is checked as a pool's."""
    field, reason = problem(claim(inplaceUpdate={"image": image}))
    assert field == "SandboxClaim/c spec.inplaceUpdate.image"
    assert reason.startswith(why)
    loaded: Any = load_manifest(claim(inplaceUpdate={"image": "python:3.13"}))
    assert loaded.spec.inplace_update.image == "python:3.13"


@pytest.mark.parametrize(
    ("env", "field", "reason"),
    [
        ({"A=B": "1"}, "spec.envVars", "invalid variable name 'A=B': a name must not contain '='"),
        ({"": "1"}, "spec.envVars", "invalid variable name '': a name must not be empty"),
        ({"A\0": "1"}, "spec.envVars", "a name must not contain a NUL character"),
        ({"A": "x\0y"}, "spec.envVars.A", "must not contain a NUL character"),
    ],
)
def test_env_vars_must_be_ones_a_process_can_carry(
    env: dict[str, str], field: str, reason: str
) -> None:
    """Passed to each claimed sandbox's runtime for its commands: a name with '=' (read back as
    another name), an empty one or a NUL anywhere would fail every command the sandbox runs.
    The rule and the words of an E2B create's envVars (a deliberate difference: upstream has
    no SandboxClaim webhook)."""
    got_field, got_reason = problem(claim(envVars=env))
    assert got_field == f"SandboxClaim/c {field}"
    assert got_reason.endswith(reason)
    assert load_manifest(claim(envVars={"A": "", "B": "x=y", "C": "\n\t é"}))


def test_env_vars_size_is_not_the_models_rule() -> None:
    """How much env vars and annotations a claimed sandbox can store is the claim system's rule
    (``claiming.sandboxclaim.sandboxclaim_annotations_problem``, checked when the claim is
    applied to a cluster), not the CRD's: the model alone takes them."""
    big = {"BIG": "x" * 200_000, "B2": "y" * 70_000}
    loaded: Any = load_manifest(claim(envVars=big))
    assert loaded.spec.env_vars == big


def test_csi_mounts_with_the_runtime_init_skipped_are_refused_at_apply() -> None:
    """The runtime's ``/init`` makes the CSI mounts: with ``skipInitRuntime: true`` every claim
    attempt would refuse them (``ValidateAndInitClaimOptions``), whatever the pool. Refused at
    apply, naming both fields, as the E2B path answers ``skip-init-runtime`` with CSI mounts
    400 (a deliberate difference: upstream has no SandboxClaim webhook)."""
    mounts = [{"pvName": "pv1", "mountPath": "/data"}]
    field, reason = problem(claim(skipInitRuntime=True, dynamicVolumesMount=mounts))
    assert field == "SandboxClaim/c spec.dynamicVolumesMount"
    assert reason == (
        "CSI mounts are made by the runtime init, which spec.skipInitRuntime: true skips"
    )
    assert load_manifest(claim(dynamicVolumesMount=mounts))
    assert load_manifest(claim(skipInitRuntime=True, dynamicVolumesMount=[]))


def test_a_claim_that_states_only_its_template_gets_the_crds_defaults() -> None:
    """Reference §1.5: replicas 1, claimTimeout 1m, ttlAfterCompleted 60m, waitReadyTimeout 30s,
    createOnNoStock true, reserveFailedSandbox and skipInitRuntime false; its dump states them."""
    loaded = load_manifest(claim())
    assert isinstance(loaded, SandboxClaim)
    spec = loaded.spec
    assert spec.replicas == 1
    assert spec.claim_timeout == timedelta(minutes=1)
    assert spec.ttl_after_completed == timedelta(minutes=60)
    assert spec.wait_ready_timeout == timedelta(seconds=30)
    assert spec.create_on_no_stock is True
    assert spec.reserve_failed_sandbox is False
    assert spec.skip_init_runtime is False
    assert loaded.to_dict()["spec"] == {
        "templateName": "base",
        "replicas": 1,
        "claimTimeout": "1m0s",
        "ttlAfterCompleted": "1h0m0s",
        "waitReadyTimeout": "30s",
        "createOnNoStock": True,
        "reserveFailedSandbox": False,
        "skipInitRuntime": False,
    }


@pytest.mark.parametrize("field", ["claimTimeout", "waitReadyTimeout"])
def test_the_claim_timeouts_are_at_least_one_second(field: str) -> None:
    """The CRD's CEL rule (>= 1s) on each: 1s loads, 999ms is refused naming the field."""
    loaded: Any = load_manifest(claim(**{field: "1s"}))
    assert loaded.spec.model_dump(by_alias=True)[field] == timedelta(seconds=1)
    assert problem(claim(**{field: "999ms"})) == (
        f"SandboxClaim/c spec.{field}",
        "must be at least 1s",
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"templateName": ""}, "spec.templateName"),
        (
            {"dynamicVolumesMount": [{"pvName": "", "mountPath": "/d"}]},
            "spec.dynamicVolumesMount[0].pvName",
        ),
    ],
)
def test_a_required_name_must_not_be_empty(spec: dict[str, Any], field: str) -> None:
    """``templateName`` names the pool and ``pvName`` the volume: empty, they name nothing."""
    assert problem(claim(**spec)) == (f"SandboxClaim/c {field}", "must not be empty")


def test_an_inplace_quantity_is_read_without_surrounding_blanks() -> None:
    """``Quantity.UnmarshalJSON`` trims blanks before it parses: ``" 500m "`` is 500m."""
    resources = {"requests": {"cpu": " 500m "}, "limits": {"cpu": "\t1 "}}
    loaded: Any = load_manifest(claim(inplaceUpdate={"resources": resources}))
    assert loaded.spec.inplace_update.resources.requests == {"cpu": "500m"}
    assert loaded.spec.inplace_update.resources.limits == {"cpu": "1"}

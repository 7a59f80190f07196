"""The pod helpers: first-container CPU, QoS class, the API server's resize rules, what a pod
asks of a node, image references as the container runtime reads them, and container statuses."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import dump, load_manifests
from pytest_kruise_agents.api.pod import (
    Pod,
    PodStatus,
    container_resources,
    default_requests,
    first_container_cpu,
    first_sync_statuses,
    image_pull_policy,
    normalize_image,
    pod_requests,
    pod_spec_change_problem,
    pod_update_error,
    qos_class,
    set_first_container_cpu,
    validate_pod_spec,
    validate_pod_template,
)
from pytest_kruise_agents.api.problems import format_path
from pytest_kruise_agents.api.validation import FieldProblem


def spec(
    requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A pod spec with one container and the given resources."""
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    container: dict[str, Any] = {"name": "main", "image": "img:1"}
    if resources:
        container["resources"] = resources
    return {"containers": [container]}


def test_first_container_cpu_reads_the_values_as_written() -> None:
    """Request and limit of the first container, None where unset; other containers do not count."""
    s = spec({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1"})
    s["containers"].append({"name": "side", "image": "x", "resources": {"limits": {"cpu": "9"}}})
    assert first_container_cpu({"spec": s}) == ("500m", "1")
    assert first_container_cpu({"spec": spec({"memory": "1Gi"})}) == (None, None)
    assert first_container_cpu(None) == (None, None)


def test_set_first_container_cpu_changes_only_what_is_given() -> None:
    """A None leaves that value alone; memory and other keys stay."""
    t = {"spec": spec({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})}
    set_first_container_cpu(t, "750m", None)
    assert t["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "750m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


@pytest.mark.parametrize(
    ("requests", "limits", "qos"),
    [
        (None, None, "BestEffort"),
        ({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}, "Guaranteed"),
        (None, {"cpu": "1", "memory": "1Gi"}, "Guaranteed"),  # requests default to limits
        ({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"}, "Guaranteed"),
        ({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}, "Burstable"),
        ({"cpu": "1"}, {"cpu": "1"}, "Burstable"),  # no memory limit
        ({"cpu": "100m"}, None, "Burstable"),
    ],
)
def test_qos_class_follows_kubernetes(
    requests: dict[str, str] | None, limits: dict[str, str] | None, qos: str
) -> None:
    """BestEffort with nothing set; Guaranteed when every limit is set and equals its request."""
    assert qos_class({"spec": spec(requests, limits)}) == qos


def test_a_resize_keeping_the_qos_class_is_allowed() -> None:
    """Guaranteed to Guaranteed (both CPU values move), Burstable to Burstable."""
    g = {"cpu": "1", "memory": "1Gi"}
    g2 = {"cpu": "2", "memory": "1Gi"}
    assert pod_update_error(spec(g, g), spec(g2, g2)) is None
    assert pod_update_error(spec({"cpu": "1"}), spec({"cpu": "3"})) is None


def test_a_resize_changing_the_qos_class_is_refused() -> None:
    """Raising only the limit of a Guaranteed pod makes it Burstable: refused, saying why."""
    g = {"cpu": "1", "memory": "1Gi"}
    why = pod_update_error(spec(g, g), spec(g, {"cpu": "2", "memory": "1Gi"}))
    assert why == 'spec: Invalid value: "Burstable": Pod QoS is immutable (was Guaranteed)'


def test_a_request_above_its_limit_is_refused() -> None:
    """Named by container and resource, with both values."""
    why = pod_update_error(spec({"cpu": "1"}, {"cpu": "1"}), spec({"cpu": "2"}, {"cpu": "1"}))
    assert why == (
        'spec.containers[0].resources.requests: Invalid value: "2": '
        "must be less than or equal to cpu limit of 1"
    )


def test_a_pod_template_with_bad_resources_is_refused() -> None:
    """A quantity that does not parse, a request above its limit, a resources list: each named."""
    with pytest.raises(ValueError, match=r"containers\[0\]\.resources\.requests\.cpu: "):
        validate_pod_template({"spec": spec({"cpu": "lots"})})
    with pytest.raises(ValueError, match=r"must be less than or equal to memory limit of 1Gi"):
        validate_pod_template({"spec": spec({"memory": "2Gi"}, {"memory": "1Gi"})})
    bad = spec()
    bad["containers"][0]["resources"] = ["cpu"]
    with pytest.raises(ValueError, match=r"containers\[0\]\.resources: must be a mapping"):
        validate_pod_template({"spec": bad})
    validate_pod_template({"spec": spec({"cpu": "500m"}, {"cpu": 1})})


def test_limits_without_requests_default_the_requests() -> None:
    """As the API server defaults a pod: the request of a limited resource is its limit."""
    original = spec({"memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})
    snapshot = repr(original)
    out = default_requests(original)
    assert out["containers"][0]["resources"]["requests"] == {"memory": "1Gi", "cpu": "2"}
    assert repr(original) == snapshot  # copied, not changed: a template may share the spec
    assert qos_class({"spec": out}) == "Burstable"


def test_a_spec_with_nothing_to_default_is_returned_as_it_is() -> None:
    """No copy when every limit has its request, or nothing is limited."""
    for s in (spec({"cpu": "1"}, {"cpu": "1"}), spec({"cpu": "1"}), spec()):
        assert default_requests(s) is s


def problem_of(template: dict[str, Any]) -> tuple[str, str]:
    """The (path, reason) of the FieldProblem a template raises."""
    with pytest.raises(FieldProblem) as info:
        validate_pod_template(template)
    return format_path(info.value.loc), info.value.reason


@pytest.mark.parametrize("part", ["requests", "limits"])
@pytest.mark.parametrize(("name", "value"), [("cpu", "-4"), ("memory", "-1Gi"), ("cpu", -1)])
def test_a_negative_quantity_is_refused(part: str, name: str, value: Any) -> None:
    """A negative request would let the scheduler overcommit a node: the API server refuses it."""
    template = {"spec": spec(**{part: {name: value}})}
    assert problem_of(template) == (
        f"spec.containers[0].resources.{part}.{name}",
        f"must be greater than or equal to 0, got {value!r}",
    )


def test_every_resource_quantity_must_parse() -> None:
    """Not only CPU and memory: an extended resource is a quantity too."""
    template = {"spec": spec({"example.com/gpu": "many"})}
    path, reason = problem_of(template)
    assert path == "spec.containers[0].resources.requests[example.com/gpu]"
    assert reason.startswith("invalid quantity 'many'")
    validate_pod_template(
        {"spec": spec({"example.com/gpu": "1", "cpu": "0"}, {"example.com/gpu": 1})}
    )


@pytest.mark.parametrize(
    ("requests", "limits", "path", "reason"),
    [
        (
            {"nvidia.com/gpu": "1"},
            None,
            "limits",
            "Required value: Limit must be set for non overcommitable resources",
        ),
        (
            {"nvidia.com/gpu": "1"},
            {"nvidia.com/gpu": "2"},
            "requests",
            'Invalid value: "1": must be equal to nvidia.com/gpu limit of 2',
        ),
        (
            {"hugepages-2Mi": "2Mi", "memory": "1Gi"},
            {"hugepages-2Mi": "4Mi", "memory": "1Gi"},
            "requests",
            'Invalid value: "2Mi": must be equal to hugepages-2Mi limit of 4Mi',
        ),
        (None, {"hugepages-2Mi": "2Mi"}, "", "Forbidden: HugePages require cpu or memory"),
        (
            None,
            {"nvidia.com/gpu": "500m"},
            "limits[nvidia.com/gpu]",
            "Invalid value: '500m': must be an integer",
        ),
        (
            {"foo": "1"},
            None,
            "requests.foo",
            "Invalid value: 'foo': must be a standard resource for containers",
        ),
        (
            {"pods": "1"},
            None,
            "requests.pods",
            "Invalid value: 'pods': must be a standard resource for containers",
        ),
        (
            None,
            {"requests.example.com/gpu": "1"},
            "limits[requests.example.com/gpu]",
            "Invalid value: 'requests.example.com/gpu': doesn't follow extended resource name standard",
        ),
    ],
)
def test_extended_resources_are_validated_as_the_api_server_does(
    requests: dict[str, Any] | None, limits: dict[str, Any] | None, path: str, reason: str
) -> None:
    """Extended resources and huge pages cannot be overcommitted: a request needs a limit and
    equals it; an extended resource is counted in whole units; a name without a domain must
    be one a container may ask for (``ValidateContainerResourceRequirements``)."""
    where = "spec.containers[0].resources" + ("." + path if path else "")
    assert problem_of({"spec": spec(requests, limits)}) == (where.replace(".[", "["), reason)


def test_a_limit_alone_of_any_resource_is_a_valid_request() -> None:
    """Defaulting copies every limit into a missing request, so a limit alone is enough,
    for overcommitable resources and the others alike."""
    limits = {"nvidia.com/gpu": 2, "ephemeral-storage": "1Gi", "cpu": "1"}
    validate_pod_template({"spec": spec(None, limits)})
    defaulted = default_requests(spec({"cpu": "500m"}, limits))
    assert defaulted["containers"][0]["resources"]["requests"] == {
        "cpu": "500m",
        "nvidia.com/gpu": 2,
        "ephemeral-storage": "1Gi",
    }


def test_pod_requests_count_every_other_resource_as_cpu_is_counted() -> None:
    """Other resources are summed over containers and sidecars, or the largest init
    container's where that is more; a limit stands in for a request, a zero is left out."""
    pod = {
        "spec": {
            "initContainers": [
                {"name": "i", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 3}}},
                {
                    "name": "s",
                    "image": "x",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"ephemeral-storage": "1Ki"}},
                },
            ],
            "containers": [
                {"name": "a", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}},
                {
                    "name": "b",
                    "image": "x",
                    "resources": {
                        "requests": {"nvidia.com/gpu": "1", "ephemeral-storage": "1.5"},
                        "limits": {"example.com/zero": 0},
                    },
                },
            ],
        }
    }
    assert pod_requests(pod).scalars == (("ephemeral-storage", 1026), ("nvidia.com/gpu", 3))
    assert pod_requests({"spec": spec({"cpu": "1"})}).scalars == ()


@pytest.mark.parametrize(
    ("selector", "path", "reason"),
    [
        ({"gpu": True}, "spec.nodeSelector.gpu", "must be a string, got the boolean true"),
        ({"disk": 1}, "spec.nodeSelector.disk", "must be a string, got 1"),
        (["a"], "spec.nodeSelector", "must be an object, got a list"),
        ({"bad key!": "x"}, "spec.nodeSelector[bad key!]", "invalid key 'bad key!'"),
    ],
)
def test_node_selector_is_a_map_of_label_strings(selector: Any, path: str, reason: str) -> None:
    """``nodeSelector: {gpu: true}`` is refused, naming the field: a YAML boolean is no
    label value, and such a pod could never be placed."""
    got_path, got_reason = problem_of({"spec": {**spec(), "nodeSelector": selector}})
    assert got_path == path
    assert got_reason.startswith(reason)


def test_container_names_are_unique_dns_labels() -> None:
    """Duplicate names (init containers included) and names such as ``Main_X`` are refused.

    A name an init container shares with a container is reported on the init container, as
    Kubernetes' ``validateInitContainers`` checks init names against the containers'."""
    two = {"containers": [{"name": "m", "image": "i"}, {"name": "m", "image": "j"}]}
    assert problem_of({"spec": two}) == ("spec.containers[1].name", "duplicate value 'm'")
    init = {
        "initContainers": [{"name": "m", "image": "i"}],
        "containers": [{"name": "m", "image": "j"}],
    }
    assert problem_of({"spec": init}) == ("spec.initContainers[0].name", "duplicate value 'm'")
    path, reason = problem_of({"spec": {"containers": [{"name": "Main_X", "image": "i"}]}})
    assert path == "spec.containers[0].name"
    assert "invalid value 'Main_X'" in reason and "RFC 1123 label" in reason
    assert problem_of({"spec": {"containers": [{"image": "i"}]}}) == (
        "spec.containers[0].name",
        "required value",
    )
    nameless_init = {
        "initContainers": [{"image": "i"}],
        "containers": [{"name": "m", "image": "i"}],
    }
    assert problem_of({"spec": nameless_init})[0] == "spec.initContainers[0].name"


def test_the_restart_policy_is_one_kubernetes_knows() -> None:
    """``Always``, ``OnFailure`` or ``Never``; anything else is named."""
    for policy in ("Always", "OnFailure", "Never"):
        validate_pod_template({"spec": {**spec(), "restartPolicy": policy}})
    path, reason = problem_of({"spec": {**spec(), "restartPolicy": "Sometimes"}})
    assert path == "spec.restartPolicy"
    assert reason.startswith("unsupported value 'Sometimes'")


def test_the_image_pull_policy_is_one_kubernetes_knows() -> None:
    """``Always``, ``IfNotPresent`` or ``Never`` (the kubelet reads it); anything else is
    named at the container's field."""
    for policy in ("Always", "IfNotPresent", "Never"):
        container: dict[str, object] = {"name": "m", "image": "i", "imagePullPolicy": policy}
        validate_pod_template({"spec": {"containers": [container]}})
    for bad in ("Sometimes", 5, "always"):
        container = {"name": "m", "image": "i", "imagePullPolicy": bad}
        path, reason = problem_of({"spec": {"containers": [container]}})
        assert path == "spec.containers[0].imagePullPolicy"
        assert reason.startswith(f"unsupported value {bad!r}")


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("localhost:5000/app", "Always"),
        ("registry.example.com/sandbox:v1", "IfNotPresent"),
        ("localhost:5000/app:1", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_the_image_pull_policy_defaults_by_the_images_tag(image: str, policy: str) -> None:
    """``SetDefaults_Container``: ``latest``, or neither tag nor digest, is ``Always``;
    any other tag, or a digest alone, ``IfNotPresent``."""
    assert image_pull_policy({"name": "m", "image": image}) == policy


def test_an_image_pull_policy_given_is_kept() -> None:
    """A policy written wins over the tag's default."""
    container = {"name": "m", "image": "busybox", "imagePullPolicy": "IfNotPresent"}
    assert image_pull_policy(container) == "IfNotPresent"


def test_template_labels_and_annotations_are_checked_as_metadata() -> None:
    """Label keys and values, annotation keys, and the reserved prefix, each at its key."""
    base = {"spec": spec()}
    assert problem_of({**base, "metadata": {"labels": {"a": "has space"}}})[0] == (
        "metadata.labels.a"
    )
    assert problem_of({**base, "metadata": {"annotations": {"bad key!": "x"}}})[0] == (
        "metadata.annotations[bad key!]"
    )
    assert problem_of({**base, "metadata": {"labels": {"a": 1}}}) == (
        "metadata.labels.a",
        "must be a string, got 1",
    )
    assert problem_of({**base, "metadata": {"labels": {"e2b.agents.kruise.io/x": "1"}}}) == (
        "metadata.labels[e2b.agents.kruise.io/x]",
        "key uses reserved prefix 'e2b.agents.kruise.io/'",
    )
    # null labels (a Helm template with nothing under ``labels:``) are no labels.
    validate_pod_template({**base, "metadata": {"labels": None, "annotations": None}})


def with_container(**fields: Any) -> dict[str, Any]:
    """A template whose one container has ``fields`` over a valid name and image."""
    return {"spec": {"containers": [{"name": "main", "image": "img:1", **fields}]}}


@pytest.mark.parametrize(
    ("template", "path", "key"),
    [
        ({"spec": {**spec(), "nodeSelector": {1: "a", "b": "c"}}}, "spec.nodeSelector", "1"),
        (
            {"spec": {**spec(), "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"], 5: "y"}]}},
            "spec.hostAliases[0]",
            "5",
        ),
        (with_container(image={0: "x", "a": "y"}), "spec.containers[0].image", "0"),
        ({**with_container(), "metadata": {"labels": {1: "a"}}}, "metadata.labels", "1"),
        (
            {**with_container(), "metadata": {"labels": {True: "a"}}},
            "metadata.labels",
            "the boolean true",
        ),
        (
            {**with_container(), "metadata": {"annotations": {None: "a"}}},
            "metadata.annotations",
            "null",
        ),
        (
            {**with_container(), "metadata": {"annotations": {1.5: "a"}}},
            "metadata.annotations",
            "1.5",
        ),
    ],
)
def test_every_mapping_key_in_a_template_is_a_string(
    template: dict[str, Any], path: str, key: str
) -> None:
    """JSON keys are strings: another key (YAML's ``{1: a}``) is refused where it is written,
    not left to break the template's hash or the pod's labels later."""
    assert problem_of(template) == (path, f"a key must be a string, got {key}")


@pytest.mark.parametrize("where", ["labels", "annotations"])
@pytest.mark.parametrize(
    ("value", "got"),
    [
        (False, "the boolean false"),
        (None, "null"),
        (5, "5"),
        (1.5, "1.5"),
        (["a"], "a list"),
        ({"a": "b"}, "an object"),
    ],
)
def test_a_template_label_or_annotation_value_is_a_string_named_as_yaml_wrote_it(
    where: str, value: Any, got: str
) -> None:
    """A value of another kind is named as the object's own metadata names it (``the boolean
    false`` for YAML 1.1's ``n``), not as Python shows it (``False``)."""
    template = {**with_container(), "metadata": {where: {"a": value}}}
    assert problem_of(template) == (f"metadata.{where}.a", f"must be a string, got {got}")


@pytest.mark.parametrize(
    ("metadata", "path", "got"),
    [
        (True, "metadata", "the boolean true"),
        ("x", "metadata", "the text 'x'"),
        ({"labels": "x"}, "metadata.labels", "the text 'x'"),
        ({"annotations": 3}, "metadata.annotations", "3"),
        ({"labels": ["a"]}, "metadata.labels", "a list"),
    ],
)
def test_a_template_metadata_that_is_no_object_is_named_as_yaml_wrote_it(
    metadata: Any, path: str, got: str
) -> None:
    """The template's metadata, labels and annotations are objects; anything else is named with
    its kind."""
    template = {**with_container(), "metadata": metadata}
    assert problem_of(template) == (path, f"must be an object, got {got}")


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (None, "required value"),
        ("", "required value"),
        (5, "must be a string, got 5"),
        (3.12, "must be a string, got 3.12"),
        (True, "must be a string, got the boolean true"),
        (["python"], "must be a string, got a list"),
        ({"a": "b"}, "must be a string, got an object"),
        ("  ", "must not have leading or trailing whitespace, got '  '"),
        (" python:3.12", "must not have leading or trailing whitespace, got ' python:3.12'"),
    ],
)
def test_an_image_is_a_non_empty_string_without_surrounding_blanks(image: Any, reason: str) -> None:
    """As Kubernetes' pod validation wants; what the name names is the kubelet's business."""
    assert problem_of(with_container(image=image)) == ("spec.containers[0].image", reason)
    validate_pod_template(with_container(image="registry.example.com/py:3.12"))


def containers(*asks: tuple[str | None, str | None], restart: str | None = None) -> list[Any]:
    """Containers ``c0``, ``c1``... asking the given (cpu, memory) requests (None: unset)."""
    out: list[Any] = []
    for i, (cpu, memory) in enumerate(asks):
        requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
        container: dict[str, Any] = {"name": f"c{i}", "image": "img:1"}
        if requests:
            container["resources"] = {"requests": requests}
        if restart is not None:
            container["restartPolicy"] = restart
        out.append(container)
    return out


def test_pod_requests_sum_the_containers_and_fall_back_to_limits() -> None:
    """The containers' requests add up; a limit stands in for a missing request."""
    s = {"containers": [*containers(("500m", "1Gi"), ("1", None))]}
    s["containers"].append(
        {"name": "lim", "image": "x", "resources": {"limits": {"cpu": "2", "memory": "1Mi"}}}
    )
    assert container_resources({"spec": s}) == (3500, 2**30 + 2**20)
    assert container_resources(None) == (0, 0)


def test_the_largest_init_container_counts_when_it_asks_more_than_the_containers() -> None:
    """kube-scheduler's calculateResource: max(sum of containers, largest init container),
    per resource (init containers run one at a time, before the containers)."""
    s = {
        "initContainers": containers(("6", "1Gi"), ("1", "12Gi")),
        "containers": containers(("500m", "512Mi"), ("500m", "512Mi")),
    }
    assert container_resources({"spec": s}) == (6000, 12 * 2**30)
    small = {"initContainers": containers(("100m", "1Mi")), "containers": s["containers"]}
    assert container_resources({"spec": small}) == (1000, 2**30)


def test_sidecar_init_containers_add_to_the_containers_and_to_later_init_containers() -> None:
    """An init container with ``restartPolicy: Always`` (a sidecar) runs on beside everything
    started after it: it adds to the containers' sum and to each later init container."""
    s = {
        "initContainers": [
            *containers(("1", "1Gi"), restart="Always"),
            *[{**c, "name": "setup"} for c in containers(("3", "1Gi"))],
        ],
        "containers": containers(("1", "1Gi")),
    }
    # containers + sidecar = 2 CPU, 2Gi; setup beside the sidecar = 4 CPU, 2Gi.
    assert container_resources({"spec": s}) == (4000, 2 * 2**30)
    # An init container before the sidecar does not run beside it.
    s["initContainers"].reverse()
    assert container_resources({"spec": s}) == (3000, 2 * 2**30)


def test_scoring_requests_give_a_container_without_a_request_the_non_zero_defaults() -> None:
    """NonZeroRequested: 100m CPU and 200Mi memory for each container (init containers too)
    that requests none; a request set, even to zero, is kept. For scoring only."""
    best_effort = {"containers": containers((None, None), (None, None))}
    asks = pod_requests({"spec": best_effort})
    assert (asks.cpu, asks.memory) == (0, 0)
    assert (asks.scored_cpu, asks.scored_memory) == (200, 400 * 2**20)
    partial = {"containers": containers(("0", None), ("1", "1Gi"))}
    assert pod_requests({"spec": partial}) == (1000, 2**30, 1000, 2**30 + 200 * 2**20, ())
    init = {"initContainers": containers((None, "4Gi")), "containers": containers(("1", "1Gi"))}
    assert pod_requests({"spec": init}) == (1000, 4 * 2**30, 1000, 4 * 2**30, ())


@pytest.mark.parametrize(
    ("ref", "normal"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:latest", "docker.io/library/busybox:latest"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("python:3.12", "docker.io/library/python:3.12"),
        ("docker.io/python:3.12", "docker.io/library/python:3.12"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("registry.example.com/sandbox:v1", "registry.example.com/sandbox:v1"),
        ("registry.example.com/sandbox", "registry.example.com/sandbox:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:1", "localhost/app:1"),
        ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
        ("busybox:1.36@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
    ],
)
def test_image_references_are_normalised_as_the_container_runtime_does(
    ref: str, normal: str
) -> None:
    """docker.io and library/ are implied, ``latest`` is the default tag; a digest names the
    image by itself (no tag is added, one given is not part of its identity)."""
    assert normalize_image(ref) == normal


KUBELET_STATUS: dict[str, Any] = {
    "phase": "Running",
    "containerStatuses": [
        {
            "name": "main",
            "image": "docker.io/library/python:3.12",
            "ready": True,
            "started": True,
            "restartCount": 2,
            "state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}},
            "lastState": {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": "2026-01-01T00:04:00Z",
                    "finishedAt": "2026-01-01T00:04:30Z",
                }
            },
        }
    ],
    "initContainerStatuses": [
        {
            "name": "setup",
            "image": "docker.io/library/busybox:1",
            "ready": True,
            "started": False,
            "restartCount": 0,
            "lastState": {},
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": "2026-01-01T00:00:01Z",
                    "finishedAt": "2026-01-01T00:00:02Z",
                }
            },
        }
    ],
}


def test_container_statuses_read_and_dump_as_v1_container_status() -> None:
    """``containerStatuses`` and ``initContainerStatuses`` take Kubernetes' shape, camelCase,
    and dump back as they were read."""
    status = PodStatus.model_validate(KUBELET_STATUS)
    main = status.container_statuses[0]
    assert (main.name, main.ready, main.started, main.restart_count) == ("main", True, True, 2)
    assert main.state.running is not None and main.state.waiting is None
    last = main.last_state.terminated
    assert last is not None and (last.exit_code, last.reason) == (1, "Error")
    assert status.init_container_statuses[0].state.terminated is not None
    dumped = Pod(status=status).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["status"]["containerStatuses"] == KUBELET_STATUS["containerStatuses"]
    assert dumped["status"]["initContainerStatuses"] == KUBELET_STATUS["initContainerStatuses"]


def test_a_pod_without_container_statuses_dumps_none() -> None:
    """Empty status lists are left out of a dump, as Go's ``omitempty`` leaves them."""
    assert "containerStatuses" not in dump(Pod())
    assert "initContainerStatuses" not in dump(Pod())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"restartCount": -1}, "restartCount"),
        ({"ready": "maybe"}, "ready"),
        ({"state": {"sleeping": {}}}, "sleeping"),
    ],
)
def test_a_bad_container_status_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    """A negative restart count, a non-boolean ``ready`` or an unknown state is refused."""
    bad = {"name": "main", "image": "i", **change}
    with pytest.raises(ValidationError, match=field):
        PodStatus.model_validate({"containerStatuses": [bad]})


def test_the_kubelets_first_sync_has_every_container_waiting() -> None:
    """Before any container is created each waits: ``ContainerCreating``, or
    ``PodInitializing`` (init containers too) in a pod with init containers."""
    init, containers = first_sync_statuses(
        {"containers": [{"name": "main", "image": "python:3.12"}]}
    )
    assert init == []
    waiting = containers[0].state.waiting
    assert waiting is not None and waiting.reason == "ContainerCreating"
    assert (containers[0].image, containers[0].ready, containers[0].started) == (
        "python:3.12",
        False,
        False,
    )
    init, containers = first_sync_statuses(
        {
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "main", "image": "python:3.12"}],
        }
    )
    reasons = [c.state.waiting.reason for c in [*init, *containers] if c.state.waiting]
    assert reasons == ["PodInitializing", "PodInitializing"]


KIND_POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: "2026-01-01T00:00:00Z"
  labels:
    run: web
  name: web
  namespace: default
  resourceVersion: "512"
  uid: 3c1f7a52-8a2b-4c3e-9d41-6e0f2b7a9c10
spec:
  containers:
  - image: nginx:1.27
    imagePullPolicy: IfNotPresent
    name: web
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access-7x2kq
      readOnly: true
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  nodeName: kind-control-plane
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
status:
  conditions:
  - lastProbeTime: null
    lastTransitionTime: "2026-01-01T00:00:04Z"
    status: "True"
    type: PodReadyToStartContainers
  - lastProbeTime: null
    lastTransitionTime: "2026-01-01T00:00:00Z"
    status: "True"
    type: Initialized
  - lastProbeTime: null
    lastTransitionTime: "2026-01-01T00:00:04Z"
    status: "True"
    type: Ready
  - lastProbeTime: "2026-01-01T00:00:04Z"
    lastTransitionTime: "2026-01-01T00:00:04Z"
    status: "True"
    type: ContainersReady
  - lastProbeTime: null
    lastTransitionTime: "2026-01-01T00:00:00Z"
    status: "True"
    type: PodScheduled
  containerStatuses:
  - allocatedResources:
      cpu: 100m
    containerID: containerd://5b0c9e3f1d2a
    image: docker.io/library/nginx:1.27
    imageID: docker.io/library/nginx@sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a
    lastState: {}
    name: web
    ready: true
    resources:
      requests:
        cpu: 100m
    restartCount: 0
    started: true
    state:
      running:
        startedAt: "2026-01-01T00:00:03Z"
    user:
      linux:
        gid: 0
        supplementalGroups:
        - 0
        uid: 0
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access-7x2kq
      readOnly: true
      recursiveReadOnly: Disabled
  hostIP: 172.18.0.2
  hostIPs:
  - ip: 172.18.0.2
  nominatedNodeName: kind-worker
  observedGeneration: 1
  phase: Running
  podIP: 10.244.0.5
  podIPs:
  - ip: 10.244.0.5
  qosClass: BestEffort
  startTime: "2026-01-01T00:00:00Z"
"""
"""``kubectl get pod web -o yaml`` of a running pod on kind (Kubernetes 1.33), as printed."""


def test_kubectl_get_pod_yaml_of_a_running_pod_loads_and_dumps_back() -> None:
    """Every ``v1.PodStatus`` / ``ContainerStatus`` field a real kubelet writes is read (no
    "unknown field"), kept, and dumped back as kubectl printed it; a pod condition's
    ``lastProbeTime`` is accepted and dropped."""
    (pod,) = load_manifests(KIND_POD_YAML)
    assert isinstance(pod, Pod)
    status = pod.status
    assert status.pod_ips is not None and status.host_ips is not None
    assert [ip.ip for ip in status.pod_ips] == ["10.244.0.5"]
    assert [ip.ip for ip in status.host_ips] == ["172.18.0.2"]
    assert (status.qos_class, status.nominated_node_name) == ("BestEffort", "kind-worker")
    main = status.container_statuses[0]
    assert (main.container_id, main.image_id) == (
        "containerd://5b0c9e3f1d2a",
        "docker.io/library/nginx@sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a",
    )
    dumped = yaml.safe_load(dump(pod))
    expected = yaml.safe_load(KIND_POD_YAML)
    # A pod condition's lastProbeTime is read and dropped (the model's conditions have
    # none, and no kubelet sets one); an empty lastState is left out, as Go's omitempty
    # would; the rest is kept as written.
    for cond in expected["status"]["conditions"]:
        del cond["lastProbeTime"]
    del expected["status"]["containerStatuses"][0]["lastState"]
    assert dumped["status"] == expected["status"]
    assert load_manifests(dump(pod)) == [pod]


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed", "Unknown"])
def test_every_pod_phase_kubernetes_knows_loads(phase: str) -> None:
    """``Unknown`` too: the phase the API server gives a pod whose node stopped reporting."""
    doc = yaml.safe_load(KIND_POD_YAML)
    doc["status"]["phase"] = phase
    (pod,) = load_manifests(doc)
    assert isinstance(pod, Pod) and pod.status.phase == phase


def test_a_misspelt_pod_status_field_is_still_refused_naming_it() -> None:
    """The status fields are Kubernetes' own, no more: a typo is not taken as one."""
    doc = yaml.safe_load(KIND_POD_YAML)
    doc["status"]["podIPS"] = doc["status"].pop("podIPs")
    with pytest.raises(InvalidError) as err:
        load_manifests(doc)
    assert err.value.field == "Pod/web status.podIPS"
    assert err.value.reason.startswith("unknown field")


_SPEC: dict[str, Any] = {"containers": [{"name": "main", "image": "python:3.12"}]}


def test_active_deadline_seconds_may_shrink_or_stay_within_int32_on_update() -> None:
    """``ValidatePodUpdate``: a deadline between 0 and 2^31 - 1, never above the previous one
    (the same value is no change of it)."""
    assert pod_spec_change_problem(_SPEC, {**_SPEC, "activeDeadlineSeconds": 2**31 - 1}) is None
    assert pod_spec_change_problem(_SPEC, {**_SPEC, "activeDeadlineSeconds": 2**31}) == (
        "spec.activeDeadlineSeconds",
        "Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
    )
    old = {**_SPEC, "activeDeadlineSeconds": 30}
    assert pod_spec_change_problem(old, {**_SPEC, "activeDeadlineSeconds": 30}) is None
    assert pod_spec_change_problem(old, {**_SPEC, "activeDeadlineSeconds": 31}) == (
        "spec.activeDeadlineSeconds",
        "Invalid value: 31: must be less than or equal to previous value",
    )


def test_a_negative_grace_period_may_become_one_and_nothing_else() -> None:
    """The one change ``terminationGracePeriodSeconds`` allows: a negative value set to 1."""
    old = {**_SPEC, "terminationGracePeriodSeconds": -1}
    assert pod_spec_change_problem(old, {**_SPEC, "terminationGracePeriodSeconds": 1}) is None
    problem = pod_spec_change_problem(old, {**_SPEC, "terminationGracePeriodSeconds": 2})
    assert problem is not None and problem[0] == "spec"
    assert problem[1].endswith("(changed: spec.terminationGracePeriodSeconds)")


def test_a_first_part_with_capitals_is_a_registry() -> None:
    """docker's ``splitDockerDomain``: a repository path is lower case, so ``Foo`` in
    ``Foo/bar`` can only be a host name."""
    assert normalize_image("Foo/bar") == "Foo/bar:latest"
    assert normalize_image("foo/bar") == "docker.io/foo/bar:latest"


def test_a_huge_pages_request_equals_its_limit_as_a_quantity() -> None:
    """Requests of resources that cannot be overcommitted must equal their limits: compared
    as amounts, so ``2Mi`` and ``2097152`` are equal."""
    container = {
        "name": "main",
        "image": "python:3.12",
        "resources": {
            "requests": {"hugepages-2Mi": "2Mi", "memory": "1Gi"},
            "limits": {"hugepages-2Mi": "2097152", "memory": "1Gi"},
        },
    }
    validate_pod_spec({"containers": [container]})

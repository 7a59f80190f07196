"""Pools defined by a SandboxTemplate: a SandboxSet's ``templateRef`` (reference §1.6, §3, §5.2).

The set's sandboxes carry the reference and the Sandbox controller builds each
pod from the template it names; a sandbox the manager creates on no stock
embeds the resolved template instead. Both take the template's labels and
annotations when created, and a running sandbox is what its pod was made with. Pools are filed under the template's
name (the ``sandbox-template`` label), so a warm claim names a set whose name
is its template's.
"""

from __future__ import annotations

import json

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import BadRequestError, InternalError
from pytest_kruise_agents.claiming.extensions import KEY_CPU_LIMIT, KEY_CPU_REQUEST, KEY_IMAGE
from simulator.cluster import Cluster

from .conftest import claim_yaml

IMAGE = "registry.example.com/python:3.12"


def template_yaml(name: str = "python", *, runtime_init_container: bool = False) -> str:
    """A SandboxTemplate; its pod template labels pods ``team: ml``."""
    init = (
        "      initContainers: [{name: runtime, image: registry.example.com/runtime:v1}]\n"
        if runtime_init_container
        else ""
    )
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxTemplate
metadata: {{name: {name}, namespace: default}}
spec:
  template:
    metadata:
      labels: {{team: ml}}
    spec:
      containers:
        - name: sandbox
          image: {IMAGE}
          resources: {{requests: {{cpu: "2", memory: 1Gi}}}}
{init}"""


def ref_set_yaml(
    name: str = "python", template: str = "python", replicas: int = 3, *, runtimes: bool = True
) -> str:
    """A SandboxSet whose pod template is the SandboxTemplate ``template``."""
    runtime_lines = "  runtimes: [{name: agent-runtime}]\n" if runtimes else ""
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
{runtime_lines}  templateRef: {{name: {template}}}
"""


def test_a_template_ref_pool_fills_and_delivers_warm() -> None:
    """Pods come from the template; an E2B create takes a pool sandbox that keeps the reference."""
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml() + "---\n" + ref_set_yaml())
    sbs = cluster.wait_for_pool("python", timeout=120)
    assert sbs.status.current_revision == "python"
    pods = cluster.list("pod")
    assert len(pods) == 3
    assert all(p.spec["containers"][0]["image"] == IMAGE for p in pods)
    assert all(p.metadata.labels["team"] == "ml" for p in pods)

    sbx = cluster.create_sandbox("python", timeout=300)
    record = cluster.records[-1]
    assert record.warm is True and record.runtime_initialized is not None
    assert sbx.spec.template is None
    assert sbx.spec.template_ref is not None and sbx.spec.template_ref.name == "python"
    assert sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE] == "python"
    # No inline pod template: the claim's owner label has no pod template to go to.
    pod = cluster.get("pod", sbx.metadata.name)
    assert keys.LABEL_OWNER not in pod.metadata.labels


def test_a_no_stock_create_embeds_the_resolved_template() -> None:
    """Created on no stock, the sandbox carries the template inline, so in-place updates work."""
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml() + "---\n" + ref_set_yaml(replicas=0))
    cluster.advance(1)
    sbx = cluster.create_sandbox(
        "python", timeout=300, metadata={"e2b.agents.kruise.io/image": IMAGE + "-slim"}
    )
    assert cluster.records[-1].warm is False
    assert sbx.spec.template_ref is None and sbx.spec.template is not None
    assert sbx.spec.template["metadata"]["labels"]["team"] == "ml"
    assert sbx.metadata.labels["team"] == "ml"
    assert sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE] == "python"
    pod = cluster.get("pod", sbx.metadata.name)
    assert pod.spec["containers"][0]["image"] == IMAGE + "-slim"
    assert pod.metadata.labels[keys.LABEL_OWNER] == sbx.metadata.annotations[keys.ANN_OWNER]
    # The stored template is untouched by the claim's changes to its copy.
    stored = cluster.get("sbt", "python")
    assert stored.spec.template["spec"]["containers"][0]["image"] == IMAGE
    assert keys.LABEL_OWNER not in stored.spec.template["metadata"]["labels"]


def claims_after_refusal(
    metadata: dict[str, str] | None,
) -> tuple[BadRequestError | None, list[str], list[str]]:
    """A create with ``metadata`` (none if ``None``) on a full templateRef pool, then three more.

    Its 400, the names the three claimed, and the log without its
    ``manager.claim_failed`` lines (each refused create leaves its record and
    that line).
    """
    cluster = Cluster(seed=1, nodes=2)
    cluster.apply(template_yaml() + "---\n" + ref_set_yaml(replicas=5))
    cluster.wait_for_pool("python", timeout=120)
    refusal = None
    if metadata is not None:
        with pytest.raises(BadRequestError) as info:
            cluster.create_sandbox("python", timeout=300, metadata=metadata)
        refusal = info.value
    names = [cluster.create_sandbox("python", timeout=300).metadata.name for _ in range(3)]
    log = [line for line in cluster.log.text().splitlines() if "manager.claim_failed" not in line]
    return refusal, names, log


@pytest.mark.parametrize("key", [KEY_IMAGE, KEY_CPU_REQUEST, KEY_CPU_LIMIT])
def test_an_in_place_update_of_a_warm_pool_is_refused_on_arrival(key: str) -> None:
    """The pool's sandboxes have no container to change: a 400 naming the key, before any draw.

    The pick would take a sandbox that keeps the reference, so the create is
    refused as it arrives, drawing nothing from the seeded generator: the
    claims after it pick the same sandboxes, with the same log (README).
    """
    value = IMAGE + "-slim" if key == KEY_IMAGE else "1"
    refusal, names, log = claims_after_refusal({key: value})
    assert refusal is not None and refusal.code == 400 and refusal.field == key
    assert str(refusal).startswith(f"{key}: in-place update needs a sandbox with an inline")
    assert (None, names, log) == claims_after_refusal(None)


def test_a_sandboxclaim_in_place_update_of_a_warm_pool_names_its_field() -> None:
    """The SandboxClaim's attempts fail with a 400 naming ``spec.inplaceUpdate.image``."""
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml() + "---\n" + ref_set_yaml())
    cluster.wait_for_pool("python", timeout=120)
    cluster.apply(claim_yaml("job", "python", inplaceUpdate=f"{{image: {IMAGE}-slim}}"))
    cluster.advance(5)
    record = cluster.records[-1]
    assert record.error_code == 400
    assert (record.error or "").startswith(
        "spec.inplaceUpdate.image: in-place update needs a sandbox with an inline pod template"
    )


def test_a_no_stock_create_of_a_missing_template_fails_and_leaves_nothing() -> None:
    """Nothing to build the sandbox from: a terminal 500 naming the template, no sandbox made."""
    cluster = Cluster(seed=3)
    cluster.apply(ref_set_yaml(replicas=0, template="absent"))
    cluster.advance(1)
    with pytest.raises(InternalError, match="sandboxtemplate default/absent") as info:
        cluster.create_sandbox("python", timeout=300)
    assert info.value.code == 500 and not info.value.retriable
    assert cluster.records[-1].attempts == 1
    assert cluster.list("sbx") == []


def test_a_pool_waits_for_its_template_then_fills() -> None:
    """Sandboxes made before their template exists stay Pending; the pool fills once it appears."""
    cluster = Cluster(seed=3)
    cluster.apply(ref_set_yaml())
    cluster.advance(20)
    assert cluster.get("sbs", "python").status.available_replicas == 0
    assert cluster.list("pod") == []
    assert len(cluster.log.of_kind("sandbox.template_not_found")) == 3
    cluster.apply(template_yaml())
    cluster.wait_for_pool("python", timeout=120)


def test_a_set_named_apart_from_its_template_gets_no_warm_claims() -> None:
    """The pool index keys on the template's name, the create names the set: every claim is cold.

    Reference §5.2 lists the pool by the ``sandbox-template`` label (the
    template's name) and §8 finds the set by the create's ``templateID``; a set
    named apart from its template therefore never hands out its own warm
    sandboxes (docs/fidelity.md).
    """
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml("tpl") + "---\n" + ref_set_yaml("pool-a", "tpl"))
    cluster.wait_for_pool("pool-a", timeout=120)
    cluster.create_sandbox("pool-a", timeout=300)
    assert cluster.records[-1].warm is False
    assert cluster.get("sbs", "pool-a").status.available_replicas == 3


def test_a_sandboxclaim_initialises_a_runtime_found_in_the_template() -> None:
    """#441: the agent runtime is an init container of the referenced template, not a runtime."""
    cluster = Cluster(seed=3)
    cluster.apply(
        template_yaml(runtime_init_container=True) + "---\n" + ref_set_yaml(runtimes=False)
    )
    cluster.wait_for_pool("python", timeout=120)
    cluster.apply(claim_yaml("job", "python", replicas=2))
    cluster.advance(30)
    claim = cluster.get("sbc", "job")
    assert claim.status.phase == "Completed" and claim.status.claimed_replicas == 2
    claimed = cluster.list("sbx", labels={keys.LABEL_CLAIM_NAME: "job"})
    assert len(claimed) == 2
    assert all(keys.ANN_INIT_RUNTIME_REQUEST in s.metadata.annotations for s in claimed)
    assert all(r.runtime_initialized is not None for r in cluster.records)


def test_sandbox_templates_are_listed_like_any_kind() -> None:
    """``kubectl get sbt``: name and age; a bad template is refused naming the field."""
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml())
    cluster.advance(90)
    assert cluster.table("sbt", "default") == "NAME     AGE\npython   90s\n"
    with pytest.raises(InvalidError, match=r"SandboxTemplate/bad spec\.template"):
        cluster.apply(
            "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxTemplate\n"
            "metadata: {name: bad}\nspec: {template: {spec: {containers: []}}}\n"
        )
    assert [t.metadata.name for t in cluster.list("sandboxtemplates")] == ["python"]


@pytest.mark.parametrize("change", ["delete", "edit"])
def test_a_running_sandbox_keeps_the_runtime_its_pod_was_made_with(change: str) -> None:
    """The runtime is in the pod: a template deleted or edited later takes it from no pod.

    Reference §5.2: ``/init`` goes to the runtime of the sandbox's pod, and a
    changed template reaches only pods made after the change (docs/models.md).
    """
    cluster = Cluster(seed=3)
    cluster.apply(
        template_yaml(runtime_init_container=True) + "---\n" + ref_set_yaml(runtimes=False)
    )
    cluster.wait_for_pool("python", timeout=120)
    if change == "delete":
        cluster.delete("sbt", "python")
    else:
        cluster.apply(template_yaml(runtime_init_container=False))
    cluster.advance(1)
    pool = {s.metadata.name for s in cluster.list("sbx")}
    sbx = cluster.create_sandbox("python", timeout=300)
    record = cluster.records[-1]
    assert record.warm is True and record.attempts == 1
    assert record.runtime_initialized is not None
    assert sbx.metadata.name in pool
    assert not cluster.log.of_kind("runtime.init_failed")


def test_a_runtime_added_to_the_template_later_is_not_in_the_pods_made_before() -> None:
    """The reverse edit: pods made without the runtime still have none, so ``/init`` is refused."""
    cluster = Cluster(seed=3)
    cluster.apply(template_yaml() + "---\n" + ref_set_yaml(runtimes=False, replicas=1))
    cluster.wait_for_pool("python", timeout=120)
    (warm,) = cluster.list("sbx")
    cluster.apply(template_yaml(runtime_init_container=True))
    cluster.advance(1)
    sbx = cluster.create_sandbox("python", timeout=300)
    # The warm sandbox's init was refused and it was deleted; a sandbox made from
    # the edited template (which has the runtime) was delivered instead.
    failed = cluster.log.of_kind("runtime.init_failed")
    assert [e.detail.split()[0] for e in failed] == [f"default/{warm.metadata.name}"]
    assert "no agent-runtime in the sandbox" in failed[0].detail
    assert sbx.metadata.name != warm.metadata.name
    assert cluster.records[-1].runtime_initialized is not None


TEMPLATE_METADATA = {
    "labels": {"team": "ml", keys.LABEL_SANDBOX_CLAIMED: "x"},
    "annotations": {keys.ANN_CLEANUP_ENABLED: "true", "note": "kept", keys.ANN_LOCK: "x"},
}


def metadata_template_yaml() -> str:
    """A SandboxTemplate whose pod template carries user and internal labels and annotations."""
    return f"""\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxTemplate
metadata: {{name: python, namespace: default}}
spec:
  template:
    metadata: {json.dumps(TEMPLATE_METADATA)}
    spec:
      containers:
        - name: sandbox
          image: {IMAGE}
          resources: {{requests: {{cpu: "1", memory: 1Gi}}}}
"""


def test_warm_and_cold_sandboxes_of_a_pool_take_the_template_metadata_alike() -> None:
    """Pool and no-stock sandboxes both inherit the template's labels and annotations (§2).

    Internal keys are dropped except ``cleanup-enabled``, as on every creation
    from a SandboxSet; the pool sandbox still keeps the reference.
    """
    cluster = Cluster(seed=3)
    cluster.apply(metadata_template_yaml() + "---\n" + ref_set_yaml(replicas=1))
    cluster.wait_for_pool("python", timeout=120)
    warm = cluster.create_sandbox("python", timeout=300)
    assert cluster.records[-1].warm is True
    cold = cluster.create_sandbox("python", timeout=300)
    assert cluster.records[-1].warm is False
    assert warm.spec.template_ref is not None and warm.spec.template is None
    for sbx in (warm, cold):
        labels, ann = sbx.metadata.labels, sbx.metadata.annotations
        assert labels["team"] == "ml" and labels[keys.LABEL_SANDBOX_CLAIMED] == "true"
        assert ann[keys.ANN_CLEANUP_ENABLED] == "true" and ann["note"] == "kept"
        assert ann[keys.ANN_LOCK] != "x"


def test_a_killed_warm_sandbox_of_a_cleanup_template_is_recycled_as_a_cold_one() -> None:
    """``cleanup-enabled`` from the template makes a kill recycle warm and cold sandboxes alike."""
    for replicas in (1, 0):
        cluster = Cluster(seed=3)
        cluster.apply(metadata_template_yaml() + "---\n" + ref_set_yaml(replicas=replicas))
        if replicas:
            cluster.wait_for_pool("python", timeout=120)
        else:
            cluster.advance(1)
        sbx = cluster.create_sandbox("python", timeout=300)
        assert cluster.records[-1].warm is bool(replicas)
        cluster.kill(f"default--{sbx.metadata.name}")
        cluster.advance(30)
        assert [e.detail.split()[0] for e in cluster.log.of_kind("sandbox.recycled")] == [
            f"default/{sbx.metadata.name}"
        ]


def test_a_sandbox_applied_with_both_a_template_and_a_template_ref_is_refused() -> None:
    """They are mutually exclusive (reference §1.2): one typed error, nothing stored, not a
    Sandbox whose pod is made from the inline template, the reference ignored."""
    cluster = Cluster(seed=0)
    cluster.apply(template_yaml())
    with pytest.raises(InvalidError) as info:
        cluster.apply(
            """\
apiVersion: agents.kruise.io/v1alpha1
kind: Sandbox
metadata: {name: both, namespace: default}
spec:
  templateRef: {name: python}
  template:
    spec:
      containers: [{name: sandbox, image: registry.example.com/other:v1}]
"""
        )
    assert (info.value.field, info.value.reason) == (
        "Sandbox/both spec",
        "templateRef and template are mutually exclusive",
    )
    assert cluster.list("Sandbox", namespace=None) == []

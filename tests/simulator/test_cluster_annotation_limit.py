"""The 256 KiB annotation limit on a claim, from the early checks to the lock write.

The API server refuses a write whose annotations pass 256 KiB (422 Invalid).
What a create or a SandboxClaim asks to store alone (metadata, env vars, the
manager's own keys) is checked before anything is picked, by the same rule;
what only the picked sandbox's own annotations take over the limit is refused
by the lock write, and answered as upstream answers it: a raw update error
(500, terminal) from the pool, a bad request (400) for a no-stock create.
No sandbox is ever stored over the limit, so every one loads back from its dump.
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import load_manifest
from pytest_kruise_agents.api.validation import check_annotations
from pytest_kruise_agents.claiming.errors import BadRequestError, ClaimError, InternalError
from simulator.cluster import Cluster

KIB256 = 256 * 1024


def pool(notes: int = 0, replicas: int = 2) -> str:
    """Pool ``base``; its sandboxes carry ``notes`` bytes of annotations of their own."""
    ann = (
        f'\n    metadata:\n      annotations: {{team.example.com/notes: "{"n" * notes}"}}'
        if notes
        else ""
    )
    return f"""
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {{name: base, namespace: default}}
spec:
  replicas: {replicas}
  runtimes: [{{name: agent-runtime}}]
  template:{ann}
    spec:
      containers: [{{name: sandbox, image: registry.example.com/s:v1}}]
"""


def cluster_(notes: int = 0, replicas: int = 2) -> Cluster:
    c = Cluster(seed=1)
    c.apply(pool(notes, replicas))
    if replicas:
        c.wait_for_pool("base")
    else:
        c.advance(5)
    return c


def stored_sandboxes_are_valid(c: Cluster) -> None:
    for sbx in c.list("sbx"):
        check_annotations(sbx.metadata.annotations)
        dump = sbx.to_dict()
        dump["metadata"].pop("resourceVersion", None)
        load_manifest(dump)


def test_env_vars_that_cannot_fit_on_any_sandbox_are_a_400_before_any_pick() -> None:
    """The request alone (env vars, metadata, the manager's keys) is over: refused first."""
    c = cluster_()
    writes = c.world.api.writes
    with pytest.raises(BadRequestError) as info:
        c.create_sandbox("base", env_vars={"V": "e" * (KIB256 - 250)})
    assert info.value.code == 400 and info.value.field == "envVars"
    assert "may not be more than 256 KiB in total" in str(info.value)
    assert c.world.api.writes == writes
    stored_sandboxes_are_valid(c)


def test_a_lock_write_the_picked_sandbox_takes_over_the_limit_answers_a_raw_500() -> None:
    """The pool's own annotations, with the request's, pass 256 KiB: the lock Update is refused
    (422), a raw, terminal error that upstream wraps as Internal (500, ``..., last error: ...``);
    nothing is claimed, nothing changed."""
    c = cluster_(notes=100_000)
    before = {s.metadata.name: s.metadata.resource_version for s in c.list("sbx")}
    with pytest.raises(ClaimError) as info:
        c.create_sandbox("base", metadata={"big": "m" * 100_000}, env_vars={"V": "e" * 62_000})
    err = info.value
    assert isinstance(err, InternalError) and (err.code, err.reason) == (500, "Invalid")
    assert not err.retriable and ", last error: " in str(err)
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in str(info.value)
    assert c.last_record().attempts == 1  # terminal: no retry
    assert {s.metadata.name: s.metadata.resource_version for s in c.list("sbx")} == before
    stored_sandboxes_are_valid(c)
    # Under the limit, the same pool delivers.
    assert c.create_sandbox("base", metadata={"big": "m" * 100_000}).metadata.annotations


def test_a_no_stock_create_the_api_server_refuses_answers_400() -> None:
    """The create-type lock (a Create) classes Invalid as BadRequest: 400, no sandbox made."""
    c = cluster_(notes=100_000, replicas=0)
    with pytest.raises(BadRequestError) as info:
        c.create_sandbox("base", metadata={"big": "m" * 100_000}, env_vars={"V": "e" * 62_000})
    assert info.value.code == 400
    assert "Too long: must have at most 262144 bytes" in str(info.value)
    assert c.list("sbx") == []


def test_a_sandboxclaim_that_cannot_fit_on_any_sandbox_is_refused_at_apply() -> None:
    """A deliberate difference (upstream accepts it, then every attempt fails): refused at
    apply, naming the field, counted as the lock write counts: what would fit is accepted."""
    c = cluster_()
    claim = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: c1, namespace: default}
spec: {templateName: base, envVars: {V: "%s"}}
"""
    with pytest.raises(InvalidError) as info:
        c.apply(claim % ("x" * (KIB256 - 300)))
    assert info.value.field == "SandboxClaim/c1 spec.envVars"
    assert "may not be more than 256 KiB in total" in info.value.reason
    assert c.list("sbc") == []
    c.apply(claim % ("x" * (KIB256 - 400)))
    c.advance(10)
    assert c.get("sbc", "c1").status.claimed_replicas == 1
    stored_sandboxes_are_valid(c)


def test_a_sandboxclaim_whose_pool_takes_it_over_fails_each_attempt_until_its_timeout() -> None:
    """Accepted (it would fit on a sandbox of its own), but each lock write onto this pool's
    sandboxes is refused: each attempt fails with the raw 500, and the claim times out."""
    c = cluster_(notes=100_000)
    c.apply(f"""
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {{name: c1, namespace: default}}
spec: {{templateName: base, envVars: {{V: "{"e" * 162_000}"}}}}
""")
    c.advance(70)
    claim = c.get("sbc", "c1")
    assert claim.status.phase == "Completed" and claim.status.claimed_replicas == 0
    assert claim.status.message is not None and claim.status.message.startswith("Timeout")
    assert {(r.error_code, r.error_reason) for r in c.records} == {(500, "Invalid")}
    stored_sandboxes_are_valid(c)

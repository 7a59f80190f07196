"""A kill through the real SDK recycles a ``cleanup-enabled`` sandbox into its pool."""

from __future__ import annotations

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxNotFoundException

from ..pools import RECYCLING_POOL
from .conftest import Served, eventually


def test_a_killed_sandbox_is_recycled_and_its_workspace_dropped(server: Served) -> None:
    """204, paused to its caller for the grace period, then back in the pool without its files."""
    server.apply(RECYCLING_POOL)
    server.advance(30)
    sbx = Sandbox.create(template="reuse", **server.sdk())
    sbx.files.write("/home/user/secret.txt", "mine")
    assert sbx.sandbox_id in server.workspaces

    assert sbx.kill() is True
    server.advance(1)
    assert sbx.get_info().state.value == "paused"  # Recycling, still its caller's

    server.advance(12)
    with pytest.raises(SandboxNotFoundException):
        sbx.get_info()
    assert Sandbox.list(**server.sdk()).next_items() == []
    name = sbx.sandbox_id.split("--")[1]
    log = server.backend.cluster.log
    assert [e.detail for e in log.of_kind("sandbox.recycled")] == [
        f"default/{name} set=reuse count=1"
    ]
    # Back in a full pool it is the surplus, and scale-down takes it (reference §3's order).
    assert any(e.detail.startswith(f"default/{name} ") for e in log.of_kind("sandboxset.delete"))
    # Our envd drops the workspace once the sandbox leaves its caller (docs/fidelity.md).
    eventually(lambda: sbx.sandbox_id not in server.workspaces, "the workspace dropped")

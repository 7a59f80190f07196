"""The async SDK (AsyncSandbox) against the fake cluster."""

from __future__ import annotations

import pytest
from e2b import AsyncSandbox

from .conftest import Server


@pytest.mark.asyncio
async def test_async_create_run_write_read_kill(e2b_env: Server) -> None:
    sbx = await AsyncSandbox.create(metadata={"kind": "async"})
    try:
        result = await sbx.commands.run("echo async")
        assert result.stdout == "async\n"
        await sbx.files.write("/home/user/a.txt", "A")
        assert await sbx.files.read("/home/user/a.txt") == "A"
        info = await sbx.get_info()
        assert info.metadata["kind"] == "async"
    finally:
        assert await sbx.kill()

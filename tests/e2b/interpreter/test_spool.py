"""The spool between a kernel's IOPub reader and the HTTP client: in order, never blocking, bounded.

The writer (the reader of the kernel's socket) must never wait for the client;
what the client has not taken yet stays in memory up to a limit, then on disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pytest_kruise_agents.e2b.interpreter.spool import Spool


async def _drain(spool: Spool) -> list[bytes]:
    records: list[bytes] = []
    while (record := await spool.get()) is not None:
        records.append(record)
    return records


@pytest.mark.asyncio
async def test_records_come_out_in_order_across_memory_and_file(tmp_path: Path) -> None:
    """Past the memory limit records go to a file, and still come out in the order put."""
    spool = Spool(memory_limit=100, directory=tmp_path)
    records = [f"record {n:04d}".encode() * 3 for n in range(500)]
    for record in records:
        spool.put(record)
    assert spool.memory_bytes <= 100
    assert spool.file_bytes > 0
    spool.close()
    assert await _drain(spool) == records
    spool.discard()


@pytest.mark.asyncio
async def test_memory_stays_bounded_while_the_reader_is_slow(tmp_path: Path) -> None:
    """A reader that takes one record per many put keeps memory under the limit throughout."""
    spool = Spool(memory_limit=1000, directory=tmp_path)
    taken: list[bytes] = []
    for n in range(3000):
        spool.put(b"%06d" % n)
        assert spool.memory_bytes <= 1000
        if n % 7 == 0:
            record = await spool.get()
            assert record is not None
            taken.append(record)
    spool.close()
    taken += await _drain(spool)
    assert taken == [b"%06d" % n for n in range(3000)]
    spool.discard()


@pytest.mark.asyncio
async def test_a_caught_up_file_is_emptied_and_memory_used_again(tmp_path: Path) -> None:
    """Once the reader has taken every record on file, the file is truncated to nothing."""
    spool = Spool(memory_limit=10, directory=tmp_path)
    for _ in range(5):
        spool.put(b"0123456789")
    assert spool.file_bytes > 0
    for _ in range(5):
        assert await spool.get() == b"0123456789"
    assert spool.file_bytes == 0
    spool.put(b"small")
    assert spool.memory_bytes == 5
    assert list(tmp_path.iterdir()) == []  # the file was never visible in the directory
    spool.discard()


@pytest.mark.asyncio
async def test_get_waits_for_a_record_and_ends_at_close() -> None:
    """``get`` waits for the writer; after close and the last record it answers ``None``."""
    spool = Spool()
    waiting = asyncio.ensure_future(spool.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    spool.put(b"late")
    assert await waiting == b"late"
    spool.close()
    assert await spool.get() is None


@pytest.mark.asyncio
async def test_close_with_an_error_raises_it_after_the_records() -> None:
    """The error given to close comes after every record put before it."""
    spool = Spool(memory_limit=0)
    spool.put(b"before")
    spool.close(RuntimeError("the kernel died"))
    assert await spool.get() == b"before"
    with pytest.raises(RuntimeError, match="the kernel died"):
        await spool.get()
    spool.discard()


def test_bad_arguments_and_late_puts_are_refused() -> None:
    """A negative limit is refused naming the field; a put after close raises."""
    with pytest.raises(ValueError, match="memory_limit: must be >= 0"):
        Spool(memory_limit=-1)

    async def put_after_close() -> None:
        spool = Spool()
        spool.close()
        with pytest.raises(RuntimeError, match="closed"):
            spool.put(b"x")

    asyncio.run(put_after_close())


@pytest.mark.asyncio
async def test_a_record_that_just_fills_the_memory_limit_stays_in_memory(tmp_path: Path) -> None:
    """Up to ``memory_limit`` bytes wait in memory: only a record that would pass it goes to file."""
    spool = Spool(memory_limit=10, directory=tmp_path)
    spool.put(b"0123456789")
    assert (spool.memory_bytes, spool.file_bytes) == (10, 0)
    spool.put(b"x")
    assert spool.memory_bytes == 10 and spool.file_bytes > 0
    spool.discard()


@pytest.mark.asyncio
async def test_a_later_close_keeps_the_first_ending() -> None:
    """The reader's ``discard`` closes again after the writer closed with an error: the error stays."""
    spool = Spool()
    spool.close(RuntimeError("the kernel died"))
    spool.close()
    with pytest.raises(RuntimeError, match="the kernel died"):
        await spool.get()


@pytest.mark.asyncio
async def test_discard_drops_every_record_waiting(tmp_path: Path) -> None:
    """After ``discard`` nothing is left to take, in memory or on file, and nothing is counted."""
    spool = Spool(memory_limit=10, directory=tmp_path)
    for _ in range(3):
        spool.put(b"0123456789")
    spool.discard()
    assert (spool.memory_bytes, spool.file_bytes) == (0, 0)
    assert await spool.get() is None

"""Specification of the envelope framing check: a Connect stream body cut short, as connect-go names it."""

from __future__ import annotations

import struct

import pytest

from pytest_kruise_agents.e2b.envd.envelopes import EnvelopeFraming


def _envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def _fed(body: bytes, chunk: int) -> EnvelopeFraming:
    framing = EnvelopeFraming()
    for at in range(0, len(body), chunk):
        framing.feed(body[at : at + chunk])
    return framing


WHOLE = _envelope(b'{"a": 1}') + _envelope(b"") + _envelope(b"xyz", flags=0b10)


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, len(WHOLE)])
def test_whole_envelopes_in_any_chunks_are_complete(chunk: int) -> None:
    assert _fed(WHOLE, chunk).problem() is None
    assert EnvelopeFraming().problem() is None  # an empty body: no envelope, nothing cut


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_a_body_cut_in_a_prefix_is_an_incomplete_envelope(chunk: int) -> None:
    body = WHOLE + _envelope(b"next")[:3]
    assert _fed(body, chunk).problem() == "protocol error: incomplete envelope: unexpected EOF"


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_a_body_cut_in_a_message_says_what_was_promised_and_got(chunk: int) -> None:
    body = WHOLE + struct.pack(">BI", 0, 40) + b"0123456789"
    assert _fed(body, chunk).problem() == (
        "protocol error: promised 40 bytes in enveloped message, got 10 bytes"
    )

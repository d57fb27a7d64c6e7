"""Encoding of the prepared text frames that `/ws` writes to every client."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from atlas_tui.api.live import LiveMessage
from atlas_tui.api.ws_frames import text_frame


def _parse(data: bytes) -> Frame:
    """Parse one frame from `data` with the websockets library's own client-side parser."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("the frame is incomplete")


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (300_000, 10)],
)
def test_frame_lengths_parse(size: int, header: int) -> None:
    """Each length form (7-bit, 16-bit, 64-bit) parses back to the same text, with nothing left over."""
    text = "x" * size
    data = text_frame(text)

    frame = _parse(data)

    assert frame.opcode == Opcode.TEXT
    assert frame.fin
    assert frame.data == text.encode()
    assert len(data) == size + header


def test_frame_utf8_length() -> None:
    """The length counts UTF-8 bytes, not characters."""
    text = "é€😀"
    frame = _parse(text_frame(text))
    assert frame.data.decode() == text


def test_message_frame_encoded_once() -> None:
    """A message encodes its frame once and gives every client the same bytes."""
    message = LiveMessage('{"type":"metrics"}')
    assert message.frame is message.frame
    assert message.frame == text_frame(message.text)

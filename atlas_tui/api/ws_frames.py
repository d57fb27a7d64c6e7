"""Direct frame writes for `WS /ws`: one encoded frame, written to every client's socket.

A live message goes to every subscriber with the same bytes: frames from a server
are not masked (RFC 6455, section 5.1), and the server negotiates no compression.
Sending each message through the ASGI `send` path cost about 25 µs of Python per
client (Starlette, the middleware, uvicorn and the `websockets` framing), so with
100 clients the feed cost more CPU than the rest of the daemon. The protocol class
here is uvicorn's own WebSocket protocol plus one ASGI scope extension,
`FRAME_WRITER_EXTENSION`, whose `FrameWriter` writes a prepared frame straight to
the connection's transport.

The ASGI path stays in use for the handshake, the first messages, pings and the
close handshake. A writer writes nothing once the close has started, so a frame
never follows a close frame.
"""

from __future__ import annotations

import logging
import struct

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["FRAME_WRITER_EXTENSION", "FrameWriter", "LiveWebSocketProtocol", "text_frame"]

logger = logging.getLogger(__name__)

FRAME_WRITER_EXTENSION = "atlas.frame_writer"
"""Key in `scope["extensions"]` under which a connection's `FrameWriter` is found."""

_FIN_TEXT = 0x81
"""First frame byte: FIN set, opcode 1 (text)."""


def text_frame(text: str) -> bytes:
    """Encode `text` as one unmasked, final WebSocket text frame."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class FrameWriter:
    """Writes prepared frames to one WebSocket connection, bypassing the ASGI `send` path."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> int | None:
        """Write `frame` and return the bytes now waiting in the connection's buffer.

        Returns None, and writes nothing, before the handshake ends and once the
        connection is closing or closed.
        """
        protocol = self._protocol
        transport = protocol.transport
        if not protocol.handshake_complete or protocol.close_sent or protocol.disconnected or transport.is_closing():
            return None
        transport.write(frame)
        return transport.get_write_buffer_size()


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol with a `FrameWriter` in each connection's scope."""

    def handle_connect(self, event: Request) -> None:
        """Handle the upgrade request, then add the frame writer to the new scope.

        The app task that the base method creates has not started yet when it
        returns, so the app always finds the extension in its scope.
        """
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][FRAME_WRITER_EXTENSION] = FrameWriter(self)

"""Uvicorn running the API inside the daemon's own asyncio loop, on 127.0.0.1 by default.

`ApiServer.bind()` opens the listening socket before the daemon starts collecting, so
a busy port fails the start with a clear message instead of uvicorn's `sys.exit`.
`serve()` runs until `stop()`. Uvicorn's own SIGINT/SIGTERM handlers are switched
off, because the daemon installs its handlers with `loop.add_signal_handler`. In
uvicorn 0.55, `Server.capture_signals` replaces them with `signal.signal` and
raises the caught signal again after shutdown. With a certificate and key the
server speaks HTTPS only, through uvicorn's `ssl_certfile` and `ssl_keyfile`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from atlas_tui.api.ws_frames import LiveWebSocketProtocol
from atlas_tui.errors import AtlasError

__all__ = ["API_HOST", "ApiBindError", "ApiServer"]

API_HOST = "127.0.0.1"
"""The address the API listens on by default."""

_GRACEFUL_SHUTDOWN_SECONDS = 2

_WS_PING_INTERVAL = 60.0
"""Seconds between keepalive pings on each `/ws` connection, instead of uvicorn 0.55's
20 s. Each ping costs a write and a read per client, and a live feed already writes to
every client each second, so a dead client also shows up as a full queue
(atlas_tui.api.live) and gets dropped."""

logger = logging.getLogger(__name__)


class ApiBindError(AtlasError):
    """Raised when the API cannot listen on its port, for example because it is in use."""

    def __init__(self, port: int, reason: str, host: str = API_HOST) -> None:
        self.port = port
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}; "
            "choose another port with --port or the config's `port`, another address with --bind "
            "or the config's `api.bind`, or pass --no-api"
        )


class ApiServer:
    """One uvicorn server for `app`, bound to `host`:`port` (127.0.0.1 by default)."""

    def __init__(
        self,
        app: FastAPI,
        port: int,
        *,
        host: str = API_HOST,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        """Prepare the server without opening a socket until `bind()`.

        Args:
            app: The app from `create_api`.
            port: TCP port. 0 picks a free one, readable from `port` after `bind()`.
            host: IP address to listen on, IPv4 or IPv6.
            tls_cert: PEM certificate file. With `tls_key` set too, the server speaks HTTPS only.
            tls_key: PEM private key file of `tls_cert`.
        """
        self._socket: socket.socket | None = None
        self._address = (host, port)
        config = uvicorn.Config(
            app,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            log_config=None,
            access_log=False,
            # The daemon opens and closes everything the routes use, so the app
            # needs no lifespan events.
            lifespan="off",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
            # Compressing each `/ws` message once per client more than doubled the
            # daemon's CPU with 100 clients (bench/ws_fanout.py). Ticks are a few KiB.
            ws_per_message_deflate=False,
            # Adds the frame writer that `/ws` uses to send each live message as one
            # prepared frame (atlas_tui/api/ws_frames.py).
            ws=LiveWebSocketProtocol,
            ws_ping_interval=_WS_PING_INTERVAL,
        )
        self._server = _EmbeddedServer(config)

    @property
    def port(self) -> int:
        """The bound port, or the requested one before `bind()`."""
        return self.address[1]

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), or the requested ones before `bind()`."""
        return self._address

    def bind(self) -> None:
        """Open the listening socket, where connections wait until `serve()`.

        Raises:
            ApiBindError: the port is in use or not allowed, or the address is not one of this host's.
        """
        host, requested = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that
        # name TCP, and with it on, each kept-alive response waited ~40 ms for the
        # client's delayed ACK between its header and body writes.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, requested))
            # Listening now lets clients queue in the backlog before uvicorn starts.
            sock.listen(socket.SOMAXCONN)
        except OSError as err:
            sock.close()
            raise ApiBindError(requested, err.strerror or str(err), host) from err
        bound_host, port = sock.getsockname()[:2]
        self._address = (str(bound_host), int(port))
        self._socket = sock

    async def serve(self) -> None:
        """Serve requests until `stop()` is called, binding first if needed.

        Raises:
            ApiBindError: the port cannot be bound or uvicorn fails to start.
        """
        if self._socket is None:
            self.bind()
        sock = self._socket
        assert sock is not None
        scheme = "https" if self._server.config.is_ssl else "http"
        logger.info("api listening host=%s port=%d scheme=%s", self.address[0], self.port, scheme)
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit as err:
            # Uvicorn calls sys.exit when its start-up fails. A SystemExit leaving a
            # task would end the whole event loop instead of this task.
            raise ApiBindError(self.port, "uvicorn failed to start, see the log above", self.address[0]) from err
        finally:
            self.close()
        logger.info("api stopped port=%d", self.port)

    def close(self) -> None:
        """Close the socket of a server that will not serve, as `serve()` closes its own."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def stop(self) -> None:
        """Ask uvicorn to close the socket and finish open requests."""
        self._server.request_exit()

    @property
    def started(self) -> bool:
        """True once uvicorn accepts connections."""
        return bool(self._server.started)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        """Stop the main loop at once instead of at its next tick."""
        self.should_exit = True
        self._exit_requested.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        """Tick once a second, and return as soon as `request_exit()` is called.

        Uvicorn 0.55 polls `should_exit` every 0.1 s. In a daemon that idles between
        collector cycles those ten wake-ups a second cost about 0.27 % of one core,
        more than collecting host metrics every second (bench/daemon_overhead.py). The
        Date header is still refreshed every second by `on_tick`.
        """
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 1.0)

"""A child process that decodes and prepares ingest batches while the daemon's event loop serves HTTP.

The daemon's event loop and the analytics writer thread share one GIL. With 8
concurrent senders, `decode_batch` and `prepare_batch` took about two thirds of
the loop's time, so the loop kept one core busy while only SQLite's share of the
writer ran on the second.
`PrepareWorker` runs both in a child process (`python -m
atlas_tui.analytics.prepare_worker`) and returns the prepared rows. The writer
thread in the daemon still stores them, and the route still replies after COMMIT.
The child never opens the store, so killing it loses no event: the requests it was
preparing get 503 and the SDK resends them.

`atlas_tui.api.analytics.IngestState` decides when to use the worker. It starts the
child only when a batch arrives while another is in flight, prepares inline until
the child reports ready, and the child exits after `idle_timeout` seconds without a
batch. So a daemon that receives a batch now and then runs no extra process.

Messages are pickles, each after its length as 4 bytes big-endian, on the child's
stdin and on a copy of its stdout. Both ends are this module. The child points its
own stdout at stderr, so a stray print cannot corrupt the channel. The first message
carries the config and the host secret, so the child never reads the data directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
import os
import pickle
import signal
import struct
import sys
import time
from collections import Counter
from typing import IO, Any

from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.analytics.errors import BatchRejectedError, PrepareWorkerError
from atlas_tui.analytics.ingest import EventStatus, PreparedBatch, decode_batch, prepare_batch
from atlas_tui.analytics.privacy import Pseudonymizer
from storage.events import EventRow

__all__ = ["RESTART_DELAY", "PrepareWorker", "main"]

logger = logging.getLogger(__name__)

RESTART_DELAY = 5.0
"""Seconds after an unexpected exit before a new worker may start, so a crashing child does not restart in a loop."""

_LENGTH = struct.Struct("!I")
_ROW_FIELDS = tuple(field.name for field in dataclasses.fields(EventRow))
_row_values = operator.attrgetter(*_ROW_FIELDS)
"""Returns the fields of an `EventRow` as a tuple: a tuple pickles about ten times faster than the slotted dataclass."""


class PrepareWorker:
    """One child process that prepares batches in the order they are sent, driven from the event loop.

    Args:
        config: The `analytics` config section.
        secret: The host secret for pseudonyms, as `privacy.load_host_secret` returned it.
        idle_timeout: Seconds without a batch after which the child is stopped.
    """

    def __init__(self, config: AnalyticsConfig, secret: bytes, *, idle_timeout: float = 30.0) -> None:
        self._config = config
        self._secret = secret
        self._idle_timeout = idle_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._next_id = 0
        self._ready = False
        self._starting = False
        self._stopping = False
        self._closed = False
        self._idle_handle: asyncio.TimerHandle | None = None
        self._not_before = 0.0
        self.starts = 0
        """Child processes started so far, for tests and the benchmark."""
        self.batches = 0
        """Batches the children returned so far."""

    @property
    def config(self) -> AnalyticsConfig:
        """The config the child prepares with."""
        return self._config

    @property
    def ready(self) -> bool:
        """True when the child runs and has loaded the ingest code."""
        return self._ready

    @property
    def pid(self) -> int | None:
        """Process id of the running child, or None."""
        return self._process.pid if self._process is not None else None

    def start_soon(self) -> None:
        """Start the child in the background.

        Does nothing while a child runs or starts, after `close`, and for `RESTART_DELAY`
        seconds after a child exited unexpectedly.
        """
        if self._closed or self._process is not None or self._starting or time.monotonic() < self._not_before:
            return
        self._starting = True
        self._reader = asyncio.get_running_loop().create_task(self._run(), name="analytics-prepare-worker")

    async def prepare(self, body: bytes, *, app_id: str, client_ip: str | None, now: float) -> PreparedBatch:
        """Run `decode_batch` and `prepare_batch` on `body` in the child.

        Raises:
            BatchRejectedError: the body is not JSON or its envelope is invalid, as inline.
            PrepareWorkerError: the child is not ready, or exited before it returned the batch.
            RuntimeError: preparing raised an unexpected error in the child, which logged it.
        """
        process = self._process
        if process is None or not self._ready or process.stdin is None:
            raise PrepareWorkerError("the worker is not running")
        self._cancel_idle()
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            process.stdin.write(_frame((request_id, body, app_id, client_ip, now)))
            await process.stdin.drain()
        except (ConnectionError, RuntimeError) as err:
            self._pending.pop(request_id, None)
            raise PrepareWorkerError(f"cannot send the batch to pid {process.pid}: {err}") from err
        kind, payload = await future
        self.batches += 1
        return _result(kind, payload)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the child once it has returned its batches, and kill it if it has not exited after `timeout` s.

        Later `start_soon` calls do nothing.
        """
        self._closed = True
        self._cancel_idle()
        reader = self._reader
        if reader is None or reader.done():
            return
        if self._process is None:
            await reader  # Still starting: `_run` stops the child as soon as it exists.
            return
        process = self._process
        self._stop(process)
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout)
        except TimeoutError:
            logger.warning("analytics prepare worker did not exit, killing it pid=%d", process.pid)
            process.kill()
            await reader

    async def _run(self) -> None:
        """Start the child, pass its results to the waiting requests, and clean up when it exits."""
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        except OSError as err:
            logger.error("analytics prepare worker cannot start: %s", err)
            self._starting = False
            self._not_before = time.monotonic() + RESTART_DELAY
            return
        self._process, self._starting, self._stopping = process, False, False
        self.starts += 1
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(_frame((self._config, self._secret)))
        if self._closed:
            self._stop(process)
        try:
            await self._deliver_results(process.stdout)
        except asyncio.CancelledError:
            # The event loop is closing, so nothing will read the child's results.
            self._stopping = True
            process.kill()
            raise
        except Exception:  # noqa: BLE001 - worker boundary: a broken channel ends this child, and requests get 503
            logger.exception("analytics prepare worker channel failed pid=%d", process.pid)
            process.kill()
        finally:
            await self._ended(process)

    async def _deliver_results(self, stdout: asyncio.StreamReader) -> None:
        while True:
            try:
                message = await _read_async(stdout)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if message[0] == "ready":
                self._ready = True
                logger.info("analytics prepare worker started pid=%d", message[1])
                self._schedule_idle()
                continue
            request_id, kind, payload = message
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result((kind, payload))
            if not self._pending:
                self._schedule_idle()

    async def _ended(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        self._process, self._ready = None, False
        self._cancel_idle()
        pending, self._pending = self._pending, {}
        if self._stopping:
            logger.info("analytics prepare worker stopped pid=%d", process.pid)
        else:
            self._not_before = time.monotonic() + RESTART_DELAY
            logger.error(
                "analytics prepare worker exited pid=%d code=%s batches_failed=%d", process.pid, code, len(pending)
            )
        for future in pending.values():
            if not future.done():
                future.set_exception(PrepareWorkerError(f"pid {process.pid} exited with code {code}"))

    def _schedule_idle(self) -> None:
        self._cancel_idle()
        self._idle_handle = asyncio.get_running_loop().call_later(self._idle_timeout, self._stop_idle)

    def _cancel_idle(self) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def _stop_idle(self) -> None:
        self._idle_handle = None
        if self._process is not None and not self._pending:
            self._stop(self._process)

    def _stop(self, process: asyncio.subprocess.Process) -> None:
        # The child prepares every batch it has read, then exits when its stdin ends.
        self._stopping = True
        self._ready = False
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()


def main() -> None:
    """Serve prepare requests from stdin until it ends; the entry point of the child process."""
    # Ctrl+C in a terminal reaches the whole process group. The daemon finishes its
    # requests first and then closes this child's stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # NOTE: the child logs to the daemon's stderr only, not to `atlas daemon --log-file`.
    # It logs only a batch that raised, which the daemon also logs as a 500.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    source = sys.stdin.buffer
    init = _read_sync(source)
    if init is None:
        return
    config, secret = init
    pseudonymizer = Pseudonymizer(secret)
    _write_sync(channel, ("ready", os.getpid()))
    while (request := _read_sync(source)) is not None:
        request_id, body, app_id, client_ip, now = request
        kind, payload = _prepare(config, pseudonymizer, body, app_id, client_ip, now)
        _write_sync(channel, (request_id, kind, payload))


def _prepare(
    config: AnalyticsConfig, pseudonymizer: Pseudonymizer, body: bytes, app_id: str, client_ip: str | None, now: float
) -> tuple[str, Any]:
    """Prepare one batch in the child, and return the result kind and its payload."""
    try:
        envelope = decode_batch(body)
        prepared = prepare_batch(
            envelope, app_id=app_id, config=config, pseudonymizer=pseudonymizer, client_ip=client_ip, now=now
        )
    except BatchRejectedError as err:
        return "rejected", (err.status_code, err.code, str(err), err.details)
    except Exception as err:  # noqa: BLE001 - worker boundary: the daemon responds to this request with 500
        logger.exception("analytics prepare worker failed on a batch app=%s", app_id)
        return "error", f"{type(err).__name__}: {err}"
    statuses = [None if status is None else status.model_dump() for status in prepared.statuses]
    rows = [(index, _row_values(row)) for index, row in prepared.rows]
    return "ok", (statuses, rows, dict(prepared.counts), prepared.device_hashes)


def _result(kind: str, payload: Any) -> PreparedBatch:
    """Turn the child's result back into a `PreparedBatch`, or raise what inline preparing would have raised."""
    if kind == "rejected":
        status_code, code, message, details = payload
        raise BatchRejectedError(status_code, code, message, details)
    if kind == "error":
        raise RuntimeError(f"analytics prepare worker failed: {payload}")
    statuses, rows, counts, device_hashes = payload
    return PreparedBatch(
        statuses=[None if status is None else EventStatus.model_construct(**status) for status in statuses],
        rows=[(index, EventRow(*values)) for index, values in rows],
        counts=Counter(counts),
        device_hashes=device_hashes,
    )


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read_async(stream: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return pickle.loads(await stream.readexactly(length))


def _read_sync(stream: IO[bytes]) -> Any:
    """Return the next message, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        return None
    return pickle.loads(data)


def _write_sync(stream: IO[bytes], message: object) -> None:
    stream.write(_frame(message))
    stream.flush()


if __name__ == "__main__":
    main()

"""Embedded collection: the console runs a `CollectionPipeline` when no daemon does.

`LocalSource` starts one when it finds no live daemon heartbeat and stops it when a
daemon appears or the console exits. The pipeline gets its own thread and asyncio
loop, so psutil calls and store writes never share the UI's event loop, and a slow
collector cannot delay a key press.

Invariants: `stop` returns after the pipeline's last write committed or after
`STOP_TIMEOUT` seconds, whichever comes first. The thread is a daemon thread, so a
pipeline that does not stop in time cannot keep the process alive. SQLite rolls back
a write cut off by process exit, so the store stays consistent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from atlas_tui.collection import CollectionPipeline
from atlas_tui.config import Config

__all__ = ["STOP_TIMEOUT", "EmbeddedCollection"]

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 1.5
"""Seconds `stop` waits for the pipeline; the console must exit within 2 s of SIGHUP."""


class EmbeddedCollection:
    """A `CollectionPipeline` running in a background thread with its own event loop."""

    def __init__(self, config: Config, data_dir: Path) -> None:
        """Prepare the collection; nothing runs until `start`."""
        self._config = config
        self._data_dir = Path(data_dir)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipeline: CollectionPipeline | None = None
        self._ready = threading.Event()
        self._error: str | None = None

    @property
    def running(self) -> bool:
        """Whether the collection thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self) -> str | None:
        """Why the pipeline stopped on its own (`StoreOpenError: ...`); None otherwise."""
        return self._error

    def start(self) -> None:
        """Start the pipeline thread; a second call while it runs does nothing."""
        if self.running:
            return
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="atlas-embedded-collection", daemon=True)
        self._thread.start()
        logger.info("embedded collection started data_dir=%s", self._data_dir)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the pipeline and wait for its last write.

        Returns:
            True when the thread ended within `timeout` seconds (or never ran).
        """
        thread = self._thread
        if thread is None:
            return True
        self._ready.wait(timeout)
        loop, pipeline = self._loop, self._pipeline
        if loop is not None and pipeline is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(pipeline.stop(), loop)
            except RuntimeError:
                pass  # the loop closed between the check and the call, so run() has ended
        thread.join(timeout)
        stopped = not thread.is_alive()
        if stopped:
            self._thread = None
            logger.info("embedded collection stopped data_dir=%s", self._data_dir)
        else:
            logger.warning("embedded collection did not stop within %.1fs data_dir=%s", timeout, self._data_dir)
        return stopped

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as err:  # thread boundary: keep the reason for the header
            self._error = f"{type(err).__name__}: {err}"
            logger.error("embedded collection failed data_dir=%s error=%s", self._data_dir, err, exc_info=err)
        finally:
            self._ready.set()

    async def _run(self) -> None:
        # The pipeline's asyncio primitives belong to this thread's loop, so it is built here.
        self._pipeline = CollectionPipeline(self._config, self._data_dir)
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._pipeline.run()

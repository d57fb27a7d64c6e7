"""The state shared by the API's route handlers: data directory, identity, store reads.

`create_api` puts one `ApiContext` on `app.state.context`, and handlers receive it
through the `get_context` dependency. Invariants: handlers never share a SQLite
connection. Each request opens its own short-lived read connection in FastAPI's
thread pool and closes it before the response is sent, so no request can keep a
read transaction open and pin the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request

from collectors.base import CollectorStatus
from storage.db import DB_FILENAME, connect
from storage.errors import StorageError

__all__ = ["ApiContext", "get_context"]

logger = logging.getLogger(__name__)

StatusesProvider = Callable[[], list[CollectorStatus]]
"""Callable returning the collectors' latest statuses, for example `pipeline.statuses`."""


@dataclass(frozen=True)
class ApiContext:
    """State and services the route handlers read."""

    data_dir: Path
    """Data directory whose store the API serves."""
    started_at: float
    """UTC epoch seconds when the serving process started."""
    version: str
    """ATLAS version reported by `/api/system/status`."""
    pid: int
    """Pid of the serving process."""
    host: str
    """Host name of the serving machine."""
    statuses_provider: StatusesProvider
    """Source of the collectors' statuses, called once per status request."""
    stale_after: float
    """Seconds after which an unrefreshed heartbeat counts as stale."""
    clock: Callable[[], float] = field(default=time.time)
    """Clock for uptime and heartbeat age, fixed in tests."""

    @contextmanager
    def read_connection(self) -> Iterator[sqlite3.Connection]:
        """Open a read connection to the store for one request and close it after.

        Raises:
            HTTPException: 503 when the store file does not exist yet or a query
                fails. A failed query is logged with the store path.
        """
        path = self.data_dir / DB_FILENAME
        if not path.is_file():
            raise HTTPException(status_code=503, detail=f"store not found: {path}")
        try:
            conn = connect(path)
        except (sqlite3.Error, StorageError) as err:
            logger.error("store open failed path=%s", path, exc_info=True)
            raise HTTPException(status_code=503, detail=f"store open failed: {err}") from err
        try:
            yield conn
        except sqlite3.Error as err:
            logger.error("store read failed path=%s", path, exc_info=True)
            raise HTTPException(status_code=503, detail=f"store read failed: {err}") from err
        finally:
            conn.close()


def get_context(request: Request) -> ApiContext:
    """Return the `ApiContext` of the app serving `request` (a FastAPI dependency)."""
    context: ApiContext = request.app.state.context
    return context

"""Connections, transactions and the migration runner for the SQLite store.

Every module in `storage` gets its connection from `connect` (or `open_store`,
which also migrates). Invariants:

- Connections run in autocommit mode (`isolation_level=None`): nothing is in a
  transaction unless `transaction` opened one, so no reader can keep a read
  snapshot open by accident and pin the WAL.
- Writes happen inside `transaction`. At the top level it issues BEGIN IMMEDIATE, so
  the write lock is taken up front and waits under `busy_timeout` instead of failing
  with SQLITE_BUSY on the first write. Nested calls use a savepoint.
- A connection is used by one thread at a time. `check_same_thread=False` only lets
  it move between threads, for example through `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collectors.base import Labels
from storage.errors import MigrationError, StoreOpenError
from storage.schema import MIGRATIONS, Migration

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_FILENAME",
    "JOURNAL_SIZE_LIMIT",
    "StoreConnection",
    "connect",
    "migrate",
    "open_store",
    "transaction",
]

logger = logging.getLogger(__name__)

DB_FILENAME = "atlas.db"
"""Name of the database file inside the data directory."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another connection's lock before SQLITE_BUSY."""

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the WAL file is truncated back to after a checkpoint resets it."""

_SAVEPOINT = "atlas_nested"


class StoreConnection(sqlite3.Connection):
    """A SQLite connection that also carries the writer's cache of series ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.series_ids: dict[tuple[str, Labels], int] = {}
        """Committed series ids by (name, labels), filled by `write_samples`."""


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open the database at `path` with the store's pragmas, without migrating it.

    Sets WAL mode, `busy_timeout`, `journal_size_limit`, `synchronous=NORMAL` and
    foreign keys. Per SQLite's PRAGMA synchronous documentation, NORMAL in WAL mode
    cannot corrupt the file on power loss but may roll back the newest commits.

    Raises:
        StoreOpenError: the file cannot be opened or WAL mode cannot be enabled.
    """
    try:
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=StoreConnection,
        )
    except sqlite3.Error as err:
        raise StoreOpenError(
            f"cannot open the store {os.fspath(path)}: {err}; "
            "check that the data directory exists and is writable"
        ) from err

    try:
        _apply_pragmas(conn, os.fspath(path))
    except BaseException:
        conn.close()
        raise
    return conn


def open_store(data_dir: Path) -> sqlite3.Connection:
    """Create `data_dir` if needed, connect to its database and migrate it.

    Raises:
        StoreOpenError: the database cannot be opened.
        MigrationError: the schema cannot be brought to the current version.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(data_dir / DB_FILENAME)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(
    conn: sqlite3.Connection,
    *,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> list[int]:
    """Apply the pending migrations up to `target` (default: all) and return their versions.

    **Writes**, one BEGIN IMMEDIATE transaction per migration holding both the schema
    change and its `migrations` row, so a failed migration leaves the store at the
    previous version. Running it again is a no-op. Two processes migrating at once
    are safe, because each transaction rechecks the version under the write lock.

    Raises:
        MigrationError: the migrations are out of order, the store is newer than this
            code, or a migration failed.
    """
    _check_order(migrations)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied = _applied_versions(conn)
    _check_not_newer(applied, migrations)

    done: list[int] = []
    for migration in migrations:
        if target is not None and migration.version > target:
            break
        if migration.version not in applied and _apply(conn, migration):
            done.append(migration.version)
    return done


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block in a transaction that commits on success and rolls back on any exception.

    At the top level this issues BEGIN IMMEDIATE (or BEGIN DEFERRED when `immediate`
    is false, for a short consistent read). Inside an open transaction it uses a
    savepoint, so only the block's own changes roll back.

    NOTE: a nested write inside an outer deferred (read) transaction cannot wait for
    the write lock. SQLite then raises SQLITE_BUSY at once, so open write
    transactions with `immediate=True`.
    """
    if conn.in_transaction:
        with _savepoint(conn):
            yield conn
        return

    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN DEFERRED")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
            conn.execute(f"RELEASE {_SAVEPOINT}")
        raise
    conn.execute(f"RELEASE {_SAVEPOINT}")


def _apply_pragmas(conn: sqlite3.Connection, path: str) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal" and path != ":memory:":
        raise StoreOpenError(
            f"cannot enable WAL mode on the store {path} (journal mode is {mode}); "
            "put the data directory on a local file system"
        )
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != sorted(set(versions)):
        raise MigrationError(f"migration versions must strictly increase, got {versions}")


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT version FROM migrations").fetchall()}


def _check_not_newer(applied: set[int], migrations: Sequence[Migration]) -> None:
    known = migrations[-1].version if migrations else 0
    newest = max(applied, default=0)
    if newest > known:
        raise MigrationError(
            f"the store is at schema version {newest} but this atlas knows only up to "
            f"version {known}; upgrade atlas or use another --data-dir"
        )


def _apply(conn: sqlite3.Connection, migration: Migration) -> bool:
    """Apply one migration with its bookkeeping row; False if another process did it first."""
    try:
        with transaction(conn):
            if conn.execute(
                "SELECT 1 FROM migrations WHERE version = ?", (migration.version,)
            ).fetchone():
                return False
            _run_steps(conn, migration)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) "
                "VALUES (?, ?, (julianday('now') - 2440587.5) * 86400.0)",
                (migration.version, migration.name),
            )
    except sqlite3.Error as err:
        raise MigrationError(
            f"migration {migration.version} ({migration.name}) failed: {err}; "
            "the store was left at the previous version"
        ) from err

    logger.info("migration applied version=%d name=%s", migration.version, migration.name)
    return True


def _run_steps(conn: sqlite3.Connection, migration: Migration) -> None:
    if callable(migration.apply):
        migration.apply(conn)
        return
    for statement in migration.apply:
        conn.execute(statement)

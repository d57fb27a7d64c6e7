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
- `open_store` checks the data directory before it creates anything in it, so a
  path that is a file or is not writable fails with a message naming the path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collectors.base import Labels
from storage.errors import MigrationError, StoreCorruptError, StoreOpenError
from storage.schema import MIGRATIONS, Migration

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_FILENAME",
    "INTEGRITY_CHECK_BUDGET",
    "JOURNAL_SIZE_LIMIT",
    "StoreConnection",
    "check_integrity",
    "connect",
    "migrate",
    "open_store",
    "prepare_data_dir",
    "transaction",
]

logger = logging.getLogger(__name__)

DB_FILENAME = "atlas.db"
"""Name of the database file inside the data directory."""

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another connection's lock before SQLITE_BUSY."""

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""Bytes the WAL file is truncated back to after a checkpoint resets it."""

INTEGRITY_CHECK_BUDGET = 10.0
"""Seconds `check_integrity` may run before it gives up and lets the store open unchecked.
`PRAGMA quick_check` took 0.4 s on a 100 MB store (one core of a shared 2-core VM)."""

_SAVEPOINT = "atlas_nested"
_MAX_REPORTED_PROBLEMS = 3
_PROGRESS_STEPS = 10_000


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
        StoreCorruptError: the file is not a SQLite database or its schema pages
            are damaged.
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
    except sqlite3.OperationalError:
        conn.close()
        raise
    except sqlite3.DatabaseError as err:
        # SQLITE_NOTADB and SQLITE_CORRUPT: the file's content is at fault, not
        # the environment.
        conn.close()
        raise _corrupt(path, str(err)) from err
    except BaseException:
        conn.close()
        raise
    return conn


def open_store(data_dir: Path, *, verify: bool = False) -> sqlite3.Connection:
    """Create `data_dir` if needed, connect to its database and migrate it.

    Args:
        data_dir: The data directory; `DB_FILENAME` inside it is the database.
        verify: Run `check_integrity` before migrating. The daemon does this once at
            start, so a damaged file is reported instead of failing every write.

    Raises:
        StoreOpenError: the data directory is not a writable directory, or the
            database cannot be opened.
        StoreCorruptError: `verify` is set and the database file is damaged.
        MigrationError: the schema cannot be brought to the current version.
    """
    prepare_data_dir(data_dir)
    _create_private(data_dir / DB_FILENAME)
    conn = connect(data_dir / DB_FILENAME)
    try:
        if verify:
            check_integrity(conn, data_dir / DB_FILENAME)
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """Create `path` as an empty file readable by its owner only, unless it exists.

    The store contains token hashes and pseudonymous device ids. SQLite gives the
    `-wal` and `-shm` files the mode of the database file, so they are private too.
    An existing file keeps the mode the operator gave it.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as err:
        raise StoreOpenError(
            f"cannot create the store {path}: {err.strerror or err}; "
            "pass a writable directory to --data-dir or set ATLAS_DATA_DIR"
        ) from err
    os.close(descriptor)


def prepare_data_dir(data_dir: Path) -> None:
    """Create `data_dir` if it is missing and check that this process can write in it.

    Raises:
        StoreOpenError: `data_dir` is a file, cannot be created, or is not writable.
            The message names the path and how to choose another one.
    """
    if data_dir.exists() and not data_dir.is_dir():
        kind = "a file" if data_dir.is_file() else "not a regular directory"
        raise StoreOpenError(
            f"{data_dir} is {kind}, not a directory; "
            "pass a directory to --data-dir or set ATLAS_DATA_DIR"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreOpenError(
            f"cannot create the data directory {data_dir}: {err.strerror or err}; "
            "pass a writable directory to --data-dir or set ATLAS_DATA_DIR"
        ) from err
    # os.access also reports a read-only file system (EROFS) for root.
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StoreOpenError(
            f"the data directory {data_dir} is not writable by this user; "
            "fix its permissions, or pass another directory to --data-dir or set ATLAS_DATA_DIR"
        )


def check_integrity(
    conn: sqlite3.Connection,
    path: str | os.PathLike[str],
    *,
    budget: float = INTEGRITY_CHECK_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Run `PRAGMA quick_check` on `conn` and raise if it finds damage.

    quick_check verifies the b-tree pages and records but not that indexes match
    their tables, which keeps it fast (0.4 s on 100 MB). A check that outlives
    `budget` seconds is interrupted and logged, and the store counts as unchecked.

    Args:
        conn: An open connection, outside a transaction.
        path: The database file, named in the error message.
        budget: Seconds the check may take.
        clock: Monotonic clock that measures the budget.

    Returns:
        True when the check passed, False when it ran out of time.

    Raises:
        StoreCorruptError: the check reported problems or hit a malformed page.
        sqlite3.OperationalError: the check failed for another reason, such as a
            disk I/O error.
    """
    deadline = clock() + budget
    conn.set_progress_handler(lambda: int(clock() > deadline), _PROGRESS_STEPS)
    try:
        rows = conn.execute(f"PRAGMA quick_check({_MAX_REPORTED_PROBLEMS})").fetchall()
    except sqlite3.OperationalError as err:
        # Other operational errors (a disk I/O error, a lock) do not show damage in
        # the file's pages, so they reach the caller unchanged.
        if "interrupted" not in str(err):
            raise
        logger.warning(
            "integrity check stopped after budget_s=%g path=%s; the store was not checked",
            budget,
            os.fspath(path),
        )
        return False
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, f"quick_check: {err}") from err
    finally:
        conn.set_progress_handler(None, 0)

    # A problem row may hold several lines, headed by "*** in database main ***".
    problems = [line for row in rows for line in str(row[0]).splitlines() if not line.startswith("***")]
    if problems != ["ok"]:
        raise _corrupt(path, "quick_check: " + "; ".join(problems[:_MAX_REPORTED_PROBLEMS]))
    return True


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


def _corrupt(path: str | os.PathLike[str], detail: str) -> StoreCorruptError:
    name = os.fspath(path)
    return StoreCorruptError(
        f"the store {name} is damaged ({detail}); restore it from a backup, "
        f"or stop every atlas process using it and move {name} and its -wal and -shm files "
        "aside, so that a new empty store is created"
    )


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

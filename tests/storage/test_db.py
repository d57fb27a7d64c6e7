"""Tests for `storage.db`: pragmas, migrations and transactions on real SQLite files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from collectors.base import Sample
from storage import (
    DB_FILENAME,
    MigrationError,
    StoreOpenError,
    connect,
    latest,
    migrate,
    open_store,
    transaction,
    write_samples,
)
from storage.schema import MIGRATIONS, Migration
from tests.storage.conftest import T0


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    return [(kind, name, re.sub(r"\s+", " ", sql or "").strip()) for kind, name, sql in rows]


def test_connect_sets_pragmas(tmp_path: Path) -> None:
    """A connection is in WAL mode with the busy timeout, WAL cap, sync level and foreign keys."""
    conn = connect(tmp_path / DB_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 1024 * 1024
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.isolation_level is None
    conn.close()


def test_connect_missing_directory(tmp_path: Path) -> None:
    """A database path in a missing directory raises StoreOpenError naming the path."""
    path = tmp_path / "missing" / DB_FILENAME
    with pytest.raises(StoreOpenError, match="missing"):
        connect(path)


def test_migrate_fresh_records_each(store: sqlite3.Connection) -> None:
    """A fresh store records every migration with its name and a time."""
    rows = store.execute(
        "SELECT version, name, applied_at FROM migrations ORDER BY version"
    ).fetchall()
    assert [row[0] for row in rows] == [m.version for m in MIGRATIONS]
    assert [row[1] for row in rows] == [m.name for m in MIGRATIONS]
    assert all(row[2] > T0 for row in rows)


def test_migrate_twice_noop(store: sqlite3.Connection) -> None:
    """Running migrate on a current store applies nothing and changes no schema."""
    before = _schema(store)
    assert migrate(store) == []
    assert _schema(store) == before


def test_upgrade_from_v1_matches_fresh(tmp_path: Path) -> None:
    """A store created at version 1 and migrated has the fresh schema and keeps its data."""
    fresh = open_store(tmp_path / "fresh")
    old = connect(tmp_path / "old.db")
    assert migrate(old, target=1) == [1]
    samples = [Sample.of("cpu_usage", 12.5, T0), Sample.of("disk_usage", 40.0, T0, mount="/")]
    write_samples(old, samples)

    applied = migrate(old)

    assert applied == [m.version for m in MIGRATIONS[1:]]
    assert _schema(old) == _schema(fresh)
    assert [v.value for v in latest(old)] == [12.5, 40.0]
    fresh.close()
    old.close()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    """A migration that fails midway leaves neither its tables nor its bookkeeping row."""
    conn = connect(tmp_path / DB_FILENAME)
    broken = (
        *MIGRATIONS,
        Migration(99, "broken", ("CREATE TABLE half_done (x INTEGER)", "CREATE TABLE series (x)")),
    )

    with pytest.raises(MigrationError, match="migration 99"):
        migrate(conn, migrations=broken)

    newest = conn.execute("SELECT max(version) FROM migrations").fetchone()[0]
    assert newest == MIGRATIONS[-1].version
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    conn.close()


def test_callable_migration_runs(tmp_path: Path) -> None:
    """A migration given as a callable runs inside its transaction and is recorded."""
    conn = connect(tmp_path / DB_FILENAME)
    version = MIGRATIONS[-1].version + 1
    extra = Migration(version, "callable", lambda c: c.execute("CREATE TABLE extra (x INTEGER)"))

    assert migrate(conn, migrations=(*MIGRATIONS, extra))[-1] == version
    name = conn.execute("SELECT name FROM migrations WHERE version = ?", (version,)).fetchone()[0]
    assert name == "callable"
    conn.close()


def test_store_newer_than_code(tmp_path: Path) -> None:
    """A store migrated by a newer atlas raises MigrationError instead of being changed."""
    conn = open_store(tmp_path)
    conn.execute("INSERT INTO migrations (version, name, applied_at) VALUES (999, 'future', 0)")

    with pytest.raises(MigrationError, match="999"):
        migrate(conn)
    conn.close()


def test_migrations_out_of_order(tmp_path: Path) -> None:
    """A migration list whose versions do not increase is rejected before anything runs."""
    conn = connect(tmp_path / DB_FILENAME)
    with pytest.raises(MigrationError, match="strictly increase"):
        migrate(conn, migrations=(MIGRATIONS[1], MIGRATIONS[0]))
    conn.close()


def test_transaction_rolls_back(store: sqlite3.Connection) -> None:
    """An exception inside the block rolls back its writes and leaves no transaction open."""
    with pytest.raises(RuntimeError), transaction(store):
        store.execute("INSERT INTO series (name, labels) VALUES ('x', '[]')")
        raise RuntimeError("stop")

    assert store.execute("SELECT count(*) FROM series").fetchone()[0] == 0
    assert not store.in_transaction


def test_nested_transaction_savepoint(store: sqlite3.Connection) -> None:
    """A failing nested block rolls back only its own writes; the outer block commits."""
    with transaction(store):
        store.execute("INSERT INTO series (name, labels) VALUES ('outer', '[]')")
        with pytest.raises(RuntimeError), transaction(store):
            store.execute("INSERT INTO series (name, labels) VALUES ('inner', '[]')")
            raise RuntimeError("stop")

    names = [row[0] for row in store.execute("SELECT name FROM series").fetchall()]
    assert names == ["outer"]
    assert not store.in_transaction


def test_transaction_begins_immediate(store: sqlite3.Connection) -> None:
    """A top-level transaction takes the write lock at BEGIN."""
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    with transaction(store):
        pass
    store.set_trace_callback(None)
    assert statements == ["BEGIN IMMEDIATE", "COMMIT"]


def test_new_store_private(tmp_path: Path) -> None:
    """A new store and its WAL files are readable by the owner only; an existing file keeps its mode."""
    conn = open_store(tmp_path / "data")
    write_samples(conn, [Sample.of("cpu_usage", 1.0, T0)])
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "data").glob("atlas.db*")}
    conn.close()

    assert modes == {"atlas.db": 0o600, "atlas.db-wal": 0o600, "atlas.db-shm": 0o600}

    shared = tmp_path / "shared"
    open_store(shared).close()
    (shared / "atlas.db").chmod(0o640)
    open_store(shared).close()
    assert (shared / "atlas.db").stat().st_mode & 0o777 == 0o640

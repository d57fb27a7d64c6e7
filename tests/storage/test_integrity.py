"""`open_store` on a damaged file, a data dir that is a file or unwritable, and heartbeat clearing."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import (
    DB_FILENAME,
    Heartbeat,
    StoreCorruptError,
    StoreOpenError,
    check_integrity,
    clear_heartbeat,
    connect,
    open_store,
    read_heartbeat,
    write_heartbeat,
)
from tests.storage.damage import build_store, damage_pages, last_table_root


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A data dir whose store has random bytes in every 2nd data page, with the schema intact."""
    data_dir = tmp_path / "data"
    path = build_store(data_dir)
    assert damage_pages(path, first=last_table_root(path) + 1, every=2) >= 3
    return data_dir


def test_quick_check_passes(tmp_path: Path) -> None:
    """An intact store passes the check."""
    path = build_store(tmp_path / "data")
    conn = connect(path)
    try:
        assert check_integrity(conn, path) is True
    finally:
        conn.close()


def test_damaged_store_rejected(damaged: Path) -> None:
    """open_store(verify=True) raises StoreCorruptError naming the file and both fixes."""
    with pytest.raises(StoreCorruptError) as caught:
        open_store(damaged, verify=True)

    message = str(caught.value)
    assert str(damaged / DB_FILENAME) in message
    assert "restore it from a backup" in message
    assert "move" in message


def test_damaged_store_unverified_opens(damaged: Path) -> None:
    """Without verify, open_store does not scan the file (readers keep their fast open)."""
    conn = open_store(damaged)
    conn.close()


def test_damaged_schema_rejected(tmp_path: Path) -> None:
    """Damage that reaches the schema pages fails connect with the same message and fixes."""
    data_dir = tmp_path / "data"
    damage_pages(build_store(data_dir))

    with pytest.raises(StoreCorruptError) as caught:
        connect(data_dir / DB_FILENAME)

    message = str(caught.value)
    assert str(data_dir / DB_FILENAME) in message
    assert "malformed" in message
    assert "restore it from a backup" in message


def test_not_a_database_rejected(tmp_path: Path) -> None:
    """A file that is not SQLite at all is reported as damaged, not as a raw DatabaseError."""
    path = tmp_path / DB_FILENAME
    path.write_bytes(b"not a database, just text " * 200)

    with pytest.raises(StoreCorruptError, match="file is not a database"):
        connect(path)


def test_check_budget_stops(tmp_path: Path) -> None:
    """A check that runs out of its time budget returns False instead of blocking the start."""
    path = build_store(tmp_path / "data", points=400)
    ticks = iter(range(1_000_000))
    conn = connect(path)
    try:
        finished = check_integrity(conn, path, budget=0.5, clock=lambda: float(next(ticks)))
    finally:
        conn.close()

    assert finished is False


def test_data_dir_is_file(tmp_path: Path) -> None:
    """A data dir that is a regular file is named, with the fix, before anything is created."""
    path = tmp_path / "plain-file"
    path.write_text("x", encoding="utf-8")

    with pytest.raises(StoreOpenError) as caught:
        open_store(path)

    message = str(caught.value)
    assert message.startswith(f"{path} is a file, not a directory")
    assert "--data-dir" in message
    assert "ATLAS_DATA_DIR" in message


def test_data_dir_under_file(tmp_path: Path) -> None:
    """A data dir whose parent is a file cannot be created, and the error names it."""
    parent = tmp_path / "plain-file"
    parent.write_text("x", encoding="utf-8")

    with pytest.raises(StoreOpenError) as caught:
        open_store(parent / "data")

    assert f"cannot create the data directory {parent / 'data'}" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_data_dir_not_writable(tmp_path: Path) -> None:
    """A data dir without write permission is named with the fix."""
    data_dir = tmp_path / "ro"
    data_dir.mkdir()
    data_dir.chmod(0o500)
    try:
        with pytest.raises(StoreOpenError) as caught:
            open_store(data_dir)
    finally:
        data_dir.chmod(0o700)

    assert f"the data directory {data_dir} is not writable" in str(caught.value)


@pytest.fixture
def beating(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A store whose heartbeat row was written by pid 4242."""
    conn = open_store(tmp_path / "data")
    write_heartbeat(conn, Heartbeat(pid=4242, host="h", started_at=1.0, updated_at=2.0, version="t"))
    yield conn
    conn.close()


def test_clear_heartbeat_own(beating: sqlite3.Connection) -> None:
    """Clearing with the writer's pid deletes the row, so the daemon reads as absent."""
    assert clear_heartbeat(beating, 4242) is True
    assert read_heartbeat(beating) is None


def test_clear_heartbeat_other_pid(beating: sqlite3.Connection) -> None:
    """Clearing with another pid keeps the row of the daemon that wrote it."""
    assert clear_heartbeat(beating, 999) is False
    assert read_heartbeat(beating) is not None


def test_clear_heartbeat_any(beating: sqlite3.Connection) -> None:
    """Clearing without a pid deletes whichever row is there."""
    assert clear_heartbeat(beating) is True
    assert read_heartbeat(beating) is None

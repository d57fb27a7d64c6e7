"""Consistent copies of live SQLite databases through SQLite's online backup API.

Copying the database file with `read()` while a writer runs can tear pages and
misses every transaction that still sits in the `-wal` file. The online backup API
copies all pages in one step under a read transaction, so the copy contains exactly
the transactions committed before that step, including those only in the WAL.

The copy keeps the source's page numbering, and a write changes whole pages in
place or appends new ones. `page_chunks` therefore cuts copies at fixed page-aligned
offsets instead of content-defined ones: a changed page changes only the chunk it is
in, and nothing after it shifts.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DATABASE_CHUNK_SIZE",
    "SCRATCH_PREFIX",
    "SIDECAR_SUFFIXES",
    "SQLITE_MAGIC",
    "copy_database",
    "is_sqlite_file",
    "page_chunks",
    "page_size",
    "remove_scratch_directories",
    "scratch_directories",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
"""First 16 bytes of every SQLite 3 database file."""
SIDECAR_SUFFIXES = (b"-wal", b"-shm", b"-journal")
"""Files next to a database that the copy already covers and that a restore must not bring back."""
DATABASE_CHUNK_SIZE = 64 * 1024
"""Chunk size of database copies in bytes: 16 pages of SQLite's default 4 KiB, so a
small change stores little new data while the index stays small."""
SCRATCH_PREFIX = ".tmp-sqlite-"
"""Name prefix of the directories in the repository root that hold a run's database copies.
A copy is plaintext, so the directory is mode 0700 and the copy 0600."""
_READ_CHUNKS = 16

logger = logging.getLogger(__name__)


def is_sqlite_file(path: bytes) -> bool:
    """Return True when the file at `path` starts with the SQLite header."""
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def copy_database(source: bytes, destination: Path) -> None:
    """Copy the database at `source` into the new file `destination`.

    The source is opened read-only, so the copy never creates or checkpoints its WAL.
    The copy is scratch data that the caller deletes, so it is written without a journal
    and without fsync. `destination` is created with mode 0600 before SQLite opens it,
    because the copy contains the database in plaintext.

    Raises:
        sqlite3.Error: the database cannot be opened or read.
        FileExistsError: `destination` already exists.
    """
    uri = "file:" + urllib.parse.quote(source) + "?mode=ro"
    os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    reader = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        writer = sqlite3.connect(destination)
        try:
            writer.execute("PRAGMA journal_mode=OFF")
            writer.execute("PRAGMA synchronous=OFF")
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


def scratch_directories(repository: Path) -> list[Path]:
    """Return the database copy directories (`SCRATCH_PREFIX`) in the repository root."""
    return sorted(path for path in repository.glob(f"{SCRATCH_PREFIX}*") if path.is_dir() and not path.is_symlink())


def remove_scratch_directories(repository: Path) -> tuple[int, int]:
    """Delete the database copy directories that killed runs left; return their number and size in bytes.

    Call it only with the repository lock held and no backup of this process running,
    because a running backup keeps its current copy in such a directory.
    """
    removed = 0
    size = 0
    for directory in scratch_directories(repository):
        size += sum(path.lstat().st_size for path in directory.rglob("*") if path.is_file())
        shutil.rmtree(directory)
        removed += 1
        logger.info("removed leftover database copy directory path=%s", directory)
    return removed, size


def page_size(path: Path) -> int:
    """Return the page size in bytes from a database file's header.

    Raises:
        ValueError: the header is missing or names an invalid page size.
    """
    with path.open("rb") as handle:
        header = handle.read(18)
    if len(header) < 18 or not header.startswith(SQLITE_MAGIC):
        raise ValueError(f"{path} has no SQLite header")
    value = int.from_bytes(header[16:18], "big")
    size = 65536 if value == 1 else value
    if size < 512 or size & (size - 1):
        raise ValueError(f"{path} names an invalid page size {value}")
    return size


def page_chunks(
    handle: BinaryIO, page: int, on_block: Callable[[bytes], object] | None = None
) -> Iterator[memoryview]:
    """Yield a database copy in chunks of a whole number of pages, about `DATABASE_CHUNK_SIZE` each.

    The chunks are read-only views into blocks of `_READ_CHUNKS` chunks, read at once.
    `on_block` is called with each block before its chunks are yielded.
    """
    size = max(page, DATABASE_CHUNK_SIZE // page * page)
    while block := handle.read(size * _READ_CHUNKS):
        if on_block is not None:
            on_block(block)
        view = memoryview(block)
        for start in range(0, len(block), size):
            yield view[start : start + size]

"""Crash-safe file writes for the repository.

A file is written under a temporary name in its final directory, flushed with
fsync, renamed over the final name and the directory is fsynced. After a crash at
any point the final name either does not exist or contains the whole file. Leftover
temporaries start with `.tmp-` and are never read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "AtomicFile", "fsync_dir", "write_atomic"]

TEMP_PREFIX = ".tmp-"
"""Name prefix of files still being written."""


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that readers see either nothing or all of it."""
    with AtomicFile(path, mode) as handle:
        handle.write(data)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new or renamed names) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A file opened under a temporary name and renamed to its final name on commit.

    As a context manager it commits when the block ends normally and removes the
    temporary file when the block raises. With `durable=False` the commit renames
    without any fsync: a crash can then leave the final name with missing data, which
    suits files that can be written again, such as restored files.
    """

    def __init__(self, path: Path, mode: int = 0o600, *, durable: bool = True) -> None:
        self.path = path
        """Final name; it can be changed before `commit`."""
        self.durable = durable
        path.parent.mkdir(parents=True, exist_ok=True)
        self.temp_path = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        self.handle: BinaryIO = os.fdopen(fd, "wb")

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes to the temporary file."""
        self.handle.write(data)

    def commit(self) -> None:
        """Flush, fsync, rename to `path` and fsync the directory; only flush and rename when not durable."""
        self.handle.flush()
        if not self.durable:
            self.handle.close()
            os.replace(self.temp_path, self.path)
            return
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.temp_path, self.path)
        fsync_dir(self.path.parent)
        if self.path.parent != self.temp_path.parent:
            fsync_dir(self.temp_path.parent)

    def discard(self) -> None:
        """Close and remove the temporary file."""
        self.handle.close()
        self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

"""Writing of a restore's regular files, one directory's batch at a time.

`FileWriter.write_batch` opens the batch's directory once and creates each file
relative to that descriptor, so the kernel does not walk the full path again for
every file. A small file then costs `openat`, `pread` of its chunk, `write`,
`utimensat` and `close`: ownership and permissions are set with `fchown` and
`fchmod` only when creating the file could not give them already.

A file of `DIRECT_BYTES` or more is written with `O_DIRECT`, from an aligned buffer,
past the page cache. On the VM that `bench/backup_vs_restic.sh` ran on, every new
page-cache page cost the kernel about 10 µs: `dd` took 2.5 s of system time to
write 1000 MiB through the cache, and 0.07 s (0.4 s in all) with `O_DIRECT`. It also
keeps a large restore from pushing the running services' files out of the cache. The
last partial block goes through the cache, and a filesystem that rejects `O_DIRECT`
(such as tmpfs on older kernels) gets every file through the cache.

Both sides of a restore use it: `Restorer` in its own process for small restores, and
each process of `restore_workers` for large ones. The caller has created the
directory and checked that it resolves inside the restore target. A file is opened
with `O_EXCL | O_NOFOLLOW`, so an existing name, a symlink included, is never
written through: the file is written under a temporary name and renamed over it.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import mmap
import os
from collections.abc import Callable
from typing import NamedTuple

from atlas_tui.backup.atomic import TEMP_PREFIX
from atlas_tui.backup.chunk_reader import ChunkReader
from atlas_tui.backup.errors import BackupError, CorruptData
from atlas_tui.backup.models import Entry, SkippedPath, display_path

__all__ = ["DIRECT_BYTES", "Batch", "FileWriter", "Report"]

logger = logging.getLogger(__name__)

Report = Callable[[int, int], None]
"""Called with the files finished and the file bytes written since the previous call."""


class Batch(NamedTuple):
    """Files of one directory that one process writes in order."""

    directory: bytes
    """Absolute path of the files' parent directory, created and checked by the caller."""
    entries: list[Entry]
    """File entries, each with `directory` as its parent."""

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
"""0 where the platform has no `O_DIRECT`, which turns direct writes off."""
DIRECT_BYTES = 1024 * 1024
"""A file of this size or more is written with `O_DIRECT`."""
_DIRECT_ALIGN = 4096
"""Alignment of a direct write's buffer, file offset and length: the largest logical
block size of common disks, so it suits 512-byte ones as well."""
_DIRECT_BUFFER = 1024 * 1024
_SPECIAL_BITS = 0o7000
"""setuid, setgid and sticky: `fchown` clears the first two, so they are set after it."""


class FileWriter:
    """Writes regular files from a repository's chunks into existing directories.

    Args:
        reader: Reads the chunks; its calls run on the calling thread.
        is_root: Restore owners, which only root may change.
        umask_is_zero: The process umask is 0, so a file created with its final
            permission bits needs no `fchmod`. Only a process that owns its umask,
            such as a restore worker, can promise this.
    """

    def __init__(self, reader: ChunkReader, *, is_root: bool, umask_is_zero: bool = False) -> None:
        self._reader = reader
        self._is_root = is_root
        self._umask_is_zero = umask_is_zero
        self._temporaries = itertools.count()
        self._direct = bool(_O_DIRECT)
        """False once a filesystem rejected a direct write, so no later file tries again."""
        self._buffer: mmap.mmap | None = None
        """Page-aligned buffer of the direct writes, made on the first one."""

    def write_batch(self, batch: Batch, report: Report) -> list[SkippedPath]:
        """Write the files of `batch` in order, calling `report` after each chunk and each file.

        A file with a chunk that is missing or damaged in the repository is removed and
        left out, and the rest of the batch is written: the returned list names each
        such file with the problem. Any other exception (from writing or `report`)
        removes the file being written and propagates; files finished before it stay.
        """
        damaged: list[SkippedPath] = []
        dir_fd = os.open(batch.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # Owner that a new file in this directory gets, learned from the first file.
            owner: tuple[int, int] | None = None
            for entry in batch.entries:
                try:
                    owner = self._write_file(dir_fd, batch.directory, entry, owner, report)
                except CorruptData as err:
                    damaged.append(SkippedPath(path=entry.display_path(), reason=str(err)))
                    report(1, 0)
                except OSError as err:
                    # Calls relative to `dir_fd` name only the file or its temporary name,
                    # and `write` names nothing.
                    if err.filename is None or isinstance(err.filename, bytes) and b"/" not in err.filename:
                        path = os.fsdecode(os.path.join(batch.directory, entry.path.rpartition(b"/")[2]))
                        raise OSError(err.errno, err.strerror, path) from err
                    raise
        finally:
            os.close(dir_fd)
        return damaged

    def _write_file(
        self, dir_fd: int, directory: bytes, entry: Entry, owner: tuple[int, int] | None, report: Report
    ) -> tuple[int, int] | None:
        """Write one file in `dir_fd` and return the owner a new file there gets, once known."""
        name = entry.path.rpartition(b"/")[2]
        chown = self._is_root and (owner is None or owner != (entry.uid, entry.gid))
        final_mode = self._umask_is_zero and not chown and not entry.mode & _SPECIAL_BITS
        create_mode = entry.mode if final_mode else 0o600
        direct = self._direct and entry.size >= DIRECT_BYTES
        flags = _CREATE_FLAGS | (_O_DIRECT if direct else 0)
        try:
            try:
                fd = os.open(name, flags, create_mode, dir_fd=dir_fd)
                temporary = None
            except FileExistsError:
                temporary, fd = self._create_temporary(dir_fd, flags, create_mode)
        except OSError as err:
            if not direct or err.errno != errno.EINVAL:
                raise
            # The filesystem rejected O_DIRECT. If it created the file first, the retry finds
            # it and writes under a temporary name, which it renames over that file.
            self._stop_direct(directory, err)
            return self._write_file(dir_fd, directory, entry, owner, report)
        try:
            if self._is_root and owner is None:
                created = os.fstat(fd)
                owner = (created.st_uid, created.st_gid)
                chown = owner != (entry.uid, entry.gid)
            if direct:
                self._write_direct(fd, directory, entry, report)
            else:
                for plain in self._reader.iter_chunks(entry):
                    _write_all(fd, plain)
                    report(0, len(plain))
            if chown:
                os.fchown(fd, entry.uid, entry.gid)
            if not final_mode:
                os.fchmod(fd, entry.mode)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        except BaseException:
            os.close(fd)
            os.unlink(temporary or name, dir_fd=dir_fd)
            raise
        os.close(fd)
        if temporary is not None:
            try:
                os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except IsADirectoryError as err:
                os.unlink(temporary, dir_fd=dir_fd)
                raise BackupError(
                    f"{display_path(os.path.join(directory, name))} in the restore target is a directory, and the "
                    "snapshot has a file there; move or remove that directory, or restore into an empty target"
                ) from err
            except BaseException:
                os.unlink(temporary, dir_fd=dir_fd)
                raise
        report(1, 0)
        return owner

    def _create_temporary(self, dir_fd: int, flags: int, mode: int) -> tuple[bytes, int]:
        """Create a new file for writing in `dir_fd` and return its name and descriptor."""
        while True:
            name = b"%s%d-%d" % (TEMP_PREFIX.encode(), os.getpid(), next(self._temporaries))
            try:
                return name, os.open(name, flags, mode, dir_fd=dir_fd)
            except FileExistsError:
                continue

    def _write_direct(self, fd: int, directory: bytes, entry: Entry, report: Report) -> None:
        """Write a file opened with `O_DIRECT` in whole aligned blocks, and its last partial block through the cache."""
        if self._buffer is None:
            self._buffer = mmap.mmap(-1, _DIRECT_BUFFER)
        buffer = memoryview(self._buffer)
        filled = 0
        for plain in self._reader.iter_chunks(entry):
            data = memoryview(plain)
            while data:
                count = min(len(data), _DIRECT_BUFFER - filled)
                buffer[filled : filled + count] = data[:count]
                filled += count
                data = data[count:]
                if filled == _DIRECT_BUFFER:
                    self._write_blocks(fd, directory, buffer)
                    filled = 0
            report(0, len(plain))
        whole = filled - filled % _DIRECT_ALIGN
        if whole:
            self._write_blocks(fd, directory, buffer[:whole])
        if filled > whole:
            _end_direct(fd)
            _write_all(fd, buffer[whole:filled])

    def _write_blocks(self, fd: int, directory: bytes, data: memoryview) -> None:
        """Write aligned `data` to `fd`, through the cache from the first short or rejected direct write on."""
        try:
            written = os.write(fd, data)
        except OSError as err:
            if err.errno != errno.EINVAL or not fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT:
                raise
            self._stop_direct(directory, err)
            _end_direct(fd)
            written = 0
        if written < len(data):
            # A short write leaves the file offset unaligned, and a direct write then fails.
            _end_direct(fd)
            _write_all(fd, data[written:])

    def _stop_direct(self, directory: bytes, err: OSError) -> None:
        """Turn direct writes off for every later file of this writer, and log why."""
        self._direct = False
        logger.info(
            "O_DIRECT not supported by the filesystem, writing through the page cache from now on directory=%s error=%s",
            display_path(directory), err.strerror,
        )


def _end_direct(fd: int) -> None:
    """Make later writes to `fd` go through the page cache."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]

"""Restore of a snapshot into a target directory.

Every entry lands at `<target>/<entry path>`. Before anything is written, each
path is checked: absolute paths, `.` and `..` components and NUL bytes are
rejected. While writing, each parent directory is resolved and must stay inside
the target, so a symlink already in the target (or one restored earlier) cannot
send data elsewhere. A parent that passed this check is not resolved again until
the symlinks are restored. Files are written under a temporary name and renamed over
the destination, which replaces a symlink at that name instead of following it.
Symlinks are created after files and directories, and directory times last.

Writer threads read, decrypt and write whole files, several at a time (see
`_restore_contents`). Restored files are not fsynced, as restic and borg do not
fsync them either: run `sync` before relying on them surviving a power loss.

A restored SQLite database loses any `-wal`, `-shm` or `-journal` file next to it,
because those belong to another database and would corrupt the restored one. A
database whose directory is locked by a running atlas daemon is not replaced.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError
from pathlib import Path

from atlas_tui.backup.atomic import TEMP_PREFIX
from atlas_tui.backup.chunk_reader import ChunkReader
from atlas_tui.backup.errors import BackupError, UnsafeRestorePath
from atlas_tui.backup.models import Entry, RestoreResult, SkippedPath, Snapshot
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.sqlite_copy import SIDECAR_SUFFIXES
from atlas_tui.lockfile import lock_holder

__all__ = ["Restorer", "check_entry_path", "is_within"]

_WRITERS = 2
"""Threads that write large files."""
_THREADED_FILE_BYTES = 1024 * 1024
"""Larger files, and every database, go to a writer thread."""
_MAX_PENDING_TASKS = 8
_PROGRESS_SECONDS = 0.25

logger = logging.getLogger(__name__)


def check_entry_path(path: bytes) -> None:
    """Reject a snapshot path that could leave the target directory.

    Raises:
        UnsafeRestorePath: the path is empty, absolute, or has `.`, `..` or NUL in it.
    """
    display = path.decode("utf-8", "backslashreplace")
    if not path or path.startswith(b"/") or b"\x00" in path:
        raise UnsafeRestorePath(f"snapshot path {display!r} is empty, absolute or contains NUL; refusing to restore")
    if any(part in (b"", b".", b"..") for part in path.split(b"/")):
        raise UnsafeRestorePath(f"snapshot path {display!r} contains '.', '..' or an empty component; refusing to restore")


class Restorer:
    """Writes snapshots of one repository into target directories."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._is_root = os.geteuid() == 0
        self._temporaries = itertools.count()
        self._checked_parents: set[bytes] = set()
        """Parent paths, relative to the target, already resolved inside it in this restore."""

    def restore(
        self, snapshot: Snapshot, target: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> RestoreResult:
        """Restore every entry of `snapshot` under `target`, creating it if needed.

        Args:
            progress: Called after each chunk and after each entry other than a
                symlink, with the entries done and the file bytes written so far. An
                exception it raises stops the restore.

        Raises:
            UnsafeRestorePath: an entry would land outside `target`.
            CorruptData: a chunk is missing or fails authentication.
            BackupError: a database to replace is held by a running daemon.
        """
        entries = sorted(snapshot.entries, key=lambda entry: entry.path)
        for entry in entries:
            check_entry_path(entry.path)
        target.mkdir(parents=True, exist_ok=True)
        root = os.fsencode(os.path.realpath(target))
        result = RestoreResult(id=snapshot.id, target=str(target))
        logger.info("restore started id=%s target=%s entries=%d", snapshot.id, target, len(entries))

        self._checked_parents = set()
        self._restore_contents(root, entries, result, progress)
        # A symlink restored below may replace a checked parent, so each one is resolved again.
        self._checked_parents = set()
        for entry in entries:
            if entry.type == "symlink":
                self._restore_symlink(root, entry, result)
        for entry in reversed(entries):
            if entry.type == "dir":
                self._set_metadata(os.path.join(root, entry.path), entry)

        logger.info("restore finished id=%s target=%s files=%d bytes=%d", snapshot.id, target, result.files, result.bytes)
        return result

    def _restore_contents(
        self,
        root: bytes,
        entries: list[Entry],
        result: RestoreResult,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """Restore every entry but the symlinks; writer threads write the large files.

        Reading, decrypting and writing a large file runs mostly without the GIL, so
        `_WRITERS` threads write files over `_THREADED_FILE_BYTES` while this thread
        creates directories, special files and small files in order. Small files stay
        on this thread because each releases the GIL about ten times: with three or four
        threads writing them, a restore of 42,000 files made over a million futex calls
        and spent three times the kernel time. While a large file is being written,
        `progress` gets the bytes written so far every `_PROGRESS_SECONDS`.
        """
        done = 0
        pending: deque[tuple[list[Entry], Future[None]]] = deque()
        written = _ByteCounter()
        stop = threading.Event()

        def count(entries: list[Entry]) -> None:
            nonlocal done
            for entry in entries:
                result.files += 1
                result.bytes += entry.size
            done += len(entries)
            if progress is not None:
                progress(done, max(result.bytes, written.total))

        def complete_oldest(wait: bool) -> None:
            entries, job = pending[0]
            while wait and not job.done():
                try:
                    job.result(timeout=_PROGRESS_SECONDS)
                except TimeoutError:
                    if progress is not None:
                        progress(done, max(result.bytes, written.total))
            if job.done():
                job.result()
                pending.popleft()
                count(entries)

        def submit(files: list[tuple[bytes, Entry]]) -> None:
            job = writers.submit(self._restore_files, files, reader, written, stop)
            pending.append(([entry for _, entry in files], job))
            if len(pending) > _MAX_PENDING_TASKS:
                complete_oldest(wait=True)

        index = self.repository.load_index()
        with ChunkReader(self.repository, index) as reader, ThreadPoolExecutor(
            max_workers=_WRITERS, thread_name_prefix="restore-write"
        ) as writers:
            try:
                for entry in entries:
                    if entry.type == "symlink":
                        continue
                    while pending and pending[0][1].done():
                        complete_oldest(wait=False)
                    if entry.type == "file":
                        destination = self._destination(root, entry.path)
                        if entry.sqlite:
                            self._check_database_free(destination)
                        if entry.size > _THREADED_FILE_BYTES or entry.sqlite:
                            submit([(destination, entry)])
                        else:
                            self._restore_files([(destination, entry)], reader, written, stop)
                            count([entry])
                        continue
                    self._restore_entry(root, entry, result)
                    done += 1
                    if progress is not None:
                        progress(done, max(result.bytes, written.total))
                while pending:
                    complete_oldest(wait=True)
            finally:
                stop.set()
                for _, job in pending:
                    job.cancel()

    def _restore_entry(self, root: bytes, entry: Entry, result: RestoreResult) -> None:
        """Create a directory, FIFO or device entry."""
        destination = self._destination(root, entry.path)
        if entry.type == "dir":
            if os.path.islink(destination):
                os.unlink(destination)
            os.makedirs(destination, mode=0o700, exist_ok=True)
            result.dirs += 1
            return
        if not self._restore_special(destination, entry, result):
            return
        result.special += 1
        self._set_metadata(destination, entry)

    def _restore_files(
        self,
        files: list[tuple[bytes, Entry]],
        reader: ChunkReader,
        written: _ByteCounter,
        stop: threading.Event,
    ) -> None:
        """Write files chunk by chunk to their destinations, on this thread or a writer thread."""
        for destination, entry in files:
            self._write_file(destination, entry, reader.iter_chunks(entry), written, stop)
            if entry.sqlite:
                self._remove_sidecars(destination)

    def _remove_sidecars(self, destination: bytes) -> None:
        """Delete `-wal`, `-shm` and `-journal` files left next to a restored database."""
        for suffix in SIDECAR_SUFFIXES:
            sidecar = destination + suffix
            if os.path.lexists(sidecar):
                os.unlink(sidecar)
                logger.info("removed stale database sidecar path=%s", os.fsdecode(sidecar))

    def _write_file(
        self,
        destination: bytes,
        entry: Entry,
        chunks: Iterable[bytes],
        written: _ByteCounter,
        stop: threading.Event,
    ) -> None:
        """Write `chunks` to a new file with the entry's metadata at `destination`.

        A new name is created directly. Over an existing name, the file is written
        under a temporary name and renamed over it, so a symlink there is replaced,
        never followed. The write stops with an exception once `stop` is set.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(destination, flags, 0o600)
            temporary = None
        except FileExistsError:
            temporary, fd = self._create_temporary(destination)
        try:
            for plain in chunks:
                if stop.is_set():
                    raise _RestoreStopped(entry.display_path())
                _write_all(fd, plain)
                written.add(len(plain))
            self._set_file_metadata(fd, entry)
        except BaseException:
            os.close(fd)
            os.unlink(temporary or destination)
            raise
        os.close(fd)
        if temporary is not None:
            os.replace(temporary, destination)

    def _restore_special(self, destination: bytes, entry: Entry, result: RestoreResult) -> bool:
        if os.path.lexists(destination):
            os.unlink(destination)
        if entry.type == "fifo":
            os.mkfifo(destination, 0o600)
            return True
        if entry.type in ("chardev", "blockdev") and self._is_root and entry.rdev is not None:
            kind = stat.S_IFCHR if entry.type == "chardev" else stat.S_IFBLK
            os.mknod(destination, kind | 0o600, entry.rdev)
            return True
        reason = "sockets are recreated by the program that listens on them"
        if entry.type != "socket":
            reason = "creating device files needs root"
        result.not_restored.append(SkippedPath(path=entry.display_path(), reason=reason))
        return False

    def _restore_symlink(self, root: bytes, entry: Entry, result: RestoreResult) -> None:
        destination = self._destination(root, entry.path)
        if os.path.lexists(destination):
            if os.path.isdir(destination) and not os.path.islink(destination):
                raise UnsafeRestorePath(f"{entry.display_path()} is a directory in the target; cannot replace it with a symlink")
            os.unlink(destination)
        os.symlink(entry.link_target or b"", destination)
        self._set_metadata(destination, entry)
        result.symlinks += 1

    def _destination(self, root: bytes, path: bytes) -> bytes:
        """Create the parents of `path` under `root` and return its full path.

        Raises:
            UnsafeRestorePath: a parent resolves outside `root`.
        """
        parent, _, name = path.rpartition(b"/")
        if parent in self._checked_parents:
            return os.path.join(root, path)
        current = root
        for part in parent.split(b"/") if parent else []:
            current = os.path.join(current, part)
            if not os.path.lexists(current):
                os.mkdir(current, 0o700)
            real = os.path.realpath(current)
            if not is_within(real, root):
                display = path.decode("utf-8", "backslashreplace")
                raise UnsafeRestorePath(
                    f"restoring {display!r} would write through {os.fsdecode(current)!r}, which leads outside "
                    f"the target {os.fsdecode(root)!r}; remove that symlink or choose an empty target"
                )
        self._checked_parents.add(parent)
        return os.path.join(current, name)

    def _check_database_free(self, destination: bytes) -> None:
        directory = Path(os.fsdecode(os.path.dirname(destination)))
        pid = lock_holder(directory) if os.path.exists(destination) else None
        if pid is not None:
            raise BackupError(
                f"{os.fsdecode(destination)} belongs to a running atlas daemon (pid {pid}); "
                "stop the daemon before restoring over its database, or restore into another target"
            )

    def _create_temporary(self, destination: bytes) -> tuple[bytes, int]:
        """Create a new file for writing next to `destination` and return its name and descriptor."""
        directory = os.path.dirname(destination)
        while True:
            number = next(self._temporaries)
            name = os.path.join(directory, b"%s%d-%d" % (TEMP_PREFIX.encode(), os.getpid(), number))
            try:
                return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue

    def _set_file_metadata(self, fd: int, entry: Entry) -> None:
        if self._is_root:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def _set_metadata(self, path: bytes, entry: Entry) -> None:
        if self._is_root:
            os.lchown(path, entry.uid, entry.gid)
        if entry.type != "symlink":
            os.chmod(path, entry.mode)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


class _ByteCounter:
    """Bytes written by all writer threads so far."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self.total += count


class _RestoreStopped(Exception):
    """Raised in a writer thread when the restore stopped because of an error elsewhere."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def is_within(path: bytes, root: bytes) -> bool:
    """Return True when the resolved `path` is `root` or lies under it; `root` may be `/`."""
    prefix = root if root.endswith(b"/") else root + b"/"
    return path == root or path.startswith(prefix)

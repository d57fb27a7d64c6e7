"""Restore of a snapshot into a target directory.

Every entry lands at `<target>/<entry path>`. Before anything is written, each
path is checked: absolute paths, `.` and `..` components and NUL bytes are
rejected. A directory is created before the files in it, in path order, except
that the parents of large files are created first. The parent directory of every entry is
resolved and must stay inside the target, so a symlink already in the target cannot
send data elsewhere. A parent that passed this check is not resolved again until the
symlinks are restored. A file over an existing name is written under a temporary
name and renamed over it, which replaces a symlink at that name instead of following
it. Symlinks are created after files and directories, and directory times last.

A restore of many files or bytes writes its files in `restore_workers` processes,
one per core up to `restore_workers.MAX_WORKERS`. Each process takes the small files
of one directory or one large file at a time (see that module for why processes and
not threads). A small restore writes its files in the calling thread. Restored files
are not fsynced, as restic and borg do not fsync them either: run `sync` before
relying on them surviving a power loss.

A file with a chunk that is missing or damaged in the repository is left out and
listed in `RestoreResult.damaged`, and the other files are still restored: in a
recovery, every intact file counts.

A restored SQLite database loses any `-wal`, `-shm` or `-journal` file next to it,
because those belong to another database and would corrupt the restored one. A
database whose directory is locked by a running atlas daemon is not replaced.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from atlas_tui.backup.chunk_reader import ChunkReader
from atlas_tui.backup.errors import BackupError, UnsafeRestorePath
from atlas_tui.backup.file_writer import Batch, FileWriter
from atlas_tui.backup.models import Entry, RestoreResult, SkippedPath, Snapshot, display_path
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restore_workers import RestoreWorkers
from atlas_tui.backup.sqlite_copy import SIDECAR_SUFFIXES
from atlas_tui.lockfile import lock_holder

__all__ = ["Restorer", "check_entry_path", "is_within"]

_INLINE_FILES = 1000
_INLINE_BYTES = 64 * 1024 * 1024
"""A restore with fewer files and bytes than these writes them in the calling thread,
where starting worker processes (about 0.2 s of CPU each) would cost more than it saves."""
_BATCH_FILES = 128
_BATCH_BYTES = 4 * 1024 * 1024
"""A batch of small files of one directory ends at this many files or bytes, so the
processes finish their last batches at about the same time."""
_LARGE_FILE_BYTES = 1024 * 1024
"""A larger file, and every database, is a batch of its own."""

logger = logging.getLogger(__name__)


def check_entry_path(path: bytes) -> None:
    """Reject a snapshot path that could leave the target directory.

    Raises:
        UnsafeRestorePath: the path is empty, absolute, or has `.`, `..` or NUL in it.
    """
    if not path or path.startswith(b"/") or b"\x00" in path:
        display = path.decode("utf-8", "backslashreplace")
        raise UnsafeRestorePath(f"snapshot path {display!r} is empty, absolute or contains NUL; refusing to restore")
    # Each component is enclosed in slashes here, so `.`, `..` and empty ones show as these.
    enclosed = b"/" + path + b"/"
    if b"//" in enclosed or b"/./" in enclosed or b"/../" in enclosed:
        display = path.decode("utf-8", "backslashreplace")
        raise UnsafeRestorePath(f"snapshot path {display!r} contains '.', '..' or an empty component; refusing to restore")


class Restorer:
    """Writes snapshots of one repository into target directories.

    Args:
        workers: Where files are written. 0 writes them in the calling thread, a
            number starts that many worker processes per restore, and started
            `RestoreWorkers` are used as they are (and closed by their creator). By
            default a small restore uses none and a large one one process per core,
            at most `restore_workers.MAX_WORKERS`.
    """

    def __init__(self, repository: Repository, *, workers: int | RestoreWorkers | None = None) -> None:
        self.repository = repository
        self._workers = workers
        self._is_root = os.geteuid() == 0
        self._checked_parents: set[bytes] = set()
        """Parent paths, relative to the target, already resolved inside it in this restore."""

    def restore(
        self, snapshot: Snapshot, target: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> RestoreResult:
        """Restore every entry of `snapshot` under `target`, creating it if needed.

        Args:
            progress: Called with the entries done and the file bytes written so far:
                after each directory and special file, after each chunk and file
                written in this thread, and after each batch of a worker process and
                every 0.25 s while it writes a large file. The last call counts every
                entry but the symlinks, and every file byte unless a file was left
                out as damaged. An exception it raises stops the restore.

        A file with a chunk that is missing from the repository or fails
        authentication is removed, listed in the result's `damaged`, and the restore
        goes on with the other entries.

        Raises:
            UnsafeRestorePath: an entry would land outside `target`.
            BackupError: a database to replace is held by a running daemon, or a
                worker process exited or was killed before it finished.
        """
        pool = self._pool(snapshot.entries)
        try:
            if pool is not None:
                pool.open_repository(self.repository)
            result = self._restore(snapshot, target, pool, progress)
        finally:
            if pool is not None and pool is not self._workers:
                pool.close()
        return result

    def _pool(self, entries: list[Entry]) -> RestoreWorkers | None:
        """Return the worker processes for a restore of `entries`, started here unless given."""
        if isinstance(self._workers, RestoreWorkers):
            return self._workers
        if self._workers is not None:
            return RestoreWorkers(self._workers) if self._workers else None
        files = [entry for entry in entries if entry.type == "file"]
        if len(files) < _INLINE_FILES and sum(entry.size for entry in files) < _INLINE_BYTES:
            return None
        return RestoreWorkers.for_cores()

    def _restore(
        self,
        snapshot: Snapshot,
        target: Path,
        pool: RestoreWorkers | None,
        progress: Callable[[int, int], None] | None,
    ) -> RestoreResult:
        """Restore every entry, writing the files in `pool`'s processes or, without one, in this thread."""
        entries = sorted(snapshot.entries, key=lambda entry: entry.path)
        for entry in entries:
            check_entry_path(entry.path)
        if target.exists() and not target.is_dir():
            raise BackupError(f"restore target {target} exists and is not a directory; choose a directory")
        target.mkdir(parents=True, exist_ok=True)
        root = os.fsencode(os.path.realpath(target))
        result = RestoreResult(id=snapshot.id, target=str(target))
        logger.info(
            "restore started id=%s target=%s entries=%d workers=%d",
            snapshot.id, target, len(entries), pool.count if pool is not None else 0,
        )

        self._checked_parents = set()
        counter = _ProgressCounter(progress)
        groups = self._plan(root, entries, result, counter)
        if pool is None:
            self._write_here(groups, result, counter)
        else:
            pool.run(groups, counter.add, lambda batch, damaged: self._finish_batch(batch, damaged, result))
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

    def _plan(
        self, root: bytes, entries: list[Entry], result: RestoreResult, counter: _ProgressCounter
    ) -> Iterator[list[Batch]]:
        """Create directories and special files, and yield the files in batches as their directories exist.

        Each item is the batches of one stretch of a directory's small files, or one
        large file or database alone. Large files and databases come first, largest
        first, so that the processes that take them early finish at about the time the
        others finish the small files. Every database is checked before the first item,
        so a database held by a running daemon stops the restore before it writes.
        The rest follows in path order: a process starts on the first directory's files
        while this one creates the next directories.
        """
        directories = {entry.path: entry for entry in entries if entry.type == "dir"}
        created: set[bytes] = set()
        large: list[Batch] = []
        for entry in sorted(filter(_is_large, entries), key=lambda entry: entry.size, reverse=True):
            self._create_parents(root, entry.path, directories, created, result, counter)
            destination = self._destination(root, entry.path)
            if entry.sqlite:
                self._check_database_free(destination)
            large.append(Batch(os.path.dirname(destination), [entry]))
        for batch in large:
            yield [batch]

        group: list[Batch] = []
        parent: bytes | None = None
        batch_bytes = 0
        for entry in entries:
            if entry.type == "file":
                if _is_large(entry):
                    continue
                entry_parent = entry.path.rpartition(b"/")[0]
                if entry_parent != parent:
                    if group:
                        yield group
                    directory = os.path.dirname(self._destination(root, entry.path))
                    group, parent = [Batch(directory, [])], entry_parent
                    batch_bytes = 0
                elif len(group[-1].entries) >= _BATCH_FILES or batch_bytes >= _BATCH_BYTES:
                    group.append(Batch(group[-1].directory, []))
                    batch_bytes = 0
                group[-1].entries.append(entry)
                batch_bytes += entry.size
            elif entry.type != "symlink" and entry.path not in created:
                self._restore_entry(root, entry, result)
                counter.add(1, 0)
        if group:
            yield group

    def _create_parents(
        self,
        root: bytes,
        path: bytes,
        directories: dict[bytes, Entry],
        created: set[bytes],
        result: RestoreResult,
        counter: _ProgressCounter,
    ) -> None:
        """Restore the directory entries above `path` ahead of the path-order pass, as that pass would."""
        parts = path.split(b"/")[:-1]
        for depth in range(1, len(parts) + 1):
            ancestor = b"/".join(parts[:depth])
            entry = directories.get(ancestor)
            if entry is not None and ancestor not in created:
                self._restore_entry(root, entry, result)
                counter.add(1, 0)
                created.add(ancestor)

    def _write_here(self, groups: Iterator[list[Batch]], result: RestoreResult, counter: _ProgressCounter) -> None:
        """Write every batch in the calling thread."""
        with ChunkReader(self.repository, self.repository.load_index()) as reader:
            writer = FileWriter(reader, is_root=self._is_root)
            for group in groups:
                for batch in group:
                    damaged = writer.write_batch(batch, counter.add)
                    self._finish_batch(batch, damaged, result)

    def _finish_batch(self, batch: Batch, damaged: list[SkippedPath], result: RestoreResult) -> None:
        """Count a written batch, record its damaged files, and remove stale sidecars of a database in it."""
        left_out = {item.path for item in damaged}
        for item in damaged:
            logger.error("restore left out a damaged file id=%s path=%s error=%s", result.id, item.path, item.reason)
        result.damaged.extend(damaged)
        for entry in batch.entries:
            if left_out and entry.display_path() in left_out:
                continue
            result.files += 1
            result.bytes += entry.size
            if entry.sqlite:
                self._remove_sidecars(os.path.join(batch.directory, entry.path.rpartition(b"/")[2]))

    def _restore_entry(self, root: bytes, entry: Entry, result: RestoreResult) -> None:
        """Create a directory, FIFO or device entry."""
        destination = self._destination(root, entry.path)
        if entry.type == "dir":
            self._make_directory(destination)
            result.dirs += 1
            return
        if not self._restore_special(destination, entry, result):
            return
        result.special += 1
        self._set_metadata(destination, entry)

    def _make_directory(self, destination: bytes) -> None:
        """Create a directory, replacing a file, symlink or special file at its place, and make it writable."""
        try:
            info = os.lstat(destination)
        except FileNotFoundError:
            os.mkdir(destination, 0o700)
            return
        if not stat.S_ISDIR(info.st_mode):
            # Left by an older restore or put there by hand: the snapshot has a directory here.
            os.unlink(destination)
            os.mkdir(destination, 0o700)
        elif not os.access(destination, os.W_OK | os.X_OK):
            # An older restore gave it its final, read-only mode, which is set again at the end.
            # NOTE: only a restore without root gets here, and the tests run as root.
            os.chmod(destination, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)

    def _remove_sidecars(self, destination: bytes) -> None:
        """Delete `-wal`, `-shm` and `-journal` files left next to a restored database."""
        for suffix in SIDECAR_SUFFIXES:
            sidecar = destination + suffix
            if os.path.lexists(sidecar):
                os.unlink(sidecar)
                logger.info("removed stale database sidecar path=%s", os.fsdecode(sidecar))

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
                raise UnsafeRestorePath(
                    f"{display_path(destination)} in the restore target is a directory, and the snapshot has a "
                    "symlink there; move or remove that directory, or restore into an empty target"
                )
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

    def _set_metadata(self, path: bytes, entry: Entry) -> None:
        if self._is_root:
            os.lchown(path, entry.uid, entry.gid)
        if entry.type != "symlink":
            os.chmod(path, entry.mode)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


def _is_large(entry: Entry) -> bool:
    """Return True for a file that is a batch of its own: a database, or one over `_LARGE_FILE_BYTES`."""
    return entry.type == "file" and (entry.sqlite or entry.size > _LARGE_FILE_BYTES)


class _ProgressCounter:
    """Entries done and file bytes written in one restore, passed on to its progress callback."""

    def __init__(self, progress: Callable[[int, int], None] | None) -> None:
        self._progress = progress
        self._entries = 0
        self._bytes = 0

    def add(self, entries: int, written: int) -> None:
        """Count entries finished and bytes written since the previous call, and report the totals."""
        self._entries += entries
        self._bytes += written
        if self._progress is not None:
            self._progress(self._entries, self._bytes)


def is_within(path: bytes, root: bytes) -> bool:
    """Return True when the resolved `path` is `root` or lies under it; `root` may be `/`."""
    prefix = root if root.endswith(b"/") else root + b"/"
    return path == root or path.startswith(prefix)

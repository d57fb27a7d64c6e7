"""Restore of a snapshot into a target directory.

Every entry lands at `<target>/<entry path>`. Before anything is written, each
path is checked: absolute paths, `.` and `..` components and NUL bytes are
rejected. While writing, each parent directory is resolved and must stay inside
the target, so a symlink already in the target (or one restored earlier) cannot
send data elsewhere. Files are written under a temporary name and renamed over
the destination, which replaces a symlink at that name instead of following it.
Symlinks are created after files and directories, and directory times last.

A restored SQLite database loses any `-wal`, `-shm` or `-journal` file next to it,
because those belong to another database and would corrupt the restored one. A
database whose directory is locked by a running atlas daemon is not replaced.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from atlas_tui.backup.atomic import AtomicFile
from atlas_tui.backup.errors import BackupError, CorruptData, UnsafeRestorePath
from atlas_tui.backup.models import Entry, RestoreResult, SkippedPath, Snapshot
from atlas_tui.backup.repository import IndexEntry, Repository
from atlas_tui.backup.sqlite_copy import SIDECAR_SUFFIXES
from atlas_tui.lockfile import lock_holder

__all__ = ["Restorer", "check_entry_path", "is_within"]

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

    def restore(self, snapshot: Snapshot, target: Path) -> RestoreResult:
        """Restore every entry of `snapshot` under `target`, creating it if needed.

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

        index = self.repository.load_index()
        for entry in entries:
            if entry.type != "symlink":
                self._restore_entry(root, entry, index, result)
        for entry in entries:
            if entry.type == "symlink":
                self._restore_symlink(root, entry, result)
        for entry in reversed(entries):
            if entry.type == "dir":
                self._set_metadata(os.path.join(root, entry.path), entry)

        logger.info("restore finished id=%s target=%s files=%d bytes=%d", snapshot.id, target, result.files, result.bytes)
        return result

    def _restore_entry(self, root: bytes, entry: Entry, index: dict[bytes, IndexEntry], result: RestoreResult) -> None:
        destination = self._destination(root, entry.path)
        if entry.type == "dir":
            if os.path.islink(destination):
                os.unlink(destination)
            os.makedirs(destination, mode=0o700, exist_ok=True)
            result.dirs += 1
        elif entry.type == "file":
            self._restore_file(destination, entry, index)
            result.files += 1
            result.bytes += entry.size
        else:
            if not self._restore_special(destination, entry, result):
                return
            result.special += 1
        if entry.type != "dir":
            self._set_metadata(destination, entry)

    def _restore_file(self, destination: bytes, entry: Entry, index: dict[bytes, IndexEntry]) -> None:
        if entry.sqlite:
            self._check_database_free(destination)
        with AtomicFile(Path(os.fsdecode(destination)), mode=0o600) as output:
            for hex_id in entry.chunks:
                identifier = bytes.fromhex(hex_id)
                location = index.get(identifier)
                if location is None:
                    raise CorruptData(
                        f"chunk {hex_id} of {entry.display_path()} is not in the index; "
                        "run `backup-manager integrity` to find the damage"
                    )
                output.write(self.repository.read_chunk(location, identifier))
        if entry.sqlite:
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


def is_within(path: bytes, root: bytes) -> bool:
    """Return True when the resolved `path` is `root` or lies under it; `root` may be `/`."""
    prefix = root if root.endswith(b"/") else root + b"/"
    return path == root or path.startswith(prefix)

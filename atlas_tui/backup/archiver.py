"""The backup run: walk the sets, chunk and store new content, write index and snapshot.

`Archiver.run(request)` takes the repository lock and processes the sets in
priority order. Each regular file is streamed through the chunker (memory stays
bounded by the chunker buffer and one pack's metadata), and only chunks missing
from the index are sealed into packs. A file whose size, mtime, ctime and inode
equal its entry in the parent snapshot reuses that entry's chunks without being
read, unless the request sets `full`. Databases in a set marked `sqlite` are
copied with the online backup API first, cut at page boundaries, and their
`-wal`, `-shm` and `-journal` files are left out. FIFOs, sockets and devices are recorded, never opened.

The packs are finished first, then one index file is written, then the
snapshot. A run with unreadable paths is `partial` and lists them; a run where
nothing was readable is `failed` and writes no snapshot.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from atlas_tui.backup.chunker import Chunker
from atlas_tui.backup.crypto import ContentHasher, chunk_id
from atlas_tui.backup.models import (
    BackupRequest,
    BackupResult,
    BackupSetSpec,
    Entry,
    EntryType,
    RunStatus,
    SetResult,
    SkippedPath,
    Snapshot,
)
from atlas_tui.backup.packs import PackInfo, PackWriter
from atlas_tui.backup.repository import IndexEntry, Repository
from atlas_tui.backup.sqlite_copy import SIDECAR_SUFFIXES, copy_database, is_sqlite_file, page_chunks, page_size

__all__ = ["Archiver", "ProgressCallback", "backup_id"]

ProgressCallback = Callable[[int, int], None]
"""Called after each file and each chunk with the entries done and the bytes read so far."""

SHRINK_RATIO = 0.1
"""A set whose size falls below this fraction of its size in the parent snapshot gets a warning,
because an unmounted volume or an emptied directory looks like a successful backup otherwise."""

_LOGGED_SKIPS = 20

logger = logging.getLogger(__name__)


def backup_id(seconds: int, trigger: str) -> str:
    """Return the id `backup_<unix seconds>_<trigger>`."""
    return f"backup_{seconds}_{trigger}"


class Archiver:
    """Runs backups into one repository."""

    def __init__(self, repository: Repository, *, progress: ProgressCallback | None = None) -> None:
        self.repository = repository
        self._chunker = Chunker(repository.key.chunker, repository.config.chunker)
        self._progress = progress or (lambda files, read: None)

    def run(self, request: BackupRequest) -> BackupResult:
        """Back up the request's sets and return the outcome.

        Raises:
            RepositoryLocked: another live process holds the repository lock.
        """
        started = time.monotonic()
        with self.repository.lock(now=request.now):
            result = self._run_locked(request)
        result.duration = round(time.monotonic() - started, 3)
        logger.info(
            "backup finished id=%s status=%s files=%d read=%d new_bytes=%d duration_s=%.3f",
            result.id, result.status, result.files, result.files_read, result.new_bytes_stored, result.duration,
        )
        return result

    def _run_locked(self, request: BackupRequest) -> BackupResult:
        snapshot_id = self._free_id(request)
        previous = self._previous_snapshot()
        parent = None if request.full or previous is None else previous
        logger.info("backup started id=%s parent=%s full=%s", snapshot_id, parent.id if parent else None, request.full)

        run = _Run(self.repository, self._chunker, parent, self._progress)
        try:
            set_results = [run.backup_set(spec) for spec in sorted(request.sets, key=lambda s: -s.priority)]
            packs = run.finish_packs()
        finally:
            run.close()
        if packs:
            self.repository.write_index(packs)

        status = _run_status(set_results)
        snapshot = Snapshot(
            id=snapshot_id,
            time=request.now,
            trigger=request.trigger,
            hostname=socket.gethostname(),
            status=status,
            parent=parent.id if parent else None,
            files=sum(result.files for result in set_results),
            bytes=sum(result.bytes for result in set_results),
            sets=set_results,
            warnings=_shrink_warnings(set_results, previous),
            entries=run.entries,
        )
        if status != "failed":
            self.repository.save_snapshot(snapshot)
        return _result(snapshot, run, status)

    def _free_id(self, request: BackupRequest) -> str:
        # NOTE: two runs started in the same second would get the same id, so the later
        # one takes the next free second. An id can therefore name a second after the start.
        seconds = int(request.now)
        existing = set(self.repository.snapshot_ids())
        while backup_id(seconds, request.trigger) in existing:
            seconds += 1
        return backup_id(seconds, request.trigger)

    def _previous_snapshot(self) -> Snapshot | None:
        ids = self.repository.snapshot_ids()
        return self.repository.load_snapshot(ids[-1]) if ids else None


class _Run:
    """State of one backup run: the index, the open pack and the entries so far."""

    def __init__(
        self, repository: Repository, chunker: Chunker, parent: Snapshot | None, progress: ProgressCallback
    ) -> None:
        self.repository = repository
        self.chunker = chunker
        self.index: dict[bytes, IndexEntry] = repository.load_index()
        self.pending: set[bytes] = set()
        self.cache = {entry.path: entry for entry in parent.entries if entry.type == "file"} if parent else {}
        self.progress = progress
        self.entries: list[Entry] = []
        self.packs: list[PackInfo] = []
        self.writer: PackWriter | None = None
        self.files_read = 0
        self.bytes_read = 0
        self.new_chunks = 0
        self.new_bytes = 0
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        own = os.stat(repository.path)
        self._repository_inode = (own.st_dev, own.st_ino)

    def backup_set(self, spec: BackupSetSpec) -> SetResult:
        """Back up every path of one set and return its outcome."""
        result = SetResult(name=spec.name, paths=[str(path) for path in spec.paths], status="ok")
        content = 0
        for root in spec.paths:
            for entry in self._walk(os.fsencode(os.path.abspath(root)), spec, result):
                self.entries.append(entry)
                content += entry.type != "dir"
                if entry.type == "file":
                    result.files += 1
                    result.bytes += entry.size
                    self.progress(len(self.entries), self.bytes_read)
        if content == 0 and not result.skipped:
            # An empty set is more likely an unmounted disk or a wrong path than a real backup.
            for root in spec.paths:
                _skip(result, os.fsencode(os.path.abspath(root)), _NOTHING_TO_BACK_UP)
        result.status = _set_status(result, content)
        return result

    def finish_packs(self) -> list[PackInfo]:
        """Finish the open pack and return every pack written in this run."""
        if self.writer is not None:
            self.packs.append(self.writer.finish())
            self.writer = None
        return self.packs

    def close(self) -> None:
        """Remove the unfinished pack and the database copies, if any."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _walk(self, root: bytes, spec: BackupSetSpec, result: SetResult) -> Iterator[Entry]:
        stack = [root]
        while stack:
            path = stack.pop()
            try:
                # A configured path that is a symlink (/var/lib/node -> /data/node) means its
                # target; below it, symlinks are stored as links.
                info = os.stat(path) if path == root else os.lstat(path)
            except OSError as err:
                _skip(result, path, err)
                continue
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) == self._repository_inode:
                    logger.info("backup leaves out the repository itself path=%s", os.fsdecode(path))
                    continue
                yield _entry(path, info, "dir")
                stack.extend(reversed(self._children(path, spec, result)))
            elif stat.S_ISREG(info.st_mode):
                entry = self._file(path, info, spec, result)
                if entry is not None:
                    yield entry
            else:
                entry = self._other(path, info, result)
                if entry is not None:
                    yield entry

    def _children(self, path: bytes, spec: BackupSetSpec, result: SetResult) -> list[bytes]:
        try:
            names = sorted(os.listdir(path))
        except OSError as err:
            _skip(result, path, err)
            return []
        if spec.sqlite:
            present = set(names)
            names = [name for name in names if not _is_sidecar(name, present)]
        return [os.path.join(path, name) for name in names]

    def _other(self, path: bytes, info: os.stat_result, result: SetResult) -> Entry | None:
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(path)
            except OSError as err:
                _skip(result, path, err)
                return None
            return _entry(path, info, "symlink", link_target=target)
        kind = _special_type(info.st_mode)
        rdev = info.st_rdev if kind in ("chardev", "blockdev") else None
        return _entry(path, info, kind, rdev=rdev)

    def _file(self, path: bytes, info: os.stat_result, spec: BackupSetSpec, result: SetResult) -> Entry | None:
        try:
            if spec.sqlite and is_sqlite_file(path):
                return self._database(path, info, result)
            cached = self._cached(path, info)
            if cached is not None:
                return cached
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            _skip(result, path, err)
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                _skip(result, path, "replaced by a non-regular file during the backup")
                return None
            try:
                chunks, size, content_hash = self._store(self.chunker.split(handle))
            except OSError as err:
                _skip(result, path, err)
                return None
        self.files_read += 1
        return _entry(path, info, "file", size=size, chunks=chunks, content_hash=content_hash)

    def _database(self, path: bytes, info: os.stat_result, result: SetResult) -> Entry | None:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix=".tmp-sqlite-", dir=self.repository.path)
        copy = Path(self._scratch.name) / "copy.db"
        try:
            copy_database(path, copy)
            page = page_size(copy)
            with copy.open("rb") as handle:
                chunks, size, content_hash = self._store(page_chunks(handle, page))
        except (sqlite3.Error, ValueError) as err:
            _skip(result, path, f"SQLite online backup failed: {err}")
            return None
        finally:
            copy.unlink(missing_ok=True)
        self.files_read += 1
        return _entry(path, info, "file", size=size, chunks=chunks, content_hash=content_hash, sqlite=True)

    def _cached(self, path: bytes, info: os.stat_result) -> Entry | None:
        previous = self.cache.get(path.lstrip(b"/"))
        if previous is None or previous.sqlite:
            return None
        unchanged = (
            previous.size == info.st_size
            and previous.mtime_ns == info.st_mtime_ns
            and previous.ctime_ns == info.st_ctime_ns
            and previous.inode == info.st_ino
        )
        if not unchanged or not all(bytes.fromhex(cid) in self.index for cid in previous.chunks):
            return None
        return _entry(
            path, info, "file", size=previous.size, chunks=previous.chunks, content_hash=previous.content_hash
        )

    def _store(self, pieces: Iterable[bytes]) -> tuple[list[str], int, str]:
        key = self.repository.key
        hasher = ContentHasher(key)
        chunks: list[str] = []
        size = 0
        for chunk in pieces:
            identifier = chunk_id(key, chunk)
            hasher.update(chunk)
            size += len(chunk)
            chunks.append(identifier.hex())
            self.progress(len(self.entries), self.bytes_read + size)
            if identifier not in self.index and identifier not in self.pending:
                self._add_chunk(identifier, chunk)
        self.bytes_read += size
        return chunks, size, hasher.hexdigest()

    def _add_chunk(self, identifier: bytes, chunk: bytes) -> None:
        if self.writer is None:
            self.writer = PackWriter(self.repository.path, self.repository.key)
        self.new_bytes += self.writer.add(identifier, chunk)
        self.new_chunks += 1
        self.pending.add(identifier)
        if self.writer.size >= self.repository.config.pack_size:
            self.packs.append(self.writer.finish())
            self.writer = None


def _entry(path: bytes, info: os.stat_result, kind: EntryType, **fields: object) -> Entry:
    return Entry(
        path=path.lstrip(b"/"),
        type=kind,
        mode=stat.S_IMODE(info.st_mode),
        uid=info.st_uid,
        gid=info.st_gid,
        mtime_ns=info.st_mtime_ns,
        inode=info.st_ino,
        ctime_ns=info.st_ctime_ns,
        **fields,
    )


def _special_type(mode: int) -> EntryType:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "chardev"
    return "blockdev"


def _is_sidecar(name: bytes, present: set[bytes]) -> bool:
    return any(name.endswith(suffix) and name[: -len(suffix)] in present for suffix in SIDECAR_SUFFIXES)


_NOTHING_TO_BACK_UP = (
    "nothing to back up: no file, symlink or special file under this path (the repository itself is "
    "left out); check that the path is right and its disk is mounted"
)


def _skip(result: SetResult, path: bytes, reason: OSError | str) -> None:
    text = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
    display = path.decode("utf-8", "backslashreplace")
    result.skipped.append(SkippedPath(path=display, reason=str(text)))
    if len(result.skipped) <= _LOGGED_SKIPS:
        logger.warning("backup skipped path backup_set=%s path=%s reason=%s", result.name, display, text)
    elif len(result.skipped) == _LOGGED_SKIPS + 1:
        logger.warning("backup skipping more paths backup_set=%s; the run result lists all", result.name)


def _set_status(result: SetResult, content: int) -> RunStatus:
    """Return ok, partial, or failed when paths were skipped and no file, link or special file was stored."""
    if not result.skipped:
        return "ok"
    return "partial" if content > 0 else "failed"


def _run_status(results: list[SetResult]) -> RunStatus:
    if all(result.status == "failed" for result in results):
        return "failed"
    if all(result.status == "ok" for result in results):
        return "ok"
    return "partial"


def _shrink_warnings(results: list[SetResult], previous: Snapshot | None) -> list[str]:
    if previous is None:
        return []
    before = {result.name: result.bytes for result in previous.sets}
    warnings = []
    for result in results:
        old = before.get(result.name, 0)
        if old > 0 and result.bytes < old * SHRINK_RATIO:
            warnings.append(
                f"set {result.name} contains {result.bytes} bytes, under {SHRINK_RATIO:.0%} of the "
                f"{old} bytes in {previous.id}; check that its paths are mounted and readable"
            )
    return warnings


def _result(snapshot: Snapshot, run: _Run, status: RunStatus) -> BackupResult:
    skipped = [path for result in snapshot.sets for path in result.skipped]
    return BackupResult(
        id=snapshot.id if status != "failed" else None,
        status=status,
        files=snapshot.files,
        files_read=run.files_read,
        bytes=snapshot.bytes,
        bytes_read=run.bytes_read,
        new_chunks=run.new_chunks,
        new_bytes_stored=run.new_bytes,
        sets=snapshot.sets,
        skipped=skipped,
        warnings=snapshot.warnings,
    )

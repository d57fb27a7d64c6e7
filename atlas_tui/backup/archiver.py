"""The backup run: walk the sets, chunk and store new content, write index and snapshot.

`Archiver.run(request)` takes the repository lock and processes the sets in
priority order. Each regular file is streamed through the chunker, and
`ChunkStore` hashes the chunks and seals those missing from the index into packs
on worker threads (memory stays bounded by its queue). A file whose size, mtime,
ctime and inode equal its entry in the parent snapshot reuses that entry without
being read, unless the request sets `full`. Databases in a set marked `sqlite` are
copied with the online backup API first, cut at page boundaries (a changed chunk
is stored as a delta against the chunk at its offset in the newest snapshot), and their
`-wal`, `-shm` and `-journal` files are left out. A database is copied again only
when it or its `-wal` file changed since the parent snapshot, or changed less than
`RACY_SECONDS` before that snapshot started. FIFOs, sockets and devices are
recorded, never opened. Each path is stored once, in the set with the most
specific configured path that contains it (see `_Walk`).

The entries are stored as manifest chunks (see `manifest.py`), each piece as soon as
the chunks of all its files are stored, so that only a few pieces' entries are in
memory at once. Then the packs are finished, one index file is written, then the
snapshot. A run with unreadable paths is `partial` and lists them; a run where
nothing was readable is `failed` and writes no snapshot (the manifest chunks it
stored are unused data that `cleanup` removes). A path that the walk found
and that no longer exists when it is read (ENOENT or ENOTDIR: deleted, or a directory
above it deleted or replaced) was deleted during the run, which loses no data, so it
is counted as vanished and is no failure. A configured path that is missing stays a failure.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import stat
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from atlas_tui.backup.chunk_store import ChunkStore, FileDigest
from atlas_tui.backup.chunker import Chunker
from atlas_tui.backup.crypto import ContentHasher
from atlas_tui.backup.heap import backup_tuning, collector_paused, release_free_memory
from atlas_tui.backup.manifest import ParentManifest, encode_piece, entry_key, fingerprint, is_cut, stat_fields
from atlas_tui.backup.models import (
    BackupRequest,
    BackupResult,
    BackupSetSpec,
    Entry,
    EntryType,
    ManifestPiece,
    RunStatus,
    SetResult,
    SkippedPath,
    Snapshot,
    VanishedPath,
    display_path,
)
from atlas_tui.backup.packs import PackInfo
from atlas_tui.backup.repository import IndexEntry, Repository
from atlas_tui.backup.sqlite_copy import (
    SCRATCH_PREFIX,
    SIDECAR_SUFFIXES,
    copy_database,
    is_sqlite_file,
    page_chunks,
    page_size,
    remove_scratch_directories,
)

__all__ = ["LISTED_VANISHED", "Archiver", "ProgressCallback", "backup_id"]

ProgressCallback = Callable[[int, int], None]
"""Called after each file and each chunk with the entries done and the bytes read so far."""

SHRINK_RATIO = 0.1
"""A set whose size falls below this fraction of its size in the parent snapshot gets a warning,
because an unmounted volume or an emptied directory looks like a successful backup otherwise."""

RACY_SECONDS = 1
"""A database whose files changed this close before the parent snapshot's start is copied
again even when its stat fields look unchanged: a write in the same clock tick as the
parent's stat would leave them equal."""

LISTED_VANISHED = 100
"""Vanished paths that the run result lists; `BackupResult.vanished` counts all of them."""

_LOGGED_SKIPS = 20
"""Skipped paths logged one by one per set, and vanished paths per run; one more line reports that more follow."""
_VANISHED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
_READ_BATCH_FILES = 64
_READ_BATCH_BYTES = 1024 * 1024
"""A batch of small files read in one call has at most this many files and bytes."""
_READ_BATCHES_AHEAD = 4
"""Batches of small files read ahead of the reading thread, on `_READ_THREADS` threads."""
_READ_THREADS = 2
_MANIFEST_PIECES_IN_FLIGHT = 2
"""Manifest pieces queued for the sealing workers at once; see `_Run._store_piece`."""

logger = logging.getLogger(__name__)


def backup_id(seconds: int, trigger: str) -> str:
    """Return the id `backup_<unix seconds>_<trigger>`."""
    return f"backup_{seconds}_{trigger}"


class Archiver:
    """Runs backups into one repository."""

    def __init__(self, repository: Repository, *, progress: ProgressCallback | None = None) -> None:
        self.repository = repository
        self._progress = progress or (lambda files, read: None)

    def run(self, request: BackupRequest) -> BackupResult:
        """Back up the request's sets and return the outcome.

        Raises:
            RepositoryLocked: another live process holds the repository lock.
        """
        started = time.monotonic()
        with self.repository.lock(now=request.now), collector_paused(), backup_tuning():
            result = self._run_locked(request)
        result.duration = round(time.monotonic() - started, 3)
        logger.info(
            "backup finished id=%s status=%s files=%d read=%d new_bytes=%d duration_s=%.3f",
            result.id, result.status, result.files, result.files_read, result.new_bytes_stored, result.duration,
        )
        return result

    def _run_locked(self, request: BackupRequest) -> BackupResult:
        # The lock proves that no other backup uses these copies, and this run has made none yet.
        remove_scratch_directories(self.repository.path)
        snapshot_id = self._free_id(request)
        specs = sorted(request.sets, key=lambda s: -s.priority)
        # The walk needs no key, so it runs while a key opened in the background is derived.
        walk = _Walk(self.repository.path, specs)
        previous = self._previous_snapshot()
        parent = None if request.full or previous is None else previous
        logger.info("backup started id=%s parent=%s full=%s", snapshot_id, parent.id if parent else None, request.full)

        chunker = Chunker(self.repository.key.chunker, self.repository.config.chunker)
        run = _Run(self.repository, chunker, parent, self._progress, previous=previous)
        manifest: tuple[list[str], list[ManifestPiece]] = ([], [])
        try:
            set_results = run.backup_sets(specs, walk)
            status = _run_status(set_results)
            if status != "failed":
                manifest = run.store_manifest()
            packs = run.finish_packs()
        finally:
            run.close()
            self.repository.forget_index()
        if packs:
            self.repository.write_index(packs)
        # The index, the files cache and the chunk store are gone now; their memory goes back.
        release_free_memory()

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
            warnings=[*walk.warnings, *_shrink_warnings(set_results, previous)],
            manifest_chunks=manifest[0],
            manifest_pieces=manifest[1],
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
        """Return the newest snapshot without its entries; `ParentManifest` reads them when needed."""
        ids = self.repository.snapshot_ids()
        return self.repository.load_snapshot(ids[-1], entries=False) if ids else None


class _Run:
    """State of one backup run: the walk's findings, the pieces, the chunk store and the entries."""

    def __init__(
        self,
        repository: Repository,
        chunker: Chunker,
        parent: Snapshot | None,
        progress: ProgressCallback,
        *,
        previous: Snapshot | None = None,
    ) -> None:
        """Prepare a run; `parent` (the files cache) and `previous` may lack their entries.

        Args:
            parent: The snapshot whose unchanged entries and pieces are reused, None in a full run.
            previous: The newest snapshot, whose database chunks are delta bases also in a full run.
        """
        self.repository = repository
        self.chunker = chunker
        self.parent = ParentManifest(repository, parent) if parent else None
        self.cache: dict[bytes, Entry] = {}
        """The parent's entries by path, filled piece by piece and emptied of each piece's
        paths once it is processed. Files whose stat fields are unchanged are taken from
        it, and so are directories, links and special files whose stat fields are all
        unchanged."""
        self.similar: dict[bytes, list[str]] = {}
        """The chunk ids of each database in the newest snapshot, also in a full run: a
        changed chunk of the new copy is stored as a delta against the one at its offset."""
        if parent is None and previous is not None:
            self.similar = {entry.path: entry.chunks for entry in ParentManifest(repository, previous).everything()
                            if entry.sqlite}
        self._racy_before_ns = int((parent.time - RACY_SECONDS) * 1e9) if parent else 0
        self.progress = progress
        self.groups: list[_Group] = []
        self._unstored: list[_Group] = []
        """Processed groups with new entries whose piece is not stored yet, oldest first."""
        self._tally: _Tally | None = None
        self.files_read = 0
        self.bytes_read = 0
        self._entries_done = 0
        self._chunk_store: ChunkStore | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._small_files = _SmallFiles(chunker)
        self._replaced_dir: bytes | None = None
        """Prefix of the paths below a directory that was no longer one when it was stored."""
        self.vanished = _Vanished()
        """Paths gone before they were read; `backup_sets` takes the walk's, so one count covers both."""

    @property
    def store(self) -> ChunkStore:
        """The chunk store, made on first use: a run that reuses every piece never reads the index."""
        if self._chunk_store is None:
            self._chunk_store = ChunkStore(self.repository, self.repository.load_index())
        return self._chunk_store

    @property
    def index(self) -> dict[bytes, IndexEntry]:
        """Every chunk in the repository, read with the chunk store."""
        return self.store.index

    @property
    def new_chunks(self) -> int:
        """Chunks sealed into packs so far."""
        return self._chunk_store.new_chunks if self._chunk_store is not None else 0

    @property
    def new_bytes(self) -> int:
        """Sealed bytes written to packs so far."""
        return self._chunk_store.new_bytes if self._chunk_store is not None else 0

    def backup_sets(self, specs: list[BackupSetSpec], walk: _Walk) -> list[SetResult]:
        """Back up what `walk` found in the sets, in this order, and return one outcome per set.

        The whole tree was walked first, so that each piece of the manifest is known
        before any file is read and an unchanged piece is taken whole from the parent.
        """
        results = walk.results
        self.vanished = walk.vanished
        self.groups = list(_cut(walk.found))
        walk.found = []
        tally = self._tally = _Tally(len(specs))
        for group in self.groups:
            self._process(group, specs, results)
            if group.reused is not None:
                for item in group.found:
                    tally.add(item.spec, item.kind, item.size)
            else:
                self._unstored.append(group)
            # Each finding is done with now; 42,000 of them take several MiB. So are the
            # parent's entries at their paths: an entry reused is kept by the group.
            for item in group.found:
                self.cache.pop(item.path.lstrip(b"/"), None)
            group.found = []
            self._store_ready_pieces()
        if self._chunk_store is not None:
            self._chunk_store.drain()
        self._store_ready_pieces()
        if self._unstored:
            raise RuntimeError("a manifest piece has a file whose chunks the chunk store did not finish")
        content, files, sizes = tally.content, tally.files, tally.sizes
        for number, result in enumerate(results):
            result.files, result.bytes = files[number], sizes[number]
            if content[number] == 0 and not result.skipped:
                # An empty set is more likely an unmounted disk or a wrong path than a real backup.
                for root in walk.roots[number]:
                    if root not in walk.handed_over:
                        _skip(result, root, _NOTHING_TO_BACK_UP)
            result.status = _set_status(result, content[number])
        return results

    def finish_packs(self) -> list[PackInfo]:
        """Store every queued chunk and return every pack of this run once all are durable."""
        return self._chunk_store.finish() if self._chunk_store is not None else []

    def store_manifest(self) -> tuple[list[str], list[ManifestPiece]]:
        """Return the ids and descriptions of the manifest chunks of every set, in order, once stored.

        A reused piece keeps the parent's chunk. `backup_sets` stored each other piece
        as soon as the chunks of all its files were stored (see `_store_piece`).
        """
        if self._chunk_store is not None:
            self._chunk_store.drain()
        ids: list[str] = []
        pieces: list[ManifestPiece] = []
        for group in self.groups:
            if group.piece is None:
                continue
            ids.append(group.reused if group.reused is not None else group.digest.chunks[0])  # type: ignore[union-attr]
            pieces.append(group.piece)
        return ids, pieces

    def _store_ready_pieces(self) -> None:
        """Store the piece of each processed group whose files all have their chunks stored."""
        if self._chunk_store is not None:
            self._chunk_store.collect()
        waiting = []
        for group in self._unstored:
            if _resolved_count(group) == len(group.entries):
                self._store_piece(group)
            else:
                waiting.append(group)
        self._unstored = waiting

    def _store_piece(self, group: _Group) -> None:
        """Count a group's entries, queue its piece as a manifest chunk, and let go of the entries.

        A changed piece is stored as a delta against the parent's piece that ends with
        the same path. Storing each piece when its files are done, instead of every
        piece at the end, keeps only a few pieces' entries in memory: a 42,000-entry
        manifest takes about 50 MiB as entries.
        """
        assert self._tally is not None
        entries = [_resolved(entry) for _, entry in group.entries]
        for (number, _), entry in zip(group.entries, entries):
            self._tally.add(number, entry.type, entry.size)
        group.entries = []
        if not entries:
            return
        group.piece = ManifestPiece(
            last_path=entries[-1].path,
            entries=len(entries),
            fingerprint=fingerprint(entry_key(entry) for entry in entries),
        )
        group.digest = self.store.begin_file()
        self.store.add(group.digest, encode_piece(entries), group.similar)
        self.store.end_file(group.digest)
        if group.similar is not None:
            # A delta piece in flight keeps its JSON, its parent piece and a compressor:
            # two 1.5 MB pieces sealed at once took 17 MiB. Up to eight batches could
            # wait otherwise. A piece of a first backup is sealed like any chunk.
            self.store.settle(_MANIFEST_PIECES_IN_FLIGHT)

    def close(self) -> None:
        """Stop the chunk store, remove the unfinished pack and the database copies, if any.

        The files cache and the walk's findings are dropped too.
        """
        self._small_files.close()
        if self._chunk_store is not None:
            self._chunk_store.close()
        self.cache = {}
        self.similar = {}
        self.groups = []
        self._unstored = []
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _process(self, group: _Group, specs: list[BackupSetSpec], results: list[SetResult]) -> None:
        """Take a piece whole from the parent when its fingerprint is unchanged, else build its entries."""
        last = group.found[-1].path.lstrip(b"/")
        known = self.parent.piece(last) if self.parent is not None else None
        if known is not None:
            group.similar = bytes.fromhex(known[1])
            piece = known[0]
            if (
                piece is not None
                and piece.entries == len(group.found)
                and all(self._settled(item) for item in group.found if item.source is not None)
                and piece.fingerprint == fingerprint(
                    item.path.lstrip(b"/") + item.fields for item in group.found
                )
            ):
                group.reused, group.piece = known[1], piece
                self._entries_done += len(group.found)
                self.progress(self._entries_done, self.bytes_read)
                return
        if self.parent is not None:
            for entry in self.parent.entries(last):
                self.cache[entry.path] = entry
                if entry.sqlite:
                    self.similar[entry.path] = entry.chunks
        # New small files are read ahead in batches; each is then taken in order.
        whole = [self._read_whole(item, specs[item.spec]) for item in group.found]
        reads = self._small_files.read([item for item, flag in zip(group.found, whole) if flag])
        for item, flag in zip(group.found, whole):
            if self._replaced_dir is not None and item.path.startswith(self._replaced_dir):
                # Below a directory that was replaced: its skip already names it.
                if flag:
                    next(reads)
                continue
            if flag:
                entry = self._small_file(item, next(reads), results[item.spec], specs[item.spec])
            else:
                entry = self._entry(item, specs[item.spec], results[item.spec])
            if entry is None:
                continue
            group.entries.append((item.spec, entry))
            self._entries_done += 1
            if not isinstance(entry, Entry) or entry.type == "file":
                self.progress(self._entries_done, self.bytes_read)

    def _read_whole(self, item: _Found, spec: BackupSetSpec) -> bool:
        """Return True for a new file, outside a set marked `sqlite`, that the walk saw as one chunk long."""
        return (
            item.kind == "file"
            and not item.root
            and not spec.sqlite
            and item.size <= self.chunker.params.min_size
            and item.path.lstrip(b"/") not in self.cache
        )

    def _small_file(
        self,
        item: _Found,
        outcome: tuple[os.stat_result, bytes | None] | OSError,
        result: SetResult,
        spec: BackupSetSpec,
    ) -> Entry | _PendingFile | None:
        """Store a small file that `_SmallFiles` read, or look at the path again when it changed."""
        if isinstance(outcome, OSError):
            _skip_or_vanish(result, item.path, outcome, self.vanished)
            return None
        info, data = outcome
        if data is None:
            # No longer a small regular file since the walk.
            return self._entry(item, spec, result)
        hasher = self.repository.content_hasher()
        hasher.update(data)
        self.files_read += 1
        return self._store((memoryview(data),) if data else (), hasher, item.path, info)

    def _settled(self, item: _Found) -> bool:
        """Return True when a database and its `-wal` file last changed well before the parent started.

        See `RACY_SECONDS`; `item.source` is set.
        """
        assert item.source is not None
        return item.changed_ns < self._racy_before_ns

    def _entry(self, item: _Found, spec: BackupSetSpec, result: SetResult) -> Entry | _PendingFile | None:
        # The walk kept no stat results, which took about 25 MiB for 42,000 paths, so the
        # path is looked at again. A change since the walk shows in the entry and in the
        # next run's fingerprint.
        try:
            info = os.stat(item.path) if item.root else os.lstat(item.path)
        except OSError as err:
            _skip_or_vanish(result, item.path, err, self.vanished)
            return None
        if stat.S_ISDIR(info.st_mode):
            return self._reused(item.path, info, "dir") or _entry(item.path, info, "dir")
        if item.kind == "dir":
            # The walk found entries below it, which come next. Stored under a file or a
            # link, they would make a snapshot that no restore can write.
            self._replaced_dir = item.path.rstrip(b"/") + b"/"
            _skip(result, item.path, "replaced during the backup: it was a directory when the run started")
            return None
        if stat.S_ISREG(info.st_mode):
            return self._file(item.path, info, spec, result)
        return self._other(item.path, info, result)

    def _reused(self, path: bytes, info: os.stat_result, kind: EntryType) -> Entry | None:
        """Return the parent's entry of a directory, link or special file whose stat fields are unchanged.

        A link's target and a device's number cannot change without a new ctime.
        """
        previous = self.cache.get(path.lstrip(b"/"))
        if (
            previous is not None
            and previous.type == kind
            and previous.ctime_ns == info.st_ctime_ns
            and previous.mtime_ns == info.st_mtime_ns
            and previous.inode == info.st_ino
            and previous.mode == stat.S_IMODE(info.st_mode)
            and previous.uid == info.st_uid
            and previous.gid == info.st_gid
        ):
            return previous
        return None

    def _other(self, path: bytes, info: os.stat_result, result: SetResult) -> Entry | None:
        reused = self._reused(path, info, _special_type(info.st_mode))
        if reused is not None:
            return reused
        if stat.S_ISLNK(info.st_mode):
            try:
                target = os.readlink(path)
            except OSError as err:
                _skip_or_vanish(result, path, err, self.vanished)
                return None
            return _entry(path, info, "symlink", link_target=target)
        kind = _special_type(info.st_mode)
        rdev = info.st_rdev if kind in ("chardev", "blockdev") else None
        return _entry(path, info, kind, rdev=rdev)

    def _file(
        self, path: bytes, info: os.stat_result, spec: BackupSetSpec, result: SetResult
    ) -> Entry | _PendingFile | None:
        previous = self.cache.get(path.lstrip(b"/"))
        try:
            if previous is not None and previous.type == "file" and not previous.sqlite and self._unchanged(previous, info):
                return previous
            if spec.sqlite and is_sqlite_file(path):
                return self._database(path, info, result, previous)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            _skip_or_vanish(result, path, err, self.vanished)
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                _skip(result, path, "replaced by a non-regular file during the backup")
                return None
            hasher = self.repository.content_hasher()
            pieces = self.chunker.split(_FdReader(fd), size_hint=info.st_size, on_block=hasher.update)
            pending = self._store(pieces, hasher, path, info)
        except OSError as err:
            _skip(result, path, err)
            return None
        finally:
            os.close(fd)
        self.files_read += 1
        return pending

    def _database(
        self, path: bytes, info: os.stat_result, result: SetResult, previous: Entry | None
    ) -> Entry | _PendingFile | None:
        source = _source_state(path, info)
        if previous is not None and previous.sqlite and previous.source == source and self._unchanged(previous, info):
            if max(info.st_mtime_ns, info.st_ctime_ns, source[2]) < self._racy_before_ns:
                return previous
        if self._scratch is None:
            # Made with mode 0700 (`tempfile.mkdtemp`); `copy_database` makes the copy 0600.
            self._scratch = tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=self.repository.path)
        copy = Path(self._scratch.name) / "copy.db"
        try:
            copy_database(path, copy)
            page = page_size(copy)
            hasher = self.repository.content_hasher()
            with copy.open("rb", buffering=0) as handle:
                pieces = page_chunks(handle, page, hasher.update)
                similar = [bytes.fromhex(hex_id) for hex_id in self.similar.get(path.lstrip(b"/"), [])]
                pending = self._store(pieces, hasher, path, info, similar, sqlite=True, source=source)
        except (sqlite3.Error, ValueError) as err:
            if not os.path.lexists(path):
                # SQLite reports a deleted database as "unable to open database file".
                self.vanished.add(result, path)
            else:
                _skip(result, path, f"SQLite online backup failed: {err}")
            return None
        finally:
            copy.unlink(missing_ok=True)
        self.files_read += 1
        return pending

    def _unchanged(self, previous: Entry, info: os.stat_result) -> bool:
        """Return True when the stat fields match the parent's entry.

        A database entry's `size` is that of its copy, so the file's size comes from `source`.
        The parent's chunks are not looked up: every chunk a snapshot names stays in the
        index, because cleanup keeps the chunks of every remaining snapshot. Only an index
        rebuilt after packs were lost can miss them, and a `--full` run stores them again.
        """
        size = previous.source[0] if previous.source else previous.size
        return (
            size == info.st_size
            and previous.mtime_ns == info.st_mtime_ns
            and previous.ctime_ns == info.st_ctime_ns
            and previous.inode == info.st_ino
        )

    def _store(
        self,
        pieces: Iterable[memoryview],
        hasher: ContentHasher,
        path: bytes,
        info: os.stat_result,
        similar: list[bytes] | None = None,
        **fields: object,
    ) -> _PendingFile:
        """Queue every chunk of a file; the returned entry is filled in once the chunk store has them all.

        `pieces` feeds `hasher` as it reads, so the content hash is complete when the last chunk is stored.
        `similar[i]`, when present, is a stored chunk like the i-th (see `ChunkStore.add`).
        """
        pending = _PendingFile()

        def done(digest: FileDigest) -> None:
            pending.entry = _entry(
                path, info, "file", size=digest.size, chunks=digest.chunks, content_hash=hasher.hexdigest(), **fields
            )

        digest = self.store.begin_file(done)
        try:
            for position, chunk in enumerate(pieces):
                self.store.add(digest, chunk, similar[position] if similar and position < len(similar) else None)
                self.bytes_read += len(chunk)
                self.progress(self._entries_done, self.bytes_read)
        except BaseException:
            digest.on_done = None
            raise
        finally:
            self.store.end_file(digest)
        return pending


class _Walk:
    """The paths of a run's sets with their `lstat` fields, found before any file is read or key used.

    Each path is found once, by the walk of the most specific configured path that
    contains it. A walk leaves out a directory that is another configured path, so
    the set that names it stores it with its own settings. A path that two sets list
    is walked by the first set in run order (higher priority, then the order given).

    A walk also finds symlinks at configured paths or above them, which the walk of
    that configured path follows. Such a link is left out once that walk has found
    the configured path, because a snapshot with entries below a symlink cannot be
    restored (see `_leave_out_non_directories_at_roots`).
    """

    def __init__(self, repository: Path, specs: list[BackupSetSpec]) -> None:
        own = os.stat(repository)
        self._repository_inode = (own.st_dev, own.st_ino)
        self.results = [SetResult(name=spec.name, paths=[str(path) for path in spec.paths], status="ok")
                        for spec in specs]
        """One outcome per set, in order, holding the paths the walk skipped so far."""
        self.warnings: list[str] = []
        """One message per path that two sets list, naming the set that backs it up."""
        self.roots = self._assign_roots(specs)
        """The configured paths each set walks, in order, without those another set walks."""
        self._all_roots = {root for roots in self.roots for root in roots}
        self.handed_over: set[bytes] = set()
        """Configured paths that contain another configured path, whose walk stores some of their content.
        An empty result under such a path does not mean an unmounted disk."""
        self._roots_and_parents = self._all_roots | {parent for root in self._all_roots for parent in _parents(root)}
        self._database_sidecars = {
            root + suffix for number, spec in enumerate(specs) if spec.sqlite
            for root in self.roots[number] for suffix in SIDECAR_SUFFIXES
        }
        """The `-wal`, `-shm` and `-journal` names of the configured paths of sets marked `sqlite`."""
        self._non_directories_at_roots: dict[bytes, list[tuple[int, bytes]]] = {}
        """Position in `found` and walk root of each non-directory found at a path in `_roots_and_parents`."""
        self.vanished = _Vanished()
        """Paths listed in a directory and gone before the walk looked at them, and later ones of the run."""
        self.found: list[_Found] = []
        for number, spec in enumerate(specs):
            for root in self.roots[number]:
                self._scan(root, number, spec, self.results[number], self.found)
        self._leave_out_non_directories_at_roots()

    def _assign_roots(self, specs: list[BackupSetSpec]) -> list[list[bytes]]:
        """Return the configured paths of each set, each path given to the first set that lists it."""
        owners: dict[bytes, int] = {}
        roots: list[list[bytes]] = [[] for _ in specs]
        for number, spec in enumerate(specs):
            for configured in spec.paths:
                root = _root_path(configured)
                owner = owners.setdefault(root, number)
                if owner != number:
                    self.warnings.append(_duplicate_path_warning(specs[owner], spec, root))
                    logger.warning("%s", self.warnings[-1])
                elif root in roots[number]:
                    logger.info("backup set lists a path twice backup_set=%s path=%s", spec.name, display_path(root))
                else:
                    roots[number].append(root)
        return roots

    def _scan(self, root: bytes, number: int, spec: BackupSetSpec, result: SetResult, found: list[_Found]) -> None:
        """Append every path under `root` with its `lstat` fields to `found`, in the order of the manifest."""
        stack = [root]
        while stack:
            path = stack.pop()
            if path != root and path in self._database_sidecars:
                # A -wal, -shm or -journal file of a database that a set marked `sqlite`
                # copies with the online backup API. The copy contains the -wal content.
                continue
            try:
                # A configured path that is a symlink (/var/lib/node -> /data/node) means its
                # target, stored at the configured path. Below it, symlinks are stored as links.
                info = os.stat(path) if path == root else os.lstat(path)
            except OSError as err:
                if path == root:
                    # A missing configured path is an unmounted disk or a wrong config, not churn.
                    _skip(result, path, err)
                else:
                    _skip_or_vanish(result, path, err, self.vanished)
                continue
            if stat.S_ISDIR(info.st_mode):
                if path != root and path in self._all_roots:
                    # The walk of that configured path stores it.
                    self.handed_over.add(root)
                    continue
                if (info.st_dev, info.st_ino) == self._repository_inode:
                    logger.info("backup leaves out the repository itself path=%s", os.fsdecode(path))
                    continue
                found.append(_Found(number, path, info, "dir", root=path == root))
                stack.extend(reversed(self._children(path, spec, result)))
            elif stat.S_ISREG(info.st_mode):
                source = _source_state(path, info) if spec.sqlite and _is_database(path) else None
                found.append(_Found(number, path, info, "file", root=path == root, source=source))
            else:
                found.append(_Found(number, path, info, _special_type(info.st_mode), root=path == root))
            if path != root and not stat.S_ISDIR(info.st_mode) and path in self._roots_and_parents:
                self._non_directories_at_roots.setdefault(path, []).append((len(found) - 1, root))

    def _leave_out_non_directories_at_roots(self) -> None:
        """Drop each symlink or other non-directory found at or above a configured path that its walk found.

        The walk of the configured path stores that path as what the link leads to, so the
        link would be a second entry at the same path, or an entry with entries below it.
        A link above a configured path is replaced by a directory on restore.
        """
        if not self._non_directories_at_roots:
            return
        dropped: set[int] = set()
        for item in self.found:
            if not item.root:
                continue
            for path in (item.path, *_parents(item.path)):
                for position, walk_root in self._non_directories_at_roots.pop(path, ()):
                    dropped.add(position)
                    self.handed_over.add(walk_root)
                    link = self.found[position]
                    logger.info(
                        "backup leaves out path=%s type=%s of backup_set=%s because backup_set=%s stores "
                        "configured path=%s at or below it",
                        display_path(link.path), link.kind, self.results[link.spec].name,
                        self.results[item.spec].name, display_path(item.path),
                    )
        if dropped:
            self.found = [item for position, item in enumerate(self.found) if position not in dropped]

    def _children(self, path: bytes, spec: BackupSetSpec, result: SetResult) -> list[bytes]:
        try:
            names = sorted(os.listdir(path))
        except OSError as err:
            _skip_or_vanish(result, path, err, self.vanished)
            return []
        if spec.sqlite:
            present = set(names)
            names = [name for name in names if not _is_sidecar(name, present)]
        prefix = path if path.endswith(b"/") else path + b"/"
        return [prefix + name for name in names]


class _SmallFiles:
    """Reads new small files in batches on helper threads, a few batches ahead of the reading thread.

    One call per batch (`Chunker.read_small`) gives up the GIL once for up to
    `_READ_BATCH_FILES` files instead of five times per file. Reading ahead matters
    when the files are not in the page cache. Right after `borg create` had read the
    bench corpus, most of it was out of the page cache (`fincore`). One thread then
    read the 42,000 small files from disk one at a time, waiting for each, so a first
    backup took 8.3 s instead of 5.5 s. With two threads reading ahead it took 6.4 s.
    """

    def __init__(self, chunker: Chunker) -> None:
        self._chunker = chunker
        self._threads: ThreadPoolExecutor | None = None

    def read(self, items: list[_Found]) -> Iterator[tuple[os.stat_result, bytes | None] | OSError]:
        """Yield what `Chunker.read_small` returns for each item, in order."""
        batches = iter(_read_batches(items))
        pending: deque[Future[list[tuple[os.stat_result, bytes | None] | OSError]]] = deque()
        for batch in batches:
            pending.append(self._submit(batch))
            if len(pending) == _READ_BATCHES_AHEAD:
                break
        while pending:
            outcomes = pending.popleft().result()
            batch = next(batches, None)
            if batch is not None:
                pending.append(self._submit(batch))
            yield from outcomes

    def close(self) -> None:
        """Stop the threads; batches not taken yet are dropped."""
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None

    def _submit(self, batch: list[bytes]) -> Future[list[tuple[os.stat_result, bytes | None] | OSError]]:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=_READ_THREADS, thread_name_prefix="backup-read")
        return self._threads.submit(self._chunker.read_small, batch)


def _read_batches(items: list[_Found]) -> Iterator[list[bytes]]:
    """Split the paths of `items` into batches of at most `_READ_BATCH_FILES` files and about `_READ_BATCH_BYTES`."""
    batch: list[bytes] = []
    size = 0
    for item in items:
        if batch and (len(batch) == _READ_BATCH_FILES or size + item.size > _READ_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item.path)
        size += item.size
    if batch:
        yield batch


class _FdReader:
    """The `read` of an open file descriptor, lighter than a file object for one small file."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, size: int) -> bytes:
        return os.read(self.fd, size)


class _PendingFile:
    """A file whose chunks are still in the chunk store; `entry` is set when they are stored."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: Entry | None = None


class _Found:
    """A path the walk found, with what the fingerprint needs of its `lstat` fields, before any file is read."""

    __slots__ = ("changed_ns", "fields", "kind", "path", "root", "size", "source", "spec")

    def __init__(
        self,
        spec: int,
        path: bytes,
        info: os.stat_result,
        kind: EntryType,
        *,
        root: bool = False,
        source: list[int] | None = None,
    ) -> None:
        self.spec = spec
        """Index of its backup set in the run's order."""
        self.path = path
        self.kind = kind
        self.root = root
        """A configured path, which is followed when it is a symlink."""
        self.size = info.st_size if kind == "file" else 0
        self.fields = stat_fields(info, kind, source)
        """The path's part of the piece fingerprint after the path (`manifest.stat_fields`)."""
        self.source = source
        """For a database in a set marked `sqlite`: the file's size and its `-wal` state (`_source_state`)."""
        self.changed_ns = max(info.st_mtime_ns, info.st_ctime_ns, source[2]) if source else 0
        """For a database: the last change of the file or its `-wal` file."""


class _Group:
    """The findings of one manifest piece and what became of them."""

    __slots__ = ("digest", "entries", "found", "piece", "resolved", "reused", "similar")

    def __init__(self, found: list[_Found]) -> None:
        self.found = found
        self.entries: list[tuple[int, Entry | _PendingFile]] = []
        """Set index and entry of each finding that became an entry, when the piece is not reused."""
        self.reused: str | None = None
        """The parent's chunk id when the whole piece is unchanged."""
        self.piece: ManifestPiece | None = None
        """The piece's description once it is reused or stored; None for a piece with no entries."""
        self.digest: FileDigest | None = None
        """The stored piece's chunk, once it is stored."""
        self.resolved = 0
        """Leading entries known to be resolved; the rest may still wait for their chunks."""
        self.similar: bytes | None = None
        """The parent's chunk of the piece with the same last path, the delta base of a changed piece."""


class _Tally:
    """Entries other than directories, files and file bytes per set."""

    def __init__(self, sets: int) -> None:
        self.content = [0] * sets
        self.files = [0] * sets
        self.sizes = [0] * sets

    def add(self, number: int, kind: str, size: int) -> None:
        if kind != "dir":
            self.content[number] += 1
        if kind == "file":
            self.files[number] += 1
            self.sizes[number] += size


def _cut(found: list[_Found]) -> Iterator[_Group]:
    """Group the findings into manifest pieces by `manifest.is_cut`, and end a piece after each database.

    A piece with a database is never reused whole, so the database does not keep the
    files after it from being reused.
    """
    start = 0
    for position, item in enumerate(found):
        if item.source is not None or is_cut(item.path.lstrip(b"/"), position + 1 - start):
            yield _Group(found[start : position + 1])
            start = position + 1
    if start < len(found):
        yield _Group(found[start:])


def _resolved_count(group: _Group) -> int:
    """Return how many leading entries of `group` have their chunks stored, advancing its mark."""
    entries = group.entries
    position = group.resolved
    while position < len(entries):
        entry = entries[position][1]
        if isinstance(entry, _PendingFile) and entry.entry is None:
            break
        position += 1
    group.resolved = position
    return position


def _resolved(entry: Entry | _PendingFile) -> Entry:
    if isinstance(entry, Entry):
        return entry
    if entry.entry is None:
        raise RuntimeError("a file entry was used before the chunk store finished its chunks")
    return entry.entry


def _is_database(path: bytes) -> bool:
    try:
        return is_sqlite_file(path)
    except OSError:
        # The file is read again later, and that run records the error.
        return False


def _source_state(path: bytes, info: os.stat_result) -> list[int]:
    """Return the database's size, then size, mtime_ns and inode of its `-wal` file, or zeros without one.

    The WAL's ctime is left out because SQLite truncates the WAL when the last
    connection closes, even an empty one, which changes the ctime and nothing else.
    """
    try:
        wal = os.stat(path + b"-wal")
    except FileNotFoundError:
        return [info.st_size, 0, 0, 0]
    return [info.st_size, wal.st_size, wal.st_mtime_ns, wal.st_ino]


def _entry(path: bytes, info: os.stat_result, kind: EntryType, **fields: object) -> Entry:
    # The values come from stat and the chunk store, so validating them again would only cost time.
    values: dict[str, object] = {
        "path": path.lstrip(b"/"),
        "type": kind,
        "mode": stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "mtime_ns": info.st_mtime_ns,
        "size": 0,
        "inode": info.st_ino,
        "ctime_ns": info.st_ctime_ns,
        "chunks": [],
        "content_hash": None,
        "link_target": None,
        "rdev": None,
        "sqlite": False,
        "source": None,
    }
    values.update(fields)
    return Entry.from_trusted(values)


def _special_type(mode: int) -> EntryType:
    if stat.S_ISLNK(mode):
        return "symlink"
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
    # INFO, not WARNING: the result lists every skipped path, the report and the run
    # records show them, and a partial run is logged as a warning by its caller. At
    # WARNING a terminal would show each path twice, on stderr and in the report.
    text = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
    display = display_path(path)
    result.skipped.append(SkippedPath(path=display, reason=str(text)))
    if len(result.skipped) <= _LOGGED_SKIPS:
        logger.info("backup skipped path backup_set=%s path=%s reason=%s", result.name, display, text)
    elif len(result.skipped) == _LOGGED_SKIPS + 1:
        logger.info("backup skipping more paths backup_set=%s; the run result lists all", result.name)


class _Vanished:
    """Paths that no longer existed when the run read them: counted, the first `LISTED_VANISHED` listed."""

    def __init__(self) -> None:
        self.count = 0
        self.by_set: dict[str, int] = {}
        self.listed: list[VanishedPath] = []

    def add(self, result: SetResult, path: bytes) -> None:
        self.count += 1
        self.by_set[result.name] = self.by_set.get(result.name, 0) + 1
        display = display_path(path)
        if len(self.listed) < LISTED_VANISHED:
            self.listed.append(VanishedPath(backup_set=result.name, path=display))
        if self.count <= _LOGGED_SKIPS:
            logger.info("backup path vanished before it was read backup_set=%s path=%s", result.name, display)
        elif self.count == _LOGGED_SKIPS + 1:
            logger.info("backup finds more vanished paths; the run result counts all of them")


def _skip_or_vanish(result: SetResult, path: bytes, err: OSError, vanished: _Vanished) -> None:
    """Record a path that could not be read: as vanished when it no longer exists, else as skipped."""
    if err.errno in _VANISHED_ERRNOS:
        vanished.add(result, path)
    else:
        _skip(result, path, err)


def _parents(path: bytes) -> Iterator[bytes]:
    """Yield the directories above an absolute path, nearest first, ending with `/`."""
    parent = os.path.dirname(path)
    while parent != path:
        yield parent
        path, parent = parent, os.path.dirname(parent)


def _root_path(path: Path) -> bytes:
    """Return a configured path as the absolute bytes path that the walk compares, with one leading slash."""
    return b"/" + os.fsencode(os.path.abspath(path)).lstrip(b"/")


def _duplicate_path_warning(owner: BackupSetSpec, other: BackupSetSpec, path: bytes) -> str:
    reason = "has the higher priority" if owner.priority > other.priority else "comes first in the config"
    return (
        f"set {owner.name} and set {other.name} both list path {display_path(path)}. Set {owner.name} backs it up "
        f"because it {reason}, and set {other.name} does not count it. Remove the path from one of the two sets"
    )


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
    before = {result.name: result for result in previous.sets}
    warnings = []
    for result in results:
        parent = before.get(result.name)
        # A set whose paths changed in the config is not compared: fewer bytes are then expected.
        if parent is None or parent.paths != result.paths:
            continue
        old = parent.bytes
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
        vanished=run.vanished.count,
        vanished_by_set=run.vanished.by_set,
        vanished_paths=run.vanished.listed,
        warnings=snapshot.warnings,
    )

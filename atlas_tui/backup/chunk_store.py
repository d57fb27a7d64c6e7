"""Concurrent hashing and sealing of a backup run's chunks into packs.

The archiver's thread reads files, hashes their content and cuts chunks, then
hands each chunk to `ChunkStore.add`, which groups chunks into batches. Worker
threads compute each chunk's id, decide under a lock whether the chunk is new,
and compress and encrypt new ones. A chunk added with a similar stored chunk (the
same offset of a database in the parent snapshot) is stored as a delta against it
when that is small. BLAKE3, zstd and AES-GCM release the GIL, so
the workers run beside the reading thread. Batches are taken back in the order
they were added, so each file's chunk list follows its bytes.

Each worker appends the chunks it sealed to its own open pack, so the order of
chunks inside packs depends on thread timing, which nothing reads. A full pack is
finished (header, fsync, rename) on a separate thread while the next one fills.
A run thus pays one fsync per pack, and only `finish` waits for them. `finish` returns only after every pack is durable, and the caller
writes the index after it, which keeps the writing order of the format.

Memory stays bounded: the queued chunks keep at most about `MAX_PENDING_BYTES` of
read blocks alive, with their sealed copies, in at most `MAX_PENDING_BATCHES` batches.
A chunk is a view into the block it was read in, and a block of a large file can be
five times the chunk (a 1 MiB read after a 4 MiB unfinished chunk). So the blocks are
counted, each once, rather than the chunks: counting chunk bytes let eight batches
keep up to 40 MiB of blocks alive.

NOTE: in the bench, about one backup after the change in four peaks 30 to 47 MiB
above the others, in anonymous memory near the end of the run, most often right
after a step of borg's. Capping the malloc arenas (`heap.backup_tuning`) did not stop it, and the cause
is not found; `docs/benchmarks.md` (results at d21d619) has what was measured.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from atlas_tui.backup.crypto import seal, seal_delta
from atlas_tui.backup.errors import BackupError, CorruptData
from atlas_tui.backup.heap import fix_mmap_threshold
from atlas_tui.backup.packs import PackInfo, PackWriter, chunk_associated
from atlas_tui.backup.repository import IndexEntry, Repository

__all__ = ["MAX_PENDING_BYTES", "ChunkStore", "FileDigest"]

MAX_PENDING_BYTES = 8 * 1024 * 1024
"""Bytes of read blocks that queued chunks keep alive before `add` waits for the oldest.
16 MiB gave the same first-backup time on the bench corpus and 9 to 13 MiB more peak RSS."""
MAX_PENDING_BATCHES = 8
"""Batches queued for the workers before `add` waits for the oldest. With small files this
bounds the files in flight, each of which keeps its read buffer and content hasher."""
BATCH_BYTES = 1024 * 1024
BATCH_CHUNKS = 256
"""A batch of chunks goes to a worker as one task once it reaches this many bytes or chunks,
so that small files do not pay a thread hand-off each."""

logger = logging.getLogger(__name__)


@dataclass
class FileDigest:
    """The chunk ids and size of one file, filled in as its chunks complete."""

    chunks: list[str] = field(default_factory=list)
    size: int = 0
    open_chunks: int = 0
    """Chunks added but not yet taken back from the workers."""
    ended: bool = False
    on_done: Callable[[FileDigest], None] | None = None


_Batch = list[tuple[FileDigest, "memoryview | bytes", "bytes | None"]]


class ChunkStore:
    """Stores the new chunks of one backup run; call its methods from one thread."""

    def __init__(self, repository: Repository, index: dict[bytes, IndexEntry], *, workers: int | None = None) -> None:
        self.repository = repository
        self.index = index
        self.new_chunks = 0
        self.new_bytes = 0
        """Sealed bytes written to packs."""
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()
        fix_mmap_threshold()
        count = workers or min(4, os.cpu_count() or 1)
        self._workers = ThreadPoolExecutor(max_workers=count, thread_name_prefix="backup-seal")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-pack")
        self._batch: _Batch = []
        self._batch_bytes = 0
        self._queue: deque[tuple[_Batch, Future[list[bytes]]]] = deque()
        self._queued_bytes = 0
        """Size of the blocks in `_blocks`."""
        self._blocks: dict[int, list[object]] = {}
        """The block behind queued chunks, by `id`, with the number of such chunks. The
        block is held here, so its `id` cannot be reused while it is counted."""
        self._writers: dict[int, PackWriter] = {}
        """The open pack of each worker thread, by thread id; only that thread writes to it."""
        self._commits: list[Future[PackInfo]] = []

    def begin_file(self, on_done: Callable[[FileDigest], None] | None = None) -> FileDigest:
        """Start a file; `on_done` gets its digest once every chunk is stored."""
        return FileDigest(on_done=on_done)

    def add(self, digest: FileDigest, chunk: memoryview | bytes, similar: bytes | None = None) -> None:
        """Queue the next chunk of a file, waiting for older chunks when the queue is full.

        Args:
            similar: Id of a stored chunk that probably shares most of its bytes with this
                one, such as the chunk at the same offset of the same database in the parent
                snapshot. A new chunk is then stored as a delta against it (or against its base,
                so that no delta depends on another delta) when that is at most half its size.

        Raises:
            BackupError: a worker failed to write a pack.
        """
        digest.open_chunks += 1
        digest.size += len(chunk)
        self._hold(chunk)
        self._batch.append((digest, chunk, similar))
        self._batch_bytes += len(chunk)
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_CHUNKS:
            self._submit()
        while self._queue and (self._queued_bytes > MAX_PENDING_BYTES or len(self._queue) > MAX_PENDING_BATCHES):
            self._take_oldest()

    def end_file(self, digest: FileDigest) -> None:
        """Mark that a file has no more chunks."""
        digest.ended = True
        self._complete_if_done(digest)

    def collect(self) -> None:
        """Hand the chunks added so far to the workers, and take back the batches they finished, without waiting.

        Files whose last chunk came back are then complete. `add` takes batches back
        only when the queue is full, which a run that reads little may never fill.
        """
        self._submit()
        while self._queue and self._queue[0][1].done():
            self._take_oldest()

    def settle(self, batches: int) -> None:
        """Wait until at most `batches` batches are queued for the workers."""
        while len(self._queue) > batches:
            self._take_oldest()

    def drain(self) -> None:
        """Wait until every queued chunk is stored and every ended file is complete."""
        self._submit()
        while self._queue:
            self._take_oldest()

    def finish(self) -> list[PackInfo]:
        """Store every queued chunk, finish the open packs and return every pack once all are durable.

        Raises:
            BackupError: a pack could not be written or fsynced.
        """
        self.drain()
        for writer in self._writers.values():
            self._commits.append(self._committer.submit(writer.finish))
        self._writers.clear()
        try:
            packs = [commit.result() for commit in self._commits]
        except OSError as err:
            raise BackupError(f"finishing packs in {self.repository.path / 'data'} failed: {err}") from err
        self._commits = []
        return packs

    def close(self) -> None:
        """Stop the threads and remove the unfinished packs; finished packs stay (no index names them)."""
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        self._batch = []
        self._blocks.clear()
        self._queued_bytes = 0
        self._workers.shutdown(wait=True, cancel_futures=True)
        self._committer.shutdown(wait=True)
        for writer in self._writers.values():
            writer.discard()
        self._writers.clear()
        self.index = {}
        self._claimed = set()

    def _submit(self) -> None:
        if not self._batch:
            return
        batch = self._batch
        self._batch, self._batch_bytes = [], 0
        self._queue.append((batch, self._workers.submit(self._prepare, batch)))

    def _prepare(self, batch: _Batch) -> list[bytes]:
        """Return the id of each chunk in the batch, sealing and writing the new ones; runs on a worker."""
        identifiers = []
        for _, chunk, similar in batch:
            identifier = self.repository.chunk_id(chunk)
            identifiers.append(identifier)
            with self._lock:
                new = identifier not in self.index and identifier not in self._claimed
                if new:
                    self._claimed.add(identifier)
            if new:
                associated = chunk_associated(identifier)
                base, sealed = self._delta(chunk, associated, similar) if similar else (None, None)
                if sealed is None:
                    sealed = seal(self.repository.key, chunk, associated)
                self._write(identifier, sealed, len(chunk), base)
        return identifiers

    def _delta(
        self, chunk: memoryview | bytes, associated: bytes, similar: bytes
    ) -> tuple[bytes | None, bytes | None]:
        """Return the base id and the sealed delta of a chunk, or (None, None) to store it whole."""
        location = self.index.get(similar)
        if location is None:
            return None, None
        base = location.base or similar
        if location.base is not None:
            location = self.index.get(base)
            if location is None:
                return None, None
        try:
            base_plain = self.repository.read_chunk(location, base)
        except (OSError, CorruptData) as err:
            # The chunk is then stored whole; integrity reports the damaged base.
            logger.warning("delta base unreadable, chunk stored whole base=%s error=%s", base.hex(), err)
            return None, None
        sealed = seal_delta(self.repository.key, chunk, associated, base, base_plain)
        return (base, sealed) if sealed is not None else (None, None)

    def _write(self, identifier: bytes, sealed: bytes, raw_length: int, base: bytes | None = None) -> None:
        """Append a sealed chunk to this worker's pack; runs on a worker thread."""
        thread = threading.get_ident()
        writer = self._writers.get(thread)
        if writer is None:
            writer = self._writers[thread] = PackWriter(self.repository.path, self.repository.key)
        writer.add_sealed(identifier, sealed, raw_length, base)
        with self._lock:
            self.new_chunks += 1
            self.new_bytes += len(sealed)
            if writer.size >= self.repository.config.pack_size:
                del self._writers[thread]
                self._commits.append(self._committer.submit(writer.finish))

    def _take_oldest(self) -> None:
        batch, future = self._queue.popleft()
        try:
            identifiers = future.result()
        except OSError as err:
            # Raised as a BackupError, so the caller's handling of unreadable files does
            # not take a failed pack write (a full disk) for one.
            raise BackupError(f"writing packs to {self.repository.path / 'data'} failed: {err}") from err
        for (digest, chunk, _), identifier in zip(batch, identifiers):
            self._release(chunk)
            digest.chunks.append(identifier.hex())
            digest.open_chunks -= 1
            self._complete_if_done(digest)

    def _hold(self, chunk: memoryview | bytes) -> None:
        """Count the block behind a chunk that is queued now, once for all its chunks."""
        block = chunk.obj if isinstance(chunk, memoryview) else chunk
        counted = self._blocks.get(id(block))
        if counted is None:
            self._blocks[id(block)] = [block, 1]
            self._queued_bytes += len(block)  # type: ignore[arg-type]
        else:
            counted[1] += 1  # type: ignore[operator]

    def _release(self, chunk: memoryview | bytes) -> None:
        """Stop counting a chunk taken back from the workers, and its block after its last chunk."""
        block = chunk.obj if isinstance(chunk, memoryview) else chunk
        counted = self._blocks[id(block)]
        counted[1] -= 1  # type: ignore[operator]
        if counted[1] == 0:
            del self._blocks[id(block)]
            self._queued_bytes -= len(block)  # type: ignore[arg-type]

    @staticmethod
    def _complete_if_done(digest: FileDigest) -> None:
        if digest.ended and digest.open_chunks == 0 and digest.on_done is not None:
            callback, digest.on_done = digest.on_done, None
            callback(digest)

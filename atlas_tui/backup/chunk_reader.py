"""Reading of chunks for a restore from pack files kept open per thread.

`ChunkReader.iter_chunks(entry)` yields a file's chunk plaintexts in order. Each is
read with `pread`, then authenticated, decrypted, decompressed and checked against
its id; a delta chunk first reads its base chunk the same way. `pread`, AES-GCM, zstd and BLAKE3 release the GIL, so several writer
threads can each read their own file at the same time. Every thread keeps its own
small set of open pack files, so no descriptor is shared between threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator

from atlas_tui.backup.errors import CorruptData
from atlas_tui.backup.heap import fix_mmap_threshold
from atlas_tui.backup.models import Entry
from atlas_tui.backup.packs import pack_path
from atlas_tui.backup.repository import IndexEntry, Repository

__all__ = ["ChunkReader"]

_OPEN_PACKS_PER_THREAD = 16

logger = logging.getLogger(__name__)


class ChunkReader:
    """Reads the chunks of snapshot entries from one repository; close it when done."""

    def __init__(self, repository: Repository, index: dict[bytes, IndexEntry]) -> None:
        self.repository = repository
        self.index = index
        fix_mmap_threshold()
        self._local = threading.local()
        self._open_files: list[OrderedDict[str, int]] = []
        """Each thread's open pack files, most recently used last; only that thread uses its own."""
        self._open_files_lock = threading.Lock()

    def iter_chunks(self, entry: Entry) -> Iterator[bytes]:
        """Yield the plaintext of every chunk of a file entry, in order, read on the calling thread.

        Raises:
            CorruptData: a chunk is not in the index, or fails authentication or its id check.
        """
        for hex_id in entry.chunks:
            identifier = bytes.fromhex(hex_id)
            location = self.index.get(identifier) or self._moved(identifier)
            if location is None:
                raise CorruptData(
                    f"chunk {hex_id} of {entry.display_path()} is not in the index; "
                    "run `backup-manager integrity` to find the damage"
                )
            yield self._load(location, identifier)

    def close(self) -> None:
        """Close the pack files of every thread; call it once no thread reads any more."""
        with self._open_files_lock:
            for files in self._open_files:
                for fd in files.values():
                    os.close(fd)
                files.clear()

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.close()

    def _moved(self, identifier: bytes) -> IndexEntry | None:
        """Return where a chunk is now when the index files changed since they were read, else None.

        `cleanup` and `key rotate` copy chunks into new packs and delete the old ones,
        taking the lock that a restore does not take, so a restore that runs meanwhile
        finds a pack gone and looks the chunk up again.
        """
        index = self.repository.load_index()
        if index is self.index:
            return None
        logger.info("restore reread the index, which changed since it was read repository=%s", self.repository.path)
        self.index = index
        return index.get(identifier)

    def _load(self, location: IndexEntry, identifier: bytes) -> bytes:
        try:
            fd = self._pack_fd(location.pack_id)
        except FileNotFoundError:
            moved = self._moved(identifier)
            if moved is None or moved.pack_id == location.pack_id:
                raise CorruptData(
                    f"pack {location.pack_id} chunk {identifier.hex()}: the pack is missing; "
                    "run `backup-manager integrity` to find the damage"
                ) from None
            return self._load(moved, identifier)
        try:
            sealed = os.pread(fd, location.length, location.offset)
        except OSError as err:
            raise CorruptData(
                f"pack {location.pack_id} chunk {identifier.hex()}: reading the pack failed: {err.strerror or err}; "
                "run `backup-manager integrity` to find the damage"
            ) from err
        if len(sealed) != location.length:
            raise CorruptData(
                f"pack {location.pack_id} chunk {identifier.hex()}: the pack ends before the chunk does; "
                "run `backup-manager integrity` to find the damage"
            )
        loader = None
        if location.base is not None:

            def loader(base_id: bytes) -> bytes:
                base = self.index.get(base_id)
                if base is None or base.base is not None:
                    # read_base names what is wrong with the base.
                    return self.repository.read_base(base_id, self.index, location)
                return self._load(base, base_id)

        return self.repository.open_chunk(location, identifier, sealed, base_loader=loader)

    def _pack_fd(self, pack_id: str) -> int:
        files: OrderedDict[str, int] | None = getattr(self._local, "files", None)
        if files is None:
            files = self._local.files = OrderedDict()
            with self._open_files_lock:
                self._open_files.append(files)
        fd = files.get(pack_id)
        if fd is not None:
            files.move_to_end(pack_id)
            return fd
        if len(files) >= _OPEN_PACKS_PER_THREAD:
            os.close(files.popitem(last=False)[1])
        fd = files[pack_id] = os.open(pack_path(self.repository.path, pack_id), os.O_RDONLY | os.O_CLOEXEC)
        return fd

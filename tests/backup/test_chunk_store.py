"""The chunk store's bound on the read blocks that queued chunks keep alive, and taking finished batches back."""

from __future__ import annotations

import os
import time

from atlas_tui.backup.chunk_store import ChunkStore
from atlas_tui.backup.repository import Repository


def test_block_counted_once_for_its_chunks(repository: Repository) -> None:
    """Four chunks cut from one 1 MiB block count as that block's size, and nothing once stored."""
    store = ChunkStore(repository, repository.load_index())
    try:
        block = os.urandom(1024 * 1024)
        view = memoryview(block)
        digest = store.begin_file()
        for start in range(0, len(block), 256 * 1024):
            store.add(digest, view[start : start + 256 * 1024])
        assert store._queued_bytes == len(block)
        store.end_file(digest)
        store.drain()
        assert store._queued_bytes == 0
        assert len(digest.chunks) == 4
    finally:
        store.close()


def test_small_files_counted_each(repository: Repository) -> None:
    """Chunks that are whole `bytes` objects count their own sizes."""
    store = ChunkStore(repository, repository.load_index())
    try:
        digests = []
        for size in (10, 20, 30):
            digest = store.begin_file()
            store.add(digest, os.urandom(size))
            store.end_file(digest)
            digests.append(digest)
        assert store._queued_bytes == 60
        store.drain()
        assert store._queued_bytes == 0
        assert [digest.size for digest in digests] == [10, 20, 30]
    finally:
        store.close()


def test_collect_completes_files_without_waiting(repository: Repository) -> None:
    """`collect` hands a part-filled batch to the workers and completes its files once they finish it."""
    store = ChunkStore(repository, repository.load_index())
    done: list[str] = []
    try:
        digest = store.begin_file(on_done=lambda finished: done.append(finished.chunks[0]))
        store.add(digest, os.urandom(100))
        store.end_file(digest)
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            store.collect()
            time.sleep(0.01)
        assert done == digest.chunks
        assert store._queued_bytes == 0
    finally:
        store.close()

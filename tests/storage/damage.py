"""Build a store with data in it and damage its pages, as a failing disk or a bad copy would.

The daemon and storage tests share these helpers to check that a damaged store is
reported instead of silently failing every write.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from collectors.base import Sample
from storage.db import DB_FILENAME, open_store
from storage.metrics import write_samples

PAGE_SIZE = 4096
"""SQLite's default page size, which `open_store` keeps."""


def build_store(data_dir: Path, *, series: int = 50, points: int = 60, now: float = 1_750_000_000.0) -> Path:
    """Create a store in `data_dir` with `series` x `points` samples; return the database path.

    The connection is closed, which checkpoints the WAL into the database file.
    """
    conn = open_store(data_dir)
    try:
        for step in range(points):
            ts = now - (points - step) * 5.0
            batch = [Sample.of("disk_usage", float(i), ts, mount=f"/m{i}") for i in range(series)]
            write_samples(conn, batch)
    finally:
        conn.close()
    return data_dir / DB_FILENAME


def damage_pages(path: Path, *, first: int = 2, every: int = 5, length: int = 2000, seed: int = 7) -> int:
    """Overwrite `length` random bytes in every `every`-th page from page `first` on; return the pages hit.

    Pages are numbered from 1, as SQLite does. Page 1 (the file header) stays
    intact, so SQLite still recognizes the file. With the default `first` the
    schema's overflow pages are hit too, so opening the store already fails. A
    `first` above `last_table_root(path)` damages only data pages.
    """
    rng = random.Random(seed)
    size = path.stat().st_size
    pages = [page - 1 for page in range(max(first, 2), size // PAGE_SIZE + 1, every)]
    with path.open("r+b") as file:
        for page in pages:
            file.seek(page * PAGE_SIZE + 100)
            file.write(rng.randbytes(length))
    return len(pages)


def last_table_root(path: Path) -> int:
    """Return the highest root page number of any table or index in the store at `path`."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT max(rootpage) FROM sqlite_master").fetchone()[0])
    finally:
        conn.close()

"""Seeded test data for `bench/backup_vs_restic.py`: a tree of about 1 GiB and its ~1 % change.

The tree mixes what a monitoring node holds:

    db/events.db           a SQLite database in WAL mode: an events table and three indexes
    files/dNNN/...         tens of thousands of small text, JSON and config files
    blobs/blob-NN.bin      incompressible random data
    logs/app.log           an append-only log

The same seed and size give the same bytes. `DatabaseHolder` keeps the database open
in a child process, like a running daemon, and applies the database part of the change
through that connection, so the `-wal` and `-shm` files exist during every backup.
`python bench/backup_corpus.py copy DB COPY` makes a copy with SQLite's online backup
API, which the benchmark can give restic and borg in place of the live files.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CorpusShares", "DatabaseHolder", "apply_file_change", "generate"]

WORDS = (
    "node block peer sync height latency request response cache index query worker queue retry timeout "
    "disk memory cpu network alert rule channel webhook backup snapshot restore chunk pack repository "
    "config value status ok error warning info debug trace session device app screen crash start"
).split()
APPS = [f"app-{number:02d}" for number in range(20)]
KINDS = [f"kind_{number:02d}" for number in range(30)]
DEVICES = 50_000
DATABASE_ROW_BYTES = 316
"""Measured bytes per row of the events table with its three indexes (rows of ~180-byte payloads)."""
SMALL_FILE_MEAN_BYTES = 4096
LOG_LINE_BYTES = 110
EVENTS_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    payload TEXT NOT NULL
);
"""
EVENTS_INDEXES = (
    "CREATE INDEX events_ts ON events (ts)",
    "CREATE INDEX events_app_kind_ts ON events (app, kind, ts)",
    "CREATE INDEX events_device ON events (device)",
)
START_TS = 1_767_225_600


@dataclass(frozen=True)
class CorpusShares:
    """Bytes of each part of the corpus."""

    database: int
    small_files: int
    blobs: int
    log: int

    @classmethod
    def for_total(cls, total: int) -> CorpusShares:
        """Split `total` bytes: 34 % database, 12 % small files, 30 % random blobs, 24 % log."""
        return cls(int(total * 0.34), int(total * 0.12), int(total * 0.30), int(total * 0.24))


def generate(root: Path, total: int, seed: int) -> None:
    """Write the corpus of about `total` bytes under `root` (a new directory)."""
    shares = CorpusShares.for_total(total)
    rng = random.Random(seed)
    root.mkdir(parents=True)
    _write_database(root / "db" / "events.db", shares.database, random.Random(rng.random()))
    _write_small_files(root / "files", shares.small_files, random.Random(rng.random()))
    _write_blobs(root / "blobs", shares.blobs, random.Random(rng.random()))
    _write_log(root / "logs" / "app.log", shares.log, random.Random(rng.random()))


def apply_file_change(root: Path, total: int, seed: int) -> None:
    """Change the files of the corpus by about 0.6 % of `total`; the holder changes the database.

    Log lines are appended, 1 % of the small files are rewritten, 0.3 % new ones are added,
    and one new random blob appears.
    """
    rng = random.Random(seed + 1)
    shares = CorpusShares.for_total(total)
    _write_log(root / "logs" / "app.log", int(total * 0.002), rng, append=True)
    small = sorted((root / "files").rglob("*"))
    small = [path for path in small if path.is_file()]
    for path in rng.sample(small, max(1, len(small) // 100)):
        path.write_bytes(_text(rng, rng.randint(200, 2 * SMALL_FILE_MEAN_BYTES)))
    for number in range(max(1, len(small) * 3 // 1000)):
        path = root / "files" / "new" / f"added-{number:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(rng, rng.randint(200, 2 * SMALL_FILE_MEAN_BYTES)))
    (root / "blobs" / "blob-new.bin").write_bytes(rng.randbytes(max(shares.blobs // 100, 1)))


def database_change_rows(total: int) -> int:
    """Return how many rows the ~1 % change inserts: about 0.3 % of `total` in table bytes."""
    return max(100, int(total * 0.003) // DATABASE_ROW_BYTES)


class DatabaseHolder:
    """A child process that keeps the database open and writes to it on request."""

    def __init__(self, database: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "hold", str(database)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def change(self, rows: int, seed: int) -> None:
        """Insert `rows` events, update and delete a few, in transactions of 500 rows."""
        self._send(f"change {rows} {seed}")
        self._expect("changed")

    def close(self) -> None:
        """Close the connection and wait for the process to end."""
        if self._process.poll() is None:
            self._send("quit")
            self._process.wait(timeout=60)

    def _send(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def _expect(self, word: str) -> None:
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"database holder printed {line!r}, expected {word!r}")


def _hold(database: Path) -> None:
    """Body of the holder process: keep one connection open and run `change` commands from stdin."""
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("SELECT count(*) FROM events").fetchone()
    print("ready", flush=True)
    for line in sys.stdin:
        command, *arguments = line.split()
        if command == "quit":
            break
        rows, seed = (int(value) for value in arguments)
        _change_database(connection, rows, random.Random(seed))
        print("changed", flush=True)
    connection.close()


def _change_database(connection: sqlite3.Connection, rows: int, rng: random.Random) -> None:
    newest = connection.execute("SELECT max(id), max(ts) FROM events").fetchone()
    first_id, ts = newest[0] + 1, newest[1]
    for start in range(0, rows, 500):
        batch = [_event(rng, ts + (start + offset) // 10) for offset in range(min(500, rows - start))]
        with connection:
            connection.executemany(
                "INSERT INTO events (ts, app, kind, device, payload) VALUES (?, ?, ?, ?, ?)", batch
            )
    with connection:
        for identifier in rng.sample(range(1, first_id), rows // 20):
            connection.execute("UPDATE events SET kind = ? WHERE id = ?", (rng.choice(KINDS), identifier))
        connection.execute("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (rows // 10,))


def _write_database(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(EVENTS_SCHEMA)
    rows = size // DATABASE_ROW_BYTES
    with connection:
        for start in range(0, rows, 50_000):
            batch = [_event(rng, START_TS + row // 20) for row in range(start, min(rows, start + 50_000))]
            connection.executemany("INSERT INTO events (ts, app, kind, device, payload) VALUES (?, ?, ?, ?, ?)", batch)
    for statement in EVENTS_INDEXES:
        connection.execute(statement)
    connection.commit()
    connection.close()


def _event(rng: random.Random, ts: int) -> tuple[int, str, str, str, str]:
    payload = json.dumps(
        {
            "session": rng.randbytes(8).hex(),
            "screen": rng.choice(WORDS),
            "latency_ms": rng.randint(1, 5000),
            "ok": rng.random() < 0.97,
            "message": " ".join(rng.choices(WORDS, k=8)),
            "value": round(rng.random() * 1000, 3),
        }
    )
    device = f"{rng.randrange(DEVICES):016x}"
    return ts, rng.choice(APPS), rng.choice(KINDS), device, payload


def _write_small_files(root: Path, size: int, rng: random.Random) -> None:
    written = 0
    number = 0
    while written < size:
        directory = root / f"d{number // 200:03d}"
        if number % 200 == 0:
            directory.mkdir(parents=True)
        length = min(int(rng.lognormvariate(7.6, 0.9)) + 64, 64 * 1024)
        suffix = rng.choice((".json", ".txt", ".conf"))
        (directory / f"f{number:06d}{suffix}").write_bytes(_text(rng, length))
        written += length
        number += 1


def _write_blobs(root: Path, size: int, rng: random.Random) -> None:
    root.mkdir(parents=True)
    count = 6
    for number in range(count):
        (root / f"blob-{number:02d}.bin").write_bytes(rng.randbytes(size // count))


def _write_log(path: Path, size: int, rng: random.Random, *, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if append else "wb") as handle:
        written = 0
        while written < size:
            lines = "".join(
                f"2026-01-01T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z "
                f"{rng.choice(('INFO', 'INFO', 'INFO', 'WARN', 'DEBUG'))} {rng.choice(WORDS)} "
                f"id={rng.randrange(10**9)} peer={rng.randrange(500)} ms={rng.randrange(10**4)} "
                f"{' '.join(rng.choices(WORDS, k=5))}\n"
                for _ in range(2000)
            ).encode()
            handle.write(lines)
            written += len(lines)


def _text(rng: random.Random, length: int) -> bytes:
    words = " ".join(rng.choices(WORDS, k=length // 5 + 1))
    return f"# generated {rng.randrange(10**12)}\n{words}\n".encode()[:length]


def _copy(source: Path, destination: Path) -> None:
    """Copy a live database with the online backup API into `destination`, replacing it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(destination)
    reader.backup(writer)
    writer.close()
    reader.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "hold":
        _hold(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "copy":
        _copy(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: backup_corpus.py hold DATABASE | copy DATABASE COPY")

"""The demo's backup repository and run records, for the Backups pane's screenshots and snapshot tests.

`build_demo_backups` writes two small seeded trees (`node` and `analytics`) under
`demo-backup-sources/` in the demo data directory and creates a real repository in
`backups/` there. It runs `jobs.backup_job` three times at fixed times before `now`,
so the store records each run as it does for the daemon. A fourth run finds the
`analytics` path removed, so that set fails, its snapshot is partial, and the pane
shows ok, failed and partial states. `demo_backup_config` is the config's `backup` section that
matches. The passphrase sits in a file in the data directory; it protects nothing
but the demo.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.jobs import RunRecorder, backup_job
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, ChunkerParams, Trigger
from atlas_tui.backup.repository import Repository

__all__ = ["DEMO_PASSPHRASE", "build_demo_backups", "demo_backup_config"]

DEMO_PASSPHRASE = b"atlas-demo-passphrase"
"""Passphrase of the demo repository, written to `demo-backup-passphrase` in the data directory."""

_SOURCES = "demo-backup-sources"
_PASSPHRASE_FILE = "demo-backup-passphrase"
_SEED = 20250615
_DAY = 86400.0
_RUNS: tuple[tuple[float, Trigger], ...] = ((2 * _DAY, "scheduled"), (_DAY, "scheduled"), (2 * 3600.0, "manual"))
"""Seconds before `now` and trigger of each demo run, oldest first."""


def demo_backup_config(data_dir: Path) -> BackupConfig:
    """Return the demo's `backup` section: the repository in `data_dir` and the two demo sets."""
    sources = data_dir / _SOURCES
    return BackupConfig.model_validate(
        {
            "passphrase_env": "ATLAS_DEMO_BACKUP_PASSPHRASE",
            "passphrase_file": str(data_dir / _PASSPHRASE_FILE),
            "sets": [
                {"name": "node", "paths": [str(sources / "node")], "priority": 10},
                {"name": "analytics", "paths": [str(sources / "analytics")], "priority": 20},
            ],
        }
    )


def build_demo_backups(conn: sqlite3.Connection, data_dir: Path, now: float) -> None:
    """Create the demo repository with three snapshots and record four backup runs in the store.

    Args:
        conn: Connection to the demo store, for the run records.
        data_dir: The demo data directory; the repository is `backups/` inside it.
        now: The demo's fixed time.
    """
    _write_sources(data_dir / _SOURCES)
    (data_dir / _PASSPHRASE_FILE).write_bytes(DEMO_PASSPHRASE + b"\n")
    small_chunks = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
    repository = Repository.init(
        data_dir / "backups", DEMO_PASSPHRASE, now=now - 3 * _DAY, chunker=small_chunks, scrypt_n=2**10
    )
    config = demo_backup_config(data_dir)
    sets = [BackupSetSpec(name=item.name, paths=[Path(p) for p in item.paths]) for item in config.sets]
    for age, trigger in _RUNS:
        _run(conn, repository, BackupRequest(sets=sets, trigger=trigger, now=now - age))
        _grow_node(data_dir / _SOURCES / "node", age)

    # The last run: the analytics path is gone, so that set fails while node is ok.
    shutil.rmtree(data_dir / _SOURCES / "analytics")
    _run(conn, repository, BackupRequest(sets=sets, trigger="scheduled", now=now - 1800.0))


def _write_sources(root: Path) -> None:
    noise = random.Random(_SEED)
    node = root / "node"
    (node / "chain").mkdir(parents=True, exist_ok=True)
    (node / "chain" / "blocks-0001.dat").write_bytes(noise.randbytes(1_500_000))
    (node / "node.toml").write_text("[rpc]\nport = 8545\n")
    analytics = root / "analytics"
    analytics.mkdir(parents=True, exist_ok=True)
    for index in range(12):
        (analytics / f"events-{index:02}.jsonl").write_text(
            "".join(f'{{"n": {line}, "screen": "home"}}\n' for line in range(index * 400))
        )


def _grow_node(node: Path, age: float) -> None:
    """Add a block file between runs, so each snapshot stores some new data."""
    noise = random.Random(_SEED + int(age))
    count = len(list((node / "chain").iterdir()))
    (node / "chain" / f"blocks-{count + 1:04}.dat").write_bytes(noise.randbytes(300_000))


def _run(conn: sqlite3.Connection, repository: Repository, request: BackupRequest) -> None:
    """Back up and record the run; each run ends, by the recorder's clock, 20 s after it started."""
    recorder = RunRecorder(conn, repository=repository.path, clock=lambda: request.now + 20.0)
    backup_job(repository, request, recorder)

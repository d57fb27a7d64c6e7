"""A backup killed with SIGKILL leaves a repository that checks clean and accepts the next backup."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, ChunkerParams
from atlas_tui.backup.repository import Repository

from tests.backup.conftest import PASSPHRASE, SLOW_PACKS, build_tree

START = 1_767_225_600.0

# Backs up the directory in argv[2] into the repository in argv[1], slowly enough to be killed midway.
CHILD = SLOW_PACKS + """
import sys
from pathlib import Path
from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository

repository = Repository.open(Path(sys.argv[1]), sys.argv[3].encode())
Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="big", paths=[Path(sys.argv[2])])], now=time.time()))
"""


def test_killed_backup_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """After SIGKILL mid-run, old snapshots pass integrity, and the next run takes over the lock and succeeds."""
    chunker = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
    repository = Repository.init(
        tmp_path / "repo", PASSPHRASE, now=START, chunker=chunker, pack_size=256 * 1024, scrypt_n=2**10
    )
    small = build_tree(tmp_path / "small")
    first = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="small", paths=[small])], now=START))
    big = tmp_path / "big"
    big.mkdir()
    (big / "data.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    packs_before = len(repository.pack_ids())

    child = subprocess.Popen([sys.executable, "-c", CHILD, str(repository.path), str(big), PASSPHRASE.decode()])
    deadline = time.monotonic() + 20
    while len(repository.pack_ids()) < packs_before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    assert len(repository.pack_ids()) >= packs_before + 3
    assert repository.snapshot_ids() == [first.id]
    assert check_integrity(repository, [first.id]).ok

    with caplog.at_level(logging.WARNING, logger="atlas_tui.backup.lock"):
        second = Archiver(repository).run(
            BackupRequest(sets=[BackupSetSpec(name="big", paths=[big])], now=START + 60)
        )

    assert "taking over stale backup lock" in caplog.text
    assert second.status == "ok"
    assert check_integrity(repository, repository.snapshot_ids()).ok

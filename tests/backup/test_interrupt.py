"""`backup-manager backup` stopped by SIGINT or SIGTERM: exit code, message, run records and repository."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.checker import check_integrity
from atlas_tui.backup.models import ChunkerParams
from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_OK
from storage.backup_runs import recent_runs
from storage.db import DB_FILENAME, connect

from tests.backup.conftest import PASSPHRASE, SLOW_PACKS, run_cli

# Runs `backup-manager` with the arguments after argv[0], each finished pack delayed so
# that the test can send a signal midway.
SLOW_CLI = SLOW_PACKS + """
import sys
from atlas_tui.cli_backup import main

sys.exit(main(sys.argv[1:]))
"""


def running_rows(data_dir: Path) -> int:
    """Return the number of `running` run records in the store of `data_dir`, 0 before it exists."""
    store = data_dir / DB_FILENAME
    if not store.is_file():
        return 0
    conn = connect(store)
    try:
        return sum(1 for row in recent_runs(conn, 10) if row.status == "running")
    except sqlite3.OperationalError:
        # The child has created the store file and not yet its tables.
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_stops_backup(
    tmp_path: Path, stop_signal: signal.Signals, cli_environment: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The backup exits 128 + the signal, prints one line, fails its records as interrupted and leaves a usable repository."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", PASSPHRASE.decode())
    repository = Repository.init(
        tmp_path / "repo", PASSPHRASE, now=time.time(), scrypt_n=2**10, pack_size=256 * 1024,
        chunker=ChunkerParams(min_size=4096, avg_size=16384, max_size=65536),
    )
    source = tmp_path / "big"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    data_dir = tmp_path / "data"
    command = [sys.executable, "-c", SLOW_CLI, "--repo", str(repository.path), "backup", "--path", str(source)]

    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 30
    while (running_rows(data_dir) == 0 or len(repository.pack_ids()) < 3) and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    child.send_signal(stop_signal)
    out, err = child.communicate(timeout=60)

    assert child.returncode == 128 + stop_signal, err
    assert out == ""
    assert err.count(f"backup interrupted by {stop_signal.name}") == 1
    assert "the repository is consistent" in err
    conn = connect(data_dir / DB_FILENAME)
    try:
        (row,) = recent_runs(conn, 10)
    finally:
        conn.close()
    assert row.status == "failed"
    assert row.error == f"interrupted by {stop_signal.name} before the run finished"
    assert repository.snapshot_ids() == []
    assert (repository.path / "lock").read_text() == ""
    assert list(repository.path.rglob(".tmp-*")) == []

    code, out, err = run_cli(capsys, "--repo", str(repository.path), "backup", "--path", str(source))

    assert code == EXIT_OK, out + err
    assert check_integrity(repository, repository.snapshot_ids()).ok

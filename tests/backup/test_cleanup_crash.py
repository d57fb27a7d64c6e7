"""A cleanup killed with SIGKILL at each stage leaves a repository that checks clean and keeps working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.checker import check_integrity, verify_snapshot
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, RetentionPolicy
from atlas_tui.backup.pruner import Pruner
from atlas_tui.backup.repository import Repository

from tests.backup.conftest import PASSPHRASE, build_tree

START = 1_767_225_600.0
DAY = 86400.0
POLICY_PERIOD = DAY

# Runs cleanup on the repository in argv[1] and kills itself with SIGKILL at the stage in argv[2].
CHILD = """
import os, signal, sys
from pathlib import Path
from atlas_tui.backup import packs, pruner, repository
from atlas_tui.backup.models import RetentionPolicy

stage, calls = sys.argv[2], {"n": 0}

def kill_after(owner, name, on_call=1, only=lambda *args: True):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        value = original(*args, **kwargs)
        if only(*args):
            calls["n"] += 1
            if calls["n"] == on_call:
                os.kill(os.getpid(), signal.SIGKILL)
        return value
    setattr(owner, name, wrapper)

if stage == "manifest":
    kill_after(repository.Repository, "delete_snapshot")
elif stage == "new-pack":
    kill_after(packs.PackWriter, "finish")
elif stage == "new-index":
    kill_after(repository.Repository, "write_index")
elif stage == "old-index":
    kill_after(Path, "unlink", only=lambda path, *rest: path.parent.name == "index")
elif stage == "pack-delete":
    kill_after(pruner.Pruner, "_delete_pack", on_call=2)
elif stage == "rewritten-pack-delete":
    plans = []
    original_plan = pruner.Pruner._plan
    def record_plan(self, used):
        plans.append(original_plan(self, used))
        return plans[-1]
    pruner.Pruner._plan = record_plan
    kill_after(pruner.Pruner, "_delete_pack", only=lambda self, pack_id: pack_id in plans[-1].rewrite)
repo = repository.Repository.open(Path(sys.argv[1]), sys.argv[3].encode())
pruner.Pruner(repo).cleanup(RetentionPolicy(period=float(sys.argv[4])), now=float(sys.argv[5]))
"""


def back_up(repository: Repository, source: Path, now: float) -> str:
    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="files", paths=[source])], now=now))
    assert result.id is not None
    return result.id


@pytest.mark.parametrize(
    "stage", ["manifest", "new-pack", "new-index", "old-index", "pack-delete", "rewritten-pack-delete"]
)
def test_killed_cleanup_recovers(repository: Repository, tmp_path: Path, stage: str) -> None:
    """After SIGKILL at `stage`, the kept snapshot passes integrity and verify, and backup and cleanup run again."""
    source = build_tree(tmp_path / "src")
    old_content = os.urandom(200_000)
    (source / "old.bin").write_bytes(old_content)
    back_up(repository, source, START)
    data = bytearray((source / "random.bin").read_bytes())
    data[70_000:90_000] = os.urandom(20_000)
    (source / "random.bin").write_bytes(bytes(data))
    (source / "old.bin").unlink()
    second = back_up(repository, source, START + DAY)
    now = START + DAY + 3600

    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repository.path), stage, PASSPHRASE.decode(), str(POLICY_PERIOD), str(now)],
        capture_output=True, timeout=60,
    )

    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    remaining = repository.snapshot_ids()
    assert second in remaining
    assert check_integrity(repository, remaining).ok
    assert verify_snapshot(repository, repository.load_snapshot(second), scratch=tmp_path).status == "ok"
    indexed = {entry.pack_id for entry in repository.load_index().values()}
    assert indexed <= set(repository.pack_ids())

    # old.bin's chunks may still be indexed; a backup that needs them again must find them readable.
    (source / "old.bin").write_bytes(old_content)
    third = back_up(repository, source, now + 60)
    assert verify_snapshot(repository, repository.load_snapshot(third), scratch=tmp_path).status == "ok"
    Pruner(repository).cleanup(RetentionPolicy(period=POLICY_PERIOD), now=now + 120)

    assert repository.snapshot_ids() == [second, third]
    assert check_integrity(repository, [second, third]).ok
    assert set(repository.pack_ids()) == {entry.pack_id for entry in repository.load_index().values()}
    assert not [path for path in repository.path.rglob(".tmp-*")]

"""`backup-manager key rotate` and `atlas backup key rotate`: kills, other keys, passphrases, exit codes."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui import cli
from atlas_tui.backup.checker import check_integrity
from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.backup.models import ChunkerParams
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer
from atlas_tui.backup.rotation import KILL_AT_ENV
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_LOCKED, EXIT_OK, main

from tests.backup.conftest import build_tree, restored_root, tree_state
from tests.backup.sealed_objects import opens, sealed_objects

PASSPHRASE = "rotate passphrase"
SECOND_PASSPHRASE = "second passphrase"
SCRIPT = Path(sys.executable).parent / "backup-manager"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("ATLAS_BACKUP_NEW_PASSPHRASE", raising=False)
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv(KILL_AT_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "src")


@pytest.fixture
def repo(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A repository with two snapshots of `source` in small packs, opened fast (cheap scrypt cost)."""
    path = tmp_path / "repo"
    chunker = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
    Repository.init(path, PASSPHRASE.encode(), now=time.time(), chunker=chunker, pack_size=64 * 1024, scrypt_n=2**10)
    (source / "old.bin").write_bytes(os.urandom(100_000))
    assert run(capsys, "backup", "--repo", str(path), "--path", str(source))[0] == EXIT_OK
    (source / "old.bin").unlink()
    (source / "new.bin").write_bytes(os.urandom(60_000))
    assert run(capsys, "backup", "--repo", str(path), "--path", str(source))[0] == EXIT_OK
    return path


def add_second_key(capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path) -> str:
    new_passphrase = tmp_path / "second-passphrase"
    new_passphrase.write_text(SECOND_PASSPHRASE + "\n")
    code, out, err = run(
        capsys, "key", "add", "--repo", str(repo), "--new-passphrase-file", str(new_passphrase), "--json"
    )
    assert code == EXIT_OK, err
    return json.loads(out)["added"]


def assert_rotated(repo: Path, old_encryption: bytes, source: Path, target: Path) -> None:
    """The repository opens, passes integrity, restores `source` exactly and has nothing under the old key."""
    repository = Repository.open(repo, PASSPHRASE.encode())
    snapshot_ids = repository.snapshot_ids()
    Restorer(repository).restore(repository.load_snapshot(snapshot_ids[-1]), target)
    objects = list(sealed_objects(repository))

    assert repository.key.previous == ()
    assert check_integrity(repository, snapshot_ids).ok
    assert tree_state(restored_root(target, source)) == tree_state(source)
    assert [name for name, sealed, associated in objects if opens(old_encryption, sealed, associated)] == []
    assert not list(repo.rglob(".tmp-*"))
    assert {entry.pack_id for entry in repository.load_index().values()} == set(repository.pack_ids())


@pytest.mark.parametrize(
    "kill_at",
    [
        "keys-removed",
        "key-written",
        "pack-written",
        "pack-written:3",
        "index-written",
        "old-index-removed",
        "pack-removed",
        "pack-removed:2",
        "snapshot-written",
        "rotated",
    ],
)
def test_killed_rotate_recovers(
    repo: Path, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kill_at: str
) -> None:
    """SIGKILL of `backup-manager key rotate` at `kill_at` leaves a sound repository; a second rotate finishes."""
    add_second_key(capsys, repo, tmp_path)
    old = Repository.open(repo, PASSPHRASE.encode())
    environment = {**os.environ, KILL_AT_ENV: kill_at}

    killed = subprocess.run(
        [str(SCRIPT), "key", "rotate", "--repo", str(repo), "--yes"],
        capture_output=True, text=True, timeout=120, env=environment, check=False,
    )
    after_kill = Repository.open(repo, PASSPHRASE.encode())
    integrity = check_integrity(after_kill, after_kill.snapshot_ids())
    indexed_packs = {entry.pack_id for entry in after_kill.load_index().values()}
    packs_on_disk = set(after_kill.pack_ids())
    code = cli.main(["backup", "key", "rotate", "--repo", str(repo), "--json"])
    result = json.loads(capsys.readouterr().out)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert integrity.ok
    assert indexed_packs <= packs_on_disk
    assert code == EXIT_OK
    assert result["resumed"] == (kill_at != "keys-removed")
    assert_rotated(repo, old.key.encryption, source, tmp_path / "out")


def test_other_keys_need_yes(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --yes a rotate that would drop another passphrase's key exits 1, names it and changes nothing."""
    other = add_second_key(capsys, repo, tmp_path)
    packs_before = sorted(path.name for path in (repo / "data").rglob("*"))
    keys_before = {path.name: path.read_bytes() for path in (repo / "keys").iterdir()}

    code, _out, err = run(capsys, "key", "rotate", "--repo", str(repo))

    assert code == EXIT_FAILURE
    assert other in err
    assert "--yes" in err
    assert "key remove" in err
    assert sorted(path.name for path in (repo / "data").rglob("*")) == packs_before
    assert {path.name: path.read_bytes() for path in (repo / "keys").iterdir()} == keys_before


def test_yes_removes_other_keys(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--yes deletes the other key, whose passphrase then no longer opens the repository."""
    other = add_second_key(capsys, repo, tmp_path)

    code, out, err = run(capsys, "key", "rotate", "--repo", str(repo), "--yes", "--json")
    result = json.loads(out)
    listing = json.loads(run(capsys, "key", "list", "--repo", str(repo), "--json")[1])
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", SECOND_PASSPHRASE)
    second_code, _, second_err = run(capsys, "list", "--repo", str(repo))

    assert code == EXIT_OK, err
    assert result["removed_keys"] == [other]
    assert result["packs_rewritten"] > 0
    assert result["snapshots_rewritten"] == 2
    assert [item["id"] for item in listing] == [result["key_id"]]
    assert second_code == EXIT_FAILURE
    assert "wrong passphrase" in second_err


@pytest.mark.parametrize(("answer", "expected"), [("y\n", EXIT_OK), ("n\n", EXIT_FAILURE), ("\n", EXIT_FAILURE)])
def test_prompt_on_terminal(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    answer: str, expected: int,
) -> None:
    """On a terminal rotate prompts before deleting other keys, and only a yes goes on."""
    other = add_second_key(capsys, repo, tmp_path)
    terminal = io.StringIO(answer)
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", terminal)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)

    code, out, err = run(capsys, "key", "rotate", "--repo", str(repo))
    remaining = [path.name for path in (repo / "keys").iterdir()]

    assert code == expected
    assert other in err
    assert "Delete these keys and rotate? [y/N]" in err
    assert (other in remaining) == (expected != EXIT_OK)
    if expected == EXIT_OK:
        assert "key rotate: snapshots 2/2" in err
        assert f"removed key {other}" in out


def test_wrong_passphrase_changes_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong passphrase exits 1 with the usual message and leaves every file as it was."""
    files_before = {path: path.read_bytes() for path in repo.rglob("*") if path.is_file()}
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", "not the passphrase")

    code, _out, err = run(capsys, "key", "rotate", "--repo", str(repo), "--yes")

    assert code == EXIT_FAILURE
    assert "wrong passphrase for the backup repository" in err
    assert {path: path.read_bytes() for path in repo.rglob("*") if path.is_file()} == files_before


def test_locked_repository_exit(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rotate while a live process holds the lock exits 4 and names that process."""
    with RepositoryLock(repo, now=0):
        code, _out, err = run(capsys, "key", "rotate", "--repo", str(repo))

    assert code == EXIT_LOCKED
    assert f"pid {os.getpid()}" in err
    assert Repository.open(repo, PASSPHRASE.encode()).key.previous == ()


def test_text_summary(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json rotate prints one summary line with the key id and the counts."""
    key_id = Repository.open(repo, PASSPHRASE.encode()).key_id

    code, out, _err = run(capsys, "key", "rotate", "--repo", str(repo))

    assert code == EXIT_OK
    assert out.startswith(f"rotated the data key of {repo} (key {key_id}): ")
    assert "2 snapshots" in out


def timed_run(command: list[str]) -> float:
    """Run `command` to its end and return how many seconds it took."""
    started = time.monotonic()
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    return time.monotonic() - started


def test_kill_at_random_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rotations killed at seeded random delays never leave data under a key that the last rotation dropped."""
    source = tmp_path / "big"
    source.mkdir()
    rng = random.Random(7)
    for number in range(4):
        (source / f"part{number}.bin").write_bytes(rng.randbytes(5_000_000))
    path = tmp_path / "big-repo"
    chunker = ChunkerParams(min_size=16 * 1024, avg_size=64 * 1024, max_size=256 * 1024)
    Repository.init(path, PASSPHRASE.encode(), now=time.time(), chunker=chunker, pack_size=256 * 1024, scrypt_n=2**10)
    assert run(capsys, "backup", "--repo", str(path), "--path", str(source))[0] == EXIT_OK
    seen_keys = {Repository.open(path, PASSPHRASE.encode()).key.encryption}
    # Kills land between the end of start-up (as long as a `list`) and the end of a whole rotation.
    opening = timed_run([str(SCRIPT), "list", "--repo", str(path)])
    rotating = timed_run([str(SCRIPT), "key", "rotate", "--repo", str(path)])

    for _attempt in range(4):
        process = subprocess.Popen(
            [str(SCRIPT), "key", "rotate", "--repo", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(opening, max(rotating, opening + 0.1)))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        repository = Repository.open(path, PASSPHRASE.encode())
        seen_keys |= {repository.key.encryption, *repository.key.previous}
        assert check_integrity(repository, repository.snapshot_ids()).ok
    assert run(capsys, "key", "rotate", "--repo", str(path))[0] == EXIT_OK

    repository = Repository.open(path, PASSPHRASE.encode())
    dropped = seen_keys - {repository.key.encryption}
    objects = list(sealed_objects(repository))
    Restorer(repository).restore(repository.load_snapshot(repository.snapshot_ids()[0]), tmp_path / "out")

    assert len(dropped) >= 1
    assert [name for name, sealed, associated in objects for key in dropped if opens(key, sealed, associated)] == []
    assert check_integrity(repository, repository.snapshot_ids()).ok
    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)

"""Unreadable sources: partial and failed runs, their exit codes, and a set that shrank to nothing.

Permission bits do not stop root, so when the tests run as root the backup runs in
a forked child that has switched to the `nobody` user (uid 65534).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

# The child cannot read the interpreter's library directory after it drops root, so
# every module the backup command needs is imported here first.
import atlas_tui.backup.passphrase  # noqa: F401
from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.models import BackupRequest, BackupSetSpec
from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL, PRINTED_SKIPS, main

from tests.backup.conftest import PASSPHRASE, SMALL_CHUNKS

NOBODY = 65534
START = 1_767_225_600.0


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that the unprivileged child can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="atlas-unreadable-"))
    path.chmod(0o755)
    yield path
    for directory, _names, _files in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path)


def run_unprivileged(action: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """Run `action` as a user that file permissions apply to, and return its result."""
    if os.geteuid() != 0:
        return action()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 99
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code, output = action()
            os.write(write_end, json.dumps([code, output]).encode())
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    code, output = json.loads(payload)
    return code, output


def cli(repo: Path, *args: str) -> tuple[int, str]:
    """Run `backup-manager` in this process and return its exit code and stdout."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["--repo", str(repo), "--json", *args])
    return code, buffer.getvalue()


def text_cli(repo: Path, *args: str) -> tuple[int, str]:
    """Run `backup-manager` without --json in this process and return its exit code and stdout."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["--repo", str(repo), *args])
    return code, buffer.getvalue()


def make_repository(base: Path) -> Path:
    repo = base / "repo"
    Repository.init(repo, PASSPHRASE, now=START, chunker=SMALL_CHUNKS, scrypt_n=2**10)
    for directory, names, files in os.walk(repo):
        for name in [*names, *files, "."]:
            os.chown(os.path.join(directory, name), NOBODY, NOBODY)
    return repo


def make_sources(base: Path) -> Path:
    """A readable dir, a dir with mode 000 and a root-owned 0600 file."""
    source = base / "src"
    (source / "readable").mkdir(parents=True)
    (source / "readable" / "a.txt").write_text("readable\n")
    (source / "locked").mkdir()
    (source / "locked" / "inside.txt").write_text("hidden\n")
    (source / "secret.key").write_text("secret\n")
    for directory, names, files in os.walk(source):
        for name in [*names, *files]:
            os.chown(os.path.join(directory, name), NOBODY, NOBODY)
    os.chown(source / "secret.key", 0, 0)
    os.chmod(source / "secret.key", 0o600)
    os.chmod(source / "locked", 0)
    return source


@pytest.fixture(autouse=True)
def passphrase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", PASSPHRASE.decode())
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    # A path that does not exist, so the unprivileged child finds no config file either.
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent/atlas-test-config")


def test_partial_lists_unreadable_paths(shared_dir: Path) -> None:
    """Unreadable dir and file make the run partial (exit 3) with both paths listed."""
    repo = make_repository(shared_dir)
    source = make_sources(shared_dir)

    code, output = run_unprivileged(lambda: cli(repo, "backup", "--path", str(source)))

    result = json.loads(output)
    skipped = sorted(item["path"] for item in result["skipped"])
    assert code == EXIT_PARTIAL
    assert result["status"] == "partial"
    assert skipped == [str(source / "locked"), str(source / "secret.key")]
    assert result["files"] == 1


def test_skipped_paths_report_bounded(shared_dir: Path) -> None:
    """The text report prints 20 skipped paths and a count of the rest, while --json and the snapshot list all."""
    repo = make_repository(shared_dir)
    source = shared_dir / "many"
    source.mkdir()
    (source / "readable.txt").write_text("readable\n")
    unreadable = PRINTED_SKIPS + 5
    for number in range(unreadable):
        locked = source / f"locked-{number:03d}.txt"
        locked.write_text("secret\n")
        os.chmod(locked, 0)

    code, report = run_unprivileged(lambda: text_cli(repo, "backup", "--path", str(source)))
    json_code, output = run_unprivileged(lambda: cli(repo, "backup", "--path", str(source)))
    _, listing = cli(repo, "list")

    lines = report.splitlines()
    snapshot_id = lines[0].split(":")[0]
    listed = [len(item["skipped"]) for snapshot in json.loads(listing) for item in snapshot["sets"]]
    assert code == EXIT_PARTIAL
    assert json_code == EXIT_PARTIAL
    assert len([line for line in lines if line.startswith("  skipped ")]) == PRINTED_SKIPS
    assert lines[PRINTED_SKIPS + 1] == (
        f"  5 more skipped paths not shown. `backup-manager list --json` lists them all in the sets of {snapshot_id}"
    )
    assert len(lines) == PRINTED_SKIPS + 2
    assert len(json.loads(output)["skipped"]) == unreadable
    assert listed == [unreadable, unreadable]


def test_failed_run_report_bounded(shared_dir: Path) -> None:
    """A run that read nothing and wrote no snapshot points to --json for the skipped paths not printed."""
    repo = make_repository(shared_dir)
    source = shared_dir / "locked"
    source.mkdir()
    for number in range(PRINTED_SKIPS + 1):
        locked = source / f"locked-{number:03d}.txt"
        locked.write_text("secret\n")
        os.chmod(locked, 0)

    code, report = run_unprivileged(lambda: text_cli(repo, "backup", "--path", str(source)))

    lines = report.splitlines()
    assert code == EXIT_FAILURE
    assert lines[0].startswith("no snapshot: failed")
    assert lines[PRINTED_SKIPS + 1] == "  1 more skipped path not shown. Run the backup with --json to list them all"


def test_partial_snapshot_not_verified_ok(shared_dir: Path) -> None:
    """`verify` of a partial snapshot exits 3 and reports it as partial."""
    repo = make_repository(shared_dir)
    source = make_sources(shared_dir)
    _code, output = run_unprivileged(lambda: cli(repo, "backup", "--path", str(source)))
    snapshot_id = json.loads(output)["id"]

    code, verify_output = cli(repo, "verify", "--id", snapshot_id)

    assert code == EXIT_PARTIAL
    assert json.loads(verify_output)["status"] == "partial"


def test_unreadable_root_fails(shared_dir: Path) -> None:
    """A source root that cannot be listed makes the run failed (exit 1) and writes no snapshot."""
    repo = make_repository(shared_dir)
    source = make_sources(shared_dir)
    os.chmod(source, 0)

    code, output = run_unprivileged(lambda: cli(repo, "backup", "--path", str(source)))
    list_code, listing = cli(repo, "list")

    assert code == EXIT_FAILURE
    assert json.loads(output)["status"] == "failed"
    assert json.loads(output)["id"] is None
    assert list_code == EXIT_OK
    assert json.loads(listing) == []


def test_missing_root_fails(shared_dir: Path) -> None:
    """A source path that does not exist fails the run and names the path."""
    repo = make_repository(shared_dir)

    code, output = cli(repo, "backup", "--path", str(shared_dir / "absent"))

    assert code == EXIT_FAILURE
    assert json.loads(output)["skipped"][0]["path"] == str(shared_dir / "absent")


def test_empty_mountpoint_flagged(repository: Repository, tmp_path: Path) -> None:
    """A set that shrinks to nothing, like a volume that is not mounted, fails the run and is flagged."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    (mount / "volume.img").write_bytes(os.urandom(50_000))
    request = BackupRequest(sets=[BackupSetSpec(name="node", paths=[mount])], now=START)
    Archiver(repository).run(request)
    (mount / "volume.img").unlink()

    result = Archiver(repository).run(request.model_copy(update={"now": START + 60}))

    assert result.status == "failed"
    assert result.id is None
    assert "nothing to back up" in result.sets[0].skipped[0].reason
    assert len(result.warnings) == 1
    assert "set node contains 0 bytes" in result.warnings[0]


def test_changed_paths_not_flagged(repository: Repository, tmp_path: Path) -> None:
    """A set given other, smaller paths in the config is not flagged as shrunk."""
    large, small = tmp_path / "large", tmp_path / "small"
    large.mkdir()
    small.mkdir()
    (large / "volume.img").write_bytes(os.urandom(50_000))
    (small / "note.txt").write_bytes(b"small\n")
    Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="node", paths=[large])], now=START))

    result = Archiver(repository).run(BackupRequest(sets=[BackupSetSpec(name="node", paths=[small])], now=START + 60))

    assert result.status == "ok"
    assert result.warnings == []

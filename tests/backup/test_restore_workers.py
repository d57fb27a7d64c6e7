"""Restores written by worker processes: the same tree, progress, errors, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from atlas_tui.backup.archiver import Archiver
from atlas_tui.backup.errors import BackupError
from atlas_tui.backup.file_writer import Batch
from atlas_tui.backup.models import BackupRequest, BackupSetSpec, Snapshot
from atlas_tui.backup.packs import pack_path
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restore_workers import RestoreWorkers
from atlas_tui.backup.restorer import Restorer
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_PARTIAL

from tests.backup.conftest import PASSPHRASE, build_tree, restored_root, set_fixed_times, tree_state
from tests.backup.test_sqlite_delta import ROWS, change_rows, database_chunks, table_digest
from tests.backup.test_sqlite_live import back_up_dir, count_rows, make_database

START = 1_767_225_600.0
WORKER_MODULE = "atlas_tui.backup.restore_workers"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Restores the latest snapshot of argv[1] into argv[2] with two workers. On the first
# progress call that a worker caused, it prints the worker pids and then blocks, so the
# test can kill it while a worker writes.
BLOCKED_RESTORE = """
import sys, time
from pathlib import Path
import psutil
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer

repository = Repository.open(Path(sys.argv[1]), sys.argv[3].encode())
def block(entries, written):
    if written:
        workers = [child for child in psutil.Process().children() if "{module}" in child.cmdline()]
        print(" ".join(str(child.pid) for child in workers), flush=True)
        time.sleep(120)
Restorer(repository, workers=2).restore(repository.latest_snapshot(), Path(sys.argv[2]), progress=block)
""".replace("{module}", WORKER_MODULE)


def back_up(repository: Repository, paths: list[Path]) -> Snapshot:
    request = BackupRequest(sets=[BackupSetSpec(name="files", paths=paths)], now=START)
    result = Archiver(repository).run(request)
    assert result.id is not None
    return repository.load_snapshot(result.id)


def build_wide_tree(root: Path, directories: int = 12, files: int = 40) -> Path:
    """Write `directories` folders of `files` small files each, with varied modes."""
    root.mkdir(parents=True)
    for number in range(directories):
        folder = root / f"d{number:02d}"
        folder.mkdir()
        for index in range(files):
            path = folder / f"f{index:03d}.txt"
            path.write_bytes(f"{number} {index}\n".encode() * (index + 1))
            os.chmod(path, (0o600, 0o640, 0o644, 0o755, 0o444)[index % 5])
    set_fixed_times(root)
    return root


def flip_pack_byte(repository: Repository, pack_id: str, offset: int) -> None:
    """Invert one byte of a pack file in place."""
    pack = pack_path(repository.path, pack_id)
    data = bytearray(pack.read_bytes())
    data[offset] ^= 0xFF
    pack.write_bytes(bytes(data))


def restore_workers_of(pid: int) -> list[psutil.Process]:
    """Return the restore worker processes among the children of `pid`, once each runs its module."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            # Other children come and go, such as the `ldconfig` that ctypes runs to find the C library.
            if WORKER_MODULE in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Return the pids still running (not exited, not zombies) after up to `seconds`."""
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _running(pid)]
    return alive


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_restore_equals_source(repository: Repository, tmp_path: Path) -> None:
    """Two workers reproduce content, modes, mtimes, symlinks, the FIFO and the non-UTF-8 name."""
    source = build_tree(tmp_path / "src")
    wide = build_wide_tree(tmp_path / "wide")
    snapshot = back_up(repository, [source, wide])

    result = Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert tree_state(restored_root(tmp_path / "out", wide)) == tree_state(wide)
    assert result.files == 6 + 12 * 40
    assert result.symlinks == 2
    assert result.special == 1


def test_workers_replace_existing_files(repository: Repository, tmp_path: Path) -> None:
    """Files and a symlink already at the destinations are replaced, and the symlink's target is untouched."""
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    restored = restored_root(tmp_path / "out", source)
    (restored / "d00").mkdir(parents=True)
    (restored / "d00" / "f000.txt").write_text("old content")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    os.symlink(outside, restored / "d00" / "f001.txt")

    Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert tree_state(restored) == tree_state(source)
    assert outside.read_text() == "keep"
    assert not [name for name in os.listdir(restored / "d00") if name.startswith(".")]


@pytest.mark.parametrize("workers", [0, 2])
def test_progress_totals(repository: Repository, tmp_path: Path, workers: int) -> None:
    """The last progress call counts every entry but the symlinks and every file byte, and counts never drop."""
    source = build_tree(tmp_path / "src")
    wide = build_wide_tree(tmp_path / "wide", directories=3, files=10)
    snapshot = back_up(repository, [source, wide])
    calls: list[tuple[int, int]] = []

    result = Restorer(repository, workers=workers).restore(
        snapshot, tmp_path / "out", progress=lambda entries, written: calls.append((entries, written))
    )

    not_symlinks = sum(1 for entry in snapshot.entries if entry.type != "symlink")
    assert calls[-1] == (not_symlinks, sum(entry.size for entry in snapshot.entries))
    assert calls[-1][1] == result.bytes
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(calls, calls[1:]))


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_chunk_file_left_out(repository: Repository, tmp_path: Path, workers: int) -> None:
    """A file with a damaged chunk is left out and named with its pack, and every other file is restored."""
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    files = sorted((entry for entry in snapshot.entries if entry.type == "file"), key=lambda entry: entry.path)
    damaged = files[len(files) // 2]
    location = repository.load_index()[bytes.fromhex(damaged.chunks[0])]
    flip_pack_byte(repository, location.pack_id, location.offset + location.length // 2)
    out = tmp_path / "out"

    result = Restorer(repository, workers=workers).restore(snapshot, out)

    assert [item.path for item in result.damaged] == [damaged.display_path()]
    assert f"pack {location.pack_id} chunk {damaged.chunks[0]}" in result.damaged[0].reason
    assert "authentication failed" in result.damaged[0].reason
    assert result.files == len(files) - 1
    assert not (out / damaged.path.decode()).exists()
    for entry in files:
        if entry is not damaged:
            assert (out / entry.path.decode()).read_bytes() == Path("/" + entry.path.decode()).read_bytes()


def test_missing_pack_files_left_out(repository: Repository, tmp_path: Path) -> None:
    """A deleted pack leaves out the files with chunks in it and names the pack."""
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    files = [entry for entry in snapshot.entries if entry.type == "file"]
    location = repository.load_index()[bytes.fromhex(files[0].chunks[0])]
    pack_path(repository.path, location.pack_id).unlink()

    result = Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert result.damaged
    assert all(f"pack {location.pack_id}" in item.reason for item in result.damaged)
    assert all("the pack is missing" in item.reason for item in result.damaged)
    assert result.files + len(result.damaged) == len(files)


def test_worker_directory_in_way_named(repository: Repository, tmp_path: Path) -> None:
    """A directory where the snapshot has a file stops a worker restore with a message naming the path."""
    source = build_wide_tree(tmp_path / "src", directories=1, files=3)
    snapshot = back_up(repository, [source])
    blocked = restored_root(tmp_path / "out", source) / "d00" / "f001.txt"
    blocked.mkdir(parents=True)

    with pytest.raises(BackupError, match="in the restore target is a directory, and the snapshot has a file") as raised:
        Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert str(raised.value).startswith(f"{blocked} in the restore target")
    assert [name for name in os.listdir(blocked.parent) if name.startswith(".")] == []


def test_killed_worker_fails_restore(repository: Repository, tmp_path: Path) -> None:
    """SIGKILL of the workers in the middle of a restore raises BackupError naming the signal."""
    source = build_wide_tree(tmp_path / "src", directories=30, files=20)
    snapshot = back_up(repository, [source])
    killed: list[int] = []

    def kill_workers(entries: int, written: int) -> None:
        if written and not killed:
            for child in restore_workers_of(os.getpid()):
                child.kill()
                killed.append(child.pid)

    started = time.monotonic()
    with pytest.raises(BackupError, match="was killed by signal 9") as raised:
        Restorer(repository, workers=2).restore(snapshot, tmp_path / "out", progress=kill_workers)

    assert "run it again" in str(raised.value)
    assert len(killed) == 2
    assert time.monotonic() - started < 30
    assert wait_gone(killed, 5) == []


def test_failed_restore_stops_workers(repository: Repository, tmp_path: Path) -> None:
    """An exception from the progress callback stops the restore and leaves no worker running."""
    source = build_wide_tree(tmp_path / "src", directories=10, files=20)
    snapshot = back_up(repository, [source])
    children: list[int] = []

    def stop(entries: int, written: int) -> None:
        if written:
            children.extend(child.pid for child in restore_workers_of(os.getpid()))
            raise RuntimeError("stop requested")

    with pytest.raises(RuntimeError, match="stop requested"):
        Restorer(repository, workers=2).restore(snapshot, tmp_path / "out", progress=stop)

    assert len(children) == 2
    assert wait_gone(children, 1) == []


def test_killed_parent_leaves_no_worker(repository: Repository, tmp_path: Path) -> None:
    """After SIGKILL of the restoring process, its workers exit, and no partly written file stays."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    build_wide_tree(source / "wide", directories=4, files=10)
    back_up(repository, [source])
    target = tmp_path / "out"
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_RESTORE, str(repository.path), str(target), PASSPHRASE.decode()],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        workers = [int(pid) for pid in process.stdout.readline().split()]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        assert len(workers) == 2
        assert wait_gone(workers, 10) == []
    finally:
        process.kill()
        process.wait()
    big = restored_root(target, source) / "big.bin"
    assert not big.exists() or big.stat().st_size == 24 * 1024 * 1024


def test_workers_remove_stale_sidecars(repository: Repository, tmp_path: Path) -> None:
    """A database restored by a worker loses the -wal and -shm files of another database next to it."""
    data = tmp_path / "data"
    data.mkdir()
    make_database(data / "atlas.db", 300).close()
    snapshot_id = back_up_dir(repository, data)
    target_dir = restored_root(tmp_path / "out", data)
    target_dir.mkdir(parents=True)
    (target_dir / "atlas.db-wal").write_bytes(b"\x01" * 4096)
    (target_dir / "atlas.db-shm").write_bytes(b"\x00" * 32768)

    Restorer(repository, workers=2).restore(repository.load_snapshot(snapshot_id), tmp_path / "out")

    assert not (target_dir / "atlas.db-wal").exists()
    assert not (target_dir / "atlas.db-shm").exists()
    assert count_rows(target_dir / "atlas.db") == 300


def test_many_files_choose_workers(
    repository: Repository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a worker count, a restore of over a thousand files starts workers when two cores are free."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    source = build_wide_tree(tmp_path / "src", directories=11, files=100)
    snapshot = back_up(repository, [source])

    with caplog.at_level("INFO", logger="atlas_tui.backup"):
        Restorer(repository).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert "workers=2" in caplog.text
    assert caplog.text.count("restore worker stopped") == 2


def cli_environment(tmp_path: Path) -> dict[str, str]:
    """Return an environment for `atlas backup` in a child process, with this checkout importable."""
    environment = dict(os.environ, ATLAS_BACKUP_PASSPHRASE=PASSPHRASE.decode(), PYTHONPATH=str(REPO_ROOT))
    environment.update(XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), ATLAS_DATA_DIR=str(tmp_path / "data"))
    environment.pop("ATLAS_CONFIG", None)
    return environment


def restore_command(repository: Repository, target: Path) -> list[str]:
    return [
        sys.executable, "-m", "atlas_tui.cli", "backup", "restore",
        "--repo", str(repository.path), "--latest", "--target", str(target),
    ]


def test_cli_corrupt_chunk_exit(repository: Repository, tmp_path: Path) -> None:
    """`atlas backup restore` exits with the partial code and names the damaged file and pack."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the CLI starts workers only with two cores")
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    entry = next(entry for entry in snapshot.entries if entry.type == "file")
    location = repository.load_index()[bytes.fromhex(entry.chunks[0])]
    flip_pack_byte(repository, location.pack_id, location.offset + location.length // 2)

    completed = subprocess.run(
        restore_command(repository, tmp_path / "out"),
        env=cli_environment(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )

    assert completed.returncode == EXIT_PARTIAL
    assert f"damaged, not restored: {entry.display_path()}: pack {location.pack_id} chunk {entry.chunks[0]}" in (
        completed.stderr
    )
    assert "authentication failed" in completed.stderr
    assert "1 damaged items left out (listed on stderr and under `damaged` in --json)" in completed.stdout
    assert f"run `backup-manager integrity --id {snapshot.id}`" in completed.stdout


def test_cli_killed_worker_exit(repository: Repository, tmp_path: Path) -> None:
    """`atlas backup restore` exits 1 with the signal named when its workers are killed, instead of waiting."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the CLI starts workers only with two cores")
    back_up(repository, [build_wide_tree(tmp_path / "src", directories=2, files=5)])
    process = subprocess.Popen(
        restore_command(repository, tmp_path / "out"),
        env=cli_environment(tmp_path), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        # The workers start before the passphrase is checked, so they are killed before any file is sent.
        deadline = time.monotonic() + 30
        children: list[psutil.Process] = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
            children = restore_workers_of(process.pid)
        for child in children:
            child.kill()
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()

    assert len(children) == 2
    assert process.returncode == EXIT_FAILURE
    assert "was killed by signal 9 (SIGKILL)" in errors


def test_large_files_spread_over_workers(repository: Repository, tmp_path: Path) -> None:
    """Two large files go to two different workers instead of queueing in one."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("a.bin", "b.bin"):
        (source / name).write_bytes(os.urandom(9 * 1024 * 1024))
    snapshot = back_up(repository, [source])
    writers: dict[str, int] = {}

    original = RestoreWorkers._handle

    def record(self: RestoreWorkers, worker: Any, message: tuple[Any, ...], queue: Any, *callbacks: Any) -> None:
        if message[0] == "done":
            writers[os.path.basename(queue.batches[message[1]].entries[0].path).decode()] = worker.pid
        original(self, worker, message, queue, *callbacks)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RestoreWorkers, "_handle", record)
        Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert sorted(writers) == ["a.bin", "b.bin"]
    assert writers["a.bin"] != writers["b.bin"]


def test_workers_restore_delta_chunks(repository: Repository, tmp_path: Path) -> None:
    """A database whose changed chunks are stored as deltas restores exactly through a worker."""
    data = tmp_path / "data"
    data.mkdir()
    holder = make_database(data / "atlas.db", ROWS)
    back_up_dir(repository, data, START + 60)
    change_rows(holder, 40)
    snapshot_id = back_up_dir(repository, data, START + 120)
    holder.close()
    index = repository.load_index()
    chunks = database_chunks(repository, snapshot_id)

    Restorer(repository, workers=2).restore(repository.load_snapshot(snapshot_id), tmp_path / "out")

    assert any(index[chunk].base is not None for chunk in chunks)
    assert table_digest(restored_root(tmp_path / "out", data) / "atlas.db") == table_digest(data / "atlas.db")


def test_workers_write_while_groups_come(repository: Repository, tmp_path: Path) -> None:
    """A worker writes the first directory's files before the caller hands over the second directory."""
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    files = sorted((entry for entry in snapshot.entries if entry.type == "file"), key=lambda entry: entry.path)
    out = tmp_path / "out"
    first_dir = out / "first"
    second_dir = out / "second"
    first_dir.mkdir(parents=True)
    second_dir.mkdir()
    written_before_second: list[bool] = []

    def groups() -> Any:
        yield [Batch(os.fsencode(first_dir), files[:5])]
        deadline = time.monotonic() + 30
        while len(os.listdir(first_dir)) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        written_before_second.append(len(os.listdir(first_dir)) == 5)
        yield [Batch(os.fsencode(second_dir), files[5:])]

    done: list[Batch] = []
    with RestoreWorkers(2) as workers:
        workers.open_repository(repository)
        workers.run(groups(), lambda files, written: None, lambda batch, damaged: done.append(batch))

    assert written_before_second == [True]
    assert len(done) == 2
    assert len(os.listdir(second_dir)) == 5


@pytest.mark.parametrize("workers", [0, 2])
def test_large_file_parent_symlink_replaced(repository: Repository, tmp_path: Path, workers: int) -> None:
    """A symlink in the target where a large file's directory goes is replaced by the directory."""
    source = tmp_path / "src"
    (source / "big").mkdir(parents=True)
    (source / "big" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (source / "small.txt").write_text("small\n")
    snapshot = back_up(repository, [source])
    out = tmp_path / "out"
    elsewhere = out / "elsewhere"
    elsewhere.mkdir(parents=True)
    big_parent = restored_root(out, source) / "big"
    big_parent.parent.mkdir(parents=True)
    big_parent.symlink_to(elsewhere)

    Restorer(repository, workers=workers).restore(snapshot, out)

    assert not big_parent.is_symlink()
    assert (big_parent / "blob.bin").read_bytes() == (source / "big" / "blob.bin").read_bytes()
    assert os.listdir(elsewhere) == []


def test_workers_ignore_working_directory_package(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package named atlas_tui in the working directory is never imported by the workers."""
    source = build_wide_tree(tmp_path / "src", directories=2, files=5)
    snapshot = back_up(repository, [source])
    decoy = tmp_path / "decoy"
    (decoy / "atlas_tui" / "backup").mkdir(parents=True)
    (decoy / "atlas_tui" / "__init__.py").write_text("")
    (decoy / "atlas_tui" / "backup" / "__init__.py").write_text("")
    marker = tmp_path / "decoy-ran"
    (decoy / "atlas_tui" / "backup" / "restore_workers.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(decoy)

    result = Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert not marker.exists()
    assert result.files == 10


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupted_restore(repository: Repository, tmp_path: Path, stop: signal.Signals) -> None:
    """SIGINT or SIGTERM during `atlas backup restore` exits 128 + the signal with a message, and leaves no worker."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the CLI starts workers only with two cores")
    back_up(repository, [build_wide_tree(tmp_path / "src", directories=40, files=50)])
    target = tmp_path / "out"

    process = subprocess.Popen(
        restore_command(repository, target), env=cli_environment(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not restore_workers_of(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = [worker.pid for worker in restore_workers_of(process.pid)]
    process.send_signal(stop)
    _out, errors = process.communicate(timeout=30)

    assert workers
    assert process.returncode == 128 + stop, errors
    assert f"interrupted by {stop.name}; the files written before it stay in {target}" in errors
    assert wait_gone(workers, 10) == []


def test_cli_damaged_manifest_chunk_partial(repository: Repository, tmp_path: Path) -> None:
    """A damaged manifest chunk leaves out only its entries: the rest is restored, and the restore exits 3."""
    source = build_wide_tree(tmp_path / "src", directories=30, files=100)
    snapshot = back_up(repository, [source])
    assert snapshot.manifest_chunks is not None and snapshot.manifest_pieces is not None
    assert len(snapshot.manifest_chunks) > 1
    location = repository.load_index()[bytes.fromhex(snapshot.manifest_chunks[0])]
    flip_pack_byte(repository, location.pack_id, location.offset + location.length // 2)
    target = tmp_path / "out"

    completed = subprocess.run(
        [*restore_command(repository, target), "--json"],
        env=cli_environment(tmp_path), capture_output=True, text=True, timeout=120, check=False,
    )

    result = json.loads(completed.stdout)
    first_piece = snapshot.manifest_pieces[0]
    restored = sum(1 for _root, _dirs, names in os.walk(target) for _name in names)
    assert completed.returncode == EXIT_PARTIAL, completed.stderr
    assert len(result["damaged"]) == 1
    assert result["damaged"][0]["path"].startswith(f"{first_piece.entries} entries up to ")
    assert "manifest chunk 1 of" in result["damaged"][0]["reason"]
    assert "run `backup-manager integrity --id" in completed.stderr
    assert 0 < restored < 3000
    assert restored == 3000 - sum(1 for entry in snapshot.entries[: first_piece.entries] if entry.type == "file")

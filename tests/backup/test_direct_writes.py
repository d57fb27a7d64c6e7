"""Large restored files written with O_DIRECT: the same bytes, and the page cache where a filesystem rejects it."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.backup import file_writer
from atlas_tui.backup.atomic import TEMP_PREFIX
from atlas_tui.backup.file_writer import DIRECT_BYTES
from atlas_tui.backup.models import ChunkerParams
from atlas_tui.backup.repository import Repository
from atlas_tui.backup.restorer import Restorer

from tests.backup.conftest import PASSPHRASE, restored_root, set_fixed_times, tree_state
from tests.backup.test_restore_workers import back_up, flip_pack_byte

SIZES = [DIRECT_BYTES, DIRECT_BYTES + 1, 3 * DIRECT_BYTES + 4095, DIRECT_BYTES - 1]
"""At the threshold, one byte past it, a partial last block after whole buffers, and one byte short of it."""


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    """A repository with chunks of 4 to 64 KiB, so that chunk ends fall anywhere in a write buffer."""
    chunker = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
    return Repository.init(tmp_path / "repo", PASSPHRASE, now=time.time(), chunker=chunker, scrypt_n=2**10)


@pytest.fixture
def direct_opens(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the names that this process opens with O_DIRECT; the real `os.open` still runs."""
    opened: list[bytes] = []
    real_open = os.open

    def recording_open(path: str | bytes, flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]
        if flags & os.O_DIRECT:
            opened.append(os.fsencode(path))
        return fd

    monkeypatch.setattr(os, "open", recording_open)
    return opened


def build_large_files(root: Path, sizes: list[int]) -> Path:
    rng = random.Random(7)
    root.mkdir(parents=True)
    for number, size in enumerate(sizes):
        path = root / f"large-{number}.bin"
        path.write_bytes(rng.randbytes(size))
        os.chmod(path, (0o640, 0o600, 0o755, 0o444)[number % 4])
    set_fixed_times(root)
    return root


def test_large_files_restored_direct(repository: Repository, tmp_path: Path, direct_opens: list[bytes]) -> None:
    """Files at and over the threshold go past the cache, the smaller one does not, and all match the source."""
    source = build_large_files(tmp_path / "src", SIZES)
    snapshot = back_up(repository, [source])

    result = Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert result.bytes == sum(SIZES)
    assert sorted(direct_opens) == [b"large-0.bin", b"large-1.bin", b"large-2.bin"]


def test_direct_files_replace_existing(repository: Repository, tmp_path: Path, direct_opens: list[bytes]) -> None:
    """A second restore into the same target writes each large file under a temporary name and renames it."""
    source = build_large_files(tmp_path / "src", SIZES[:2])
    snapshot = back_up(repository, [source])
    Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")
    direct_opens.clear()

    Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert len(direct_opens) == 2
    assert all(name.startswith(TEMP_PREFIX.encode()) for name in direct_opens)
    assert sorted(os.listdir(restored_root(tmp_path / "out", source))) == ["large-0.bin", "large-1.bin"]


def test_workers_write_direct(repository: Repository, tmp_path: Path) -> None:
    """Worker processes restore the same bytes with direct writes as the calling thread does."""
    source = build_large_files(tmp_path / "src", SIZES * 2)
    snapshot = back_up(repository, [source])

    Restorer(repository, workers=2).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)


def test_damaged_chunk_of_direct_file(repository: Repository, tmp_path: Path) -> None:
    """A damaged chunk in the middle of a large file leaves that file out and nothing of it behind."""
    source = build_large_files(tmp_path / "src", SIZES[1:3])
    snapshot = back_up(repository, [source])
    entry = next(entry for entry in snapshot.entries if entry.path.endswith(b"large-1.bin"))
    location = repository.load_index()[bytes.fromhex(entry.chunks[len(entry.chunks) // 2])]
    flip_pack_byte(repository, location.pack_id, location.offset + location.length // 2)

    result = Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")

    out = restored_root(tmp_path / "out", source)
    assert [item.path for item in result.damaged] == [entry.display_path()]
    assert sorted(os.listdir(out)) == ["large-0.bin"]
    assert (out / "large-0.bin").read_bytes() == (source / "large-0.bin").read_bytes()


def reject_direct_open(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make `os.open` fail with EINVAL for O_DIRECT, as tmpfs before Linux 6.6 does, and count those calls.

    NOTE: every filesystem on this machine accepts O_DIRECT at open, so this rejection is simulated.
    """
    rejected: list[int] = []
    real_open = os.open

    def open_without_direct(path: str | bytes, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_DIRECT:
            rejected.append(flags)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_without_direct)
    return rejected


def test_rejected_direct_open_uses_cache(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A filesystem that rejects O_DIRECT gets every file through the cache, and is asked only once."""
    source = build_large_files(tmp_path / "src", SIZES)
    snapshot = back_up(repository, [source])
    rejected = reject_direct_open(monkeypatch)

    with caplog.at_level(logging.INFO, logger="atlas_tui.backup.file_writer"):
        Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert len(rejected) == 1
    assert "O_DIRECT not supported" in caplog.text


def test_rejected_direct_write_uses_cache(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A direct write that the kernel rejects goes through the cache, and no later file tries again.

    A write buffer of 1000 bytes, not a multiple of the disk's block size, makes ext4 reject the write for real.
    """
    source = build_large_files(tmp_path / "src", SIZES)
    snapshot = back_up(repository, [source])
    buffer_size = 1000
    monkeypatch.setattr(file_writer, "_DIRECT_BUFFER", buffer_size)
    writes: list[int] = []
    track_direct_writes(monkeypatch, writes.append)

    Restorer(repository, workers=0).restore(snapshot, tmp_path / "out")

    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)
    assert writes == [buffer_size]


def track_direct_writes(monkeypatch: pytest.MonkeyPatch, record: Callable[[int], None]) -> None:
    """Call `record` with the length of every write to a descriptor that has O_DIRECT set; the real write runs."""
    real_write = os.write

    def recording_write(fd: int, data: bytes | memoryview) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            record(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)

"""Fixtures for the backup tests: small repositories, generated source trees and in-process CLI runs.

`build_tree` writes the same tree for the same seed, with fixed mtimes, so a second
build of it is an exact expectation of what a restore must produce. `tree_state`
reads a tree into a comparable map of path -> (type, mode, mtime, content or target).
"""

from __future__ import annotations

import os
import random
import stat
import time
from pathlib import Path

import pytest

from atlas_tui.backup.models import ChunkerParams
from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import main

PASSPHRASE = b"correct horse battery staple"
CLI_PASSPHRASE = "cli passphrase"
"""Passphrase that `cli_environment` gives `backup-manager` in `$ATLAS_BACKUP_PASSPHRASE`."""
SMALL_CHUNKS = ChunkerParams(min_size=512, avg_size=2048, max_size=8192)
"""Small chunks so that a few hundred kilobytes give many boundaries."""
SLOW_PACKS = """
import time
from atlas_tui.backup import packs

finish = packs.PackWriter.finish
def slow_finish(self):
    info = finish(self)
    time.sleep(0.05)
    return info
packs.PackWriter.finish = slow_finish
"""
"""Code that a child process runs first so that each finished pack takes 50 ms more, to be stopped midway."""
FIXED_MTIME_NS = 1_700_000_000_123_456_789
NON_UTF8_NAME = b"caf\xe9-\xff.txt"


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Set up `backup-manager` runs in this process: a passphrase, no config file and a data directory in `tmp_path`."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", CLI_PASSPHRASE)
    monkeypatch.delenv("ATLAS_BACKUP_NEW_PASSPHRASE", raising=False)
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `backup-manager ARGS` in this process and return its exit code, stdout and stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def two_snapshot_repository(path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Create a repository at `path` with two CLI snapshots of a tree built at `source`.

    old.bin exists only in the first snapshot. The engine creates the repository with a
    cheap scrypt cost, so that each command opens it fast.
    """
    build_tree(source)
    (source / "old.bin").write_bytes(b"\x00only in the first snapshot" * 20_000)
    chunker = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)
    Repository.init(path, CLI_PASSPHRASE.encode(), now=time.time(), chunker=chunker, scrypt_n=2**10)
    assert run_cli(capsys, "backup", "--repo", str(path), "--path", str(source))[0] == 0
    (source / "old.bin").unlink()
    assert run_cli(capsys, "backup", "--repo", str(path), "--path", str(source))[0] == 0


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    """A fresh repository with small chunks and a cheap scrypt cost."""
    return Repository.init(
        tmp_path / "repo", PASSPHRASE, now=time.time(), chunker=SMALL_CHUNKS, pack_size=64 * 1024, scrypt_n=2**10
    )


def build_tree(root: Path, seed: int = 1) -> Path:
    """Write a tree with files, subdirectories, a symlink, a FIFO and a non-UTF-8 name."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "random.bin").write_bytes(rng.randbytes(150_000))
    (root / "text.log").write_bytes(b"line of log text\n" * 5000)
    (root / "docs" / "readme.txt").write_bytes(b"hello backup\n")
    (root / "docs" / "deep" / "blob").write_bytes(rng.randbytes(40_000))
    os.chmod(root / "docs" / "readme.txt", 0o640)
    os.chmod(root / "random.bin", 0o600)
    with open(os.path.join(os.fsencode(root), NON_UTF8_NAME), "wb") as handle:
        handle.write(b"latin-1 name\n")
    os.symlink("docs/readme.txt", root / "link-to-readme")
    os.symlink("/nonexistent/target", root / "dangling")
    os.mkfifo(root / "pipe", 0o620)
    set_fixed_times(root)
    return root


def set_fixed_times(root: Path) -> None:
    """Give every entry under `root` (and root) the same mtime, deepest first."""
    base = os.fsencode(root)
    for directory, names, files in os.walk(base, topdown=False):
        for name in names + files:
            os.utime(os.path.join(directory, name), ns=(FIXED_MTIME_NS, FIXED_MTIME_NS), follow_symlinks=False)
    os.utime(base, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))


def tree_state(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Map each path under `root` to its type, permission bits, mtime and content or link target."""
    base = os.fsencode(root)
    state: dict[bytes, tuple[object, ...]] = {}
    for directory, names, files in os.walk(base):
        for name in names + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, base)
            if stat.S_ISLNK(info.st_mode):
                state[relative] = ("symlink", os.readlink(path), info.st_mtime_ns)
                continue
            kind = stat.S_IFMT(info.st_mode)
            content = Path(os.fsdecode(path)).read_bytes() if stat.S_ISREG(info.st_mode) else None
            state[relative] = (kind, stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return state


def restored_root(target: Path, source: Path) -> Path:
    """Return where `source` lands inside a restore `target`."""
    return target / str(source.absolute()).lstrip("/")

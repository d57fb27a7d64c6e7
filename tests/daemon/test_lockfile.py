"""`DaemonLock`: exclusive per data directory, names the holder, takes over stale files."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.errors import DaemonLockedError
from atlas_tui.lockfile import LOCK_FILENAME, DaemonLock, lock_holder

_HOLDER = """
import sys
from pathlib import Path
from atlas_tui.lockfile import DaemonLock
lock = DaemonLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process that holds the lock of `tmp_path` until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


def test_acquire_writes_pid(tmp_path: Path) -> None:
    """The lock file holds the pid of the process that acquired it."""
    with DaemonLock(tmp_path):
        text = (tmp_path / LOCK_FILENAME).read_text(encoding="ascii")

    assert text == f"{os.getpid()}\n"


def test_release_removes_file(tmp_path: Path) -> None:
    """Releasing the lock removes the lock file."""
    lock = DaemonLock(tmp_path)
    lock.acquire()
    lock.release()

    assert not (tmp_path / LOCK_FILENAME).exists()
    assert not lock.held


def test_live_holder_named(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    """A second acquirer gets DaemonLockedError with the holder's pid in it."""
    with pytest.raises(DaemonLockedError) as caught:
        DaemonLock(tmp_path).acquire()

    assert caught.value.pid == holder.pid
    assert f"pid {holder.pid}" in str(caught.value)
    assert "--data-dir" in str(caught.value)


def test_lock_holder_reports_pid(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    """`lock_holder` returns the pid of the live holder."""
    assert lock_holder(tmp_path) == holder.pid


def test_lock_holder_none_when_free(tmp_path: Path) -> None:
    """`lock_holder` returns None without a lock file and for a stale one."""
    assert lock_holder(tmp_path) is None
    (tmp_path / LOCK_FILENAME).write_text(f"{_dead_pid()}\n", encoding="ascii")
    assert lock_holder(tmp_path) is None


def test_stale_file_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A lock file with a dead pid and no flock is taken over with a warning naming the pid."""
    dead = _dead_pid()
    (tmp_path / LOCK_FILENAME).write_text(f"{dead}\n", encoding="ascii")

    with caplog.at_level(logging.WARNING, logger="atlas_tui.lockfile"), DaemonLock(tmp_path):
        text = (tmp_path / LOCK_FILENAME).read_text(encoding="ascii")

    assert text == f"{os.getpid()}\n"
    assert f"old_pid={dead}" in caplog.text
    assert "not running" in caplog.text


def test_lock_after_holder_exits(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    """Once the holder releases, the next acquire succeeds without a stale warning."""
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=10)

    lock = DaemonLock(tmp_path)
    lock.acquire()

    assert lock.held
    lock.release()


def test_killed_holder_taken_over(
    tmp_path: Path, holder: subprocess.Popen[str], caplog: pytest.LogCaptureFixture
) -> None:
    """After the holder dies by SIGKILL, its leftover file is taken over and its pid logged."""
    holder.kill()
    holder.wait(timeout=10)

    with caplog.at_level(logging.WARNING, logger="atlas_tui.lockfile"), DaemonLock(tmp_path) as lock:
        assert lock.held

    assert f"old_pid={holder.pid}" in caplog.text

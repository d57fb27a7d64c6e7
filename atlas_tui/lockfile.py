"""The daemon's lock file: one live `atlas daemon` per data directory.

The daemon takes `<data_dir>/daemon.lock` before it opens the store and releases it
last. The lock is an exclusive `fcntl.flock` on the open file, so the kernel drops
it when the process dies, even on SIGKILL. The holder's pid is written inside so a
second daemon can name it. A file that still contains a pid while no process holds
the flock was left by a daemon that died. The next daemon takes it over and logs the old
pid at WARNING.

On release the file is unlinked. `acquire` therefore checks, after taking the flock,
that the path still names the inode it locked. Without that check, a daemon that
opened the file just before the holder unlinked it could lock an orphaned inode
while a third daemon creates and locks a new file.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from atlas_tui.errors import DaemonLockedError

__all__ = ["LOCK_FILENAME", "DaemonLock", "lock_holder"]

LOCK_FILENAME = "daemon.lock"
"""Name of the lock file inside the data directory."""

_ATTEMPTS = 20
_RETRY_DELAY = 0.05

logger = logging.getLogger(__name__)


class DaemonLock:
    """The exclusive lock of one data directory, held by the running daemon.

    Use `acquire()` and `release()`, or the instance as a context manager.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILENAME
        """Path of the lock file."""
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this instance holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process's pid into the lock file.

        Raises:
            DaemonLockedError: another live process holds the lock. The error
                names its pid.
            OSError: the data directory or the lock file cannot be created.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)

        # The retries cover short races: the holder has locked the file but not
        # written its pid yet, it unlinked the file between our open and flock, or a
        # `lock_holder` probe holds the flock for an instant over a stale pid.
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            outcome = self._try_lock(fd)
            if outcome == "locked":
                self._take(fd)
                return
            os.close(fd)
            time.sleep(_RETRY_DELAY)
        raise DaemonLockedError(str(self.path), _read_pid_at(self.path) or 0)

    def release(self) -> None:
        """Remove the lock file and drop the lock, if this instance holds it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        logger.debug("lock released path=%s", self.path)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _try_lock(self, fd: int) -> str:
        """Return "locked" when `fd` now holds the lock, "retry" to try again.

        Raises:
            DaemonLockedError: a live holder has written its pid.
        """
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            pid = _read_pid(fd)
            if pid is None or not _pid_alive(pid):
                return "retry"
            raise DaemonLockedError(str(self.path), pid) from err
        return "locked" if _same_inode(fd, self.path) else "retry"

    def _take(self, fd: int) -> None:
        old_pid = _read_pid(fd)
        if old_pid is not None and old_pid != os.getpid():
            state = "still running without the lock" if _pid_alive(old_pid) else "not running"
            logger.warning(
                "taking over stale lock file path=%s old_pid=%d (process %s)",
                self.path,
                old_pid,
                state,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
        self._fd = fd
        logger.debug("lock acquired path=%s pid=%d", self.path, os.getpid())


def lock_holder(data_dir: Path) -> int | None:
    """Return the pid of the live daemon that has locked `data_dir`, or None.

    The probe takes a shared flock for an instant. A daemon starting in that instant
    finds the lock busy and retries as long as the file names no live process.
    """
    path = data_dir / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def _read_pid_at(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _same_inode(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

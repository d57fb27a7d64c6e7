"""The repository lock: one writer (backup, init) per repository at a time.

The lock is an exclusive `fcntl.flock` on `<repository>/lock`, so the kernel
releases it when the holder dies, even on SIGKILL. The holder writes its host,
pid, boot id and start time into the file and empties it on release. Finding the
flock free while the file still names an owner means that owner died: the lock is
taken over and the old owner is logged at WARNING. The file itself is never
deleted, so two processes can never lock two different inodes of the same name.

NOTE: flock is reliable on local filesystems only. A repository on a network
filesystem needs a lock that does not depend on the kernel of one host.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

from atlas_tui.backup.errors import RepositoryLocked

__all__ = ["LOCK_FILENAME", "LockOwner", "RepositoryLock", "boot_id", "clear_stale_lock", "read_owner"]

LOCK_FILENAME = "lock"

logger = logging.getLogger(__name__)

LockOwner = dict[str, object]
"""The JSON object in the lock file: host, pid, boot_id, time."""


def boot_id() -> str:
    """Return this boot's id from the kernel, or an empty string where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def read_owner(repository: Path) -> LockOwner | None:
    """Return the owner written in the lock file, or None when it is empty or missing."""
    try:
        text = (repository / LOCK_FILENAME).read_text()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return {"host": "?", "pid": 0, "note": "unreadable lock file"}
    return owner if isinstance(owner, dict) else None


class RepositoryLock:
    """The exclusive lock of one repository; use it as a context manager."""

    def __init__(self, repository: Path, *, now: float) -> None:
        self.repository = repository
        self.path = repository / LOCK_FILENAME
        self._now = now
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, taking over a lock whose owner is gone.

        Raises:
            RepositoryLocked: a live process holds the lock; the error names it.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            owner = read_owner(self.repository) or {}
            raise RepositoryLocked(str(self.repository), str(owner.get("host", "?")), int(owner.get("pid", 0))) from None

        stale = read_owner(self.repository)
        if stale is not None:
            logger.warning(
                "taking over stale backup lock repository=%s old_host=%s old_pid=%s",
                self.repository, stale.get("host"), stale.get("pid"),
            )
        self._write_owner(fd)
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file and release the flock."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _write_owner(self, fd: int) -> None:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": boot_id(), "time": self._now}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        os.fsync(fd)

    def __enter__(self) -> RepositoryLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def clear_stale_lock(repository: Path, *, now: float) -> LockOwner | None:
    """Empty a lock whose owner is gone and return that owner, or None when it was free.

    Raises:
        RepositoryLocked: a live process holds the lock.
    """
    owner = read_owner(repository)
    lock = RepositoryLock(repository, now=now)
    lock.acquire()
    lock.release()
    return owner

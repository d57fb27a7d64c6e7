"""Runtime tuning of the backup engine: the C heap (glibc malloc), the garbage collector
and the interpreter's thread switch interval.

Backups, restores and checks allocate buffers of a few MiB (read blocks, sealed
chunks) on several threads, and parse manifests that leave many megabytes free
afterwards. With glibc's defaults that freed memory stays in the process, so the
peak RSS grows with every phase. The malloc functions do nothing on other C libraries.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import platform
import sys
import threading
from collections.abc import Iterator

__all__ = ["backup_tuning", "collector_paused", "fix_mmap_threshold", "release_free_memory"]

MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
"""Allocations of at least this size get their own mapping and return to the system when freed."""

BACKUP_TRIM_THRESHOLD_BYTES = 8 * 1024 * 1024
"""Free memory that each malloc arena keeps at its top during a backup, instead of the default 128 KiB."""
DEFAULT_TRIM_THRESHOLD_BYTES = 128 * 1024
BACKUP_ARENA_MAX = 2
"""Maximum number of malloc arenas of a process once it has run a backup (glibc 2.36 allows 16 on 2 cores)."""
BACKUP_SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the GIL while another waits for it, during a backup (Python's default is 5 ms)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_tuning_lock = threading.Lock()
_tuning_users = 0
_saved_switch_interval = 0.0

logger = logging.getLogger(__name__)


def fix_mmap_threshold() -> None:
    """Stop glibc from raising its mmap threshold after each large buffer is freed.

    glibc raises the threshold to the size of each large buffer freed, after which the
    read blocks and sealed chunks of the worker threads come from per-thread heaps that
    keep their freed memory. A fixed threshold kept the peak RSS of a 1 GiB backup near
    190 MiB instead of over 290 MiB (measured with `bench/backup_vs_restic.sh`).
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_free_memory() -> None:
    """Return the free parts of the C heap to the system, for example after parsing a large manifest."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's garbage collector for the block, then restore its previous state.

    Parsing a manifest or backing up a tree creates hundreds of thousands of objects
    that hold no cycles, and the collections that their number sets off took a quarter
    of the time of loading a 40,000-entry snapshot. Cycles made meanwhile are collected
    after the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def backup_tuning() -> Iterator[None]:
    """Tune the process for a backup run for the block, then restore the defaults.

    A backup's reading thread and its sealing workers hand the GIL to each other
    between C calls: `perf stat` counted 29,000 context switches a second. With the
    default switch interval of 5 ms, a first backup of the 1 GiB bench corpus kept the
    2 cores only 70 % busy (1.38 CPUs). Freed buffers at the top of each arena went back
    to the system and were faulted in again for the next chunk: 400,000 page faults in
    that backup. A 1 ms interval and an 8 MiB trim threshold took it from 6.6 s to 5.9 s
    with 67,000 faults. The backup after a 1 % change went from 2.9 s to 2.2 s. Peak RSS
    grew by about 6 MiB. A 64 MiB threshold was no faster and added 15 MiB more.
    Nested and concurrent runs share the settings, and the last one to leave restores them.

    It also caps the malloc arenas at `BACKUP_ARENA_MAX`. Each thread of a backup (the
    reader, two sealing workers, two small-file readers, the pack finisher) otherwise
    gets an arena of its own, and each keeps up to the trim threshold free at its top.
    On the bench corpus two arenas took the first backup's peak RSS from 178 to 182 MiB
    down to 170 to 171 MiB, in the same time. glibc reads the limit once, the first time
    it needs it to create an arena (`arena_get2` in malloc/arena.c), and keeps it for the
    life of the process, so the cap stays after the block.
    """
    global _tuning_users, _saved_switch_interval
    with _tuning_lock:
        if _tuning_users == 0:
            _saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(BACKUP_SWITCH_INTERVAL_S)
            _set_trim_threshold(BACKUP_TRIM_THRESHOLD_BYTES)
            _limit_arenas(BACKUP_ARENA_MAX)
        _tuning_users += 1
    try:
        yield
    finally:
        with _tuning_lock:
            _tuning_users -= 1
            if _tuning_users == 0:
                sys.setswitchinterval(_saved_switch_interval)
                _set_trim_threshold(DEFAULT_TRIM_THRESHOLD_BYTES)


def _limit_arenas(count: int) -> None:
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, count)


def _set_trim_threshold(size: int) -> None:
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_TRIM_THRESHOLD, size)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError as err:
        logger.debug("cannot load the C library to tune malloc: %s", err)
        return None

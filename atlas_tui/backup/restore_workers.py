"""Child processes that write a large restore's files, and the parent's side that feeds them.

A restore of tens of thousands of small files spends most of its time in the
kernel: on the ext4 of the two-core VM that `bench/backup_vs_restic.py` ran on,
creating a file took 100 to 500 µs of kernel time, most of it (by `perf`) in ext4's
search for a free inode that was not freed recently. Python threads cannot share
that work well: each small file released the GIL about ten times, and with three or
four writer threads a restore of 42,000 files made over a million futex calls and
tripled its kernel time. Separate processes have no GIL to share, so each core runs
one process that reads, decrypts and writes files on its own.

`Restorer` plans `Batch`es: the files of one directory, or one large file. It hands
them over a directory at a time, creating each directory just before, so the
processes start writing while it creates the rest. `RestoreWorkers` sends each batch,
in that order, to a process with fewer than `_MAX_IN_FLIGHT` batches, and passes each
process's progress on. Each process reads only the chunks of its own files, through
`ChunkReader` with the index it loads itself. The parent keeps the decisions that
need its state or its logging: the daemon-lock check and the removal of stale `-wal`
and `-shm` files of a database, symlinks, and directory metadata.

A process runs `python -m atlas_tui.backup.restore_workers`, a fresh interpreter,
so it inherits no lock from a thread of the parent (the daemon calls `verify` from a
thread). Messages are pickles, each after its length as 4 bytes big-endian, on the
child's stdin and on a copy of its stdout, whose descriptor 1 then points at stderr.
The first message carries the repository's path, config and master key.

Neither side outlives the other for long. A child exits when its stdin ends, and a
write to the parent fails with EPIPE once the parent is gone, which it does at least
after each batch and every `_PROGRESS_SECONDS` while writing a large file. When a
child exits or dies, the parent reads the end of its stdout and raises an error that
names the process and its exit status. It then stops the other children with
SIGTERM, on which a child removes the file it was writing.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import atlas_tui
from atlas_tui.backup.chunk_reader import ChunkReader
from atlas_tui.backup.crypto import MasterKey
from atlas_tui.backup.errors import BackupError
from atlas_tui.backup.file_writer import Batch, FileWriter
from atlas_tui.backup.models import Entry, RepositoryConfig, SkippedPath
from atlas_tui.backup.repository import Repository

__all__ = ["MAX_WORKERS", "RestoreWorkers", "main"]

MAX_WORKERS = 2
"""Most worker processes of one restore.
NOTE: measured only on a two-core VM with two processes. Whether more processes help
depends on how well the filesystem creates files in parallel, which was not measured."""
_MAX_IN_FLIGHT = 2
"""Batches sent to a process ahead, so it starts the next one without waiting for the parent."""
_AHEAD_BYTES = 8 * 1024 * 1024
"""A second batch goes to a process only while its first is smaller than this, so a
large file does not wait behind another large file in one process while another
process could take it."""
_PROGRESS_SECONDS = 0.25
_STOP_SECONDS = 5.0
"""Time a process has to exit after SIGTERM before it gets SIGKILL."""
_READ_BYTES = 65536
_LENGTH = struct.Struct("!I")

logger = logging.getLogger(__name__)


class RestoreWorkers:
    """Child processes that write batches of files for one restore; close them when done.

    The processes start here and need about 0.2 s to import their modules. A caller
    that creates them before it opens the repository and loads the snapshot, as
    `backup-manager restore` does, hides that time behind its own.

    Args:
        count: Number of processes.
    """

    def __init__(self, count: int) -> None:
        self._workers: list[_Worker] = []
        self._repository: Path | None = None
        try:
            for _ in range(count):
                self._workers.append(_Worker.start())
        except BaseException:
            self.close()
            raise

    @property
    def count(self) -> int:
        """Number of processes."""
        return len(self._workers)

    @classmethod
    def for_cores(cls) -> RestoreWorkers | None:
        """Start one process per core available to this one, at most `MAX_WORKERS`; None with a single core."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return cls(min(MAX_WORKERS, cores)) if cores > 1 else None

    def open_repository(self, repository: Repository) -> None:
        """Send the repository's path, config and key to every process, so each loads its index now.

        Raises:
            ValueError: the processes already have another repository.
        """
        if self._repository == repository.path:
            return
        if self._repository is not None:
            raise ValueError(f"restore workers already read {self._repository}, not {repository.path}")
        init = (str(repository.path), repository.config.model_dump_json(), repository.key.to_bytes(), repository.key_id)
        for worker in self._workers:
            worker.send(init)
        self._repository = repository.path

    def run(
        self,
        groups: Iterable[Sequence[Batch]],
        on_progress: Callable[[int, int], None],
        on_done: Callable[[Batch, list[SkippedPath]], None],
    ) -> None:
        """Write every batch in some process and return once all are written.

        Args:
            groups: Batches in the order to start them, in groups of one directory's
                consecutive batches. The groups are taken one at a time, while the
                processes write the batches of the earlier ones, so their iterator may
                do slow work such as creating the next directories. An exception it
                raises stops the run.
            on_progress: Called with the files finished and bytes written since its previous call.
            on_done: Called with each batch once its files are written, and the files
                of it that were left out because the repository has a chunk of theirs
                missing or damaged.

        Raises:
            BackupError: a process died or exited before it finished its batches.
            Exception: what a process raised while writing, such as an `OSError` from
                the target, with the same type and message where it can be rebuilt.
        """
        if self._repository is None:
            raise ValueError("call open_repository before run")
        queue = _BatchQueue(groups, self._workers)
        if not self._workers and queue:
            raise ValueError("no restore worker processes are running; start some or restore in this thread")
        while queue or any(worker.in_flight for worker in self._workers):
            for worker in self._workers:
                while _has_room(worker, queue.sizes) and queue:
                    number = queue.take(worker)
                    batch = queue.batches[number]
                    worker.send((number, batch.directory, [entry.__dict__ for entry in batch.entries]))
                    worker.in_flight.append(number)
            for worker, message in self._wait_for_messages():
                self._handle(worker, message, queue, on_progress, on_done)

    def close(self) -> None:
        """End every process: an idle one exits at the end of its input, a busy one gets SIGTERM."""
        for worker in self._workers:
            worker.close_input()
            if worker.in_flight:
                worker.terminate()
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in self._workers:
            worker.wait(deadline)
        self._workers = []

    def __enter__(self) -> RestoreWorkers:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.close()

    def _wait_for_messages(self) -> list[tuple[_Worker, tuple[Any, ...]]]:
        """Wait until a process writes or can read more, pass queued bytes on, and return its messages."""
        # poll, unlike select, takes descriptors above 1023, which a daemon with many connections may reach.
        poller = select.poll()
        by_fd: dict[int, _Worker] = {}
        for worker in self._workers:
            poller.register(worker.output, select.POLLIN)
            by_fd[worker.output] = worker
            if worker.outbox:
                poller.register(worker.input, select.POLLOUT)
                by_fd[worker.input] = worker
        messages = []
        for fd, _events in poller.poll():
            worker = by_fd[fd]
            if fd == worker.input:
                worker.flush()
            else:
                messages.extend((worker, message) for message in worker.receive())
        return messages

    def _handle(
        self,
        worker: _Worker,
        message: tuple[Any, ...],
        queue: _BatchQueue,
        on_progress: Callable[[int, int], None],
        on_done: Callable[[Batch, list[SkippedPath]], None],
    ) -> None:
        kind = message[0]
        if kind == "progress":
            on_progress(message[1], message[2])
        elif kind == "done":
            number, files, written, damaged = message[1:]
            worker.in_flight.remove(number)
            on_progress(files, written)
            on_done(queue.finish(number), [SkippedPath(path=path, reason=reason) for path, reason in damaged])
        elif kind == "error":
            raise _rebuild_error(worker.pid, *message[1:])
        else:
            raise BackupError(f"restore worker pid {worker.pid} sent an unknown message {kind!r}")


class _Worker:
    """One child process and the parent's buffers for its pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        self.input = process.stdin.fileno()
        self.output = process.stdout.fileno()
        os.set_blocking(self.input, False)
        self.outbox = bytearray()
        self.inbox = bytearray()
        self.in_flight: deque[int] = deque()
        """Numbers of the batches sent and not yet reported done, oldest first."""

    @classmethod
    def start(cls) -> _Worker:
        """Start a child process running `main`."""
        # The child must import this same copy of the package, and never one in the
        # working directory: `-P` keeps that directory off `sys.path`, where `-m` would
        # put it first, and the package's parent goes first on PYTHONPATH.
        package_parent = str(Path(atlas_tui.__file__).resolve().parent.parent)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, environment.get("PYTHONPATH")]))
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "atlas_tui.backup.restore_workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        logger.info("restore worker started pid=%d", process.pid)
        return cls(process)

    def send(self, message: object) -> None:
        """Queue a message and write as much of the queue as the pipe takes now."""
        self.outbox += _frame(message)
        self.flush()

    def flush(self) -> None:
        """Write queued bytes without blocking."""
        try:
            written = os.write(self.input, self.outbox)
        except BlockingIOError:
            return
        except BrokenPipeError:
            # The child has exited, and the end of its output shows how.
            self.outbox.clear()
            return
        del self.outbox[:written]

    def receive(self) -> list[tuple[Any, ...]]:
        """Read what the child wrote and return its complete messages.

        Raises:
            BackupError: the child's output ended, because it exited or was killed.
        """
        data = os.read(self.output, _READ_BYTES)
        if not data:
            raise BackupError(
                f"restore worker pid {self.pid} {self._exit_text()} before it finished writing its files; "
                "the restore is incomplete, so run it again"
            )
        self.inbox += data
        messages = []
        while len(self.inbox) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.inbox)
            if len(self.inbox) < _LENGTH.size + length:
                break
            messages.append(pickle.loads(self.inbox[_LENGTH.size : _LENGTH.size + length]))
            del self.inbox[: _LENGTH.size + length]
        return messages

    def close_input(self) -> None:
        """Close the child's stdin, which makes an idle child exit."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def terminate(self) -> None:
        """Ask the child to stop its current file and exit."""
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        """Wait for the child until `deadline` (monotonic seconds), then kill it."""
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("restore worker did not stop in time pid=%d; killing it", self.pid)
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        logger.info("restore worker stopped pid=%d status=%s", self.pid, self.process.returncode)

    def _exit_text(self) -> str:
        try:
            code = self.process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            return "closed its output"
        if code < 0:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        return f"exited with status {code}"


class _BatchQueue:
    """Batches not sent yet, handed out so that two processes rarely write into one directory.

    Creating a file holds its directory's lock while ext4 searches for a free inode,
    so two processes creating files in one directory wait for each other (`perf`
    showed 13 % of a restore's samples in `rwsem_spin_on_owner` under `openat` before
    this). A process takes the batches of a group in order before it starts the
    next group. Only when no group is left does it take the last batch of another
    process's group.

    Groups come from the caller's iterator one at a time, when a process needs one,
    and each batch gets a number that its messages carry.
    """

    def __init__(self, groups: Iterable[Sequence[Batch]], workers: list[_Worker]) -> None:
        self._source = iter(groups)
        self._groups: deque[deque[int]] = deque()
        self._numbers = itertools.count()
        self.batches: dict[int, Batch] = {}
        """Batches taken from the iterator and not reported written, by number."""
        self.sizes: dict[int, int] = {}
        """Bytes of the files of each batch in `batches`, by number."""
        self._current: dict[int, deque[int]] = {worker.pid: deque() for worker in workers}
        """Rest of the group each process works through, by pid."""

    def __bool__(self) -> bool:
        return self._fill() or any(self._current.values())

    def take(self, worker: _Worker) -> int:
        """Remove and return the number of the next batch for `worker`; the queue must not be empty."""
        group = self._current[worker.pid]
        if not group and self._fill():
            group = self._current[worker.pid] = self._groups.popleft()
        if group:
            return group.popleft()
        return max(self._current.values(), key=len).pop()

    def finish(self, number: int) -> Batch:
        """Forget written batch `number` and return it."""
        del self.sizes[number]
        return self.batches.pop(number)

    def _fill(self) -> bool:
        """Take the next group from the iterator unless one is waiting; return False once none is left."""
        while not self._groups:
            group = next(self._source, None)
            if group is None:
                return False
            numbers: deque[int] = deque()
            for batch in group:
                number = next(self._numbers)
                self.batches[number] = batch
                self.sizes[number] = sum(entry.size for entry in batch.entries)
                numbers.append(number)
            if numbers:
                self._groups.append(numbers)
        return True


def _has_room(worker: _Worker, sizes: dict[int, int]) -> bool:
    """Return True when `worker` should get another batch now; `sizes` are the batches' bytes."""
    if not worker.in_flight:
        return True
    return len(worker.in_flight) < _MAX_IN_FLIGHT and sum(sizes[number] for number in worker.in_flight) < _AHEAD_BYTES


def _rebuild_error(pid: int, pickled: bytes | None, name: str, text: str) -> BaseException:
    """Return the exception a child raised, or a `BackupError` with its text where it cannot be rebuilt."""
    error: BaseException | None = None
    if pickled is not None:
        try:
            error = pickle.loads(pickled)
        except Exception:  # noqa: BLE001 - a class that does not unpickle falls back to its text
            error = None
    if not isinstance(error, Exception) or str(error) != text:
        error = BackupError(f"restore worker pid {pid} failed: {name}: {text}")
    error.add_note(f"raised in restore worker pid {pid}")
    return error


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


# The child's side.


class _ParentGone(BaseException):
    """Raised in a child when a write to the parent fails because the parent has exited."""


class _Reporter:
    """Sends one batch's progress to the parent, at most every `_PROGRESS_SECONDS`, and its end."""

    def __init__(self, channel: int) -> None:
        self._channel = channel
        self._files = 0
        self._bytes = 0
        self._sent = time.monotonic()

    def __call__(self, files: int, written: int) -> None:
        self._files += files
        self._bytes += written
        if time.monotonic() - self._sent >= _PROGRESS_SECONDS:
            self._send(("progress", self._files, self._bytes))
            self._files = self._bytes = 0
            self._sent = time.monotonic()

    def finish(self, number: int, damaged: list[SkippedPath]) -> None:
        """Report batch `number` written, with the progress not sent yet and the files left out as damaged."""
        self._send(("done", number, self._files, self._bytes, [(item.path, item.reason) for item in damaged]))

    def _send(self, message: object) -> None:
        try:
            _write_message(self._channel, message)
        except BrokenPipeError as err:
            raise _ParentGone() from err


def main() -> int:
    """Write the batches read from stdin until it ends; the entry point of a child process."""
    # Ctrl+C reaches the whole process group; the parent decides and sends SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    channel = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Files are created with their final permission bits, which a umask would clear.
    os.umask(0)
    # Batches make no reference cycles, so the collector's passes over every
    # unpickled entry would only cost time.
    gc.disable()
    try:
        init = _read_message(sys.stdin.fileno())
        if init is None:
            return 0
        writer = _open_writer(*init)
        while (request := _read_message(sys.stdin.fileno())) is not None:
            number, directory, items = request
            reporter = _Reporter(channel)
            damaged = writer.write_batch(Batch(directory, _entries(items)), reporter)
            reporter.finish(number, damaged)
    except _ParentGone:
        return 1
    except Exception as err:  # noqa: BLE001 - worker boundary: the parent raises it again
        _send_error(channel, err)
        return 1
    return 0


def _open_writer(path: str, config: str, key: bytes, key_id: str) -> FileWriter:
    """Open the repository with the parent's key, load its index and return a `FileWriter`."""
    repository = Repository(Path(path), RepositoryConfig.model_validate_json(config), MasterKey.from_bytes(key), key_id)
    reader = ChunkReader(repository, repository.load_index())
    return FileWriter(reader, is_root=os.geteuid() == 0, umask_is_zero=True)


def _entries(items: list[dict[str, Any]]) -> list[Entry]:
    return [Entry.from_trusted(item) for item in items]


def _send_error(channel: int, err: Exception) -> None:
    try:
        pickled: bytes | None = pickle.dumps(err, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an exception that does not pickle is sent as text
        pickled = None
    if not isinstance(err, (BackupError, OSError)):
        logger.error("restore worker failed pid=%d", os.getpid(), exc_info=err)
    try:
        _write_message(channel, ("error", pickled, type(err).__name__, str(err)))
    except BrokenPipeError:
        pass


def _exit_on_signal(number: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + number)


def _read_message(fd: int) -> Any:
    """Return the next message on `fd`, or None at its end."""
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    data = _read_exactly(fd, length)
    return None if data is None else pickle.loads(data)


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts = []
    while size:
        part = os.read(fd, size)
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _write_message(fd: int, message: object) -> None:
    view = memoryview(_frame(message))
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = main()
    sys.stderr.flush()
    # Skips freeing the index and every module object by object at interpreter exit.
    os._exit(status)

"""The `backup_runs` and `backup_run_log` tables: one record per backup, cleanup or check run.

`atlas_tui.backup.jobs` writes the records for `backup-manager` and for the daemon's
schedule. The schedule (`atlas_tui.backup.schedule`), the backup metrics, `backup-manager
logs` and the console's Backups pane read them. Invariants:

- A backup run gets one row per backup set, all with the same snapshot id. Every
  other kind gets one row with `set_name` null.
- A row is written `running` by `start_run` and changed once by `finish_run`, which
  only touches rows that are still `running`. So a late finish cannot overwrite a
  row that `recover_interrupted` already marked failed.
- Each row names its process (host, pid, process start time, boot id). A `running`
  row whose process is gone is marked failed with the error `interrupted` by the
  next `start_run` or `recover_interrupted`.
- Times are UTC epoch seconds, sizes bytes. Readers leave no transaction open.

- `delete_old_runs`, from the daemon's store maintenance, deletes finished rows older
  than `RUN_RETENTION` except the newest row and the newest `ok` row of each kind,
  set and repository, which the schedule, the metrics and the pane read.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from storage.db import transaction

__all__ = [
    "INTERRUPTED",
    "LOG_LEVELS",
    "BackupRun",
    "LogLevel",
    "LogLine",
    "RunKind",
    "RunOwner",
    "RunState",
    "RunTrigger",
    "RUN_RETENTION",
    "delete_old_runs",
    "discard_run",
    "finish_run",
    "first_run_by_set",
    "last_finished_by_set",
    "last_runs_by_set",
    "last_snapshot_finished",
    "last_success_by_set",
    "owner_gone",
    "recent_runs",
    "recent_runs_at_level",
    "recover_interrupted",
    "run_log",
    "start_run",
]

logger = logging.getLogger(__name__)

RunKind = Literal["backup", "cleanup", "verify", "integrity", "test_restore"]
"""Kind of work a run did. `verify` is started by hand, `test_restore` (the same check) by the schedule."""
RunTrigger = Literal["manual", "scheduled", "test"]
"""Origin of a run, in the same words as the last part of a backup id."""
RunState = Literal["running", "ok", "partial", "failed"]
"""State of a run. Only `ok` counts as a successful backup."""
LogLevel = Literal["debug", "info", "warning", "error"]
"""Level of one stored log line."""

LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
"""Log levels from the lowest to the highest."""

INTERRUPTED = "interrupted: the process running it ended before the run finished"
"""Error stored on a run whose process died while the run was `running`."""

_STATUS_LEVELS: dict[RunState, LogLevel] = {"running": "info", "ok": "info", "partial": "warning", "failed": "error"}

_COLUMNS = (
    "id, kind, trigger, set_name, snapshot_id, status, started, finished, bytes, bytes_read, "
    "bytes_new, files, error, repository, host, pid"
)


class BackupRun(BaseModel):
    """One stored run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: int
    """Row id, increasing in start order."""
    kind: RunKind
    trigger: RunTrigger
    set_name: str | None = None
    """Backup set of a `backup` row; None for the other kinds."""
    snapshot_id: str | None = None
    """Snapshot written (backup) or checked (verify, integrity, test_restore); None when there is none."""
    status: RunState
    started: float
    """UTC epoch seconds when the run started."""
    finished: float | None = None
    """UTC epoch seconds when it ended; None while `running`."""
    bytes: int = 0
    """Size of the set's files in the snapshot (backup), or bytes freed (cleanup)."""
    bytes_read: int = 0
    """Bytes a backup run read. The rows of one backup run share this total."""
    bytes_new: int = 0
    """Bytes a backup run added to the repository. Shared like `bytes_read`."""
    files: int = 0
    """Regular files in the set (backup), or entries compared (verify, test_restore)."""
    error: str | None = None
    """Error message of a failed run, or None."""
    repository: str | None = None
    """Repository directory the run used."""
    host: str = ""
    """Host name of the process that ran it."""
    pid: int = 0
    """Process id of that process."""


class LogLine(BaseModel):
    """One line a run logged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: float
    level: LogLevel
    message: str


class RunOwner(BaseModel):
    """The process that runs a run, precise enough to tell a live process from a reused pid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    pid: int
    process_start: int | None
    """Start time of the process in clock ticks after boot (/proc/PID/stat field 22); None off Linux."""
    boot_id: str
    """Kernel boot id, empty where there is none."""

    @classmethod
    def current(cls) -> RunOwner:
        """Return the owner record of this process."""
        pid = os.getpid()
        return cls(host=socket.gethostname(), pid=pid, process_start=_process_start(pid), boot_id=_boot_id())


def owner_gone(owner: RunOwner) -> bool:
    """Return True when the process `owner` names has provably ended.

    A process on another host, or one whose liveness cannot be read, counts as alive.
    """
    if owner.host != socket.gethostname():
        return False
    current_boot = _boot_id()
    if owner.boot_id and current_boot and owner.boot_id != current_boot:
        return True
    if owner.process_start is not None and Path("/proc/self/stat").exists():
        return _process_start(owner.pid) != owner.process_start
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def start_run(
    conn: sqlite3.Connection,
    *,
    kind: RunKind,
    trigger: RunTrigger,
    now: float,
    set_name: str | None = None,
    snapshot_id: str | None = None,
    repository: str | None = None,
    owner: RunOwner | None = None,
    is_gone: Callable[[RunOwner], bool] = owner_gone,
) -> int:
    """Store a new `running` run and return its run id.

    **Writes**, in one transaction that first marks the runs of dead processes as
    failed (see `recover_interrupted`).
    """
    owner = owner or RunOwner.current()
    with transaction(conn):
        _recover(conn, now, is_gone)
        cursor = conn.execute(
            "INSERT INTO backup_runs (kind, trigger, set_name, snapshot_id, status, started, repository, "
            "host, pid, process_start, boot_id) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (kind, trigger, set_name, snapshot_id, now, repository, owner.host, owner.pid,
             owner.process_start, owner.boot_id),
        )
    run_id = cursor.lastrowid
    assert run_id is not None
    return run_id


def finish_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    status: Literal["ok", "partial", "failed"],
    now: float,
    snapshot_id: str | None = None,
    files: int = 0,
    bytes: int = 0,  # noqa: A002 - the column name
    bytes_read: int = 0,
    bytes_new: int = 0,
    error: str | None = None,
    log: Sequence[LogLine] = (),
) -> bool:
    """Store the outcome of a `running` run and its log lines; return False when it was no longer running.

    **Writes**, in one transaction. `snapshot_id` None keeps the stored one.
    """
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE backup_runs SET status = ?, finished = ?, snapshot_id = coalesce(?, snapshot_id), files = ?, "
            "bytes = ?, bytes_read = ?, bytes_new = ?, error = ? WHERE id = ? AND status = 'running'",
            (status, now, snapshot_id, files, bytes, bytes_read, bytes_new, error, run_id),
        )
        if cursor.rowcount == 0:
            return False
        _append_log(conn, run_id, log)
    return True


def discard_run(conn: sqlite3.Connection, run_id: int) -> None:
    """Delete a run that never started its work, such as one that found the repository locked.

    **Writes**, in one transaction; the log lines go with the row.
    """
    with transaction(conn):
        conn.execute("DELETE FROM backup_run_log WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM backup_runs WHERE id = ?", (run_id,))


RUN_RETENTION = 90 * 86400.0
"""Seconds that finished run records and their log lines are kept."""

_OLD_RUNS = """
    SELECT id FROM backup_runs
     WHERE status != 'running' AND started < ?
       AND id NOT IN (SELECT max(id) FROM backup_runs GROUP BY repository, kind, set_name)
       AND id NOT IN (SELECT max(id) FROM backup_runs WHERE status = 'ok' GROUP BY repository, kind, set_name)
     ORDER BY id
     LIMIT ?
"""


def delete_old_runs(conn: sqlite3.Connection, now: float, *, keep: float = RUN_RETENTION, batch_size: int = 500) -> int:
    """Delete finished runs started more than `keep` seconds ago, with their log lines, and return how many.

    The newest run and the newest successful run of each kind, set and repository
    stay whatever their age, so a set backed up rarely keeps its last success.
    **Writes**, in batches of at most `batch_size` runs, each in its own BEGIN
    IMMEDIATE transaction.
    """
    deleted = 0
    while True:
        with transaction(conn):
            ids = [row[0] for row in conn.execute(_OLD_RUNS, (now - keep, batch_size))]
            if ids:
                marks = ",".join("?" * len(ids))
                conn.execute(f"DELETE FROM backup_run_log WHERE run_id IN ({marks})", ids)
                conn.execute(f"DELETE FROM backup_runs WHERE id IN ({marks})", ids)
        deleted += len(ids)
        if len(ids) < batch_size:
            if deleted:
                logger.info("backup run records deleted runs=%d older_than_s=%d", deleted, keep)
            return deleted


def recover_interrupted(
    conn: sqlite3.Connection, now: float, *, is_gone: Callable[[RunOwner], bool] = owner_gone
) -> list[int]:
    """Mark every `running` run whose process has ended as failed and return their run ids.

    **Writes**, in one transaction. Each recovered run gets the error `INTERRUPTED`,
    `finished` = `now`, and one error line in its log.
    """
    with transaction(conn):
        return _recover(conn, now, is_gone)


def recent_runs(
    conn: sqlite3.Connection,
    limit: int = 50,
    kind: RunKind | None = None,
    *,
    set_name: str | None = None,
    repository: str | None = None,
    trigger: RunTrigger | None = None,
) -> list[BackupRun]:
    """Return up to `limit` runs, newest first, filtered by the arguments that are not None.

    **Read-only**, one statement.
    """
    where, params = _filters(kind=kind, set_name=set_name, repository=repository, trigger=trigger)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM backup_runs {where} ORDER BY started DESC, id DESC LIMIT ?", (*params, limit)
    ).fetchall()
    return [_run(row) for row in rows]


def recent_runs_at_level(
    conn: sqlite3.Connection, min_level: LogLevel, limit: int = 50, kind: RunKind | None = None
) -> list[BackupRun]:
    """Return up to `limit` runs, newest first, whose status or log reaches `min_level`.

    A run's status has a level too: `running` and `ok` are info, `partial` is warning
    and `failed` is error. **Read-only**, one statement.
    """
    levels = LOG_LEVELS[LOG_LEVELS.index(min_level):]
    states = [state for state, level in _STATUS_LEVELS.items() if level in levels]
    where, params = _filters(kind=kind)
    marks = ",".join("?" * len(levels))
    state_marks = ",".join("?" * len(states)) or "NULL"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM backup_runs AS r {where} AND (status IN ({state_marks}) OR EXISTS "
        f"(SELECT 1 FROM backup_run_log AS l WHERE l.run_id = r.id AND l.level IN ({marks}))) "
        "ORDER BY started DESC, id DESC LIMIT ?",
        (*params, *states, *levels, limit),
    ).fetchall()
    return [_run(row) for row in rows]


def last_runs_by_set(conn: sqlite3.Connection, *, repository: str | None = None) -> dict[str, BackupRun]:
    """Return the newest backup run of each set, `running` ones included.

    **Read-only**, one statement.
    """
    return _newest_by_set(conn, "", repository)


def last_finished_by_set(conn: sqlite3.Connection, *, repository: str | None = None) -> dict[str, BackupRun]:
    """Return the newest finished (ok, partial or failed) backup run of each set.

    **Read-only**, one statement.
    """
    return _newest_by_set(conn, "AND status != 'running'", repository)


def last_success_by_set(conn: sqlite3.Connection, *, repository: str | None = None) -> dict[str, BackupRun]:
    """Return the newest `ok` backup run of each set.

    **Read-only**, one statement.
    """
    return _newest_by_set(conn, "AND status = 'ok'", repository)


def first_run_by_set(conn: sqlite3.Connection, *, repository: str | None = None) -> dict[str, float]:
    """Return the start time of the oldest backup run of each set.

    **Read-only**, one statement.
    """
    where, params = _filters(kind="backup", repository=repository)
    rows = conn.execute(
        f"SELECT set_name, min(started) FROM backup_runs {where} AND set_name IS NOT NULL GROUP BY set_name",
        params,
    ).fetchall()
    return {name: started for name, started in rows}


def last_snapshot_finished(
    conn: sqlite3.Connection, *, repository: str | None = None, trigger: RunTrigger | None = None
) -> float | None:
    """Return the end of the newest backup run that wrote a snapshot (ok or partial), or None.

    **Read-only**, one statement.
    """
    where, params = _filters(kind="backup", repository=repository, trigger=trigger)
    row = conn.execute(
        f"SELECT max(finished) FROM backup_runs {where} AND status IN ('ok', 'partial') AND snapshot_id IS NOT NULL",
        params,
    ).fetchone()
    return row[0] if row else None


def run_log(
    conn: sqlite3.Connection, run_ids: Iterable[int], *, min_level: LogLevel = "info"
) -> dict[int, list[LogLine]]:
    """Return the log lines at `min_level` or above of each run in `run_ids`, oldest first.

    **Read-only**, one statement. Runs without such lines are left out.
    """
    ids = list(run_ids)
    if not ids:
        return {}
    levels = LOG_LEVELS[LOG_LEVELS.index(min_level):]
    rows = conn.execute(
        f"SELECT run_id, ts, level, message FROM backup_run_log "
        f"WHERE run_id IN ({','.join('?' * len(ids))}) AND level IN ({','.join('?' * len(levels))}) "
        "ORDER BY run_id, seq",
        (*ids, *levels),
    ).fetchall()
    lines: dict[int, list[LogLine]] = {}
    for run_id, ts, level, message in rows:
        lines.setdefault(run_id, []).append(LogLine(ts=ts, level=level, message=message))
    return lines


def _recover(conn: sqlite3.Connection, now: float, is_gone: Callable[[RunOwner], bool]) -> list[int]:
    rows = conn.execute(
        "SELECT id, host, pid, process_start, boot_id FROM backup_runs WHERE status = 'running'"
    ).fetchall()
    recovered = []
    for run_id, host, pid, process_start, boot in rows:
        if not is_gone(RunOwner(host=host, pid=pid, process_start=process_start, boot_id=boot)):
            continue
        conn.execute(
            "UPDATE backup_runs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
            (now, INTERRUPTED, run_id),
        )
        _append_log(conn, run_id, [LogLine(ts=now, level="error", message=f"{INTERRUPTED} (pid {pid} on {host})")])
        recovered.append(run_id)
    if recovered:
        logger.warning("marked interrupted backup runs as failed run_ids=%s", ",".join(map(str, recovered)))
    return recovered


def _append_log(conn: sqlite3.Connection, run_id: int, lines: Sequence[LogLine]) -> None:
    if not lines:
        return
    (last,) = conn.execute("SELECT coalesce(max(seq), 0) FROM backup_run_log WHERE run_id = ?", (run_id,)).fetchone()
    conn.executemany(
        "INSERT INTO backup_run_log (run_id, seq, ts, level, message) VALUES (?, ?, ?, ?, ?)",
        [(run_id, last + offset, line.ts, line.level, line.message) for offset, line in enumerate(lines, start=1)],
    )


def _newest_by_set(conn: sqlite3.Connection, condition: str, repository: str | None) -> dict[str, BackupRun]:
    where, params = _filters(kind="backup", repository=repository)
    # The window function picks one row per set, the newest by start time and then by id.
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM (SELECT *, row_number() OVER "
        f"(PARTITION BY set_name ORDER BY started DESC, id DESC) AS position "
        f"FROM backup_runs {where} AND set_name IS NOT NULL {condition}) WHERE position = 1",
        params,
    ).fetchall()
    runs = [_run(row) for row in rows]
    return {run.set_name: run for run in runs if run.set_name is not None}


def _filters(**values: object) -> tuple[str, tuple[object, ...]]:
    """Build `WHERE a = ? AND ...` from the values that are not None; `WHERE 1` when all are None.

    The keyword names are column names and come only from this module.
    """
    terms = [(f"{name} = ?", value) for name, value in values.items() if value is not None]
    if not terms:
        return "WHERE 1", ()
    return "WHERE " + " AND ".join(term for term, _ in terms), tuple(value for _, value in terms)


def _run(row: tuple[object, ...]) -> BackupRun:
    keys = (
        "run_id", "kind", "trigger", "set_name", "snapshot_id", "status", "started", "finished", "bytes",
        "bytes_read", "bytes_new", "files", "error", "repository", "host", "pid",
    )
    return BackupRun.model_validate(dict(zip(keys, row, strict=True)))


def _process_start(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may contain spaces and parentheses, so split after the last ")".
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""

"""Display models for the Backups pane: the summary line, both tables, job progress and job results.

The pane calls these pure functions on the UI thread with the models of
`console.backup_models`. Table cells are cut to their column width here. The column
sets depend on the pane width. At 80 columns the snapshot table drops the trigger
column, because the id ends with the trigger, and prints sizes in the short `ls -h`
form, so the full id always fits. Text that came from the host (paths, engine
messages) passes through `printable`. Times in the snapshot table are UTC.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from atlas_tui.console.alert_presentation import Column, Status
from atlas_tui.console.analytics_presentation import LineStatus, StatusLine
from atlas_tui.console.backup_models import (
    BackupProblem,
    BackupsRead,
    JobOutcome,
    JobProgress,
    JobRequest,
    RunState,
    SetRow,
    SnapshotRow,
)
from atlas_tui.console.formatting import format_age, format_bytes, format_duration_short, printable, truncate_cells

__all__ = [
    "IDLE_TEXT",
    "OUTCOME_LINES",
    "BackupRowView",
    "ProgressView",
    "compact_bytes",
    "job_title",
    "outcome_lines",
    "problem_line",
    "progress_view",
    "set_columns",
    "set_row_views",
    "snapshot_columns",
    "snapshot_row_views",
    "summary_line",
]

IDLE_TEXT = "b backs up now · v test-restores the selected snapshot · i checks its chunks"
"""Activity line while no job has run yet."""

OUTCOME_LINES = 4
"""Lines of a job result shown under the tables; the rest is counted in a last line."""

SNAPSHOT_ID_WIDTH = 27
"""Cells of the longest snapshot id, `backup_<10 digits>_scheduled`."""

_CELL_PADDING = 2
_SET_FIXED = {"last_run": 11, "status": 7, "size": 10, "next_run": 10, "last_ok": 11}
_MIN_SET_NAME = 8
_MAX_SET_NAME = 24
_MISSING = "—"

_RUN_STATUS: dict[str, Status] = {"ok": "ok", "partial": "warning", "failed": "critical", "running": "info"}
_PROBLEM_STATUS: dict[str, LineStatus] = {
    "repository_missing": "warning",
    "passphrase_missing": "warning",
    "remote_only": "plain",
    "snapshot_missing": "warning",
}
_LINE_STATUS: dict[str, LineStatus] = {"ok": "ok", "partial": "warning", "failed": "critical"}
_TITLES = {"backup": "Backup", "verify": "Verify", "integrity": "Integrity check"}


@dataclass(frozen=True, slots=True)
class BackupRowView:
    """One row of the sets or snapshot table, ready to print."""

    key: str
    """Row key: the set name or the snapshot id."""
    cells: tuple[str, ...]
    """Cell texts in column order, each within its column's width."""
    status: Status
    """Colour class of the status cell."""


@dataclass(frozen=True, slots=True)
class ProgressView:
    """The activity line of a running job and its progress bar."""

    text: str
    """Line naming the job and its progress, for example `Backup: 1,204 entries · 12.0 MiB read · 4.0 MiB/s · 3s`."""
    total: float | None
    """Bar total, or None when the job does not know its size (a backup), which hides the bar."""
    done: float
    """Bar progress in the unit of `total`."""


def summary_line(read: BackupsRead | None) -> StatusLine:
    """Build the line above the tables: where the repository is, its snapshot count and size."""
    if read is None:
        return StatusLine("reading the backup repository…", "stale")
    if read.problem is not None and read.problem.kind == "remote_only":
        return StatusLine("Backups of the daemon host")
    parts = [f"Repository {_repository_text(read)}"]
    if read.problem is None:
        parts.append(f"{len(read.snapshots):,} snapshot{'s' if len(read.snapshots) != 1 else ''}")
    if read.repository_bytes is not None:
        parts.append(format_bytes(read.repository_bytes))
    return StatusLine(" · ".join(parts))


def problem_line(problem: BackupProblem | None) -> StatusLine | None:
    """Return the notice for a read problem, or None when the repository was read."""
    if problem is None:
        return None
    return StatusLine(printable(problem.message), _PROBLEM_STATUS.get(problem.kind, "critical"))


def set_columns(width: int) -> tuple[Column, ...]:
    """Return the sets table's columns for a pane `width` cells wide; the set name takes what is left."""
    fixed = sum(_SET_FIXED.values()) + _CELL_PADDING * (len(_SET_FIXED) + 1)
    name = max(_MIN_SET_NAME, min(_MAX_SET_NAME, width - fixed))
    return (
        Column("name", "Set", name),
        Column("last_run", "Last run", _SET_FIXED["last_run"]),
        Column("status", "Status", _SET_FIXED["status"]),
        Column("size", "Size", _SET_FIXED["size"], "right"),
        Column("next_run", "Next run", _SET_FIXED["next_run"]),
        Column("last_ok", "Last ok", _SET_FIXED["last_ok"]),
    )


def set_row_views(read: BackupsRead, columns: Sequence[Column]) -> list[BackupRowView]:
    """Build one row per backup set, in the read's order.

    While the repository cannot be read, a set without run records shows `—`, not
    `never`, because its history is unknown.
    """
    return [_set_view(row, read.now, columns, known=read.problem is None) for row in read.sets]


def snapshot_columns(width: int) -> tuple[Column, ...]:
    """Return the snapshot table's columns for a pane `width` cells wide.

    Below about 90 cells the trigger column is left out and sizes use `compact_bytes`.
    From 110 cells on, times show the year and sizes the long form.
    """
    wide = width >= 110
    columns = [Column("id", "Snapshot", SNAPSHOT_ID_WIDTH), Column("time", "Time UTC", 16 if wide else 11)]
    size_width = 10 if wide else 5
    rest = [
        Column("status", "Status", 7),
        Column("files", "Files", 7, "right"),
        Column("size", "Size", size_width, "right"),
        Column("new", "New data" if wide else "New", size_width, "right"),
    ]
    used = sum(column.width + _CELL_PADDING for column in (*columns, *rest))
    if width - used >= 9 + _CELL_PADDING:
        columns.append(Column("trigger", "Trigger", 9))
    return (*columns, *rest)


def snapshot_row_views(read: BackupsRead, columns: Sequence[Column]) -> list[BackupRowView]:
    """Build one row per snapshot, newest first."""
    long_form = any(column.key == "size" and column.width >= 10 for column in columns)
    return [_snapshot_view(row, columns, long_form) for row in read.snapshots]


def job_title(request: JobRequest) -> str:
    """Return the job's name with its snapshot, for example `Verify backup_1750000000_manual`."""
    title = _TITLES[request.kind]
    if request.snapshot_id is None:
        return title
    joiner = " of " if request.kind == "integrity" else " "
    return f"{title}{joiner}{request.snapshot_id}"


def progress_view(progress: JobProgress) -> ProgressView:
    """Build the activity line and bar of a running job."""
    parts = [_count_part(progress)]
    if progress.unit == "entries":
        # With a known total the bar shows the fraction, so the text stays short enough for 80 columns.
        verb = "read" if progress.request.kind == "backup" else "done"
        parts.append(f"{format_bytes(progress.bytes_done)} {verb}")
        if progress.elapsed >= 0.5:
            parts.append(f"{format_bytes(progress.bytes_done / progress.elapsed)}/s")
    parts.append(format_duration_short(progress.elapsed))
    text = f"{job_title(progress.request)}: " + " · ".join(parts)
    if progress.bytes_total:
        return ProgressView(text, float(progress.bytes_total), float(progress.bytes_done))
    if progress.items_total:
        return ProgressView(text, float(progress.items_total), float(progress.items_done))
    return ProgressView(text, None, 0.0)


def outcome_lines(outcome: JobOutcome, limit: int = OUTCOME_LINES) -> list[StatusLine]:
    """Build the result of a finished job: a headline, then details, cut to `limit` lines."""
    title = job_title(outcome.request)
    if outcome.status == "cancelled":
        lines = [StatusLine(f"{title} cancelled after {_took(outcome.elapsed)}", "warning")]
    elif outcome.problem is not None:
        lines = [StatusLine(f"{title} failed: {printable(outcome.problem.message)}", "critical")]
    elif outcome.backup is not None:
        lines = _backup_lines(outcome)
    elif outcome.verify is not None:
        lines = _verify_lines(outcome)
    elif outcome.integrity is not None:
        lines = _integrity_lines(outcome)
    else:
        lines = [StatusLine(f"{title}: {outcome.status}", _line_status(outcome.status))]
    if len(lines) > limit:
        hidden = len(lines) - limit + 1
        lines = [*lines[: limit - 1], StatusLine(f"… {hidden} more lines; `backup-manager` prints them all", "stale")]
    return lines


def compact_bytes(value: float) -> str:
    """Format a byte count in at most 5 cells as `ls -h` does: `512B`, `1.5K`, `38M`, `1023M`, `2.0G`."""
    scaled = float(value)
    for prefix in ("B", "K", "M", "G", "T", "P"):
        if abs(scaled) < 1024 or prefix == "P":
            break
        scaled /= 1024
    if prefix == "B":
        return f"{scaled:.0f}B"
    return f"{scaled:.1f}{prefix}" if abs(scaled) < 10 else f"{scaled:.0f}{prefix}"


def _repository_text(read: BackupsRead) -> str:
    path = PurePath(read.repository)
    if read.data_dir and path.is_relative_to(read.data_dir):
        return f"{path.relative_to(read.data_dir)} in the data directory"
    return printable(read.repository)


def _set_view(row: SetRow, now: float, columns: Sequence[Column], *, known: bool) -> BackupRowView:
    name = printable(row.name) if row.configured else f"{printable(row.name)} (old)"
    texts = {
        "name": name,
        "last_run": format_age(None if row.last_run_time is None else now - row.last_run_time),
        "status": row.last_status or ("never" if known else _MISSING),
        "size": _MISSING if row.size_bytes is None else format_bytes(row.size_bytes),
        "next_run": _next_run(row.next_run, now),
        "last_ok": _last_success(row, now, known),
    }
    return BackupRowView(row.name, _cells(texts, columns), _run_status(row.last_status))


def _snapshot_view(row: SnapshotRow, columns: Sequence[Column], long_form: bool) -> BackupRowView:
    size = format_bytes if long_form else compact_bytes
    texts = {
        "id": row.id,
        "time": time.strftime("%Y-%m-%d %H:%M" if long_form else "%m-%d %H:%M", time.gmtime(row.time)),
        "trigger": row.trigger,
        "status": row.status,
        "files": f"{row.files:,}",
        "size": size(row.size_bytes),
        "new": _MISSING if row.new_bytes is None else size(row.new_bytes),
    }
    return BackupRowView(row.id, _cells(texts, columns), _run_status(row.status))


def _cells(texts: dict[str, str], columns: Sequence[Column]) -> tuple[str, ...]:
    return tuple(truncate_cells(texts[column.key], column.width) for column in columns)


def _next_run(moment: float | None, now: float) -> str:
    if moment is None:
        return _MISSING
    if moment <= now:
        return "due now"
    return f"in {format_duration_short(moment - now)}"


def _last_success(row: SetRow, now: float, known: bool) -> str:
    if row.last_success_time is not None:
        return format_age(now - row.last_success_time)
    return "never" if known and row.last_run_time is not None else _MISSING


def _took(seconds: float) -> str:
    """Format a job's duration, with tenths below 10 s so a quick job does not read `0s`."""
    return f"{seconds:.1f}s" if seconds < 10 else format_duration_short(seconds)


def _run_status(state: RunState | None) -> Status:
    return "muted" if state is None else _RUN_STATUS[state]


def _line_status(status: str) -> LineStatus:
    return _LINE_STATUS.get(status, "plain")


def _count_part(progress: JobProgress) -> str:
    done = f"{progress.items_done:,}"
    if progress.items_total and not progress.bytes_total:
        done = f"{done} of {progress.items_total:,}"
    return f"{done} {progress.unit}"


def _backup_lines(outcome: JobOutcome) -> list[StatusLine]:
    result = outcome.backup
    assert result is not None
    took = _took(outcome.elapsed)
    if result.id is None:
        headline = f"Backup failed after {took}: no path could be read, so no snapshot was written"
    else:
        headline = (
            f"Backup {result.id} {result.status}: {result.files:,} files ({result.files_read:,} read), "
            f"{format_bytes(result.bytes)}, {format_bytes(result.new_bytes_stored)} new, in {took}"
        )
    lines = [StatusLine(headline, _line_status(result.status))]
    for item in result.skipped:
        lines.append(StatusLine(f"skipped {printable(item.path)}: {printable(item.reason)}", "warning"))
    lines += [StatusLine(f"warning: {printable(text)}", "warning") for text in result.warnings]
    return lines


def _verify_lines(outcome: JobOutcome) -> list[StatusLine]:
    result = outcome.verify
    assert result is not None
    headline = (
        f"Verify {result.id} {result.status}: {result.checked:,} entries restored and compared "
        f"in {_took(outcome.elapsed)}"
    )
    lines = [StatusLine(headline, _line_status(result.status))]
    lines += [StatusLine(f"mismatch: {printable(text)}", "critical") for text in result.mismatches]
    lines += [StatusLine(f"note: {printable(text)}", "stale") for text in result.notes]
    return lines


def _integrity_lines(outcome: JobOutcome) -> list[StatusLine]:
    result = outcome.integrity
    assert result is not None
    ids = ", ".join(result.snapshots)
    verdict = "ok" if result.ok else "failed"
    headline = (
        f"Integrity check of {ids} {verdict}: {result.chunks:,} chunks in {result.packs:,} packs read and "
        f"authenticated in {_took(outcome.elapsed)}"
    )
    lines = [StatusLine(headline, "ok" if result.ok else "critical")]
    for damage in result.damaged:
        affected = ", ".join(damage.snapshots) or _MISSING
        text = f"damaged pack {damage.pack}: {printable(damage.reason)}; snapshots {affected}"
        lines.append(StatusLine(text, "critical"))
    if not result.ok:
        advice = "restore the damaged packs from another copy of the repository, or back up again"
        lines.append(StatusLine(advice, "warning"))
    return lines

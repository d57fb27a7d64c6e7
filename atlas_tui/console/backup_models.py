"""Data of the Backups pane: the repository read, job requests, progress and outcomes, and `BackupSource`.

A `BackupSource` (`console.local_backups` on the daemon host, `console.remote_backups`
for a remote console) builds these models in a worker thread, and
`console.backup_presentation` turns them into text on the UI thread. Invariants:

- No Textual import and no formatting: sizes are bytes, times are UTC epoch
  seconds, and ages are measured against `BackupsRead.now`.
- The models are frozen pydantic models. Job results reuse the backup engine's own
  result models (`BackupResult`, `VerifyResult`, `IntegrityResult`), so the pane
  shows the same facts as `backup-manager`.
- A failure the user can fix (no repository, no passphrase, a wrong passphrase, a
  locked repository) is data (`BackupProblem`), never an exception that reaches a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from atlas_tui.backup.models import BackupResult, IntegrityResult, Trigger, VerifyResult

__all__ = [
    "BackupProblem",
    "BackupSource",
    "BackupsRead",
    "JobKind",
    "JobOutcome",
    "JobProgress",
    "JobRequest",
    "JobStatus",
    "ProblemKind",
    "ProgressReport",
    "RunState",
    "SetRow",
    "SnapshotRow",
]

JobKind = Literal["backup", "verify", "integrity"]
"""Work the pane starts: `b` backs up now, `v` test-restores and compares, `i` reads every chunk."""

RunState = Literal["running", "ok", "partial", "failed"]
"""State of a backup set's last run; only `ok` is a successful backup."""

JobStatus = Literal["ok", "partial", "failed", "cancelled"]
"""Outcome of a job the pane started; `cancelled` when the console quit while it ran."""

ProblemKind = Literal[
    "repository_missing",
    "passphrase_missing",
    "wrong_passphrase",
    "locked",
    "damaged",
    "snapshot_missing",
    "failed",
    "remote_only",
]
"""Reason the pane cannot show the snapshots or run a job.

`repository_missing`: no repository at the configured path (not initialised, or
`backup.repository` not set). `passphrase_missing`: neither the passphrase
environment variable nor `backup.passphrase_file` gives a passphrase.
`wrong_passphrase`: no key file opens with the passphrase. `locked`: another live
process holds the repository lock. `damaged`: a repository file fails
authentication. `snapshot_missing`: the selected snapshot was deleted meanwhile.
`failed`: any other failure (permissions, a full disk, a missing chunker).
`remote_only`: a remote console, which cannot read the daemon host's repository."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackupProblem(_Frozen):
    """A failure shown as text on the pane, with what to do about it."""

    kind: ProblemKind
    """The class of failure; see `ProblemKind`."""
    message: str
    """One or two sentences naming the repository, file or variable at fault and the fix."""


class SetRow(_Frozen):
    """One backup set: its last run, size and next scheduled run."""

    name: str
    """Set name from the config (or a set that only old snapshots and run records name)."""
    last_run_time: float | None = None
    """Start of the newest run that included the set; None when it never ran."""
    last_status: RunState | None = None
    """State of that run; None when it never ran."""
    size_bytes: int | None = None
    """Bytes of the set's files in its newest snapshot; None when no snapshot contains it."""
    last_success_time: float | None = None
    """Start of the newest run in which the set was `ok`; None when none was."""
    next_run: float | None = None
    """When the schedule runs the set next; None when unknown (no schedule, or the set is not configured)."""
    configured: bool = True
    """False for a set that is no longer in the config but still appears in the repository or the run records."""


class SnapshotRow(_Frozen):
    """One snapshot of the repository."""

    id: str
    """`backup_<unix seconds>_<trigger>`; also the table's row key."""
    time: float
    """Start of the run that wrote it."""
    trigger: Trigger
    """Origin of the run: manual, scheduled or test."""
    status: Literal["ok", "partial"]
    """Failed runs write no snapshot, so a snapshot is ok or partial."""
    files: int
    """Regular files in the snapshot."""
    size_bytes: int
    """Total size of those files."""
    new_bytes: int | None = None
    """Bytes this run added to the repository; None when no run record names the snapshot."""
    sets: tuple[str, ...] = ()
    """Names of the sets in the snapshot."""


class BackupsRead(_Frozen):
    """One read of the repository and the run records for the pane."""

    now: float
    """UTC epoch seconds the read was made for."""
    repository: str
    """Repository directory."""
    data_dir: str
    """The console's data directory; the presentation names a repository inside it relative to it."""
    repository_bytes: int | None = None
    """Bytes of every file in the repository directory; None when it could not be measured."""
    snapshots: tuple[SnapshotRow, ...] = ()
    """Snapshots, newest first. Empty when the repository could not be opened."""
    sets: tuple[SetRow, ...] = ()
    """Configured sets first (by priority, then name), then sets only the history names."""
    problem: BackupProblem | None = None
    """The reason the snapshots are missing, or None when the repository was read."""
    runs_recorded: bool = False
    """True when the store's run records were read (they add failed runs, running runs and new data)."""


class JobRequest(_Frozen):
    """A job that the pane requests from the source."""

    kind: JobKind
    """The job kind: `backup`, `verify` or `integrity`."""
    snapshot_id: str | None = None
    """The snapshot that `verify` and `integrity` check; None for `backup`."""


class JobProgress(_Frozen):
    """How far a running job has come."""

    request: JobRequest
    """The job."""
    elapsed: float
    """Seconds since the job started."""
    items_done: int = 0
    """Entries backed up or compared, or packs checked."""
    items_total: int | None = None
    """Items the job will process; None when unknown (a backup does not count ahead)."""
    bytes_done: int = 0
    """Bytes read (backup), written and read back (verify), or read (integrity) so far."""
    bytes_total: int | None = None
    """Bytes the job will process; None when unknown."""
    unit: Literal["entries", "packs"] = "entries"
    """The unit of `items_done` and `items_total`."""


class JobOutcome(_Frozen):
    """The end of a job: the engine's result, or the problem that stopped it."""

    request: JobRequest
    """The job."""
    status: JobStatus
    """Overall outcome; `partial` is not a successful backup or verify."""
    elapsed: float
    """Seconds the job ran."""
    backup: BackupResult | None = None
    """Result of a backup, including a failed run that wrote no snapshot."""
    verify: VerifyResult | None = None
    """Result of a verify."""
    integrity: IntegrityResult | None = None
    """Result of an integrity check."""
    problem: BackupProblem | None = None
    """The reason the job could not run or stopped early; None when the engine finished."""


ProgressReport = Callable[[JobProgress], None]
"""Called from the job's thread with the progress, at most a few times a second."""


@runtime_checkable
class BackupSource(Protocol):
    """The Backups pane's data and job runner. Every method blocks, so call it from a worker thread."""

    def read(self, now: float) -> BackupsRead:
        """Read the sets, the snapshots and the repository size; failures become `BackupsRead.problem`."""
        ...

    def run_job(
        self, request: JobRequest, now: float, report: ProgressReport, is_cancelled: Callable[[], bool]
    ) -> JobOutcome:
        """Run one job to its end and return the outcome; failures become `JobOutcome.problem`.

        Args:
            request: The job.
            now: UTC epoch seconds; a backup's id and time use it.
            report: Receives progress while the job runs.
            is_cancelled: Polled during the job; when it returns True the job stops
                early and the outcome is `cancelled`.
        """
        ...

"""`RemoteBackups`: the Backups pane's source on a console attached to a daemon with `atlas tui --connect`.

The daemon's HTTP API has no backup route, and the repository, its passphrase and
the run records live on the daemon host. So every read carries the `remote_only`
problem and every job ends at once with it, and the pane shows where to look
instead. Nothing here touches the network or the disk.
"""

from __future__ import annotations

from collections.abc import Callable

from atlas_tui.console.backup_models import BackupProblem, BackupsRead, JobOutcome, JobRequest, ProgressReport

__all__ = ["REMOTE_ONLY_TEXT", "RemoteBackups"]

REMOTE_ONLY_TEXT = (
    "backups are visible on the daemon host only: run `atlas` or `backup-manager status` there, "
    "because the repository and its passphrase stay on that host"
)
"""Notice the pane shows in place of the repository on a remote console."""


class RemoteBackups:
    """A `BackupSource` that explains why a remote console shows no backups."""

    def __init__(self) -> None:
        """Create the source."""
        self._problem = BackupProblem(kind="remote_only", message=REMOTE_ONLY_TEXT)

    def read(self, now: float) -> BackupsRead:
        """Return an empty read with the `remote_only` problem."""
        return BackupsRead(now=now, repository="", data_dir="", problem=self._problem)

    def run_job(
        self, request: JobRequest, now: float, report: ProgressReport, is_cancelled: Callable[[], bool]
    ) -> JobOutcome:
        """Return a failed outcome with the `remote_only` problem; no job runs."""
        return JobOutcome(request=request, status="failed", elapsed=0.0, problem=self._problem)

"""The Backups pane: backup sets, the snapshot list, and backup, verify and integrity jobs with progress.

The pane reads its `BackupSource` (`AtlasApp.backups`: `console.local_backups` on the
daemon host, `console.remote_backups` with `--connect`) in a thread worker when it
mounts, on `r`, after each job and, while the console is live, every
`READ_INTERVAL` seconds. `b` starts a backup of the configured sets, `v` a test
restore of the selected snapshot and `i` an integrity check of it. Each job runs in
its own thread worker and posts `JobProgressed` while it runs and `JobFinished` at
the end. Invariants:

- The UI thread never calls the source. Workers only post messages, and the
  handlers turn the models into text with `console.backup_presentation`.
- One job at a time: a key pressed while a job runs only shows a notice.
- Problems (no repository, no passphrase, a wrong passphrase, a locked repository)
  arrive as data and are shown as text. A bug in a source is caught at the worker
  boundary, logged and shown the same way, so the console keeps running.
- When the console quits during a job, the job's next progress callback finds its
  worker cancelled and stops the engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widgets import Label, ProgressBar, Static
from textual.worker import get_current_worker

from atlas_tui.console.analytics_presentation import StatusLine
from atlas_tui.console.backup_models import (
    BackupProblem,
    BackupSource,
    BackupsRead,
    JobKind,
    JobOutcome,
    JobProgress,
    JobRequest,
)
from atlas_tui.console.backup_presentation import (
    IDLE_TEXT,
    job_title,
    outcome_lines,
    problem_line,
    progress_view,
    set_columns,
    set_row_views,
    snapshot_columns,
    snapshot_row_views,
    summary_line,
)
from atlas_tui.console.pane import ConsolePane
from atlas_tui.console.widgets.backup_table import BackupTable
from atlas_tui.console.widgets.status_lines import LINE_STYLES

__all__ = ["READ_INTERVAL", "BackupsPane"]

logger = logging.getLogger(__name__)

READ_INTERVAL = 60.0
"""Seconds between two reads of the repository while the console is live. A read
decrypts only new manifests but walks the repository directory for its size."""

_SCROLLBAR = 2
"""Cells kept free for a table's vertical scroll bar, so columns never jump when it appears."""


class BackupsPane(ConsolePane):
    """Summary line, problem notice, sets table, snapshot table, and the job's activity lines and bar."""

    BINDINGS = [
        Binding("b", "backup", "Backup", tooltip="Back up the configured sets now"),
        Binding("v", "verify", "Verify", tooltip="Test-restore the selected snapshot"),
        Binding("i", "integrity", "Integrity", tooltip="Check every chunk of the selected snapshot"),
        Binding("r", "refresh", "Refresh", show=False, tooltip="Read the store again now"),
    ]

    DEFAULT_CSS = """
    BackupsPane #backups-summary {
        width: 1fr;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    BackupsPane #backups-problem {
        display: none;
        height: auto;
        padding: 0 1;
    }
    BackupsPane.-problem #backups-problem {
        display: block;
    }
    BackupsPane #backup-sets {
        height: auto;
        max-height: 7;
    }
    BackupsPane #backup-snapshots {
        height: 1fr;
        min-height: 3;
        margin-top: 1;
    }
    BackupsPane #backups-activity {
        height: auto;
        max-height: 5;
        padding: 0 1;
    }
    BackupsPane #backups-progress {
        display: none;
        padding: 0 1;
    }
    BackupsPane.-bar #backups-progress {
        display: block;
    }
    BackupsPane.-remote BackupTable {
        display: none;
    }
    """

    class ReadDone(Message):
        """A repository read from the read worker; a newer one replaces it in the queue."""

        def __init__(self, read: BackupsRead) -> None:
            super().__init__()
            self.read = read
            """The sets, snapshots and problem to show."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer read waiting in the queue, so this older one is skipped."""
            return isinstance(message, BackupsPane.ReadDone)

    class JobProgressed(Message):
        """Progress of the running job; a newer report replaces it in the queue."""

        def __init__(self, progress: JobProgress) -> None:
            super().__init__()
            self.progress = progress
            """How far the job came."""

        def can_replace(self, message: Message) -> bool:
            """Return True for a newer report waiting in the queue, so this older one is skipped."""
            return isinstance(message, BackupsPane.JobProgressed)

    class JobFinished(Message):
        """The running job ended."""

        def __init__(self, outcome: JobOutcome) -> None:
            super().__init__()
            self.outcome = outcome
            """The engine's result or the problem that stopped the job."""

    def __init__(self, *, id: str | None = None) -> None:
        """Create the pane; it reads its source once mounted."""
        super().__init__(id=id)
        self.read: BackupsRead | None = None
        """The read shown last; None before the first arrives."""
        self.job: JobRequest | None = None
        """The job running now; None when idle."""
        self.outcome: JobOutcome | None = None
        """The result of the last finished job; None before the first."""
        self.reads_shown = 0
        """Reads shown so far; tests and screenshots wait on it."""
        self.jobs_finished = 0
        """Jobs whose outcome was shown; tests wait on it."""

    def compose(self) -> ComposeResult:
        """Create the summary, the problem notice, both tables, the activity lines and the bar."""
        yield Label("", id="backups-summary")
        yield Static("", id="backups-problem")
        yield BackupTable(navigable=False, id="backup-sets")
        yield BackupTable(navigable=True, id="backup-snapshots")
        yield Static("", id="backups-activity")
        yield ProgressBar(show_eta=False, id="backups-progress")

    def on_mount(self) -> None:
        """Show the loading line, read the source, and schedule reads while live."""
        self._show_lines("#backups-summary", [summary_line(None)])
        self.request_read()
        if getattr(self.app, "live", False):
            self.set_interval(READ_INTERVAL, self.request_read)

    def on_resize(self, event: Resize) -> None:
        """Lay the tables out again for the new width."""
        self._render_tables()

    def on_backups_pane_read_done(self, message: ReadDone) -> None:
        """Show a new read."""
        message.stop()
        self.read = message.read
        self._show_lines("#backups-summary", [summary_line(self.read)])
        notice = problem_line(self.read.problem)
        self.set_class(notice is not None, "-problem")
        self.set_class(self.read.problem is not None and self.read.problem.kind == "remote_only", "-remote")
        if notice is not None:
            self._show_lines("#backups-problem", [notice])
        self._render_tables()
        if self.job is None and self.outcome is None:
            self._show_lines("#backups-activity", [] if self.read.problem else [StatusLine(IDLE_TEXT, "stale")])
        self.reads_shown += 1

    def on_backups_pane_job_progressed(self, message: JobProgressed) -> None:
        """Show how far the running job came."""
        message.stop()
        if self.job is None or message.progress.request != self.job:
            return
        view = progress_view(message.progress)
        self._show_lines("#backups-activity", [StatusLine(view.text)])
        self.set_class(view.total is not None, "-bar")
        for bar in self.query(ProgressBar):
            bar.update(total=view.total, progress=view.done)

    def on_backups_pane_job_finished(self, message: JobFinished) -> None:
        """Show the job's result, tell the user, and read the repository again."""
        message.stop()
        outcome = message.outcome
        self.job = None
        self.outcome = outcome
        self.set_class(False, "-bar")
        lines = outcome_lines(outcome)
        self._show_lines("#backups-activity", lines)
        if not self.display:
            # The pane shows the result itself; a toast only reaches a user who switched panes.
            severities: dict[str, SeverityLevel] = {"ok": "information", "failed": "error"}
            severity = severities.get(outcome.status, "warning")
            self.notify(lines[0].text, title=job_title(outcome.request), severity=severity, timeout=8)
        self.jobs_finished += 1
        self.request_read()

    def action_backup(self) -> None:
        """Back up the configured sets now."""
        self._start(JobRequest(kind="backup"))

    def action_verify(self) -> None:
        """Restore the selected snapshot into a temporary directory and compare it with its manifest."""
        self._start_on_selected("verify")

    def action_integrity(self) -> None:
        """Read and authenticate every chunk of the selected snapshot."""
        self._start_on_selected("integrity")

    def action_refresh(self) -> None:
        """Read the repository and the run records again now."""
        self.request_read()

    def request_read(self) -> None:
        """Start a read of the source in a thread worker; `ReadDone` brings the result."""
        source = self._source()
        if source is not None:
            self._read_worker(source, self._clock()())

    def focus_content(self) -> None:
        """Focus the snapshot table, whose cursor selects the snapshot for `v` and `i`."""
        for table in self.query("#backup-snapshots").results(BackupTable):
            table.focus()

    @property
    def selected_snapshot(self) -> str | None:
        """Id of the snapshot under the cursor; None when the list is empty."""
        for table in self.query("#backup-snapshots").results(BackupTable):
            return table.selected_key
        return None

    def _start_on_selected(self, kind: JobKind) -> None:
        snapshot_id = self.selected_snapshot
        if snapshot_id is None:
            unreadable = self.read is not None and self.read.problem is not None
            reason = "the repository could not be read" if unreadable else "press b to make the first one"
            self.notify(f"no snapshot to check: {reason}", severity="warning")
            return
        self._start(JobRequest(kind=kind, snapshot_id=snapshot_id))

    def _start(self, request: JobRequest) -> None:
        if self.job is not None:
            self.notify(f"{job_title(self.job)} is still running; wait for it to finish", severity="warning")
            return
        source = self._source()
        if source is None:
            self.notify("this console has no backup source", severity="error")
            return
        self.job = request
        self._show_lines("#backups-activity", [StatusLine(f"{job_title(request)}: starting…")])
        self._job_worker(source, request, self._clock()())

    @work(thread=True, exclusive=True, group="backups-read", name="backups read")
    def _read_worker(self, source: BackupSource, now: float) -> None:
        worker = get_current_worker()
        try:
            read = source.read(now)
        except Exception as err:  # worker boundary: show the failure as a problem, keep the pane alive
            logger.error("backups read failed: %s", err, exc_info=err)
            problem = BackupProblem(kind="failed", message=f"reading the backups failed: {err}; see the log")
            read = BackupsRead(now=now, repository="", data_dir="", problem=problem)
        if not worker.is_cancelled:
            self.post_message(self.ReadDone(read))

    @work(thread=True, group="backups-job", name="backup job")
    def _job_worker(self, source: BackupSource, request: JobRequest, now: float) -> None:
        worker = get_current_worker()

        def report(progress: JobProgress) -> None:
            self.post_message(self.JobProgressed(progress))

        try:
            outcome = source.run_job(request, now, report, lambda: worker.is_cancelled)
        except Exception as err:  # worker boundary: an unexpected failure is shown on the pane, not raised
            logger.error("console backup job failed kind=%s snapshot=%s: %s", request.kind, request.snapshot_id, err,
                         exc_info=err)
            problem = BackupProblem(kind="failed", message=f"{err}; see the log for details")
            outcome = JobOutcome(request=request, status="failed", elapsed=0.0, problem=problem)
        self.post_message(self.JobFinished(outcome))

    def _render_tables(self) -> None:
        read = self.read
        if read is None:
            return
        width = max(self.size.width - _SCROLLBAR, 1)
        for table in self.query("#backup-sets").results(BackupTable):
            columns = set_columns(width)
            table.apply(columns, set_row_views(read, columns))
        for table in self.query("#backup-snapshots").results(BackupTable):
            columns = snapshot_columns(width)
            table.apply(columns, snapshot_row_views(read, columns))

    def _show_lines(self, selector: str, lines: Sequence[StatusLine]) -> None:
        text = Content("\n").join(Content.styled(line.text, LINE_STYLES[line.status]) for line in lines)
        for widget in self.query(selector):
            if isinstance(widget, Static):
                widget.update(text)

    def _source(self) -> BackupSource | None:
        source = getattr(self.app, "backups", None)
        return source if isinstance(source, BackupSource) else None

    def _clock(self) -> Callable[[], float]:
        clock = getattr(self.app, "clock", None)
        return clock if callable(clock) else time.time

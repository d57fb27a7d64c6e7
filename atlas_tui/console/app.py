"""The ATLAS console: the Textual app, its factory and the terminal entry point.

`create_app` builds the app for tests, `make screenshots` and `run_console` alike;
`atlas` (no subcommand) calls `run_console`. The app owns the global keys (quit,
help, pane number keys) and the terminal's life cycle. Panes own their own keys, and
the main screen owns the data worker. Invariants:

- The UI thread never calls the source: all reads happen in the main screen's data
  worker (`console.refresh_loop`).
- Every exit path (`q`, Ctrl+C, SIGHUP, SIGTERM, SIGINT) ends in `App.exit`, so the
  driver restores the terminal (see `console.terminal`).
- The theme is fixed to `textual-dark` in `__init__`, because the `TEXTUAL_THEME`
  environment variable would otherwise change colours and break snapshot tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from atlas_tui.config import Config
from atlas_tui.console.backup_models import BackupSource
from atlas_tui.console.help_screen import HelpScreen
from atlas_tui.console.local_backups import LocalBackups
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.main_screen import MainScreen
from atlas_tui.console.panes import PANES
from atlas_tui.console.remote_backups import RemoteBackups
from atlas_tui.console.source import ConsoleSource
from atlas_tui.console.terminal import RestoringLinuxDriver, install_exit_signals, reset_mouse_modes

__all__ = ["AtlasApp", "create_app", "run_console"]

_TABLE_KEYS = ("↑ ↓ PgUp PgDn", "Move the cursor in a table")


def _pane_bindings() -> list[BindingType]:
    return [
        Binding(spec.key, f"show_pane('{spec.pane_id}')", spec.title, tooltip=f"Show the {spec.title} pane")
        for spec in PANES
    ]


class AtlasApp(App[None]):
    """The console app. Build it with `create_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "ATLAS"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit the console"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, tooltip="Quit the console"),
        Binding("question_mark", "help", "Help", tooltip="Show or close this help"),
        *_pane_bindings(),
    ]

    def __init__(
        self,
        source: ConsoleSource,
        *,
        refresh_interval: float,
        live: bool = True,
        clock: Callable[[], float] = time.time,
        exit_on_signals: bool = False,
        backups: BackupSource | None = None,
    ) -> None:
        """Create the app; see `create_app` for the arguments."""
        super().__init__()
        self.theme = "textual-dark"
        self.source = source
        """The data source; the main screen's data loop starts and closes it."""
        self.backups: BackupSource = backups or RemoteBackups()
        """Source of the Backups pane's reads and jobs, which the pane calls in its own workers."""
        self._refresh_interval = refresh_interval
        self._live = live
        self._clock = clock
        self._exit_on_signals = exit_on_signals

    def get_default_screen(self) -> MainScreen:
        """Create the main screen with its data loop."""
        return MainScreen(
            self.source,
            clock=self._clock,
            refresh_interval=self._refresh_interval,
            live=self._live,
            panes=PANES,
        )

    def get_driver_class(self) -> type[Driver]:
        """Use `RestoringLinuxDriver` where Textual would use its Linux driver."""
        driver_class = super().get_driver_class()
        return RestoringLinuxDriver if driver_class is LinuxDriver else driver_class

    def on_load(self) -> None:
        """Route exit signals to `App.exit` before the terminal enters application mode."""
        if self._exit_on_signals:
            install_exit_signals(asyncio.get_running_loop(), self._exit_for_signal)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock of the session: returns UTC epoch seconds."""
        return self._clock

    @property
    def live(self) -> bool:
        """Whether data refreshes on a schedule; False reads at start and on `r` only."""
        return self._live

    @property
    def main_screen(self) -> MainScreen:
        """The main screen, also while an overlay is open."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("the main screen is not mounted; the app is not running")

    def action_help(self) -> None:
        """Open the key help, or close it if it is open."""
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.help_entries()))

    def action_show_pane(self, pane_id: str) -> None:
        """Show a pane of the main screen, closing the help or alert details first."""
        while len(self.screen_stack) > 1 and not isinstance(self.screen, MainScreen):
            self.pop_screen()
        self.main_screen.show_pane(pane_id)

    def help_entries(self) -> list[tuple[str, str]]:
        """Return `(key, description)` for every app and pane binding, in display order."""
        bindings = [binding for binding in self.BINDINGS if isinstance(binding, Binding)]
        for spec in PANES:
            bindings.extend(b for b in spec.pane_class.BINDINGS if isinstance(b, Binding))
        entries: list[tuple[str, str]] = []
        for binding in bindings:
            entry = (self.get_key_display(binding), binding.tooltip or binding.description)
            if entry not in entries:
                entries.append(entry)
        entries.append(_TABLE_KEYS)
        entries.append(("escape", "Close this help"))
        return entries

    def _exit_for_signal(self, signum: int) -> None:
        self.exit(return_code=128 + signum)


def create_app(
    config: Config,
    data_dir: Path,
    *,
    source: ConsoleSource | None = None,
    live: bool = True,
    clock: Callable[[], float] | None = None,
    exit_on_signals: bool = False,
    backups: BackupSource | None = None,
) -> AtlasApp:
    """Build the console app.

    Args:
        config: The loaded config; `metrics_refresh_interval` sets the refresh period.
        data_dir: The data directory whose store a `LocalSource` reads.
        source: The data source; None creates a `LocalSource` for `data_dir`, which
            collects in-process (embedded mode) when no live daemon writes the store.
        live: When False, data is read once at start and on `r` only; snapshot tests
            and screenshots use it with a fixed `clock`.
        clock: Returns UTC epoch seconds; defaults to `time.time`.
        exit_on_signals: Install SIGHUP, SIGTERM and SIGINT handlers that exit
            cleanly; only for a real terminal session on the main thread.
        backups: The Backups pane's source; None reads the repository and run
            records of this host (`LocalBackups`) when the source is a `LocalSource`,
            and otherwise, as with `--connect`, shows that backups are visible on
            the daemon host only (`RemoteBackups`).

    Returns:
        The app, not yet running.
    """
    if source is None:
        source = LocalSource(config, data_dir)
    if backups is None and isinstance(source, LocalSource):
        backups = LocalBackups(config, data_dir)
    return AtlasApp(
        source,
        refresh_interval=config.metrics_refresh_interval,
        live=live,
        clock=clock or time.time,
        exit_on_signals=exit_on_signals,
        backups=backups,
    )


def run_console(config: Config, data_dir: Path, source: ConsoleSource | None = None) -> int:
    """Run the console in the current terminal until the user quits or a signal arrives.

    Args:
        config: The loaded config.
        data_dir: The data directory whose store a `LocalSource` reads.
        source: The data source; None reads the local store (see `create_app`).

    Returns:
        The exit status: 0 after `q` or Ctrl+C, 128 + the signal number after a
        signal, 1 if the app failed.
    """
    reset_mouse_modes()
    app = create_app(config, data_dir, source=source, exit_on_signals=True)
    app.run()
    return app.return_code or 0


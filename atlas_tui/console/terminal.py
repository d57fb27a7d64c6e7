"""Terminal state on start and exit: mouse-mode reset, a restoring driver, exit signals.

`run_console` calls `reset_mouse_modes` before Textual starts, so a terminal left in
mouse-tracking mode by an earlier crashed program stops sending reports. The app
uses `RestoringLinuxDriver` in a real terminal and installs `install_exit_signals`
so SIGHUP, SIGTERM and SIGINT end the app through `App.exit`, which lets the driver
restore the terminal.

What Textual 8.2.8's `LinuxDriver` already does on exit: it turns off mouse modes
1000, 1003, 1015 and 1006, bracketed paste, focus events and the kitty keyboard
protocol, leaves the alternate screen and shows the cursor. What it leaves out, and
this module adds:

- Mode 1016 (pixel mouse reports) is turned on for some terminals but never off.
  Mode 1002 may be left on by another program. This module turns both off.
- Its writes go through a queue that a background thread drains, and it restores the
  saved termios attributes (leaves raw mode) without waiting for that queue, and
  writes the alternate-screen and cursor sequences only after that. Mouse reports that
  arrive in that gap are echoed by the shell. Here every sequence is written and
  drained, then pending input is discarded, and only then is raw mode left.
- A write to a terminal that hung up (SSH link gone) raises `OSError` in the writer
  thread, which then dies and leaves later writes blocked on a full queue. The
  stream wrapper here drops such writes instead, so the app can still exit.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import termios
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from textual.drivers.linux_driver import LinuxDriver

if TYPE_CHECKING:
    from textual.app import App

__all__ = [
    "EXIT_SIGNALS",
    "MOUSE_RESET",
    "RestoringLinuxDriver",
    "TerminalStream",
    "install_exit_signals",
    "reset_mouse_modes",
]

MOUSE_RESET = "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l"
"""Sequence that turns off X10/normal, button-event, any-event, SGR and urxvt mouse reporting."""

_EXIT_SEQUENCES = (
    MOUSE_RESET,
    "\x1b[?1016l",  # pixel-position mouse reports
    "\x1b[?2004l",  # bracketed paste
    "\x1b[?1004l",  # focus in/out events
    "\x1b[<u",  # pop the kitty keyboard flags; must precede leaving the alternate screen
    "\x1b[?1049l",  # leave the alternate screen
    "\x1b[?25h",  # show the cursor
)

EXIT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
"""Signals that end the console cleanly; the exit status is 128 + the signal number."""


def reset_mouse_modes(stream: IO[str] | None = None) -> bool:
    """Write `MOUSE_RESET` to the terminal, whatever state an earlier program left.

    Args:
        stream: Where Textual will draw; defaults to `sys.__stderr__`.

    Returns:
        True when the sequence was written; False when the stream is not a terminal
        (output redirected to a file gets no escape sequences) or the write failed.
    """
    target = stream if stream is not None else sys.__stderr__
    if target is None or not target.isatty():
        return False
    try:
        target.write(MOUSE_RESET)
        target.flush()
    except OSError:
        return False
    return True


def install_exit_signals(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]
) -> list[signal.Signals]:
    """Call `on_signal(signum)` on the event loop for each of `EXIT_SIGNALS`.

    `loop.add_signal_handler` runs the callback as a normal loop callback, so it may
    call `App.exit`. The handlers go away when the loop closes.

    Returns:
        The signals that got a handler (none when not on the main thread).
    """
    installed = []
    for signum in EXIT_SIGNALS:
        try:
            loop.add_signal_handler(signum, on_signal, int(signum))
        except (RuntimeError, ValueError):
            # Only the main thread may set signal handlers, so an app run elsewhere gets none.
            continue
        installed.append(signum)
    return installed


class TerminalStream:
    """A text stream wrapper that drops writes once the terminal has hung up."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.lost = False
        """True after a write or flush failed; later writes are dropped."""

    def write(self, text: str) -> int:
        """Write `text`, or drop it if the terminal is gone."""
        if self.lost:
            return 0
        try:
            return self._stream.write(text)
        except OSError:
            self.lost = True
            return 0

    def flush(self) -> None:
        """Flush the stream, or do nothing if the terminal is gone."""
        if self.lost:
            return
        try:
            self._stream.flush()
        except OSError:
            self.lost = True

    def fileno(self) -> int:
        """Return the file descriptor of the wrapped stream."""
        return self._stream.fileno()

    def isatty(self) -> bool:
        """Return whether the wrapped stream is a terminal."""
        return self._stream.isatty()


class RestoringLinuxDriver(LinuxDriver):
    """Textual's Linux driver with the exit order and hang-up handling described above.

    NOTE: this overrides `stop_application_mode` and reads private attributes of
    `LinuxDriver` (`_file`, `_writer_thread`, `attrs_before`) as they are in Textual
    8.2.8, the pinned version. Recheck them when upgrading Textual.
    """

    def __init__(
        self,
        app: App[Any],
        *,
        debug: bool = False,
        mouse: bool = True,
        size: tuple[int, int] | None = None,
    ) -> None:
        """Create the driver; the arguments are those of `LinuxDriver`."""
        super().__init__(app, debug=debug, mouse=mouse, size=size)
        if self._file is not None:
            self._file = TerminalStream(self._file)  # type: ignore[assignment]

    def stop_application_mode(self) -> None:
        """Turn every terminal feature off, wait for the bytes, then leave raw mode."""
        self._disable_bracketed_paste()
        self._enable_line_wrap()
        self._disable_in_band_window_resize()
        self.disable_input()
        for sequence in _EXIT_SEQUENCES:
            self.write(sequence)
        self._drain_output()
        self._discard_pending_input()
        if self.attrs_before is not None:
            try:
                termios.tcsetattr(self.fileno, termios.TCSANOW, self.attrs_before)
            except termios.error:
                pass  # the terminal hung up, so there is no mode left to restore

    def _drain_output(self) -> None:
        # Stopping the writer thread writes everything queued. The later close() stops it
        # again, which is harmless, and start_application_mode creates a new one on resume.
        if self._writer_thread is not None:
            self._writer_thread.stop()
        try:
            termios.tcdrain(self._file.fileno())
        except (termios.error, OSError, ValueError):
            pass

    def _discard_pending_input(self) -> None:
        # Mouse reports sent before the terminal processed the mode reset would
        # otherwise reach the shell as text.
        # NOTE: over a slow link, reports still in flight after this flush can reach
        # the shell. The pty tests cannot reproduce that delay.
        try:
            termios.tcflush(self.fileno, termios.TCIFLUSH)
        except termios.error:
            pass

"""Run the console in a real pseudo-terminal and record everything it writes.

`pty.fork` makes the child a session leader with the pty as its controlling
terminal, like a login over SSH: closing the master side sends it SIGHUP and makes
its terminal writes fail, as a dropped link does.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

LAUNCHER = """
import sys
from pathlib import Path
from atlas_tui.config import Config
from atlas_tui.console.app import run_console
sys.stderr.write(sys.argv[2])
sys.stderr.flush()
sys.exit(run_console(Config(), Path(sys.argv[1])))
"""
"""Child program: writes argv[2] raw to the terminal (to fake a crashed program), then runs the console."""

_SCRUBBED = ("NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_COLOR_SYSTEM", "TEXTUAL_DRIVER", "TEXTUAL_PRESS", "TEXTUAL_ALLOW_SIGNALS")


class ConsoleInPty:
    """The console as a child process on a pty of 80x24 with TERM=xterm-256color."""

    def __init__(self, data_dir: Path, *, preamble: str = "", size: tuple[int, int] = (80, 24)) -> None:
        env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED}
        env["TERM"] = "xterm-256color"
        pid, master = pty.fork()
        if pid == 0:  # pragma: no cover - the child replaces itself with Python at once
            os.execve(sys.executable, [sys.executable, "-c", LAUNCHER, str(data_dir), preamble], env)
        self.pid = pid
        self.master = master
        self.output = bytearray()
        self.status: int | None = None
        self._lock = threading.Lock()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self.master, 65536)
            except OSError:
                return  # EIO once the child closed the terminal, EBADF once we closed it
            if not chunk:
                return
            with self._lock:
                self.output.extend(chunk)

    def text(self) -> bytes:
        """Return a copy of everything the console wrote so far."""
        with self._lock:
            return bytes(self.output)

    def wait_for_output(self, marker: bytes, timeout: float = 10.0) -> bool:
        """Wait until `marker` appears in the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.text():
                return True
            time.sleep(0.02)
        return False

    def send(self, data: bytes) -> None:
        """Type `data` into the terminal."""
        os.write(self.master, data)

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the console process."""
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds for the process to exit; return its exit code or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
                self._reader.join(1.0)
                return self.status
            time.sleep(0.01)
        return None

    def local_modes(self) -> int:
        """Return the pty's termios local-mode flags (ECHO, ICANON, ...)."""
        return termios.tcgetattr(self.master)[3]

    def hang_up(self) -> None:
        """Close the master side, as a dropped SSH connection does."""
        os.close(self.master)
        self.master = -1

    def kill(self) -> None:
        """Kill the process if it is still running and release the pty."""
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

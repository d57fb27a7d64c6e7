"""The console restores the terminal on every exit path, tested in a real pty.

Each test starts the console (embedded collection on a fresh data directory) on an
80x24 pty with TERM=xterm-256color and checks the bytes it wrote: after the last
mouse-mode enable come the disables, bracketed paste off, the alternate screen left
and the cursor shown; there is no traceback; the exit is quick.
"""

from __future__ import annotations

import signal
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.console.terminal import MOUSE_RESET
from tests.console.pty_harness import ConsoleInPty

READY = b"Metrics"
MOUSE_MOVES = b"\x1b[<35;10;5M\x1b[<35;11;5M\x1b[<35;12;6M" * 5
PRE_ENABLE = "\x1b[?1000h\x1b[?1003h\x1b[?1006h"
RESTORE = (b"\x1b[?1000l", b"\x1b[?1002l", b"\x1b[?1003l", b"\x1b[?1006l", b"\x1b[?1015l", b"\x1b[?2004l", b"\x1b[?1049l", b"\x1b[?25h")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleInPty]:
    """A console running on a pty until its UI is drawn."""
    process = ConsoleInPty(tmp_path / "data")
    try:
        assert process.wait_for_output(READY), process.text()[-2000:]
        yield process
    finally:
        process.kill()


def _tail_after_last_enable(output: bytes) -> bytes:
    last_enable = max(output.rfind(b"\x1b[?1003h"), output.rfind(b"\x1b[?1000h"))
    assert last_enable >= 0, "the console never enabled mouse reporting"
    return output[last_enable:]


def _assert_restored(output: bytes) -> None:
    tail = _tail_after_last_enable(output)
    for sequence in RESTORE:
        assert sequence in tail, f"{sequence!r} missing after the last mouse enable"
    assert tail.rfind(b"\x1b[?1003l") < tail.rfind(b"\x1b[?1049l"), "mouse still on when leaving the alt screen"


def test_quit_with_mouse_moves(console: ConsoleInPty) -> None:
    """Mouse reports followed by `q` exit 0, restore the terminal and echo no report."""
    console.send(MOUSE_MOVES)
    time.sleep(0.2)
    console.send(b"q")

    assert console.wait_exit(5.0) == 0
    output = console.text()
    _assert_restored(output)
    assert b"35;12;6M" not in output
    assert b"Traceback" not in output
    assert console.local_modes() & termios.ECHO
    assert console.local_modes() & termios.ICANON


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_exits_clean(console: ConsoleInPty, signum: signal.Signals, status: int) -> None:
    """SIGHUP, SIGTERM and SIGINT end the console within 2 s, restored and without a traceback."""
    console.send(MOUSE_MOVES)
    started = time.monotonic()
    console.signal(signum)

    assert console.wait_exit(2.0) == status
    assert time.monotonic() - started < 2.0
    output = console.text()
    _assert_restored(output)
    assert b"Traceback" not in output


def test_hang_up_closed_terminal(console: ConsoleInPty) -> None:
    """Closing the terminal (a dropped SSH link) ends the console within 2 s."""
    console.hang_up()
    assert console.wait_exit(2.0) is not None


def test_pre_enabled_tracking_reset(tmp_path: Path) -> None:
    """Tracking left on by a crashed program is reset before the UI starts, and `q` exits clean."""
    process = ConsoleInPty(tmp_path / "data", preamble=PRE_ENABLE)
    try:
        assert process.wait_for_output(READY)
        process.send(MOUSE_MOVES + b"q")
        assert process.wait_exit(5.0) == 0
    finally:
        process.kill()

    output = process.text()
    reset_at = output.find(MOUSE_RESET.encode())
    assert output.find(PRE_ENABLE.encode()) < reset_at < output.find(b"\x1b[?1049h")
    _assert_restored(output)
    assert b"Traceback" not in output

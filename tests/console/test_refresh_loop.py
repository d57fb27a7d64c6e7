"""Tests of the console data loop, run in a plain thread with the fake source."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from atlas_tui.console.refresh_loop import RefreshLoop
from atlas_tui.console.source import ConsoleSnapshot
from tests.console.fake_source import NOW, FakeSource


def _eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@contextmanager
def _running(
    source: FakeSource, *, live: bool, interval: float = 60.0
) -> Iterator[tuple[RefreshLoop, list[ConsoleSnapshot], list[str]]]:
    snapshots: list[ConsoleSnapshot] = []
    errors: list[str] = []
    loop = RefreshLoop(
        source,
        clock=lambda: NOW,
        interval=interval,
        live=live,
        window_seconds=300.0,
        publish=snapshots.append,
        report_error=errors.append,
    )
    cancelled = threading.Event()
    thread = threading.Thread(target=loop.run, args=(cancelled.is_set,))
    thread.start()
    try:
        yield loop, snapshots, errors
    finally:
        cancelled.set()
        thread.join(2.0)


def test_loop_publishes_first_snapshot() -> None:
    """The loop starts the source and publishes one snapshot without being asked."""
    source = FakeSource()
    with _running(source, live=False) as (_loop, snapshots, _errors):
        assert _eventually(lambda: len(snapshots) == 1)
    assert source.started.is_set()


def test_loop_not_live_waits_for_request() -> None:
    """Without live refresh, a second snapshot comes only after `request`."""
    source = FakeSource()
    with _running(source, live=False, interval=0.05) as (loop, snapshots, _errors):
        assert _eventually(lambda: len(snapshots) == 1)
        time.sleep(0.3)
        assert len(snapshots) == 1
        loop.request(3600.0)
        assert _eventually(lambda: len(snapshots) == 2)
    assert snapshots[1].window_seconds == 3600.0


def test_loop_live_refreshes_on_interval() -> None:
    """With live refresh, snapshots keep coming at the interval."""
    with _running(FakeSource(), live=True, interval=0.1) as (_loop, snapshots, _errors):
        assert _eventually(lambda: len(snapshots) >= 3)


def test_loop_closes_source_on_cancel() -> None:
    """Cancelling the loop closes the source within the poll slice."""
    source = FakeSource()
    with _running(source, live=True, interval=60.0) as (_loop, snapshots, _errors):
        assert _eventually(lambda: len(snapshots) == 1)
        started = time.monotonic()
    assert source.closed.wait(1.0)
    assert time.monotonic() - started < 1.0


def test_loop_reports_repeated_error_once() -> None:
    """A failing source is reported once per distinct message and the loop goes on."""
    source = FakeSource(fail_with=OSError("disk I/O error"))
    with _running(source, live=True, interval=0.05) as (_loop, snapshots, errors):
        assert _eventually(lambda: len(errors) == 1)
        time.sleep(0.3)
        source.fail_with = None
        assert _eventually(lambda: len(snapshots) >= 1)
    assert errors == ["refresh failed: disk I/O error"]

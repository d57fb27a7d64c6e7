"""Tests of the console data loop, run in a plain thread with the fake source."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.console.alert_models import AlertsSnapshot
from atlas_tui.console.refresh_loop import RefreshLoop, SourceCall, SourceUnavailableError
from atlas_tui.console.source import ConsoleSnapshot, ConsoleSource
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
        publish_alerts=lambda _alerts: None,
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


@contextmanager
def _running_alerts(
    source: FakeSource, *, live: bool, interval: float = 60.0, alerts_interval: float = 2.0
) -> Iterator[tuple[RefreshLoop, list[ConsoleSnapshot], list[AlertsSnapshot], list[str]]]:
    snapshots: list[ConsoleSnapshot] = []
    alerts: list[AlertsSnapshot] = []
    errors: list[str] = []
    loop = RefreshLoop(
        source,
        clock=lambda: NOW,
        interval=interval,
        live=live,
        window_seconds=300.0,
        publish=snapshots.append,
        publish_alerts=alerts.append,
        report_error=errors.append,
        alerts_interval=alerts_interval,
    )
    cancelled = threading.Event()
    thread = threading.Thread(target=loop.run, args=(cancelled.is_set,))
    thread.start()
    try:
        yield loop, snapshots, alerts, errors
    finally:
        cancelled.set()
        thread.join(2.0)


def _call(name: str, run: Callable[[ConsoleSource, float], object]) -> tuple[SourceCall, list[tuple[object, Exception | None]]]:
    outcomes: list[tuple[object, Exception | None]] = []
    return SourceCall(name, run, lambda result, error: outcomes.append((result, error))), outcomes


def test_alerts_published_with_snapshot() -> None:
    """Each refresh publishes an alerts read after the snapshot."""
    with _running_alerts(FakeSource(), live=False) as (_loop, snapshots, alerts, _errors):
        assert _eventually(lambda: len(alerts) == 1)
    assert len(snapshots) == 1
    assert alerts[0].counts.critical == 1


def test_alerts_read_between_refreshes() -> None:
    """While live, alerts are read every alerts interval even when the metrics interval is long."""
    with _running_alerts(FakeSource(), live=True, interval=60.0, alerts_interval=0.2) as (_l, snapshots, alerts, _e):
        assert _eventually(lambda: len(alerts) >= 3)
    assert len(snapshots) == 1


def test_call_runs_then_refreshes() -> None:
    """A submitted call runs in the loop thread, gets its result, and a refresh follows."""
    source = FakeSource()
    with _running_alerts(source, live=False) as (loop, snapshots, alerts, _errors):
        assert _eventually(lambda: len(alerts) == 1)
        call, outcomes = _call("ack", lambda src, now: src.acknowledge("alert_1", "note", now))
        loop.submit(call)
        assert _eventually(lambda: len(alerts) == 2)
    assert outcomes[0][1] is None
    assert outcomes[0][0].acked_by == "tester"  # type: ignore[union-attr]
    assert source.acks == [("alert_1", "note")]
    assert alerts[1].rows[0].acked_by == "tester"
    assert len(snapshots) == 2


def test_call_error_handed_back() -> None:
    """A refused call hands its error to `done` and the loop keeps running."""
    with _running_alerts(FakeSource(), live=False) as (loop, _snapshots, alerts, errors):
        assert _eventually(lambda: len(alerts) == 1)
        call, outcomes = _call("unack", lambda src, now: src.unacknowledge("alert_1", now))
        loop.submit(call)
        assert _eventually(lambda: len(outcomes) == 1)
    assert isinstance(outcomes[0][1], AlertStateError)
    assert errors == []


def test_call_before_start_fails() -> None:
    """A call while the source cannot start fails with `SourceUnavailableError`."""
    source = FakeSource()
    source.start = _refuse_start  # type: ignore[method-assign]
    with _running_alerts(source, live=False) as (loop, _snapshots, _alerts, errors):
        assert _eventually(lambda: len(errors) == 1)
        call, outcomes = _call("detail", lambda src, now: src.alert_detail("alert_1", now))
        loop.submit(call)
        assert _eventually(lambda: len(outcomes) == 1)
    assert isinstance(outcomes[0][1], SourceUnavailableError)
    assert "store locked" in str(outcomes[0][1])


def test_alerts_failure_keeps_metrics() -> None:
    """A failing alerts read is reported once; snapshots are still published."""
    source = FakeSource()
    source.alerts = _refuse_alerts  # type: ignore[method-assign]
    with _running_alerts(source, live=True, interval=0.1, alerts_interval=0.1) as (_l, snapshots, _a, errors):
        assert _eventually(lambda: len(snapshots) >= 3)
    assert errors == ["alerts refresh failed: no such table: alert_instances"]


def _refuse_start(now: float) -> None:
    raise OSError("store locked")


def _refuse_alerts(now: float) -> AlertsSnapshot:
    raise sqlite3.OperationalError("no such table: alert_instances")

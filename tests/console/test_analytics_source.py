"""Tests of the analytics reads: `LocalSource.analytics` on a real store, the data loop's schedule, the views."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from atlas_tui.config import Config
from atlas_tui.console.analytics_models import EMPTY_TEXT, AnalyticsRead
from atlas_tui.console.analytics_presentation import dau_chart_view, ingest_section, release_section
from atlas_tui.console.demo_alerts import demo_config
from atlas_tui.console.demo_store import DEMO_NOW, build_demo_store
from atlas_tui.console.local_analytics import find_build_summary
from atlas_tui.console.local_source import LocalSource
from atlas_tui.console.refresh_loop import RefreshLoop
from tests.console.analytics_fixtures import sample_summary
from tests.console.fake_source import NOW, FakeSource

DAY = 86400.0


def _eventually(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _read(config: Config, data_dir: Path, range_seconds: float, now: float) -> AnalyticsRead:
    source = LocalSource(config, data_dir, embedded=False)
    source.start(now)
    try:
        return source.analytics(range_seconds, now)
    finally:
        source.close()


class TestLocalSource:
    """`LocalSource.analytics` over a real SQLite store."""

    def test_no_apps_is_empty(self, tmp_path: Path) -> None:
        """Without `analytics.apps` the read has no summary and the setup hint."""
        read = _read(Config(), tmp_path, DAY, NOW)
        assert read.summary is None
        assert read.empty_reason == EMPTY_TEXT

    def test_no_events_is_empty(self, tmp_path: Path) -> None:
        """An app configured but nothing received yet still gives the setup hint."""
        read = _read(demo_config(), tmp_path, DAY, NOW)
        assert read.summary is None
        assert read.empty_reason == EMPTY_TEXT

    def test_demo_store_summary(self, tmp_path: Path) -> None:
        """The demo store's ingested events give a summary and a 30-day DAU series."""
        build_demo_store(tmp_path)
        read = _read(demo_config(), tmp_path, 7 * DAY, DEMO_NOW)
        assert read.summary is not None
        assert read.summary.ingest.accepted > 0
        assert read.summary.ingest.duplicate > 0
        assert len(read.daily) >= 30
        assert read.daily[-1].active_devices > 0

    def test_reports_found(self) -> None:
        """The reports module's `build_summary` is found at call time."""
        assert find_build_summary() is not None


class TestRefreshLoop:
    """Analytics reads in the data loop."""

    def _run(self, source: FakeSource, reads: list[AnalyticsRead]) -> tuple[RefreshLoop, threading.Event, threading.Thread]:
        loop = RefreshLoop(
            source,
            clock=lambda: NOW,
            interval=60.0,
            live=False,
            window_seconds=300.0,
            publish=lambda _snapshot: None,
            publish_alerts=lambda _alerts: None,
            report_error=lambda _error: None,
            publish_analytics=reads.append,
        )
        cancelled = threading.Event()
        thread = threading.Thread(target=loop.run, args=(cancelled.is_set,))
        thread.start()
        return loop, cancelled, thread

    def test_first_read_and_new_range(self) -> None:
        """The loop reads analytics at start and again for a requested range."""
        source = FakeSource()
        reads: list[AnalyticsRead] = []
        loop, cancelled, thread = self._run(source, reads)
        try:
            assert _eventually(lambda: len(reads) == 1)
            loop.request(analytics_seconds=7 * DAY)
            assert _eventually(lambda: len(reads) == 2)
        finally:
            cancelled.set()
            thread.join(2.0)
        assert reads[0].range_seconds == DAY
        assert reads[1].range_seconds == 7 * DAY

    def test_failure_keeps_loop(self) -> None:
        """A failing analytics read is reported and the next request reads again."""
        source = FakeSource()
        calls: list[float] = []

        def broken(range_seconds: float, now: float) -> AnalyticsRead:
            calls.append(range_seconds)
            raise RuntimeError("report failed")

        source.analytics = broken  # type: ignore[method-assign]
        reads: list[AnalyticsRead] = []
        loop, cancelled, thread = self._run(source, reads)
        try:
            assert _eventually(lambda: len(calls) == 1)
            loop.request()
            assert _eventually(lambda: len(calls) == 2)
        finally:
            cancelled.set()
            thread.join(2.0)
        assert reads == []


class TestPresentation:
    """Text and status of the pane's views."""

    def test_release_status(self) -> None:
        """A release at 99.7 % crash-free is ok and one at 97.2 % is critical."""
        lines = release_section(sample_summary()).lines
        assert [line.status for line in lines[1:]] == ["ok", "critical"]

    def test_stale_last_event(self) -> None:
        """A version silent for an hour is marked as a warning."""
        lines = ingest_section(sample_summary(), NOW).lines
        assert lines[-1].status == "warning"
        assert lines[-2].status == "plain"

    def test_chart_ticks(self) -> None:
        """The chart labels the first, middle and last day and tops the axis at a round number."""
        summary = sample_summary()
        view = dau_chart_view(AnalyticsRead(DAY, NOW, summary, daily=tuple(summary.daily)))
        assert [label for _, label in view.x_ticks] == ["06-01", "06-08", "06-15"]
        assert view.y_range == (0.0, 200.0)

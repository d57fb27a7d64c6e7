"""The app_health collector: samples from stored sessions, registration, and alert rules over them."""

from __future__ import annotations

from pathlib import Path

from atlas_tui.alerts.evaluate import ObservationResult, StoreQuery, evaluate
from atlas_tui.alerts.grammar import parse_condition
from atlas_tui.cli_alerts import check_alerting
from atlas_tui.collection import build_collectors
from atlas_tui.config import Config
from collectors.app_health import AppHealthCollector
from storage.db import open_store
from storage.metrics import write_samples
from tests.analytics.conftest import analytics_config
from tests.analytics.report_events import event, session, store

NOW = 1_780_000_000.0


def fill(data_dir: Path) -> None:
    """Store 10 sessions of 2.3.0 on android in the last day, 1 crashed, plus app starts."""
    conn = open_store(data_dir)
    try:
        rows = []
        for index in range(10):
            rows += session(f"d{index}", f"s{index}", NOW - 7200 + index * 60, end=index != 0, fatal=index == 0)
        rows += [event("performance_metric", NOW - 600 + i, name="app_start_time", value=float(100 * (i + 1))) for i in range(20)]
        store(conn, rows)
    finally:
        conn.close()


async def test_collector_samples(data_dir: Path) -> None:
    """Crash-free sessions and app start p95 are reported per app, platform and version."""
    fill(data_dir)
    samples = await AppHealthCollector(data_dir).collect(NOW)
    by_key = {(s.name, s.labels): s.value for s in samples}
    base = (("app", "atlas-wallet"), ("platform", "android"))
    assert by_key[("app_crash_free_sessions", base)] == 90.0
    assert by_key[("app_crash_free_sessions", (*base, ("version", "2.3.0")))] == 90.0
    assert by_key[("app_start_time_p95_ms", base)] == 1900.0
    assert ("analytics_events_per_minute", base) in by_key


async def test_collector_without_store(tmp_path: Path) -> None:
    """Without a store file the collector reports nothing and creates nothing."""
    assert await AppHealthCollector(tmp_path).collect(NOW) == []
    assert list(tmp_path.iterdir()) == []


def test_registered_with_apps(tmp_path: Path) -> None:
    """build_collectors adds app_health only when analytics apps are configured."""
    with_apps, _ = build_collectors(analytics_config(), tmp_path, list)
    without, _ = build_collectors(Config(), tmp_path, list)
    assert "app_health" in [c.name for c in with_apps]
    assert "app_health" not in [c.name for c in without]


def test_config_check_knows_metric() -> None:
    """A rule on app_crash_free_sessions passes the config check without warnings."""
    config = Config.model_validate({"alert_rules": [{"id": "crash_free", "condition": "app_crash_free_sessions < 99.5"}]})
    check = check_alerting(config)
    assert check.errors == []
    assert check.warnings == []


async def test_rule_fires_on_stored_series(data_dir: Path) -> None:
    """`app_crash_free_sessions < 99.5` is true for the release at 90 %."""
    fill(data_dir)
    samples = await AppHealthCollector(data_dir).collect(NOW)
    conn = open_store(data_dir)
    try:
        write_samples(conn, samples)
        result = evaluate(parse_condition('app_crash_free_sessions{version="2.3.0"} < 99.5'), StoreQuery(conn), NOW)
    finally:
        conn.close()
    assert [obs.result for obs in result.observations] == [ObservationResult.TRUE]
    assert result.observations[0].value == 90.0

"""The Prometheus exposition: names, units, labels, staleness, own series and the `/metrics` route."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atlas_tui.api.prometheus import (
    CONTENT_TYPE,
    DEFAULT_STALE_AFTER,
    ProcessSnapshot,
    read_process,
    render_exposition,
    stale_limit,
)
from atlas_tui.api.prometheus_names import exposed_metric, label_name
from collectors.base import CollectorStatus, make_labels
from storage.metrics import SeriesValue
from tests.api.conftest import NOW
from tests.e2e.monitoring import require_binary

PROCESS = ProcessSnapshot(
    cpu_seconds=1.5, resident_bytes=50_000_000, virtual_bytes=90_000_000, start_time=NOW - 60.0,
    open_fds=12, max_fds=1024,
)


def series(name: str, value: float, age: float = 1.0, **labels: str) -> SeriesValue:
    """Return a latest value of `name` written `age` seconds before `NOW`."""
    return SeriesValue(name, make_labels(labels), NOW - age, value)


def render(*rows: SeriesValue, process: ProcessSnapshot | None = PROCESS) -> str:
    """Render `rows` at `NOW` with the default stale limit and version 1.2.3."""
    return render_exposition(rows, now=NOW, stale_after=DEFAULT_STALE_AFTER, version="1.2.3", process=process)


def sample_lines(text: str) -> list[str]:
    """Return the lines that carry a value, without HELP and TYPE lines."""
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(
    ("name", "value", "exposed", "expected"),
    [
        ("cpu_usage", 12.5, "atlas_cpu_usage_ratio", 0.125),
        ("disk_usage", 55.5, "atlas_disk_usage_ratio", 0.555),
        ("daemon_cpu_percent", 150.0, "atlas_daemon_cpu_usage_ratio", 1.5),
        ("probe_latency_ms", 12.0, "atlas_probe_latency_seconds", 0.012),
        ("collector_duration_ms", 250.0, "atlas_collector_duration_seconds", 0.25),
        ("tls_cert_days_left", 2.0, "atlas_tls_cert_remaining_seconds", 172800.0),
        ("cpu_frequency_mhz", 2400.0, "atlas_cpu_frequency_hertz", 2.4e9),
        ("analytics_events_per_minute", 120.0, "atlas_analytics_events_per_second", 2.0),
        ("store_wal_bytes", 4096.0, "atlas_store_wal_bytes", 4096.0),
        ("node_head_age_seconds", 7.0, "atlas_node_head_age_seconds", 7.0),
        ("load_1m", 0.75, "atlas_load_1m", 0.75),
        ("process_count", 212.0, "atlas_processes", 212.0),
        ("node_peer_count", 8.0, "atlas_node_peers", 8.0),
        ("jobs_count", 4.0, "atlas_jobs_count_value", 4.0),
        ("bytes-total", 4.0, "atlas_bytes_total_value", 4.0),
        ("backup_last_success_age_hours", 2.0, "atlas_backup_last_success_age_seconds", 7200.0),
        ("queue_wait_percent", 50.0, "atlas_queue_wait_ratio", 0.5),
        ("brand_new_metric", 3.0, "atlas_brand_new_metric", 3.0),
    ],
)
def test_names_and_units(name: str, value: float, exposed: str, expected: float) -> None:
    """Each ATLAS name gets the `atlas_` prefix, a base-unit suffix and a value in that unit."""
    metric = exposed_metric(name)

    assert metric.name == exposed
    assert metric.convert(value) == pytest.approx(expected)


def test_invalid_metric_name_made_valid() -> None:
    """Characters Prometheus does not allow in a metric name become `_`."""
    assert exposed_metric("weird-name.x").name == "atlas_weird_name_x"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mount", "mount"), ("team-name", "team_name"), ("1st", "_1st"), ("__meta", "label__meta"), ("", "_"),
        ("le", "label_le"), ("quantile", "label_quantile"),
    ],
)
def test_label_names(name: str, expected: str) -> None:
    """Label names are made valid and kept out of the `__` namespace Prometheus reserves."""
    assert label_name(name) == expected


def test_family_header_and_sample() -> None:
    """A series gets HELP and TYPE lines, then its converted value without a timestamp."""
    text = render(series("cpu_usage", 12.5))

    assert "# HELP atlas_cpu_usage_ratio Share of CPU time in use across all cores, 0 to 1.\n" in text
    assert "# TYPE atlas_cpu_usage_ratio gauge\natlas_cpu_usage_ratio 0.125\n" in text


def test_labels_kept_sorted_and_escaped() -> None:
    """Labels are kept, sorted by name, with backslash, quote and line feed escaped."""
    text = render(series("disk_usage", 50.0, mount='/mnt/a"b\\c\nd', device="sda1"))

    assert 'atlas_disk_usage_ratio{device="sda1",mount="/mnt/a\\"b\\\\c\\nd"} 0.5' in sample_lines(text)


def test_series_sorted_by_labels() -> None:
    """The series of one family are listed together, ordered by their labels."""
    text = render(series("disk_usage", 80.0, mount="/var"), series("disk_usage", 55.5, mount="/"))

    lines = [line for line in sample_lines(text) if line.startswith("atlas_disk_usage_ratio")]
    assert lines == ['atlas_disk_usage_ratio{mount="/"} 0.555', 'atlas_disk_usage_ratio{mount="/var"} 0.8']
    assert text.count("# TYPE atlas_disk_usage_ratio gauge") == 1


def test_stale_series_left_out() -> None:
    """A series older than the stale limit is not shown, and the stale count includes it."""
    text = render(
        series("disk_usage", 50.0, age=DEFAULT_STALE_AFTER + 1.0, mount="/old"),
        series("disk_usage", 40.0, age=DEFAULT_STALE_AFTER - 1.0, mount="/new"),
    )

    assert "/old" not in text
    assert 'atlas_disk_usage_ratio{mount="/new"} 0.4' in sample_lines(text)
    assert "atlas_exposition_stale_series 1" in sample_lines(text)


def test_duplicate_after_sanitising_keeps_first() -> None:
    """Two series that map to one name and label set appear once, the first one kept."""
    text = render(series("a-b", 1.0), series("a.b", 2.0))

    assert [line for line in sample_lines(text) if line.startswith("atlas_a_b")] == ["atlas_a_b 1"]


def test_build_info_and_process_series() -> None:
    """The daemon's version and its process resources are exposed under client-library names."""
    lines = sample_lines(render())

    assert 'atlas_build_info{version="1.2.3"} 1' in lines
    assert "process_cpu_seconds_total 1.5" in lines
    assert "process_resident_memory_bytes 50000000" in lines
    assert "process_virtual_memory_bytes 90000000" in lines
    assert f"process_start_time_seconds {int(NOW - 60.0)}" in lines
    assert "process_open_fds 12" in lines
    assert "process_max_fds 1024" in lines


def test_process_counter_type() -> None:
    """CPU seconds are a counter with the `_total` suffix; memory is a gauge."""
    text = render()

    assert "# TYPE process_cpu_seconds_total counter" in text
    assert "# TYPE process_resident_memory_bytes gauge" in text


def test_no_process_snapshot() -> None:
    """Without a process snapshot the `process_*` families are left out."""
    assert "process_" not in render(series("cpu_usage", 1.0), process=None)


def test_read_process_this_process() -> None:
    """Reading this process gives positive memory and a start time in the past."""
    snapshot = read_process()

    assert snapshot is not None
    assert snapshot.resident_bytes > 0
    assert snapshot.cpu_seconds >= 0
    assert snapshot.open_fds is not None and snapshot.open_fds > 0


def test_stale_limit_follows_slowest_collector() -> None:
    """The stale limit is 5 minutes, or three intervals of a slower collector."""
    fast = CollectorStatus(name="system", interval=5.0)
    slow = CollectorStatus(name="probe:daily", interval=600.0)

    assert stale_limit([]) == DEFAULT_STALE_AFTER
    assert stale_limit([fast]) == DEFAULT_STALE_AFTER
    assert stale_limit([fast, slow]) == 1800.0


def test_promtool_accepts_rendering() -> None:
    """`promtool check metrics` finds no format or naming problem in a rendering of every known metric."""
    promtool = require_binary("promtool", "prometheus")
    rows = [
        series(name, 1.0, **labels)
        for name, labels in [
            ("cpu_usage", {}), ("cpu_core_usage", {"cpu": "0"}), ("disk_usage", {"mount": "/"}),
            ("probe_latency_ms", {"target": "shop"}), ("tls_cert_days_left", {"target": "shop"}),
            ("node_rpc_latency_ms", {"node": "geth"}), ("app_start_time_p95_ms", {"app": "a", "platform": "ios"}),
            ("temperature_celsius", {"sensor": "core 0"}), ("weird-name", {"bad label": 'x"y'}),
            ("process_count", {}), ("node_peer_count", {"node": "geth"}), ("jobs_count", {"le": "1"}),
            ("errors_total", {"quantile": "0.5"}),
        ]
    ]

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=render(*rows), capture_output=True, text=True, timeout=30
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


async def test_route_serves_exposition(serve, data_dir: Path) -> None:
    """GET /metrics returns the text format 0.0.4 with the fixture store's series."""
    client = await serve(data_dir)

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    lines = sample_lines(response.text)
    assert "atlas_cpu_usage_ratio 0.12" in lines
    assert 'atlas_disk_usage_ratio{mount="/var"} 0.8' in lines
    assert 'atlas_build_info{version="9.9.9"} 1' in lines
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)


async def test_route_without_store(serve, tmp_path: Path) -> None:
    """Without a store the route returns 503 rather than an empty exposition."""
    client = await serve(tmp_path / "missing")

    response = await client.get("/metrics")

    assert response.status_code == 503


async def test_route_needs_token(serve, data_dir: Path) -> None:
    """GET /metrics without a bearer token is rejected with 401, like every API route."""
    client = await serve(data_dir, token=None)

    response = await client.get("/metrics")

    assert response.status_code == 401

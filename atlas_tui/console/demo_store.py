"""A deterministic demo store and the console app that reads it, for screenshots and snapshot tests.

`build_demo_store` fills a fresh data directory with synthetic samples of a
fictional host (`atlas-demo`) over the week before `DEMO_NOW`, with the demo
alerts of `console.demo_alerts`, the analytics events of `console.demo_analytics` and
the backup repository of `console.demo_backups`. It adds a fresh daemon heartbeat, so `LocalSource`
reads it as a running daemon's store and starts no collectors. `create_demo_app` returns the console over that store with a fixed
clock and live refresh off. The same input always gives the same pixels, which is
what `make screenshots` and the snapshot tests need.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

from atlas_tui import __version__
from atlas_tui.console.app import AtlasApp, create_app
from atlas_tui.console.demo_alerts import build_demo_alerts, demo_config
from atlas_tui.console.demo_analytics import build_demo_analytics
from atlas_tui.console.demo_backups import build_demo_backups, demo_backup_config
from atlas_tui.console.local_source import LocalSource
from collectors.base import Sample
from storage.db import open_store
from storage.metrics import update_rollups, write_samples
from storage.status import Heartbeat, write_heartbeat

__all__ = ["DEMO_HOST", "DEMO_MOUNTS", "DEMO_NOW", "build_demo_store", "create_demo_app"]

DEMO_NOW = 1_750_000_000.0
"""The fixed `now` of the demo: 2025-06-15 15:06:40 UTC."""

DEMO_HOST = "atlas-demo"
"""Host name in the demo heartbeat, shown in the header."""

DEMO_MOUNTS = ("/", "/home", "/var/lib/docker")
"""Mounts with disk usage in the demo."""

DEMO_INTERFACES = ("eth0", "wlan0", "lo")
"""Interfaces with network rates in the demo; `lo` is left out of the chart totals."""

_RECENT_SPAN = 2 * 3600.0
_RECENT_STEP = 10.0
_HISTORY_SPAN = 7 * 86400.0
_HISTORY_STEP = 600.0
_SEED = 20250615


def build_demo_store(data_dir: Path, now: float = DEMO_NOW) -> None:
    """Create the store in `data_dir` with a week of synthetic samples, alerts and a live heartbeat.

    Samples are every 10 s for the last two hours and every 10 min before that, and
    rollups are filled up to `now`, so every chart window has data.
    """
    conn = open_store(data_dir)
    try:
        write_samples(conn, list(_demo_samples(now)))
        build_demo_alerts(conn, data_dir, now)
        build_demo_analytics(conn, now)
        build_demo_backups(conn, data_dir, now)
        update_rollups(conn, now)
        write_heartbeat(
            conn,
            Heartbeat(pid=1, host=DEMO_HOST, started_at=now - _HISTORY_SPAN, updated_at=now - 1.0, version=__version__),
        )
    finally:
        conn.close()


def create_demo_app(data_dir: Path, now: float = DEMO_NOW) -> AtlasApp:
    """Return the console reading the demo store and backup repository in `data_dir` at the fixed time `now`."""
    config = demo_config().model_copy(update={"backup": demo_backup_config(data_dir)})
    source = LocalSource(config, data_dir, embedded=False)
    return create_app(config, data_dir, source=source, live=False, clock=lambda: now)


def _demo_times(now: float) -> Iterator[float]:
    ts = now - _HISTORY_SPAN
    while ts < now - _RECENT_SPAN:
        yield ts
        ts += _HISTORY_STEP
    # The newest sample lands 2 s before `now`, as with a collector running every 10 s.
    ts = now - _RECENT_SPAN + 8.0
    while ts < now:
        yield ts
        ts += _RECENT_STEP


def _demo_samples(now: float) -> Iterator[Sample]:
    noise = random.Random(_SEED)
    for ts in _demo_times(now):
        phase = ts / 60.0
        yield Sample.of("cpu_usage", 35 + 20 * math.sin(phase) + noise.uniform(-5, 5), ts)
        for core in range(2):
            yield Sample.of("cpu_core_usage", 30 + 25 * math.sin(phase + core), ts, cpu=str(core))
        yield Sample.of("memory_usage", 52 + 6 * math.sin(ts / 7200.0), ts)
        yield Sample.of("swap_usage", 4 + math.sin(ts / 86400.0), ts)
        yield Sample.of("load_1m", 0.8 + 0.5 * math.sin(phase), ts)
        yield Sample.of("process_count", 212 + round(4 * math.sin(phase)), ts)
        for index, mount in enumerate(DEMO_MOUNTS):
            yield Sample.of("disk_usage", 24 + 27 * index + 0.5 * math.sin(ts / 43200.0), ts, mount=mount)
        for index, interface in enumerate(DEMO_INTERFACES):
            scale = 1_400_000 / (index + 1)
            wave = 1 + math.sin(phase * 1.7 + index)
            yield Sample.of("net_recv_bytes_per_second", scale * wave + noise.uniform(0, 50_000), ts, interface=interface)
            yield Sample.of("net_sent_bytes_per_second", scale * wave / 12, ts, interface=interface)

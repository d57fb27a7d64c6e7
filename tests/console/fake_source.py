"""A deterministic in-memory `ConsoleSource` for console tests.

It implements the console's own interface with fixed, seeded data, so Pilot tests
and snapshots do not depend on this machine's load. Each `snapshot` call advances a
counter, which changes the values so tests can see a refresh land.
"""

from __future__ import annotations

import math
import threading

from collectors.base import make_labels
from atlas_tui.console.source import (
    Chart,
    ChartSeries,
    ConsoleSnapshot,
    HeaderInfo,
    MetricRow,
)

NOW = 1_750_000_000.0
"""Fixed UTC epoch seconds used as `now` by tests."""

DEFAULT_MOUNTS = ("/", "/home", "/var/lib/docker")
DEFAULT_INTERFACES = ("eth0", "wlan0")


class FakeSource:
    """Fixed host data; values depend only on the call count and the timestamps."""

    def __init__(
        self,
        *,
        host: str = "atlas-test",
        mounts: tuple[str, ...] = DEFAULT_MOUNTS,
        interfaces: tuple[str, ...] = DEFAULT_INTERFACES,
        fail_with: Exception | None = None,
    ) -> None:
        self.host = host
        self.mounts = mounts
        self.interfaces = interfaces
        self.fail_with = fail_with
        self.calls = 0
        self.windows: list[float] = []
        self.started = threading.Event()
        self.closed = threading.Event()

    def start(self, now: float) -> None:
        """Record the start."""
        self.started.set()

    def snapshot(self, window_seconds: float, now: float) -> ConsoleSnapshot:
        """Return values that change with each call."""
        if self.fail_with is not None:
            raise self.fail_with
        self.calls += 1
        self.windows.append(window_seconds)
        return ConsoleSnapshot(
            header=HeaderInfo(host=self.host, daemon_state="running", newest_sample_age=2.0),
            window_seconds=window_seconds,
            now=now,
            rows=tuple(self._rows(now)),
            charts=tuple(self._charts(window_seconds, now)),
        )

    def close(self) -> None:
        """Record the close."""
        self.closed.set()

    def _rows(self, now: float) -> list[MetricRow]:
        bump = float(self.calls)
        rows = [
            MetricRow("cpu_usage", (), 20.0 + bump, "percent", now - 2),
            MetricRow("memory_usage", (), 41.5, "percent", now - 2),
            MetricRow("swap_usage", (), 3.0, "percent", now - 2),
            MetricRow("load_1m", (), 0.75, "load", now - 2),
        ]
        for index, mount in enumerate(self.mounts):
            rows.append(MetricRow("disk_usage", make_labels(mount=mount), 30.0 + 20 * index, "percent", now - 2))
        for index, interface in enumerate(self.interfaces):
            labels = make_labels(interface=interface)
            rows.append(MetricRow("net_recv_bytes_per_second", labels, 1_500_000.0 / (index + 1), "bytes_per_second", now - 2))
            rows.append(MetricRow("net_sent_bytes_per_second", labels, 48_000.0 / (index + 1), "bytes_per_second", now - 2))
        return rows

    def _charts(self, window: float, now: float) -> list[Chart]:
        count = 60
        times = [now - window + window * (i + 1) / count for i in range(count)]

        def wave(base: float, amplitude: float, period: float) -> tuple[tuple[float, float], ...]:
            return tuple((ts, base + amplitude * math.sin(i / period)) for i, ts in enumerate(times))

        return [
            Chart("cpu", "CPU", "percent", (ChartSeries("total", "percent", wave(35, 25, 5)),)),
            Chart(
                "memory",
                "Memory",
                "percent",
                (ChartSeries("used", "percent", wave(45, 5, 20)), ChartSeries("swap", "percent", wave(3, 1, 9))),
            ),
            Chart(
                "disk",
                "Disk",
                "percent",
                tuple(ChartSeries(m, "percent", wave(30 + 20 * i, 1, 30)) for i, m in enumerate(self.mounts[:3])),
            ),
            Chart(
                "network",
                "Network",
                "bytes_per_second",
                (
                    ChartSeries("recv", "bytes_per_second", wave(1_200_000, 800_000, 4)),
                    ChartSeries("sent", "bytes_per_second", wave(60_000, 40_000, 6)),
                ),
            ),
        ]

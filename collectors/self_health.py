"""ATLAS's own health as metrics: collector outcomes, store size and daemon resources.

The scheduler runs `SelfHealthCollector` beside the other collectors. It reads the
scheduler's `CollectorStatus` list through the `statuses` callable, stats the store
files in the data directory and reads this process with psutil. Its samples go to the
store like any other, so alert rules can watch them (`collector_up == 0`).

Invariants:

- A collector that has not finished a cycle yet gets no `collector_up` sample.
- `collector_source_available` is 0 for each source a collector reports unavailable
  now, and 1 for a source that was unavailable earlier in this process's life and
  has recovered. Sources that were never unavailable get no sample, because the
  `Collector` protocol only names the unavailable ones.
- A missing `atlas.db-wal` is reported as 0 bytes, which is its real size. A missing
  `atlas.db` gives no `store_db_bytes` sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import psutil

from collectors.base import CollectorStatus, Sample

__all__ = ["DB_FILENAME", "METRICS", "SelfHealthCollector"]

METRICS = frozenset(
    {
        "collector_up",
        "collector_duration_ms",
        "collector_source_available",
        "store_db_bytes",
        "store_wal_bytes",
        "daemon_rss_bytes",
        "daemon_cpu_percent",
    }
)
"""Every metric name this collector can write."""

logger = logging.getLogger(__name__)

DB_FILENAME = "atlas.db"
"""Store file name in the data directory; equal to `storage.db.DB_FILENAME`."""


class SelfHealthCollector:
    """Report collector outcomes, store file sizes and the daemon's memory and CPU.

    Metrics: `collector_up{collector}`, `collector_duration_ms{collector}`,
    `collector_source_available{collector,source}`, `store_db_bytes`,
    `store_wal_bytes`, `daemon_rss_bytes` and `daemon_cpu_percent`. The first cycle
    emits no `daemon_cpu_percent`, because psutil needs two readings for a percentage.
    """

    name = "self_health"

    def __init__(
        self,
        statuses: Callable[[], list[CollectorStatus]],
        data_dir: Path,
        interval: float = 5.0,
        process: psutil.Process | None = None,
    ) -> None:
        """Create the collector.

        Args:
            statuses: Returns the scheduler's current collector statuses.
            data_dir: Directory that contains `atlas.db`.
            interval: Seconds between two cycles.
            process: The process to measure; None measures this process.
        """
        self.interval = interval
        self._statuses = statuses
        self._data_dir = Path(data_dir)
        self._process = process
        self._cpu_primed = False
        self._ever_unavailable: dict[str, set[str]] = {}
        self._unavailable: dict[str, str] = {}

    async def collect(self, now: float) -> list[Sample]:
        """Return this cycle's self-health samples stamped with `now`."""
        samples = self._collector_samples(self._statuses(), now)
        readings, unavailable = await asyncio.to_thread(self._read_resources, now)
        self._log_transitions(unavailable)
        self._unavailable = unavailable
        return samples + readings

    def unavailable_sources(self) -> dict[str, str]:
        """Return the sources skipped in the latest cycle, mapped to the reason."""
        return dict(self._unavailable)

    def _collector_samples(self, statuses: list[CollectorStatus], now: float) -> list[Sample]:
        samples: list[Sample] = []
        for status in statuses:
            if status.last_duration_ms is None:
                continue
            collector = status.name
            up = 0 if status.last_error else 1
            samples.append(Sample.of("collector_up", up, now, collector=collector))
            samples.append(
                Sample.of("collector_duration_ms", status.last_duration_ms, now, collector=collector)
            )
            samples.extend(self._source_samples(status, now))
        return samples

    def _source_samples(self, status: CollectorStatus, now: float) -> list[Sample]:
        down = set(status.unavailable)
        ever_down = self._ever_unavailable.setdefault(status.name, set())
        ever_down |= down
        return [
            Sample.of("collector_source_available", 0 if source in down else 1, now,
                      collector=status.name, source=source)
            for source in sorted(ever_down)
        ]

    def _read_resources(self, now: float) -> tuple[list[Sample], dict[str, str]]:
        """Stat the store files and read this process. It blocks, so it runs in a worker thread."""
        samples: list[Sample] = []
        unavailable: dict[str, str] = {}
        db_path = self._data_dir / DB_FILENAME
        wal_path = self._data_dir / f"{DB_FILENAME}-wal"
        try:
            samples.append(Sample.of("store_db_bytes", db_path.stat().st_size, now))
            samples.append(Sample.of("store_wal_bytes", _size_or_zero(wal_path), now))
        except OSError as err:
            unavailable["store"] = f"{type(err).__name__}: {err}"
        try:
            samples.extend(self._process_samples(now))
        except (OSError, psutil.Error) as err:
            unavailable["process"] = f"{type(err).__name__}: {err}"
        return samples, unavailable

    def _process_samples(self, now: float) -> list[Sample]:
        if self._process is None:
            self._process = psutil.Process()
        samples = [Sample.of("daemon_rss_bytes", self._process.memory_info().rss, now)]
        # psutil's first cpu_percent() call only records a starting point and returns 0.
        percent = self._process.cpu_percent(interval=None)
        if self._cpu_primed:
            samples.append(Sample.of("daemon_cpu_percent", percent, now))
        self._cpu_primed = True
        return samples

    def _log_transitions(self, unavailable: dict[str, str]) -> None:
        for source, reason in unavailable.items():
            if source not in self._unavailable:
                logger.warning(
                    "source unavailable collector=%s source=%s reason=%s", self.name, source, reason
                )
        for source in self._unavailable.keys() - unavailable.keys():
            logger.info("source recovered collector=%s source=%s", self.name, source)


def _size_or_zero(path: Path) -> int:
    """Return the file's size, or 0 when it does not exist.

    SQLite deletes the WAL file when the last connection closes, so a missing WAL is empty.
    """
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0

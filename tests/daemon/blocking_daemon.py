"""Run the `atlas` command with one extra collector whose first cycle blocks a worker thread.

Usage: `python -m tests.daemon.blocking_daemon daemon --data-dir DIR ...`.

The extra collector, `blocking`, sleeps `BLOCK_SECONDS` in `asyncio.to_thread` on its
first cycle, as a psutil call on a hung mount would. The scheduler's timeout
abandons the cycle, but the thread keeps running, so the test can check that the
daemon still exits within its stop budget. Later cycles return at once, so the
default executor is not filled with sleeping threads.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from atlas_tui import collection
from atlas_tui.cli import main
from atlas_tui.config import Config
from collectors.base import Collector, CollectorStatus, Sample

BLOCK_SECONDS = 10.0
"""Seconds the first cycle's worker thread sleeps."""


class BlockingCollector:
    """A collector whose first cycle blocks a worker thread for `BLOCK_SECONDS`."""

    name = "blocking"
    interval = 0.5

    def __init__(self) -> None:
        self.cycles = 0

    async def collect(self, now: float) -> list[Sample]:
        """Block a worker thread on the first cycle; return no samples."""
        self.cycles += 1
        if self.cycles == 1:
            await asyncio.to_thread(time.sleep, BLOCK_SECONDS)
        return []

    def unavailable_sources(self) -> Mapping[str, str]:
        """Report no unavailable sources."""
        return {}


def _with_blocking(
    build: Callable[..., tuple[list[Collector], dict[str, float]]],
) -> Callable[..., tuple[list[Collector], dict[str, float]]]:
    def build_collectors(
        config: Config, data_dir: Path, statuses: Callable[[], list[CollectorStatus]]
    ) -> tuple[list[Collector], dict[str, float]]:
        collectors, timeouts = build(config, data_dir, statuses)
        return [*collectors, BlockingCollector()], timeouts

    return build_collectors


if __name__ == "__main__":
    collection.build_collectors = _with_blocking(collection.build_collectors)  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))

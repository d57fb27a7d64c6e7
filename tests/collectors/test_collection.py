"""CollectionPipeline against a real store in a temporary data directory."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_tui.collection import CollectionPipeline
from atlas_tui.config import Config
from storage.db import connect
from storage.metrics import latest
from storage.status import read_collector_statuses

INTERVAL = 0.2


def fast_config(enabled: bool = True) -> Config:
    return Config.model_validate(
        {
            "collectors": {
                "system": {"interval": INTERVAL, "enabled": enabled},
                "self_health": {"interval": INTERVAL},
            }
        }
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` every 20 ms until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def runs_of(pipeline: CollectionPipeline, name: str) -> int:
    return next((status.runs for status in pipeline.statuses() if status.name == name), 0)


async def run_cycles(pipeline: CollectionPipeline, name: str, cycles: int) -> float:
    """Run the pipeline until `name` has started `cycles` cycles; return how long stop() took."""
    task = asyncio.create_task(pipeline.run())
    await wait_until(lambda: runs_of(pipeline, name) >= cycles)
    began = time.monotonic()
    await asyncio.wait_for(pipeline.stop(), 2.0)
    elapsed = time.monotonic() - began
    await asyncio.wait_for(task, 1.0)
    return elapsed


async def test_pipeline_stores_host_metrics(tmp_path: Path) -> None:
    """A few cycles of the pipeline leave CPU, memory and root disk usage in the store."""
    pipeline = CollectionPipeline(fast_config(), tmp_path)

    await run_cycles(pipeline, "system", 5)

    conn = connect(tmp_path / "atlas.db")
    try:
        names = {value.name for value in latest(conn)}
        root = latest(conn, "disk_usage", {"mount": "/"})
    finally:
        conn.close()
    assert {"cpu_usage", "memory_usage", "process_count"} <= names
    assert {"collector_up", "store_db_bytes", "daemon_rss_bytes"} <= names
    assert len(root) == 1


async def test_pipeline_stores_statuses(tmp_path: Path) -> None:
    """Collector statuses are persisted so other processes can read them.

    Unchanged statuses are rewritten only every 10 s, so the stored run count may lag.
    """
    pipeline = CollectionPipeline(fast_config(), tmp_path)

    await run_cycles(pipeline, "system", 3)

    conn = connect(tmp_path / "atlas.db")
    try:
        stored = {status.name: status for status in read_collector_statuses(conn)}
    finally:
        conn.close()
    assert set(stored) == {"system", "self_health"}
    assert stored["system"].runs >= 1
    assert stored["system"].last_error is None


async def test_pipeline_stop_prompt(tmp_path: Path) -> None:
    """`stop()` returns promptly, after the write in progress has committed."""
    pipeline = CollectionPipeline(fast_config(), tmp_path)

    elapsed = await run_cycles(pipeline, "system", 2)

    assert elapsed < 1.0


async def test_pipeline_latest_samples(tmp_path: Path) -> None:
    """`latest_samples()` contains the newest written sample of each series."""
    pipeline = CollectionPipeline(fast_config(), tmp_path)

    await run_cycles(pipeline, "system", 3)

    names = {sample.name for sample in pipeline.latest_samples()}
    assert {"cpu_usage", "memory_usage", "collector_up"} <= names


async def test_pipeline_system_disabled(tmp_path: Path) -> None:
    """With host metrics switched off, only self-health runs and no host metric is stored."""
    pipeline = CollectionPipeline(fast_config(enabled=False), tmp_path)

    await run_cycles(pipeline, "self_health", 3)

    conn = connect(tmp_path / "atlas.db")
    try:
        names = {value.name for value in latest(conn)}
    finally:
        conn.close()
    assert [status.name for status in pipeline.statuses()] == ["self_health"]
    assert "cpu_usage" not in names
    assert "store_db_bytes" in names


async def test_pipeline_stop_before_run(tmp_path: Path) -> None:
    """Stopping a pipeline that never ran returns at once and opens no store."""
    pipeline = CollectionPipeline(fast_config(), tmp_path)

    await asyncio.wait_for(pipeline.stop(), 1.0)

    assert not (tmp_path / "atlas.db").exists()


async def test_cancelled_write_finishes_first() -> None:
    """Cancelling the writer, even twice, takes effect only after the thread's write has ended."""
    from atlas_tui.collection import _finish_in_thread

    started = threading.Event()
    finished = threading.Event()

    def slow_write() -> None:
        started.set()
        time.sleep(0.2)
        finished.set()

    task = asyncio.create_task(_finish_in_thread(slow_write))
    await asyncio.to_thread(started.wait, 5.0)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()

"""Evaluation against a real SQLite store: the StoreQuery adapter agrees with memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.evaluate import (
    Evaluation,
    ObservationResult,
    SampleQuery,
    StoreQuery,
    evaluate,
)
from atlas_tui.alerts.grammar import Selector, parse_condition
from collectors.base import Sample
from storage import open_store, write_samples

NOW = 1_699_999_200.0


def recorded_samples() -> list[Sample]:
    """Ten minutes of three metrics at 30 s steps, ending 5 s before `NOW`."""
    samples = []
    for step in range(20):
        ts = NOW - 5 - 30 * (19 - step)
        samples.append(Sample.of("cpu_usage", 50.0 + step * 2, ts))
        samples.append(Sample.of("cpu_usage", 10.0 * (step % 3), ts, cpu="0"))
        samples.append(Sample.of("disk_usage", 90.0 + step / 4, ts, mount="/"))
        samples.append(Sample.of("disk_usage", 40.0, ts, mount="/boot"))
        samples.append(Sample.of("net_recv_bytes_per_second", 1000.0 * step, ts, interface="eth0"))
    samples.append(Sample.of("memory_usage", 70.0, NOW - 600))
    return samples


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store in `tmp_path` filled with `recorded_samples`."""
    conn = open_store(tmp_path)
    write_samples(conn, recorded_samples())
    yield conn
    conn.close()


CONDITIONS = [
    "cpu_usage > 80",
    "disk_usage > 90",
    'disk_usage{mount=~"/b.*"} < 50',
    'disk_usage{mount!="/"} < 50',
    "avg(cpu_usage, 5m) > 60",
    "min(disk_usage, 10m) >= 90",
    "max(cpu_usage{cpu='0'}, 2m) == 20",
    "count(disk_usage, 1m) == 2",
    "delta(cpu_usage, 5m) > 10",
    "rate(net_recv_bytes_per_second, 10m) > 30",
    "absent(disk_usage{mount='/'}, 2m)",
    "absent(disk_usage{mount='/gone'}, 2m)",
    "memory_usage > 50",
    "cpu_usge > 1",
    "disk_usage > 90 and cpu_usage > 80",
    "(memory_usage > 50 or cpu_usage > 80) and not disk_usage < 50",
]


def summary(evaluation: Evaluation) -> list[tuple[object, ...]]:
    return [
        (o.labels, str(o.result), None if o.value is None else round(o.value, 6), o.message)
        for o in evaluation.observations
    ]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_store_matches_memory(store: sqlite3.Connection, condition: str) -> None:
    """The store adapter gives the same observations as the in-memory query."""
    expr = parse_condition(condition)
    from_store = evaluate(expr, StoreQuery(store), NOW)
    from_memory = evaluate(expr, SampleQuery(recorded_samples()), NOW)
    assert summary(from_store) == summary(from_memory)
    assert from_store.unknown_metrics == from_memory.unknown_metrics


def test_store_rate_value(store: sqlite3.Connection) -> None:
    """rate() over the store is the per-second change between first and last sample."""
    result = evaluate(parse_condition("rate(net_recv_bytes_per_second, 10m) > 0"), StoreQuery(store), NOW)
    assert result.observations[0].value == pytest.approx(1000.0 / 30.0)


def test_store_unknown_metric(store: sqlite3.Connection) -> None:
    """A metric with no series in the store is reported unknown."""
    result = evaluate(parse_condition("cpu_usge > 1"), StoreQuery(store), NOW)
    assert result.unknown_metrics == frozenset({"cpu_usge"})


def test_store_stale_metric_known(store: sqlite3.Connection) -> None:
    """A stored metric without recent samples is nodata but not unknown."""
    result = evaluate(parse_condition("memory_usage > 1"), StoreQuery(store), NOW)
    assert result.observations[0].result is ObservationResult.NODATA
    assert result.unknown_metrics == frozenset()


def test_store_cache_per_now(store: sqlite3.Connection) -> None:
    """Results are cached for one `now` and refreshed for the next."""
    query = StoreQuery(store)
    selector = Selector("memory_usage")
    assert query.window(selector, "last", 300, NOW) == []
    write_samples(store, [Sample.of("memory_usage", 75.0, NOW)])
    assert query.window(selector, "last", 300, NOW) == []
    assert query.window(selector, "last", 300, NOW + 1)[0].value == 75.0


def test_store_source_errors(store: sqlite3.Connection) -> None:
    """The adapter reports the source failures the daemon passes in."""
    query = StoreQuery(store, source_errors={"cpu_usage": "collector system failed"}.get)
    result = evaluate(parse_condition("cpu_usage > 1"), query, NOW)
    assert result.observations[0].result is ObservationResult.ERROR


def test_store_failure_is_error(tmp_path: Path) -> None:
    """A closed connection becomes a query error, then an error observation."""
    conn = open_store(tmp_path)
    conn.close()
    with pytest.raises(MetricQueryError):
        StoreQuery(conn).window(Selector("cpu_usage"), "last", 60, NOW)
    result = evaluate(parse_condition("cpu_usage > 1"), StoreQuery(conn), NOW)
    assert result.observations[0].result is ObservationResult.ERROR

"""The preloading query returns what `StoreQuery` returns, with two sample reads per cycle."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.evaluate import Evaluation, StoreQuery, evaluate
from atlas_tui.alerts.grammar import Selector, parse_condition
from atlas_tui.alerts.query import PreloadedQuery, metric_requests
from atlas_tui.alerts.sources import SourceHealth
from collectors.base import CollectorStatus, Sample
from storage import open_store, write_samples

from tests.alerts.test_evaluate_store import CONDITIONS, NOW, recorded_samples

EXTRA_CONDITIONS = [
    "last(cpu_usage, 1m) > 0 and avg(cpu_usage, 10m) > 0",
    "count(disk_usage{mount='/'}, 10m) >= 20",
    "min(net_recv_bytes_per_second{interface=~'eth.*'}, 1m) > 0 or memory_usage > 1",
    "delta(disk_usage, 1m) >= 0",
    "max(cpu_usage{cpu!='0'}, 30s) > 0",
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A migrated store filled with the evaluator tests' recorded samples."""
    conn = open_store(tmp_path)
    write_samples(conn, recorded_samples())
    yield conn
    conn.close()


def summary(evaluation: Evaluation) -> list[tuple[object, ...]]:
    """Observations rounded for comparison."""
    return [
        (o.labels, str(o.result), None if o.value is None else round(o.value, 6), o.message)
        for o in evaluation.observations
    ]


@pytest.mark.parametrize("condition", CONDITIONS + EXTRA_CONDITIONS)
def test_preload_matches_store(store: sqlite3.Connection, condition: str) -> None:
    """Every condition evaluates the same over the preloaded samples as over direct queries."""
    expr = parse_condition(condition)
    query = PreloadedQuery(store)
    query.preload([expr], NOW)
    assert summary(evaluate(expr, query, NOW)) == summary(evaluate(expr, StoreQuery(store), NOW))


def test_all_conditions_together(store: sqlite3.Connection) -> None:
    """One preload for every condition matches direct queries for each, in two sample reads."""
    exprs = [parse_condition(c) for c in CONDITIONS + EXTRA_CONDITIONS]
    query = PreloadedQuery(store)
    query.preload(exprs, NOW)
    listed = query.queries
    for expr in exprs:
        assert summary(evaluate(expr, query, NOW)) == summary(evaluate(expr, StoreQuery(store), NOW))
    names = {selector.name for expr in exprs for selector, _, _ in metric_requests(expr)}
    assert listed == len(names) + 2
    assert query.queries == listed


def test_unplanned_request_falls_back(store: sqlite3.Connection) -> None:
    """A request the preload did not plan for is still served from the store."""
    query = PreloadedQuery(store)
    query.preload([parse_condition("cpu_usage > 1")], NOW)
    points = query.window(Selector("disk_usage"), "avg", 600, NOW)
    assert sorted(dict(p.labels)["mount"] for p in points) == ["/", "/boot"]


def test_new_cycle_reads_again(store: sqlite3.Connection) -> None:
    """A preload at a new `now` reads samples written since the previous one."""
    expr = parse_condition("memory_usage > 1")
    query = PreloadedQuery(store)
    query.preload([expr], NOW)
    assert str(evaluate(expr, query, NOW).observations[0].result) == "nodata"
    write_samples(store, [Sample.of("memory_usage", 75.0, NOW + 10)])
    query.preload([expr], NOW + 30)
    assert str(evaluate(expr, query, NOW + 30).observations[0].result) == "true"


def test_source_health_errors(store: sqlite3.Connection) -> None:
    """A failing collector turns the rules over its metrics into errors, and only those."""
    statuses = [
        CollectorStatus(name="system", interval=5.0, unavailable={"virtual_memory": "PermissionError: denied"}),
        CollectorStatus(name="self_health", interval=5.0, last_error="OSError: disk"),
    ]
    health = SourceHealth(statuses)
    assert health("memory_usage") == "source virtual_memory unavailable: PermissionError: denied"
    assert health("store_db_bytes") == "collector self_health failed: OSError: disk"
    assert health("cpu_usage") is None

    expr = parse_condition("memory_usage > 1")
    query = PreloadedQuery(store, health)
    query.preload([expr], NOW)
    assert str(evaluate(expr, query, NOW).observations[0].result) == "error"


def test_closed_store_is_error(tmp_path: Path) -> None:
    """A failing store becomes an error observation, not an exception."""
    conn = open_store(tmp_path)
    conn.close()
    expr = parse_condition("cpu_usage > 1")
    query = PreloadedQuery(conn)
    with pytest.raises(MetricQueryError, match="preloading"):
        query.preload([expr], NOW)
    assert str(evaluate(expr, query, NOW).observations[0].result) == "error"


def test_network_collector_not_mapped() -> None:
    """A failing node collector does not turn metrics of other collectors into errors."""
    health = SourceHealth([CollectorStatus(name="node:eth-main", interval=15.0, last_error="timed out after 10s")])
    assert health("node_block_height") is None
    assert health("cpu_usage") is None

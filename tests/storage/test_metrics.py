"""Tests for `storage.metrics`: batch writes, latest values, window aggregates, series listing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collectors.base import Sample
from storage import DB_FILENAME, connect, latest, list_series, window, write_samples
from tests.storage.conftest import T0


def _fail_on_value(conn: sqlite3.Connection, value: float) -> None:
    """Make every insert of `value` into samples abort, as a disk error would."""
    conn.execute(
        "CREATE TEMP TRIGGER fail_on_value BEFORE INSERT ON samples "
        f"WHEN NEW.value = {value} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )


def test_write_returns_count(store: sqlite3.Connection) -> None:
    """write_samples returns the number of samples stored."""
    batch = [Sample.of("cpu_usage", 1.0, T0), Sample.of("cpu_usage", 2.0, T0, cpu="0")]
    assert write_samples(store, batch) == 2
    assert store.execute("SELECT count(*) FROM samples").fetchone()[0] == 2


def test_write_one_transaction(store: sqlite3.Connection) -> None:
    """A whole batch is written inside one BEGIN IMMEDIATE ... COMMIT."""
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    write_samples(store, [Sample.of("load_1m", float(i), T0, cpu=str(i)) for i in range(50)])
    store.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1


def test_failed_batch_leaves_nothing(store: sqlite3.Connection) -> None:
    """A batch that fails midway stores no sample and no series."""
    _fail_on_value(store, 13.0)
    batch = [Sample.of("disk_usage", v, T0, mount=f"/m{v}") for v in (10.0, 11.0, 12.0, 13.0, 14.0)]

    with pytest.raises(sqlite3.IntegrityError):
        write_samples(store, batch)

    assert store.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM series").fetchone()[0] == 0
    assert not store.in_transaction


def test_failed_batch_caches_no_ids(store: sqlite3.Connection) -> None:
    """Series ids from a rolled-back batch are not cached, so later batches hit the right series."""
    _fail_on_value(store, 13.0)
    with pytest.raises(sqlite3.IntegrityError):
        write_samples(
            store, [Sample.of("swap_usage", 1.0, T0), Sample.of("swap_usage", 13.0, T0 + 1)]
        )
    store.execute("DROP TRIGGER fail_on_value")
    other = Sample.of("memory_usage", 5.0, T0)
    write_samples(store, [other])

    write_samples(store, [Sample.of("swap_usage", 2.0, T0 + 2)])

    values = [(v.name, v.value) for v in latest(store)]
    assert values == [("memory_usage", 5.0), ("swap_usage", 2.0)]


def test_write_after_series_deleted(tmp_path: Path, store: sqlite3.Connection) -> None:
    """A cached series that another connection deleted is recreated instead of failing the batch."""
    write_samples(store, [Sample.of("process_count", 100.0, T0)])
    other = connect(tmp_path / DB_FILENAME)
    other.execute("DELETE FROM samples")
    other.execute("DELETE FROM series")
    other.close()

    assert write_samples(store, [Sample.of("process_count", 101.0, T0 + 5)]) == 1
    assert [v.value for v in latest(store, "process_count")] == [101.0]
    assert store.execute("SELECT id FROM series").fetchall() == [(2,)]


def test_duplicate_timestamp_replaces(store: sqlite3.Connection) -> None:
    """A second write for the same series and timestamp replaces the value."""
    write_samples(store, [Sample.of("cpu_usage", 1.0, T0)])
    write_samples(store, [Sample.of("cpu_usage", 2.0, T0)])
    assert store.execute("SELECT count(*) FROM samples").fetchone()[0] == 1
    assert [v.value for v in latest(store)] == [2.0]


def test_non_finite_dropped(store: sqlite3.Connection) -> None:
    """NaN and infinite values are dropped and the rest of the batch is stored."""
    batch = [
        Sample.of("cpu_usage", float("nan"), T0),
        Sample.of("cpu_usage", float("inf"), T0 + 1),
        Sample.of("cpu_usage", 3.0, T0 + 2),
    ]
    assert write_samples(store, batch) == 1
    assert [v.value for v in latest(store)] == [3.0]


def test_empty_batch_no_transaction(store: sqlite3.Connection) -> None:
    """An empty batch writes nothing and opens no transaction."""
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    assert write_samples(store, []) == 0
    store.set_trace_callback(None)
    assert statements == []


def test_latest_newest_per_series(store: sqlite3.Connection) -> None:
    """latest returns the newest sample of each series, sorted by name and labels."""
    for ts, value in ((T0, 10.0), (T0 + 5, 11.0)):
        write_samples(
            store,
            [Sample.of("disk_usage", value, ts, mount="/"), Sample.of("cpu_usage", value - 9, ts)],
        )
    write_samples(store, [Sample.of("disk_usage", 50.0, T0 + 7, mount="/data")])

    values = latest(store)

    assert [(v.name, v.labels, v.ts, v.value) for v in values] == [
        ("cpu_usage", (), T0 + 5, 2.0),
        ("disk_usage", (("mount", "/"),), T0 + 5, 11.0),
        ("disk_usage", (("mount", "/data"),), T0 + 7, 50.0),
    ]


def test_latest_label_subset(store: sqlite3.Connection) -> None:
    """A label filter matches every series whose labels include the given pairs."""
    write_samples(
        store,
        [
            Sample.of("net_recv_bytes_per_second", 1.0, T0, interface="eth0", host="a"),
            Sample.of("net_recv_bytes_per_second", 2.0, T0, interface="eth1", host="a"),
            Sample.of("net_recv_bytes_per_second", 3.0, T0, interface="eth0", host="b"),
        ],
    )
    name = "net_recv_bytes_per_second"
    assert [v.value for v in latest(store, name, {"interface": "eth0"})] == [1.0, 3.0]
    assert [v.value for v in latest(store, name, {"host": "a", "interface": "eth1"})] == [2.0]
    assert latest(store, name, {"interface": "lo"}) == []
    assert len(latest(store, name, {})) == 3


def test_latest_unknown_name(store: sqlite3.Connection) -> None:
    """latest for a metric that was never written is empty."""
    write_samples(store, [Sample.of("cpu_usage", 1.0, T0)])
    assert latest(store, "no_such_metric") == []


@pytest.mark.parametrize(
    ("func", "expected"),
    [("avg", 3.0), ("min", 2.0), ("max", 4.0), ("last", 4.0), ("count", 3.0)],
)
def test_window_aggregates(store: sqlite3.Connection, func: str, expected: float) -> None:
    """window aggregates the samples in (now - duration, now] only."""
    values = {T0: 100.0, T0 + 10: 2.0, T0 + 20: 3.0, T0 + 30: 4.0, T0 + 31: 50.0}
    write_samples(store, [Sample.of("cpu_usage", v, ts) for ts, v in values.items()])

    result = window(store, "cpu_usage", func, duration=30.0, now=T0 + 30)  # type: ignore[arg-type]

    assert [v.value for v in result] == [expected]
    assert [v.ts for v in result] == [T0 + 30]


def test_window_per_series_labels(store: sqlite3.Connection) -> None:
    """window returns one value per matching series and leaves out series without samples."""
    write_samples(
        store,
        [
            Sample.of("disk_usage", 10.0, T0, mount="/"),
            Sample.of("disk_usage", 20.0, T0, mount="/data"),
        ],
    )
    write_samples(store, [Sample.of("disk_usage", 30.0, T0 + 60, mount="/")])

    recent = window(store, "disk_usage", "max", duration=30.0, now=T0 + 60)
    filtered = window(store, "disk_usage", "avg", 120.0, now=T0 + 60, labels={"mount": "/"})

    assert [(v.labels, v.value) for v in recent] == [((("mount", "/"),), 30.0)]
    assert [v.value for v in filtered] == [20.0]


def test_window_invalid_function(store: sqlite3.Connection) -> None:
    """An unknown aggregate raises ValueError naming the allowed ones."""
    with pytest.raises(ValueError, match="avg, min, max, last, count"):
        window(store, "cpu_usage", "median", duration=60.0, now=T0)  # type: ignore[arg-type]


def test_reads_leave_no_transaction(store: sqlite3.Connection) -> None:
    """latest, window and list_series return with no transaction open on the connection."""
    write_samples(store, [Sample.of("cpu_usage", 1.0, T0)])
    latest(store)
    assert not store.in_transaction
    window(store, "cpu_usage", "avg", 60.0, T0)
    assert not store.in_transaction
    list_series(store)
    assert not store.in_transaction


def test_list_series_sorted(store: sqlite3.Connection) -> None:
    """list_series returns every series sorted, or only those of one name."""
    write_samples(
        store,
        [
            Sample.of("disk_usage", 1.0, T0, mount="/data"),
            Sample.of("cpu_usage", 1.0, T0),
            Sample.of("disk_usage", 1.0, T0, mount="/"),
        ],
    )
    assert list_series(store) == [
        ("cpu_usage", ()),
        ("disk_usage", (("mount", "/"),)),
        ("disk_usage", (("mount", "/data"),)),
    ]
    assert list_series(store, "cpu_usage") == [("cpu_usage", ())]

"""Time-series samples: batch writes, latest values, window aggregates and series listing.

Collectors' cycles arrive through `write_samples` (one transaction per cycle); the
console, the API and the alert engine read through `latest`, `window` and
`range_query`. The daemon's maintenance loop calls `update_rollups` and
`apply_retention`. `range_query`, `update_rollups` and `apply_retention` live in
`storage.ranges`, `storage.rollups` and `storage.retention` and are re-exported here.

Invariants: timestamps are UTC epoch seconds in the API and integer milliseconds
in the database, so two writes of one series at one timestamp replace each other.
Readers never leave a transaction open. Each read runs in one short deferred
transaction that is closed before the function returns, with every cursor fully
fetched, so a reader cannot pin the WAL between calls.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Literal

from collectors.base import Labels, Sample
from storage._series import SeriesKey, SeriesRow, find_series, ids_json, resolve_ids
from storage._timestamps import from_ms, to_ms
from storage.db import transaction
from storage.ranges import Point, SeriesRange, range_query
from storage.retention import apply_retention
from storage.rollups import update_rollups

__all__ = [
    "Point",
    "SeriesRange",
    "SeriesValue",
    "WindowFunction",
    "apply_retention",
    "latest",
    "list_series",
    "range_query",
    "update_rollups",
    "window",
    "write_samples",
]

logger = logging.getLogger(__name__)

WindowFunction = Literal["avg", "min", "max", "last", "count"]
"""Aggregates `window` computes over the samples of one series."""

# With exactly one max() in the query, SQLite takes the bare column `p.value` from
# the row holding the maximum, which is the newest sample (documented SQLite behaviour).
_WINDOW_EXPRESSIONS: dict[str, str] = {
    "avg": "avg(p.value)",
    "min": "min(p.value)",
    "max": "max(p.value)",
    "last": "p.value",
    "count": "count(*)",
}

_UPSERT_SAMPLE = """
    INSERT INTO samples (series_id, ts_ms, value) VALUES (?, ?, ?)
    ON CONFLICT (series_id, ts_ms) DO UPDATE SET value = excluded.value
"""

_LATEST = """
    SELECT p.series_id, p.ts_ms, p.value
      FROM json_each(?) AS j
     CROSS JOIN samples AS p
        ON p.series_id = j.value
       AND p.ts_ms = (SELECT max(ts_ms) FROM samples WHERE series_id = j.value)
"""

_WINDOW = """
    SELECT p.series_id, max(p.ts_ms), {expression}
      FROM json_each(?) AS j
     CROSS JOIN samples AS p
        ON p.series_id = j.value AND p.ts_ms > ? AND p.ts_ms <= ?
     GROUP BY p.series_id
"""


@dataclass(frozen=True, slots=True)
class SeriesValue:
    """One value of one series: the newest sample, or an aggregate over a window."""

    name: str
    """Metric name."""
    labels: Labels
    """Sorted label pairs of the series."""
    ts: float
    """UTC epoch seconds of the sample, or of the newest sample in the window."""
    value: float
    """The sample's value, or the aggregate."""


def write_samples(conn: sqlite3.Connection, samples: Iterable[Sample]) -> int:
    """Store one collector cycle and return the number of samples written.

    **Writes**, one BEGIN IMMEDIATE transaction for the whole batch (a savepoint when
    the caller already opened one): either every sample is stored or none is. A
    sample for an existing (series, ts) replaces the stored value. Samples whose value
    or timestamp is NaN or infinite are dropped with one warning per batch, because
    SQLite would store NaN as NULL.

    Series ids are cached on the connection after the commit. If retention deleted a
    cached series meanwhile, the foreign key rejects the insert, and the batch is
    retried once with a cleared cache.
    """
    batch = _finite(samples)
    if not batch:
        return 0

    try:
        return _write_batch(conn, batch)
    except sqlite3.IntegrityError as err:
        if "FOREIGN KEY" not in str(err):
            raise
        logger.info("series id cache outdated, retrying batch samples=%d", len(batch))
        _series_cache(conn).clear()
        return _write_batch(conn, batch)


def latest(
    conn: sqlite3.Connection,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[SeriesValue]:
    """Return the newest raw sample of each series, sorted by name and labels.

    **Read-only**, one short deferred transaction. `name` None means every metric;
    `labels` is a subset match. Series without raw samples (all expired) are left out.
    """
    with transaction(conn, immediate=False):
        series = find_series(conn, name, labels)
        rows = conn.execute(_LATEST, (ids_json(series),)).fetchall() if series else []
    return _series_values(series, rows)


def window(
    conn: sqlite3.Connection,
    name: str,
    func: WindowFunction,
    duration: float,
    now: float,
    labels: Mapping[str, str] | None = None,
) -> list[SeriesValue]:
    """Aggregate each series' raw samples over `(now - duration, now]`.

    **Read-only**, one short deferred transaction. The result's `ts` is the newest
    sample's timestamp in the window. Series with no sample in the window are left
    out, so a caller can tell "no data" from a value.

    NOTE: only raw samples are read, so a window longer than the raw retention reads
    only the retained part.

    Raises:
        ValueError: `func` is not one of avg, min, max, last, count, or `duration` is
            not positive.
    """
    expression = _WINDOW_EXPRESSIONS.get(func)
    if expression is None:
        raise ValueError(f"invalid window function {func!r}; use one of avg, min, max, last, count")
    if duration <= 0:
        raise ValueError(f"invalid window duration {duration!r}; it must be positive seconds")

    params = (to_ms(now - duration), to_ms(now))
    with transaction(conn, immediate=False):
        series = find_series(conn, name, labels)
        sql = _WINDOW.format(expression=expression)
        rows = conn.execute(sql, (ids_json(series), *params)).fetchall() if series else []
    return _series_values(series, rows)


def list_series(conn: sqlite3.Connection, name: str | None = None) -> list[tuple[str, Labels]]:
    """Return (name, labels) of every series, or of the series of `name`, sorted.

    **Read-only**, one autocommit statement. A series stays listed until retention
    removes its last sample and rollup.
    """
    return [(row.name, row.labels) for row in find_series(conn, name, None)]


def _write_batch(conn: sqlite3.Connection, batch: list[Sample]) -> int:
    cache = _series_cache(conn)
    keys = dict.fromkeys((sample.name, sample.labels) for sample in batch)

    with transaction(conn):
        ids = resolve_ids(conn, keys, cache)
        rows = [(ids[(s.name, s.labels)], to_ms(s.ts), s.value) for s in batch]
        conn.executemany(_UPSERT_SAMPLE, rows)

    # Inside a caller's transaction the new ids are not committed yet and could
    # still roll back, so they are cached only once nothing is open.
    if not conn.in_transaction:
        cache.update(ids)
    return len(rows)


def _series_cache(conn: sqlite3.Connection) -> MutableMapping[SeriesKey, int]:
    cache = getattr(conn, "series_ids", None)
    return cache if cache is not None else {}


def _finite(samples: Iterable[Sample]) -> list[Sample]:
    valid: list[Sample] = []
    dropped: list[Sample] = []
    for sample in samples:
        finite = math.isfinite(sample.value) and math.isfinite(sample.ts)
        (valid if finite else dropped).append(sample)

    if dropped:
        logger.warning(
            "dropped non-finite samples count=%d first=%s value=%r",
            len(dropped),
            dropped[0].name,
            dropped[0].value,
        )
    return valid


def _series_values(
    series: list[SeriesRow], rows: list[tuple[int, int, float]]
) -> list[SeriesValue]:
    by_id = {row[0]: row for row in rows}
    return [
        SeriesValue(s.name, s.labels, from_ms(by_id[s.id][1]), float(by_id[s.id][2]))
        for s in series
        if s.id in by_id
    ]

"""Bulk reads of recent raw samples for the alert evaluator: many series, one query per kind.

`atlas_tui.alerts.query.PreloadedQuery` lists the series of every metric the rules
read (`list_metric_series`) and decides per series how far back it needs samples.
It then fetches them all with `read_windows`, in one query for the series that need
every sample of a window and one for those that need only their newest sample.

Invariants: windows are `(start, end]` like `storage.metrics.window`; samples come
back oldest first; each call is one short deferred transaction with every cursor
fetched, so it never pins the WAL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collectors.base import Labels
from storage._series import decode_labels
from storage._timestamps import to_ms
from storage.db import transaction

__all__ = ["SeriesRef", "SeriesSamples", "list_metric_series", "read_windows"]

_WANTED = "SELECT json_extract(value, '$[0]') AS series_id, json_extract(value, '$[1]') AS start_ms FROM json_each(?1)"

_WINDOWS = f"""
    WITH wanted AS ({_WANTED})
    SELECT w.series_id, p.ts_ms, p.value
      FROM wanted AS w
     CROSS JOIN samples AS p
        ON p.series_id = w.series_id AND p.ts_ms > w.start_ms AND p.ts_ms <= ?2
"""

_NEWEST = f"""
    WITH wanted AS ({_WANTED})
    SELECT w.series_id, p.ts_ms, p.value
      FROM wanted AS w
     CROSS JOIN samples AS p
        ON p.series_id = w.series_id
       AND p.ts_ms = (SELECT max(ts_ms) FROM samples WHERE series_id = w.series_id AND ts_ms <= ?2)
     WHERE p.ts_ms > w.start_ms
"""


@dataclass(frozen=True, slots=True)
class SeriesRef:
    """One stored series: its id and labels."""

    id: int
    labels: Labels


@dataclass(slots=True)
class SeriesSamples:
    """Raw samples of one series, oldest first."""

    times: list[float] = field(default_factory=list)
    """UTC epoch seconds."""
    values: list[float] = field(default_factory=list)


def list_metric_series(
    conn: sqlite3.Connection, names: Iterable[str], labels_cache: dict[str, Labels] | None = None
) -> dict[str, list[SeriesRef]]:
    """Return every series of each metric in `names`, sorted by labels; unknown names map to [].

    **Read-only**, one short deferred transaction. `labels_cache` maps the stored
    label text to decoded labels and is filled as a side effect, so a caller that
    lists the same series every cycle decodes each once.
    """
    cache = labels_cache if labels_cache is not None else {}
    found: dict[str, list[SeriesRef]] = {}
    with transaction(conn, immediate=False):
        for name in names:
            rows = conn.execute(
                "SELECT id, labels FROM series WHERE name = ? ORDER BY labels", (name,)
            ).fetchall()
            found[name] = [SeriesRef(int(row[0]), _labels(cache, row[1])) for row in rows]
    return found


def read_windows(
    conn: sqlite3.Connection,
    windows: Mapping[int, float],
    newest: Mapping[int, float],
    end: float,
) -> dict[int, SeriesSamples]:
    """Return raw samples by series id: whole windows, or only the newest sample.

    **Read-only**, one short deferred transaction with at most two queries.

    Args:
        conn: Store connection.
        windows: Series id to window start; every sample in `(start, end]` is read.
        newest: Series id to window start; only the newest sample at or before `end`
            is read, and only when it is after the start. An id in both mappings
            gets its window, plus the newest sample when that is older than the window.
        end: Window end, UTC epoch seconds.
    """
    end_ms = to_ms(end)
    found: dict[int, SeriesSamples] = {}
    with transaction(conn, immediate=False):
        if windows:
            _collect(found, conn.execute(_WINDOWS, (_pairs(windows), end_ms)).fetchall())
        if newest:
            _prepend_newest(found, conn.execute(_NEWEST, (_pairs(newest), end_ms)).fetchall())
    return found


def _pairs(starts: Mapping[int, float]) -> str:
    return json.dumps([[series_id, to_ms(start)] for series_id, start in starts.items()])


def _labels(cache: dict[str, Labels], text: str) -> Labels:
    labels = cache.get(text)
    if labels is None:
        labels = cache[text] = decode_labels(text)
    return labels


def _collect(found: dict[int, SeriesSamples], rows: list[tuple[int, int, float]]) -> None:
    unordered: set[int] = set()
    for series_id, ts_ms, value in rows:
        samples = found.get(series_id)
        if samples is None:
            samples = found[series_id] = SeriesSamples()
        ts = ts_ms / 1000
        if samples.times and samples.times[-1] >= ts:
            unordered.add(series_id)
        samples.times.append(ts)
        samples.values.append(value)
    # SQLite walks each series' primary key in time order, but the query does not
    # promise an order, so a series that came back out of order is sorted here.
    for series_id in unordered:
        samples = found[series_id]
        pairs = sorted(zip(samples.times, samples.values))
        samples.times = [ts for ts, _ in pairs]
        samples.values = [value for _, value in pairs]


def _prepend_newest(found: dict[int, SeriesSamples], rows: list[tuple[int, int, float]]) -> None:
    for series_id, ts_ms, value in rows:
        ts = ts_ms / 1000
        samples = found.get(series_id)
        if samples is None:
            found[series_id] = SeriesSamples([ts], [value])
        elif not samples.times or samples.times[0] > ts:
            samples.times.insert(0, ts)
            samples.values.insert(0, value)

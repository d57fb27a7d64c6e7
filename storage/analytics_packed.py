"""Packed histograms: each series' exact whole-unit histogram of one hour or one UTC day in a single BLOB.

`analytics_hourly_hist` keeps one row per value. That is exact, but it grows with
hours × distinct values, so a 30-day report would merge millions of rows.
`analytics_hist_packed` keeps one row per series (app, version, platform, metric and
two keys) and span: the hour rows of `storage.analytics_days.derive_hour`, and the
day rows `storage.analytics_days.rebuild_day` merges from the 24 hours. A report
reads whole days from the day rows and only the hours at the window's ends from the
hour rows.

Invariants: a BLOB contains the sorted distinct values, then their counts, as
little-endian signed 64-bit integers, so merging is exact and percentiles read from
the merge equal those of the per-value rows. Values outside the 64-bit range are
clamped to it (and then may repeat, which merging adds up). A span's rows are replaced
together in the caller's transaction.
"""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence

from storage.analytics_windows import DAY, HOUR, WindowParts

__all__ = ["Series", "merge_packed", "pack", "read_packed", "replace_packed", "unpack"]

Series = tuple[str, str, str, str, str]
"""`(app_version, platform, metric, key1, key2)` of one histogram."""

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def pack(counts: Mapping[int, int]) -> bytes:
    """Encode a value → count histogram as sorted values followed by their counts."""
    values = sorted(counts)
    try:
        packed = array("q", values)
    except OverflowError:
        packed = array("q", [min(max(value, _INT64_MIN), _INT64_MAX) for value in values])
    packed.extend(map(counts.__getitem__, values))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack(blob: bytes) -> Iterator[tuple[int, int]]:
    """Yield the `(value, count)` pairs of a packed histogram in value order."""
    packed = array("q")
    packed.frombytes(blob)
    if sys.byteorder == "big":
        packed.byteswap()
    half = len(packed) // 2
    return zip(packed[:half], packed[half:])


def merge_packed(into: dict[int, int], blob: bytes) -> None:
    """Add the counts of a packed histogram to `into`."""
    get = into.get
    for value, count in unpack(blob):
        into[value] = get(value, 0) + count


def replace_packed(
    conn: sqlite3.Connection, span: int, start: int, app_id: str, series: Iterable[tuple[Series, Mapping[int, int]]]
) -> None:
    """Replace every packed histogram of one app, span (`HOUR` or `DAY`) and start. **Writes**, caller's transaction."""
    conn.execute("DELETE FROM analytics_hist_packed WHERE span = ? AND start = ? AND app_id = ?", (span, start, app_id))
    conn.executemany(
        "INSERT INTO analytics_hist_packed (span, start, app_id, app_version, platform, metric, key1, key2, hist) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(span, start, app_id, *key, pack(counts)) for key, counts in series if counts],
    )


def read_packed(
    conn: sqlite3.Connection,
    parts: WindowParts,
    metrics: Mapping[str, bool],
    filters: Sequence[tuple[str, str]] = (),
) -> dict[str, dict[tuple[str, str, str, str], dict[int, int]]]:
    """Merge the packed histograms of `metrics` over a window. **Read-only.**

    Args:
        parts: The window; whole days come from the day rows, the other hours from hour rows.
        metrics: Metric name → True to keep releases apart, False to merge them
            (version and platform are then '').
        filters: `(column, value)` equality conditions on `app_id`, `app_version` and `platform`.

    Returns:
        Metric → `(app_version, platform, key1, key2)` → value → count.
    """
    merged: dict[str, dict[tuple[str, str, str, str], dict[int, int]]] = {metric: {} for metric in metrics}
    marks = ", ".join("?" * len(metrics))
    extra = "".join(f" AND {column} = ?" for column, _ in filters)
    ranges = [(DAY, *parts.days)] if parts.days else []
    ranges += [(HOUR, *hours) for hours in parts.hours]
    for span, first, end in ranges:
        rows = conn.execute(
            "SELECT metric, app_version, platform, key1, key2, hist FROM analytics_hist_packed "
            f"WHERE span = ? AND start >= ? AND start < ? AND metric IN ({marks}){extra}",
            (span, first, end, *metrics, *(value for _, value in filters)),
        )
        for metric, version, platform, key1, key2, blob in rows:
            key = (version, platform, key1, key2) if metrics[metric] else ("", "", key1, key2)
            target = merged[metric].get(key)
            if target is None:
                target = merged[metric][key] = {}
            merge_packed(target, blob)
    return merged

"""The `series` table: label encoding, lookups by name and label subset, id creation.

`storage.metrics` and `storage.rollups` resolve series here before touching samples
or rollups. Invariants: `series.labels` is the compact JSON of the label pairs
sorted by key (`[["cpu","0"]]`), so one label set has exactly one spelling and
`UNIQUE (name, labels)` holds. A label filter is a subset match: every given pair
must be present, and other labels may exist.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from collectors.base import Labels

SeriesKey = tuple[str, Labels]
"""(name, labels) of one series."""


class SeriesRow(NamedTuple):
    """One row of the `series` table with decoded labels."""

    id: int
    name: str
    labels: Labels


def encode_labels(labels: Labels) -> str:
    """Return the canonical JSON text stored in `series.labels`."""
    return json.dumps([list(pair) for pair in sorted(labels)], separators=(",", ":"))


def decode_labels(text: str) -> Labels:
    """Parse `series.labels` back into sorted label pairs."""
    return tuple((str(key), str(value)) for key, value in json.loads(text))


def find_series(
    conn: sqlite3.Connection, name: str | None, labels: Mapping[str, str] | None
) -> list[SeriesRow]:
    """Return the series with `name` (any name if None) whose labels include `labels`.

    **Read-only**, one autocommit statement. Sorted by name, then labels.
    """
    if name is None:
        rows = conn.execute("SELECT id, name, labels FROM series").fetchall()
    else:
        rows = conn.execute(
            "SELECT id, name, labels FROM series WHERE name = ?", (name,)
        ).fetchall()

    required = dict(labels or {})
    found = [SeriesRow(row[0], row[1], decode_labels(row[2])) for row in rows]
    matching = [row for row in found if _includes(row.labels, required)]
    return sorted(matching, key=lambda row: (row.name, row.labels))


def ids_json(rows: Iterable[SeriesRow]) -> str:
    """Return the ids as a JSON array, the form queries read with `json_each`."""
    return json.dumps([row.id for row in rows])


def resolve_ids(
    conn: sqlite3.Connection, keys: Iterable[SeriesKey], cache: Mapping[SeriesKey, int]
) -> dict[SeriesKey, int]:
    """Return the id of each series, creating the missing ones.

    **Writes** in the caller's transaction. Ids found in `cache` are used as they
    are. The caller adds the returned ids to its cache only after the transaction
    commits, so a rolled-back insert never leaves a stale id in the cache.
    """
    resolved: dict[SeriesKey, int] = {}
    for key in keys:
        cached = cache.get(key)
        resolved[key] = cached if cached is not None else _ensure(conn, key)
    return resolved


def _ensure(conn: sqlite3.Connection, key: SeriesKey) -> int:
    name, labels = key
    encoded = encode_labels(labels)
    conn.execute(
        "INSERT INTO series (name, labels) VALUES (?, ?) ON CONFLICT (name, labels) DO NOTHING",
        (name, encoded),
    )
    row = conn.execute(
        "SELECT id FROM series WHERE name = ? AND labels = ?", (name, encoded)
    ).fetchone()
    return int(row[0])


def _includes(labels: Labels, required: dict[str, str]) -> bool:
    present = dict(labels)
    return all(present.get(key) == value for key, value in required.items())

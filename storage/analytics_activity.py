"""Device activity bitmaps: who was active, viewed a screen or started a session, per day and per 32-day block.

Distinct-device counts (DAU to MAU, devices per screen, crash-free users) need the
set of devices, not a sum. `analytics_device_activity` keeps one row per device,
release, screen ('' for any activity) and span. A day row has a 24-bit mask of the
UTC hours the device was active in, and a block row (`BLOCK`, 32 days) has a mask
of the days. `analytics_session_activity` does the same for the devices that started
a session, with a second mask for the hours or days of a crashed one. A 30-day
report reads block rows for the whole days and day rows for the days at the
window's ends. So it reads about one row per device instead of one per device and
day, and SQLite counts them with one b-tree of distinct ids.

`storage.analytics_days.rebuild_day` calls `rebuild_activity_day`, which rewrites a
day's rows from the hour rollups and sessions and moves that day's bit in the block
rows: cleared for the devices the day had before, set for those it has now.

Invariants: devices are `analytics_device_ids` integers, shared by all apps. A block
row's day bit is set exactly when the device has a day row for that day. A device
that leaves a day (only if events were deleted, which nothing does yet) keeps a
block row whose mask may become 0, which no window matches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from storage.analytics_windows import BLOCK, DAY, ActivityPiece, activity_pieces, day_masks

__all__ = ["count_active_devices", "count_screen_devices", "count_session_devices", "rebuild_activity_day"]

Filters = Sequence[tuple[str, str]]
"""`(column, value)` equality conditions on `app_id`, `app_version` and `platform`."""


def rebuild_activity_day(conn: sqlite3.Connection, app_id: str, day: int) -> None:
    """Rewrite the device and session activity of one app and UTC day: its day rows and its bit in the block rows.

    **Writes**, in the caller's transaction.
    """
    block = day // BLOCK * BLOCK
    bit = 1 << ((day - block) // DAY)
    window = (app_id, day, day + DAY)

    conn.execute(
        "INSERT OR IGNORE INTO analytics_device_ids (device_hash) SELECT DISTINCT device_hash "
        "FROM analytics_hourly_devices WHERE app_id = ? AND hour >= ? AND hour < ?",
        window,
    )
    conn.execute(
        "UPDATE analytics_device_activity SET bits = bits & ~? WHERE span = ? AND start = ? AND app_id = ? "
        "AND (screen, app_version, platform, device_id) IN (SELECT screen, app_version, platform, device_id "
        "FROM analytics_device_activity WHERE span = ? AND start = ? AND app_id = ?)",
        (bit, BLOCK, block, app_id, DAY, day, app_id),
    )
    conn.execute("DELETE FROM analytics_device_activity WHERE span = ? AND start = ? AND app_id = ?", (DAY, day, app_id))
    # Each (screen, release, device) has at most one row per hour, so the sum of the
    # hour bits is their bitwise OR.
    conn.execute(
        "INSERT INTO analytics_device_activity (screen, span, start, app_id, app_version, platform, device_id, bits) "
        "SELECT h.screen, ?, ?, h.app_id, h.app_version, h.platform, i.id, sum(1 << ((h.hour - ?) / 3600)) "
        "FROM analytics_hourly_devices h JOIN analytics_device_ids i ON i.device_hash = h.device_hash "
        "WHERE h.app_id = ? AND h.hour >= ? AND h.hour < ? GROUP BY h.screen, h.app_version, h.platform, i.id",
        (DAY, day, day, *window),
    )
    conn.execute(
        "INSERT INTO analytics_device_activity (screen, span, start, app_id, app_version, platform, device_id, bits) "
        "SELECT screen, ?, ?, app_id, app_version, platform, device_id, ? FROM analytics_device_activity "
        "WHERE span = ? AND start = ? AND app_id = ? ON CONFLICT DO UPDATE SET bits = bits | excluded.bits",
        (BLOCK, block, bit, DAY, day, app_id),
    )
    _rebuild_session_day(conn, app_id, day, block, bit)


def count_active_devices(conn: sqlite3.Connection, windows: Iterable[tuple[int, int]], filters: Filters = ()) -> list[int]:
    """Return the distinct devices active in each `[start_hour, end_hour)` window. **Read-only.**"""
    return [_count_devices(conn, "", first, end, filters) for first, end in windows]


def count_screen_devices(
    conn: sqlite3.Connection, screens: Iterable[str], start_hour: int, end_hour: int, filters: Filters = ()
) -> dict[str, int]:
    """Return the distinct devices that viewed each screen in `[start_hour, end_hour)`. **Read-only.**

    Screen '' is the mark of any activity, so it is never counted as a screen.
    """
    return {screen: _count_devices(conn, screen, start_hour, end_hour, filters) if screen else 0 for screen in screens}


def count_session_devices(
    conn: sqlite3.Connection,
    start_hour: int,
    end_hour: int,
    raw: Iterable[tuple[float, float]],
    filters: Filters = (),
) -> tuple[tuple[int, int], dict[tuple[str, str], tuple[int, int]]]:
    """Count the distinct devices that started a session, and those that started a crashed one. **Read-only.**

    Args:
        start_hour: Start of the whole hours read from the session activity rows.
        end_hour: End of those hours (exclusive).
        raw: Time ranges read from `analytics_sessions` itself (the partial hours at the ends).
        filters: Conditions on `app_id`, `app_version` and `platform`.

    Returns:
        `(devices, crashed devices)` overall, and the same per `(app_version, platform)`.
    """
    selects, params = _piece_selects(
        "device_id AS device, app_version, platform, {crashed} AS crashed",
        "analytics_session_activity",
        "started",
        activity_pieces(day_masks(start_hour, end_hour)),
        "",
        [],
        filters,
    )
    spans = list(raw)
    if spans:
        within = " OR ".join("(s.started_at >= ? AND s.started_at < ?)" for _ in spans)
        extra = "".join(f" AND +s.{column} = ?" for column, _ in filters)
        # A device no day rollup has seen yet has no id, so it is counted by its pseudonym.
        selects.append(
            "SELECT coalesce(d.id, s.device_hash) AS device, s.app_version AS app_version, s.platform AS platform, "
            "s.fatal AS crashed FROM analytics_sessions s "
            "LEFT JOIN analytics_device_ids d ON d.device_hash = s.device_hash "
            f"WHERE s.device_hash != '' AND ({within}){extra}"
        )
        params += [ts for span in spans for ts in span] + [value for _, value in filters]
    if not selects:
        return (0, 0), {}
    union = " UNION ALL ".join(selects)
    distinct = "count(DISTINCT device), count(DISTINCT CASE WHEN crashed THEN device END)"
    total = conn.execute(f"SELECT {distinct} FROM ({union})", params).fetchone()
    releases = conn.execute(f"SELECT app_version, platform, {distinct} FROM ({union}) GROUP BY app_version, platform", params)
    return (total[0], total[1]), {(version, platform): (devices, crashed) for version, platform, devices, crashed in releases}


def _count_devices(conn: sqlite3.Connection, screen: str, start_hour: int, end_hour: int, filters: Filters) -> int:
    # The unary plus on the filters keeps SQLite on the primary key, which has `bits`,
    # instead of the rebuild's (span, start, app_id) index, which would need a lookup per row.
    selects, params = _piece_selects(
        "device_id", "analytics_device_activity", "bits", activity_pieces(day_masks(start_hour, end_hour)),
        "screen = ? AND ", [screen], filters, "+",
    )  # fmt: skip
    if not selects:
        return 0
    union = " UNION ALL ".join(selects)
    return int(conn.execute(f"SELECT count(DISTINCT device_id) FROM ({union})", params).fetchone()[0])


def _piece_selects(
    columns: str,
    table: str,
    bits: str,
    pieces: Sequence[ActivityPiece],
    leading: str,
    leading_params: list[object],
    filters: Filters,
    filter_prefix: str = "",
) -> tuple[list[str], list[object]]:
    """Build one SELECT per span (day rows, block rows) of the pieces, each testing its rows' masks.

    `columns` may contain `{crashed}`, replaced by the test of the `crashed` mask.
    """
    selects: list[str] = []
    params: list[object] = []
    extra = "".join(f" AND {filter_prefix}{column} = ?" for column, _ in filters)
    for span in (DAY, BLOCK):
        chosen = [piece for piece in pieces if piece.span == span]
        if not chosen:
            continue
        case = "CASE start " + " ".join("WHEN ? THEN ?" for _ in chosen) + " END"
        case_params = [value for piece in chosen for value in (piece.start, piece.mask)]
        select_params = case_params if "{crashed}" in columns else []
        selects.append(
            f"SELECT {columns.format(crashed=f'(crashed & {case}) != 0')} FROM {table} WHERE {leading}span = ? "
            f"AND start IN ({', '.join('?' * len(chosen))}) AND ({bits} & {case}) != 0{extra}"
        )
        params += [*select_params, *leading_params, span, *(piece.start for piece in chosen), *case_params]
        params += [value for _, value in filters]
    return selects, params


def _rebuild_session_day(conn: sqlite3.Connection, app_id: str, day: int, block: int, bit: int) -> None:
    window = (app_id, day, day + DAY)
    # `+app_id` makes SQLite read the day's sessions by start time, not all the app's by primary key.
    conn.execute(
        "INSERT OR IGNORE INTO analytics_device_ids (device_hash) SELECT DISTINCT device_hash "
        "FROM analytics_sessions WHERE +app_id = ? AND started_at >= ? AND started_at < ? AND device_hash != ''",
        window,
    )
    conn.execute(
        "UPDATE analytics_session_activity SET started = started & ~?, crashed = crashed & ~? "
        "WHERE span = ? AND start = ? AND app_id = ? AND (app_version, platform, device_id) IN "
        "(SELECT app_version, platform, device_id FROM analytics_session_activity WHERE span = ? AND start = ? AND app_id = ?)",
        (bit, bit, BLOCK, block, app_id, DAY, day, app_id),
    )
    conn.execute("DELETE FROM analytics_session_activity WHERE span = ? AND start = ? AND app_id = ?", (DAY, day, app_id))
    # Several sessions can start in one hour, so only distinct hour bits are summed.
    hour_bit = "(1 << CAST((s.started_at - ?) / 3600 AS INTEGER))"
    conn.execute(
        "INSERT INTO analytics_session_activity (span, start, app_id, app_version, platform, device_id, started, crashed) "
        f"SELECT ?, ?, s.app_id, s.app_version, s.platform, i.id, sum(DISTINCT {hour_bit}), "
        f"sum(DISTINCT CASE WHEN s.fatal THEN {hour_bit} ELSE 0 END) "
        "FROM analytics_sessions s JOIN analytics_device_ids i ON i.device_hash = s.device_hash "
        "WHERE +s.app_id = ? AND s.started_at >= ? AND s.started_at < ? AND s.device_hash != '' "
        "GROUP BY s.app_version, s.platform, i.id",
        (DAY, day, day, day, *window),
    )
    conn.execute(
        "INSERT INTO analytics_session_activity (span, start, app_id, app_version, platform, device_id, started, crashed) "
        "SELECT ?, ?, app_id, app_version, platform, device_id, ?, CASE WHEN crashed != 0 THEN ? ELSE 0 END "
        "FROM analytics_session_activity WHERE span = ? AND start = ? AND app_id = ? "
        "ON CONFLICT DO UPDATE SET started = started | excluded.started, crashed = crashed | excluded.crashed",
        (BLOCK, block, bit, bit, DAY, day, app_id),
    )

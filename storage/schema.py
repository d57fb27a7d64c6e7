"""The store's schema as an ordered list of migrations.

`storage.db.migrate` applies these in version order, each in one transaction
together with its row in the `migrations` table. Invariants: a released migration is
never edited or renumbered, only followed by a new one. Columns named `*_ms` hold
UTC epoch milliseconds (see `storage._timestamps`), and other time columns hold
UTC epoch seconds as REAL.

Tables:

- `series`: one row per metric name and label set. `labels` is the canonical JSON
  of the sorted label pairs (`[["mount","/"]]`). AUTOINCREMENT keeps an id from
  being reused after retention deletes its series, so a writer's cached id can
  never point at a different series.
- `samples`: raw readings keyed by `(series_id, ts_ms)` without rowid, so a
  per-series time range is one primary-key range scan.
- `rollup_1m`, `rollup_1h`: min, max, sum and count per series and bucket; the
  average is `sum_value / sample_count`. `rollup_state` stores each table's
  watermark, the end of the newest complete bucket rolled up.
- `heartbeat`: the single row the daemon refreshes while it runs.
- `collector_status`: the latest `CollectorStatus` of each collector.
- `alert_instances`: one row per alert instance (rule and label set), its public id
  `alert_<id>` stable across incidents. The scalar columns mirror `state_json`, the
  full engine record, so lists and filters need no JSON decoding.
- `alert_events`: the history of every instance (transitions, acknowledgements,
  silences), kept 90 days. `alert_id` is not a foreign key, so history outlives
  the instance row.
- `silences`: operator silences; `matchers` is the canonical text form.
- `alert_engine_state`: key/value JSON of the evaluation loop (last tick, missed
  evaluations, rule health, cycle duration).
- `outbox`: one row per notice and channel, unique on `(notice_id, channel)`, with
  its delivery status (pending, delivered, dead, held) and the latest attempt's
  outcome. `deliveries`: one row per attempt, deleted with its outbox row.
  `channel_health`: one row per channel (ok, degraded, misconfigured, failing) with
  the hash of the channel's config, so held notices are released when it changes.
- `analytics_events`: one row per mobile analytics event, unique on `(app_id,
  event_id)` for good, so a resent event is never stored twice. Device and user ids
  are keyed hashes, `ip_prefix` a masked network. `event_ts` is the skew-corrected
  time. `attrs` contains the per-type fields and `extra` the unknown fields (or the
  whole scrubbed event for `schema_unknown`), both JSON.
- `analytics_quarantine`: a second, different event that reused a stored event id.
- `analytics_counters`: ingest totals by name and canonical JSON labels, such as
  `events_rejected{app,reason}`, `privacy_redactions{rule}` and `dedup_conflict`.
- `analytics_sessions`: one row per app, device pseudonym and session id, derived
  from the stored events by `atlas_tui.analytics.rollups.refresh`. The status
  (exited, crashed, abnormal, errored, open) is computed when read, because a
  session times out by the reader's clock.
- `analytics_hourly`: count and total per UTC hour, app, version, platform, metric
  and up to two keys (screen, element and action, transaction type and asset).
  `analytics_hourly_hist`: exact histograms of whole milliseconds per hour (app
  start and network latency) and of whole seconds (time on screen). `analytics_hourly_devices`: the distinct
  device pseudonyms active per hour, overall (`screen` = '') and per screen.
- `analytics_rollup_state`, `analytics_dirty_devices`, `analytics_dirty_hours`:
  the id of the newest event rolled up and the work still to do, so a late event
  marks its hour for a recompute. `analytics_last_event`: newest receipt time per
  app, version and platform.
- Day rollups (`storage.analytics_days`), so reports read about one row per series
  and day: `analytics_daily` sums `analytics_hourly` per UTC day.
  `analytics_hist_packed` holds each histogram series of one hour or day
  (`span` 3600 or 86400) in one BLOB. `analytics_device_activity` (per screen, ''
  for any activity) and `analytics_session_activity` hold one row per device (an
  `analytics_device_ids` integer), release and day with a 24-bit mask of the hours
  it was active in or started a session (and a crashed one) in, and one row per
  32-day block with a mask of the days (`storage.analytics_activity`).
  `analytics_session_hourly` counts sessions by start hour, release and final
  status. `analytics_dirty_days` queues days to recompute.
- `api_tokens`: bearer tokens of the HTTP API as SHA-256 hex digests with their
  scopes. A name is unique among the rows not revoked. Revoked rows are kept.
- `backup_runs`: one row per backup set and run of `backup`, and one row per run of
  `cleanup`, `verify`, `integrity` and the scheduled test restore (`set_name` null).
  `host`, `pid`, `process_start` (clock ticks after boot, from /proc) and `boot_id`
  name the process, so a row left `running` by a killed process is found.
  `backup_run_log`: the lines a run logged (skipped paths, warnings, errors), in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["MIGRATIONS", "Migration"]


class Migration(NamedTuple):
    """One schema step."""

    version: int
    """Position in the sequence; versions strictly increase."""
    name: str
    """Short description, stored in the `migrations` table."""
    apply: tuple[str, ...] | Callable[[sqlite3.Connection], None]
    """SQL statements run in order, or a callable run inside the migration's transaction."""


_SERIES_AND_SAMPLES = (
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        UNIQUE (name, labels)
    )
    """,
    """
    CREATE TABLE samples (
        series_id INTEGER NOT NULL REFERENCES series (id),
        ts_ms INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (series_id, ts_ms)
    ) WITHOUT ROWID
    """,
)

_ROLLUP_COLUMNS = """
        series_id INTEGER NOT NULL REFERENCES series (id),
        bucket_ms INTEGER NOT NULL,
        min_value REAL NOT NULL,
        max_value REAL NOT NULL,
        sum_value REAL NOT NULL,
        sample_count INTEGER NOT NULL,
        PRIMARY KEY (series_id, bucket_ms)
"""

_ROLLUPS = (
    f"CREATE TABLE rollup_1m ({_ROLLUP_COLUMNS}) WITHOUT ROWID",
    f"CREATE TABLE rollup_1h ({_ROLLUP_COLUMNS}) WITHOUT ROWID",
    """
    CREATE TABLE rollup_state (
        table_name TEXT PRIMARY KEY,
        watermark_ms INTEGER NOT NULL
    )
    """,
)

_DAEMON_STATUS = (
    """
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        version TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE collector_status (
        name TEXT PRIMARY KEY,
        interval REAL NOT NULL,
        last_run REAL,
        last_duration_ms REAL,
        last_error TEXT,
        last_sample_count INTEGER NOT NULL,
        runs INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        unavailable TEXT NOT NULL
    )
    """,
)

_ALERTS = (
    """
    CREATE TABLE alert_instances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL UNIQUE,
        rule_id TEXT NOT NULL,
        rule_name TEXT NOT NULL,
        severity TEXT NOT NULL,
        labels TEXT NOT NULL,
        state TEXT NOT NULL,
        value REAL,
        message TEXT,
        active_since REAL,
        fired_at REAL,
        resolved_at REAL,
        incident_seq INTEGER NOT NULL,
        ack_by TEXT,
        ack_at REAL,
        ack_message TEXT,
        silenced INTEGER NOT NULL DEFAULT 0,
        last_eval REAL,
        updated_at REAL NOT NULL,
        state_json TEXT NOT NULL
    )
    """,
    "CREATE INDEX alert_instances_by_state ON alert_instances (state)",
    "CREATE INDEX alert_instances_by_rule ON alert_instances (rule_id)",
    """
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        incident_id TEXT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        value REAL,
        actor TEXT NOT NULL,
        message TEXT
    )
    """,
    "CREATE INDEX alert_events_by_fingerprint ON alert_events (fingerprint, at)",
    "CREATE INDEX alert_events_by_time ON alert_events (at)",
    """
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at REAL NOT NULL,
        expired_at REAL,
        expired_by TEXT
    )
    """,
    "CREATE INDEX silences_by_end ON silences (ends_at)",
    """
    CREATE TABLE alert_engine_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)

_OUTBOX = (
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        notice_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        alert_id TEXT,
        fingerprint TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'delivered', 'dead', 'held')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_attempt_at REAL,
        delivered_at REAL,
        last_status TEXT,
        last_error_class TEXT,
        last_error TEXT,
        http_status INTEGER,
        response_body TEXT,
        UNIQUE (notice_id, channel)
    )
    """,
    "CREATE INDEX outbox_due ON outbox (channel, status, next_attempt_at)",
    "CREATE INDEX outbox_by_alert_instance ON outbox (channel, fingerprint, status, created_at)",
    "CREATE INDEX outbox_by_alert_id ON outbox (alert_id)",
    "CREATE INDEX outbox_by_age ON outbox (status, created_at)",
    """
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        at REAL NOT NULL,
        status TEXT NOT NULL,
        error_class TEXT,
        message TEXT NOT NULL,
        http_status INTEGER,
        latency_ms REAL
    )
    """,
    "CREATE INDEX deliveries_by_outbox ON deliveries (outbox_id)",
    """
    CREATE TABLE channel_health (
        channel TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('ok', 'degraded', 'misconfigured', 'failing')),
        config_hash TEXT,
        last_success_at REAL,
        last_error_at REAL,
        last_error_class TEXT,
        last_error TEXT,
        http_status INTEGER,
        response_body TEXT,
        next_retry_at REAL,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        failing_since REAL,
        updated_at REAL NOT NULL
    )
    """,
)

_ANALYTICS = (
    """
    CREATE TABLE analytics_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        schema_version INTEGER,
        schema_known INTEGER NOT NULL,
        session_id TEXT,
        device_hash TEXT,
        user_hash TEXT,
        app_version TEXT,
        platform TEXT,
        privacy_level TEXT,
        client_ts REAL,
        sent_at REAL,
        received_at REAL NOT NULL,
        skew REAL,
        event_ts REAL NOT NULL,
        future_clamped INTEGER NOT NULL DEFAULT 0,
        ip_prefix TEXT,
        attrs TEXT NOT NULL,
        properties TEXT NOT NULL,
        extra TEXT,
        content_hash TEXT NOT NULL,
        UNIQUE (app_id, event_id)
    )
    """,
    "CREATE INDEX analytics_events_by_time ON analytics_events (app_id, event_ts)",
    "CREATE INDEX analytics_events_by_received ON analytics_events (received_at)",
    "CREATE INDEX analytics_events_by_session ON analytics_events (app_id, session_id)",
    """
    CREATE TABLE analytics_quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received_at REAL NOT NULL,
        content_hash TEXT NOT NULL,
        stored_content_hash TEXT NOT NULL,
        event TEXT NOT NULL
    )
    """,
    "CREATE INDEX analytics_quarantine_by_event ON analytics_quarantine (app_id, event_id)",
    """
    CREATE TABLE analytics_counters (
        name TEXT NOT NULL,
        labels TEXT NOT NULL,
        value INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID
    """,
)

_ANALYTICS_DIMENSIONS = """
        hour INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
"""

_ANALYTICS_ROLLUPS = (
    "CREATE INDEX analytics_events_by_device ON analytics_events (app_id, device_hash, event_ts)",
    """
    CREATE TABLE analytics_sessions (
        app_id TEXT NOT NULL,
        device_hash TEXT NOT NULL,
        session_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        started_at REAL NOT NULL,
        last_event_at REAL NOT NULL,
        duration_s REAL NOT NULL,
        end_reason TEXT,
        fatal INTEGER NOT NULL,
        unhandled INTEGER NOT NULL,
        PRIMARY KEY (app_id, device_hash, session_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX analytics_sessions_by_start ON analytics_sessions (started_at)",
    f"""
    CREATE TABLE analytics_hourly ({_ANALYTICS_DIMENSIONS}
        metric TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        count INTEGER NOT NULL,
        total REAL NOT NULL,
        PRIMARY KEY (metric, hour, app_id, app_version, platform, key1, key2)
    ) WITHOUT ROWID
    """,
    f"""
    CREATE TABLE analytics_hourly_hist ({_ANALYTICS_DIMENSIONS}
        metric TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        value INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (metric, hour, app_id, app_version, platform, key1, key2, value)
    ) WITHOUT ROWID
    """,
    f"""
    CREATE TABLE analytics_hourly_devices ({_ANALYTICS_DIMENSIONS}
        screen TEXT NOT NULL,
        device_hash TEXT NOT NULL,
        PRIMARY KEY (screen, hour, app_id, app_version, platform, device_hash)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX analytics_hourly_by_app_hour ON analytics_hourly (app_id, hour)",
    "CREATE INDEX analytics_hourly_hist_by_app_hour ON analytics_hourly_hist (app_id, hour)",
    "CREATE INDEX analytics_hourly_devices_by_app_hour ON analytics_hourly_devices (app_id, hour)",
    "CREATE TABLE analytics_rollup_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    """
    CREATE TABLE analytics_dirty_devices (
        app_id TEXT NOT NULL,
        device_hash TEXT NOT NULL,
        since REAL NOT NULL,
        PRIMARY KEY (app_id, device_hash)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE analytics_dirty_hours (
        app_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        PRIMARY KEY (app_id, hour)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE analytics_last_event (
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (app_id, app_version, platform)
    ) WITHOUT ROWID
    """,
)

# The ingest view counts events by receipt time per app. Without this index SQLite
# used (app_id, event_ts) and read every event of the app (EXPLAIN QUERY PLAN).
_ANALYTICS_RECEIVED_INDEX = (
    "CREATE INDEX analytics_events_received ON analytics_events (app_id, received_at)",
)

_ANALYTICS_INGEST_INDEXES = (
    # `analytics_events_received (app_id, received_at)` serves every receipt-time query,
    # per app, so this one only cost each insert another B-tree write.
    "DROP INDEX analytics_events_by_received",
)

_API_TOKENS = (
    """
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """,
    "CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL",
)

_BACKUP_RUNS = (
    """
    CREATE TABLE backup_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('backup', 'cleanup', 'verify', 'integrity', 'test_restore')),
        trigger TEXT NOT NULL CHECK (trigger IN ('manual', 'scheduled', 'test')),
        set_name TEXT,
        snapshot_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
        started REAL NOT NULL,
        finished REAL,
        bytes INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0,
        bytes_new INTEGER NOT NULL DEFAULT 0,
        files INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        repository TEXT,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        process_start INTEGER,
        boot_id TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX backup_runs_by_kind_set ON backup_runs (kind, set_name, started)",
    "CREATE INDEX backup_runs_running ON backup_runs (status) WHERE status = 'running'",
    """
    CREATE TABLE backup_run_log (
        run_id INTEGER NOT NULL REFERENCES backup_runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
        message TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID
    """,
)

_ANALYTICS_DAY_ROLLUPS = (
    "CREATE TABLE analytics_device_ids (id INTEGER PRIMARY KEY, device_hash TEXT NOT NULL UNIQUE)",
    """
    CREATE TABLE analytics_daily (
        day INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        metric TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        count INTEGER NOT NULL,
        total REAL NOT NULL,
        PRIMARY KEY (metric, day, app_id, app_version, platform, key1, key2)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX analytics_daily_by_app_day ON analytics_daily (app_id, day)",
    # A rowid table: day BLOBs reach kilobytes, too large for WITHOUT ROWID B-tree cells.
    """
    CREATE TABLE analytics_hist_packed (
        span INTEGER NOT NULL,
        start INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        metric TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        hist BLOB NOT NULL,
        UNIQUE (span, start, app_id, metric, app_version, platform, key1, key2)
    )
    """,
    """
    CREATE TABLE analytics_device_activity (
        screen TEXT NOT NULL,
        span INTEGER NOT NULL,
        start INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        device_id INTEGER NOT NULL,
        bits INTEGER NOT NULL,
        PRIMARY KEY (screen, span, start, app_id, app_version, platform, device_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX analytics_device_activity_by_start ON analytics_device_activity (span, start, app_id)",
    """
    CREATE TABLE analytics_session_activity (
        span INTEGER NOT NULL,
        start INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        device_id INTEGER NOT NULL,
        started INTEGER NOT NULL,
        crashed INTEGER NOT NULL,
        PRIMARY KEY (span, start, app_id, app_version, platform, device_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE analytics_session_hourly (
        hour INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        app_version TEXT NOT NULL,
        platform TEXT NOT NULL,
        status TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (hour, app_id, app_version, platform, status)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE analytics_dirty_days (
        app_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        PRIMARY KEY (app_id, day)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX analytics_sessions_by_duration ON analytics_sessions (duration_s)",
    "CREATE INDEX analytics_sessions_pending ON analytics_sessions (started_at) WHERE end_reason IS NULL AND fatal = 0",
)


def _add_analytics_day_rollups(conn: sqlite3.Connection) -> None:
    for statement in _ANALYTICS_DAY_ROLLUPS:
        conn.execute(statement)
    # Imported here because storage.analytics_days imports storage.db, which imports this module.
    # NOTE: the backfill runs the current rollup code. A later migration that changes
    # these tables must keep it working on a store at version 11, or queue a rebuild instead.
    from storage.analytics_days import backfill_day_rollups

    backfill_day_rollups(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "series and raw samples", _SERIES_AND_SAMPLES),
    Migration(2, "minute and hour rollups", _ROLLUPS),
    Migration(3, "heartbeat and collector status", _DAEMON_STATUS),
    Migration(4, "alert instances, history, silences and engine state", _ALERTS),
    Migration(5, "notification outbox, delivery attempts and channel health", _OUTBOX),
    Migration(6, "analytics events, quarantine and ingest counters", _ANALYTICS),
    Migration(7, "analytics sessions and hourly rollups", _ANALYTICS_ROLLUPS),
    Migration(8, "analytics events by receipt time", _ANALYTICS_RECEIVED_INDEX),
    Migration(9, "one receipt-time index on analytics events", _ANALYTICS_INGEST_INDEXES),
    Migration(10, "api tokens", _API_TOKENS),
    Migration(11, "backup run records and their log lines", _BACKUP_RUNS),
    Migration(12, "analytics day rollups, packed histograms and session rollups", _add_analytics_day_rollups),
)
"""Every migration, in version order."""

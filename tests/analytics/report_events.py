"""Builders of stored analytics events for session, rollup and report tests.

Rows go through `storage.events.store_events`, the same insert ingestion uses, so
the tests exercise the real table and its uniqueness rule. Device ids here are
already pseudonyms; the tests do not need the host secret.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from storage.events import EventRow, store_events

APP = "atlas-wallet"
T0 = 1_780_000_000.0 - (1_780_000_000.0 % 86400)
"""Midnight UTC of the test day."""


def event(
    kind: str,
    ts: float,
    *,
    session: str = "s1",
    device: str | None = "d1",
    version: str = "2.3.0",
    platform: str = "android",
    event_id: str | None = None,
    properties: dict[str, Any] | None = None,
    **attrs: Any,
) -> EventRow:
    """Build one stored event row of `kind` at corrected time `ts`."""
    return EventRow(
        app_id=APP,
        event_id=event_id or str(uuid.uuid4()),
        type=kind,
        schema_version=1,
        schema_known=True,
        session_id=session,
        device_hash=device,
        user_hash=None,
        app_version=version,
        platform=platform,
        privacy_level="full",
        client_ts=ts,
        sent_at=ts,
        received_at=ts,
        skew=0.0,
        event_ts=ts,
        future_clamped=False,
        ip_prefix=None,
        attrs=json.dumps(attrs, sort_keys=True),
        properties=json.dumps(properties or {}, sort_keys=True),
        extra=None,
        content_hash=json.dumps([kind, ts, session, device, attrs, properties], sort_keys=True),
    )


def store(conn: sqlite3.Connection, rows: Sequence[EventRow]) -> None:
    """Store `rows` in batches of 500, as ingestion would."""
    for offset in range(0, len(rows), 500):
        store_events(conn, rows[offset : offset + 500], {}, T0)


def session(
    device: str, session_id: str, start: float, *, end: bool = True, fatal: bool = False, unhandled: bool = False,
    version: str = "2.3.0", platform: str = "android", length: float = 60.0,
) -> list[EventRow]:
    """Build the events of one session: launch, optional errors, optional end."""
    common: dict[str, Any] = {"session": session_id, "device": device, "version": version, "platform": platform}
    rows = [event("app_launch", start, **common)]
    if unhandled:
        rows.append(event("error", start + 1, message="e", fatal=False, handled=False, **common))
    if fatal:
        rows.append(event("error", start + 2, message="boom", fatal=True, handled=False, **common))
    if end:
        rows.append(event("session_end", start + length, duration_s=length, **common))
    return rows

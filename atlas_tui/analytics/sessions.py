"""Sessions derived from one device's stored events, and the rule that names their status.

`atlas_tui.analytics.rollups.refresh` loads a device's recent events, calls
`derive_sessions` and stores the result through `storage.sessions`. Reports read the
status with the SQL twin of `session_status` (`storage.sessions.status_sql`).

Invariants: the result depends only on the set of stored events, never on the order
they arrived in, so duplicates (stored once) and reordering change nothing. The
status depends on the reader's `now`, because an open session becomes `abnormal`
after `SESSION_TIMEOUT` seconds without traffic.

Rules: `app_launch` opens a session and `session_end` closes it as `exited`. A later
`app_launch` of another session on the same device closes it as `abnormal`, or as
`crashed` when it has an `error{fatal:true}`. A fatal error makes a session
`crashed` in every case. An `error{handled:false, fatal:false}` makes a session that
ended normally `errored`, and `crashed` or `abnormal` win over `errored`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["SESSION_TIMEOUT", "DeviceEvent", "SessionRecord", "SessionStatus", "derive_sessions", "session_status"]

SESSION_TIMEOUT = 1800.0
"""Seconds without traffic after which an open session counts as `abnormal`."""

SessionStatus = Literal["open", "exited", "errored", "abnormal", "crashed"]
EndReason = Literal["session_end", "next_launch"]


@dataclass(frozen=True)
class DeviceEvent:
    """The fields of one stored event that sessions need; times are UTC epoch seconds."""

    session_id: str
    type: str
    event_ts: float
    app_version: str
    platform: str
    attrs: str
    """JSON object of the per-type fields (`fatal`, `handled`, `duration_s`, …)."""


@dataclass(frozen=True)
class SessionRecord:
    """One session of one device as stored in `analytics_sessions`."""

    session_id: str
    app_version: str
    platform: str
    started_at: float
    last_event_at: float
    duration_s: float
    end_reason: EndReason | None
    """Closing event: `session_end`, `next_launch`, or None while open or once timed out."""
    fatal: bool
    unhandled: bool
    """True when the session had an unhandled, non-fatal error."""


def session_status(record: SessionRecord, now: float) -> SessionStatus:
    """Return the status of `record` as seen at `now`."""
    if record.fatal:
        return "crashed"
    if record.end_reason == "next_launch":
        return "abnormal"
    if record.end_reason is None:
        return "abnormal" if now - record.last_event_at >= SESSION_TIMEOUT else "open"
    return "errored" if record.unhandled else "exited"


def derive_sessions(events: Iterable[DeviceEvent], *, same_device: bool = True) -> list[SessionRecord]:
    """Group one device's events into sessions and find how each one ended.

    Args:
        events: Events of one app and one device, in any order.
        same_device: False when the events' device is unknown (privacy level
            `minimal`), so a launch does not close another session.

    Returns:
        The sessions, ordered by start time and session id.
    """
    grouped: dict[str, list[DeviceEvent]] = {}
    for event in sorted(events, key=lambda item: (item.event_ts, item.session_id, item.type)):
        grouped.setdefault(event.session_id, []).append(event)
    launches = sorted(
        (event.event_ts, event.session_id) for items in grouped.values() for event in items if event.type == "app_launch"
    )
    records = [_record(session_id, items, launches if same_device else []) for session_id, items in grouped.items()]
    return sorted(records, key=lambda record: (record.started_at, record.session_id))


def _record(session_id: str, items: list[DeviceEvent], launches: list[tuple[float, str]]) -> SessionRecord:
    first, last = items[0], items[-1]
    opener = next((event for event in items if event.type == "app_launch"), first)
    fatal = unhandled = False
    end_duration: float | None = None
    for event in items:
        if event.type == "error":
            attrs = _attrs(event)
            fatal = fatal or attrs.get("fatal") is True
            unhandled = unhandled or (attrs.get("handled") is False and attrs.get("fatal") is False)
        elif event.type == "session_end":
            duration = _attrs(event).get("duration_s")
            end_duration = float(duration) if isinstance(duration, (int, float)) else last.event_ts - first.event_ts

    end_reason: EndReason | None = None
    if end_duration is not None:
        end_reason = "session_end"
    elif any(ts > first.event_ts and other != session_id for ts, other in launches):
        end_reason = "next_launch"
    return SessionRecord(
        session_id=session_id,
        app_version=opener.app_version,
        platform=opener.platform,
        started_at=first.event_ts,
        last_event_at=last.event_ts,
        duration_s=end_duration if end_duration is not None else last.event_ts - first.event_ts,
        end_reason=end_reason,
        fatal=fatal,
        unhandled=unhandled,
    )


def _attrs(event: DeviceEvent) -> dict[str, object]:
    try:
        value = json.loads(event.attrs)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

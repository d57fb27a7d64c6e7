"""Batch ingestion: from a decoded request body to stored rows and a status per event.

The ingest route calls, in order: `decode_batch` (envelope checks), `prepare_batch`
(per-event validation, privacy, time correction; no I/O) and `store_batch` (one
transaction through `storage.events`). Invariants: the route reads the clock and
passes it in as `now`. Nothing that privacy forbids leaves `prepare_batch`. Each
event gets exactly one status, in the order of the batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError

from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.analytics.errors import BatchRejectedError
from atlas_tui.analytics.json_text import canonical_bytes, response_bytes, sorted_text
from atlas_tui.analytics.privacy import Pseudonymizer, mask_ip, scrub_properties, scrub_value
from atlas_tui.analytics.protocol import (
    MAX_EVENTS_PER_BATCH,
    SCHEMA_VERSION,
    EventProblem,
    KnownEvent,
    ParsedEvent,
    PrivacyLevel,
    parse_event,
)
from storage.events import CounterKey, EventRow, StoreOutcome, counter_key, store_events

__all__ = [
    "MINIMAL_FIELDS",
    "BatchEnvelope",
    "EventStatus",
    "IngestResponse",
    "PreparedBatch",
    "batch_response",
    "batch_response_json",
    "decode_batch",
    "prepare_batch",
    "store_batch",
]

MINIMAL_FIELDS = ("type", "schema", "client_ts", "app_version", "platform", "session_id")
"""Raw fields an event at privacy level `minimal` keeps: its name, time, app version, platform and session."""

_BASE_FIELDS = frozenset(
    ("event_id", "type", "client_ts", "session_id", "device_id", "user_id", "app_id", "app_version",
     "platform", "privacy_level", "properties")
)  # fmt: skip
_PRIVACY_LEVELS: tuple[PrivacyLevel, ...] = ("minimal", "standard", "full")
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    model.model_fields["type"].annotation.__args__[0]: tuple(  # type: ignore[union-attr]
        name for name in model.model_fields if name not in _BASE_FIELDS
    )
    for model in KnownEvent.__args__  # type: ignore[attr-defined]
}
"""Names of the per-type fields of each event type (`screen`, `amount`, …), stored in `attrs`."""
_TIME = TypeAdapter(AwareDatetime)


class EventStatus(BaseModel):
    """The outcome of one event of a batch."""

    index: int
    """Position of the event in the batch, from 0."""
    event_id: str | None
    """The event's id, or None when it had no readable one."""
    status: Literal["accepted", "duplicate", "rejected"]
    """`accepted` (stored now), `duplicate` (stored before; do not resend) or `rejected` (never stored)."""
    reason: str | None = None
    """Why a rejected event was rejected: `missing_event_id`, `invalid_event_id`, `invalid_event`,
    `app_mismatch`, `too_old` or `dedup_conflict`."""
    detail: str | None = None
    """The field and what is wrong with it, for `invalid_event`."""
    warnings: list[str] = Field(default_factory=list)
    """`future_clamped` or `schema_unknown` for an accepted event that was changed or kept raw."""


class IngestResponse(BaseModel):
    """Body of a 200 response to `POST /api/analytics/events`."""

    received_at: float
    """Server receipt time, UTC epoch seconds."""
    accepted: int
    """Events stored by this request."""
    duplicate: int
    """Events that were already stored."""
    rejected: int
    """Events not stored, each with a reason."""
    events: list[EventStatus]
    """One status per event, in batch order."""


@dataclass(frozen=True)
class BatchEnvelope:
    """A decoded batch whose events are still raw."""

    schema_version: int
    sent_at: float | None
    """Device time of sending, UTC epoch seconds; None only when the schema is unknown."""
    events: list[Any]

    @property
    def schema_known(self) -> bool:
        """True when the batch uses the schema this daemon validates."""
        return self.schema_version == SCHEMA_VERSION


@dataclass
class PreparedBatch:
    """A batch after validation and privacy, before storage."""

    statuses: list[EventStatus | None]
    """Final statuses of rejected events; None where a row waits for `store_batch`."""
    rows: list[tuple[int, EventRow]] = field(default_factory=list)
    """Rows to store with the index of their event."""
    counts: Counter[CounterKey] = field(default_factory=Counter)
    """Counters to add whatever the store outcome, such as rejections by reason."""
    device_hashes: set[str] = field(default_factory=set)
    """Pseudonyms of the devices that sent the batch, for the per-device rate limit only."""


def decode_batch(body: bytes) -> BatchEnvelope:
    """Parse the JSON body and check the batch envelope.

    Raises:
        BatchRejectedError: 400 for invalid JSON or envelope, 413 for more than
            `MAX_EVENTS_PER_BATCH` events.
    """
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except ValueError as err:
        raise BatchRejectedError(400, "invalid_json", f"the body is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise _invalid_batch("expected a JSON object with schema, sent_at and events")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise _invalid_batch("schema is required and must be a whole number such as 1")
    events = data.get("events")
    if not isinstance(events, list):
        raise _invalid_batch("events is required and must be a list")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise BatchRejectedError(
            413, "too_many_events", f"the batch has {len(events)} events, more than {MAX_EVENTS_PER_BATCH}; split it",
            {"limit": str(MAX_EVENTS_PER_BATCH), "events": str(len(events))},
        )
    sent_at = _parse_time(data.get("sent_at"))
    if sent_at is None and schema == SCHEMA_VERSION:
        raise _invalid_batch("sent_at is required: the device time of sending, ISO 8601 with an offset")
    return BatchEnvelope(schema, sent_at, events)


def prepare_batch(
    envelope: BatchEnvelope,
    *,
    app_id: str,
    config: AnalyticsConfig,
    pseudonymizer: Pseudonymizer,
    client_ip: str | None,
    now: float,
) -> PreparedBatch:
    """Validate each event and turn the valid ones into privacy-safe rows. No I/O.

    Args:
        envelope: The decoded batch.
        app_id: The app named by the request's ingest key.
        config: The `analytics` config section.
        pseudonymizer: Keyed hashing under the host secret.
        client_ip: The sender's address; only its masked network is kept.
        now: Receipt time, UTC epoch seconds.
    """
    prepared = PreparedBatch(statuses=[None] * len(envelope.events))
    context = _EventContext(app_id, config, pseudonymizer, mask_ip(client_ip) if config.store_ip else None, now)
    for index, raw in enumerate(envelope.events):
        result = _prepare_event(parse_event(raw, schema_known=envelope.schema_known), envelope, context)
        if isinstance(result, EventStatus):
            result.index = index
            prepared.statuses[index] = result
            prepared.counts[counter_key("events_rejected", app=app_id, reason=result.reason or "")] += 1
            continue
        prepared.rows.append((index, result))
    prepared.device_hashes = _rate_keys(envelope.events, pseudonymizer)
    return prepared


def store_batch(conn: sqlite3.Connection, prepared: PreparedBatch, now: float) -> IngestResponse:
    """Store the batch's rows in one transaction and build the response. **Writes.**"""
    outcomes = store_events(conn, [row for _, row in prepared.rows], prepared.counts, now)
    return batch_response(prepared, outcomes, now)


def batch_response(prepared: PreparedBatch, outcomes: Sequence[StoreOutcome], now: float) -> IngestResponse:
    """Build the response from the prepared batch and the store's outcome for each of its rows."""
    statuses = list(prepared.statuses)
    for (index, row), outcome in zip(prepared.rows, outcomes, strict=True):
        statuses[index] = _status_for(index, row, outcome)
    final = [status for status in statuses if status is not None]
    tally = Counter(status.status for status in final)
    # The statuses are built by this module, so they skip validation (a tenth of the request's time).
    return IngestResponse.model_construct(
        received_at=now,
        accepted=tally["accepted"],
        duplicate=tally["duplicate"],
        rejected=tally["rejected"],
        events=final,
    )


def batch_response_json(prepared: PreparedBatch, outcomes: Sequence[StoreOutcome], now: float) -> bytes:
    """Return `batch_response(...).model_dump_json()`, built without a model per event.

    The ingest route replies to every batch with this: building and serializing a
    pydantic model per event took a tenth of the request's time.
    """
    statuses: list[dict[str, Any] | None] = [
        None if status is None else status.model_dump() for status in prepared.statuses
    ]
    tally = Counter(status["status"] for status in statuses if status is not None)
    for (index, row), outcome in zip(prepared.rows, outcomes, strict=True):
        if outcome == "conflict":
            statuses[index] = _status_for(index, row, outcome).model_dump()
        elif outcome == "accepted":
            warnings = ["future_clamped"] if row.future_clamped else []
            if not row.schema_known:
                warnings.append("schema_unknown")
            statuses[index] = {"index": index, "event_id": row.event_id, "status": "accepted", "reason": None,
                               "detail": None, "warnings": warnings}  # fmt: skip
        else:
            statuses[index] = {"index": index, "event_id": row.event_id, "status": "duplicate", "reason": None,
                               "detail": None, "warnings": []}  # fmt: skip
        tally[statuses[index]["status"]] += 1  # type: ignore[index]
    body = {
        "received_at": now,
        "accepted": tally["accepted"],
        "duplicate": tally["duplicate"],
        "rejected": tally["rejected"],
        "events": [status for status in statuses if status is not None],
    }
    return response_bytes(body)


def _rate_keys(events: list[Any], pseudonymizer: Pseudonymizer) -> set[str]:
    """Return the pseudonyms of every device id in the batch, whatever each event's privacy level.

    They stay in memory for rate limiting, so `minimal` events, whose device is not
    stored, are limited per device too.
    """
    # A device_id of any other JSON type (an object is unhashable) is the event's own
    # problem, reported as `invalid_event`; it names no device to limit.
    device_ids = {
        device_id
        for event in events
        if isinstance(event, dict) and isinstance(device_id := event.get("device_id"), str)
    }
    return {pseudonymizer.pseudonym(device_id) for device_id in device_ids}


@dataclass(frozen=True)
class _EventContext:
    app_id: str
    config: AnalyticsConfig
    pseudonymizer: Pseudonymizer
    ip_prefix: str | None
    now: float


def _prepare_event(
    parsed: ParsedEvent | EventProblem, envelope: BatchEnvelope, context: _EventContext
) -> EventRow | EventStatus:
    if isinstance(parsed, EventProblem):
        return _rejected(parsed.event_id, parsed.reason, parsed.detail)
    if not parsed.known:
        return _unknown_row(parsed, envelope, context)
    return _known_row(parsed, envelope, context)


def _known_row(parsed: ParsedEvent, envelope: BatchEnvelope, context: _EventContext) -> EventRow | EventStatus:
    model = parsed.model
    assert model is not None and envelope.sent_at is not None
    if model.app_id != context.app_id:
        return _rejected(parsed.event_id, "app_mismatch", f"app_id {model.app_id!r} does not match the ingest key's app")

    client_ts = model.client_ts.timestamp()
    corrected = _corrected_time(client_ts, envelope.sent_at, context)
    if corrected is None:
        # Late events inside the window keep their corrected time, and the next
        # `rollups.refresh` recomputes their past hour.
        return _rejected(parsed.event_id, "too_old", "the corrected event time is older than the accepted window")
    event_ts, clamped = corrected

    content = _private_content(model, context)
    return EventRow(
        app_id=context.app_id,
        event_id=parsed.event_id,
        type=model.type,
        schema_version=envelope.schema_version,
        schema_known=True,
        session_id=model.session_id,
        device_hash=content.device_hash,
        user_hash=content.user_hash,
        app_version=model.app_version,
        platform=model.platform,
        privacy_level=model.privacy_level,
        client_ts=client_ts,
        sent_at=envelope.sent_at,
        received_at=context.now,
        skew=envelope.sent_at - context.now,
        event_ts=event_ts,
        future_clamped=clamped,
        ip_prefix=context.ip_prefix if model.privacy_level != "minimal" else None,
        attrs=_json(content.attrs),
        properties=_json(content.properties),
        extra=_json(content.extra) if content.extra else None,
        content_hash=context.pseudonymizer.content_hash(_canonical(parsed.raw)),
        redactions=tuple(content.redactions),
    )


def _corrected_time(client_ts: float, sent_at: float, context: _EventContext) -> tuple[float, bool] | None:
    """Return the skew-corrected event time and whether it was clamped, or None when it is too old."""
    event_ts = context.now + (client_ts - sent_at)
    clamped = event_ts > context.now + context.config.future_clamp_after
    if clamped:
        event_ts = context.now
    if event_ts < context.now - context.config.late_events_max_age:
        return None
    return event_ts, clamped


@dataclass
class _PrivateContent:
    attrs: dict[str, Any]
    properties: dict[str, Any]
    extra: dict[str, Any]
    device_hash: str | None
    user_hash: str | None
    redactions: list[str]


def _private_content(model: KnownEvent, context: _EventContext) -> _PrivateContent:
    """Keep what the event's privacy level allows, with wallet secrets dropped and ids hashed."""
    level = model.privacy_level
    redactions: list[str] = []
    # The per-type fields are plain JSON values (str, float, bool or None) after validation.
    fields = {name: getattr(model, name) for name in _TYPE_FIELDS[model.type]}

    properties: dict[str, Any] = {}
    if level == "full":
        properties, property_rules = scrub_properties(model.properties, _allowlist(context, model.type))
        redactions.extend(property_rules)
    attrs = scrub_value(fields, redactions) if level != "minimal" else {}
    extra = _extra_for_level(model.model_extra or {}, level, redactions)

    pseudonym = context.pseudonymizer.pseudonym
    return _PrivateContent(
        attrs=attrs,
        properties=properties,
        extra=extra,
        device_hash=pseudonym(model.device_id) if level != "minimal" else None,
        user_hash=pseudonym(model.user_id) if level == "full" and model.user_id else None,
        redactions=redactions,
    )


def _unknown_row(parsed: ParsedEvent, envelope: BatchEnvelope, context: _EventContext) -> EventRow:
    """Keep an event of an unknown type or schema raw, after the same privacy rules as known ones.

    Its time is the receipt time: without a known schema, `client_ts` cannot be trusted.
    """
    raw = parsed.raw
    level = raw.get("privacy_level") if raw.get("privacy_level") in _PRIVACY_LEVELS else "minimal"
    redactions: list[str] = []
    allowed_raw = _raw_for_level(raw, level)
    device_id = raw.get("device_id")
    return EventRow(
        app_id=context.app_id,
        event_id=parsed.event_id,
        type=_text(raw.get("type")) or "unknown",
        schema_version=envelope.schema_version,
        schema_known=False,
        session_id=_text(raw.get("session_id")),
        device_hash=(
            context.pseudonymizer.pseudonym(device_id) if isinstance(device_id, str) and level != "minimal" else None
        ),
        user_hash=None,
        app_version=_text(raw.get("app_version")),
        platform=_text(raw.get("platform")),
        privacy_level=level,
        client_ts=None,
        sent_at=envelope.sent_at,
        received_at=context.now,
        skew=None,
        event_ts=context.now,
        future_clamped=False,
        ip_prefix=context.ip_prefix if level != "minimal" else None,
        attrs="{}",
        properties="{}",
        extra=_json(scrub_value(allowed_raw, redactions)),
        content_hash=context.pseudonymizer.content_hash(_canonical(raw)),
        redactions=tuple(redactions),
    )


def _raw_for_level(raw: dict[str, Any], level: str) -> dict[str, Any]:
    # Ids are never kept raw; the device id is stored as its pseudonym instead.
    allowed = {key: value for key, value in raw.items() if key not in ("device_id", "user_id")}
    if level == "minimal":
        return {key: value for key, value in allowed.items() if key in MINIMAL_FIELDS}
    if level == "standard":
        allowed.pop("properties", None)
    return allowed


def _extra_for_level(extra: dict[str, Any], level: str, redactions: list[str]) -> dict[str, Any]:
    """Keep unknown fields of a known event: values at `full`, names only at `standard`, nothing at `minimal`."""
    if level == "full":
        return dict(scrub_value(extra, redactions))
    if level == "standard":
        return {key: None for key in extra}
    return {}


def _allowlist(context: _EventContext, event_type: str) -> list[str]:
    app = context.config.apps.get(context.app_id)
    if app is None:
        return []
    return list(app.wallet_guard_allowlist.get(event_type, []))  # type: ignore[call-overload]


def _status_for(index: int, row: EventRow, outcome: str) -> EventStatus:
    if outcome == "conflict":
        return EventStatus.model_construct(
            index=index, event_id=row.event_id, status="rejected", reason="dedup_conflict",
            detail="this event_id is already stored with different content; the first copy is kept", warnings=[],
        )
    warnings = ["future_clamped"] if row.future_clamped else []
    if not row.schema_known:
        warnings.append("schema_unknown")
    status: Literal["accepted", "duplicate"] = "accepted" if outcome == "accepted" else "duplicate"
    return EventStatus.model_construct(
        index=index, event_id=row.event_id, status=status, reason=None, detail=None,
        warnings=warnings if status == "accepted" else [],
    )


def _rejected(event_id: str | None, reason: str, detail: str) -> EventStatus:
    return EventStatus(index=0, event_id=event_id, status="rejected", reason=reason, detail=detail)


def _parse_time(value: object) -> float | None:
    if value is None:
        return None
    try:
        return _TIME.validate_python(value).timestamp()
    except ValidationError:
        return None


def _reject_constant(name: str) -> None:
    # Python's json module accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not a JSON number")


def _invalid_batch(message: str) -> BatchRejectedError:
    return BatchRejectedError(400, "invalid_batch", f"invalid batch: {message}")


def _text(value: object, limit: int = 256) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _json(value: object) -> str:
    # Most events have no properties, and an empty dict needs no encoder.
    if value == {}:
        return "{}"
    return sorted_text(value)


def _canonical(raw: dict[str, Any]) -> bytes:
    return canonical_bytes(raw)

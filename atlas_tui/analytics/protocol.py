"""The SDK's wire protocol, schema version 1, as pydantic models.

The app SDK posts one `Batch` per request. The ingest code never validates a batch
in one piece: it reads the envelope, then calls `parse_event` on each raw event, so
one invalid event is rejected alone. `Batch` exists for the OpenAPI schema and the
docs (`docs/analytics-protocol.md`), and must describe the same fields as the event
models here.

Invariants: times on the wire are ISO 8601 with an offset (or epoch seconds) and
become UTC epoch seconds inside. Unknown fields of a known event type are kept in
`model_extra`, so they can be stored raw. An event of an unknown type is not an
error: its `ParsedEvent.known` is False.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENTS_PER_BATCH",
    "SCHEMA_VERSION",
    "AppLaunch",
    "Batch",
    "ErrorEvent",
    "Event",
    "KnownEvent",
    "EventProblem",
    "EventType",
    "ParsedEvent",
    "PerformanceMetric",
    "Platform",
    "PrivacyLevel",
    "PropertyValue",
    "ScreenView",
    "SessionEnd",
    "Transaction",
    "UserInteraction",
    "parse_event",
]

SCHEMA_VERSION = 1
"""The protocol version this daemon validates; other versions are stored raw as `schema_unknown`."""

MAX_EVENTS_PER_BATCH = 500
"""Events one batch may carry; a larger batch is rejected whole with 413."""

EventType = Literal[
    "app_launch", "screen_view", "user_interaction", "transaction", "performance_metric", "error", "session_end"
]
Platform = Literal["android", "ios"]
PrivacyLevel = Literal["minimal", "standard", "full"]

EVENT_TYPES: tuple[str, ...] = (
    "app_launch", "screen_view", "user_interaction", "transaction", "performance_metric", "error", "session_end"
)
"""Every event type of schema 1."""

PropertyValue = Union[StrictStr, StrictInt, StrictFloat, StrictBool, None]
"""A free-form property value: a JSON string, number, boolean or null (no nesting)."""

_Id = Annotated[str, Field(min_length=1, max_length=256)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]


class _EventBase(BaseModel):
    """Fields every event carries."""

    # Unknown fields are kept so they can be stored in the raw column.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    event_id: uuid.UUID
    """Client-generated UUID; the same event resent keeps its id, so it is stored once per app."""
    client_ts: AwareDatetime
    """When the event happened, by the device clock."""
    session_id: _Id
    """Id of the app session, set at `app_launch`."""
    device_id: _Id
    """Install id of the device; the daemon stores only its keyed hash."""
    user_id: _Id | None = None
    """Signed-in user's id, if any; stored only as a keyed hash and only at privacy level `full`."""
    app_id: _Id
    """App id; must match the app of the ingest key."""
    app_version: Annotated[str, Field(min_length=1, max_length=64)]
    """Release of the app, such as `2.3.0`."""
    platform: Platform
    """`android` or `ios`."""
    privacy_level: PrivacyLevel
    """Privacy level the user allowed: `minimal`, `standard` or `full`, enforced by the daemon."""
    properties: dict[Annotated[str, Field(max_length=100)], PropertyValue] = Field(default_factory=dict, max_length=100)
    """Free-form scalar properties, at most 100."""


class AppLaunch(_EventBase):
    """The app started; opens the session `session_id`."""

    type: Literal["app_launch"]


class ScreenView(_EventBase):
    """A screen was shown."""

    type: Literal["screen_view"]
    screen: _Name
    """Screen name, such as `send`."""


class UserInteraction(_EventBase):
    """The user acted on a UI element."""

    type: Literal["user_interaction"]
    element: _Name
    """Element name, such as `send_button`."""
    action: _Name
    """Action of the user, such as `tap`."""


class Transaction(_EventBase):
    """A wallet transaction step."""

    type: Literal["transaction"]
    tx_type: _Name
    """Kind of transaction step, such as `send`, `receive`, `swap`, `submitted` or `confirmed`."""
    amount: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Amount in units of `asset`."""
    asset: Annotated[str, Field(min_length=1, max_length=16)]
    """Asset ticker, such as `BTC` or `ETH`."""


class PerformanceMetric(_EventBase):
    """One measurement taken by the app."""

    type: Literal["performance_metric"]
    name: _Name
    """Metric name, such as `app_start_time`, `network_request_latency` or `battery_level`."""
    value: Annotated[float, Field(allow_inf_nan=False)]
    """Value in the metric's unit (milliseconds for times, percent for battery)."""


class ErrorEvent(_EventBase):
    """An error the app caught or a crash."""

    type: Literal["error"]
    message: Annotated[str, Field(max_length=4000)]
    """Error message."""
    stack_trace: Annotated[str, Field(max_length=65536)] | None = None
    """Stack trace as text, if any."""
    fatal: StrictBool
    """True when the app terminated."""
    handled: StrictBool
    """True when app code caught the error."""


class SessionEnd(_EventBase):
    """The app closed the session cleanly."""

    type: Literal["session_end"]
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    """Session length in seconds by the device clock."""


KnownEvent = Union[AppLaunch, ScreenView, UserInteraction, Transaction, PerformanceMetric, ErrorEvent, SessionEnd]
"""A validated event of schema 1."""

Event = Annotated[KnownEvent, Field(discriminator="type")]
"""Any event of schema 1, distinguished by `type` (the validation type of `KnownEvent`)."""


class Batch(BaseModel):
    """The body of `POST /api/analytics/events`."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    """Protocol version; this daemon validates version 1 and stores others raw."""
    sent_at: AwareDatetime
    """When the SDK sent the batch, by the device clock; used to correct clock skew."""
    events: list[Event] = Field(max_length=MAX_EVENTS_PER_BATCH)
    """The events, at most 500."""


@dataclass(frozen=True)
class ParsedEvent:
    """An event with a valid id, either validated against schema 1 or of an unknown type."""

    event_id: str
    """Canonical lower-case UUID text."""
    raw: dict[str, Any]
    """The event as received."""
    model: KnownEvent | None
    """The validated event, or None when its type or schema version is unknown."""

    @property
    def known(self) -> bool:
        """True when the event was validated against schema 1."""
        return self.model is not None


@dataclass(frozen=True)
class EventProblem:
    """Reason one event was rejected."""

    event_id: str | None
    """The event's id if it had a readable one."""
    reason: str
    """Stable reason: `missing_event_id`, `invalid_event_id` or `invalid_event`."""
    detail: str
    """The field and what is wrong with it."""


_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A UUID already in the form `str(uuid.UUID(...))` gives, as SDKs send it; it skips the parse."""


def parse_event(raw: object, *, schema_known: bool = True) -> ParsedEvent | EventProblem:
    """Validate one raw event from a batch.

    Args:
        raw: One element of the batch's `events` list.
        schema_known: False when the batch's `schema` is not `SCHEMA_VERSION`; then
            only the event id is checked and the event is kept raw.

    Returns:
        A `ParsedEvent`, or an `EventProblem` naming why the event is rejected.
    """
    if not isinstance(raw, dict):
        return EventProblem(None, "invalid_event", f"expected a JSON object, got {type(raw).__name__}")
    event_id = _event_id(raw)
    if isinstance(event_id, EventProblem):
        return event_id
    if not schema_known or raw.get("type") not in EVENT_TYPES:
        return ParsedEvent(event_id, raw, None)
    try:
        model = _EVENT_ADAPTER.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "event"
        return EventProblem(event_id, "invalid_event", f"{where}: {first['msg']}")
    return ParsedEvent(event_id, raw, model)


def _event_id(raw: dict[str, Any]) -> str | EventProblem:
    value = raw.get("event_id")
    if value is None or value == "":
        return EventProblem(None, "missing_event_id", "event_id is required; send a UUID per event")
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return EventProblem(None, "invalid_event_id", f"event_id {str(value)[:64]!r} is not a UUID")

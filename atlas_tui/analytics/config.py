"""The `analytics` section of the config file: apps, ingest keys, time windows and rates.

`atlas_tui.config.Config.analytics` is one `AnalyticsConfig`. The ingest route
reads it to map a bearer token to an app, and `prepare_batch` reads its time windows.
Invariants: ingest keys are public identifiers, not secrets, and no two apps share
one; every duration is in seconds.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator

from atlas_tui.durations import Duration

__all__ = ["AnalyticsAppConfig", "AnalyticsConfig", "AnalyticsRateLimits", "GuardedEventType"]

GuardedEventType = Literal[
    "app_launch", "screen_view", "user_interaction", "transaction", "performance_metric", "error", "session_end"
]
"""Event types a wallet-guard allowlist may name."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AnalyticsAppConfig(_Section):
    """One app whose SDK may send events."""

    ingest_key: str = Field(min_length=8, max_length=200)
    """Token the SDK sends as `Authorization: Bearer <key>`. It identifies the app and is public."""
    wallet_guard_allowlist: dict[GuardedEventType, list[str]] = Field(default_factory=dict)
    """Properties per event type that the wallet-secret guard leaves alone, e.g. `{"transaction": ["contract"]}`."""


class AnalyticsRateLimits(_Section):
    """Batch rates above which ingestion responds with 429 with `Retry-After`."""

    device_batches_per_minute: StrictInt = Field(default=60, ge=1, le=100_000)
    """Batches one device may send per minute; the SDK sends one every 5 minutes when healthy."""
    daemon_batches_per_second: StrictInt = Field(default=500, ge=1, le=1_000_000)
    """Batches the whole daemon accepts per second, all apps and devices together."""


class AnalyticsConfig(_Section):
    """Mobile analytics ingestion and reports."""

    apps: dict[str, AnalyticsAppConfig] = Field(default_factory=dict)
    """Apps by app id (`atlas-wallet`); events whose `app_id` differs from the key's app are rejected."""
    timezone: str = "UTC"
    """IANA time zone of daily buckets in reports (`Europe/Berlin`); stored times stay UTC."""
    late_events_max_age: Duration = Field(default=7 * 86400.0, ge=3600, le=90 * 86400.0)
    """Oldest corrected event time accepted, before `received_at`; older events are rejected `too_old`."""
    future_clamp_after: Duration = Field(default=23 * 3600.0, ge=60, le=7 * 86400.0)
    """Corrected event times further ahead than this are set to `received_at` and flagged `future_clamped`."""
    store_ip: StrictBool = True
    """Store the client address masked to /24 (IPv4) or /48 (IPv6); false stores none."""
    rate_limits: AnalyticsRateLimits = Field(default_factory=AnalyticsRateLimits)
    """Per-device and daemon-wide batch rates."""
    prepare_in_worker: StrictBool = True
    """Decode and validate batches that arrive while others are in flight in a child process, so
    ingestion uses a second CPU core. False prepares every batch in the daemon's event loop."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin") from err
        return value

    @model_validator(mode="after")
    def _unique_keys(self) -> AnalyticsConfig:
        seen: dict[str, str] = {}
        for app_id, app in self.apps.items():
            if app.ingest_key in seen:
                raise ValueError(f"apps {seen[app.ingest_key]} and {app_id} share an ingest key; give each app its own")
            seen[app.ingest_key] = app_id
        return self

    def app_for_key(self, key: str) -> str | None:
        """Return the app id whose ingest key is `key`, or None."""
        for app_id, app in self.apps.items():
            if app.ingest_key == key:
                return app_id
        return None

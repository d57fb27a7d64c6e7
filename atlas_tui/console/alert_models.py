"""View models of the Alerts pane and the header's alert summary: plain frozen dataclasses.

A `ConsoleSource` builds them in the data worker thread (`console.local_alerts` for
the store) and the UI thread turns them into text (`console.alert_presentation`).
Invariants:

- No Textual import and no formatting: numbers stay numbers and times stay UTC epoch
  seconds, so the same models serve any width and any theme.
- Ages are measured against the `now` the models were read for (`AlertsSnapshot.now`).
- Alert ids are the store's public ids (`alert_<n>`). They are the row keys of the
  alerts table, so a row keeps its place and cursor across refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collectors.base import Labels

__all__ = [
    "SEVERITIES",
    "AlertCounts",
    "AlertDetail",
    "AlertRow",
    "AlertsSnapshot",
    "ChannelStatusRow",
    "DeliveryRow",
    "RuleProblem",
    "Severity",
    "TimelineEntry",
]

Severity = Literal["critical", "error", "warning", "info"]
"""Severity of a rule, as in the config."""

SEVERITIES: tuple[Severity, ...] = ("critical", "error", "warning", "info")
"""Severities from the most to the least severe."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert instance, one row of the alerts table."""

    alert_id: str
    """Public id (`alert_12`), also the table's row key."""
    rule_id: str
    """Id of the rule that made the alert."""
    rule_name: str
    """The rule's display name; the rule id when the rule has no name."""
    severity: str
    """critical, error, warning or info; other text is shown as it is."""
    state: str
    """Engine state: inactive, pending, firing, resolved, nodata or error."""
    labels: Labels
    """Series and rule labels without `alertname`, sorted."""
    value: float | None
    """The latest evaluated value; None for no data."""
    age_seconds: float
    """Seconds the alert has been in its state (since it fired, went pending or resolved)."""
    acked_by: str | None = None
    """User who acknowledged the current incident; None when not acknowledged."""
    silenced: bool = False
    """True while an active silence matches; its notices are not sent."""
    open_incident: bool = False
    """True when the alert fired and has not resolved since, so it can be acknowledged."""
    message: str | None = None
    """Reason for the nodata or error state."""


@dataclass(frozen=True, slots=True)
class AlertCounts:
    """Firing alerts per severity, for the header of every pane."""

    critical: int = 0
    error: int = 0
    warning: int = 0
    info: int = 0

    @property
    def total(self) -> int:
        """Firing alerts of every severity."""
        return self.critical + self.error + self.warning + self.info

    def of(self, severity: Severity) -> int:
        """Return the count of one severity."""
        return int(getattr(self, severity))


@dataclass(frozen=True, slots=True)
class ChannelStatusRow:
    """Health and queue of one notification channel."""

    channel: str
    """Channel name from the config."""
    state: str
    """ok, degraded (rate limited), failing or misconfigured."""
    last_success_at: float | None = None
    """Time of the latest delivery; None when nothing was delivered yet."""
    last_error_at: float | None = None
    """Time of the latest failed attempt; None when no attempt failed."""
    last_error_class: str | None = None
    """Named class of the latest failure (`read_timeout`, `http_rate_limited`)."""
    last_error: str | None = None
    """One-line message of the latest failure."""
    queue_depth: int = 0
    """Notices waiting: pending and held."""
    next_retry_at: float | None = None
    """When the next waiting notice is attempted; None when nothing waits."""
    dead_letters: int = 0
    """Notices given up on after the maximum age."""


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """A rule whose health is `error`, so it cannot evaluate as written."""

    rule_id: str
    """Id of the rule."""
    message: str
    """The reason, for example `unknown metric cpu_usge`."""


@dataclass(frozen=True, slots=True)
class AlertsSnapshot:
    """Everything the Alerts pane, the header counts and the banner show after one read."""

    now: float
    """UTC epoch seconds the data was read for."""
    rows: tuple[AlertRow, ...] = ()
    """Alerts in display order: firing first, then by severity, then newest first."""
    counts: AlertCounts = field(default_factory=AlertCounts)
    """Firing alerts per severity, over all alerts whatever the pane's filter."""
    channels: tuple[ChannelStatusRow, ...] = ()
    """Every configured channel and every channel with queued notices, by name."""
    channels_down_for: float | None = None
    """Seconds every channel has been down, once that reached the fallback limit
    (5 minutes); None while any channel works. Drives the red banner."""
    rule_problems: tuple[RuleProblem, ...] = ()
    """Rules whose health is `error`."""
    missed_evaluations: int = 0
    """Evaluations the daemon skipped because the previous one overran."""
    last_evaluation: float | None = None
    """Time of the latest rule evaluation; None before the first."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One stored transition or operator action of an alert."""

    at: float
    """Time of the event."""
    kind: str
    """pending, firing, resolved, acknowledged, unacknowledged, silenced, …"""
    from_state: str | None = None
    to_state: str | None = None
    value: float | None = None
    """The evaluated value at the event."""
    actor: str = "engine"
    """`engine` for evaluations, else the user or API token name."""
    message: str | None = None
    """Acknowledgement note, silence comment or error text."""


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One notice of an alert on one channel with its latest outcome."""

    channel: str
    """Channel name."""
    kind: str
    """firing, resolved, repeat or acknowledge."""
    status: str
    """pending, delivered, dead or held."""
    attempts: int
    """Sends made so far."""
    created_at: float
    """When the notice was queued."""
    delivered_at: float | None = None
    """When the receiver accepted it."""
    next_attempt_at: float | None = None
    """When a pending notice is tried again."""
    last_error_class: str | None = None
    """Named class of the latest failure."""
    last_error: str | None = None
    """One-line message of the latest failure."""
    skipped: bool = False
    """True when the channel does not take this kind of notice, so nothing was sent."""


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """Everything the detail screen shows about one alert."""

    row: AlertRow
    """The alert as listed."""
    now: float
    """UTC epoch seconds the detail was read for."""
    fingerprint: str = ""
    """Instance identity: 16 hex characters."""
    condition: str = ""
    """The rule's condition as written; empty when the rule left the config."""
    annotations: tuple[tuple[str, str], ...] = ()
    """The rule's annotations (`summary`, `runbook_url`, …), sorted by key."""
    fired_at: float | None = None
    resolved_at: float | None = None
    ack_at: float | None = None
    ack_message: str | None = None
    timeline: tuple[TimelineEntry, ...] = ()
    """Events, oldest first."""
    deliveries: tuple[DeliveryRow, ...] = ()
    """Notices per channel, oldest first."""

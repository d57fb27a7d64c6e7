"""The state of one alert instance: the `AlertState` enum, the record and its identity.

`engine.transition` turns one `InstanceState` into the next. The daemon stores the
record after every evaluation and reloads it at start-up, so nothing here may depend
on process memory. Records are frozen: every change is a new record. Timestamps are
UTC epoch seconds.

Allowed transitions (T = condition true, F = false, ND/ER = no data or error
observation after the rule's `nodata_state`/`error_state` mapping). "Open incident"
means the instance fired and has not resolved since.

=========  ========================================  ==========================
from       to                                        when
=========  ========================================  ==========================
inactive   pending                                   T and `for` > 0
inactive   firing                                    T and `for` = 0
pending    firing                                    T for `for` seconds
pending    inactive                                  F
firing     resolved                                  F for `keep_firing_for`
resolved   pending / firing                          T (a new incident)
resolved   inactive                                  F `resolved_retention` after
                                                     the resolve (display only)
any        nodata / error                            ND / ER
nodata     firing                                    T with an open incident
nodata     resolved                                  F with an open incident
nodata     inactive, pending, firing                 otherwise, as from inactive
=========  ========================================  ==========================

`error` behaves as `nodata`. An acknowledgement is not a state but a marker (`ack`)
on the open incident; a new incident starts without one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from collectors.base import Labels, make_labels

__all__ = [
    "Ack",
    "AlertState",
    "ChannelRecord",
    "InstanceState",
    "fingerprint",
]


class AlertState(StrEnum):
    """Life-cycle stage of an alert instance; `str()` is the stored form."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    NODATA = "nodata"
    ERROR = "error"


def fingerprint(rule_id: str, labels: Labels | Mapping[str, str]) -> str:
    """Return the instance identity: sha256 of the rule id and sorted labels, 16 hex chars.

    The labels are sorted first, so the order a collector wrote them in never
    changes the result.
    """
    pairs = make_labels(labels) if isinstance(labels, Mapping) else tuple(sorted(labels))
    payload = json.dumps([rule_id, [list(pair) for pair in pairs]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement of the open incident."""

    by: str
    """User who acknowledged: the SSH user for the console and CLI, the token name for the API."""
    at: float
    message: str


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """Notices queued for one channel about this instance, for cooldown and repeats."""

    channel: str
    incident_seq: int = 0
    """The incident whose firing notice this channel received; 0 for none."""
    last_notice_at: float | None = None
    """Time of the latest firing, repeat or resolved notice; cooldown counts from here."""
    last_firing_at: float | None = None
    """Time of the latest firing or repeat notice; `repeat_interval` counts from here."""
    repeats: int = 0
    """Repeat notices sent for `incident_seq`, numbering their idempotency keys."""


@dataclass(frozen=True, slots=True)
class InstanceState:
    """Everything the engine remembers about one alert instance between evaluations."""

    fingerprint: str
    rule_id: str
    labels: Labels
    state: AlertState = AlertState.INACTIVE
    value: float | None = None
    """Value of the latest evaluation that had one."""
    message: str | None = None
    """Reason for the `nodata` or `error` state; None otherwise."""
    active_since: float | None = None
    """Start of the current pending period, kept through firing; None when inactive."""
    fired_at: float | None = None
    """When the current or latest incident started firing."""
    last_true_at: float | None = None
    first_false_at: float | None = None
    """First false evaluation while firing; `keep_firing_for` counts from here."""
    resolved_at: float | None = None
    """When the latest incident resolved; None while it is open or before the first."""
    incident_seq: int = 0
    """Number of incidents so far; each firing after a resolve adds one."""
    ack: Ack | None = None
    acks: int = 0
    """Acknowledgements of the current incident, numbering their idempotency keys."""
    last_eval: float | None = None
    channels: tuple[ChannelRecord, ...] = ()

    @classmethod
    def new(cls, rule_id: str, labels: Labels) -> InstanceState:
        """Create the inactive record of an instance never evaluated before."""
        return cls(fingerprint(rule_id, labels), rule_id, labels)

    @property
    def incident_id(self) -> str | None:
        """Identifier of the current or latest incident (`<fingerprint>-<n>`), if any."""
        return f"{self.fingerprint}-{self.incident_seq}" if self.incident_seq else None

    @property
    def incident_open(self) -> bool:
        """Whether an incident fired and has not resolved (it may be in nodata or error)."""
        return self.incident_seq > 0 and self.resolved_at is None

    def channel(self, name: str) -> ChannelRecord:
        """Return the record of channel `name`, empty if it was never notified."""
        for record in self.channels:
            if record.channel == name:
                return record
        return ChannelRecord(name)

    def with_channel(self, record: ChannelRecord) -> InstanceState:
        """Return a copy with `record` replacing the channel's previous record."""
        others = tuple(r for r in self.channels if r.channel != record.channel)
        ordered = tuple(sorted((*others, record), key=lambda r: r.channel))
        return replace(self, channels=ordered)

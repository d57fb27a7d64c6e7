"""The channel-neutral notice: what the engine hands to the outbox and the outbox to a channel.

The engine builds one `Notice` per alert instance and event (firing, resolved,
repeat, acknowledge) and the outbox stores it as JSON. Channels render a
`NoticeGroup`, one or more notices delivered as one message; a single notice is a
group of one (`as_group`).

Invariants: times are UTC epoch seconds. `notice_id` is the idempotency key of a
delivery. It is fixed when the notice is created and reused on every retry, as the
webhook's `webhook-id` and in the email's Message-ID.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Ack", "Annotations", "Notice", "NoticeGroup", "NoticeKind", "Severity", "as_group"]

# NOTE: the same set as `atlas_tui.config.Severity`, repeated here so that the config
# module can import the channel models without an import cycle.
Severity = Literal["info", "warning", "error", "critical"]

NoticeKind = Literal["firing", "resolved", "repeat", "acknowledge", "test"]
"""Why a notice is sent: a new firing, its resolve, a repeat of an unacknowledged
firing, an acknowledgement, or a test from `atlas notify test`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ack(_Model):
    """An acknowledgement of a firing incident."""

    by: str
    """User who acknowledged: the SSH user (`$SUDO_USER`, else `$USER`) or the API token name."""
    at: float
    """UTC epoch seconds of the acknowledgement."""
    message: str = ""
    """The operator's note."""


class Annotations(_Model):
    """Rule annotations carried into notifications."""

    summary: str = ""
    """One-line description of the problem."""
    runbook_url: str = ""
    """Link to the runbook; empty when the rule has none."""


class Notice(_Model):
    """One notification about one alert instance."""

    notice_id: str = Field(min_length=1)
    """Idempotency key of this delivery, the same on every retry."""
    kind: NoticeKind
    """Reason for the notice."""
    rule_id: str = Field(min_length=1)
    """Id of the rule from the config (`high_cpu`)."""
    rule_name: str = ""
    """Human-readable rule title; `rule_id` is shown when it is empty."""
    fingerprint: str
    """Alert instance identity: sha256 of rule id and sorted labels, 16 hex characters."""
    incident_id: str
    """Id of this firing episode; a firing after a resolve gets a new one."""
    severity: Severity
    """info, warning, error or critical."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of the series that fired (`{"mount": "/"}`), plus rule labels."""
    annotations: Annotations = Field(default_factory=Annotations)
    """Summary and runbook link."""
    value: float | None = None
    """The observed value at the transition, None when there is none (no data, error)."""
    starts_at: float
    """UTC epoch seconds when the incident started firing."""
    ends_at: float | None = None
    """UTC epoch seconds when it resolved; required for `resolved` notices."""
    ack: Ack | None = None
    """The acknowledgement, when there is one."""
    note: str = ""
    """Extra remark for the reader, for example `resolved during downtime`."""
    created_at: float | None = None
    """UTC epoch seconds when the engine created the notice; the outbox ages notices by it."""

    @model_validator(mode="after")
    def _check_kind_fields(self) -> Notice:
        if self.kind == "resolved" and self.ends_at is None:
            raise ValueError("a resolved notice needs ends_at")
        if self.kind == "acknowledge" and self.ack is None:
            raise ValueError("an acknowledge notice needs ack")
        return self

    @property
    def title(self) -> str:
        """The rule name, or its id when the rule has no name."""
        return self.rule_name or self.rule_id

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """Alertmanager-style status: `resolved` for a resolve, else `firing`."""
        return "resolved" if self.kind == "resolved" else "firing"


class NoticeGroup(_Model):
    """Notices delivered together as one message (one webhook body, one Slack post, one email)."""

    notice_id: str = Field(min_length=1)
    """Idempotency key of the grouped delivery, the same on every retry."""
    group_labels: dict[str, str] = Field(default_factory=dict)
    """Labels the notices were grouped by (`{"alertname": "high_cpu"}`)."""
    notices: list[Notice] = Field(min_length=1)
    """The notices, in the order they should be listed."""

    @property
    def status(self) -> Literal["firing", "resolved"]:
        """`resolved` only when every notice in the group is a resolve."""
        if all(notice.status == "resolved" for notice in self.notices):
            return "resolved"
        return "firing"

    @property
    def is_test(self) -> bool:
        """True when the group is a test from `atlas notify test`."""
        return all(notice.kind == "test" for notice in self.notices)


def as_group(notice: Notice | NoticeGroup) -> NoticeGroup:
    """Wrap a single notice as a group of one, grouped by its rule; pass groups through."""
    if isinstance(notice, NoticeGroup):
        return notice
    return NoticeGroup(
        notice_id=notice.notice_id,
        group_labels={"alertname": notice.rule_id},
        notices=[notice],
    )

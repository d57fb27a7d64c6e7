"""Conversion of the engine's notice intents into channel `Notice` payloads and outbox rows.

The alert service and `actions` call `outbox_items` inside the transaction that
records the transition, then pass the rows to `storage.outbox.enqueue`, so a notice
is queued exactly when its state change commits. The outbox sender later parses
each payload back into `channels.message.Notice`.

Mapping from `engine.NoticeIntent`: `key` becomes `notice_id`, the idempotency key,
so a recomputed notice is never queued twice. It is prefixed with the store's random
namespace (`storage.alerts.notice_namespace`), because keys restart at incident 1
in every store. Without the prefix, two hosts (or a rebuilt store) would send
different notices under one `webhook-id`, and receivers that deduplicate would
drop one. `at` becomes `created_at`, a missing
`starts_at` becomes `at`, and the series labels are merged with the rule's labels and
`alertname` (the rule id). Rule labels win over series labels of the same name, as
in Prometheus. A non-finite value (a division by zero) is sent as no value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from atlas_tui.alerts.channels.message import Ack, Annotations, Notice
from atlas_tui.alerts.engine import NoticeIntent
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.state import InstanceState
from collectors.base import Labels
from storage.outbox import OutboxItem

__all__ = ["build_notice", "display_labels", "outbox_items"]


def display_labels(rule: RuleSpec, labels: Labels) -> dict[str, str]:
    """Return the labels an alert shows and sends: series labels, rule labels, `alertname`."""
    return {**dict(labels), **rule.labels, "alertname": rule.rule_id}


def build_notice(intent: NoticeIntent, rule: RuleSpec, state: InstanceState, namespace: str = "") -> Notice:
    """Build the channel-neutral notice for one intent.

    Args:
        intent: What the engine decided to send.
        rule: The instance's rule, for its name, severity, labels and annotations.
        state: The instance's record after the transition, for its acknowledgement.
        namespace: The store's notice namespace; empty leaves the engine's key as it is.
    """
    ack = state.ack
    return Notice(
        notice_id=f"{namespace}/{intent.key}" if namespace else intent.key,
        kind=str(intent.kind),  # type: ignore[arg-type]
        rule_id=intent.rule_id,
        rule_name=rule.name,
        fingerprint=intent.fingerprint,
        incident_id=intent.incident_id,
        severity=rule.severity,
        labels=display_labels(rule, intent.labels),
        annotations=_annotations(rule.annotations),
        value=intent.value if intent.value is not None and math.isfinite(intent.value) else None,
        starts_at=intent.starts_at if intent.starts_at is not None else intent.at,
        ends_at=intent.ends_at,
        ack=Ack(by=ack.by, at=ack.at, message=ack.message) if ack is not None else None,
        note=intent.note or "",
        created_at=intent.at,
    )


def outbox_items(
    intents: Iterable[NoticeIntent],
    rule: RuleSpec,
    state: InstanceState,
    alert_id: str | None,
    namespace: str = "",
) -> list[OutboxItem]:
    """Return one outbox row per intent, with the notice as its JSON payload.

    Args:
        intents: The transition's notices.
        rule: The instance's rule.
        state: The instance's record after the transition.
        alert_id: Public id of the instance (`alert_<n>`).
        namespace: The store's notice namespace (see `build_notice`).
    """
    items = []
    for intent in intents:
        notice = build_notice(intent, rule, state, namespace)
        items.append(
            OutboxItem(
                notice_id=notice.notice_id,
                channel=intent.channel,
                kind=str(intent.kind),
                alert_id=alert_id,
                fingerprint=intent.fingerprint,
                payload=notice.model_dump_json(),
                created_at=intent.at,
            )
        )
    return items


def _annotations(annotations: Mapping[str, str]) -> Annotations:
    # NOTE: `Notice` carries only summary and runbook_url, so other annotation keys
    # are not sent.
    return Annotations(
        summary=annotations.get("summary", ""),
        runbook_url=annotations.get("runbook_url", ""),
    )

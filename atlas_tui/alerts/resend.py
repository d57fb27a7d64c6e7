"""Re-sends of open incidents to Alertmanager channels, driven by each channel's outbox worker.

Alertmanager resolves an alert that is not sent again before its `endsAt`, and it
expects senders to repeat firing alerts (Prometheus repeats them every minute). The
outbox delivers each transition once. A `Resender` fills the time in between: every
`resend_interval` the channel's worker calls `collect`, which reads the store and
returns one group with every open incident whose firing notice the channel got. The worker
sends that group through the same `dispatch.send` as a queued notice.

Which instances are re-sent: the incident is open (it fired and has not resolved,
also while it is in nodata or error), the instance is not silenced, and its
channel record shows that the current incident's firing notice was queued for this
channel. An incident whose firing notice was held back by cooldown, or suppressed by
a silence, is therefore not re-sent either. Acknowledged incidents are re-sent: an
acknowledgement stops repeat notices to people, but without re-sends Alertmanager
would resolve the alert.

Invariants: the re-send runs in the channel's own worker, between two queued
notices, so one channel sends in one order. A re-send read before a resolve commits
goes out before that resolve's notice and cannot reopen the alert in Alertmanager.
`collect` only reads the store, and nothing here reads the clock.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable

from atlas_tui.alerts.channels.message import Notice, NoticeGroup
from atlas_tui.alerts.channels.models import AlertmanagerChannel, ChannelConfig
from atlas_tui.alerts.channels.result import DeliveryResult
from atlas_tui.alerts.engine import NoticeIntent, NoticeKind
from atlas_tui.alerts.notices import build_notice
from atlas_tui.alerts.rules import RuleSpec
from storage.alerts import StateFormatError, StoredInstance, load_instances

__all__ = ["LOG_REPEAT_INTERVAL", "Resender", "resender_for"]

logger = logging.getLogger(__name__)

LOG_REPEAT_INTERVAL = 60.0
"""Minimum seconds between two log lines about failing re-sends of one channel."""


class Resender:
    """Decide when one Alertmanager channel re-sends its open incidents, and collect them."""

    def __init__(self, channel: str, interval: float, rules: Iterable[RuleSpec]) -> None:
        """Create the resender; the first re-send is due at once.

        Args:
            channel: The channel's name in the config.
            interval: Seconds between two re-sends.
            rules: The loaded rules; only those that list `channel` are re-sent.
        """
        self.channel = channel
        self.interval = interval
        self._rules = {rule.rule_id: rule for rule in rules if channel in rule.channels}
        self.next_at = -math.inf
        """UTC epoch seconds when the next re-send is due."""
        self._failing = False
        self._logged_at = -math.inf

    def due_in(self, now: float) -> float:
        """Return the seconds from `now` until the next re-send, 0 when it is due."""
        return max(0.0, self.next_at - now)

    def collect(self, conn: sqlite3.Connection, now: float) -> NoticeGroup | None:
        """Return one group with a repeat notice per open incident to re-send, or None when there is none.

        **Read-only**, one statement. Runs in a worker thread on the channel's connection.
        """
        if not self._rules:
            return None
        try:
            stored = load_instances(conn, rule_ids=self._rules)
        except StateFormatError as err:
            logger.error("re-send skipped channel=%s: stored alert state unreadable: %s", self.channel, err)
            return None
        notices = [self._notice(item, now) for item in stored if self._selected(item)]
        if not notices:
            return None
        return NoticeGroup(
            notice_id=f"resend/{self.channel}/{now:.3f}",
            group_labels={"channel": self.channel},
            notices=notices,
        )

    def finished(self, result: DeliveryResult | None, count: int, now: float) -> None:
        """Schedule the next re-send after one ended at `now` and log its outcome.

        Args:
            result: The send's outcome; None when nothing was sent.
            count: Alerts in the re-sent group.
            now: UTC epoch seconds when the attempt ended.
        """
        self.next_at = now + self.interval
        if result is None or result.ok:
            if self._failing:
                logger.info("alertmanager re-sends recovered channel=%s alerts=%d", self.channel, count)
            self._failing = False
            return
        if not self._failing or now - self._logged_at >= LOG_REPEAT_INTERVAL:
            logger.warning("alertmanager re-send failed channel=%s alerts=%d status=%s error=%s: %s",
                           self.channel, count, result.status, result.error_class, result.message)
            self._logged_at = now
        self._failing = True

    def _selected(self, item: StoredInstance) -> bool:
        state = item.state
        if item.silenced or not state.incident_open:
            return False
        return state.channel(self.channel).incident_seq == state.incident_seq

    def _notice(self, item: StoredInstance, now: float) -> Notice:
        state = item.state
        rule = self._rules[state.rule_id]
        incident_id = state.incident_id or f"{state.fingerprint}-0"
        intent = NoticeIntent(
            key=f"{incident_id}/{self.channel}/resend",
            kind=NoticeKind.REPEAT,
            channel=self.channel,
            fingerprint=state.fingerprint,
            rule_id=state.rule_id,
            incident_id=incident_id,
            labels=state.labels,
            value=state.value,
            at=now,
            starts_at=state.fired_at,
        )
        return build_notice(intent, rule, state)


def resender_for(name: str, channel: ChannelConfig, rules: Iterable[RuleSpec]) -> Resender | None:
    """Return the resender of an Alertmanager channel, or None for any other kind of channel."""
    if not isinstance(channel, AlertmanagerChannel):
        return None
    return Resender(name, channel.resend_interval, rules)

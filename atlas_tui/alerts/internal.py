"""Internal alerts about ATLAS itself: `NotificationFailing{channel}` from the channels' health.

Each cycle the alert service reads `storage.outbox.channel_health` inside its write
transaction and calls `notification_checks` to get one rule and observation per
configured channel. It then runs them through `engine.transition` like any rule, so
the internal alerts get the same states, history, cooldown and outbox delivery.

Invariants:

- One instance per channel (labels `{channel="…"}`), whatever the number of
  failures: the condition is the channel's state, not its failure count, so 1000
  failed deliveries raise one alert.
- The alert about a channel is never routed to that channel, so a failing channel
  cannot feed its own queue. It goes to every other configured channel.
- It is true while the channel is `failing` or `misconfigured`, and resolves when
  the sender records a success (or a config change releases a misconfigured
  channel). A `degraded` (rate-limited) channel still delivers, so it does not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atlas_tui.alerts.evaluate import Observation, ObservationResult
from atlas_tui.alerts.grammar import Number
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.state import InstanceState
from storage.outbox import ChannelHealthRecord

__all__ = ["FAILING_STATES", "NOTIFICATION_FAILING", "InternalCheck", "is_internal", "notification_checks"]

NOTIFICATION_FAILING = "NotificationFailing"
"""Rule id (and `alertname`) of the internal alert about a channel that cannot deliver."""

FAILING_STATES = frozenset({"failing", "misconfigured"})
"""Channel health states that raise `NotificationFailing`."""

_CONDITION = "channel health is failing or misconfigured"


@dataclass(frozen=True, slots=True)
class InternalCheck:
    """One internal alert instance's rule and this cycle's observation."""

    rule: RuleSpec
    observation: Observation


def is_internal(rule_id: str) -> bool:
    """Return whether `rule_id` belongs to an internal alert rather than the config."""
    return rule_id == NOTIFICATION_FAILING


def notification_checks(
    channels: Sequence[str],
    health: Iterable[ChannelHealthRecord],
    stored: Iterable[InstanceState] = (),
) -> list[InternalCheck]:
    """Return the `NotificationFailing` rule and observation of every channel to evaluate.

    Args:
        channels: Names of the configured channels.
        health: The channels' health rows (`storage.outbox.channel_health`).
        stored: Stored internal instances, so an alert about a channel removed from
            the config still resolves.
    """
    failing = {record.channel: record for record in health if record.state in FAILING_STATES}
    names = set(channels)
    names.update(dict(state.labels).get("channel", "") for state in stored if is_internal(state.rule_id))
    names.discard("")

    checks = []
    for name in sorted(names):
        record = failing.get(name) if name in channels else None
        labels = (("channel", name),)
        value = float(record.consecutive_failures) if record is not None else 0.0
        result = ObservationResult.TRUE if record is not None else ObservationResult.FALSE
        routes = tuple(channel for channel in channels if channel != name)
        checks.append(InternalCheck(_rule(name, routes, record), Observation(labels, value, result)))
    return checks


def _rule(channel: str, routes: tuple[str, ...], record: ChannelHealthRecord | None) -> RuleSpec:
    summary = f"notifications to channel {channel} are failing"
    if record is not None and record.last_error:
        summary += f": {record.last_error_class or 'error'}: {record.last_error}"
    return RuleSpec(
        rule_id=NOTIFICATION_FAILING,
        condition=_CONDITION,
        expr=Number(1.0),
        name="Notification failing",
        severity="error",
        channels=routes,
        annotations={"summary": summary},
    )

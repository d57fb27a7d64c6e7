"""The alert engine's pure transition function and the notices it queues.

Per cycle the daemon evaluates each rule (`evaluate.evaluate`), passes the result and
the rule's stored instances to `transition_rule`, then writes every returned state,
event and notice intent in one transaction; the outbox sends the notices later.
Acknowledgements from the console, CLI and API go through `acknowledge` and
`unacknowledge`. Nothing here reads the clock, logs or does I/O: `now` is the
evaluation time, UTC epoch seconds.

Notice rules, per instance and channel:

- A firing notice goes out once per incident. Cooldown (`RuleSpec.cooldown`) is the
  minimum gap after the channel's previous firing, repeat or resolved notice. A
  firing notice inside the cooldown waits and goes out at the first evaluation after
  the cooldown while the alert is still firing. If the alert resolves before that,
  the channel hears about neither the firing nor the resolve. The instance's state
  and events still show the re-fire.
- A resolved notice goes out at once, but only to channels that received the
  incident's firing notice. When the resolve is seen at the first evaluation after a
  restart and more than two intervals after the previous evaluation, the notice
  says `resolved during downtime`. Its `ends_at` is that evaluation's time.
- A repeat goes out `repeat_interval` after the previous firing or repeat notice,
  only while firing and unacknowledged, and only outside the cooldown.
- An acknowledge notice goes out at the first acknowledgement of an incident, to
  every channel that received its firing notice. The sender decides what it means
  for a channel without an acknowledge action.
- The nodata and error states send no notices of their own.

Notice times in `ChannelRecord` are when a notice was queued, not delivered. Each notice carries an idempotency key built from fingerprint, incident, channel,
kind and sequence number. Evaluating the same stored state again after a crash
yields the same key, so the outbox can drop the duplicate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.evaluate import Evaluation, Observation, ObservationResult
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.state import Ack, AlertState, ChannelRecord, InstanceState, fingerprint
from collectors.base import Labels

__all__ = [
    "DEFAULT_INTERVAL",
    "DOWNTIME_NOTE",
    "AlertEvent",
    "EventKind",
    "NoticeIntent",
    "NoticeKind",
    "TickPlan",
    "Transition",
    "acknowledge",
    "due_ticks",
    "transition",
    "transition_rule",
    "unacknowledge",
]

DEFAULT_INTERVAL = 30.0
"""Seconds between two evaluation cycles unless the config sets another interval."""
DOWNTIME_NOTE = "resolved during downtime"
RESTART_GAP_INTERVALS = 2
"""A gap of more than this many intervals before the first evaluation counts as downtime."""
ENGINE_ACTOR = "engine"


class EventKind(StrEnum):
    """Kind of an entry in an alert's history; `str()` is the stored form."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    NODATA = "nodata"
    ERROR = "error"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"


class NoticeKind(StrEnum):
    """Kind of a notice sent to a channel; `str()` is the stored form."""

    FIRING = "firing"
    RESOLVED = "resolved"
    REPEAT = "repeat"
    ACKNOWLEDGE = "acknowledge"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an instance's history."""

    fingerprint: str
    rule_id: str
    kind: EventKind
    at: float
    value: float | None
    actor: str = ENGINE_ACTOR
    """`engine` for evaluations; the user for acknowledgements."""
    incident_id: str | None = None
    message: str | None = None
    """The nodata or error reason, the acknowledgement message or a downtime note."""


@dataclass(frozen=True, slots=True)
class NoticeIntent:
    """A notice for the outbox to deliver to one channel."""

    key: str
    """Idempotency key, the same however often the same decision is recomputed."""
    kind: NoticeKind
    channel: str
    fingerprint: str
    rule_id: str
    incident_id: str
    labels: Labels
    value: float | None
    at: float
    """When the engine decided to send it."""
    starts_at: float | None
    """When the incident started firing."""
    ends_at: float | None = None
    """When the incident resolved; set on resolved notices only."""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of one step: the record to store, its events and its notices."""

    state: InstanceState
    events: tuple[AlertEvent, ...] = ()
    notices: tuple[NoticeIntent, ...] = ()


@dataclass(frozen=True, slots=True)
class TickPlan:
    """The scheduler's decision at one wake-up."""

    run: bool
    """Whether an evaluation is due."""
    skipped: int
    """Ticks that passed without an evaluation; add them to `missed_evaluations`."""
    tick: float
    """The scheduled time of the tick to run (or of the latest tick when not due)."""


def transition(
    rule: RuleSpec,
    prev: InstanceState | None,
    obs: Observation,
    now: float,
    *,
    after_restart: bool = False,
    interval: float = DEFAULT_INTERVAL,
) -> Transition:
    """Advance one instance by one observation.

    Args:
        rule: The instance's rule.
        prev: The stored record, or None for an instance seen for the first time.
        obs: This evaluation's observation for the instance's labels.
        now: This evaluation's time.
        after_restart: True at the first evaluation after the daemon started.
        interval: Seconds between evaluations, for detecting downtime.

    Returns:
        The new record, the events to record and the notices to queue.
    """
    before = prev if prev is not None else InstanceState.new(rule.rule_id, obs.labels)
    outcome = _outcome(rule, obs)
    if outcome is None:
        return Transition(replace(before, last_eval=now))

    after = _advance(rule, before, outcome, obs, now)
    resolved = before.incident_open and not after.incident_open
    note = _downtime_note(before, now, after_restart, interval) if resolved else None
    events = _state_events(before, after, now, note)
    after, notices = _plan_notices(rule, before, after, now, note)
    return Transition(after, events, notices)


def transition_rule(
    rule: RuleSpec,
    instances: Iterable[InstanceState],
    evaluation: Evaluation,
    now: float,
    *,
    after_restart: bool = False,
    interval: float = DEFAULT_INTERVAL,
) -> list[Transition]:
    """Advance every instance of one rule by one evaluation.

    Observations are matched to stored instances by fingerprint. A stored instance
    with no observation (its series vanished) counts as false. A rule-wide nodata or
    error applies to every instance that is not inactive or resolved, or to the
    instance without labels when there is none.

    Args:
        rule: The rule evaluated.
        instances: The rule's stored records.
        evaluation: The result of `evaluate` for the rule's condition.
        now: The evaluation time.
        after_restart: True at the first evaluation after the daemon started.
        interval: Seconds between evaluations.

    Returns:
        One transition per instance touched.
    """
    stored = {instance.fingerprint: instance for instance in instances}
    step = _Stepper(rule, now, after_restart, interval)
    if evaluation.rule_wide:
        return _apply_rule_wide(step, stored, evaluation.observations[0])

    transitions = []
    for obs in evaluation.observations:
        transitions.append(step(stored.pop(fingerprint(rule.rule_id, obs.labels), None), obs))
    for instance in stored.values():
        if instance.state is not AlertState.INACTIVE:
            vanished = Observation(instance.labels, None, ObservationResult.FALSE)
            transitions.append(step(instance, vanished))
    return transitions


def acknowledge(state: InstanceState, by: str, message: str, now: float) -> Transition:
    """Acknowledge the open incident: no more repeats; its resolve is still sent.

    The first acknowledgement of an incident queues an acknowledge notice for every
    channel that received its firing notice. Acknowledging again replaces the
    message and queues nothing.

    Raises:
        AlertStateError: the instance has no open incident.
    """
    if not state.incident_open:
        raise AlertStateError(
            state.fingerprint, str(state.state), "only a firing alert can be acknowledged"
        )
    first = state.ack is None
    after = replace(state, ack=Ack(by, now, message), acks=state.acks + 1 if first else state.acks)
    event = _event(after, EventKind.ACKNOWLEDGED, now, actor=by, message=message)
    notices: tuple[NoticeIntent, ...] = ()
    if first:
        notices = tuple(
            _notice(after, NoticeKind.ACKNOWLEDGE, record.channel, now, after.acks)
            for record in after.channels
            if record.incident_seq == after.incident_seq
        )
    return Transition(after, (event,), notices)


def unacknowledge(state: InstanceState, by: str, now: float) -> Transition:
    """Remove the acknowledgement of the open incident, so repeats resume.

    Raises:
        AlertStateError: the incident is not acknowledged or no longer open.
    """
    if state.ack is None or not state.incident_open:
        raise AlertStateError(
            state.fingerprint, str(state.state), "there is no acknowledged open incident"
        )
    after = replace(state, ack=None)
    return Transition(after, (_event(after, EventKind.UNACKNOWLEDGED, now, actor=by),))


def due_ticks(last_tick: float | None, now: float, interval: float) -> TickPlan:
    """Decide whether an evaluation is due, skipping ticks that an overrun missed.

    Ticks fall on `last_tick + k * interval`. When several have passed, only the
    latest runs and the others count as skipped, never queued.

    Raises:
        ValueError: `interval` is not positive.
    """
    if interval <= 0:
        raise ValueError(f"expected a positive evaluation interval, got {interval!r}")
    if last_tick is None:
        return TickPlan(True, 0, now)
    # The tolerance keeps float drift from turning an exact tick into a late one.
    ticks = math.floor((now - last_tick) / interval + 1e-9)
    if ticks < 1:
        return TickPlan(False, 0, last_tick)
    return TickPlan(True, ticks - 1, last_tick + ticks * interval)


# --- condition step -------------------------------------------------------------

_OUTCOME_OF_MAPPING = {"ok": ObservationResult.FALSE, "alerting": ObservationResult.TRUE}


def _outcome(rule: RuleSpec, obs: Observation) -> ObservationResult | None:
    """Apply the rule's nodata/error mapping; None means keep the previous state."""
    if obs.result is ObservationResult.NODATA:
        mapping: str = rule.nodata_state
    elif obs.result is ObservationResult.ERROR:
        mapping = rule.error_state
    else:
        return obs.result
    if mapping == "keep_last":
        return None
    return _OUTCOME_OF_MAPPING.get(mapping, obs.result)


def _advance(
    rule: RuleSpec, state: InstanceState, outcome: ObservationResult, obs: Observation, now: float
) -> InstanceState:
    value = obs.value if obs.value is not None else state.value
    state = replace(state, last_eval=now, value=value)
    if outcome is ObservationResult.TRUE:
        return _on_true(rule, state, now)
    if outcome is ObservationResult.FALSE:
        return _on_false(rule, state, now)
    problem = AlertState.NODATA if outcome is ObservationResult.NODATA else AlertState.ERROR
    return _on_problem(state, problem, obs.message)


def _on_true(rule: RuleSpec, state: InstanceState, now: float) -> InstanceState:
    state = replace(state, last_true_at=now, first_false_at=None, message=None)
    if state.incident_open:
        return replace(state, state=AlertState.FIRING)
    if state.state is AlertState.PENDING and state.active_since is not None:
        return _fire(state, now) if now - state.active_since >= rule.for_ else state
    state = replace(state, active_since=now)
    return _fire(state, now) if rule.for_ <= 0 else replace(state, state=AlertState.PENDING)


def _fire(state: InstanceState, now: float) -> InstanceState:
    return replace(
        state,
        state=AlertState.FIRING,
        fired_at=now,
        resolved_at=None,
        incident_seq=state.incident_seq + 1,
        ack=None,
        acks=0,
    )


def _on_false(rule: RuleSpec, state: InstanceState, now: float) -> InstanceState:
    state = replace(state, message=None)
    if state.incident_open:
        if state.state is AlertState.FIRING and rule.keep_firing_for > 0:
            first_false = state.first_false_at if state.first_false_at is not None else now
            if now - first_false < rule.keep_firing_for:
                return replace(state, first_false_at=first_false)
        return replace(
            state, state=AlertState.RESOLVED, resolved_at=now, first_false_at=None, active_since=None
        )
    if state.state is AlertState.RESOLVED:
        expired = state.resolved_at is None or now - state.resolved_at >= rule.resolved_retention
        return replace(state, state=AlertState.INACTIVE) if expired else state
    return replace(state, state=AlertState.INACTIVE, active_since=None)


def _on_problem(state: InstanceState, problem: AlertState, message: str | None) -> InstanceState:
    # A pending period cannot survive a gap in the data; an open incident can.
    active_since = state.active_since if state.incident_open else None
    return replace(state, state=problem, message=message, active_since=active_since)


def _downtime_note(
    before: InstanceState, now: float, after_restart: bool, interval: float
) -> str | None:
    if not after_restart or before.last_eval is None:
        return None
    return DOWNTIME_NOTE if now - before.last_eval > RESTART_GAP_INTERVALS * interval else None


def _state_events(
    before: InstanceState, after: InstanceState, now: float, note: str | None
) -> tuple[AlertEvent, ...]:
    if after.state is before.state:
        return ()
    # Expiry of a resolved instance only tidies the console list; it is not history.
    if before.state is AlertState.RESOLVED and after.state is AlertState.INACTIVE:
        return ()
    message = after.message if after.state in (AlertState.NODATA, AlertState.ERROR) else note
    return (_event(after, EventKind(str(after.state)), now, message=message),)


def _event(
    state: InstanceState, kind: EventKind, now: float, *, actor: str = ENGINE_ACTOR, message: str | None = None
) -> AlertEvent:
    return AlertEvent(
        state.fingerprint, state.rule_id, kind, now, state.value, actor, state.incident_id, message
    )


# --- notices --------------------------------------------------------------------


def _plan_notices(
    rule: RuleSpec, before: InstanceState, after: InstanceState, now: float, note: str | None
) -> tuple[InstanceState, tuple[NoticeIntent, ...]]:
    notices = []
    resolved = before.incident_open and not after.incident_open
    for channel in rule.channels:
        record = after.channel(channel)
        if resolved:
            planned = _resolved_notice(after, record, now, note)
        else:
            planned = _firing_notice(rule, after, record, now)
        if planned is not None:
            notice, record = planned
            notices.append(notice)
            after = after.with_channel(record)
    return after, tuple(notices)


_Planned = tuple[NoticeIntent, ChannelRecord]


def _resolved_notice(
    state: InstanceState, record: ChannelRecord, now: float, note: str | None
) -> _Planned | None:
    if record.incident_seq != state.incident_seq:
        return None
    notice = _notice(state, NoticeKind.RESOLVED, record.channel, now, 0, note=note)
    return notice, replace(record, last_notice_at=now)


def _firing_notice(
    rule: RuleSpec, state: InstanceState, record: ChannelRecord, now: float
) -> _Planned | None:
    if state.state is not AlertState.FIRING:
        return None
    cooled = record.last_notice_at is None or now - record.last_notice_at >= rule.cooldown
    if not cooled:
        return None
    if record.incident_seq != state.incident_seq:
        notice = _notice(state, NoticeKind.FIRING, record.channel, now, 0)
        sent = ChannelRecord(record.channel, state.incident_seq, now, now, 0)
        return notice, sent
    if _repeat_due(rule, state, record, now):
        repeats = record.repeats + 1
        notice = _notice(state, NoticeKind.REPEAT, record.channel, now, repeats)
        return notice, replace(record, last_notice_at=now, last_firing_at=now, repeats=repeats)
    return None


def _repeat_due(rule: RuleSpec, state: InstanceState, record: ChannelRecord, now: float) -> bool:
    if state.ack is not None or not rule.repeat_interval or record.last_firing_at is None:
        return False
    return now - record.last_firing_at >= rule.repeat_interval


def _notice(
    state: InstanceState,
    kind: NoticeKind,
    channel: str,
    now: float,
    sequence: int,
    *,
    note: str | None = None,
) -> NoticeIntent:
    incident_id = state.incident_id or f"{state.fingerprint}-0"
    return NoticeIntent(
        key=f"{incident_id}/{channel}/{kind}/{sequence}",
        kind=kind,
        channel=channel,
        fingerprint=state.fingerprint,
        rule_id=state.rule_id,
        incident_id=incident_id,
        labels=state.labels,
        value=state.value,
        at=now,
        starts_at=state.fired_at,
        ends_at=now if kind is NoticeKind.RESOLVED else None,
        note=note,
    )


class _Stepper:
    """`transition` with the arguments shared by one rule's cycle bound."""

    def __init__(self, rule: RuleSpec, now: float, after_restart: bool, interval: float) -> None:
        self.rule = rule
        self.now = now
        self.after_restart = after_restart
        self.interval = interval

    def __call__(self, prev: InstanceState | None, obs: Observation) -> Transition:
        return transition(
            self.rule, prev, obs, self.now, after_restart=self.after_restart, interval=self.interval
        )


def _apply_rule_wide(
    step: _Stepper, stored: dict[str, InstanceState], problem: Observation
) -> list[Transition]:
    quiet = (AlertState.INACTIVE, AlertState.RESOLVED)
    targets = [instance for instance in stored.values() if instance.state not in quiet]
    if not targets:
        rule_id = step.rule.rule_id
        targets = [stored.get(fingerprint(rule_id, ())) or InstanceState.new(rule_id, ())]
    return [step(instance, replace(problem, labels=instance.labels)) for instance in targets]

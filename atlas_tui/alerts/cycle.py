"""The write phase of alerting: from transitions to the instance, history and outbox rows.

The alert service builds one `CyclePlanner` per evaluation cycle, inside the BEGIN
IMMEDIATE transaction that loaded the stored instances. It feeds the planner every
rule's evaluation, the internal checks and the instances of rules that left the
config, then calls `write_plan` before the commit. `actions` uses `CyclePlanner.record`
and `write_plan` for acknowledgements, so both paths write rows the same way.

Decisions made here:

- A silenced instance is advanced with its rule's channels removed, so it changes
  state and history as usual but queues no notice and marks no channel as
  notified. After the silence ends, a still-firing alert gets its firing notice at
  the next cycle (subject to cooldown).
- An instance that is inactive and stays inactive is not written, so the store
  holds only series that were ever pending or worse. A FALSE observation of a
  series never stored is dropped before it reaches the engine, which gives the
  same result faster.
- The `silenced` flag is set only while the instance is not inactive, and turning
  it on or off is a history row (`silenced` with the silence's author, or
  `unsilenced`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from atlas_tui.alerts.engine import (
    DEFAULT_INTERVAL,
    ENGINE_ACTOR,
    AlertEvent,
    NoticeIntent,
    Transition,
    transition,
    transition_rule,
)
from atlas_tui.alerts.evaluate import Evaluation, Observation, ObservationResult
from atlas_tui.alerts.grammar import Number
from atlas_tui.alerts.internal import InternalCheck
from atlas_tui.alerts.notices import display_labels, outbox_items
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.silences import Silencer, matchable_labels
from atlas_tui.alerts.state import AlertState, InstanceState
from storage.alerts import (
    EventRow,
    InstanceRow,
    StoredInstance,
    insert_events,
    notice_namespace,
    save_instances,
)
from storage.outbox import enqueue
from storage.silences import SilenceRecord

__all__ = ["CyclePlan", "CyclePlanner", "PlannedNotice", "placeholder_rule", "write_plan"]

_STATE_KINDS = frozenset(str(state) for state in AlertState)


@dataclass(frozen=True, slots=True)
class PlannedNotice:
    """The notices of one transition, with what is needed to build their payloads."""

    intents: tuple[NoticeIntent, ...]
    rule: RuleSpec
    state: InstanceState


@dataclass(slots=True)
class CyclePlan:
    """Rows to write at the end of a cycle; event rows get their alert id at write time."""

    instances: list[InstanceRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    notices: list[PlannedNotice] = field(default_factory=list)

    @property
    def notice_count(self) -> int:
        """Number of notices planned, before the outbox drops duplicates."""
        return sum(len(planned.intents) for planned in self.notices)


def write_plan(conn: sqlite3.Connection, plan: CyclePlan, now: float) -> int:
    """Write the plan's instances, history rows and outbox rows; return the outbox rows added.

    **Writes** in the caller's transaction (savepoints only), so the state changes,
    their history and their notices commit together or not at all.
    """
    ids = save_instances(conn, plan.instances, now)
    insert_events(conn, [replace(event, alert_id=ids[event.fingerprint]) for event in plan.events])
    if not plan.notices:
        return 0
    namespace = notice_namespace(conn)
    items = [
        item
        for planned in plan.notices
        for item in outbox_items(
            planned.intents, planned.rule, planned.state, f"alert_{ids[planned.state.fingerprint]}", namespace
        )
    ]
    return enqueue(conn, items)


def placeholder_rule(stored: StoredInstance, channels: Collection[str] = ()) -> RuleSpec:
    """Return a stand-in rule for an instance whose rule is no longer loaded.

    It keeps the stored name and severity and routes only to `channels` that
    received the instance's current incident, so a resolve reaches who heard the firing.
    """
    state = stored.state
    routes = tuple(
        record.channel
        for record in state.channels
        if record.channel in channels and record.incident_seq == state.incident_seq
    )
    return RuleSpec(
        rule_id=state.rule_id,
        condition="",
        expr=Number(0.0),
        name=stored.rule_name,
        severity=stored.severity,  # type: ignore[arg-type]
        channels=routes,
    )


class CyclePlanner:
    """Advance instances for one cycle and collect the rows to write."""

    def __init__(
        self,
        now: float,
        *,
        after_restart: bool = False,
        interval: float = DEFAULT_INTERVAL,
        silencer: Silencer | None = None,
    ) -> None:
        """Prepare a cycle at `now`.

        Args:
            now: The evaluation time.
            after_restart: True at the first evaluation after the daemon started.
            interval: Seconds between evaluations, for downtime detection.
            silencer: The silences active at `now`; None for none.
        """
        self.now = now
        self.after_restart = after_restart
        self.interval = interval
        self.silencer = silencer
        self.plan = CyclePlan()

    def rule(self, rule: RuleSpec, evaluation: Evaluation, stored: Sequence[StoredInstance]) -> None:
        """Advance every instance of one rule by its evaluation."""
        previous = {s.state.fingerprint: s for s in stored}
        evaluation = self._without_quiet(evaluation, stored)
        states = [s.state for s in stored]
        steps = self._transition_rule(rule, states, evaluation)
        silences = [self._silence(rule, step.state) for step in steps]
        if any(silence is not None for silence in silences):
            muted = self._transition_rule(replace(rule, channels=()), states, evaluation)
            steps = [quiet if silence else step for step, quiet, silence in zip(steps, muted, silences)]
        for step, silence in zip(steps, silences):
            prev = previous.get(step.state.fingerprint)
            self.record(rule, prev, step, silenced=silence is not None, silence=silence)

    def internal(self, check: InternalCheck, prev: StoredInstance | None) -> None:
        """Advance one internal alert instance by its observation."""
        self.single(check.rule, prev, check.observation)

    def orphan(self, stored: StoredInstance, channels: Collection[str], error: str | None) -> None:
        """Advance an instance whose rule is gone (false) or broken (`error`, when given)."""
        if stored.state.state is AlertState.INACTIVE:
            return
        result = ObservationResult.ERROR if error else ObservationResult.FALSE
        observation = Observation(stored.state.labels, None, result, error)
        self.single(placeholder_rule(stored, channels), stored, observation)

    def single(self, rule: RuleSpec, prev: StoredInstance | None, observation: Observation) -> None:
        """Advance one instance by one observation, honouring silences."""
        before = prev.state if prev is not None else None
        step = self._transition(rule, before, observation)
        silence = self._silence(rule, step.state)
        if silence is not None:
            step = self._transition(replace(rule, channels=()), before, observation)
        self.record(rule, prev, step, silenced=silence is not None, silence=silence)

    def record(
        self,
        rule: RuleSpec,
        prev: StoredInstance | None,
        step: Transition,
        *,
        silenced: bool,
        silence: SilenceRecord | None = None,
    ) -> None:
        """Add one transition's rows to the plan, unless nothing worth storing changed.

        Args:
            rule: The instance's rule (or a `placeholder_rule`).
            prev: The stored instance before the step; None for a new one.
            step: The engine's result.
            silenced: Whether a silence matches the instance now.
            silence: The matching silence, named in the `silenced` history row.
        """
        state = step.state
        flag = silenced and state.state is not AlertState.INACTIVE
        was_flagged = prev.silenced if prev is not None else False
        if not step.events and not step.notices and flag == was_flagged and _inactive_unchanged(prev, state):
            return

        before = prev.state.state if prev is not None else AlertState.INACTIVE
        self.plan.events.extend(_event_row(event, before, state.state) for event in step.events)
        if flag != was_flagged and (flag or state.state is not AlertState.INACTIVE):
            self.plan.events.append(self._silence_row(state, flag, silence))
        self.plan.instances.append(
            InstanceRow(
                state=state,
                rule_name=rule.name,
                severity=rule.severity,
                labels=display_labels(rule, state.labels),
                silenced=flag,
                row_id=prev.row_id if prev is not None else None,
            )
        )
        if step.notices:
            self.plan.notices.append(PlannedNotice(step.notices, rule, state))

    def _transition(self, rule: RuleSpec, prev: InstanceState | None, observation: Observation) -> Transition:
        return transition(
            rule, prev, observation, self.now, after_restart=self.after_restart, interval=self.interval
        )

    def _transition_rule(
        self, rule: RuleSpec, states: list[InstanceState], evaluation: Evaluation
    ) -> list[Transition]:
        return transition_rule(
            rule, states, evaluation, self.now, after_restart=self.after_restart, interval=self.interval
        )

    @staticmethod
    def _without_quiet(evaluation: Evaluation, stored: Sequence[StoredInstance]) -> Evaluation:
        if evaluation.rule_wide:
            return evaluation
        # Within one rule the fingerprint is a function of the labels alone, so
        # comparing labels finds the stored instances without hashing anything.
        known = {s.state.labels for s in stored}
        false = ObservationResult.FALSE
        kept = tuple(obs for obs in evaluation.observations if obs.result is not false or obs.labels in known)
        if len(kept) == len(evaluation.observations):
            return evaluation
        return replace(evaluation, observations=kept)

    def _silence(self, rule: RuleSpec, state: InstanceState) -> SilenceRecord | None:
        if not self.silencer or state.state is AlertState.INACTIVE:
            return None
        labels = matchable_labels(rule.rule_id, rule.severity, display_labels(rule, state.labels))
        return self.silencer.match(labels)

    def _silence_row(self, state: InstanceState, silenced: bool, silence: SilenceRecord | None) -> EventRow:
        if silenced and silence is not None:
            actor, message = silence.created_by, f"{silence.silence_id} {silence.matchers}: {silence.comment}"
        else:
            actor, message = ENGINE_ACTOR, "no active silence matches any more"
        return EventRow(
            alert_id=0,
            fingerprint=state.fingerprint,
            rule_id=state.rule_id,
            incident_id=state.incident_id,
            at=self.now,
            kind="silenced" if silenced else "unsilenced",
            from_state=None,
            to_state=None,
            value=state.value,
            actor=actor,
            message=message,
        )


def _event_row(event: AlertEvent, before: AlertState, after: AlertState) -> EventRow:
    is_state = str(event.kind) in _STATE_KINDS
    return EventRow(
        alert_id=0,
        fingerprint=event.fingerprint,
        rule_id=event.rule_id,
        incident_id=event.incident_id,
        at=event.at,
        kind=str(event.kind),
        from_state=str(before) if is_state else None,
        to_state=str(after) if is_state else None,
        value=event.value,
        actor=event.actor,
        message=event.message,
    )


def _inactive_unchanged(prev: StoredInstance | None, state: InstanceState) -> bool:
    if state.state is not AlertState.INACTIVE:
        return False
    if prev is None:
        return True
    if prev.state.state is not AlertState.INACTIVE:
        return False
    return replace(state, last_eval=prev.state.last_eval, value=prev.state.value) == prev.state


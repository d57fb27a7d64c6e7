"""Notices: repeats, cooldown, acknowledgements, idempotency keys and restarts per rule."""

from __future__ import annotations

import pytest

from atlas_tui.alerts.engine import (
    EventKind,
    NoticeKind,
    Transition,
    acknowledge,
    transition,
    transition_rule,
    unacknowledge,
)
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.evaluate import Evaluation, Observation, ObservationResult
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.state import AlertState, InstanceState
from collectors.base import Labels, make_labels

T, F = "true", "false"
HOUR = 3600.0
Step = tuple[float, str, str, list[str]]
"""(now, observation result, expected state, expected notice kinds)."""


def rule(**fields: object) -> RuleSpec:
    fields.setdefault("channels", ("email",))
    fields.setdefault("cooldown", 0.0)
    return RuleSpec.from_condition("high_cpu", "cpu_usage > 80", **fields)


def observe(result: str, labels: Labels = ()) -> Observation:
    return Observation(labels, 90.0 if result == T else 10.0, ObservationResult(result))


def play(spec: RuleSpec, steps: list[Step], state: InstanceState | None = None) -> InstanceState | None:
    """Run the steps, checking state and notices after each, and return the last state."""
    for now, result, expected_state, expected_notices in steps:
        step = transition(spec, state, observe(result), now)
        assert (now, str(step.state.state)) == (now, expected_state)
        assert (now, [str(n.kind) for n in step.notices]) == (now, expected_notices)
        state = step.state
    return state


def fire(spec: RuleSpec) -> Transition:
    return transition(spec, None, observe(T), 0)


REPEATS: list[Step] = [
    (0, T, "firing", ["firing"]),
    (4 * HOUR - 30, T, "firing", []),
    (4 * HOUR, T, "firing", ["repeat"]),
    (4 * HOUR + 30, T, "firing", []),
    (8 * HOUR - 30, T, "firing", []),
    (8 * HOUR + 15, T, "firing", ["repeat"]),
]


def test_repeat_interval() -> None:
    """A firing, unacknowledged alert is re-notified every `repeat_interval`, not before."""
    play(rule(repeat_interval=4 * HOUR), REPEATS)


def test_no_repeat_by_default() -> None:
    """Without `repeat_interval` a firing alert is notified once."""
    play(rule(), [(0, T, "firing", ["firing"]), (24 * HOUR, T, "firing", [])])


REFIRE_IN_COOLDOWN: list[Step] = [
    (0, T, "firing", ["firing"]),
    (60, F, "resolved", ["resolved"]),
    (120, T, "firing", []),
    (930, T, "firing", []),
    (960, T, "firing", ["firing"]),
]

REFIRE_RESOLVED_IN_COOLDOWN: list[Step] = [
    (0, T, "firing", ["firing"]),
    (60, F, "resolved", ["resolved"]),
    (120, T, "firing", []),
    (300, F, "resolved", []),
    (1000, T, "firing", ["firing"]),
]


@pytest.mark.parametrize(
    "steps", [REFIRE_IN_COOLDOWN, REFIRE_RESOLVED_IN_COOLDOWN], ids=["still-firing", "resolved-again"]
)
def test_cooldown_delays_refire(steps: list[Step]) -> None:
    """A re-fire inside the cooldown waits; it is dropped if it resolves meanwhile."""
    play(rule(cooldown=900.0), steps)


def test_cooldown_keeps_history() -> None:
    """A re-fire inside the cooldown still shows in the events."""
    spec = rule(cooldown=900.0)
    state = None
    kinds = []
    for now, result in [(0, T), (60, F), (120, T)]:
        step = transition(spec, state, observe(result), now)
        kinds.extend(str(e.kind) for e in step.events)
        state = step.state
    assert kinds == ["firing", "resolved", "firing"]


def test_cooldown_gates_repeats() -> None:
    """A repeat never comes sooner than the cooldown after the previous notice."""
    steps: list[Step] = [
        (0, T, "firing", ["firing"]),
        (60, F, "resolved", ["resolved"]),
        (90, T, "firing", []),
        (900, T, "firing", []),
        (960, T, "firing", ["firing"]),
        (1560, T, "firing", []),
        (1830, T, "firing", []),
        (1860, T, "firing", ["repeat"]),
    ]
    play(rule(cooldown=900.0, repeat_interval=600.0), steps)


def test_notices_per_channel() -> None:
    """Each channel gets its own notice with its own key."""
    step = fire(rule(channels=("email", "slack")))
    assert [n.channel for n in step.notices] == ["email", "slack"]
    assert len({n.key for n in step.notices}) == 2


def test_notice_contents() -> None:
    """A firing notice names the instance, incident, value and start time."""
    notice = fire(rule()).notices[0]
    assert notice.kind is NoticeKind.FIRING
    assert notice.incident_id == f"{notice.fingerprint}-1"
    assert (notice.value, notice.starts_at, notice.ends_at) == (90.0, 0, None)


def test_keys_stable_on_recompute() -> None:
    """Recomputing a step from the same stored record yields the same keys."""
    spec = rule(channels=("email", "slack"))
    first = [n.key for n in fire(spec).notices]
    again = [n.key for n in fire(spec).notices]
    assert first == again


def test_keys_distinct_per_notice() -> None:
    """Firing, repeats, acknowledge and resolve of one incident have distinct keys."""
    spec = rule(repeat_interval=HOUR)
    keys = []
    step = fire(spec)
    keys += [n.key for n in step.notices]
    for now in (HOUR, 2 * HOUR):
        step = transition(spec, step.state, observe(T), now)
        keys += [n.key for n in step.notices]
    step = acknowledge(step.state, "alice", "on it", 2 * HOUR + 1)
    keys += [n.key for n in step.notices]
    step = transition(spec, step.state, observe(F), 2 * HOUR + 30)
    keys += [n.key for n in step.notices]
    assert len(keys) == 5
    assert len(set(keys)) == 5


def test_ack_stops_repeats_not_resolve() -> None:
    """Once acknowledged, an alert gets no repeats but its resolved notice is still sent."""
    spec = rule(repeat_interval=HOUR, channels=("email", "webhook"))
    acked = acknowledge(fire(spec).state, "alice", "looking", 60)
    steps: list[Step] = [
        (HOUR, T, "firing", []),
        (3 * HOUR, T, "firing", []),
        (3 * HOUR + 30, F, "resolved", ["resolved", "resolved"]),
    ]
    play(spec, steps, acked.state)


def test_ack_notice_and_event() -> None:
    """An acknowledgement queues an acknowledge notice per channel and records who acked."""
    spec = rule(channels=("email", "webhook"))
    acked = acknowledge(fire(spec).state, "alice", "looking", 60)
    assert [(str(n.kind), n.channel) for n in acked.notices] == [
        ("acknowledge", "email"),
        ("acknowledge", "webhook"),
    ]
    assert [(e.kind, e.actor, e.message, e.at) for e in acked.events] == [
        (EventKind.ACKNOWLEDGED, "alice", "looking", 60)
    ]
    assert (acked.state.ack.by, acked.state.ack.message) == ("alice", "looking")  # type: ignore[union-attr]


def test_reack_sends_nothing() -> None:
    """Acknowledging again updates the message and queues no notice."""
    first = acknowledge(fire(rule()).state, "alice", "looking", 60)
    second = acknowledge(first.state, "bob", "fixing", 90)
    assert second.notices == ()
    assert second.state.ack.message == "fixing"  # type: ignore[union-attr]


def test_ack_only_notified_channels() -> None:
    """A channel still waiting out its cooldown gets no acknowledge notice."""
    spec = rule(cooldown=900.0)
    state = play(spec, [(0, T, "firing", ["firing"]), (60, F, "resolved", ["resolved"]), (120, T, "firing", [])])
    assert acknowledge(state, "alice", "", 130).notices == ()  # type: ignore[arg-type]


def test_unack_resumes_repeats() -> None:
    """After an unacknowledge, a repeat that came due is sent at the next evaluation."""
    spec = rule(repeat_interval=HOUR)
    acked = acknowledge(fire(spec).state, "alice", "", 60)
    quiet = transition(spec, acked.state, observe(T), 2 * HOUR)
    unacked = unacknowledge(quiet.state, "alice", 2 * HOUR + 10)
    resumed = transition(spec, unacked.state, observe(T), 2 * HOUR + 30)
    assert [str(e.kind) for e in unacked.events] == ["unacknowledged"]
    assert [str(n.kind) for n in resumed.notices] == ["repeat"]


def test_ack_cleared_by_new_incident() -> None:
    """An acknowledgement does not carry over to the next incident."""
    spec = rule()
    acked = acknowledge(fire(spec).state, "alice", "", 10)
    resolved = transition(spec, acked.state, observe(F), 30)
    refired = transition(spec, resolved.state, observe(T), 60)
    assert resolved.state.ack is not None
    assert refired.state.ack is None
    assert refired.state.incident_id != acked.state.incident_id


def test_ack_rejects_resolved() -> None:
    """Acknowledging a resolved alert is rejected with its state."""
    resolved = transition(rule(), fire(rule()).state, observe(F), 30).state
    with pytest.raises(AlertStateError, match="is resolved: only a firing alert"):
        acknowledge(resolved, "alice", "", 40)


def test_ack_rejects_pending() -> None:
    """Acknowledging a pending alert is rejected."""
    pending = transition(rule(for_=60.0), None, observe(T), 0).state
    with pytest.raises(AlertStateError, match="is pending"):
        acknowledge(pending, "alice", "", 10)


def test_unack_needs_ack() -> None:
    """Unacknowledging an alert that is not acknowledged is rejected."""
    with pytest.raises(AlertStateError, match="no acknowledged open incident"):
        unacknowledge(fire(rule()).state, "alice", 10)


def disks(count: int) -> list[Labels]:
    return [make_labels(mount=f"/mnt/{i}") for i in range(count)]


def evaluation(results: dict[Labels, str]) -> Evaluation:
    return Evaluation(tuple(observe(result, labels) for labels, result in sorted(results.items())))


def notices_of(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(str(n.kind), dict(n.labels)["mount"]) for t in transitions for n in t.notices]


def twenty_firing(spec: RuleSpec) -> list[InstanceState]:
    first = transition_rule(spec, [], evaluation({labels: T for labels in disks(20)}), 0)
    assert len(notices_of(first)) == 20
    return [t.state for t in first]


def test_restart_unchanged_no_notices() -> None:
    """Restarting with twenty alerts firing and nothing changed sends nothing."""
    spec = rule(repeat_interval=4 * HOUR)
    stored = twenty_firing(spec)
    after = transition_rule(spec, stored, evaluation({labels: T for labels in disks(20)}), 300, after_restart=True)
    assert notices_of(after) == []


def test_restart_one_changed_one_notice() -> None:
    """Restarting after one condition changed sends exactly one notice, for that alert."""
    spec = rule(repeat_interval=4 * HOUR)
    stored = twenty_firing(spec)
    results = {labels: T for labels in disks(20)}
    results[make_labels(mount="/mnt/7")] = F
    after = transition_rule(spec, stored, evaluation(results), 300, after_restart=True)
    assert notices_of(after) == [("resolved", "/mnt/7")]


def test_restart_new_alert_one_notice() -> None:
    """A condition that became true while down gives one firing notice at start-up."""
    spec = rule()
    stored = twenty_firing(spec)
    results = {labels: T for labels in disks(21)}
    after = transition_rule(spec, stored, evaluation(results), 300, after_restart=True)
    assert notices_of(after) == [("firing", "/mnt/20")]


def test_vanished_series_resolves() -> None:
    """An instance whose series is gone counts as false and resolves."""
    spec = rule()
    stored = twenty_firing(spec)
    results = {labels: T for labels in disks(19)}
    after = transition_rule(spec, stored, evaluation(results), 30)
    assert notices_of(after) == [("resolved", "/mnt/19")]


def rule_wide(result: ObservationResult) -> Evaluation:
    return Evaluation((Observation((), None, result, "unknown metric disk_usage"),), rule_wide=True)


def test_rule_wide_nodata_hits_active() -> None:
    """A rule-wide nodata moves every firing instance to nodata, without notices."""
    spec = rule()
    stored = twenty_firing(spec)
    after = transition_rule(spec, stored, rule_wide(ObservationResult.NODATA), 30)
    assert {t.state.state for t in after} == {AlertState.NODATA}
    assert len(after) == 20
    assert notices_of(after) == []


def test_rule_wide_error_without_active() -> None:
    """With nothing active, a rule-wide error goes to one label-less instance."""
    after = transition_rule(rule(), [], rule_wide(ObservationResult.ERROR), 30)
    assert [(t.state.labels, t.state.state) for t in after] == [((), AlertState.ERROR)]


def test_rule_wide_instance_clears() -> None:
    """When data returns, the label-less nodata instance goes back to inactive."""
    spec = rule()
    problem = transition_rule(spec, [], rule_wide(ObservationResult.NODATA), 30)
    back = transition_rule(spec, [t.state for t in problem], evaluation({disks(1)[0]: F}), 60)
    states = {t.state.labels: t.state.state for t in back}
    assert states == {(): AlertState.INACTIVE, disks(1)[0]: AlertState.INACTIVE}

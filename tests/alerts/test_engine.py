"""The pure transition function: pending, firing, keep-firing, nodata/error, restarts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from atlas_tui.alerts.engine import (
    DOWNTIME_NOTE,
    EventKind,
    TickPlan,
    Transition,
    due_ticks,
    transition,
)
from atlas_tui.alerts.evaluate import Observation, ObservationResult
from atlas_tui.alerts.rules import RuleSpec
from atlas_tui.alerts.state import AlertState, InstanceState, fingerprint
from collectors.base import make_labels

T, F, ND, ER = "true", "false", "nodata", "error"
Step = tuple[float, str, str, list[str]]
"""(now, observation result, expected state, expected notice kinds)."""


def rule(**fields: object) -> RuleSpec:
    """A `cpu_usage > 80` rule on one channel with no cooldown unless overridden."""
    fields.setdefault("channels", ("email",))
    fields.setdefault("cooldown", 0.0)
    return RuleSpec.from_condition("high_cpu", "cpu_usage > 80", **fields)


def observe(result: str, value: float | None = None) -> Observation:
    if value is None and result in (T, F):
        value = 90.0 if result == T else 10.0
    message = {ND: "no data for cpu_usage in the last 5m", ER: "source of cpu_usage failed: boom"}.get(result)
    return Observation((), value, ObservationResult(result), message)


def play(spec: RuleSpec, steps: list[Step], state: InstanceState | None = None) -> InstanceState | None:
    """Run the steps, checking state and notices after each, and return the last state."""
    for now, result, expected_state, expected_notices in steps:
        step = transition(spec, state, observe(result), now)
        assert (now, str(step.state.state)) == (now, expected_state)
        assert (now, [str(n.kind) for n in step.notices]) == (now, expected_notices)
        state = step.state
    return state


def run(spec: RuleSpec, steps: list[tuple[float, str]], state: InstanceState | None = None) -> list[Transition]:
    """Run observations without checks and return every transition."""
    transitions = []
    for now, result in steps:
        step = transition(spec, state, observe(result), now)
        transitions.append(step)
        state = step.state
    return transitions


HOLD_TWO_MINUTES: list[Step] = [
    (0, T, "pending", []),
    (30, T, "pending", []),
    (60, T, "pending", []),
    (90, T, "pending", []),
    (120, T, "firing", ["firing"]),
    (150, T, "firing", []),
]

HOLD_INTERRUPTED: list[Step] = [
    (0, T, "pending", []),
    (30, T, "pending", []),
    (60, T, "pending", []),
    (90, T, "pending", []),
    (120, F, "inactive", []),
    (150, T, "pending", []),
    (180, T, "pending", []),
    (210, T, "pending", []),
    (240, T, "pending", []),
    (270, T, "firing", ["firing"]),
]


@pytest.mark.parametrize("steps", [HOLD_TWO_MINUTES, HOLD_INTERRUPTED], ids=["held", "interrupted"])
def test_hold_duration(steps: list[Step]) -> None:
    """With `for: 2m` a rule fires at the fifth true evaluation, restarting after a false."""
    play(rule(for_=120.0), steps)


def test_no_hold_fires_at_once() -> None:
    """Without `for`, the first true evaluation fires."""
    play(rule(), [(0, T, "firing", ["firing"])])


KEEP_FIRING: list[Step] = [
    (0, T, "firing", ["firing"]),
    (270, T, "firing", []),
    (300, F, "firing", []),
    (330, F, "firing", []),
    (360, F, "firing", []),
    (390, F, "firing", []),
    (420, F, "resolved", ["resolved"]),
    (450, F, "resolved", []),
]

KEEP_FIRING_RESET: list[Step] = [
    (0, T, "firing", ["firing"]),
    (300, F, "firing", []),
    (330, F, "firing", []),
    (360, F, "firing", []),
    (390, T, "firing", []),
    (420, F, "firing", []),
    (510, F, "firing", []),
    (540, F, "resolved", ["resolved"]),
]


@pytest.mark.parametrize("steps", [KEEP_FIRING, KEEP_FIRING_RESET], ids=["resolves", "resets"])
def test_keep_firing_for(steps: list[Step]) -> None:
    """`keep_firing_for: 2m` counts from the first false evaluation and resets on true."""
    play(rule(keep_firing_for=120.0), steps)


def test_resolve_without_keep_firing() -> None:
    """Without `keep_firing_for`, the first false evaluation resolves."""
    play(rule(), [(0, T, "firing", ["firing"]), (30, F, "resolved", ["resolved"])])


def test_resolved_expires_to_inactive() -> None:
    """A resolved instance turns inactive after the resolved retention, silently."""
    spec = rule(resolved_retention=300.0)
    steps = run(spec, [(0, T), (30, F), (300, F), (330, F)])
    assert str(steps[2].state.state) == "resolved"
    assert str(steps[3].state.state) == "inactive"
    assert steps[3].events == ()


@pytest.mark.parametrize(
    ("mapping", "expected_state", "expected_notices"),
    [
        ("nodata", "nodata", []),
        ("ok", "resolved", ["resolved"]),
        ("alerting", "firing", []),
        ("keep_last", "firing", []),
    ],
)
def test_nodata_mapping_from_firing(mapping: str, expected_state: str, expected_notices: list[str]) -> None:
    """`nodata_state` decides what a nodata observation does to a firing alert."""
    play(rule(nodata_state=mapping), [(0, T, "firing", ["firing"]), (30, ND, expected_state, expected_notices)])


@pytest.mark.parametrize(
    ("mapping", "expected_state", "expected_notices"),
    [
        ("nodata", "nodata", []),
        ("ok", "inactive", []),
        ("alerting", "firing", ["firing"]),
        ("keep_last", "inactive", []),
    ],
)
def test_nodata_mapping_from_inactive(mapping: str, expected_state: str, expected_notices: list[str]) -> None:
    """`nodata_state` decides what a nodata observation does to an inactive instance."""
    play(rule(nodata_state=mapping), [(0, F, "inactive", []), (30, ND, expected_state, expected_notices)])


@pytest.mark.parametrize(
    ("mapping", "expected_state", "expected_notices"),
    [
        ("error", "error", []),
        ("ok", "resolved", ["resolved"]),
        ("alerting", "firing", []),
        ("keep_last", "firing", []),
    ],
)
def test_error_mapping_from_firing(mapping: str, expected_state: str, expected_notices: list[str]) -> None:
    """`error_state` decides what an error observation does to a firing alert."""
    play(rule(error_state=mapping), [(0, T, "firing", ["firing"]), (30, ER, expected_state, expected_notices)])


@pytest.mark.parametrize(
    ("mapping", "expected_state"),
    [("error", "error"), ("ok", "inactive"), ("alerting", "pending"), ("keep_last", "inactive")],
)
def test_error_mapping_with_hold(mapping: str, expected_state: str) -> None:
    """An error observation on an inactive rule with `for` follows `error_state`."""
    play(rule(for_=60.0, error_state=mapping), [(0, F, "inactive", []), (30, ER, expected_state, [])])


def test_nodata_not_inactive() -> None:
    """No data sends the instance to nodata, not inactive, with the reason stored."""
    steps = run(rule(), [(0, F), (30, ND)])
    assert steps[1].state.state is AlertState.NODATA
    assert steps[1].state.message == "no data for cpu_usage in the last 5m"


def test_error_event_carries_message() -> None:
    """The error event records why the source failed."""
    steps = run(rule(), [(0, F), (30, ER)])
    assert [(e.kind, e.message) for e in steps[1].events] == [
        (EventKind.ERROR, "source of cpu_usage failed: boom")
    ]


def test_keep_last_changes_nothing() -> None:
    """keep_last leaves the record as it was except for the evaluation time."""
    steps = run(rule(nodata_state="keep_last"), [(0, T), (30, ND)])
    assert steps[1].state == replace(steps[0].state, last_eval=30)
    assert steps[1].events == ()


def test_nodata_keeps_incident() -> None:
    """Firing, nodata, then true again is the same incident and sends nothing new."""
    steps = run(rule(), [(0, T), (30, ND), (60, T)])
    assert str(steps[2].state.state) == "firing"
    assert steps[2].notices == ()
    assert steps[2].state.incident_id == steps[0].state.incident_id


def test_nodata_then_false_resolves() -> None:
    """Firing, nodata, then false resolves the incident with one resolved notice."""
    play(rule(), [(0, T, "firing", ["firing"]), (30, ND, "nodata", []), (60, F, "resolved", ["resolved"])])


def test_nodata_interrupts_pending() -> None:
    """A nodata gap restarts the hold period."""
    steps: list[Step] = [
        (0, T, "pending", []),
        (30, ND, "nodata", []),
        (60, T, "pending", []),
        (90, T, "pending", []),
        (120, T, "firing", ["firing"]),
    ]
    play(rule(for_=60.0), steps)


def test_events_record_transitions() -> None:
    """Each state change is an event with its time, value and the engine as actor."""
    spec = rule(for_=60.0)
    observations = [(0, T, 81.0), (30, T, 85.0), (60, T, 90.0), (90, F, 20.0)]
    events = []
    state = None
    for now, result, value in observations:
        step = transition(spec, state, observe(result, value), now)
        events.extend(step.events)
        state = step.state
    assert [(str(e.kind), e.at, e.value, e.actor) for e in events] == [
        ("pending", 0, 81.0, "engine"),
        ("firing", 60, 90.0, "engine"),
        ("resolved", 90, 20.0, "engine"),
    ]


def test_unchanged_state_no_event() -> None:
    """An evaluation that leaves the state as it was records no event."""
    steps = run(rule(), [(0, T), (30, T)])
    assert steps[1].events == ()


def test_firing_records_times() -> None:
    """A firing record keeps when it started pending, fired and was last true."""
    state = run(rule(for_=60.0), [(0, T), (30, T), (60, T), (90, T)])[-1].state
    assert (state.active_since, state.fired_at, state.last_true_at, state.last_eval) == (0, 60, 90, 90)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"mount": "/", "host": "atlas-01"}, {"host": "atlas-01", "mount": "/"}),
        (make_labels(mount="/", host="a"), (("mount", "/"), ("host", "a"))),
    ],
)
def test_fingerprint_order_independent(first: object, second: object) -> None:
    """Equal labels in a different order give the same fingerprint."""
    assert fingerprint("disk_full", first) == fingerprint("disk_full", second)  # type: ignore[arg-type]


def test_fingerprint_shape() -> None:
    """A fingerprint is 16 lower-case hex characters."""
    value = fingerprint("disk_full", {"mount": "/"})
    assert len(value) == 16
    assert int(value, 16) >= 0
    assert value == value.lower()


@pytest.mark.parametrize(
    ("rule_id", "labels"),
    [("disk_full_x", {"mount": "/"}), ("disk_full", {"mount": "/x"}), ("disk_full", {"mnt": "/"}), ("disk_full", {})],
)
def test_fingerprint_distinguishes(rule_id: str, labels: dict[str, str]) -> None:
    """Another rule id or another label set gives another fingerprint."""
    assert fingerprint(rule_id, labels) != fingerprint("disk_full", {"mount": "/"})


def test_fingerprint_matches_state() -> None:
    """An instance's record carries the fingerprint of its rule and labels."""
    step = transition(rule(), None, Observation(make_labels(cpu="0"), 90.0, ObservationResult.TRUE), 0)
    assert step.state.fingerprint == fingerprint("high_cpu", {"cpu": "0"})


def test_restart_keeps_hold_start() -> None:
    """After a 20 s restart, a pending alert fires at its original start plus `for`."""
    spec = rule(for_=120.0)
    before = play(spec, [(0, T, "pending", []), (30, T, "pending", []), (60, T, "pending", [])])
    reloaded = replace(before)  # the record as the store returns it
    first = transition(spec, reloaded, observe(T), 90, after_restart=True)
    second = transition(spec, first.state, observe(T), 120)
    assert str(first.state.state) == "pending"
    assert str(second.state.state) == "firing"
    assert [str(n.kind) for n in second.notices] == ["firing"]


def test_restart_keeps_firing_quiet() -> None:
    """An alert firing before a restart is still firing after it, with no new notice."""
    spec = rule()
    before = play(spec, [(0, T, "firing", ["firing"]), (30, T, "firing", [])])
    after = transition(spec, before, observe(T), 80, after_restart=True)
    assert str(after.state.state) == "firing"
    assert after.notices == ()
    assert after.events == ()


def test_resolve_during_downtime() -> None:
    """A resolve seen at the first evaluation after a long gap is noted as downtime."""
    spec = rule()
    before = play(spec, [(0, T, "firing", ["firing"]), (30, T, "firing", [])])
    after = transition(spec, before, observe(F), 600, after_restart=True, interval=30)
    notice = after.notices[0]
    assert (str(notice.kind), notice.note, notice.ends_at) == ("resolved", DOWNTIME_NOTE, 600)
    assert after.events[0].message == DOWNTIME_NOTE


@pytest.mark.parametrize(
    ("now", "after_restart"),
    [(600, False), (80, True)],
    ids=["no-restart", "short-gap"],
)
def test_resolve_without_downtime_note(now: float, after_restart: bool) -> None:
    """Without a restart, or after a gap of two intervals or less, there is no note."""
    spec = rule()
    before = play(spec, [(0, T, "firing", ["firing"]), (30, T, "firing", [])])
    after = transition(spec, before, observe(F), now, after_restart=after_restart, interval=30)
    assert after.notices[0].note is None
    assert after.notices[0].ends_at == now


def test_new_incident_after_resolve() -> None:
    """A firing after a resolve gets a new incident id."""
    steps = run(rule(), [(0, T), (30, F), (60, T)])
    assert steps[0].state.incident_id != steps[2].state.incident_id
    assert steps[2].state.incident_id == f"{steps[2].state.fingerprint}-2"


@pytest.mark.parametrize(
    ("last_tick", "now", "expected"),
    [
        (None, 5.0, TickPlan(True, 0, 5.0)),
        (0.0, 29.9, TickPlan(False, 0, 0.0)),
        (0.0, 30.0, TickPlan(True, 0, 30.0)),
        (0.0, 45.0, TickPlan(True, 0, 30.0)),
        (0.0, 95.0, TickPlan(True, 2, 90.0)),
        (0.1, 0.1 + 0.1 * 3, TickPlan(True, 2, 0.1 + 0.1 * 3)),
    ],
)
def test_due_ticks(last_tick: float | None, now: float, expected: TickPlan) -> None:
    """Missed ticks are counted and skipped; only the latest due tick runs."""
    plan = due_ticks(last_tick, now, 30.0 if last_tick != 0.1 else 0.1)
    assert plan.run is expected.run
    assert plan.skipped == expected.skipped
    assert plan.tick == pytest.approx(expected.tick)


def test_due_ticks_rejects_bad_interval() -> None:
    """A non-positive interval is rejected."""
    with pytest.raises(ValueError, match="positive evaluation interval"):
        due_ticks(0.0, 10.0, 0)

"""The alert tables: record round trip, listing order, lookups, history, engine state, retention."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atlas_tui.alerts.state import Ack, AlertState, ChannelRecord, InstanceState
from collectors.base import Sample
from storage import write_samples
from storage._alert_codec import StateFormatError, decode_state, encode_state
from storage.alerts import (
    EventRow,
    InstanceRow,
    alert_history,
    delete_old_history,
    get_alert,
    insert_events,
    list_alerts,
    load_instance,
    load_instances,
    read_engine_state,
    save_instances,
    write_engine_state,
)
from storage.recent import list_metric_series, read_windows

from tests.storage.conftest import T0

times = st.one_of(st.none(), st.floats(min_value=0, max_value=4e9, allow_nan=False))
values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
text = st.text(max_size=12)
labels = st.lists(st.tuples(text, text), max_size=4, unique_by=lambda pair: pair[0]).map(
    lambda pairs: tuple(sorted(pairs))
)
channels = st.lists(
    st.builds(ChannelRecord, text, st.integers(0, 50), times, times, st.integers(0, 50)),
    max_size=3,
).map(tuple)
states = st.builds(
    InstanceState,
    fingerprint=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    rule_id=text,
    labels=labels,
    state=st.sampled_from(list(AlertState)),
    value=values,
    message=st.one_of(st.none(), text),
    active_since=times,
    fired_at=times,
    last_true_at=times,
    first_false_at=times,
    resolved_at=times,
    incident_seq=st.integers(0, 1000),
    ack=st.one_of(st.none(), st.builds(Ack, text, st.floats(0, 4e9), text)),
    acks=st.integers(0, 50),
    last_eval=times,
    channels=channels,
)


def same(a: InstanceState, b: InstanceState) -> bool:
    """Field equality that treats NaN as equal to NaN."""
    if a.value is not None and math.isnan(a.value):
        return b.value is not None and math.isnan(b.value) and replace(a, value=None) == replace(b, value=None)
    return a == b


@given(states)
def test_state_round_trip(state: InstanceState) -> None:
    """Every engine record survives encoding and decoding unchanged."""
    assert same(decode_state(encode_state(state)), state)


def test_damaged_record_rejected() -> None:
    """A record of an unknown format or damaged JSON raises StateFormatError."""
    with pytest.raises(StateFormatError, match="upgrade atlas"):
        decode_state('{"format": 99}')
    with pytest.raises(StateFormatError, match="damaged"):
        decode_state("{not json")


def instance(rule_id: str, state: AlertState, severity: str, fired_at: float, **labels: str) -> InstanceRow:
    """An instance row with the given listing fields."""
    pairs = tuple(sorted(labels.items()))
    record = InstanceState.new(rule_id, pairs)
    seq = 1 if state in (AlertState.FIRING, AlertState.RESOLVED) else 0
    record = InstanceState(record.fingerprint, rule_id, pairs, state=state, fired_at=fired_at, incident_seq=seq)
    return InstanceRow(record, rule_id.title(), severity, {**labels, "alertname": rule_id})


def test_listing_order(store: sqlite3.Connection) -> None:
    """Alerts list firing first, then by severity, newest first; inactive ones only on request."""
    save_instances(store, [
        instance("a", AlertState.RESOLVED, "critical", T0),
        instance("b", AlertState.FIRING, "warning", T0 + 10),
        instance("c", AlertState.FIRING, "critical", T0),
        instance("d", AlertState.FIRING, "critical", T0 + 5),
        instance("e", AlertState.PENDING, "critical", T0),
        instance("f", AlertState.INACTIVE, "critical", T0),
    ], T0)
    assert [a.rule_id for a in list_alerts(store)] == ["d", "c", "b", "e", "a"]
    assert [a.rule_id for a in list_alerts(store, include_inactive=True)][-1] == "f"
    assert [a.rule_id for a in list_alerts(store, state="firing", severity="critical")] == ["d", "c"]


def test_lookup_forms(store: sqlite3.Connection) -> None:
    """An alert is found by public id, fingerprint or a unique prefix; not by an ambiguous one."""
    ids = save_instances(store, [instance("a", AlertState.FIRING, "info", T0)], T0)
    fp, row_id = next(iter(ids.items()))
    assert get_alert(store, f"alert_{row_id}").fingerprint == fp  # type: ignore[union-attr]
    assert get_alert(store, fp).alert_id == f"alert_{row_id}"  # type: ignore[union-attr]
    assert get_alert(store, fp[:5].upper()).alert_id == f"alert_{row_id}"  # type: ignore[union-attr]
    assert get_alert(store, fp[:3]) is None
    assert get_alert(store, "alert_999") is None
    assert get_alert(store, "%") is None


def test_save_updates_by_row(store: sqlite3.Connection) -> None:
    """Saving a loaded instance again updates its row and keeps its public id."""
    row = instance("a", AlertState.FIRING, "info", T0)
    first = save_instances(store, [row], T0)
    stored = load_instance(store, "alert_1")
    assert stored is not None
    resolved = InstanceRow(
        replace(stored.state, state=AlertState.RESOLVED, resolved_at=T0 + 9),
        "A", "info", {"alertname": "a"}, row_id=stored.row_id,
    )
    assert save_instances(store, [resolved], T0 + 9) == first
    assert [s.state.state for s in load_instances(store)] == [AlertState.RESOLVED]
    assert get_alert(store, "alert_1").resolved_at == T0 + 9  # type: ignore[union-attr]


def event(at: float, kind: str, fp: str = "f" * 16) -> EventRow:
    """A history row at `at`."""
    return EventRow(1, fp, "a", None, at, kind, None, None, 1.0, "engine")


def test_history_newest_window(store: sqlite3.Connection) -> None:
    """History returns the newest `limit` rows, oldest first."""
    save_instances(store, [instance("a", AlertState.FIRING, "info", T0)], T0)
    fp = get_alert(store, "alert_1").fingerprint  # type: ignore[union-attr]
    insert_events(store, [event(T0 + n, f"k{n}", fp) for n in range(5)])
    assert [e.kind for e in alert_history(store, "alert_1", limit=3)] == ["k2", "k3", "k4"]
    assert alert_history(store, "alert_404") == []


def test_history_retention(store: sqlite3.Connection) -> None:
    """Rows older than 90 days are deleted in batches; newer ones stay."""
    day = 86400.0
    insert_events(store, [event(T0 - 91 * day + n, "old") for n in range(7)] + [event(T0 - day, "new")])
    assert delete_old_history(store, T0, batch_size=3) == 7
    assert [row[0] for row in store.execute("SELECT kind FROM alert_events")] == ["new"]


def test_engine_state_defaults(store: sqlite3.Connection) -> None:
    """Before the first cycle the engine status is empty; written values read back."""
    empty = read_engine_state(store)
    assert (empty.last_tick, empty.missed_evaluations, empty.rule_health) == (None, 0, [])
    write_engine_state(store, {"last_tick": T0, "missed_evaluations": 3,
                               "rule_health": [["r", "error", "unknown metric x"]], "last_duration_ms": 4.5})
    status = read_engine_state(store)
    assert (status.last_tick, status.missed_evaluations, status.last_duration_ms) == (T0, 3, 4.5)
    assert status.rule_health == [("r", "error", "unknown metric x")]


def test_read_windows(store: sqlite3.Connection) -> None:
    """Windows return every sample in (start, end]; newest-only returns the last sample."""
    write_samples(store, [Sample.of("m", float(n), T0 + n, k="a") for n in range(10)])
    write_samples(store, [Sample.of("m", float(n), T0 + n, k="b") for n in range(10)])
    refs = list_metric_series(store, ["m", "nothing"])
    assert refs["nothing"] == []
    a, b = (ref.id for ref in refs["m"])
    found = read_windows(store, {a: T0 + 6}, {b: T0 + 2, a: T0}, T0 + 8)
    assert (found[a].times, found[a].values) == ([T0 + 7, T0 + 8], [7.0, 8.0])
    assert found[b].times == [T0 + 8]
    assert read_windows(store, {}, {b: T0 + 8}, T0 + 8) == {}

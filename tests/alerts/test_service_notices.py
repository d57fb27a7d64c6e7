"""Notices, acknowledgements, silences, internal alerts and history through the alert service."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from atlas_tui.alerts import actions
from atlas_tui.alerts.internal import NOTIFICATION_FAILING
from storage.db import connect, open_store
from storage.outbox import AttemptOutcome, ChannelUpdate, OutboxItem, enqueue, record_attempt

from tests.alerts.alert_harness import T0, Harness, cpu_rule, make_config

HOUR = 3600.0


def test_repeat_after_interval(tmp_path: Path) -> None:
    """With repeat_interval 4h an unacknowledged firing alert repeats at 4 h and not before."""
    h = Harness(tmp_path, make_config([cpu_rule(repeat_interval="4h")]))
    for offset in (0, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR - 30):
        h.step(offset, 95)
    assert h.kinds() == ["firing"]
    h.step(4 * HOUR, 95)
    assert h.kinds() == ["firing", "repeat"]
    h.close()


def test_cooldown_holds_refire(tmp_path: Path) -> None:
    """A firing → resolved → firing cycle inside the cooldown sends no second firing notice."""
    h = Harness(tmp_path, make_config([cpu_rule(cooldown_min=15)]))
    h.step(0, 95)
    h.step(30, 10)
    h.step(60, 95)

    assert h.kinds() == ["firing", "resolved"]
    alert = h.alert()
    assert alert.state == "firing"
    assert alert.incident_id is not None and alert.incident_id.endswith("-2")
    firings = [e for e in h.history(alert.alert_id) if e.kind == "firing"]
    assert len(firings) == 2


def test_cooldown_then_sends(tmp_path: Path) -> None:
    """The held firing notice goes out at the first evaluation after the cooldown."""
    h = Harness(tmp_path, make_config([cpu_rule(cooldown_min=15)]))
    h.step(0, 95)
    h.step(30, 10)
    for offset in range(60, 930, 90):
        h.step(offset, 95)
    assert h.kinds() == ["firing", "resolved"]
    h.step(930, 95)
    assert h.kinds() == ["firing", "resolved", "firing"]
    h.close()


def test_ack_stops_repeats(tmp_path: Path) -> None:
    """An acknowledged alert gets no repeats but still sends its resolved notice."""
    h = Harness(tmp_path, make_config([cpu_rule(repeat_interval="1h")]))
    h.step(0, 95)
    actions.acknowledge(h.conn, h.alert().alert_id, by="alice", message="looking", now=T0 + 60, config=h.config)
    h.step(HOUR, 95)
    h.step(2 * HOUR, 95)
    h.step(2 * HOUR + 30, 10)
    assert h.kinds() == ["firing", "acknowledge", "resolved"]
    resolved = h.outbox()[-1]["payload"]
    assert resolved["ack"]["by"] == "alice"
    h.close()


def test_refire_new_incident(tmp_path: Path) -> None:
    """A firing after a resolve is a new incident, and the old acknowledgement does not carry over."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    first = h.alert()
    actions.acknowledge(h.conn, first.alert_id, by="alice", message="", now=T0 + 10, config=h.config)
    h.step(30, 10)
    h.step(60, 95)

    second = h.alert()
    assert second.alert_id == first.alert_id
    assert second.incident_id != first.incident_id
    assert second.ack_by is None
    h.close()


def test_silence_suppresses_notices(tmp_path: Path) -> None:
    """A matching silence keeps the alert evaluating and marked, but queues nothing."""
    h = Harness(tmp_path, make_config([cpu_rule(labels={"host": "atlas-01"})]))
    silence = actions.create_silence(
        h.conn, '{host="atlas-01"}', starts_at=T0, ends_at=T0 + HOUR, created_by="bob", comment="maintenance"
    )
    h.step(0, 95)
    h.step(30, 95)

    alert = h.alert()
    assert alert.state == "firing"
    assert alert.silenced is True
    assert h.kinds() == []
    assert [a.alert_id for a in h.alerts(state="silenced")] == [alert.alert_id]
    silenced = [e for e in h.history(alert.alert_id) if e.kind == "silenced"]
    assert [(e.actor, e.message) for e in silenced] == [("bob", f'{silence.silence_id} {{host="atlas-01"}}: maintenance')]
    h.close()


def test_silence_expires_by_itself(tmp_path: Path) -> None:
    """After the silence's end the still-firing alert is unmarked and sends its firing notice."""
    h = Harness(tmp_path, make_config([cpu_rule(labels={"host": "atlas-01"})]))
    actions.create_silence(h.conn, "host=atlas-01", starts_at=T0, ends_at=T0 + 60, created_by="bob", comment="")
    h.step(0, 95)
    h.step(30, 95)
    h.step(60, 95)

    assert h.alert().silenced is False
    assert h.kinds() == ["firing"]
    assert "unsilenced" in [e.kind for e in h.history(h.alert().alert_id)]
    h.close()


def test_silence_other_host(tmp_path: Path) -> None:
    """A silence for another host leaves the alert notifying."""
    h = Harness(tmp_path, make_config([cpu_rule(labels={"host": "atlas-02"})]))
    actions.create_silence(h.conn, 'host="atlas-01"', starts_at=T0, ends_at=T0 + HOUR, created_by="bob", comment="")
    h.step(0, 95)
    assert h.alert().silenced is False
    assert h.kinds() == ["firing"]
    h.close()


def test_history_of_incident(tmp_path: Path) -> None:
    """History records pending, firing, acknowledged, silenced and resolved with actor and value."""
    h = Harness(tmp_path, make_config([cpu_rule(**{"for": "30s"})]))
    h.step(0, 91)
    h.step(30, 92)
    alert = h.alert()
    actions.acknowledge(h.conn, alert.alert_id, by="alice", message="on it", now=T0 + 40, config=h.config)
    actions.create_silence(h.conn, "rule=high_cpu", starts_at=T0 + 50, ends_at=T0 + HOUR, created_by="bob",
                           comment="noisy")
    h.step(60, 10)

    rows = [(e.kind, e.actor, e.value) for e in h.history(alert.alert_id)]
    assert rows == [
        ("pending", "engine", 91.0),
        ("firing", "engine", 92.0),
        ("acknowledged", "alice", 92.0),
        ("silenced", "bob", 92.0),
        ("resolved", "engine", 10.0),
    ]
    transitions = [(e.from_state, e.to_state) for e in h.history(alert.alert_id) if e.to_state]
    assert transitions == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
    h.close()


def test_history_survives_restart(tmp_path: Path) -> None:
    """History written before a restart is still there after it."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    h.restart()
    h.step(30, 10)
    assert [e.kind for e in h.history(h.alert().alert_id)] == ["firing", "resolved"]
    h.close()


def test_ack_during_cycle_kept(tmp_path: Path) -> None:
    """An ack committed from another connection while a cycle evaluates is not overwritten."""
    acked: list[str] = []
    config = make_config([cpu_rule()])

    def ack_meanwhile() -> list[object]:
        if acked == ["pending"]:
            other = connect(tmp_path / "atlas.db")
            actions.acknowledge(other, "alert_1", by="carol", message="mine", now=T0 + 35, config=config)
            other.close()
            acked.append("done")
        return []

    h = Harness(tmp_path, config, statuses=ack_meanwhile)  # type: ignore[arg-type]
    h.step(0, 95)
    acked.append("pending")
    h.step(30, 95)

    assert acked == ["pending", "done"]
    assert h.alert().ack_by == "carol"
    h.step(60, 95)
    assert h.alert().ack_by == "carol"
    h.close()


def test_concurrent_acks_not_lost(tmp_path: Path) -> None:
    """Acks and unacks from another thread interleaved with cycles all land in state and history."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    rounds = 15
    errors: list[BaseException] = []

    def operator() -> None:
        conn = connect(tmp_path / "atlas.db")
        try:
            for n in range(rounds):
                actions.acknowledge(conn, "alert_1", by="op", message=str(n), now=T0 + 1 + n, config=h.config)
                actions.unacknowledge(conn, "alert_1", by="op", now=T0 + 1 + n, config=h.config)
            actions.acknowledge(conn, "alert_1", by="op", message="final", now=T0 + 100, config=h.config)
        except BaseException as err:  # noqa: BLE001 - reported by the assert below
            errors.append(err)
        finally:
            conn.close()

    thread = threading.Thread(target=operator)
    thread.start()
    for n in range(1, rounds + 1):
        h.step(30 * n, 95)
    thread.join(timeout=30)

    assert errors == []
    kinds = [e.kind for e in h.history("alert_1")]
    assert kinds.count("acknowledged") == rounds + 1
    assert kinds.count("unacknowledged") == rounds
    h.step(30 * (rounds + 1), 95)
    assert h.alert().ack_message == "final"
    h.close()


def _fail_deliveries(data_dir: Path, channel: str, count: int, start: float) -> None:
    conn = open_store(data_dir)
    item = OutboxItem(f"probe-{start}", channel, "firing", None, "probe", "{}", start)
    enqueue(conn, [item])
    row_id = conn.execute("SELECT id FROM outbox WHERE notice_id = ?", (item.notice_id,)).fetchone()[0]
    outcome = AttemptOutcome("pending", "retry", f"channel {channel}: HTTP 503", error_class="http_5xx",
                             next_attempt_at=start + 1)
    for n in range(count):
        record_attempt(conn, row_id, channel, outcome, ChannelUpdate("failing", False), now=start + n * 0.01)
    conn.close()


def _succeed_delivery(data_dir: Path, channel: str, now: float) -> None:
    conn = open_store(data_dir)
    row_id = conn.execute("SELECT id FROM outbox WHERE channel = ? LIMIT 1", (channel,)).fetchone()[0]
    record_attempt(conn, row_id, channel, AttemptOutcome("delivered", "delivered", "ok"),
                   ChannelUpdate("ok", True), now=now)
    conn.close()


def test_failing_channel_one_alert(tmp_path: Path) -> None:
    """1000 failed deliveries raise one NotificationFailing alert, never routed to its channel."""
    h = Harness(tmp_path, make_config([], channels=("hook", "mail")))
    for batch in range(10):
        _fail_deliveries(tmp_path, "hook", 100, T0 + batch * 30)
        h.step(batch * 30 + 29)

    internal = [a for a in h.alerts() if a.rule_id == NOTIFICATION_FAILING]
    assert [(a.state, a.labels["channel"]) for a in internal] == [("firing", "hook")]
    notices = [r for r in h.outbox() if r["payload"].get("rule_id") == NOTIFICATION_FAILING]
    assert [(r["kind"], r["channel"]) for r in notices] == [("firing", "mail")]
    h.close()


def test_failing_channel_resolves(tmp_path: Path) -> None:
    """NotificationFailing resolves when its channel delivers again, telling the other channels."""
    h = Harness(tmp_path, make_config([], channels=("hook", "mail")))
    _fail_deliveries(tmp_path, "hook", 3, T0)
    h.step(10)
    _succeed_delivery(tmp_path, "hook", T0 + 20)
    h.step(40)

    alert = h.alert(NOTIFICATION_FAILING)
    assert alert.state == "resolved"
    notices = [r for r in h.outbox() if r["payload"].get("rule_id") == NOTIFICATION_FAILING]
    assert [(r["kind"], r["channel"]) for r in notices] == [("firing", "mail"), ("resolved", "mail")]
    h.close()


@pytest.mark.parametrize("state", ["inactive", "pending"])
def test_ack_needs_open_incident(tmp_path: Path, state: str) -> None:
    """Acknowledging an alert that is not firing raises AlertStateError."""
    h = Harness(tmp_path, make_config([cpu_rule(**{"for": "1m"})]))
    h.step(0, 95)
    if state == "inactive":
        h.step(30, 10)
    with pytest.raises(actions.AlertStateError, match="only a firing alert"):
        actions.acknowledge(h.conn, "alert_1", by="a", message="", now=T0 + 40, config=h.config)
    h.close()

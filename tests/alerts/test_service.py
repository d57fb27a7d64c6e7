"""The alert service over a real store: timing, restarts, the outbox transaction, overruns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts.engine import DOWNTIME_NOTE
from atlas_tui.alerts.grammar import Number
from atlas_tui.alerts.rules import LoadedRules, RuleHealth, RuleSpec
from atlas_tui.alerts.service import AlertService
from collectors.base import CollectorStatus
from storage.alerts import read_engine_state

from tests.alerts.alert_harness import T0, Harness, cpu_rule, make_config

E = 30.0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A store with the `for: 2m` CPU rule."""
    h = Harness(tmp_path, make_config([cpu_rule(**{"for": "2m"})]))
    yield h
    h.close()


def test_pending_then_fires_once(harness: Harness) -> None:
    """With for 2m, true at 0–90 s is pending and silent; the 5th true evaluation fires once."""
    for offset in (0, 30, 60, 90):
        harness.step(offset, 95)
        assert (offset, harness.alert().state) == (offset, "pending")
    assert harness.kinds() == []

    harness.step(120, 95)
    assert harness.alert().state == "firing"
    assert harness.kinds() == ["firing"]


def test_no_for_fires_at_once(tmp_path: Path) -> None:
    """A rule without `for` fires at its first true evaluation."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    assert h.alert().state == "firing"
    assert h.kinds() == ["firing"]
    h.close()


def test_false_resets_pending(harness: Harness) -> None:
    """A false evaluation ends the pending period; the next one starts from scratch."""
    for offset in (0, 30, 60, 90):
        harness.step(offset, 95)
    harness.step(120, 10)
    assert harness.alert().state == "inactive"

    for offset in (150, 180, 210, 240):
        harness.step(offset, 95)
        assert (offset, harness.alert().state) == (offset, "pending")
    assert harness.kinds() == []
    harness.step(270, 95)
    assert harness.alert().state == "firing"
    assert harness.alert().active_since == T0 + 150
    assert harness.kinds() == ["firing"]


def test_pending_survives_restart(harness: Harness) -> None:
    """A pending period keeps its start across a restart and fires at active_since + 2m."""
    for offset in (0, 30, 60):
        harness.step(offset, 95)
    harness.restart()

    harness.step(90, 95)
    assert harness.alert().state == "pending"
    harness.step(120, 95)
    assert harness.alert().state == "firing"
    assert harness.alert().fired_at == T0 + 120


def test_firing_survives_restart(harness: Harness) -> None:
    """A firing alert is still firing after a restart and sends no second firing notice."""
    for offset in range(0, 150, 30):
        harness.step(offset, 95)
    harness.restart()
    harness.step(200, 95)

    assert harness.alert().state == "firing"
    assert harness.kinds() == ["firing"]


def test_restart_no_storm(tmp_path: Path) -> None:
    """20 firing alerts and a restart with nothing changed send nothing; one change sends one."""
    rule = {"id": "disk_full", "condition": "disk_usage > 90", "channels": ["hook"], "cooldown_min": 0}
    h = Harness(tmp_path, make_config([rule]))
    mounts = [f"/m{i}" for i in range(20)]
    for mount in mounts:
        h.write("disk_usage", 95, T0, mount=mount)
    h.step(0)
    assert len(h.alerts(state="firing")) == 20
    assert len(h.outbox()) == 20

    h.restart()
    for mount in mounts:
        h.write("disk_usage", 95, T0 + 60, mount=mount)
    h.step(60)
    assert len(h.outbox()) == 20

    h.restart()
    for mount in mounts:
        h.write("disk_usage", 50 if mount == "/m7" else 95, T0 + 120, mount=mount)
    h.step(120)
    added = h.outbox()[20:]
    assert [row["kind"] for row in added] == ["resolved"]
    assert added[0]["payload"]["labels"]["mount"] == "/m7"
    h.close()


def test_resolve_during_downtime(tmp_path: Path) -> None:
    """A resolve that happened while the daemon was down sends one annotated resolved notice."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    h.step(30, 95)
    h.restart()

    h.step(600, 10)
    resolved = [row for row in h.outbox() if row["kind"] == "resolved"]
    assert len(resolved) == 1
    assert resolved[0]["payload"]["ends_at"] == T0 + 600
    assert resolved[0]["payload"]["note"] == DOWNTIME_NOTE
    h.close()


def test_notice_in_transition_transaction(tmp_path: Path) -> None:
    """A failure while writing the outbox row rolls back the transition too."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.conn.execute(
        "CREATE TRIGGER reject_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected"):
        h.step(0, 95)
    assert h.conn.execute("SELECT count(*) FROM alert_instances").fetchone()[0] == 0
    assert h.conn.execute("SELECT count(*) FROM alert_events").fetchone()[0] == 0
    assert h.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0

    h.conn.execute("DROP TRIGGER reject_outbox")
    h.step(30, 95)
    assert h.alert().state == "firing"
    assert h.kinds() == ["firing"]
    h.close()


def test_overrun_skips_tick(tmp_path: Path) -> None:
    """A cycle that overruns the interval skips the missed tick and counts it."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    service = h.service

    first = service.next_tick(T0)
    assert (first.run, first.tick) == (True, T0)
    h.step(0, 95)
    late = service.next_tick(T0 + 70)
    assert (late.run, late.tick, late.skipped) == (True, T0 + 60, 1)
    service.evaluate_once(late.tick)

    status = read_engine_state(h.conn)
    assert status.missed_evaluations == 1
    assert status.last_tick == T0 + 60
    h.close()


def test_missed_count_survives_restart(tmp_path: Path) -> None:
    """The missed-evaluation counter continues from the stored value after a restart."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.service.next_tick(T0)
    h.service.next_tick(T0 + 100)
    h.step(90, 95)
    h.restart()
    h.service.next_tick(T0 + 500)
    h.service.next_tick(T0 + 600)
    h.step(590, 95)
    assert read_engine_state(h.conn).missed_evaluations == 4
    h.close()


async def test_run_loop_skips_overruns(tmp_path: Path) -> None:
    """The running loop never evaluates a missed tick when every cycle takes 70 s."""
    clock = [T0]
    cycles: list[float] = []

    def slow_statuses() -> list[CollectorStatus]:
        cycles.append(clock[0])
        clock[0] += 70.0
        return []

    service = AlertService(make_config([cpu_rule()]), tmp_path, statuses=slow_statuses, clock=lambda: clock[0])
    task = asyncio.create_task(service.run())
    while len(cycles) < 4:
        await asyncio.sleep(0.01)
    await service.stop()
    await task

    conn = sqlite3.connect(tmp_path / "atlas.db")
    status = read_engine_state(conn)
    conn.close()
    assert status.last_tick is not None
    ticks_due = round((status.last_tick - T0) / E) + 1
    assert status.missed_evaluations + len(cycles) == ticks_due
    assert status.missed_evaluations >= len(cycles) - 1


async def test_first_cycle_waits_for_delivery(tmp_path: Path) -> None:
    """With wait_for_collectors, the first cycle starts only after every collector delivered a cycle."""
    delivered = [0]

    def statuses() -> list[CollectorStatus]:
        return [CollectorStatus(name="system", interval=1.0, runs=3, deliveries=delivered[0])]

    def last_tick() -> float | None:
        conn = sqlite3.connect(tmp_path / "atlas.db")
        try:
            return read_engine_state(conn).last_tick
        finally:
            conn.close()

    service = AlertService(make_config([cpu_rule()]), tmp_path, statuses=statuses, wait_for_collectors=True)
    task = asyncio.create_task(service.run())
    try:
        # Several status checks pass while three cycles started and none was delivered.
        await asyncio.sleep(0.8)
        assert last_tick() is None
        delivered[0] = 1
        for _ in range(100):
            if last_tick() is not None:
                break
            await asyncio.sleep(0.05)
        assert last_tick() is not None
    finally:
        await service.stop()
        await task


def test_source_error_sets_error(tmp_path: Path) -> None:
    """A rule over a failing collector turns error and reports it in its health."""
    failing = [CollectorStatus(name="system", interval=5.0, last_error="timed out after 4s")]
    h = Harness(tmp_path, make_config([cpu_rule()]), statuses=lambda: failing)
    h.step(0, 95)
    assert h.alert().state == "error"
    health = read_engine_state(h.conn).rule_health
    assert health[0][:2] == ("high_cpu", "error")
    assert "collector system failed" in str(health[0][2])
    assert h.kinds() == []
    h.close()


def test_unknown_metric_health(tmp_path: Path) -> None:
    """A rule reading an unknown metric shows `error: unknown metric …` without stopping others."""
    rules = [cpu_rule(), {"id": "typo", "condition": "cpu_usge > 80"}]
    h = Harness(tmp_path, make_config(rules))
    h.step(0, 95)
    health = {rule_id: (status, message) for rule_id, status, message in read_engine_state(h.conn).rule_health}
    assert health["typo"] == ("error", "unknown metric cpu_usge")
    assert health["high_cpu"] == ("ok", None)
    assert h.alert().state == "firing"
    h.close()


def test_unconfigured_channel_skipped(tmp_path: Path) -> None:
    """A rule naming a channel that is not configured queues only for the configured ones."""
    h = Harness(tmp_path, make_config([cpu_rule(channels=["hook", "slack"])]))
    h.step(0, 95)
    assert [row["channel"] for row in h.outbox()] == ["hook"]
    h.close()


def test_removed_rule_resolves(tmp_path: Path) -> None:
    """An alert whose rule left the config resolves and notifies the channels that got its firing."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    h.config = make_config([])
    h.restart()
    h.step(30)
    assert h.alert().state == "resolved"
    assert h.kinds() == ["firing", "resolved"]
    h.close()


def test_on_enqueued_called(tmp_path: Path) -> None:
    """The service calls `on_enqueued` after a cycle that queued notices, and only then."""
    calls: list[int] = []
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.service = AlertService(h.config, tmp_path, statuses=list, on_enqueued=lambda: calls.append(1))
    h.step(0, 95)
    h.step(30, 95)
    assert calls == [1]
    h.close()


def test_quiet_series_not_stored(tmp_path: Path) -> None:
    """Series whose condition was never true leave no instance rows."""
    rule = {"id": "disk_full", "condition": "disk_usage > 90", "channels": ["hook"]}
    h = Harness(tmp_path, make_config([rule]))
    for mount in ("/a", "/b", "/c"):
        h.write("disk_usage", 95 if mount == "/b" else 10, T0, mount=mount)
    h.step(0)
    listed = h.alerts(include_inactive=True)
    assert [a.labels["mount"] for a in listed] == ["/b"]
    h.close()


def test_fired_alert_labels(tmp_path: Path) -> None:
    """Stored and sent labels are the series labels plus rule labels and alertname."""
    rule = {"id": "disk_full", "condition": "disk_usage > 90", "channels": ["hook"], "labels": {"team": "ops"}}
    h = Harness(tmp_path, make_config([rule]))
    h.write("disk_usage", 95, T0, mount="/")
    h.step(0)
    expected = {"alertname": "disk_full", "mount": "/", "team": "ops"}
    assert h.alert("disk_full").labels == expected
    assert h.outbox()[0]["payload"]["labels"] == expected
    assert h.outbox()[0]["alert_id"] == h.alert("disk_full").alert_id
    h.close()


def test_notice_ids_per_store(tmp_path: Path) -> None:
    """Notice ids are stable within one store and differ between two stores."""
    ids = []
    for name in ("one", "two"):
        h = Harness(tmp_path / name, make_config([cpu_rule()]))
        h.step(0, 95)
        h.restart()
        h.step(30, 10)
        ids.append([row["notice_id"] for row in h.outbox()])
        h.close()

    first, second = ids
    assert [i.split("/", 1)[1] for i in first] == [i.split("/", 1)[1] for i in second]
    assert first[0] != second[0]
    assert first[0].split("/")[0] == first[1].split("/")[0]


def test_crashing_rule_isolated(tmp_path: Path) -> None:
    """A rule whose evaluation raises turns error while the other rules still evaluate."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    broken = RuleSpec("broken", "1", Number(1.0))
    loaded = h.service.loaded
    h.service.loaded = LoadedRules((*loaded.rules, broken), (*loaded.health, RuleHealth("broken", "ok")))
    h.step(0, 95)

    assert h.alert().state == "firing"
    assert h.alert("broken").state == "error"
    health = dict((rule_id, status) for rule_id, status, _ in read_engine_state(h.conn).rule_health)
    assert health == {"high_cpu": "ok", "broken": "error"}
    h.close()

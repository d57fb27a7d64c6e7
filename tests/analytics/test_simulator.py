"""Tests of the SDK simulator's plan (pure generation) and of its delivery and retry loop.

Delivery tests pass a `send` function that plays the daemon's part with scripted
responses, so every retry path runs without a network. The end-to-end test in
`tests/e2e/test_analytics_e2e.py` runs the simulator against a real daemon.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import pytest

from atlas_tui.analytics.protocol import MAX_EVENTS_PER_BATCH, ParsedEvent, parse_event
from atlas_tui.analytics.simulator import (
    DeliveryError,
    SendResult,
    Simulator,
    SimulatorConfig,
    SimulatorError,
    generate,
)

END = 1_780_000_000.0


def small_config(**overrides: Any) -> SimulatorConfig:
    """A quick config: 12 devices over 2 days with a crash rate high enough to see crashes."""
    values: dict[str, Any] = {"devices": 12, "days": 2.0, "end": END, "seed": 7, "crash_rate": 0.1}
    values.update(overrides)
    return SimulatorConfig(**values)


class ScriptedDaemon:
    """A `send` function that responds from a script, then accepts every event it has not stored yet."""

    def __init__(self, script: list[object] | None = None) -> None:
        self.script = list(script or [])
        self.bodies: list[dict[str, Any]] = []
        self.stored: set[str] = set()

    def __call__(self, body: bytes, headers: dict[str, str]) -> SendResult:
        batch = json.loads(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body)
        self.bodies.append(batch)
        step = self.script.pop(0) if self.script else "ok"
        if step == "commit_then_drop":
            self._store(batch)
            raise httpx.RemoteProtocolError("server disconnected without sending a response")
        if isinstance(step, SendResult):
            return step
        return SendResult(200, None, self._store(batch))

    def _store(self, batch: dict[str, Any]) -> dict[str, Any]:
        statuses = []
        for index, event in enumerate(batch["events"]):
            status = "duplicate" if event["event_id"] in self.stored else "accepted"
            self.stored.add(event["event_id"])
            statuses.append({"index": index, "event_id": event["event_id"], "status": status})
        return {"events": statuses}


def test_plan_same_seed_same_events() -> None:
    """The same config and seed plan the same event ids in the same batches."""
    first = generate(small_config())
    second = generate(small_config())
    assert [[e["event_id"] for e in b.events] for b in first.batches] == [
        [e["event_id"] for e in b.events] for b in second.batches
    ]


def test_plan_other_end_new_ids() -> None:
    """Another end time keeps the traffic of the seed but makes new event ids, so a rerun sends new events."""
    first = generate(small_config())
    later = generate(small_config(end=END + 3600.0))
    assert [e["type"] for e in first.events.values()] == [e["type"] for e in later.events.values()]
    assert set(first.events).isdisjoint(later.events)


def test_plan_other_seed_other_events() -> None:
    """Another seed plans other event ids."""
    assert set(generate(small_config()).events) != set(generate(small_config(seed=8)).events)


def test_plan_events_valid_schema_one() -> None:
    """Every planned event passes the daemon's own schema-1 validation."""
    plan = generate(small_config())
    results = [parse_event(event) for event in plan.events.values()]
    invalid = [result for result in results if not isinstance(result, ParsedEvent) or not result.known]
    assert invalid == []


def test_plan_each_event_in_one_batch() -> None:
    """Every generated event is in exactly one batch, and no batch is over the batch size."""
    plan = generate(small_config())
    ids = [event["event_id"] for batch in plan.batches for event in batch.events]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(plan.events)
    assert max(len(batch.events) for batch in plan.batches) <= 100


def test_plan_sessions_open_and_close() -> None:
    """Each session starts with app_launch and ends with session_end or a fatal error, never both."""
    plan = generate(small_config())
    sessions: dict[str, list[dict[str, Any]]] = {}
    for event in plan.events.values():
        sessions.setdefault(event["session_id"], []).append(event)
    for events in sessions.values():
        events.sort(key=lambda event: event["client_ts"])
        kinds = [event["type"] for event in events]
        fatal = [event for event in events if event["type"] == "error" and event["fatal"]]
        assert kinds.count("app_launch") == 1
        assert (kinds.count("session_end") == 1) != (len(fatal) == 1)


def test_plan_crash_then_new_session() -> None:
    """A crashed session has no session_end, and the same device launches a new session next."""
    plan = generate(small_config())
    by_device: dict[str, list[dict[str, Any]]] = {}
    for event in plan.events.values():
        by_device.setdefault(event["device_id"], []).append(event)
    crashes = 0
    for events in by_device.values():
        events.sort(key=lambda event: event["client_ts"])
        for position, event in enumerate(events):
            if event["type"] == "error" and event["fatal"]:
                crashes += 1
                following = events[position + 1]
                assert following["type"] == "app_launch"
                assert following["session_id"] != event["session_id"]
    assert crashes > 0


def test_tally_matches_session_events() -> None:
    """The tally's session and crash counts equal the app_launch and fatal error events per release."""
    plan = generate(small_config())
    launches = Counter((e["app_version"], e["platform"]) for e in plan.events.values() if e["type"] == "app_launch")
    fatals = Counter(
        (e["app_version"], e["platform"]) for e in plan.events.values() if e["type"] == "error" and e["fatal"]
    )
    assert {release: tally.sessions for release, tally in plan.tally.items()} == dict(launches)
    assert {release: tally.crashed_sessions for release, tally in plan.tally.items() if tally.crashed_sessions} == dict(
        fatals
    )


def test_plan_has_skewed_clocks() -> None:
    """Some devices have a clock offset, and their batches carry it."""
    plan = generate(small_config(skewed_device_share=0.5))
    offsets = {batch.device_id: batch.clock_offset for batch in plan.batches}
    assert any(abs(offset) > 60 for offset in offsets.values())
    assert any(offset == 0 for offset in offsets.values())


def test_plan_offline_burst_sends_late() -> None:
    """With offline periods, some batches go out hours after their first event."""
    plan = generate(small_config(offline_rate=0.5))
    delays = [batch.send_time - _first_time(batch.events, batch.clock_offset) for batch in plan.batches]
    assert max(delays) > 3600.0


def test_plan_events_inside_period() -> None:
    """Every event's true time lies inside the simulated days, ending before `end`."""
    config = small_config()
    plan = generate(config)
    times = [_first_time([event], batch.clock_offset) for batch in plan.batches for event in batch.events]
    assert min(times) >= END - config.days * 86400.0
    assert max(times) < END


def test_config_rejects_long_period() -> None:
    """More than 6 days is rejected, because the daemon refuses events older than 7 days."""
    with pytest.raises(SimulatorError, match="days=8"):
        generate(small_config(days=8))


def test_config_rejects_big_batches() -> None:
    """A batch size over the protocol's limit is rejected."""
    with pytest.raises(SimulatorError, match="batch_size"):
        generate(small_config(batch_size=MAX_EVENTS_PER_BATCH + 1))


def test_run_delivers_every_event() -> None:
    """A healthy daemon receives every event once, all accepted."""
    simulator = Simulator(small_config(), sleep=lambda _: None)
    daemon = ScriptedDaemon()
    report = simulator.run(daemon)
    assert daemon.stored == set(simulator.plan.events)
    assert report.statuses == Counter({"accepted": len(simulator.plan.events)})
    assert report.retries == 0


def test_run_retry_after_drop_same_ids() -> None:
    """After a commit and a dropped connection, the retry resends the same events and gets duplicates."""
    simulator = Simulator(small_config(), sleep=lambda _: None)
    daemon = ScriptedDaemon(["commit_then_drop"])
    report = simulator.run(daemon)
    first, second = daemon.bodies[0], daemon.bodies[1]
    assert first["events"] == second["events"]
    assert report.statuses["duplicate"] == len(first["events"])
    assert report.retries == 1


def test_run_retry_restamps_sent_at() -> None:
    """A retry carries a new `sent_at` from the device clock at the time of that attempt."""
    times = iter([1000.0, 2000.0] + [3000.0] * 10_000)
    simulator = Simulator(small_config(skewed_device_share=0.0), clock=lambda: next(times), sleep=lambda _: None)
    daemon = ScriptedDaemon([SendResult(503, None, None)])
    simulator.run(daemon)
    assert daemon.bodies[0]["sent_at"] != daemon.bodies[1]["sent_at"]


def test_run_honours_retry_after() -> None:
    """A 429 makes the simulator wait the `Retry-After` seconds before resending."""
    waits: list[float] = []
    simulator = Simulator(small_config(), sleep=waits.append)
    daemon = ScriptedDaemon([SendResult(429, 3.0, {"error": {"code": "rate_limited"}})])
    report = simulator.run(daemon)
    assert waits == [3.0]
    assert report.rate_limited == 1
    assert daemon.stored == set(simulator.plan.events)


def test_run_backs_off_on_server_errors() -> None:
    """Consecutive 5xx responses double the wait before each retry."""
    waits: list[float] = []
    simulator = Simulator(small_config(retry_backoff=0.1), sleep=waits.append)
    failure = SendResult(503, None, None)
    simulator.run(ScriptedDaemon([failure, failure, failure]))
    assert waits == [0.1, 0.2, 0.4]


def test_run_stops_after_max_attempts() -> None:
    """A batch that fails every attempt stops the run, and every unsent event counts as undelivered."""
    simulator = Simulator(small_config(max_attempts=2), sleep=lambda _: None)
    failure = SendResult(500, None, None)
    with pytest.raises(DeliveryError, match="server error 500") as caught:
        simulator.run(ScriptedDaemon([failure, failure]))
    assert caught.value.report.undelivered_events == len(simulator.plan.events)
    assert caught.value.report.batches == 1


def test_run_stops_on_rejected_batch() -> None:
    """A whole-batch 4xx such as an unknown ingest key stops the run with the status in the message."""
    simulator = Simulator(small_config(), sleep=lambda _: None)
    rejected = SendResult(401, None, {"error": {"code": "unknown_ingest_key"}})
    with pytest.raises(DeliveryError, match="status 401"):
        simulator.run(ScriptedDaemon([rejected]))


def test_run_stops_when_unreachable() -> None:
    """Connection errors on every attempt stop the run with a hint to check the daemon."""

    def refuse(body: bytes, headers: dict[str, str]) -> SendResult:
        raise httpx.ConnectError("connection refused")

    simulator = Simulator(small_config(max_attempts=3), sleep=lambda _: None)
    with pytest.raises(DeliveryError, match="check that the daemon runs"):
        simulator.run(refuse)


def _first_time(events: Any, clock_offset: float) -> float:
    return min(datetime.fromisoformat(event["client_ts"]).timestamp() for event in events) - clock_offset

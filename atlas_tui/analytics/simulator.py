"""A reference client of the analytics protocol: the Python twin of the mobile SDK.

`generate(config)` plans, without I/O, the traffic of N devices over D days. A
session is `app_launch`, then screen views, interactions, transactions, performance
metrics and errors, then `session_end`. A crash is a fatal error and no
`session_end`, followed by a new `app_launch` with a new session id. Devices also go
offline for a while, and some have skewed clocks. `generate` also batches the
events as the SDK does: a batch goes out when 100 events are
buffered or 5 simulated minutes after the first buffered event, and an offline
device keeps its buffer until it is back online. `Simulator.run(send)` then delivers
the planned batches and retries failures (5xx, 429 after its `Retry-After`,
connection errors) with the same event ids.

Time: the simulated days end at `SimulatorConfig.end`, normally the real time of
the run, so every event is in the past when it is sent, as if each device had held
it. Both `client_ts` and `sent_at` come from the device clock: `client_ts` is the
simulated event time plus the device's clock offset, and `sent_at` is the real time
of each send attempt plus the same offset. The daemon's correction
`received_at + (client_ts - sent_at)` therefore recovers the simulated time.

Invariants: the same config and seed give the same events, ids and batches. A retry
resends the batch's events unchanged, so only `sent_at` differs between attempts.
`SimulationPlan.tally` is computed from the generated events alone, never from the
daemon, so tests can compare the daemon's reports with it.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from atlas_tui.analytics.protocol import MAX_EVENTS_PER_BATCH, SCHEMA_VERSION, PrivacyLevel

__all__ = [
    "BatchPlan",
    "DeliveryError",
    "HttpSender",
    "ReleaseTally",
    "RunReport",
    "Send",
    "SendResult",
    "SimulationPlan",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "generate",
]

logger = logging.getLogger(__name__)

DAY = 86400.0
SCREENS = ("home", "portfolio", "send", "receive", "swap", "settings", "history")
ELEMENTS = (("send_button", "tap"), ("receive_button", "tap"), ("asset_row", "tap"), ("history_list", "scroll"))
ASSETS = (("BTC", 0.5), ("ETH", 4.0), ("USDC", 500.0))
TX_TYPES = ("send", "receive", "swap", "submitted", "confirmed")
ROUTES = (("GET", "/v1/prices"), ("GET", "/v1/accounts/{id}/balance"), ("POST", "/v1/transactions"))
HANDLED_ERRORS = ("SocketException: connection reset", "TimeoutException: price feed timed out")
UNHANDLED_ERROR = "StateError: Bad state: no element"
FATAL_ERROR = "PlatformException: wallet keystore unavailable"


class SimulatorError(Exception):
    """The simulator cannot run with this config or target."""


class DeliveryError(SimulatorError):
    """A batch was not delivered, so the run stopped; `report` counts what was sent until then."""

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulation settings; probabilities are per session unless named otherwise."""

    devices: int = 20
    """Number of simulated installs."""
    days: float = 1.0
    """Simulated period in days, ending at `end`; at most 6 so every event is younger than the daemon's 7-day window."""
    end: float = 0.0
    """End of the simulated period, UTC epoch seconds; the CLI passes the current time."""
    seed: int = 0
    """Seed of the random generator; the same seed and `end` give the same events and ids."""
    app_id: str = "atlas-wallet"
    releases: tuple[str, ...] = ("2.2.0", "2.3.0")
    """App versions; each device runs one of them for the whole period."""
    sessions_per_day: float = 3.0
    """Mean sessions per device and day."""
    crash_rate: float = 0.03
    """Chance that a session ends in a fatal error without `session_end`."""
    unhandled_error_rate: float = 0.05
    """Chance of an unhandled, non-fatal error in a session."""
    handled_error_rate: float = 0.1
    """Chance of a handled error in a session."""
    offline_rate: float = 0.1
    """Chance that a device goes offline after a session, for 1 hour to 2 days."""
    skewed_device_share: float = 0.2
    """Share of devices whose clock is off by up to `max_clock_skew` seconds either way."""
    max_clock_skew: float = 7200.0
    batch_size: int = 100
    """Events that trigger a send; the SDK sends at most this many per batch."""
    flush_interval: float = 300.0
    """Simulated seconds after the first buffered event at which the buffer is sent."""
    max_attempts: int = 8
    """Send attempts per batch before the simulator gives the batch up."""
    retry_backoff: float = 0.05
    """Real seconds before the first retry after a 5xx or a connection error; doubles each time, up to 2 s."""
    gzip: bool = True
    """Send bodies gzip-compressed, as the SDK does."""

    def check(self) -> None:
        """Raise `SimulatorError` when a value is out of range."""
        if self.devices < 1:
            raise SimulatorError(f"devices={self.devices} is invalid; simulate at least 1 device")
        if not 0 < self.days <= 6:
            raise SimulatorError(
                f"days={self.days} is invalid; use 0 < days <= 6, because the daemon rejects events older than 7 days"
            )
        if not 1 <= self.batch_size <= MAX_EVENTS_PER_BATCH:
            raise SimulatorError(f"batch_size={self.batch_size} is invalid; use 1 to {MAX_EVENTS_PER_BATCH}")
        if self.end <= 0:
            raise SimulatorError("end is missing; pass the end of the simulated period as UTC epoch seconds")
        if not self.releases:
            raise SimulatorError("releases is empty; name at least one app version")


@dataclass
class ReleaseTally:
    """Sessions and devices of one release, counted from the generated events."""

    sessions: int = 0
    crashed_sessions: int = 0
    errored_sessions: int = 0
    """Sessions with an unhandled non-fatal error and no crash."""
    devices: set[str] = field(default_factory=set)
    crashed_devices: set[str] = field(default_factory=set)

    @property
    def crash_free_sessions_pct(self) -> float | None:
        """1 − crashed / sessions, in percent; None without sessions."""
        if not self.sessions:
            return None
        return 100.0 * (1.0 - self.crashed_sessions / self.sessions)

    @property
    def crash_free_users_pct(self) -> float | None:
        """1 − devices with a crashed session / active devices, in percent; None without devices."""
        if not self.devices:
            return None
        return 100.0 * (1.0 - len(self.crashed_devices) / len(self.devices))


@dataclass(frozen=True)
class BatchPlan:
    """One batch as a device sends it; `sent_at` is stamped at each attempt."""

    device_id: str
    clock_offset: float
    """Seconds the device clock is ahead of true time (negative when behind)."""
    send_time: float
    """Simulated true time of the send, UTC epoch seconds; batches are sent in this order."""
    events: tuple[dict[str, Any], ...]


@dataclass
class SimulationPlan:
    """Everything `generate` produced: the batches, the event log and the tally."""

    batches: list[BatchPlan]
    events: dict[str, dict[str, Any]]
    """Every distinct generated event by `event_id`."""
    tally: dict[tuple[str, str], ReleaseTally]
    """Sessions and crashes by (app version, platform)."""

    @property
    def session_count(self) -> int:
        """Number of generated sessions."""
        return sum(release.sessions for release in self.tally.values())


@dataclass
class RunReport:
    """Counts of sends, retries and per-event outcomes from delivering a plan."""

    batches: int = 0
    attempts: int = 0
    retries: int = 0
    """Attempts after the first, for any reason."""
    rate_limited: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    """Per-event outcomes of the final response of each batch (`accepted`, `duplicate`, `rejected:<reason>`)."""
    undelivered_events: int = 0
    """Events not delivered because a batch failed `max_attempts` times or was rejected whole with a 4xx."""


@dataclass(frozen=True)
class _Randoms:
    traffic: random.Random
    """Decides what devices do; depends on the seed only."""
    ids: random.Random
    """Makes event and session ids; depends on the seed and `end`."""


@dataclass
class _Device:
    device_id: str
    platform: str
    release: str
    privacy_level: PrivacyLevel
    clock_offset: float
    user_id: str | None


def generate(config: SimulatorConfig) -> SimulationPlan:
    """Plan the events and batches of every device, with no I/O.

    Raises:
        SimulatorError: the config is invalid.
    """
    config.check()
    rng = random.Random(config.seed)
    # Ids come from their own generator seeded with `end` too, so a second run with
    # the same seed sends new events instead of reusing ids with other timestamps,
    # which the daemon would reject as `dedup_conflict`.
    ids = random.Random(f"{config.seed}/{config.end!r}")
    start = config.end - config.days * DAY
    plan = SimulationPlan(batches=[], events={}, tally={})
    for index in range(config.devices):
        device = _make_device(rng, config, index)
        _simulate_device(_Randoms(rng, ids), config, device, start, plan)
    plan.batches.sort(key=lambda batch: (batch.send_time, batch.device_id))
    return plan


def _make_device(rng: random.Random, config: SimulatorConfig, index: int) -> _Device:
    skewed = rng.random() < config.skewed_device_share
    return _Device(
        device_id=f"device-{index:05d}-{rng.getrandbits(32):08x}",
        platform=rng.choice(("android", "ios")),
        release=rng.choice(config.releases),
        # The simulator never uses `minimal`, because that level drops the device id and
        # the error flags, so the daemon could not count crashes or sessions per device.
        privacy_level=rng.choice(("standard", "full")),
        clock_offset=rng.uniform(-config.max_clock_skew, config.max_clock_skew) if skewed else 0.0,
        user_id=f"user-{rng.getrandbits(40):010x}" if rng.random() < 0.5 else None,
    )


def _simulate_device(
    randoms: _Randoms, config: SimulatorConfig, device: _Device, start: float, plan: SimulationPlan
) -> None:
    rng = randoms.traffic
    buffer = _Buffer(config, device, plan)
    mean_gap = DAY / config.sessions_per_day
    now = start + rng.uniform(0, mean_gap)
    # Each session, crash relaunch included, ends well before `end`, so none is
    # still open when the period ends and the tally needs no timeout rule.
    latest_start = config.end - 3 * 3600.0
    offline_until = 0.0
    crashed = False
    # A crash is always followed by a relaunch, even near the end, so the crashed
    # session is closed by the next `app_launch` rather than by the idle timeout.
    while now < latest_start or crashed:
        crashed, now = _session(randoms, config, device, now, buffer, offline_until, plan)
        if crashed:
            now += rng.uniform(5.0, 120.0)
            continue
        if rng.random() < config.offline_rate:
            offline_until = now + rng.uniform(3600.0, 2 * DAY)
        now += rng.expovariate(1.0 / mean_gap) + 60.0
    buffer.flush(min(max(now, offline_until), config.end))


def _session(
    randoms: _Randoms,
    config: SimulatorConfig,
    device: _Device,
    launch_ts: float,
    buffer: _Buffer,
    offline_until: float,
    plan: SimulationPlan,
) -> tuple[bool, float]:
    """Generate one session from `launch_ts`; return whether it crashed and its last event time."""
    rng = randoms.traffic
    session_id = f"s-{uuid.UUID(int=randoms.ids.getrandbits(128), version=4).hex[:16]}"
    events: list[tuple[float, str, dict[str, Any]]] = [(launch_ts, "app_launch", {})]
    now = launch_ts
    start_kind = rng.choice(("cold", "warm"))
    start_ms = rng.lognormvariate(6.8 if start_kind == "cold" else 6.0, 0.4)
    events.append((now, "performance_metric", {"name": "app_start_time", "value": round(start_ms, 1),
                                                 "properties": {"start": start_kind}}))  # fmt: skip
    for _ in range(rng.randint(3, 40)):
        now += rng.uniform(2.0, 90.0)
        events.append((now, *_activity(rng)))

    unhandled = rng.random() < config.unhandled_error_rate
    if unhandled:
        now += rng.uniform(1.0, 30.0)
        events.append((now, "error", {"message": UNHANDLED_ERROR, "stack_trace": "#0 List.first (dart:core)",
                                      "fatal": False, "handled": False}))  # fmt: skip
    if rng.random() < config.handled_error_rate:
        now += rng.uniform(1.0, 30.0)
        events.append((now, "error", {"message": rng.choice(HANDLED_ERRORS), "fatal": False, "handled": True}))
    crashed = rng.random() < config.crash_rate
    now += rng.uniform(1.0, 30.0)
    if crashed:
        events.append((now, "error", {"message": FATAL_ERROR, "stack_trace": "#0 Keystore.open (keystore.dart:88)",
                                      "fatal": True, "handled": False}))  # fmt: skip
    else:
        events.append((now, "session_end", {"duration_s": round(now - launch_ts, 3)}))

    for ts, kind, fields in events:
        event = _event(randoms.ids, config, device, session_id, ts, kind, fields)
        plan.events[event["event_id"]] = event
        buffer.add(event, ts, offline_until)
    _count_session(plan, device, crashed=crashed, errored=unhandled and not crashed)
    return crashed, now


def _activity(rng: random.Random) -> tuple[str, dict[str, Any]]:
    roll = rng.random()
    if roll < 0.45:
        return "screen_view", {"screen": rng.choice(SCREENS)}
    if roll < 0.7:
        element, action = rng.choice(ELEMENTS)
        return "user_interaction", {"element": element, "action": action}
    if roll < 0.8:
        asset, scale = rng.choice(ASSETS)
        return "transaction", {"tx_type": rng.choice(TX_TYPES), "asset": asset,
                               "amount": round(rng.uniform(0.0, scale), 6)}  # fmt: skip
    if roll < 0.95:
        method, route = rng.choice(ROUTES)
        status = 503 if rng.random() < 0.03 else 200
        return "performance_metric", {"name": "network_request_latency", "value": round(rng.lognormvariate(5.0, 0.6), 1),
                                      "properties": {"method": method, "route": route, "status": status}}  # fmt: skip
    return "performance_metric", {"name": "battery_level", "value": float(rng.randint(5, 100))}


def _event(
    ids: random.Random,
    config: SimulatorConfig,
    device: _Device,
    session_id: str,
    ts: float,
    kind: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    properties = fields.pop("properties", {})
    event: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=ids.getrandbits(128), version=4)),
        "type": kind,
        "client_ts": _iso(ts + device.clock_offset),
        "session_id": session_id,
        "device_id": device.device_id,
        "app_id": config.app_id,
        "app_version": device.release,
        "platform": device.platform,
        "privacy_level": device.privacy_level,
        "properties": properties,
        **fields,
    }
    if device.user_id is not None:
        event["user_id"] = device.user_id
    return event


def _count_session(plan: SimulationPlan, device: _Device, *, crashed: bool, errored: bool) -> None:
    release = plan.tally.setdefault((device.release, device.platform), ReleaseTally())
    release.sessions += 1
    release.devices.add(device.device_id)
    if crashed:
        release.crashed_sessions += 1
        release.crashed_devices.add(device.device_id)
    if errored:
        release.errored_sessions += 1


class _Buffer:
    """The SDK's event buffer for one device: sends at `batch_size` events or after `flush_interval`."""

    def __init__(self, config: SimulatorConfig, device: _Device, plan: SimulationPlan) -> None:
        self.config = config
        self.device = device
        self.plan = plan
        self.events: list[dict[str, Any]] = []
        self.first_ts = 0.0

    def add(self, event: dict[str, Any], ts: float, offline_until: float) -> None:
        """Buffer `event` that happened at `ts`; send what is due first."""
        if self.events and ts >= self.first_ts + self.config.flush_interval and ts >= offline_until:
            self.flush(max(self.first_ts + self.config.flush_interval, offline_until))
        if not self.events:
            self.first_ts = ts
        self.events.append(event)
        if len(self.events) >= self.config.batch_size and ts >= offline_until:
            self.flush(ts)

    def flush(self, send_time: float) -> None:
        """Turn the buffer into batches of at most `batch_size` events sent at `send_time`."""
        size = self.config.batch_size
        for offset in range(0, len(self.events), size):
            chunk = tuple(self.events[offset : offset + size])
            self.plan.batches.append(BatchPlan(self.device.device_id, self.device.clock_offset, send_time, chunk))
        self.events = []


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SendResult:
    """One HTTP response to a batch: status, `Retry-After` in seconds and the JSON body when there is one."""

    status: int
    retry_after: float | None
    body: dict[str, Any] | None


Send = Callable[[bytes, dict[str, str]], SendResult]
"""Posts one encoded batch with its headers; raises `httpx.TransportError` when the connection fails."""


class HttpSender:
    """Posts batches to a daemon's `POST /api/analytics/events` with one keep-alive client."""

    def __init__(self, url: str, ingest_key: str, *, timeout: float = 30.0) -> None:
        self.endpoint = url.rstrip("/") + "/api/analytics/events"
        self.client = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {ingest_key}"})

    def __call__(self, body: bytes, headers: dict[str, str]) -> SendResult:
        """Post one batch and return the response."""
        response = self.client.post(self.endpoint, content=body, headers=headers)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return SendResult(response.status_code, _retry_after_seconds(response.headers.get("retry-after")), payload)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def _retry_after_seconds(value: str | None) -> float | None:
    """Return `Retry-After` in seconds, or None when it is missing or an HTTP date (the daemon sends seconds)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Simulator:
    """Generates a plan from a config and delivers it through a `send` function."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.plan = generate(config)
        self.clock = clock
        self.sleep = sleep

    def run(self, send: Send) -> RunReport:
        """Send every planned batch in simulated send order, retrying failures with the same events.

        Raises:
            DeliveryError: a batch failed `max_attempts` times, or got a 4xx other
                than 429; the remaining batches are not sent.
        """
        report = RunReport()
        for position, batch in enumerate(self.plan.batches):
            problem = self._deliver(batch, send, report)
            if problem is not None:
                report.undelivered_events = sum(len(left.events) for left in self.plan.batches[position:])
                logger.warning("simulation stopped device=%s problem=%s", batch.device_id, problem)
                raise DeliveryError(f"batch of {batch.device_id} not delivered: {problem}", report)
        logger.info(
            "simulation sent batches=%d attempts=%d retries=%d events=%d undelivered=%d",
            report.batches, report.attempts, report.retries, len(self.plan.events), report.undelivered_events,
        )
        return report

    def _deliver(self, batch: BatchPlan, send: Send, report: RunReport) -> str | None:
        """Send one batch until it gets a 200; return None, or why it was not delivered."""
        report.batches += 1
        backoff = self.config.retry_backoff
        problem = "no attempt made"
        for attempt in range(1, self.config.max_attempts + 1):
            report.attempts += 1
            if attempt > 1:
                report.retries += 1
            body, headers = self._encode(batch)
            try:
                result = send(body, headers)
            except httpx.TransportError as err:
                logger.info("batch send failed device=%s attempt=%d error=%s", batch.device_id, attempt, err)
                problem = f"connection failed ({err}); check that the daemon runs at the URL"
                backoff = self._back_off(backoff)
                continue
            if result.status == 200 and result.body is not None:
                _record_statuses(result.body, report)
                return None
            if result.status == 429:
                report.rate_limited += 1
                problem = "rate limited (429) on every attempt"
                self.sleep(result.retry_after if result.retry_after is not None else backoff)
                continue
            if result.status >= 500:
                problem = f"server error {result.status} on every attempt"
                backoff = self._back_off(backoff)
                continue
            return f"rejected with status {result.status}: {json.dumps(result.body)[:300]}"
        return f"{problem}, {self.config.max_attempts} attempts"

    def _back_off(self, delay: float) -> float:
        self.sleep(delay)
        return min(delay * 2.0, 2.0)

    def _encode(self, batch: BatchPlan) -> tuple[bytes, dict[str, str]]:
        """Build the body with `sent_at` from the device clock now; the events stay unchanged."""
        envelope = {"schema": SCHEMA_VERSION, "sent_at": _iso(self.clock() + batch.clock_offset),
                    "events": list(batch.events)}  # fmt: skip
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        return body, headers


def _record_statuses(body: dict[str, Any], report: RunReport) -> None:
    for status in body.get("events", []):
        if status.get("status") == "rejected":
            report.statuses[f"rejected:{status.get('reason')}"] += 1
        else:
            report.statuses[str(status.get("status"))] += 1


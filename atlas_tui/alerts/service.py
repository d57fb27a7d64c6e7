"""The alert service: the daemon's evaluation loop over every rule, every `evaluation_interval`.

The daemon runs `AlertService.run()` as one task next to the collectors and the
outbox sender. Each cycle (`evaluate_once`, blocking, run in a worker thread):

1. reads the collectors' statuses, so rules over a failing collector turn `error`;
2. preloads the metrics all rules read (`query.PreloadedQuery`) and evaluates
   every rule outside any write transaction;
3. in one BEGIN IMMEDIATE transaction: loads the stored instances, active
   silences and channel health, advances every instance (`cycle.CyclePlanner`),
   and writes instance states, history rows, outbox rows and the loop's own state
   (last tick, missed evaluations, rule health);
4. after the commit, calls `on_enqueued()` when notices were queued, so the sender
   wakes up at once.

Invariants: the store is the source of truth. Instances are loaded and saved in
the same write transaction, so an acknowledgement committed by the CLI or API
at any moment is never overwritten. Ticks fall on `first tick + k * interval`. A
cycle that overruns makes the loop skip the ticks it missed and count them in
`missed_evaluations`, never run them late. Only `run()` reads the clock. The first
cycle after start runs with `after_restart=True`, which lets the engine mark a
resolve that happened during downtime. A config given to `reconfigure()` takes
effect between two cycles, never inside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from atlas_tui.alerts.cycle import CyclePlanner, write_plan
from atlas_tui.alerts.engine import TickPlan, due_ticks
from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.evaluate import Evaluation, Observation, ObservationResult, evaluate
from atlas_tui.alerts.internal import NOTIFICATION_FAILING, is_internal, notification_checks
from atlas_tui.alerts.query import PreloadedQuery
from atlas_tui.alerts.rules import LoadedRules, RuleHealth, RuleSpec, evaluation_health, load_rules
from atlas_tui.alerts.silences import Silencer
from atlas_tui.alerts.sources import KNOWN_METRICS, SourceHealth
from atlas_tui.alerts.state import fingerprint
from collectors.base import CollectorStatus
from storage.alerts import StoredInstance, list_silences, load_instances, read_engine_state, write_engine_state
from storage.db import open_store, transaction
from storage.outbox import channel_health
from storage.status import read_collector_statuses

if TYPE_CHECKING:
    from atlas_tui.config import Config

__all__ = ["AlertService", "CycleReport", "load_service_rules"]

logger = logging.getLogger(__name__)

_READY_POLL = 0.2
"""Seconds between checks of the collectors' statuses before the first cycle."""

_READY_INTERVALS = 3
"""Evaluation intervals the first cycle waits at most for every collector's first delivery."""


@dataclass(frozen=True, slots=True)
class CycleReport:
    """Summary of one evaluation cycle."""

    at: float
    """The evaluation time (the tick)."""
    rules: int
    """Rules evaluated."""
    written: int
    """Instances written."""
    events: int
    """History rows written."""
    notices: int
    """Outbox rows added."""
    rule_errors: int
    """Rules whose health is `error` after this cycle."""
    missed_evaluations: int
    """Evaluations skipped since the store was created."""
    duration_ms: float
    """Wall time of the cycle, evaluation and write included."""


def load_service_rules(config: Config) -> LoadedRules:
    """Load the config's rules, dropping channels that are not configured.

    Rules written for the original dashboard name `email` and `slack` without a
    `channels` section. `atlas config check` reports those names, and this skips
    them with one warning per rule, so no notice waits for a channel that does
    not exist.
    """
    loaded = load_rules(config.alert_rules)
    rules = []
    for rule in loaded.rules:
        missing = [name for name in rule.channels if name not in config.channels]
        if missing:
            logger.warning(
                "rule channels not configured rule=%s channels=%s; add them under channels",
                rule.rule_id,
                ",".join(missing),
            )
            rule = replace(rule, channels=tuple(name for name in rule.channels if name in config.channels))
        rules.append(rule)
    return LoadedRules(tuple(rules), loaded.health)


class AlertService:
    """Evaluate every rule each `config.alerting.evaluation_interval` until `stop()`."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        statuses: Callable[[], list[CollectorStatus]] | None = None,
        clock: Callable[[], float] = time.time,
        on_enqueued: Callable[[], None] | None = None,
        wait_for_collectors: bool = False,
    ) -> None:
        """Load the rules; the store is opened by `run()` or the first `evaluate_once`.

        Args:
            config: The effective configuration.
            data_dir: Data directory holding the store.
            statuses: The collectors' latest statuses; None reads them from the store.
            clock: UTC epoch seconds; only `run()` reads it.
            on_enqueued: Called after a cycle queued notices (the sender's `wake`).
            wait_for_collectors: Make `run()` hold its first cycle, for at most three
                intervals, until every collector in `statuses` has stored a cycle. The
                daemon sets it, so the first evaluation after a start reads fresh
                samples instead of a gap that would read as no data.
        """
        self.config = config
        self.data_dir = data_dir
        self.interval = float(config.alerting.evaluation_interval)
        self.loaded = load_service_rules(config)
        self._statuses = statuses
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._wait_for_collectors = wait_for_collectors
        self._conn: sqlite3.Connection | None = None
        self._query: PreloadedQuery | None = None
        self._health: dict[str, RuleHealth] = {}
        self._last_tick: float | None = None
        self._missed: int | None = None
        self._stopping = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = False
        self._failures = 0
        self._crashed: set[str] = set()
        self._pending_config: Config | None = None
        self._reconfigured = asyncio.Event()
        self._cycle_listeners: list[Callable[[CycleReport], None]] = []

    async def run(self) -> None:
        """Evaluate on every tick until `stop()`; the first cycle runs as after a restart.

        Raises:
            storage.errors.StoreOpenError: the store cannot be opened.
            storage.errors.MigrationError: the store's schema cannot be migrated.
        """
        self._started = True
        try:
            # Reading the stored counter here keeps store reads off the event loop.
            await asyncio.to_thread(self._missed_so_far)
        except BaseException:
            self._finished.set()
            raise
        logger.info("alert service started rules=%d interval_s=%g", len(self.loaded.rules), self.interval)
        first = True
        try:
            await self._collectors_ready()
            while not self._stopping.is_set():
                self._apply_pending_config()
                plan = self.next_tick(self._clock())
                if plan.run:
                    report = await _run_to_end(self._cycle, plan.tick, first)
                    first = first and report is None
                    if isinstance(report, CycleReport):
                        self._notify(report)
                await self._sleep_until(self._next_due())
        finally:
            await _run_to_end(self.close)
            self._finished.set()
            logger.info("alert service stopped")

    async def stop(self) -> None:
        """Make `run()` return and wait for it; the cycle in progress, if any, commits first."""
        self._stopping.set()
        if self._started:
            await self._finished.wait()

    def reconfigure(self, config: Config) -> None:
        """Use the rules, channels and interval of `config` from the next cycle on.

        Stored alert instances stay. Instances of a removed or disabled rule are
        resolved by that next cycle, as after a restart with the new config.
        """
        self._pending_config = config
        self._reconfigured.set()

    def add_cycle_listener(self, listener: Callable[[CycleReport], None]) -> None:
        """Call `listener` on the event loop after each cycle that committed."""
        self._cycle_listeners.append(listener)

    def next_tick(self, now: float) -> TickPlan:
        """Decide whether a cycle is due at `now`, counting ticks an overrun skipped.

        The skipped ticks are added to `missed_evaluations`, which the next cycle stores.
        """
        plan = due_ticks(self._last_tick, now, self.interval)
        if plan.run:
            self._last_tick = plan.tick
            if plan.skipped:
                self._missed = self._missed_so_far() + plan.skipped
                logger.warning(
                    "evaluation overran interval skipped=%d missed_total=%d interval_s=%g",
                    plan.skipped,
                    self._missed,
                    self.interval,
                )
        return plan

    def evaluate_once(self, now: float, *, after_restart: bool = False) -> CycleReport:
        """Run one cycle at `now` and return what it did. Blocking; run it in a thread.

        Raises:
            sqlite3.Error: the store failed; nothing of the cycle was written.
        """
        began = time.perf_counter()
        conn = self._open()
        evaluations = self._evaluate(conn, now)
        health = self._rule_health(evaluations)

        with transaction(conn):
            planner = self._plan(conn, now, after_restart, evaluations)
            notices = write_plan(conn, planner.plan, now)
            write_engine_state(conn, self._engine_values(now, health))
        duration_ms = (time.perf_counter() - began) * 1000
        write_engine_state(conn, {"last_duration_ms": round(duration_ms, 3)})

        self._log_health_changes(health)
        if notices and self._on_enqueued is not None:
            self._on_enqueued()
        report = CycleReport(
            at=now,
            rules=len(evaluations),
            written=len(planner.plan.instances),
            events=len(planner.plan.events),
            notices=notices,
            rule_errors=sum(1 for h in health if h.status == "error"),
            missed_evaluations=self._missed_so_far(),
            duration_ms=duration_ms,
        )
        logger.debug(
            "evaluation done rules=%d written=%d events=%d notices=%d duration_ms=%.1f",
            report.rules, report.written, report.events, report.notices, report.duration_ms,
        )
        return report

    def close(self) -> None:
        """Close the store connection; `evaluate_once` opens a new one if called again."""
        conn, self._conn, self._query = self._conn, None, None
        if conn is not None:
            conn.close()

    # --- cycle phases -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_store(self.data_dir)
            self._query = PreloadedQuery(self._conn)
        return self._conn

    def _evaluate(self, conn: sqlite3.Connection, now: float) -> dict[str, Evaluation]:
        query = self._query if self._query is not None else PreloadedQuery(conn)
        statuses = self._statuses() if self._statuses is not None else read_collector_statuses(conn)
        query.source_errors = SourceHealth(statuses)
        try:
            query.preload((rule.expr for rule in self.loaded.rules), now)
        except MetricQueryError as err:
            # Each rule reports the failure itself when it queries again.
            logger.warning("metric preload failed: %s", err)
        return {rule.rule_id: self._evaluate_rule(rule, query, now) for rule in self.loaded.rules}

    def _evaluate_rule(self, rule: RuleSpec, query: PreloadedQuery, now: float) -> Evaluation:
        """Evaluate one rule; an unexpected failure becomes that rule's error, not the cycle's."""
        try:
            return evaluate(rule.expr, query, now)
        except Exception as err:  # noqa: BLE001 - worker boundary: one rule must not stop the others
            if rule.rule_id not in self._crashed:
                self._crashed.add(rule.rule_id)
                logger.error("rule evaluation crashed rule=%s: %s", rule.rule_id, err, exc_info=err)
            message = f"evaluation failed: {type(err).__name__}: {err}"
            return Evaluation((Observation((), None, ObservationResult.ERROR, message),), rule_wide=True)

    def _plan(
        self, conn: sqlite3.Connection, now: float, after_restart: bool, evaluations: dict[str, Evaluation]
    ) -> CyclePlanner:
        stored: dict[str, list[StoredInstance]] = {}
        for instance in load_instances(conn):
            stored.setdefault(instance.state.rule_id, []).append(instance)
        planner = CyclePlanner(
            now,
            after_restart=after_restart,
            interval=self.interval,
            silencer=Silencer(list_silences(conn, now), now),
        )
        for rule in self.loaded.rules:
            planner.rule(rule, evaluations[rule.rule_id], stored.pop(rule.rule_id, []))
        self._plan_internal(conn, now, planner, stored.pop(NOTIFICATION_FAILING, []))
        self._plan_orphans(planner, stored)
        return planner

    def _plan_internal(
        self, conn: sqlite3.Connection, now: float, planner: CyclePlanner, stored: list[StoredInstance]
    ) -> None:
        channels = list(self.config.channels)
        if not channels and not stored:
            return
        by_fingerprint = {instance.state.fingerprint: instance for instance in stored}
        checks = notification_checks(channels, channel_health(conn, now), (s.state for s in stored))
        for check in checks:
            key = fingerprint(check.rule.rule_id, check.observation.labels)
            planner.internal(check, by_fingerprint.get(key))

    def _plan_orphans(self, planner: CyclePlanner, stored: dict[str, list[StoredInstance]]) -> None:
        """Resolve instances of rules removed or disabled; put those of broken rules in error."""
        for rule_id, instances in stored.items():
            if is_internal(rule_id):
                continue
            health = self.loaded.health_of(rule_id)
            error = health.message if health is not None and health.status == "error" else None
            for instance in instances:
                planner.orphan(instance, self.config.channels, error)

    def _rule_health(self, evaluations: dict[str, Evaluation]) -> list[RuleHealth]:
        health = []
        for entry in self.loaded.health:
            evaluation = evaluations.get(entry.rule_id)
            # Only a rule-wide observation can be an error, so a per-series evaluation
            # without unknown metrics is healthy and needs no scan.
            if entry.status == "ok" and evaluation is not None:
                if evaluation.rule_wide or evaluation.unknown_metrics:
                    entry = evaluation_health(entry.rule_id, evaluation, KNOWN_METRICS)
            health.append(entry)
        return health

    def _engine_values(self, now: float, health: list[RuleHealth]) -> dict[str, object]:
        return {
            "last_tick": now,
            "missed_evaluations": self._missed_so_far(),
            "rule_health": [[h.rule_id, h.status, h.message] for h in health],
        }

    def _missed_so_far(self) -> int:
        if self._missed is None:
            conn = self._open()
            self._missed = read_engine_state(conn).missed_evaluations
        return self._missed

    def _log_health_changes(self, health: list[RuleHealth]) -> None:
        for entry in health:
            before = self._health.get(entry.rule_id)
            if before is not None and before == entry:
                continue
            if entry.status == "error":
                logger.warning("rule unhealthy rule=%s: %s", entry.rule_id, entry.message)
            elif before is not None and before.status == "error":
                logger.info("rule healthy again rule=%s", entry.rule_id)
            self._health[entry.rule_id] = entry

    # --- loop helpers -------------------------------------------------------------

    def _apply_pending_config(self) -> None:
        config, self._pending_config = self._pending_config, None
        if config is None:
            return
        self.config = config
        self.loaded = load_service_rules(config)
        self.interval = float(config.alerting.evaluation_interval)
        self._health = {}
        self._crashed = set()
        logger.info("alert service reconfigured rules=%d interval_s=%g", len(self.loaded.rules), self.interval)

    def _notify(self, report: CycleReport) -> None:
        for listener in self._cycle_listeners:
            try:
                listener(report)
            except Exception:  # noqa: BLE001 - worker boundary: a listener must not stop evaluation
                logger.exception("cycle listener failed listener=%r", listener)

    def _cycle(self, tick: float, first: bool) -> CycleReport | None:
        """Run one cycle; log a failure instead of raising, so the loop goes on."""
        try:
            report = self.evaluate_once(tick, after_restart=first)
        except Exception as err:  # noqa: BLE001 - worker boundary: log, retry next tick
            self._failures += 1
            if self._failures == 1:
                logger.error("evaluation failed tick=%.0f: %s", tick, err, exc_info=err)
            else:
                logger.debug("evaluation failed again failures=%d: %s", self._failures, err)
            return None
        if self._failures:
            logger.info("evaluation recovered after failures=%d", self._failures)
        self._failures = 0
        return report

    async def _collectors_ready(self) -> None:
        if not self._wait_for_collectors or self._statuses is None:
            return
        loop = asyncio.get_running_loop()
        # Every cycle ends in a delivery, even one that timed out, so the slowest
        # collector's timeout bounds this wait. The deadline is a guard for a
        # scheduler that never started. On a loaded host a first cycle can take
        # longer than one interval, and an evaluation before it would read the
        # values stored before the restart.
        deadline = loop.time() + _READY_INTERVALS * self.interval
        while not self._stopping.is_set() and loop.time() < deadline:
            statuses = self._statuses()
            if all(status.deliveries >= 1 for status in statuses):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=_READY_POLL)
        logger.info("first evaluation without fresh samples from every collector interval_s=%g", self.interval)

    def _next_due(self) -> float:
        return (self._last_tick if self._last_tick is not None else self._clock()) + self.interval

    async def _sleep_until(self, due: float) -> None:
        """Sleep until `due`, or until a stop or a new config wakes the loop early."""
        delay = due - self._clock()
        if delay <= 0 or self._reconfigured.is_set():
            self._reconfigured.clear()
            return
        waiters = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._reconfigured.wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._reconfigured.clear()


async def _run_to_end(function: Callable[..., object], *args: object) -> object:
    """Run `function` in a thread and wait for it to end, even when the caller is cancelled.

    Cancelling `asyncio.to_thread` does not stop the thread, so without the shield a
    stop could close the connection while a cycle still writes with it. The
    cancellation is raised once the thread has ended.
    """
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.done():
                raise
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
    return result

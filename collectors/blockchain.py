"""Blockchain node collector: polls one Ethereum or Bitcoin Core node over JSON-RPC per cycle.

`atlas_tui.collection.build_collectors` creates one `NodeCollector` per entry of
`collectors.nodes`, all sharing one `ReferenceBook`. Each cycle reads the node with
`collectors.ethereum` or `collectors.bitcoin`, fetches the reference heights, judges
health with `collectors.health` and returns the samples, labelled `node=<name>`:

| metric | unit / values |
|---|---|
| `node_up` | 1 when the poll got JSON-RPC responses, 0 when the node is down or misconfigured |
| `node_health` | state code of `collectors.health.HEALTH_CODES` (0 ok, 1 syncing, 2 lagging, 3 stalled, 4 starting, 5 down, 6 misconfigured) |
| `node_block_height` | blocks |
| `node_head_age_seconds` | seconds since the head block's timestamp, never below 0 |
| `node_block_lag` | blocks behind the highest reference, never below 0 |
| `node_peer_count` | peers |
| `node_syncing` | 1 while the node reports syncing, else 0 |
| `node_rpc_latency_ms` | round trip of the poll's first request (the batch, or the first single call) |
| `node_gas_price_wei` | Ethereum only |
| `node_pending_transactions` | Ethereum `txpool_status` pending (when `txpool` is on), Bitcoin mempool size |

Invariants:

- A value the node did not give (method disabled, invalid value, node down) has no
  sample; it is never stored as 0. The reason is in `unavailable_sources()` under the
  method's name, and is logged once when the source becomes unavailable and once
  when it recovers.
- At most one poll of a node runs at a time, and within it requests go one after
  another (`collectors.jsonrpc`); reference URLs are separate endpoints, read at the
  same time as the node.
- A poll has `timeout` seconds in total. A node that does not finish in time is
  `down` for that cycle: the cycle still returns `node_up` 0, so a rule sees it.
- Lag is measured against the highest of: the configured references (other nodes'
  latest heights, or URLs), and the node's own sync target (Ethereum `highestBlock`,
  Bitcoin `headers`). Without any of them the node has no `node_block_lag` sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from atlas_tui.nodes_config import NodeConfig, is_url
from collectors import bitcoin, ethereum
from collectors.base import CollectorError, Sample
from collectors.health import FailureKind, HealthJudgement, HealthLimits, NodeSignals, judge_health
from collectors.jsonrpc import (
    JsonRpcClient,
    RpcAuthFailed,
    RpcExchangeError,
    RpcHttpError,
    RpcInvalidResponse,
    RpcOverloaded,
    RpcUnreachable,
)
from collectors.node_reading import NodeReading
from collectors.rpc_credentials import CredentialsError, RpcCredentials
from collectors.source_log import SourceLog

__all__ = ["NODE_METRICS", "REFERENCE_STALE_INTERVALS", "NodeCollector", "ReferenceBook"]

logger = logging.getLogger(__name__)

NODE_METRICS = frozenset(
    {
        "node_up",
        "node_health",
        "node_block_height",
        "node_head_age_seconds",
        "node_block_lag",
        "node_peer_count",
        "node_syncing",
        "node_rpc_latency_ms",
        "node_gas_price_wei",
        "node_pending_transactions",
    }
)
"""Every metric name this collector writes, for rule checks that know metric names in advance."""

CYCLE_MARGIN = 1.0
"""Seconds the scheduler's cycle timeout adds to a poll's `timeout`, so the poll times out first
and the cycle still returns `node_up` 0."""

REFERENCE_STALE_INTERVALS = 3
"""A named reference's height is used for this many of its own intervals after it was read."""


class ReferenceBook:
    """The latest heights of all nodes of one pipeline, so nodes can be each other's references."""

    def __init__(self) -> None:
        """Create an empty book."""
        self._heights: dict[str, tuple[int, float, float]] = {}

    def publish(self, node: str, height: int, now: float, valid_for: float) -> None:
        """Record that `node` was at `height` at `now`; the entry is used for `valid_for` seconds."""
        self._heights[node] = (height, now, valid_for)

    def height(self, node: str, now: float) -> int | None:
        """Return the latest height of `node`, or None when unknown or too old."""
        entry = self._heights.get(node)
        if entry is None:
            return None
        height, at, valid_for = entry
        return height if now - at <= valid_for else None


@dataclass(frozen=True, slots=True)
class _Poll:
    """The outcome of one poll: a reading, or why there is none."""

    reading: NodeReading | None
    failure: FailureKind | None = None
    message: str | None = None


class NodeCollector:
    """Poll one blockchain node per cycle and judge its health."""

    def __init__(
        self,
        node: NodeConfig,
        references: ReferenceBook,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Create the collector; nothing is read or connected yet.

        Args:
            node: The node's config.
            references: Heights shared by the nodes of this pipeline.
            transport: httpx transport for every endpoint, for tests; None uses the network.
            environ: Environment for `auth.password_env`; None reads `os.environ`.
        """
        self.name = f"node:{node.name}"
        self.interval = node.interval
        self._node = node
        self._book = references
        self._limits = HealthLimits(node.head_age_limit, node.lag_limit, node.min_peers)
        self._client = JsonRpcClient(
            node.url,
            name=node.name,
            timeout=node.timeout,
            version="1.0" if node.kind == "bitcoin" else "2.0",
            credentials=_credentials(node, environ),
            transport=transport,
        )
        self._reference_urls = [
            (f"reference[{index}]", JsonRpcClient(ref, name=f"{node.name} reference[{index}]",
                                                  timeout=node.timeout, transport=transport))
            for index, ref in enumerate(node.reference)
            if is_url(ref)
        ]
        self._sources = SourceLog(self.name)
        self._busy = asyncio.Lock()
        self._last_height: int | None = None
        self._progress_at: float | None = None
        self._health: HealthJudgement | None = None

    @property
    def cycle_timeout(self) -> float:
        """Seconds the scheduler allows a cycle: the poll's own timeout plus time to judge and return."""
        return min(self._node.timeout + CYCLE_MARGIN, self.interval)

    @property
    def health(self) -> HealthJudgement | None:
        """The judgement of the latest cycle; None before the first."""
        return self._health

    async def collect(self, now: float) -> list[Sample]:
        """Poll the node and its references once and return the samples stamped with `now`.

        Raises:
            CollectorError: the previous poll of this node is still running.
        """
        if self._busy.locked():
            raise CollectorError(
                f"the previous poll of node {self._node.name} is still running, so this cycle was skipped"
            )
        async with self._busy:
            poll, references, reference_problems = await self._poll_all(now)

        unavailable = dict(reference_problems)
        if poll.reading is not None:
            unavailable.update(poll.reading.unavailable)
        self._sources.update(unavailable)
        signals = self._signals(poll, references, now)
        judgement = judge_health(signals, self._limits, now)
        self._log_health(judgement)
        self._health = judgement
        return self._samples(poll, signals, judgement, now)

    def unavailable_sources(self) -> Mapping[str, str]:
        """Return the sources without a value in the latest cycle, mapped to the reason.

        `rpc` names the whole poll (node down, misconfigured or warming up); other
        keys are JSON-RPC method names and `reference[<n>]` for reference URLs.
        """
        sources = dict(self._sources.current)
        health = self._health
        if health is not None and health.state in ("down", "misconfigured", "starting") and health.reason:
            sources["rpc"] = f"{health.state}: {health.reason}"
        return sources

    async def _poll_all(self, now: float) -> tuple[_Poll, list[int], dict[str, str]]:
        """Read the node and the reference URLs at the same time, within the node's timeout."""
        node_task = asyncio.ensure_future(self._poll_node(now))
        reference_tasks = [asyncio.ensure_future(_read_height(client, self._node.kind, now))
                           for _, client in self._reference_urls]
        try:
            async with asyncio.timeout(self._node.timeout):
                await asyncio.gather(node_task, *reference_tasks, return_exceptions=True)
        except TimeoutError:
            pass
        for task in (node_task, *reference_tasks):
            if not task.done():
                task.cancel()
        await asyncio.gather(node_task, *reference_tasks, return_exceptions=True)

        poll = _task_result(node_task) or _Poll(None, "unreachable", f"timed out after {self._node.timeout:g}s")
        heights, problems = self._reference_heights(reference_tasks, now)
        return poll, heights, problems

    async def _poll_node(self, now: float) -> _Poll:
        try:
            if self._node.kind == "bitcoin":
                reading = await bitcoin.read_bitcoin(self._client, now, catch_up_blocks=self._limits.max_lag)
            else:
                reading = await ethereum.read_ethereum(self._client, now, txpool=self._node.txpool)
        except (RpcExchangeError, CredentialsError) as err:
            return _Poll(None, _failure_kind(err), str(err))
        expected = self._node.chain
        if expected is not None and reading.chain is not None and reading.chain != str(expected):
            return _Poll(None, "wrong_chain", f"node is on chain {reading.chain}, expected {expected}; check url or chain")
        return _Poll(reading)

    def _reference_heights(
        self, tasks: list[asyncio.Future[int]], now: float
    ) -> tuple[list[int], dict[str, str]]:
        heights = [
            height
            for name in self._node.reference
            if not is_url(name) and (height := self._book.height(name, now)) is not None
        ]
        problems: dict[str, str] = {}
        for (source, _client), task in zip(self._reference_urls, tasks):
            if task.cancelled():
                problems[source] = f"timed out after {self._node.timeout:g}s"
            elif task.exception() is not None:
                problems[source] = str(task.exception())
            else:
                heights.append(task.result())
        return heights, problems

    def _signals(self, poll: _Poll, references: list[int], now: float) -> NodeSignals:
        if self._progress_at is None:
            self._progress_at = now
        reading = poll.reading
        if reading is None:
            return NodeSignals(failure=poll.failure, message=poll.message)
        if reading.height is not None:
            if reading.height != self._last_height:
                self._last_height, self._progress_at = reading.height, now
            self._book.publish(self._node.name, reading.height, now, self.interval * REFERENCE_STALE_INTERVALS)
        return NodeSignals(
            message=reading.warming_up,
            warming_up=reading.warming_up is not None,
            sync_not_started=reading.sync_not_started,
            ever_had_height=self._last_height is not None,
            progress_at=self._progress_at,
            head_time=reading.head_time,
            syncing=reading.syncing,
            height=reading.height,
            sync_target=reading.sync_target,
            peers=reading.peers,
            lag=_lag(reading, references),
        )

    def _samples(self, poll: _Poll, signals: NodeSignals, judgement: HealthJudgement, now: float) -> list[Sample]:
        node = self._node.name
        samples = [
            Sample.of("node_up", 0 if poll.reading is None else 1, now, node=node),
            Sample.of("node_health", judgement.code, now, node=node),
        ]
        reading = poll.reading
        if reading is None:
            return samples
        head_age = None if reading.head_time is None else max(0.0, now - reading.head_time)
        values = (
            ("node_block_height", reading.height),
            ("node_head_age_seconds", head_age),
            ("node_block_lag", signals.lag),
            ("node_peer_count", reading.peers),
            ("node_syncing", None if reading.syncing is None else int(reading.syncing)),
            ("node_rpc_latency_ms", reading.latency_ms),
            ("node_gas_price_wei", reading.gas_price_wei),
            ("node_pending_transactions", reading.pending_transactions),
        )
        samples.extend(Sample.of(name, value, now, node=node) for name, value in values if value is not None)
        return samples

    def _log_health(self, judgement: HealthJudgement) -> None:
        before = self._health
        if before is not None and before.state == judgement.state:
            return
        if judgement.state == "ok":
            logger.info("node healthy node=%s", self._node.name)
        else:
            logger.warning("node %s node=%s reason=%s", judgement.state, self._node.name, judgement.reason)


def _credentials(node: NodeConfig, environ: Mapping[str, str] | None) -> RpcCredentials | None:
    auth = node.auth
    if auth is None:
        return None
    return RpcCredentials(
        user=auth.user, password_env=auth.password_env, cookie_file=auth.cookie_file, environ=environ
    )


async def _read_height(client: JsonRpcClient, kind: str, now: float) -> int:
    """Read a reference endpoint's height.

    Raises:
        CollectorError: the endpoint failed or returned an invalid height; the message names the reason.
    """
    module = bitcoin if kind == "bitcoin" else ethereum
    try:
        exchange = await client.exchange([module.height_call()], now)
    except RpcExchangeError as err:
        raise CollectorError(f"{type(err).__name__}: {err}") from err
    reply = exchange.replies[0]
    if reply.error is not None:
        raise CollectorError(str(reply.error))
    try:
        return module.parse_height(reply.result)
    except ValueError as err:
        raise CollectorError(f"invalid height: {err}") from err


def _lag(reading: NodeReading, references: list[int]) -> int | None:
    targets = list(references)
    if reading.sync_target:
        targets.append(reading.sync_target)
    if reading.height is None or not targets:
        return None
    return max(0, max(targets) - reading.height)


def _failure_kind(err: Exception) -> FailureKind:
    if isinstance(err, CredentialsError):
        return "credentials"
    if isinstance(err, RpcAuthFailed):
        return "auth"
    if isinstance(err, RpcOverloaded):
        return "overloaded"
    if isinstance(err, RpcUnreachable):
        return "unreachable"
    if isinstance(err, RpcHttpError) and err.status >= 500:
        return "server_error"
    if isinstance(err, (RpcHttpError, RpcInvalidResponse)):
        return "not_jsonrpc"
    return "server_error"  # pragma: no cover - every RpcExchangeError subclass is listed above


def _task_result(task: asyncio.Future[_Poll]) -> _Poll | None:
    if task.cancelled():
        return None
    return task.result()

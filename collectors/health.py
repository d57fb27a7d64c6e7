"""The health judgement of a blockchain node: one state from several signals, as an operator would judge it.

The node collector (`collectors.blockchain`) gathers the signals of one poll into
`NodeSignals` and calls `judge_health`. It stores the state as the `node_health`
metric through `HEALTH_CODES`, and the console turns the code back into the state
name with `health_from_code`. Pure: no I/O, and `now` is a parameter.

No single signal can make a node healthy. `eth_syncing` returning `false` only
means the node does not think it is syncing; a node with no peers, an old head, a
height that has stopped moving or a large lag behind its references is not `ok`,
whatever it reports about syncing. The checks run in this order, and the first that
applies gives the state:

| state | code | when |
|---|---|---|
| `misconfigured` | 6 | credentials rejected or unreadable, not a JSON-RPC endpoint, wrong chain |
| `down` | 5 | unreachable, timed out, overloaded, HTTP 5xx |
| `starting` | 4 | Bitcoin Core warming up (-28), sync not begun, or no valid height seen yet (for at most `max_head_age`) |
| `stalled` | 3 | fewer peers than the minimum, no new height for `max_head_age`, or (when not syncing) a head older than `max_head_age` |
| `syncing` | 1 | the node reports syncing (`eth_syncing` object, Bitcoin `initialblockdownload`) |
| `lagging` | 2 | more than `max_lag` blocks behind the highest reference |
| `ok` | 0 | none of the above |

Codes only identify states; apart from 0 meaning `ok` their order is not a severity
scale, so rules compare with `==` or `!=` (`node_health != 0`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "HEALTH_CODES",
    "FailureKind",
    "HealthJudgement",
    "HealthLimits",
    "NodeHealth",
    "NodeSignals",
    "health_from_code",
    "judge_health",
]

NodeHealth = Literal["ok", "syncing", "lagging", "stalled", "starting", "down", "misconfigured"]
"""The health states of a node."""

FailureKind = Literal["unreachable", "overloaded", "server_error", "auth", "credentials", "not_jsonrpc", "wrong_chain"]
"""Why a poll failed as a whole: the first three make the node `down`, the others `misconfigured`."""

HEALTH_CODES: dict[NodeHealth, int] = {
    "ok": 0,
    "syncing": 1,
    "lagging": 2,
    "stalled": 3,
    "starting": 4,
    "down": 5,
    "misconfigured": 6,
}
"""The value stored in `node_health` for each state."""

_STATE_OF_CODE = {code: state for state, code in HEALTH_CODES.items()}
_MISCONFIGURED: frozenset[FailureKind] = frozenset({"auth", "credentials", "not_jsonrpc", "wrong_chain"})


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """The thresholds of one node, from its config."""

    max_head_age: float
    """Seconds without a new head before the node counts as stalled."""
    max_lag: int
    """Blocks behind the highest reference before the node counts as lagging."""
    min_peers: int
    """Minimum number of peers of a healthy node."""


@dataclass(frozen=True, slots=True)
class NodeSignals:
    """The signals of one poll of a node; None means the signal is unknown this poll."""

    failure: FailureKind | None = None
    """Reason the poll failed as a whole; None when the node responded."""
    message: str | None = None
    """The failure's or the warm-up's message, shown as the reason."""
    warming_up: bool = False
    """Bitcoin Core returned error -28 (loading the block index, verifying blocks)."""
    sync_not_started: bool = False
    """The node reports syncing but has no target yet (`highestBlock` 0)."""
    ever_had_height: bool = False
    """Whether any poll so far returned a valid block height."""
    progress_at: float | None = None
    """UTC epoch seconds when the current height was first seen (or polling began)."""
    head_time: float | None = None
    """UTC epoch seconds of the head block's timestamp."""
    syncing: bool | None = None
    """Whether the node reports that it is syncing."""
    height: int | None = None
    """The node's block height this poll."""
    sync_target: int | None = None
    """The height the node syncs towards (`highestBlock`, Bitcoin's `headers`)."""
    peers: int | None = None
    """Connected peers."""
    lag: int | None = None
    """Blocks behind the highest reference; None without any reference."""


@dataclass(frozen=True, slots=True)
class HealthJudgement:
    """The state of a node and why."""

    state: NodeHealth
    """The health state."""
    reason: str = ""
    """Short explanation for the console (`0 peers, minimum 1`); empty for `ok`."""

    @property
    def code(self) -> int:
        """The `node_health` value of the state."""
        return HEALTH_CODES[self.state]


def health_from_code(code: float) -> NodeHealth | None:
    """Return the state stored as `code`, or None for a value that is no state's code."""
    if code != int(code):
        return None
    return _STATE_OF_CODE.get(int(code))


def judge_health(signals: NodeSignals, limits: HealthLimits, now: float) -> HealthJudgement:
    """Judge a node's health from the signals of one poll.

    Args:
        signals: What the poll showed.
        limits: The node's thresholds.
        now: UTC epoch seconds of the poll.

    Returns:
        The first state of the module's table that applies, with its reason.
    """
    for check in (_failed, _starting, _stalled, _syncing, _lagging):
        judgement = check(signals, limits, now)
        if judgement is not None:
            return judgement
    return HealthJudgement("ok")


def _failed(signals: NodeSignals, _limits: HealthLimits, _now: float) -> HealthJudgement | None:
    if signals.failure is None:
        return None
    state: NodeHealth = "misconfigured" if signals.failure in _MISCONFIGURED else "down"
    return HealthJudgement(state, signals.message or signals.failure)


def _starting(signals: NodeSignals, limits: HealthLimits, now: float) -> HealthJudgement | None:
    if signals.warming_up:
        return HealthJudgement("starting", signals.message or "warming up")
    if signals.sync_not_started:
        return HealthJudgement("starting", "sync not started: highest block unknown")
    # A node that never returns a valid height is starting at first, and stalled
    # once it has failed to show one for `max_head_age`.
    waited = None if signals.progress_at is None else now - signals.progress_at
    if not signals.ever_had_height and (waited is None or waited <= limits.max_head_age):
        return HealthJudgement("starting", "no valid block height yet")
    return None


def _stalled(signals: NodeSignals, limits: HealthLimits, now: float) -> HealthJudgement | None:
    if signals.peers is not None and signals.peers < limits.min_peers:
        return HealthJudgement("stalled", f"{signals.peers} peers, minimum {limits.min_peers}")
    if signals.progress_at is not None and now - signals.progress_at > limits.max_head_age:
        return HealthJudgement("stalled", f"no new block for {now - signals.progress_at:.0f}s")
    # A syncing node imports old blocks, so its head is old by nature; only progress counts then.
    if not signals.syncing and signals.head_time is not None and now - signals.head_time > limits.max_head_age:
        return HealthJudgement("stalled", f"head block is {now - signals.head_time:.0f}s old")
    return None


def _syncing(signals: NodeSignals, _limits: HealthLimits, _now: float) -> HealthJudgement | None:
    if not signals.syncing:
        return None
    if signals.height is not None and signals.sync_target is not None:
        return HealthJudgement("syncing", f"block {signals.height} of {signals.sync_target}")
    return HealthJudgement("syncing", "syncing")


def _lagging(signals: NodeSignals, limits: HealthLimits, _now: float) -> HealthJudgement | None:
    if signals.lag is not None and signals.lag > limits.max_lag:
        return HealthJudgement("lagging", f"{signals.lag} blocks behind, limit {limits.max_lag}")
    return None

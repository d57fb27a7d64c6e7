"""`NodeReading`: what one poll of a blockchain node returned, parsed, whatever the node's kind.

The Ethereum and Bitcoin Core readers (`collectors.ethereum`, `collectors.bitcoin`)
fill one `NodeReading` per poll from the JSON-RPC replies. The node collector turns
it into samples and health signals. `take_result` is the one place where a reply
becomes a value or a recorded problem.

Invariants: a field is None when its method failed, was not called or returned an
invalid value, and the reason is then in `unavailable` under the method's name. No
field is ever filled with a stand-in value such as 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from collectors.jsonrpc import RpcExchange
from collectors.quantity import InvalidQuantity

__all__ = ["NodeReading", "take_result"]

T = TypeVar("T")


@dataclass(slots=True)
class NodeReading:
    """The parsed responses of one poll."""

    latency_ms: float
    """Round trip of the poll's first request in milliseconds."""
    height: int | None = None
    """Block height of the node's head."""
    head_time: float | None = None
    """UTC epoch seconds of the head block's timestamp."""
    syncing: bool | None = None
    """Whether the node reports that it is syncing."""
    sync_not_started: bool = False
    """The node reports syncing without a target yet (Ethereum `highestBlock` 0)."""
    sync_target: int | None = None
    """Height the node syncs towards: Ethereum `highestBlock`, Bitcoin `headers`."""
    peers: int | None = None
    """Connected peers."""
    gas_price_wei: int | None = None
    """Ethereum gas price in wei."""
    pending_transactions: int | None = None
    """Transactions waiting in the node's pool (Ethereum txpool pending, Bitcoin mempool size)."""
    chain: str | None = None
    """Chain the node is on: the Ethereum chain id in decimal, or the Bitcoin chain name."""
    warming_up: str | None = None
    """Bitcoin Core's warm-up message (error -28), or None."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Method name mapped to why its value is missing this poll."""


def take_result(
    reading: NodeReading, exchange: RpcExchange, method: str, parse: Callable[[object], T]
) -> T | None:
    """Parse the reply to `method`, or record in `reading.unavailable` why there is no value.

    A -28 error also sets `reading.warming_up`.

    Returns:
        The parsed value, or None when the method failed or its value is invalid.
    """
    reply = exchange.reply(method)
    if reply is None:
        return None
    if reply.error is not None:
        if reply.error.warming_up and reading.warming_up is None:
            reading.warming_up = reply.error.message
        kind = "method not available" if reply.error.method_unavailable else "method failed"
        reading.unavailable[method] = f"{kind} ({reply.error})"
        return None
    try:
        return parse(reply.result)
    except InvalidQuantity as err:
        reading.unavailable[method] = f"invalid value: {err}"
        return None

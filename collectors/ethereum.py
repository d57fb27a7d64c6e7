"""The Ethereum JSON-RPC poll: the methods one cycle calls and how their results are parsed.

`collectors.blockchain.NodeCollector` calls `read_ethereum` once per cycle for a node
of kind `ethereum`. It sends `eth_blockNumber`, `eth_syncing`, `net_peerCount`,
`eth_getBlockByNumber("latest", false)`, `eth_gasPrice`, `eth_chainId` and, when
enabled, `txpool_status` in one exchange (a batch where the node accepts it) and
parses each result strictly with `collectors.quantity`.

A method that fails or returns an invalid value leaves only its own field empty,
with the reason in `NodeReading.unavailable`: a node with the `net` module disabled
has no peer count this poll, not a peer count of 0.
"""

from __future__ import annotations

from collectors.jsonrpc import JsonRpcClient, RpcCall
from collectors.node_reading import NodeReading, take_result
from collectors.quantity import InvalidQuantity, describe_value, parse_quantity

__all__ = ["ETHEREUM_CALLS", "TXPOOL_CALL", "height_call", "parse_height", "read_ethereum"]

ETHEREUM_CALLS: tuple[RpcCall, ...] = (
    RpcCall("eth_blockNumber"),
    RpcCall("eth_syncing"),
    RpcCall("net_peerCount"),
    RpcCall("eth_getBlockByNumber", ("latest", False)),
    RpcCall("eth_gasPrice"),
    RpcCall("eth_chainId"),
)
"""The calls of every poll, in the order they are sent."""

TXPOOL_CALL = RpcCall("txpool_status")
"""Added to the poll when the node's `txpool` option is on."""


async def read_ethereum(client: JsonRpcClient, now: float, *, txpool: bool) -> NodeReading:
    """Poll an Ethereum node once and parse its results.

    Raises:
        collectors.jsonrpc.RpcExchangeError: the exchange failed as a whole.
        collectors.rpc_credentials.CredentialsError: the credentials cannot be read.
    """
    calls = ETHEREUM_CALLS + ((TXPOOL_CALL,) if txpool else ())
    exchange = await client.exchange(calls, now)
    reading = NodeReading(latency_ms=exchange.latency_ms)

    reading.height = take_result(reading, exchange, "eth_blockNumber", parse_quantity)
    syncing = take_result(reading, exchange, "eth_syncing", _parse_syncing)
    if syncing is not None:
        reading.syncing, reading.sync_target, reading.sync_not_started = syncing
    reading.peers = take_result(reading, exchange, "net_peerCount", parse_quantity)
    reading.head_time = take_result(reading, exchange, "eth_getBlockByNumber", _parse_block_time)
    reading.gas_price_wei = take_result(reading, exchange, "eth_gasPrice", parse_quantity)
    chain_id = take_result(reading, exchange, "eth_chainId", parse_quantity)
    reading.chain = None if chain_id is None else str(chain_id)
    if txpool:
        reading.pending_transactions = take_result(reading, exchange, "txpool_status", _parse_txpool)
    return reading


def height_call() -> RpcCall:
    """Return the call that requests a reference endpoint's height."""
    return RpcCall("eth_blockNumber")


def parse_height(result: object) -> int:
    """Parse a reference endpoint's `eth_blockNumber` result.

    Raises:
        collectors.quantity.InvalidQuantity: the result is not a quantity.
    """
    return parse_quantity(result)


def _parse_syncing(result: object) -> tuple[bool, int | None, bool]:
    """Return `(syncing, highest block, sync not started)` from an `eth_syncing` result.

    `false` means the node does not consider itself syncing, and an object means it
    is syncing. An object whose `highestBlock` is 0 comes from a node that has just
    started and has no sync target yet.
    """
    if result is False:
        return False, None, False
    if result is True:
        return True, None, False
    if not isinstance(result, dict):
        raise InvalidQuantity(f"expected false or a sync status object, got {describe_value(result)}")
    highest = parse_quantity(result.get("highestBlock"))
    return True, (highest or None), highest == 0


def _parse_block_time(result: object) -> float:
    if not isinstance(result, dict):
        raise InvalidQuantity(f"expected the latest block object, got {describe_value(result)}")
    return float(parse_quantity(result.get("timestamp")))


def _parse_txpool(result: object) -> int:
    if not isinstance(result, dict):
        raise InvalidQuantity(f"expected a txpool status object, got {describe_value(result)}")
    return parse_quantity(result.get("pending"))

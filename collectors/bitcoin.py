"""The Bitcoin Core JSON-RPC poll: `getblockchaininfo`, `getnetworkinfo` and `getmempoolinfo`.

`collectors.blockchain.NodeCollector` calls `read_bitcoin` once per cycle for a node
of kind `bitcoin`. The three calls go out in one exchange (Bitcoin Core accepts
batches). Sync is judged from `initialblockdownload` and from blocks against
headers: a node more than `catch_up_blocks` behind its own best header counts as
syncing even after its initial download, for example after a network outage.

While Bitcoin Core starts, it rejects every call with error -28 and a message such
as `Loading block index…`. That message ends up in `NodeReading.warming_up`, and the
node is judged `starting`, not down.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.jsonrpc import JsonRpcClient, RpcCall
from collectors.node_reading import NodeReading, take_result
from collectors.quantity import InvalidQuantity, describe_value, parse_count

__all__ = ["BITCOIN_CALLS", "height_call", "parse_height", "read_bitcoin"]

BITCOIN_CALLS: tuple[RpcCall, ...] = (
    RpcCall("getblockchaininfo"),
    RpcCall("getnetworkinfo"),
    RpcCall("getmempoolinfo"),
)
"""The calls of every poll, in the order they are sent."""


@dataclass(frozen=True, slots=True)
class _ChainInfo:
    blocks: int
    headers: int | None
    initial_download: bool | None
    chain: str | None
    head_time: float | None


async def read_bitcoin(client: JsonRpcClient, now: float, *, catch_up_blocks: int) -> NodeReading:
    """Poll a Bitcoin Core node once and parse its results.

    Args:
        client: The node's JSON-RPC client.
        now: UTC epoch seconds of the poll.
        catch_up_blocks: Blocks behind its best header beyond which the node counts as syncing.

    Raises:
        collectors.jsonrpc.RpcExchangeError: the exchange failed as a whole.
        collectors.rpc_credentials.CredentialsError: the credentials cannot be read.
    """
    exchange = await client.exchange(BITCOIN_CALLS, now)
    reading = NodeReading(latency_ms=exchange.latency_ms)

    info = take_result(reading, exchange, "getblockchaininfo", _parse_chain_info)
    if info is not None:
        reading.height = info.blocks
        reading.sync_target = info.headers
        reading.chain = info.chain
        reading.head_time = info.head_time
        behind = info.headers - info.blocks if info.headers is not None else 0
        if info.initial_download is not None or info.headers is not None:
            reading.syncing = bool(info.initial_download) or behind > catch_up_blocks
    reading.peers = take_result(reading, exchange, "getnetworkinfo", _parse_connections)
    reading.pending_transactions = take_result(reading, exchange, "getmempoolinfo", _parse_mempool_size)
    return reading


def height_call() -> RpcCall:
    """Return the call that requests a reference endpoint's height."""
    return RpcCall("getblockcount")


def parse_height(result: object) -> int:
    """Parse a reference endpoint's `getblockcount` result.

    Raises:
        collectors.quantity.InvalidQuantity: the result is not a non-negative integer.
    """
    return parse_count(result)


def _parse_chain_info(result: object) -> _ChainInfo:
    info = _object(result, "getblockchaininfo")
    headers = info.get("headers")
    initial_download = info.get("initialblockdownload")
    chain = info.get("chain")
    # `time` (the best block's timestamp) exists since Bitcoin Core 23; older nodes
    # only have `mediantime`, which trails the head by about an hour, so it is not used.
    head_time = info.get("time")
    return _ChainInfo(
        blocks=parse_count(info.get("blocks")),
        headers=None if headers is None else parse_count(headers),
        initial_download=initial_download if isinstance(initial_download, bool) else None,
        chain=chain if isinstance(chain, str) else None,
        head_time=None if head_time is None else float(parse_count(head_time)),
    )


def _parse_connections(result: object) -> int:
    return parse_count(_object(result, "getnetworkinfo").get("connections"))


def _parse_mempool_size(result: object) -> int:
    info = _object(result, "getmempoolinfo")
    if info.get("loaded") is False:
        raise InvalidQuantity("the mempool is not loaded yet")
    return parse_count(info.get("size"))


def _object(result: object, method: str) -> dict[str, object]:
    if not isinstance(result, dict):
        raise InvalidQuantity(f"expected the {method} object, got {describe_value(result)}")
    return result

"""The Bitcoin Core node collector against a local server replaying Bitcoin Core's documented responses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from atlas_tui.nodes_config import NodeConfig
from collectors.base import Sample
from collectors.blockchain import NodeCollector, ReferenceBook
from collectors.health import HEALTH_CODES
from tests.collectors.rpc_replay import Fixed, HttpReply, JsonRpcNode, ReplayServer, error, replay, result

__all__ = ["replay"]

NOW = 1_750_000_000.0
SECRET = "correct-horse-battery"

CHAIN_INFO = {
    "chain": "main",
    "blocks": 850_000,
    "headers": 850_000,
    "bestblockhash": "00000000000000000001a2b3",
    "difficulty": 8.3e13,
    "time": int(NOW) - 240,
    "mediantime": int(NOW) - 3000,
    "verificationprogress": 0.99999,
    "initialblockdownload": False,
    "chainwork": "0000000000000000000000000000000000000000845b1c",
    "size_on_disk": 650_000_000_000,
    "pruned": False,
    "warnings": "",
}
NETWORK_INFO = {"version": 270000, "subversion": "/Satoshi:27.0.0/", "connections": 10, "connections_in": 0,
                "connections_out": 10, "networkactive": True}
MEMPOOL_INFO = {"loaded": True, "size": 4321, "bytes": 2_000_000, "usage": 9_000_000, "maxmempool": 300_000_000}

HEALTHY = {
    "getblockchaininfo": result(CHAIN_INFO),
    "getnetworkinfo": result(NETWORK_INFO),
    "getmempoolinfo": result(MEMPOOL_INFO),
}


def chain_info(**changes: object) -> dict[str, object]:
    """Return a getblockchaininfo result with `changes` applied."""
    return result({**CHAIN_INFO, **changes})


def node_config(server: ReplayServer, **options: object) -> NodeConfig:
    """Return a Bitcoin node config for /btc on the replay server."""
    fields: dict[str, object] = {"name": "btc", "kind": "bitcoin", "url": server.url("/btc"), "timeout": 2, "interval": 30}
    fields.update(options)
    return NodeConfig.model_validate(fields)


def serve(server: ReplayServer, answers: dict[str, object], **node_options: object) -> JsonRpcNode:
    """Serve `answers` at /btc in Bitcoin Core's legacy style."""
    node = JsonRpcNode(answers, style="bitcoin", **node_options)  # type: ignore[arg-type]
    server.routes["/btc"] = node
    return node


def value(samples: list[Sample], name: str) -> float | None:
    """Return the value of the sample named `name`, or None when there is none."""
    found = [sample.value for sample in samples if sample.name == name]
    return found[0] if found else None


async def test_healthy_node_metrics(replay: ReplayServer) -> None:
    """A synced node reports height, peers, mempool size and a fresh head."""
    serve(replay, dict(HEALTHY))

    samples = await NodeCollector(node_config(replay), ReferenceBook()).collect(NOW)

    assert value(samples, "node_up") == 1
    assert value(samples, "node_health") == HEALTH_CODES["ok"]
    assert value(samples, "node_block_height") == 850_000
    assert value(samples, "node_block_lag") == 0
    assert value(samples, "node_peer_count") == 10
    assert value(samples, "node_pending_transactions") == 4321
    assert value(samples, "node_head_age_seconds") == 240
    assert value(samples, "node_syncing") == 0
    assert value(samples, "node_gas_price_wei") is None


@pytest.mark.parametrize(
    ("changes", "health", "syncing", "lag"),
    [
        ({"initialblockdownload": True, "blocks": 500_000, "headers": 850_000}, "syncing", 1, 350_000),
        ({"initialblockdownload": False, "blocks": 849_990, "headers": 850_000}, "syncing", 1, 10),
        ({"initialblockdownload": False, "blocks": 849_998, "headers": 850_000}, "ok", 0, 2),
        ({"initialblockdownload": True}, "syncing", 1, 0),
    ],
    ids=["initial download", "behind headers after outage", "two blocks behind headers", "ibd flag alone"],
)
async def test_sync_from_ibd_and_headers(
    replay: ReplayServer, changes: dict[str, object], health: str, syncing: int, lag: int
) -> None:
    """Sync comes from initialblockdownload and from blocks against headers."""
    serve(replay, {**HEALTHY, "getblockchaininfo": chain_info(**changes)})

    samples = await NodeCollector(node_config(replay), ReferenceBook()).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES[health]  # type: ignore[index]
    assert value(samples, "node_syncing") == syncing
    assert value(samples, "node_block_lag") == lag


async def test_warming_up_is_starting(replay: ReplayServer) -> None:
    """-28 on every call (HTTP 500 bodies) shows the node as starting with its message, not down."""
    warming = error(-28, "Loading block index…")
    serve(replay, {method: warming for method in HEALTHY})
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["starting"]
    assert value(samples, "node_up") == 1
    assert value(samples, "node_block_height") is None
    assert node.unavailable_sources()["rpc"] == "starting: Loading block index…"


async def test_warming_up_single_calls(replay: ReplayServer) -> None:
    """-28 read through single calls (batches rejected) is starting as well."""
    warming = error(-28, "Verifying blocks…")
    serve(replay, {method: warming for method in HEALTHY}, batch="reject_http")

    samples = await NodeCollector(node_config(replay), ReferenceBook()).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["starting"]


async def test_work_queue_overload_is_down(replay: ReplayServer) -> None:
    """A plain-text `Work queue depth exceeded` 503 makes the node down with that reason."""
    replay.routes["/btc"] = Fixed(HttpReply(503, b"Work queue depth exceeded", "text/plain"))
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_up") == 0
    assert value(samples, "node_health") == HEALTH_CODES["down"]
    assert "Work queue depth exceeded" in node.unavailable_sources()["rpc"]


async def test_unknown_method_404_unavailable(replay: ReplayServer) -> None:
    """A -32601 with HTTP 404 for one method leaves only that metric out."""
    serve(replay, {"getblockchaininfo": HEALTHY["getblockchaininfo"], "getnetworkinfo": HEALTHY["getnetworkinfo"]},
          batch="reject_http")
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_pending_transactions") is None
    assert value(samples, "node_block_height") == 850_000
    assert "getmempoolinfo" in node.unavailable_sources()


async def test_mempool_not_loaded(replay: ReplayServer) -> None:
    """A mempool still loading gives no pending count rather than 0."""
    serve(replay, {**HEALTHY, "getmempoolinfo": result({**MEMPOOL_INFO, "loaded": False, "size": 0})})

    samples = await NodeCollector(node_config(replay), ReferenceBook()).collect(NOW)

    assert value(samples, "node_pending_transactions") is None


async def test_cookie_rotation_reread(replay: ReplayServer, tmp_path: Path) -> None:
    """After a restart rotates the cookie, the next poll re-reads it once and succeeds."""
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:first")
    node_server = serve(replay, dict(HEALTHY), password="first")
    node = NodeCollector(node_config(replay, auth={"cookie_file": str(cookie)}), ReferenceBook())
    await node.collect(NOW)

    cookie.write_text("__cookie__:second")
    node_server.password = "second"
    samples = await node.collect(NOW + 30)

    assert value(samples, "node_up") == 1
    assert value(samples, "node_block_height") == 850_000


async def test_missing_cookie_misconfigured(replay: ReplayServer, tmp_path: Path) -> None:
    """A cookie file that does not exist makes the node misconfigured, naming the file."""
    serve(replay, dict(HEALTHY), password="x")
    cookie = tmp_path / "missing.cookie"
    node = NodeCollector(node_config(replay, auth={"cookie_file": str(cookie)}), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["misconfigured"]
    assert str(cookie) in node.unavailable_sources()["rpc"]


async def test_wrong_password_misconfigured_and_never_logged(
    replay: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected password makes the node misconfigured; the password appears in no log or reason."""
    serve(replay, dict(HEALTHY), password="the-real-one")
    auth = {"user": "rpc", "password_env": "BTC_RPC_PASSWORD"}
    node = NodeCollector(node_config(replay, auth=auth), ReferenceBook(), environ={"BTC_RPC_PASSWORD": SECRET})
    caplog.set_level(logging.DEBUG)

    samples = await node.collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["misconfigured"]
    assert SECRET not in caplog.text
    assert SECRET not in str(node.unavailable_sources())


async def test_password_from_environment(replay: ReplayServer) -> None:
    """The password named by password_env authenticates the poll."""
    serve(replay, dict(HEALTHY), password=SECRET)
    auth = {"user": "rpc", "password_env": "BTC_RPC_PASSWORD"}
    node = NodeCollector(node_config(replay, auth=auth), ReferenceBook(), environ={"BTC_RPC_PASSWORD": SECRET})

    samples = await node.collect(NOW)

    assert value(samples, "node_up") == 1


async def test_wrong_chain_misconfigured(replay: ReplayServer) -> None:
    """A testnet node configured as mainnet is misconfigured."""
    serve(replay, {**HEALTHY, "getblockchaininfo": chain_info(chain="test")})

    samples = await NodeCollector(node_config(replay, chain="main"), ReferenceBook()).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["misconfigured"]


async def test_zero_connections_stalled(replay: ReplayServer) -> None:
    """A node with no connections is stalled even with a fresh head."""
    serve(replay, {**HEALTHY, "getnetworkinfo": result({**NETWORK_INFO, "connections": 0, "networkactive": False})})

    samples = await NodeCollector(node_config(replay), ReferenceBook()).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["stalled"]
    assert value(samples, "node_peer_count") == 0


@pytest.mark.parametrize("blocks", [None, "850000", -1, 1.5])
async def test_invalid_blocks_skipped(replay: ReplayServer, blocks: object) -> None:
    """A getblockchaininfo with an invalid block count gives no height sample."""
    serve(replay, {**HEALTHY, "getblockchaininfo": chain_info(blocks=blocks)})
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_block_height") is None
    assert "getblockchaininfo" in node.unavailable_sources()


async def test_reference_getblockcount(replay: ReplayServer) -> None:
    """A reference URL is asked getblockcount, and lag is measured against it."""
    serve(replay, dict(HEALTHY))
    replay.routes["/ref"] = JsonRpcNode({"getblockcount": result(850_010)}, style="bitcoin")

    samples = await NodeCollector(node_config(replay, reference=[replay.url("/ref")]), ReferenceBook()).collect(NOW)

    assert value(samples, "node_block_lag") == 10
    assert value(samples, "node_health") == HEALTH_CODES["lagging"]

"""The Ethereum node collector against a local server replaying node responses, BR-19 included."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from atlas_tui.nodes_config import NodeConfig
from collectors.base import Sample
from collectors.blockchain import NodeCollector, ReferenceBook
from collectors.health import HEALTH_CODES
from storage.db import open_store
from storage.metrics import range_query, write_samples
from tests.collectors.rpc_replay import Fixed, HttpReply, JsonRpcNode, ReplayServer, error, replay, result

__all__ = ["replay"]

NOW = 1_750_000_000.0
REFERENCE_HEAD = "0x12d687"  # 1_234_567

HEALTHY = {
    "eth_blockNumber": result("0x10"),
    "eth_syncing": result(False),
    "net_peerCount": result("0x8"),
    "eth_getBlockByNumber": result({"number": "0x10", "timestamp": hex(int(NOW) - 12)}),
    "eth_gasPrice": result("0x3b9aca00"),
    "eth_chainId": result("0x1"),
    "txpool_status": result({"pending": "0x2a", "queued": "0x3"}),
}


def answers(**changes: object) -> dict[str, object]:
    """Return the healthy node's results with `changes` applied."""
    return {**HEALTHY, **changes}


def node_config(server: ReplayServer, path: str = "/node", **options: object) -> NodeConfig:
    """Return an Ethereum node config for `path` on the replay server."""
    fields: dict[str, object] = {"name": "eth", "kind": "ethereum", "url": server.url(path), "timeout": 2, "interval": 15}
    fields.update(options)
    return NodeConfig.model_validate(fields)


def collector(server: ReplayServer, node_answers: dict[str, object], **options: object) -> NodeCollector:
    """Serve `node_answers` at /node and return a collector for it."""
    server.routes["/node"] = JsonRpcNode(node_answers)
    return NodeCollector(node_config(server, **options), ReferenceBook())


def value(samples: list[Sample], name: str) -> float | None:
    """Return the value of the sample named `name`, or None when there is none."""
    found = [sample.value for sample in samples if sample.name == name]
    assert len(found) <= 1
    return found[0] if found else None


async def test_healthy_node_metrics(replay: ReplayServer) -> None:
    """A healthy node gives every metric, labelled with its name."""
    samples = await collector(replay, answers(), txpool=True).collect(NOW)

    assert value(samples, "node_up") == 1
    assert value(samples, "node_health") == HEALTH_CODES["ok"]
    assert value(samples, "node_block_height") == 16
    assert value(samples, "node_head_age_seconds") == pytest.approx(12, abs=1)
    assert value(samples, "node_peer_count") == 8
    assert value(samples, "node_syncing") == 0
    assert value(samples, "node_gas_price_wei") == 1_000_000_000
    assert value(samples, "node_pending_transactions") == 42
    assert value(samples, "node_rpc_latency_ms") is not None
    assert {sample.labels for sample in samples} == {(("node", "eth"),)}


async def test_txpool_off_by_default(replay: ReplayServer) -> None:
    """Without `txpool` the method is not called and no pending count is reported."""
    node = collector(replay, answers())

    samples = await node.collect(NOW)

    assert value(samples, "node_pending_transactions") is None
    assert "txpool_status" not in replay.routes["/node"].calls  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "height"),
    [("0x00ff", 255), ("0X1A", 26), (123, 123), ("0x0", 0)],
)
async def test_height_shapes_parsed(replay: ReplayServer, raw: object, height: int) -> None:
    """Padded hex, an upper-case prefix and a JSON number are heights (BR-19 shape 3)."""
    samples = await collector(replay, answers(eth_blockNumber=result(raw))).collect(NOW)

    assert value(samples, "node_block_height") == height


@pytest.mark.parametrize("raw", ["0x", None, "garbage", "42", -1, True])
async def test_invalid_height_skipped(replay: ReplayServer, raw: object) -> None:
    """`"0x"`, null and garbage give no height sample and name the method as unavailable."""
    node = collector(replay, answers(eth_blockNumber=result(raw)))

    samples = await node.collect(NOW)

    assert value(samples, "node_block_height") is None
    assert value(samples, "node_block_lag") is None
    assert "eth_blockNumber" in node.unavailable_sources()
    assert value(samples, "node_up") == 1


async def test_invalid_height_logged_once(replay: ReplayServer, caplog: pytest.LogCaptureFixture) -> None:
    """An invalid height logs one warning however many cycles repeat it, and one line on recovery."""
    node_answers = answers(eth_blockNumber=result("0x"))
    node = collector(replay, node_answers)
    caplog.set_level(logging.INFO, logger="collectors")

    for cycle in range(3):
        await node.collect(NOW + 15 * cycle)
    node_answers["eth_blockNumber"] = result("0x11")
    await node.collect(NOW + 45)

    warnings = [r for r in caplog.records if "source unavailable" in r.getMessage()]
    recoveries = [r for r in caplog.records if "source recovered" in r.getMessage()]
    assert len(warnings) == 1
    assert len(recoveries) == 1


@pytest.mark.parametrize(
    "answer",
    [
        error(-32601, "the method net_peerCount does not exist/is not available"),
        {"error": {"code": -32000, "message": "net module disabled"}},
    ],
)
async def test_disabled_peer_count_unavailable(replay: ReplayServer, answer: object) -> None:
    """A disabled net module makes node_peer_count unavailable, not 0 (BR-19 shape 4)."""
    node = collector(replay, answers(net_peerCount=answer))

    samples = await node.collect(NOW)

    assert value(samples, "node_peer_count") is None
    assert "net_peerCount" in node.unavailable_sources()
    assert value(samples, "node_health") == HEALTH_CODES["ok"]


async def test_error_object_without_result(replay: ReplayServer) -> None:
    """HTTP 200 with an error object and no result skips that value without crashing (BR-19 shape 5)."""
    node = collector(replay, answers(eth_blockNumber={"error": {"code": -32603, "message": "internal error"}}))

    samples = await node.collect(NOW)

    assert value(samples, "node_block_height") is None
    assert value(samples, "node_up") == 1


async def test_sync_object_all_zero_is_starting(replay: ReplayServer) -> None:
    """An eth_syncing object with every field 0x0 is a node that has just started (BR-19 shape 2)."""
    syncing = {"startingBlock": "0x0", "currentBlock": "0x0", "highestBlock": "0x0"}
    node_answers = answers(eth_syncing=result(syncing), eth_blockNumber=result("0x0"), net_peerCount=result("0x0"))

    samples = await collector(replay, node_answers).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["starting"]
    assert value(samples, "node_syncing") == 1


async def test_syncing_lag_from_highest_block(replay: ReplayServer) -> None:
    """A syncing node's lag is measured against its own highestBlock."""
    syncing = {"startingBlock": "0x0", "currentBlock": "0x10", "highestBlock": "0x110"}

    samples = await collector(replay, answers(eth_syncing=result(syncing))).collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["syncing"]
    assert value(samples, "node_block_lag") == 256


async def test_br19_not_syncing_but_stalled(replay: ReplayServer) -> None:
    """eth_syncing false with 0 peers, a height frozen for 10 min and a reference far ahead is stalled (BR-19)."""
    frozen = answers(
        net_peerCount=result("0x0"),
        eth_getBlockByNumber=result({"number": "0x10", "timestamp": hex(int(NOW) - 30)}),
    )
    replay.routes["/reference"] = JsonRpcNode({"eth_blockNumber": result(REFERENCE_HEAD)})
    node = collector(replay, frozen, reference=[replay.url("/reference")])

    first = await node.collect(NOW)
    later = await node.collect(NOW + 600)

    assert value(first, "node_block_lag") == 1_234_551
    assert value(later, "node_health") == HEALTH_CODES["stalled"]
    assert value(later, "node_head_age_seconds") == pytest.approx(630, abs=1)
    assert value(later, "node_block_lag") == 1_234_551
    assert value(later, "node_syncing") == 0
    assert node.health is not None and node.health.state == "stalled"


async def test_frozen_height_with_peers_is_stalled(replay: ReplayServer) -> None:
    """Peers and eth_syncing false do not hide a height that stopped moving."""
    node = collector(replay, answers())

    await node.collect(NOW)
    samples = await node.collect(NOW + 121)

    assert value(samples, "node_health") == HEALTH_CODES["stalled"]


async def test_lagging_behind_named_reference(replay: ReplayServer) -> None:
    """A node behind another configured node by more than max_lag is lagging."""
    book = ReferenceBook()
    replay.routes["/node"] = JsonRpcNode(answers())
    replay.routes["/ahead"] = JsonRpcNode(answers(eth_blockNumber=result("0x40")))
    ahead = NodeCollector(node_config(replay, "/ahead", name="ahead"), book)
    behind = NodeCollector(node_config(replay, reference=["ahead"]), book)

    await ahead.collect(NOW)
    samples = await behind.collect(NOW + 1)

    assert value(samples, "node_block_lag") == 48
    assert value(samples, "node_health") == HEALTH_CODES["lagging"]


async def test_unreachable_reference_reported(replay: ReplayServer) -> None:
    """A failing reference URL is named unavailable and leaves the lag unknown."""
    replay.routes["/reference"] = Fixed(HttpReply(502, b"bad gateway", "text/plain"))
    node = collector(replay, answers(), reference=[replay.url("/reference")])

    samples = await node.collect(NOW)

    assert value(samples, "node_block_lag") is None
    assert "reference[0]" in node.unavailable_sources()


async def test_wrong_chain_misconfigured(replay: ReplayServer) -> None:
    """A node on another chain than configured is misconfigured, with node_up 0."""
    node = collector(replay, answers(eth_chainId=result("0x5")), chain=1)

    samples = await node.collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["misconfigured"]
    assert value(samples, "node_up") == 0
    assert value(samples, "node_block_height") is None


async def test_batch_rejecting_node_still_read(replay: ReplayServer) -> None:
    """A node that rejects batches is read with single calls and gives every metric."""
    replay.routes["/node"] = JsonRpcNode(answers(), batch="reject_object")
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_block_height") == 16
    assert value(samples, "node_peer_count") == 8


async def test_slow_node_down_within_timeout(replay: ReplayServer) -> None:
    """A node slower than its timeout is down for that cycle, and the cycle still returns node_up 0."""
    replay.routes["/node"] = JsonRpcNode(answers(), delay=1.0)
    node = NodeCollector(node_config(replay, timeout=0.3, interval=1), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_up") == 0
    assert value(samples, "node_health") == HEALTH_CODES["down"]
    assert "timed out" in node.unavailable_sources()["rpc"]


async def test_html_page_misconfigured(replay: ReplayServer) -> None:
    """A URL that serves a web page instead of JSON-RPC is misconfigured."""
    replay.routes["/node"] = Fixed(HttpReply(200, b"<html>wallet</html>", "text/html"))
    node = NodeCollector(node_config(replay), ReferenceBook())

    samples = await node.collect(NOW)

    assert value(samples, "node_health") == HEALTH_CODES["misconfigured"]



async def test_invalid_height_never_stored_as_zero(replay: ReplayServer, tmp_path: Path) -> None:
    """After a valid height, an invalid value leaves the stored height as it was, never 0."""
    node_answers = answers()
    node = collector(replay, node_answers)
    conn = open_store(tmp_path)
    write_samples(conn, await node.collect(NOW))

    for cycle, raw in enumerate(("0x", None, "garbage"), start=1):
        node_answers["eth_blockNumber"] = result(raw)
        write_samples(conn, await node.collect(NOW + 15 * cycle))
    stored = [row.value for row in range_query(conn, "node_block_height", NOW - 1, NOW + 60)[0].points]
    conn.close()

    assert stored == [16.0]

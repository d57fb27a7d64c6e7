"""Node and probe collectors built from the config, and the metric names they declare."""

from __future__ import annotations

import time
from pathlib import Path

from atlas_tui.collection import build_collectors
from atlas_tui.config import Config
from atlas_tui.nodes_config import NodeConfig, ProbeConfig
from collectors.blockchain import NODE_METRICS, NodeCollector, ReferenceBook
from collectors.http_probe import PROBE_METRICS, ProbeCollector
from tests.collectors.rpc_replay import Fixed, HttpReply, JsonRpcNode, ReplayServer, replay, result

__all__ = ["replay"]

CONFIG = {
    "collectors": {
        "system": {"enabled": False},
        "nodes": [
            {"name": "eth-a", "kind": "ethereum", "url": "http://127.0.0.1:8545", "timeout": 3, "interval": 10},
            {"name": "eth-b", "kind": "ethereum", "url": "http://127.0.0.1:8546", "reference": ["eth-a"]},
        ],
        "probes": [{"name": "api", "url": "http://127.0.0.1:8080/", "timeout": 2, "interval": 30}],
    }
}


def test_build_one_collector_each(tmp_path: Path) -> None:
    """Each node and probe becomes a collector named after it, beside self-health."""
    collectors, _ = build_collectors(Config.model_validate(CONFIG), tmp_path, list)

    assert [collector.name for collector in collectors] == ["node:eth-a", "node:eth-b", "probe:api", "self_health"]


def test_build_cycle_timeouts(tmp_path: Path) -> None:
    """A node's cycle may last its timeout plus a margin; a probe's its request and a handshake."""
    _, timeouts = build_collectors(Config.model_validate(CONFIG), tmp_path, list)

    assert timeouts["node:eth-a"] == 4.0
    assert timeouts["probe:api"] == 5.0


async def test_node_metric_names_declared(replay: ReplayServer) -> None:
    """Every metric a healthy node produces is listed in NODE_METRICS."""
    replay.routes["/"] = JsonRpcNode(
        {
            "eth_blockNumber": result("0x1"), "eth_syncing": result(False), "net_peerCount": result("0x1"),
            "eth_getBlockByNumber": result({"timestamp": hex(int(time.time()))}), "eth_gasPrice": result("0x1"),
            "eth_chainId": result("0x1"), "txpool_status": result({"pending": "0x0"}),
        }
    )
    node = NodeConfig(name="n", kind="ethereum", url=replay.url("/"), txpool=True, reference=[replay.url("/")])

    samples = await NodeCollector(node, ReferenceBook()).collect(time.time())

    assert {sample.name for sample in samples} == NODE_METRICS


async def test_probe_metric_names_declared(replay: ReplayServer) -> None:
    """Every metric a plain-HTTP probe produces is listed in PROBE_METRICS."""
    replay.routes["/"] = Fixed(HttpReply(200, b"ok"))

    samples = await ProbeCollector(ProbeConfig(name="p", url=replay.url("/"))).collect(time.time())

    assert {sample.name for sample in samples} | {"tls_cert_days_left"} == PROBE_METRICS

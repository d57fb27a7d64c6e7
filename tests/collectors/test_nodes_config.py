"""Validation of `collectors.nodes` and `collectors.probes` in the config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.config import load_config
from atlas_tui.errors import ConfigError

ETH = {"name": "eth-main", "kind": "ethereum", "url": "http://127.0.0.1:8545"}
BTC = {"name": "btc-main", "kind": "bitcoin", "url": "http://127.0.0.1:8332", "auth": {"cookie_file": "/var/lib/bitcoind/.cookie"}}


def load(tmp_path: Path, collectors: dict[str, object]):  # type: ignore[no-untyped-def]
    """Write a config with the given collectors section and load it."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"collectors": collectors}))
    return load_config(path)


def problems(tmp_path: Path, collectors: dict[str, object]) -> str:
    """Return the joined problem lines of an invalid collectors section."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, collectors)
    return "\n".join(caught.value.problems)


def test_defaults_by_kind(tmp_path: Path) -> None:
    """A minimal node gets its kind's stall and lag limits and a 15 s interval."""
    config = load(tmp_path, {"nodes": [ETH, BTC]})
    eth, btc = config.collectors.nodes

    assert (eth.head_age_limit, eth.lag_limit, eth.interval) == (120.0, 20, 15.0)
    assert (btc.head_age_limit, btc.lag_limit) == (7200.0, 3)


def test_full_node_entry(tmp_path: Path) -> None:
    """Every documented node field is accepted, durations as text included."""
    node = {
        **ETH, "interval": "30s", "timeout": "4s", "reference": ["eth-backup", "https://rpc.example.org/"],
        "txpool": True, "chain": 1, "max_head_age": "5m", "max_lag": 50, "min_peers": 3,
        "auth": {"user": "rpc", "password_env": "ETH_RPC_PASSWORD"},
    }
    backup = {**ETH, "name": "eth-backup", "url": "http://127.0.0.1:8546"}

    config = load(tmp_path, {"nodes": [node, backup]})

    assert config.collectors.nodes[0].head_age_limit == 300.0


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        ([ETH, ETH], "twice"),
        ([{**ETH, "reference": ["nowhere"]}], "must be a URL or the name of a configured node"),
        ([{**ETH, "reference": ["eth-main"]}], "cannot be its own reference"),
        ([{**ETH, "reference": ["btc-main"]}, BTC], "same kind"),
        ([{**ETH, "url": "http://user:pw@127.0.0.1:8545"}], "password_env"),
        ([{**ETH, "url": "ws://127.0.0.1:8546"}], "http:// or https://"),
        ([{**ETH, "reference": ["https://key:x@rpc.example.org"]}], "got a URL with credentials"),
        ([{**ETH, "timeout": 20}], "shorter than interval"),
        ([{**ETH, "chain": "mainnet"}], "chain id as a number"),
        ([{**BTC, "chain": "mainnet"}], "main, test"),
        ([{**BTC, "txpool": True}], "ethereum nodes only"),
        ([{**ETH, "kind": "solana"}], "expected one of ethereum, bitcoin"),
        ([{**ETH, "name": "eth main"}], "nodes[0].name"),
        ([{**ETH, "auth": {"user": "rpc"}}], "both user and password_env"),
        ([{**ETH, "auth": {"cookie_file": "/c", "user": "rpc", "password_env": "X"}}], "not both"),
        ([{**ETH, "auth": {"user": "rpc", "password_env": "not-a-name"}}], "must name an environment variable"),
        ([{**ETH, "password": "x"}], 'unknown key "password"'),
    ],
)
def test_invalid_nodes(tmp_path: Path, nodes: list[dict[str, object]], expected: str) -> None:
    """Each invalid node entry is rejected with a message saying what to fix."""
    assert expected in problems(tmp_path, {"nodes": nodes})


def test_probe_defaults(tmp_path: Path) -> None:
    """A minimal probe is a GET expecting 200 every 30 s with TLS verification on."""
    config = load(tmp_path, {"probes": [{"name": "api", "url": "https://127.0.0.1:8443/health"}]})
    probe = config.collectors.probes[0]

    assert (probe.method, probe.expected_statuses, probe.interval, probe.verify_tls) == (
        "GET", frozenset({200}), 30.0, True,
    )


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ([{"name": "a", "url": "http://127.0.0.1/"}, {"name": "a", "url": "http://127.0.0.1/x"}], "twice"),
        ([{"name": "a", "url": "http://127.0.0.1/", "expected_status": 99}], "between 100 and 599"),
        ([{"name": "a", "url": "http://127.0.0.1/", "expected_status": []}], "between 100 and 599"),
        ([{"name": "a", "url": "http://127.0.0.1/", "method": "DELETE"}], "expected one of"),
        ([{"name": "a", "url": "http://127.0.0.1/", "body_contains": ""}], "body_contains"),
        ([{"name": "a", "url": "http://127.0.0.1/", "timeout": 30}], "shorter than interval"),
        ([{"name": "a", "url": "file:///etc/passwd"}], "http:// or https://"),
    ],
)
def test_invalid_probes(tmp_path: Path, probes: list[dict[str, object]], expected: str) -> None:
    """Each invalid probe entry is rejected with a message saying what to fix."""
    assert expected in problems(tmp_path, {"probes": probes})


def test_credentials_in_url_not_echoed(tmp_path: Path) -> None:
    """The error for a URL with a password does not repeat the password."""
    message = problems(tmp_path, {"nodes": [{**ETH, "url": "http://rpc:hunter2@127.0.0.1:8545"}]})

    assert "hunter2" not in message

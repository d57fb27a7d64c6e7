"""Tests of the live-store mode of `console.screenshots` (`--data-dir`, `--config`, `--name`)."""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

import pytest

from atlas_tui import __version__
from atlas_tui.config import Config
from atlas_tui.console.screenshots import ScreenshotError, main, write_live_screenshots
from collectors.base import Sample
from storage.db import open_store
from storage.metrics import write_samples
from storage.status import Heartbeat, write_heartbeat

NODE_CONFIG = {
    "collectors": {"nodes": [{"name": "devnode", "kind": "ethereum", "url": "http://127.0.0.1:8545"}]}
}


def _node_store(data_dir: Path, now: float) -> None:
    """Write one poll of a healthy node at height 4242 and a fresh heartbeat of another process."""
    node_samples = [
        Sample.of("node_health", 0, now - 2, node="devnode"),
        Sample.of("node_block_height", 4242, now - 2, node="devnode"),
        Sample.of("node_block_lag", 0, now - 2, node="devnode"),
        Sample.of("node_head_age_seconds", 1, now - 2, node="devnode"),
        Sample.of("node_peer_count", 0, now - 2, node="devnode"),
        Sample.of("node_rpc_latency_ms", 3.5, now - 2, node="devnode"),
        Sample.of("cpu_usage", 12.5, now - 2),
    ]
    conn = open_store(data_dir)
    try:
        write_samples(conn, node_samples)
        write_heartbeat(conn, Heartbeat(os.getpid() + 1, "node-host", now - 60, now - 1, __version__))
    finally:
        conn.close()


def _svg_text(path: Path) -> str:
    return html.unescape(path.read_text(encoding="utf-8")).replace("\xa0", " ")


def test_live_shots_show_nodes(tmp_path: Path) -> None:
    """A live store with a node gives NAME-80x24 and NAME-160x48 showing its row and height."""
    data_dir = tmp_path / "data"
    _node_store(data_dir, time.time())
    out_dir = tmp_path / "shots"
    written = write_live_screenshots(out_dir, Config.model_validate(NODE_CONFIG), data_dir, "nodes")
    svgs = sorted(path.name for path in written if path.suffix == ".svg")
    assert svgs == ["nodes-160x48.svg", "nodes-80x24.svg"]
    for name in svgs:
        text = _svg_text(out_dir / name)
        assert "devnode" in text
        assert "4,242" in text or "4242" in text
        assert "daemon running" in text


def test_live_shots_need_store(tmp_path: Path) -> None:
    """A data directory without a store is rejected with a message that names the fix."""
    with pytest.raises(ScreenshotError, match="start atlas daemon"):
        write_live_screenshots(tmp_path / "shots", Config(), tmp_path / "empty", "nodes")
    assert not (tmp_path / "empty").exists()


def test_main_live_arguments(tmp_path: Path) -> None:
    """`--config`, `--data-dir` and `--name` select the live store, and exit status 0 follows."""
    data_dir = tmp_path / "data"
    _node_store(data_dir, time.time())
    config = tmp_path / "config.json"
    config.write_text(json.dumps(NODE_CONFIG), encoding="utf-8")
    out_dir = tmp_path / "shots"
    status = main([str(out_dir), "--config", str(config), "--data-dir", str(data_dir), "--name", "nodes"])
    assert status == 0
    assert (out_dir / "nodes-80x24.svg").is_file()


def test_main_rejects_name_with_slash(tmp_path: Path) -> None:
    """A `--name` with a slash is rejected by the argument parser."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--data-dir", str(tmp_path), "--name", "../x"])
    assert exit_info.value.code == 2

"""A real local Ethereum development node (ganache from devnode/node_modules) for end-to-end tests.

`devnode` starts ganache on a free port of 127.0.0.1 with automatic mining off, so a
test decides when blocks appear (`evm_mine`). The test is skipped, with the command
that installs the node, when ganache is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

__all__ = ["DevNode", "GANACHE", "devnode"]

REPOSITORY = Path(__file__).resolve().parents[2]
GANACHE = REPOSITORY / "devnode" / "node_modules" / ".bin" / "ganache"
START_TIMEOUT = 30.0
CHAIN_ID = 1337


@dataclass
class DevNode:
    """A running ganache process."""

    url: str
    process: subprocess.Popen[bytes]

    def rpc(self, method: str, *params: object) -> object:
        """Call one method and return its result."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        answer = httpx.post(self.url, json=body, timeout=5.0).json()
        assert "error" not in answer, answer
        return answer["result"]

    def mine(self, blocks: int) -> None:
        """Mine `blocks` empty blocks."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def stop(self) -> None:
        """Stop the node and wait until the process has exited."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_devnode() -> DevNode:
    """Start ganache and wait until it responds to JSON-RPC."""
    if not GANACHE.exists() or shutil.which("node") is None:
        pytest.skip(
            "the Ethereum dev node is not installed: run `cd devnode && npm ci` (needs Node.js 20) "
            "to install ganache into devnode/node_modules"
        )
    port = free_port()
    command = [
        str(GANACHE), "--server.host", "127.0.0.1", "--server.port", str(port), "--logging.quiet",
        "--chain.chainId", str(CHAIN_ID), "--wallet.totalAccounts", "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    node = DevNode(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.fail(f"ganache exited with status {process.returncode}: {stderr[-500:]}")
        try:
            node.rpc("eth_blockNumber")
            return node
        except httpx.TransportError:
            time.sleep(0.1)
    node.stop()
    pytest.fail(f"ganache did not answer on 127.0.0.1:{port} within {START_TIMEOUT:.0f}s")


@pytest.fixture
def devnode() -> Iterator[DevNode]:
    """A started ganache node, stopped after the test."""
    node = start_devnode()
    try:
        yield node
    finally:
        node.stop()

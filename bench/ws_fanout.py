"""Measure what 100 `WS /ws` clients cost `atlas daemon`: CPU and RSS with and without them.

One daemon (own temporary data directory, system collector every second, HTTP API
on) is measured twice over windows of the same length: first with no client, then
with N clients subscribed to `metrics`. The clients run in a separate process so
only the daemon's own `cpu_times()` and RSS are counted. Each client reads every
message, and the client process reports how many metric ticks arrived, so a daemon
that stopped sending cannot pass for a cheap one.

Run by hand (not part of `make test`):

    .venv/bin/python bench/ws_fanout.py --seconds 60 --clients 100

Target: the daemon's CPU with the clients under 2x its CPU without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Usage:
    """CPU seconds the daemon used in one window and the RSS seen during it."""

    label: str
    user_seconds: float
    system_seconds: float
    rss_peak: int
    rss_end: int

    @property
    def cpu_seconds(self) -> float:
        """User plus system CPU seconds."""
        return self.user_seconds + self.system_seconds

    def core_percent(self, seconds: float) -> float:
        """Return the CPU use as a percentage of one core."""
        return 100.0 * self.cpu_seconds / seconds


def main() -> int:
    """Run the daemon, measure it without and with clients, and print the comparison."""
    args = _parse_args()
    if args.client_url:
        return asyncio.run(_run_clients(args))

    with tempfile.TemporaryDirectory(prefix="atlas-ws-bench-") as tmp:
        work = Path(tmp)
        port = _free_port()
        daemon = _start_daemon(work, port, args.interval)
        clients: subprocess.Popen[str] | None = None
        try:
            token = _wait_until_serving(daemon, work / "data", port)
            time.sleep(args.warmup)
            idle = _measure(daemon, "daemon, no clients", args.seconds)

            clients = _start_clients(port, token, args)
            _wait_for_line(clients, "ready", timeout=60.0)
            time.sleep(args.warmup)
            busy = _measure(daemon, f"daemon, {args.clients} clients", args.seconds)
            received = _stop_clients(clients)
        finally:
            if clients is not None and clients.poll() is None:
                clients.kill()
            daemon.terminate()
            daemon.wait(timeout=15)
    _report([idle, busy], received, args)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each measured window in seconds")
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients subscribed to metrics")
    parser.add_argument("--interval", type=float, default=1.0, help="system collector interval in seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds ignored before each window")
    parser.add_argument(
        "--no-compression", dest="compression", action="store_false",
        help="clients decline permessage-deflate (by default they offer it, like the websockets library)",
    )
    parser.add_argument("--client-url", help=argparse.SUPPRESS)
    parser.add_argument("--client-token", help=argparse.SUPPRESS)
    return parser.parse_args()


def _start_daemon(work: Path, port: int, interval: float) -> subprocess.Popen[bytes]:
    config = work / "config.json"
    config.write_text(json.dumps({"collectors": {"system": {"interval": interval}}}), encoding="utf-8")
    command = [sys.executable, "-m", "atlas_tui.cli", "daemon", "--data-dir", str(work / "data"),
               "--config", str(config), "--port", str(port), "--log-level", "warning"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=(work / "daemon.log").open("wb"))


def _wait_until_serving(daemon: subprocess.Popen[bytes], data_dir: Path, port: int) -> str:
    """Wait for the API port and the local token file; return the token."""
    from atlas_tui.api_tokens import read_local_token
    from atlas_tui.errors import AtlasError

    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"daemon exited early with code {daemon.returncode}; no result")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return read_local_token(data_dir)
        except (OSError, AtlasError):
            time.sleep(0.2)
    raise SystemExit("daemon did not start serving within 30 s; no result")


def _start_clients(port: int, token: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--client-url", f"ws://127.0.0.1:{port}/ws",
               "--client-token", token, "--clients", str(args.clients)]
    if not args.compression:
        command.append("--no-compression")
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _wait_for_line(process: subprocess.Popen[str], expected: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"client process exited with code {process.wait()}; no result")
        if line.startswith(expected):
            return line
    raise SystemExit(f"client process printed no {expected!r} line within {timeout:g} s; no result")


def _stop_clients(process: subprocess.Popen[str]) -> dict[str, int]:
    process.send_signal(signal.SIGINT)
    line = _wait_for_line(process, "{", timeout=30.0)
    process.wait(timeout=30.0)
    return json.loads(line)


def _measure(daemon: subprocess.Popen[bytes], label: str, seconds: float) -> Usage:
    if daemon.poll() is not None:
        raise SystemExit(f"daemon exited early with code {daemon.returncode}; no result")
    handle = psutil.Process(daemon.pid)
    start = handle.cpu_times()
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, handle.memory_info().rss)
        time.sleep(1.0)
    if daemon.poll() is not None:
        raise SystemExit(f"daemon exited during the window with code {daemon.returncode}; no result")
    end = handle.cpu_times()
    return Usage(label, end.user - start.user, end.system - start.system, peak, handle.memory_info().rss)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _report(usages: list[Usage], received: dict[str, int], args: argparse.Namespace) -> None:
    idle, busy = usages
    mib = 1024 * 1024
    print(f"window {args.seconds:g} s each, collector interval {args.interval:g} s, {args.clients} clients, "
          f"compression {'offered' if args.compression else 'off'}, {os.cpu_count()} cores\n")
    print("| daemon | user s | system s | CPU s | % of one core | peak RSS MiB | end RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for usage in usages:
        print(f"| {usage.label} | {usage.user_seconds:.2f} | {usage.system_seconds:.2f} | {usage.cpu_seconds:.2f} | "
              f"{usage.core_percent(args.seconds):.3f} | {usage.rss_peak / mib:.1f} | {usage.rss_end / mib:.1f} |")
    ratio = busy.cpu_seconds / idle.cpu_seconds if idle.cpu_seconds else float("inf")
    print(f"\nCPU ratio with / without clients: {ratio:.2f} (target < 2)")
    print(f"metric ticks received: {received['ticks']} in total, {received['ticks'] / max(1, received['clients']):.1f} "
          f"per client; clients closed early: {received['closed']}")


async def _run_clients(args: argparse.Namespace) -> int:
    """Client process: hold `--clients` subscriptions, count ticks, print totals on SIGINT."""
    from websockets.asyncio.client import connect

    counts = {"clients": args.clients, "ticks": 0, "closed": 0}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    headers = {"Authorization": f"Bearer {args.client_token}"}
    compression = "deflate" if args.compression else None
    subscribed = 0

    async def client() -> None:
        nonlocal subscribed
        async with connect(args.client_url, additional_headers=headers, compression=compression) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["metrics"]}))
            await ws.recv()
            await ws.recv()
            subscribed += 1
            async for message in ws:
                if '"snapshot":false' in message:
                    counts["ticks"] += 1
        counts["closed"] += 1

    tasks = []
    for _ in range(args.clients):
        tasks.append(asyncio.create_task(client()))
        await asyncio.sleep(0.01)
    while subscribed < args.clients:
        if any(task.done() for task in tasks):
            raise SystemExit("a client failed to subscribe")
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

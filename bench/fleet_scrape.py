"""Measure one Prometheus scraping several `atlas daemon`s on this machine, as a small fleet.

Each daemon runs with the default config on its own data directory and a free port
on 127.0.0.1. Each gets a read-only token from `atlas api token create`, written to a
file for Prometheus. Debian's `prometheus` then scrapes every daemon's `/metrics`, one
scrape config per daemon because each has its own token. Relabelling gives all of
them `job="atlas"`. After the measured window, the script reads Prometheus' own
series per target: `up`, `scrape_duration_seconds` (mean and maximum over the window),
`scrape_samples_scraped` and `scrape_body_size_bytes` (from the `extra-scrape-metrics`
feature). It prints a Markdown table for docs/fleet.md and deletes its temporary
directory.

Run by hand (not part of `make test`); it needs the `prometheus` package:

    .venv/bin/python bench/fleet_scrape.py --daemons 3 --seconds 60 --scrape-interval 5s
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTED = re.compile(r"daemon started pid=\d+ .* port=(\d+)")
START_TIMEOUT = 20.0
"""Seconds a daemon or Prometheus may take to start."""


@dataclass
class Daemon:
    """One `atlas daemon` process, its API port and the file holding its read token."""

    proc: subprocess.Popen[bytes]
    port: int
    token_file: Path


@dataclass
class TargetResult:
    """Prometheus' view of one scraped daemon over the measured window."""

    instance: str
    up: float
    duration_mean_ms: float
    duration_max_ms: float
    samples: float
    body_bytes: float


def main() -> int:
    """Start the fleet and Prometheus, wait out the window, print the results."""
    args = _parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="atlas-fleet-"))
    daemons: list[Daemon] = []
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        daemons = [_start_daemon(workdir / f"daemon-{index}") for index in range(args.daemons)]
        port = _free_port()
        prometheus = _start_prometheus(workdir / "prometheus", daemons, port, args.scrape_interval)
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: _ready(url), START_TIMEOUT, "prometheus ready")
        time.sleep(args.seconds)
        results = _read_results(url, args.seconds)
    finally:
        for proc in [*(daemon.proc for daemon in daemons), prometheus]:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    _print_table(results, args)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemons", type=int, default=3, help="daemons to start (default 3)")
    parser.add_argument("--seconds", type=int, default=60, help="measured window in seconds (default 60)")
    parser.add_argument("--scrape-interval", default="5s", help="Prometheus scrape interval (default 5s)")
    return parser.parse_args()


def _start_daemon(directory: Path) -> Daemon:
    directory.mkdir(parents=True)
    config = directory / "config.json"
    config.write_text("{}", encoding="utf-8")
    data_dir = directory / "data"
    log_path = directory / "daemon.log"
    command = [sys.executable, "-m", "atlas_tui.cli", "daemon", "--data-dir", str(data_dir),
               "--config", str(config), "--port", "0"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_clean_env())
    _wait(lambda: STARTED.search(log_path.read_text()) is not None, START_TIMEOUT, f"daemon in {directory}")
    match = STARTED.search(log_path.read_text())
    assert match is not None
    token_file = directory / "prometheus-token"
    with token_file.open("w", encoding="utf-8") as out:
        os.chmod(token_file, 0o600)
        subprocess.run([sys.executable, "-m", "atlas_tui.cli", "api", "token", "create", "--name", "prometheus",
                        "--scope", "read", "--data-dir", str(data_dir)],
                       stdout=out, stderr=subprocess.DEVNULL, check=True, env=_clean_env())
    return Daemon(proc=proc, port=int(match.group(1)), token_file=token_file)


def _start_prometheus(directory: Path, daemons: list[Daemon], port: int, interval: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    scrape_configs = [
        {
            "job_name": f"atlas-{index}",
            "authorization": {"type": "Bearer", "credentials_file": str(daemon.token_file)},
            "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}],
            "relabel_configs": [{"target_label": "job", "replacement": "atlas"}],
        }
        for index, daemon in enumerate(daemons)
    ]
    config = {"global": {"scrape_interval": interval, "scrape_timeout": interval}, "scrape_configs": scrape_configs}
    config_path = directory / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    command = ["prometheus", f"--config.file={config_path}", f"--storage.tsdb.path={directory / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
               "--enable-feature=extra-scrape-metrics"]
    log = (directory / "prometheus.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _read_results(url: str, seconds: int) -> list[TargetResult]:
    window = f"[{seconds}s]"
    queries = {
        "up": 'up{job="atlas"}',
        "mean": f'avg_over_time(scrape_duration_seconds{{job="atlas"}}{window})',
        "max": f'max_over_time(scrape_duration_seconds{{job="atlas"}}{window})',
        "samples": 'scrape_samples_scraped{job="atlas"}',
        "body": 'scrape_body_size_bytes{job="atlas"}',
    }
    values = {key: _query(url, expression) for key, expression in queries.items()}
    return [
        TargetResult(
            instance=instance,
            up=values["up"][instance],
            duration_mean_ms=1000.0 * values["mean"][instance],
            duration_max_ms=1000.0 * values["max"][instance],
            samples=values["samples"][instance],
            body_bytes=values["body"][instance],
        )
        for instance in sorted(values["up"])
    ]


def _query(url: str, expression: str) -> dict[str, float]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=10.0, trust_env=False)
    response.raise_for_status()
    return {item["metric"]["instance"]: float(item["value"][1]) for item in response.json()["data"]["result"]}


def _print_table(results: list[TargetResult], args: argparse.Namespace) -> None:
    print(f"{args.daemons} daemons, scrape interval {args.scrape_interval}, window {args.seconds} s, "
          f"{os.cpu_count()} cores")
    print()
    print("| instance | up | scrape duration mean | scrape duration max | samples per scrape | body size |")
    print("|---|---|---|---|---|---|")
    for row in results:
        print(f"| {row.instance} | {row.up:g} | {row.duration_mean_ms:.1f} ms | {row.duration_max_ms:.1f} ms "
              f"| {row.samples:g} | {row.body_bytes:g} bytes |")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2.0, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())

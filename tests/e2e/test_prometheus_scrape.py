"""End to end: a real `atlas daemon`'s `/metrics` passes `promtool` and is scraped by a real Prometheus.

One daemon serves both tests: it collects host metrics every 0.5 s on its own data
directory and a free port. The first test fetches `/metrics` with the daemon's
local token and runs `promtool check metrics` on the text. The second starts
Debian's `prometheus` on 127.0.0.1 with a temporary config and storage directory,
scraping the daemon every 0.5 s with a read-only token from a file, as an operator
would set it up. It then queries Prometheus' HTTP API for the scraped series and
their labels.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_tokens import daemon_headers, issue_token
from tests.e2e.monitoring import PROMETHEUS, MonitoringServer, require_binary, wait_for
from tests.e2e.processes import AtlasDaemon

pytestmark = pytest.mark.e2e

SCRAPE_INTERVAL = "500ms"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtlasDaemon]:
    """A daemon collecting host metrics every 0.5 s, with its API on a free port."""
    workdir = tmp_path_factory.mktemp("scraped-daemon")
    config_path = workdir / "config.json"
    config_path.write_text('{"collectors": {"system": {"interval": "0.5s"}, "self_health": {"interval": "0.5s"}}}')
    started = AtlasDaemon.start(workdir / "data", config_path, workdir / "daemon.log", api=True)
    try:
        assert started.wait_started(), started.log()
        yield started
    finally:
        started.ensure_dead()


def fetch_metrics(daemon: AtlasDaemon) -> str:
    """Return the daemon's `/metrics` text, read with its local token."""
    response = httpx.get(
        f"http://127.0.0.1:{daemon.port()}/metrics", headers=daemon_headers(daemon.data_dir), timeout=5.0,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    return response.text


def test_promtool_accepts_daemon_output(daemon: AtlasDaemon) -> None:
    """`promtool check metrics` finds no problem in the live daemon's `/metrics`."""
    promtool = require_binary("promtool", "prometheus")
    wait_for(lambda: "atlas_cpu_usage_ratio " in fetch_metrics(daemon), 15.0, "atlas_cpu_usage_ratio in /metrics")
    wait_for(lambda: "atlas_collector_up{" in fetch_metrics(daemon), 15.0, "atlas_collector_up in /metrics")
    text = fetch_metrics(daemon)

    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""
    assert 'atlas_collector_up{collector="system"} 1' in text
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert "atlas_processes " in text


def query(prometheus: MonitoringServer, expression: str) -> list[dict[str, Any]]:
    """Return the result vector of an instant query."""
    body = prometheus.get_json("/api/v1/query", query=expression)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_prometheus_scrapes_daemon(daemon: AtlasDaemon, tmp_path: Path) -> None:
    """Prometheus scrapes the daemon and serves its series with their labels and plausible values."""
    token_file = tmp_path / "atlas-token"
    token_file.write_text(issue_token(daemon.data_dir, scopes="read", name="prometheus"), encoding="utf-8")
    token_file.chmod(0o600)
    target = f"127.0.0.1:{daemon.port()}"
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [{
            "job_name": "atlas",
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            "static_configs": [{"targets": [target], "labels": {"fleet": "e2e"}}],
        }],
    }
    prometheus = MonitoringServer.start(PROMETHEUS, tmp_path / "prometheus", config)
    try:
        wait_for(lambda: bool(query(prometheus, "atlas_cpu_usage_ratio")), 20.0, "atlas_cpu_usage_ratio in Prometheus")

        cpu = query(prometheus, "atlas_cpu_usage_ratio")[0]
        up = query(prometheus, 'up{job="atlas"}')[0]
        disks = query(prometheus, "atlas_disk_usage_ratio")
        builds = query(prometheus, "atlas_build_info")
    finally:
        prometheus.stop()

    assert cpu["metric"] == {"__name__": "atlas_cpu_usage_ratio", "instance": target, "job": "atlas", "fleet": "e2e"}
    assert 0.0 <= float(cpu["value"][1]) <= 1.0
    assert up["value"][1] == "1"
    assert disks, "no disk usage series scraped"
    assert all(disk["metric"]["mount"].startswith("/") for disk in disks)
    assert all(0.0 <= float(disk["value"][1]) <= 1.0 for disk in disks)
    assert builds[0]["metric"]["version"]

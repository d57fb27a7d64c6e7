"""SIGHUP config reload of a real `atlas daemon`, and the reload's key classification."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from atlas_tui.alerts.outbox import OutboxSender
from atlas_tui.config import Config
from atlas_tui.reload import LIVE_KEYS, ReloadableSender, compare_configs
from storage.db import open_store
from tests.daemon.conftest import DaemonProcess, poll

BASE = {
    "collectors": {"system": {"interval": "0.5s"}},
    "alerting": {"evaluation_interval": "0.5s"},
}
RULE = {"id": "always_on", "name": "Always on", "condition": "cpu_usage >= 0", "severity": "info"}


def _write(path: Path, data: dict[str, object] | str) -> None:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def _hup_and_wait(daemon: DaemonProcess, text: str) -> None:
    """Send SIGHUP and wait until the log contains `text` once more than before."""
    before = daemon.log().count(text)
    daemon.proc.send_signal(signal.SIGHUP)
    assert poll(lambda: daemon.log().count(text) > before, timeout=10.0), daemon.log()


def _alerts(daemon: DaemonProcess, port: int) -> list[dict[str, object]]:
    response = httpx.get(f"http://127.0.0.1:{port}/api/alerts", headers=daemon.headers(), timeout=5.0)
    response.raise_for_status()
    return response.json()


def _firing_eval(daemon: DaemonProcess, port: int) -> float | None:
    """Return `last_eval` of the firing `always_on` alert, or None when there is none."""
    for alert in _alerts(daemon, port):
        if alert["rule_id"] == "always_on" and alert["state"] == "firing":
            return float(alert["last_eval"])
    return None


@pytest.mark.e2e
def test_sighup_applies_and_rejects(start_daemon: Callable[..., DaemonProcess]) -> None:
    """A new rule fires after SIGHUP; an invalid file is rejected and the rule keeps running."""
    daemon = start_daemon(BASE)
    assert daemon.wait_for_log("daemon started"), daemon.log()
    config_path = daemon.data_dir.parent / "config.json"
    port = daemon.port()
    assert port is not None
    assert _firing_eval(daemon, port) is None

    _write(config_path, {**BASE, "alert_rules": [RULE]})
    _hup_and_wait(daemon, "config reloaded")

    assert "changed=alert_rules" in daemon.log()
    assert poll(lambda: _firing_eval(daemon, port) is not None, timeout=10.0), daemon.log()

    _write(config_path, '{"alert_rules": [')
    _hup_and_wait(daemon, "config reload rejected")

    assert "invalid JSON" in daemon.log()
    seen = _firing_eval(daemon, port)
    assert seen is not None
    assert poll(lambda: (_firing_eval(daemon, port) or 0.0) > seen, timeout=10.0)
    assert daemon.proc.poll() is None

    code, _seconds = daemon.stop()
    assert code == 0, daemon.log()


@pytest.mark.e2e
def test_sighup_restart_keys_kept(start_daemon: Callable[..., DaemonProcess]) -> None:
    """A new port is logged as needing a restart and the API stays on the old one; collectors are rebuilt."""
    daemon = start_daemon(BASE)
    assert daemon.wait_for_log("daemon started"), daemon.log()
    config_path = daemon.data_dir.parent / "config.json"
    port = daemon.port()

    _write(config_path, {**BASE, "port": 18099, "collectors": {"system": {"interval": "1s"}}})
    _hup_and_wait(daemon, "config reloaded")

    log = daemon.log()
    assert "config keys need a restart keys=port" in log
    assert "collectors reconfigured" in log
    status = httpx.get(f"http://127.0.0.1:{port}/api/system/status", headers=daemon.headers(), timeout=5.0).json()
    system = next(c for c in status["collectors"] if c["name"] == "system")
    assert system["interval"] == 1.0

    code, _seconds = daemon.stop()
    assert code == 0, daemon.log()


@pytest.mark.e2e
def test_sighup_rule_syntax_rejected(start_daemon: Callable[..., DaemonProcess]) -> None:
    """A rule whose condition does not parse rejects the whole reload, as `atlas config check` does."""
    daemon = start_daemon(BASE)
    assert daemon.wait_for_log("daemon started"), daemon.log()
    config_path = daemon.data_dir.parent / "config.json"

    _write(config_path, {**BASE, "alert_rules": [{**RULE, "condition": "cpu_usage >>> 3"}]})
    _hup_and_wait(daemon, "config reload rejected")

    assert "always_on" in daemon.log()
    assert daemon.proc.poll() is None


def test_compare_configs_split() -> None:
    """Changed keys are split into live keys and keys that need a restart."""
    running = Config()
    loaded = Config.model_validate({"port": 9000, "alert_rules": [RULE], "collectors": {"system": {"interval": 1}}})

    change = compare_configs(running, loaded)

    assert change.live == ("alert_rules", "collectors")
    assert change.restart == ("port",)


def test_compare_configs_equal() -> None:
    """Two equal configs give an empty change."""
    assert compare_configs(Config(), Config()).empty


def test_live_keys_exist() -> None:
    """Every live key names a field of the config, so a rename cannot silently need a restart."""
    assert LIVE_KEYS <= set(Config.model_fields)


async def test_sender_replaced_keeps_running(tmp_path: Path) -> None:
    """`ReloadableSender.replace` stops the old sender and `run()` goes on with the new one until `stop()`."""
    open_store(tmp_path).close()
    built: list[OutboxSender] = []

    def build(config: Config) -> OutboxSender:
        built.append(OutboxSender(config, tmp_path))
        return built[-1]

    slot = ReloadableSender(build, Config())
    running = asyncio.create_task(slot.run())
    await asyncio.sleep(0.05)

    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    await slot.replace(Config.model_validate({"channels": {"ops-webhook": hook}}))
    await asyncio.sleep(0.05)

    assert len(built) == 2
    assert slot.current is built[1]
    assert not running.done()
    await slot.stop()
    await asyncio.wait_for(running, timeout=5.0)

"""End to end: the console attached to a real `atlas daemon` over HTTP, as `atlas tui --connect` runs it.

The daemon runs as a subprocess with its own data directory and a rule that fires
at its first evaluation (`process_count > 0`). The test creates a `read,ack` token
with `atlas api token create`, writes it to a token file and runs the console app
with a `RemoteSource` for the daemon's URL under Textual's Pilot. The console's own
data directory is empty, so anything it shows came over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Label

from atlas_tui.config import Config
from atlas_tui.console.app import AtlasApp, create_app
from atlas_tui.console.remote_source import RemoteSource
from atlas_tui.console.widgets.alerts_table import AlertsTable
from tests.console.pilot_helpers import wait_until
from tests.e2e.channels import daemon_config
from tests.e2e.processes import AtlasDaemon, poll, run_atlas

pytestmark = pytest.mark.e2e

TOKEN_NAME = "ops"
"""Name of the console's token; short, so `acked by api:ops` fits the table's state column."""
RULE = {"id": "always_on", "name": "Always on", "condition": "process_count > 0", "severity": "warning"}
CONSOLE_CONFIG = Config.model_validate({"metrics_refresh_interval": 0.5})
"""The console refreshes twice a second, so link changes show quickly."""


def remote_daemon_config() -> dict[str, object]:
    """Return the daemon config: fast collection and evaluation, the rule, and no per-token rate limit."""
    config = daemon_config([RULE], {})
    config["api"] = {"rate_limits": {"per_token_per_minute": 0, "per_address_per_minute": 0}}
    return config


def create_token_file(daemon: AtlasDaemon, directory: Path) -> Path:
    """Create a `read,ack` token with the CLI and write it to a file, as an operator would."""
    result = run_atlas("api", "token", "create", "--name", TOKEN_NAME, "--scope", "read,ack",
                       "--data-dir", str(daemon.data_dir))
    assert result.returncode == 0, result.stderr
    path = directory / "console.token"
    path.write_text(result.stdout, encoding="utf-8")
    path.chmod(0o600)
    return path


def firing_alerts(url: str, token: str) -> list[dict[str, object]]:
    """Return the firing alerts the daemon lists, or none while it is not serving."""
    try:
        response = httpx.get(f"{url}/api/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=5.0)
    except httpx.TransportError:
        return []
    if response.status_code != 200:
        return []
    return [alert for alert in response.json() if alert["state"] == "firing"]


def header_text(app: AtlasApp, selector: str) -> str:
    """Return the rendered text of one header label."""
    return str(app.main_screen.query_one(selector, Label).render())


async def wait_for_state(pilot: Pilot[None], text: str, timeout: float) -> bool:
    """Wait until the header's state label shows `text`."""
    app = pilot.app
    assert isinstance(app, AtlasApp)
    return await wait_until(pilot, lambda: header_text(app, "#header-state") == text, timeout=timeout)


def started(launch: Callable[..., AtlasDaemon], port: int = 0) -> AtlasDaemon:
    """Start the daemon with the API on `port` and wait for its start line."""
    daemon = launch(remote_daemon_config(), api=True, port=port)
    assert daemon.wait_started(), daemon.log()
    return daemon


async def test_remote_ack_from_keyboard(tmp_path: Path, launch: Callable[..., AtlasDaemon]) -> None:
    """`2`, `a`, a note and Enter acknowledge the firing alert through the daemon's API."""
    daemon = started(launch)
    url = f"http://127.0.0.1:{daemon.port()}"
    token_path = create_token_file(daemon, tmp_path)
    token = token_path.read_text(encoding="utf-8").strip()
    assert poll(lambda: len(firing_alerts(url, token)) == 1, timeout=15.0), daemon.log()
    alert_id = str(firing_alerts(url, token)[0]["alert_id"])

    source = RemoteSource(url, token_path)
    app = create_app(CONSOLE_CONFIG, tmp_path / "console-data", source=source)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_for_state(pilot, "● connected", timeout=10.0)
        assert header_text(app, "#header-host").endswith(f"via {url}")
        await pilot.press("2")
        table = app.main_screen.query_one(AlertsTable)
        assert await wait_until(pilot, lambda: table.selected_key == alert_id, timeout=10.0)

        await pilot.press("a", "o", "n", "space", "i", "t", "enter")
        acked = f"acked by api:{TOKEN_NAME}"
        assert await wait_until(pilot, lambda: table.get_cell(alert_id, "state").plain == acked, timeout=10.0)

    alert = next(item for item in firing_alerts(url, token) if item["alert_id"] == alert_id)
    assert alert["ack_by"] == f"api:{TOKEN_NAME}"
    assert alert["ack_message"] == "on it"


async def test_link_drops_and_recovers(tmp_path: Path, launch: Callable[..., AtlasDaemon]) -> None:
    """Stopping the daemon shows `reconnecting`; a daemon started again on the same port is `connected` again."""
    daemon = started(launch)
    port = daemon.port()
    url = f"http://127.0.0.1:{port}"
    token_path = create_token_file(daemon, tmp_path)

    app = create_app(CONSOLE_CONFIG, tmp_path / "console-data", source=RemoteSource(url, token_path, timeout=2.0))
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_for_state(pilot, "● connected", timeout=10.0)
        shown_before = app.main_screen.snapshots_shown

        assert daemon.stop() == 0, daemon.log()
        assert await wait_for_state(pilot, "● reconnecting", timeout=10.0)
        assert f"127.0.0.1:{port}" in header_text(app, "#header-age")
        assert app.main_screen.snapshots_shown > shown_before

        restarted = started(launch, port)
        assert restarted.port() == port
        assert await wait_for_state(pilot, "● connected", timeout=15.0), restarted.log()
        assert header_text(app, "#header-age").startswith("newest sample")

"""A real store and `AlertService` driven by an injected clock, for service and action tests.

`Harness.step(at, value)` writes one `cpu_usage` sample just before `at` and runs
one evaluation cycle at `at`. `restart()` replaces the service as a daemon restart
would, so the next cycle runs with `after_restart=True`. Channels are webhooks on
127.0.0.1 port 9; nothing sends to them, because these tests read the outbox table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atlas_tui.alerts.service import AlertService, CycleReport
from atlas_tui.config import Config
from collectors.base import CollectorStatus, Sample
from storage.alerts import AlertEventRecord, AlertRecord, alert_history, list_alerts
from storage.db import open_store
from storage.metrics import write_samples

T0 = 1_767_225_600.0
"""2026-01-01 00:00 UTC; acceptance times are offsets from here."""


def make_config(rules: list[dict[str, Any]], channels: tuple[str, ...] = ("hook",)) -> Config:
    """Return a config with `rules` and one webhook channel per name."""
    return Config.model_validate({
        "alert_rules": rules,
        "channels": {name: {"type": "webhook", "url": f"http://127.0.0.1:9/{name}"} for name in channels},
    })


def cpu_rule(**fields: Any) -> dict[str, Any]:
    """A `cpu_usage > 80` rule on channel `hook` with no cooldown unless overridden."""
    rule = {"id": "high_cpu", "name": "High CPU", "condition": "cpu_usage > 80",
            "channels": ["hook"], "cooldown_min": 0}
    rule.update(fields)
    return rule


class Harness:
    """One data directory, its store and the alert service over it."""

    def __init__(
        self,
        data_dir: Path,
        config: Config,
        statuses: Callable[[], list[CollectorStatus]] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.statuses = statuses if statuses is not None else list
        self.conn = open_store(data_dir)
        self.service = self._new_service()
        self.first = True

    def _new_service(self) -> AlertService:
        return AlertService(self.config, self.data_dir, statuses=self.statuses)

    def write(self, name: str, value: float, at: float, **labels: str) -> None:
        """Store one sample of `name` one second before `at`."""
        write_samples(self.conn, [Sample.of(name, value, at - 1.0, **labels)])

    def step(self, offset: float, value: float | None = None, **labels: str) -> CycleReport:
        """Write `cpu_usage` = `value` (when given) and evaluate at `T0 + offset`."""
        at = T0 + offset
        if value is not None:
            self.write("cpu_usage", value, at, **labels)
        report = self.service.evaluate_once(at, after_restart=self.first)
        self.first = False
        return report

    def restart(self) -> None:
        """Replace the service, as a daemon restart does; the next cycle is the first."""
        self.service.close()
        self.service = self._new_service()
        self.first = True

    def alerts(self, **filters: Any) -> list[AlertRecord]:
        """Return `list_alerts` with `filters`."""
        return list_alerts(self.conn, **filters)

    def alert(self, rule_id: str = "high_cpu") -> AlertRecord:
        """Return the only listed alert of `rule_id`."""
        found = [a for a in self.alerts(include_inactive=True) if a.rule_id == rule_id]
        assert len(found) == 1, found
        return found[0]

    def history(self, ref: str) -> list[AlertEventRecord]:
        """Return the alert's history, oldest first."""
        return alert_history(self.conn, ref)

    def outbox(self) -> list[dict[str, Any]]:
        """Return the outbox rows oldest first, with the payload decoded."""
        rows = self.conn.execute(
            "SELECT notice_id, channel, kind, alert_id, fingerprint, payload, created_at FROM outbox ORDER BY id"
        ).fetchall()
        keys = ("notice_id", "channel", "kind", "alert_id", "fingerprint", "payload", "created_at")
        decoded = [dict(zip(keys, row)) for row in rows]
        for row in decoded:
            row["payload"] = json.loads(row["payload"])
        return decoded

    def kinds(self) -> list[str]:
        """Return the outbox rows' kinds, oldest first."""
        return [row["kind"] for row in self.outbox()]

    def close(self) -> None:
        """Close the service's and the harness's connections."""
        self.service.close()
        self.conn.close()

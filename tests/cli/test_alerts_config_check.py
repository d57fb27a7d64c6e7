"""`atlas config check` on alert rules: syntax errors fail, unknown metrics and channels warn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.cli import EXIT_OK, EXIT_USAGE, main
from atlas_tui.cli_alerts import KNOWN_METRICS, check_alerting
from atlas_tui.config import Config
from collectors.base import Sample
from collectors.self_health import SelfHealthCollector
from collectors.system import SystemCollector
from storage.db import open_store
from storage.metrics import write_samples

WEBHOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config so only the test's files count."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def _write(tmp_path: Path, rules: list[dict[str, object]], channels: dict[str, object] | None = None) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"alert_rules": rules, "channels": channels or {}}), encoding="utf-8")
    return str(path)


def _rule(rule_id: str, condition: str, channels: list[str] | None = None) -> dict[str, object]:
    return {"id": rule_id, "condition": condition, "channels": channels or []}


def test_syntax_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A condition that does not parse exits 2 naming the rule id, the column and the expectation."""
    path = _write(tmp_path, [_rule("high_cpu", "cpu_usage > )")])

    code = main(["config", "check", "--config", path])

    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert f'{path}: rule high_cpu: column 13: expected a number, a metric name or "(", got ")"' in err
    assert "config ok" not in err
    assert out == ""


def test_syntax_error_caret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The condition is repeated with a caret under the failing column."""
    path = _write(tmp_path, [_rule("high_cpu", "cpu_usage > )")])

    main(["config", "check", "--config", path])

    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == "  cpu_usage > )"
    assert lines[2] == "  " + " " * 12 + "^"


def test_other_rules_still_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every broken rule is reported, not only the first."""
    path = _write(tmp_path, [_rule("first", "cpu_usage >"), _rule("ok", "cpu_usage > 1"), _rule("third", "avg(x)")])

    main(["config", "check", "--config", path])

    err = capsys.readouterr().err
    assert "rule first: column" in err
    assert "rule third: column" in err
    assert "rule ok" not in err


def test_duplicate_id_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two rules with one id exit 2 naming the id."""
    path = _write(tmp_path, [_rule("high_cpu", "cpu_usage > 80"), _rule("high_cpu", "cpu_usage > 90")])

    code = main(["config", "check", "--config", path])

    assert code == EXIT_USAGE
    assert "rule high_cpu: duplicate id" in capsys.readouterr().err


def test_unknown_metric_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule on an unknown metric is a warning: exit 0, config printed, metric named."""
    path = _write(tmp_path, [_rule("typo", "cpu_usge > 80")])

    code = main(["config", "check", "--config", path])

    out, err = capsys.readouterr()
    assert code == EXIT_OK
    assert json.loads(out)["alert_rules"][0]["id"] == "typo"
    assert f"{path}: warning: rule typo: unknown metric cpu_usge" in err
    assert f"config ok: {path}" in err


def test_stored_metric_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A metric found in the --data-dir store is not reported as unknown."""
    data_dir = tmp_path / "data"
    conn = open_store(data_dir)
    write_samples(conn, [Sample.of("node_block_lag", 3.0, 1_750_000_000.0, node="eth")])
    conn.close()
    path = _write(tmp_path, [_rule("lag", "node_block_lag > 5")])

    code = main(["config", "check", "--config", path, "--data-dir", str(data_dir)])

    assert code == EXIT_OK
    assert ": warning: " not in capsys.readouterr().err


def test_missing_store_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --data-dir without a store is reported, and the check still passes."""
    path = _write(tmp_path, [_rule("high_cpu", "cpu_usage > 80")])

    code = main(["config", "check", "--config", path, "--data-dir", str(tmp_path / "empty")])

    err = capsys.readouterr().err
    assert code == EXIT_OK
    assert "warning: no store at" in err
    assert "built-in metric names only" in err


def test_unconfigured_channel_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule naming a channel that is not configured is a warning naming rule and channel."""
    path = _write(tmp_path, [_rule("high_cpu", "cpu_usage > 80", ["email", "hook"])], {"hook": WEBHOOK})

    code = main(["config", "check", "--config", path])

    err = capsys.readouterr().err
    assert code == EXIT_OK
    assert f'{path}: warning: rule high_cpu: channel "email" is not configured' in err
    assert '"hook"' not in err


def test_clean_rules_no_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rules on built-in metrics with configured channels print no warning."""
    rules = [_rule("disk", 'avg(disk_usage{mount="/"}, 5m) > 90', ["hook"]), _rule("up", "collector_up < 1")]
    path = _write(tmp_path, rules, {"hook": WEBHOOK})

    code = main(["config", "check", "--config", path])

    assert code == EXIT_OK
    assert ": warning: " not in capsys.readouterr().err


def test_disabled_rule_syntax_fails() -> None:
    """A disabled rule with a broken condition is still an error, so enabling it later is safe."""
    config = Config.model_validate({"alert_rules": [{"id": "off", "condition": "x >", "enabled": False}]})

    check = check_alerting(config)

    assert len(check.errors) == 1
    assert check.errors[0].startswith("rule off: column 4")


async def test_known_metrics_cover_collectors(tmp_path: Path) -> None:
    """Every metric the real system and self-health collectors write is in the catalogue."""
    open_store(tmp_path).close()
    system = SystemCollector(interval=5.0)
    health = SelfHealthCollector(statuses=lambda: [], data_dir=tmp_path, interval=5.0)

    samples = [*await system.collect(1.0), *await system.collect(2.0), *await health.collect(2.0)]

    assert {sample.name for sample in samples} - KNOWN_METRICS == set()

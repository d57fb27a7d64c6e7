"""`atlas config check`: effective config on success, exit 2 with field paths on errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_tui.cli import EXIT_OK, EXIT_USAGE, main

URGENT_RULE = {
    "alert_rules": [
        {"id": "high_cpu", "name": "High CPU Usage", "condition": "cpu_usage > 80", "severity": "urgent"}
    ]
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config so only the test's files count."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_valid_file_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file prints the effective config as JSON, with defaults filled in, and exits 0."""
    path = _write(tmp_path / "config.json", {"port": 9090, "collectors": {"system": {"interval": "2s"}}})

    code = main(["config", "check", "--config", str(path)])

    out, err = capsys.readouterr()
    effective = json.loads(out)
    assert code == EXIT_OK
    assert effective["port"] == 9090
    assert effective["collectors"]["system"]["interval"] == 2.0
    assert effective["max_history_hours"] == 168
    assert str(path) in err


def test_defaults_without_file(capsys: pytest.CaptureFixture[str]) -> None:
    """Without any config file the defaults are printed and named as the source."""
    code = main(["config", "check"])

    out, err = capsys.readouterr()
    assert code == EXIT_OK
    assert json.loads(out)["port"] == 8080
    assert "defaults" in err


def test_invalid_severity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown severity exits 2 naming the file, the field path and the allowed values."""
    path = _write(tmp_path / "bad.json", URGENT_RULE)

    code = main(["config", "check", "--config", str(path)])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert str(path) in err
    assert 'alert_rules[0].severity: expected one of info, warning, error, critical, got "urgent"' in err


def test_unknown_key_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown top-level key exits 2 and names the key."""
    path = _write(tmp_path / "bad.json", {"prot": 8080})

    code = main(["config", "check", "--config", str(path)])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert '"prot"' in err


def test_bad_json_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed JSON exits 2 and names the line and column of the error."""
    path = tmp_path / "bad.json"
    path.write_text('{\n  "port": 8080,\n  "max_history_hours": ,\n}\n', encoding="utf-8")

    code = main(["config", "check", "--config", str(path)])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert f"{path}: line 3 column 24" in err


def test_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each invalid field gets its own stderr line, prefixed by the file."""
    path = _write(tmp_path / "bad.json", {"port": 0, "metrics_refresh_interval": -1})

    main(["config", "check", "--config", str(path)])

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --config path that does not exist exits 2 and names the file."""
    path = tmp_path / "absent.json"

    code = main(["config", "check", "--config", str(path)])

    assert code == EXIT_USAGE
    assert f"{path}: file not found" in capsys.readouterr().err


def test_env_config_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """ATLAS_CONFIG is read when --config is absent."""
    path = _write(tmp_path / "env.json", {"port": 7070})
    monkeypatch.setenv("ATLAS_CONFIG", str(path))

    main(["config", "check"])

    assert json.loads(capsys.readouterr().out)["port"] == 7070


def test_flag_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--config wins over ATLAS_CONFIG."""
    monkeypatch.setenv("ATLAS_CONFIG", str(_write(tmp_path / "env.json", {"port": 7070})))
    flag = _write(tmp_path / "flag.json", {"port": 6060})

    main(["config", "check", "--config", str(flag)])

    assert json.loads(capsys.readouterr().out)["port"] == 6060


def test_xdg_file_fallback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without flag or ATLAS_CONFIG, $XDG_CONFIG_HOME/atlas/config.json is read if present."""
    xdg = tmp_path / "xdg-config" / "atlas"
    xdg.mkdir(parents=True)
    _write(xdg / "config.json", {"port": 5050})

    main(["config", "check"])

    assert json.loads(capsys.readouterr().out)["port"] == 5050


def test_daemon_rejects_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`atlas daemon` with an invalid config exits 2 before taking the lock."""
    path = _write(tmp_path / "bad.json", URGENT_RULE)
    data_dir = tmp_path / "data"

    code = main(["daemon", "--config", str(path), "--data-dir", str(data_dir), "--no-api"])

    assert code == EXIT_USAGE
    assert "alert_rules[0].severity" in capsys.readouterr().err
    assert not data_dir.exists()


def test_module_entry_point(tmp_path: Path) -> None:
    """`python -m atlas_tui.cli config check` runs as a program with the same exit code."""
    path = _write(tmp_path / "bad.json", URGENT_RULE)

    result = subprocess.run(
        [sys.executable, "-m", "atlas_tui.cli", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert result.returncode == EXIT_USAGE
    assert f"{path}: alert_rules[0].severity" in result.stderr

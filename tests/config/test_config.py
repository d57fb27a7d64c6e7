"""Config file loading, validation messages and the data-dir / config-path precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.config import load_config, resolve_config_path, resolve_data_dir
from atlas_tui.errors import ConfigError

ORIGINAL_SHAPE = {
    "port": 8080,
    "alert_rules": [
        {
            "id": "high_cpu",
            "name": "High CPU Usage",
            "condition": "cpu_usage > 80",
            "severity": "warning",
            "enabled": True,
            "cooldown_min": 15,
            "channels": ["email", "slack"],
        }
    ],
    "metrics_refresh_interval": 30,
    "max_history_hours": 168,
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_original_shape_valid(tmp_path: Path) -> None:
    """The original dashboard's config file loads unchanged."""
    config = load_config(write(tmp_path, ORIGINAL_SHAPE))
    assert config.port == 8080
    assert config.alert_rules[0].channels == ["email", "slack"]
    assert config.max_history_hours == 168


def test_no_file_gives_defaults() -> None:
    """Without a config file every default applies."""
    config = load_config(None)
    assert config.collectors.system.interval == 5.0
    assert config.port == 8080


def test_bad_severity_names_path(tmp_path: Path) -> None:
    """An invalid severity names the field path, the choices and the value."""
    data = json.loads(json.dumps(ORIGINAL_SHAPE))
    data["alert_rules"][0]["severity"] = "urgent"
    problems = problems_of(write(tmp_path, data))
    assert problems == [
        'alert_rules[0].severity: expected one of info, warning, error, critical, got "urgent"'
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """An unknown top-level key is rejected by name."""
    problems = problems_of(write(tmp_path, {**ORIGINAL_SHAPE, "prot": 9000}))
    assert problems == ['prot: unknown key "prot"; remove it or fix its spelling']


def test_invalid_json_names_line(tmp_path: Path) -> None:
    """Broken JSON is reported with its line and column."""
    path = tmp_path / "config.json"
    path.write_text('{\n  "port": 8080,\n}\n', encoding="utf-8")
    problems = problems_of(path)
    assert problems[0].startswith("line 3 column 1: invalid JSON")


def test_error_message_names_file(tmp_path: Path) -> None:
    """The error's text starts with the file it came from."""
    path = write(tmp_path, {"port": "eighty"})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: port:")


def test_missing_file_is_error(tmp_path: Path) -> None:
    """A config path that does not exist is an error, not silently the defaults."""
    assert problems_of(tmp_path / "absent.json") == [
        "file not found; pass an existing file to --config"
    ]


def test_duration_text_accepted(tmp_path: Path) -> None:
    """Collector intervals accept duration text such as 2s."""
    config = load_config(write(tmp_path, {"collectors": {"system": {"interval": "2s"}}}))
    assert config.collectors.system.interval == 2.0


def test_bad_duration_named(tmp_path: Path) -> None:
    """A malformed duration names the field and shows the expected form."""
    problems = problems_of(write(tmp_path, {"collectors": {"system": {"interval": "soon"}}}))
    assert problems == [
        "collectors.system.interval: expected a duration such as 30s, 5m or 2h, got 'soon'"
    ]


def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The flag beats ATLAS_DATA_DIR, which beats the XDG default."""
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("ATLAS_DATA_DIR")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "atlas"


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The flag beats ATLAS_CONFIG, which beats the XDG file, which beats defaults."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    assert resolve_config_path(None) is None
    xdg_file = tmp_path / "xdg" / "atlas" / "config.json"
    xdg_file.parent.mkdir(parents=True)
    xdg_file.write_text("{}", encoding="utf-8")
    assert resolve_config_path(None) == xdg_file
    monkeypatch.setenv("ATLAS_CONFIG", str(tmp_path / "env.json"))
    assert resolve_config_path(None) == tmp_path / "env.json"
    assert resolve_config_path(tmp_path / "flag.json") == tmp_path / "flag.json"

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


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"port": "8080"}, 'port: expected a whole number, got "8080"'),
        ({"port": 8080.5}, "port: expected a whole number, got 8080.5"),
        ({"max_history_hours": True}, "max_history_hours: expected a number, got true"),
        ({"max_history_hours": 1e300}, "max_history_hours: must be at most 87600, got 1e+300"),
        ({"collectors": {"system": {"enabled": "yes"}}}, 'collectors.system.enabled: expected true or false, got "yes"'),
        ({"collectors": {"system": {"interval": "1ms"}}}, "collectors.system.interval: must be at least 0.1, got 0.001"),
        ({"metrics_refresh_interval": 1e300}, "metrics_refresh_interval: must be at most 3600, got 1e+300"),
        ({"collectors": None}, "collectors: expected an object, got null"),
        ({"alert_rules": {}}, "alert_rules: expected a list, got an object"),
    ],
)
def test_wrong_types_and_bounds(tmp_path: Path, data: dict[str, object], problem: str) -> None:
    """Values of the wrong JSON type or out of range name the field and the value."""
    assert problems_of(write(tmp_path, data)) == [problem]


def test_infinity_rejected(tmp_path: Path) -> None:
    """Infinity is not JSON and would overflow retention arithmetic."""
    path = tmp_path / "config.json"
    path.write_text('{"max_history_hours": Infinity}', encoding="utf-8")
    assert problems_of(path) == ["max_history_hours: expected a finite number, got Infinity"]


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    """A key given twice is an error instead of silently keeping the last value."""
    path = tmp_path / "config.json"
    path.write_text('{"port": 1, "port": 2}', encoding="utf-8")
    assert problems_of(path) == ['duplicate key "port"; keep one of the entries']


def test_non_utf8_file_rejected(tmp_path: Path) -> None:
    """A file in another encoding gets a config error, not a traceback."""
    path = tmp_path / "config.json"
    path.write_bytes(b'\xff\xfe{"port": 1}')
    assert problems_of(path) == ["byte 0: the file is not UTF-8 text; save it as UTF-8 JSON"]


def test_channel_error_path(tmp_path: Path) -> None:
    """A channel error names the JSON path, without the channel type pydantic adds."""
    data = {"channels": {"hook": {"type": "webhook"}}}
    assert problems_of(write(tmp_path, data)) == ["channels.hook.url: required key is missing"]

"""The config file's pydantic models, where the file and the data directory are found.

Precedence is file < environment < flags: `--config`, else `ATLAS_CONFIG`, else
`~/.config/atlas/config.json` if present, else the defaults; `--data-dir`, else
`ATLAS_DATA_DIR`, else the XDG data directory (`~/.local/share/atlas`). Secrets never
live in the JSON; sections that need one name an environment variable or a file.

The original dashboard's keys (`port`, `alert_rules`, `metrics_refresh_interval`,
`max_history_hours`) stay valid. Unknown keys are rejected with their name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlas_tui.alerts.channels.models import ChannelConfig
from atlas_tui.durations import Duration
from atlas_tui.errors import ConfigError

__all__ = [
    "AlertRule",
    "AlertingConfig",
    "Config",
    "CollectorsConfig",
    "SystemCollectorConfig",
    "default_config_path",
    "default_data_dir",
    "load_config",
    "resolve_config_path",
    "resolve_data_dir",
]

Severity = Literal["info", "warning", "error", "critical"]
NodataState = Literal["ok", "alerting", "nodata", "keep_last"]
ErrorState = Literal["ok", "alerting", "error", "keep_last"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AlertRule(_Section):
    """One alert rule as operators already write it."""

    id: str = Field(min_length=1)
    """Stable identifier, used in alert history and silences (`high_cpu`)."""
    name: str = ""
    """Human-readable title shown in the console and in notifications."""
    condition: str = Field(min_length=1)
    """Condition over metric names, for example `cpu_usage > 80`."""
    severity: Severity = "warning"
    """One of info, warning, error, critical."""
    enabled: bool = True
    """A disabled rule is kept in the config but never evaluated."""
    cooldown_min: float = Field(default=15, ge=0)
    """Minimum minutes between two notices for the same alert on one channel."""
    channels: list[str] = Field(default_factory=list)
    """Names of notification channels, for example `["email", "slack"]`."""
    for_: Duration = Field(default=0.0, ge=0, alias="for")
    """How long the condition must stay true before the alert fires; 0 fires at once."""
    keep_firing_for: Duration = Field(default=0.0, ge=0)
    """How long a firing alert stays firing after its condition first turns false."""
    repeat_interval: Duration | None = Field(default=None, gt=0)
    """Time between repeat notices of a firing, unacknowledged alert; unset sends none."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Static labels added to every alert of this rule, for example `{"team": "wallet"}`."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Text for notices: `summary`, `runbook_url` and any other key."""
    nodata_state: NodataState = "nodata"
    """State when the metric has no data: ok, alerting, nodata, or keep_last (no change)."""
    error_state: ErrorState = "error"
    """State when the metric's collector fails: ok, alerting, error, or keep_last."""


class SystemCollectorConfig(_Section):
    """Host metrics read with psutil."""

    enabled: bool = True
    """Set to false to collect no host metrics (the daemon still writes self-health)."""
    interval: Duration = Field(default=5.0, gt=0)
    """Seconds between two readings; 5 s keeps the daemon under 0.4 % of one core."""
    timeout: Duration = Field(default=4.0, gt=0)
    """Seconds after which a cycle is abandoned and reported as timed out."""


class SelfHealthCollectorConfig(_Section):
    """The daemon's own health: collector states, store and WAL size, RSS and CPU."""

    interval: Duration = Field(default=5.0, gt=0)
    """Time between two self-health readings."""


class CollectorsConfig(_Section):
    """Settings per collector."""

    system: SystemCollectorConfig = Field(default_factory=SystemCollectorConfig)
    """The psutil host collector."""
    self_health: SelfHealthCollectorConfig = Field(default_factory=SelfHealthCollectorConfig)
    """The self-health collector; it always runs."""


class StorageConfig(_Section):
    """Retention and maintenance of the SQLite store."""

    raw_retention: Duration = Field(default=86400.0, gt=0)
    """How long raw samples are kept; rollups then serve older ranges."""
    maintenance_interval: Duration = Field(default=60.0, gt=0)
    """Seconds between rollup, retention and checkpoint runs in the daemon."""


class AlertingConfig(_Section):
    """How often rules are evaluated."""

    evaluation_interval: Duration = Field(default=30.0, gt=0)
    """Time between two evaluations of every rule; an evaluation that overruns it is skipped."""


class Config(_Section):
    """The whole config file."""

    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port of the daemon's HTTP API on 127.0.0.1."""
    alert_rules: list[AlertRule] = Field(default_factory=list)
    """Alert rules; see `AlertRule`."""
    metrics_refresh_interval: float = Field(default=5, gt=0)
    """Seconds between two console refreshes of charts and tables."""
    max_history_hours: float = Field(default=168, gt=0)
    """Hours of per-minute and per-hour rollups kept in the store."""
    collectors: CollectorsConfig = Field(default_factory=CollectorsConfig)
    """Collector settings."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Store retention and maintenance."""
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    """Rule evaluation settings."""
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    """Notification channels by name; rules list these names in `channels`."""

    def unconfigured_channels(self) -> list[tuple[str, str]]:
        """Return `(rule id, channel)` pairs where a rule names a channel that is not configured.

        The original dashboard's rules name `email` and `slack` without a `channels`
        section, so these are reported by `atlas config check` instead of rejected.
        """
        return [
            (rule.id, name)
            for rule in self.alert_rules
            for name in rule.channels
            if name not in self.channels
        ]


def default_data_dir() -> Path:
    """Return the XDG data directory for ATLAS (`$XDG_DATA_HOME/atlas`)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "atlas"


def default_config_path() -> Path:
    """Return the XDG config file path (`$XDG_CONFIG_HOME/atlas/config.json`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "atlas" / "config.json"


def resolve_data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory from the flag, `ATLAS_DATA_DIR` or the XDG default."""
    chosen = flag or os.environ.get("ATLAS_DATA_DIR") or default_data_dir()
    return Path(chosen).expanduser()


def resolve_config_path(flag: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the config file to read, or None when the defaults apply."""
    chosen = flag or os.environ.get("ATLAS_CONFIG")
    if chosen:
        return Path(chosen).expanduser()
    fallback = default_config_path()
    return fallback if fallback.is_file() else None


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate the config file at `path`; None gives the defaults.

    Raises:
        ConfigError: the file is missing, is not JSON, or a field is invalid. The
            message names the file and each field path.
    """
    if path is None:
        return Config()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(source, ["file not found; pass an existing file to --config"]) from err
    except OSError as err:
        raise ConfigError(source, [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            source, [f"line {err.lineno} column {err.colno}: invalid JSON: {err.msg}"]
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(source, [f"expected a JSON object at the top level, got {type(data).__name__}"])
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, [_describe(error) for error in err.errors()]) from err


def _describe(error: Any) -> str:
    path = _field_path(error["loc"])
    kind = error["type"]
    received = error.get("input")
    if kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"{path}: expected one of {expected}, got {json.dumps(received)}"
    if kind == "extra_forbidden":
        return f"{path}: unknown key {json.dumps(str(error['loc'][-1]))}; remove it or fix its spelling"
    if kind == "missing":
        return f"{path}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if ", got " in message:
        return f"{path}: {message}"
    return f"{path}: {message}, got {json.dumps(received, default=str)}"


def _field_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"

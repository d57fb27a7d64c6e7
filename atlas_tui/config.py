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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from atlas_tui.alerts.channels.models import ChannelConfig
from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.backup.config import BackupConfig
from atlas_tui.api_config import ApiConfig
from atlas_tui.durations import Duration
from atlas_tui.errors import ConfigError
from atlas_tui.nodes_config import NodeList, ProbeList

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


MIN_INTERVAL = 0.1
"""Shortest accepted collection, refresh or evaluation interval in seconds.

Below this the daemon spends its time scheduling rather than collecting.
"""
MAX_INTERVAL = 86400.0
"""Longest accepted interval in seconds (one day)."""


Number = Annotated[float, Field(strict=True)]
"""A JSON number: whole or decimal, never a string or true/false."""


class _Section(BaseModel):
    # Infinity and NaN are not JSON, and a bool where a number belongs is a typo.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


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
    enabled: StrictBool = True
    """A disabled rule is kept in the config but never evaluated."""
    cooldown_min: Number = Field(default=15, ge=0, le=10080)
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

    enabled: StrictBool = True
    """Set to false to collect no host metrics (the daemon still writes self-health)."""
    interval: Duration = Field(default=5.0, ge=MIN_INTERVAL, le=MAX_INTERVAL)
    """Seconds between two readings; 5 s keeps the daemon under 0.4 % of one core."""
    timeout: Duration = Field(default=4.0, gt=0, le=3600)
    """Seconds after which a cycle is abandoned and reported as timed out."""


class SelfHealthCollectorConfig(_Section):
    """The daemon's own health: collector states, store and WAL size, RSS and CPU."""

    interval: Duration = Field(default=5.0, ge=MIN_INTERVAL, le=MAX_INTERVAL)
    """Time between two self-health readings."""


class CollectorsConfig(_Section):
    """Settings per collector."""

    system: SystemCollectorConfig = Field(default_factory=SystemCollectorConfig)
    """The psutil host collector."""
    self_health: SelfHealthCollectorConfig = Field(default_factory=SelfHealthCollectorConfig)
    """The self-health collector; it always runs."""
    nodes: NodeList = Field(default_factory=list)
    """Blockchain nodes watched over JSON-RPC; see `atlas_tui.nodes_config.NodeConfig`."""
    probes: ProbeList = Field(default_factory=list)
    """HTTP(S) endpoints checked with a request; see `atlas_tui.nodes_config.ProbeConfig`."""


class StorageConfig(_Section):
    """Retention and maintenance of the SQLite store."""

    raw_retention: Duration = Field(default=86400.0, ge=60, le=90 * 86400.0)
    """How long raw samples are kept; rollups then serve older ranges."""
    maintenance_interval: Duration = Field(default=60.0, ge=MIN_INTERVAL, le=MAX_INTERVAL)
    """Seconds between rollup, retention and checkpoint runs in the daemon."""


class AlertingConfig(_Section):
    """How often rules are evaluated."""

    evaluation_interval: Duration = Field(default=30.0, ge=MIN_INTERVAL, le=MAX_INTERVAL)
    """Time between two evaluations of every rule; an evaluation that overruns it is skipped."""


class Config(_Section):
    """The whole config file."""

    port: StrictInt = Field(default=8080, ge=1, le=65535)
    """TCP port of the daemon's HTTP API, on the address `api.bind`."""
    alert_rules: list[AlertRule] = Field(default_factory=list)
    """Alert rules; see `AlertRule`."""
    metrics_refresh_interval: Number = Field(default=5, ge=MIN_INTERVAL, le=3600)
    """Seconds between two console refreshes of charts and tables."""
    max_history_hours: Number = Field(default=168, gt=0, le=87600)
    """Hours of per-minute and per-hour rollups kept in the store."""
    collectors: CollectorsConfig = Field(default_factory=CollectorsConfig)
    """Collector settings."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Store retention and maintenance."""
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    """Rule evaluation settings."""
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    """Mobile analytics apps, ingest keys and time windows; see `AnalyticsConfig`."""
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    """Notification channels by name; rules list these names in `channels`."""
    api: ApiConfig = Field(default_factory=ApiConfig)
    """HTTP API listen address, TLS, allowed hosts, CORS and limits, as described in `ApiConfig`."""
    backup: BackupConfig = Field(default_factory=BackupConfig)
    """Backup repository, passphrase source and sets; see `atlas_tui.backup.config.BackupConfig`."""

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
    except UnicodeDecodeError as err:
        raise ConfigError(
            source, [f"byte {err.start}: the file is not UTF-8 text; save it as UTF-8 JSON"]
        ) from err
    except OSError as err:
        raise ConfigError(source, [f"cannot read the file: {err.strerror}"]) from err
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKeyError as err:
        raise ConfigError(
            source, [f"duplicate key {json.dumps(err.key)}; keep one of the entries"]
        ) from err
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


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, raising on a repeated key: JSON parsers would keep the last one silently."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


_TYPE_NAMES = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "finite_number": "a finite number",
}


_BOUNDS = {
    "greater_than": "greater than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def _bound(error: Any) -> str:
    limit = next(iter(error.get("ctx", {}).values()), "?")
    return f"{limit:g}" if isinstance(limit, float) else str(limit)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    return json.dumps(value, default=str)


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
    if kind in _BOUNDS:
        return f"{path}: must be {_BOUNDS[kind]} {_bound(error)}, got {_json_kind(received)}"
    if kind in _TYPE_NAMES:
        return f"{path}: expected {_TYPE_NAMES[kind]}, got {_json_kind(received)}"
    message = error["msg"].removeprefix("Value error, ")
    if ", got " in message:
        return f"{path}: {message}"
    return f"{path}: {message}, got {json.dumps(received, default=str)}"


_CHANNEL_TYPES = ("email", "slack", "webhook", "alertmanager")


def _field_path(loc: tuple[str | int, ...]) -> str:
    # Pydantic puts the discriminator's value in the location of a tagged union
    # (channels.hook.webhook.url); the JSON path has no such level.
    if len(loc) >= 3 and loc[0] == "channels" and loc[2] in _CHANNEL_TYPES:
        loc = (*loc[:2], *loc[3:])
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"

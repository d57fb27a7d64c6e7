"""Alert rules as the engine uses them: `RuleSpec`, built from the config's `alert_rules`.

The daemon calls `load_rules` at start-up and on reload; `atlas config check` calls
it with the known metric names. Every condition is parsed here, once. A rule with a
bad condition or field is left out with health `error` and the others still load,
so one typo never stops evaluation. Durations are float seconds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from atlas_tui.alerts.errors import RuleConfigError, RuleSyntaxError
from atlas_tui.alerts.evaluate import Evaluation, ObservationResult
from atlas_tui.alerts.grammar import Expr, parse_condition, referenced_metrics
from atlas_tui.durations import parse_duration

__all__ = [
    "DEFAULT_RESOLVED_RETENTION",
    "ErrorState",
    "LoadedRules",
    "NodataState",
    "RuleHealth",
    "RuleSpec",
    "Severity",
    "build_rule",
    "evaluation_health",
    "load_rules",
]

Severity = Literal["info", "warning", "error", "critical"]
NodataState = Literal["ok", "alerting", "nodata", "keep_last"]
"""Meaning of a `nodata` observation: false, true, the nodata state, or no change."""
ErrorState = Literal["ok", "alerting", "error", "keep_last"]
"""Meaning of an `error` observation: false, true, the error state, or no change."""
HealthStatus = Literal["ok", "error", "disabled"]

DEFAULT_RESOLVED_RETENTION = 900.0
"""Seconds a resolved instance stays `resolved` (and listed) before it turns inactive."""


@dataclass(frozen=True)
class RuleSpec:
    """One rule, validated and parsed, with every duration in seconds."""

    rule_id: str
    condition: str
    """The condition as written, for messages."""
    expr: Expr
    """The parsed condition."""
    name: str = ""
    severity: Severity = "warning"
    for_: float = 0.0
    """Seconds the condition must stay true before pending turns firing; 0 fires at once."""
    keep_firing_for: float = 0.0
    """Seconds a firing alert stays firing after the first false evaluation."""
    repeat_interval: float | None = None
    """Seconds between repeat notices of a firing, unacknowledged alert; None for none."""
    cooldown: float = 900.0
    """Minimum seconds between two notices for one instance on one channel.

    It delays firing and repeat notices only. Resolved and acknowledge notices are
    always sent at once.
    """
    labels: Mapping[str, str] = field(default_factory=dict)
    """Static labels added to every notice of this rule (`team`, `host`)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Text for notices, such as `summary` and `runbook_url`."""
    channels: tuple[str, ...] = ()
    nodata_state: NodataState = "nodata"
    error_state: ErrorState = "error"
    resolved_retention: float = DEFAULT_RESOLVED_RETENTION

    @classmethod
    def from_condition(cls, rule_id: str, condition: str, **fields: object) -> RuleSpec:
        """Parse `condition` and build a spec, for tests and dry runs.

        Raises:
            RuleSyntaxError: the condition does not parse.
        """
        return cls(rule_id, condition, parse_condition(condition, rule_id), **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RuleHealth:
    """Whether a rule can be evaluated, shown beside it in the console."""

    rule_id: str
    status: HealthStatus
    message: str | None = None
    """The problem when `status` is `error`, for example `unknown metric cpu_usge`."""


@dataclass(frozen=True)
class LoadedRules:
    """The result of loading the config's rules."""

    rules: tuple[RuleSpec, ...]
    """Enabled rules that loaded, in config order."""
    health: tuple[RuleHealth, ...]
    """One entry per rule in the config, in config order, disabled and broken ones included."""

    def health_of(self, rule_id: str) -> RuleHealth | None:
        """Return the first health entry of `rule_id`, if the config has such a rule."""
        return next((h for h in self.health if h.rule_id == rule_id), None)


def load_rules(
    raw_rules: Iterable[object], known_metrics: Collection[str] | None = None
) -> LoadedRules:
    """Build every rule, reporting a broken one in its health instead of raising.

    Args:
        raw_rules: `config.AlertRule` models or plain mappings with the same keys plus
            `for`, `keep_firing_for`, `repeat_interval`, `labels`, `annotations`,
            `nodata_state` and `error_state`.
        known_metrics: When given, a rule that reads a metric not in it gets health
            `error` ("unknown metric …") but is still evaluated.

    Returns:
        The enabled rules that built, and one health entry per input rule.
    """
    rules: list[RuleSpec] = []
    health: list[RuleHealth] = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_rules):
        fields = _as_mapping(raw)
        rule_id = str(fields.get("id") or f"alert_rules[{position}]")
        try:
            spec = build_rule(fields)
        except (RuleSyntaxError, RuleConfigError) as err:
            health.append(RuleHealth(rule_id, "error", str(err)))
            continue
        if rule_id in seen:
            health.append(RuleHealth(rule_id, "error", f"rule {rule_id}: duplicate id; give each rule its own id"))
            continue
        seen.add(rule_id)
        if not fields.get("enabled", True):
            health.append(RuleHealth(rule_id, "disabled"))
            continue
        rules.append(spec)
        health.append(_static_health(spec, known_metrics))
    return LoadedRules(tuple(rules), tuple(health))


def build_rule(raw: object) -> RuleSpec:
    """Validate one rule and parse its condition.

    Raises:
        RuleSyntaxError: the condition does not parse.
        RuleConfigError: another field is missing or invalid; the message names it.
    """
    fields = _as_mapping(raw)
    rule_id = _text(fields, "id", "")
    if not rule_id:
        raise RuleConfigError("(no id)", "id", "required key is missing; add a unique id")
    condition = _text(fields, "condition", "")
    if not condition.strip():
        raise RuleConfigError(rule_id, "condition", "required key is missing; add a condition such as cpu_usage > 80")

    reader = _FieldReader(rule_id, fields)
    return RuleSpec(
        rule_id=rule_id,
        condition=condition,
        expr=parse_condition(condition, rule_id),
        name=_text(fields, "name", ""),
        severity=reader.choice("severity", get_args(Severity), "warning"),  # type: ignore[arg-type]
        for_=reader.duration("for", 0.0) or 0.0,
        keep_firing_for=reader.duration("keep_firing_for", 0.0) or 0.0,
        repeat_interval=reader.duration("repeat_interval", None) or None,
        cooldown=reader.minutes("cooldown_min", 15.0) * 60.0,
        labels=reader.text_map("labels"),
        annotations=reader.text_map("annotations"),
        channels=reader.names("channels"),
        nodata_state=reader.choice("nodata_state", get_args(NodataState), "nodata"),  # type: ignore[arg-type]
        error_state=reader.choice("error_state", get_args(ErrorState), "error"),  # type: ignore[arg-type]
    )


def evaluation_health(
    rule_id: str, evaluation: Evaluation, known_metrics: Collection[str] = ()
) -> RuleHealth:
    """Return a rule's health after one evaluation: unknown metrics and errors are `error`.

    A metric in `known_metrics` that has no series yet is not unknown: its rule simply
    has no data, which its `nodata_state` already handles.
    """
    unknown = evaluation.unknown_metrics - frozenset(known_metrics)
    if unknown:
        names = ", ".join(sorted(unknown))
        return RuleHealth(rule_id, "error", f"unknown metric {names}")
    errors = [o for o in evaluation.observations if o.result is ObservationResult.ERROR]
    if errors:
        return RuleHealth(rule_id, "error", errors[0].message)
    return RuleHealth(rule_id, "ok")


def _static_health(spec: RuleSpec, known_metrics: Collection[str] | None) -> RuleHealth:
    if known_metrics is None:
        return RuleHealth(spec.rule_id, "ok")
    unknown = sorted(referenced_metrics(spec.expr) - set(known_metrics))
    if unknown:
        return RuleHealth(spec.rule_id, "error", f"rule {spec.rule_id}: unknown metric {', '.join(unknown)}")
    return RuleHealth(spec.rule_id, "ok")


def _as_mapping(raw: object) -> Mapping[str, object]:
    dump = getattr(raw, "model_dump", None)
    if callable(dump):
        dumped: Mapping[str, object] = dump(by_alias=True)
        return dumped
    if isinstance(raw, Mapping):
        return raw
    raise TypeError(f"expected an alert rule mapping, got {type(raw).__name__}")


def _text(fields: Mapping[str, object], key: str, default: str) -> str:
    value = fields.get(key, default)
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class _FieldReader:
    """Reader of optional rule fields that raises `RuleConfigError` naming the field."""

    rule_id: str
    fields: Mapping[str, object]

    def get(self, key: str) -> object:
        # pydantic cannot name a field `for`, so the model may dump it as `for_`.
        if key in self.fields:
            return self.fields[key]
        return self.fields.get(f"{key}_")

    def duration(self, key: str, default: float | None) -> float | None:
        value = self.get(key)
        if value is None:
            return default
        try:
            return parse_duration(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise RuleConfigError(self.rule_id, key, f"{err}") from err

    def minutes(self, key: str, default: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RuleConfigError(self.rule_id, key, f"expected a non-negative number of minutes, got {value!r}")
        return float(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.get(key)
        if value is None:
            return default
        if value not in allowed:
            raise RuleConfigError(self.rule_id, key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def text_map(self, key: str) -> dict[str, str]:
        value = self.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise RuleConfigError(self.rule_id, key, f"expected an object of text values, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def names(self, key: str) -> tuple[str, ...]:
        value = self.get(key)
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise RuleConfigError(self.rule_id, key, f'expected a list of channel names such as ["email"], got {value!r}')
        names = tuple(str(name) for name in value)
        if len(set(names)) != len(names):
            raise RuleConfigError(self.rule_id, key, f"lists a channel twice: {list(names)!r}")
        return names

"""Rule loading: fields to RuleSpec, per-rule health, one bad rule never stops the rest."""

from __future__ import annotations

import pytest

from atlas_tui.alerts.errors import RuleConfigError, RuleSyntaxError
from atlas_tui.alerts.grammar import parse_condition
from atlas_tui.alerts.rules import RuleHealth, build_rule, load_rules
from atlas_tui.config import AlertRule

ORIGINAL = {
    "id": "high_cpu",
    "name": "High CPU Usage",
    "condition": "cpu_usage > 80",
    "severity": "warning",
    "enabled": True,
    "cooldown_min": 15,
    "channels": ["email", "slack"],
}


def test_original_shape_builds() -> None:
    """A rule in the original config shape builds with its fields converted."""
    spec = build_rule(ORIGINAL)
    assert (spec.rule_id, spec.name, spec.severity) == ("high_cpu", "High CPU Usage", "warning")
    assert spec.cooldown == 900.0
    assert spec.channels == ("email", "slack")
    assert spec.expr == parse_condition("cpu_usage > 80")


def test_config_model_builds() -> None:
    """A validated `AlertRule` model builds like its mapping."""
    assert build_rule(AlertRule.model_validate(ORIGINAL)) == build_rule(ORIGINAL)


def test_new_fields() -> None:
    """Hold, keep-firing, repeat, labels, annotations and mappings are read."""
    raw = {
        **ORIGINAL,
        "for": "2m",
        "keep_firing_for": 60,
        "repeat_interval": "4h",
        "labels": {"team": "ops"},
        "annotations": {"summary": "CPU above 80 %"},
        "nodata_state": "keep_last",
        "error_state": "alerting",
    }
    spec = build_rule(raw)
    assert (spec.for_, spec.keep_firing_for, spec.repeat_interval) == (120.0, 60.0, 14400.0)
    assert (dict(spec.labels), dict(spec.annotations)) == ({"team": "ops"}, {"summary": "CPU above 80 %"})
    assert (spec.nodata_state, spec.error_state) == ("keep_last", "alerting")


def test_for_underscore_key() -> None:
    """`for_` is read when a model dumps the field under its Python name."""
    assert build_rule({**ORIGINAL, "for_": 30.0}).for_ == 30.0


def test_defaults() -> None:
    """A minimal rule gets no hold, no repeats and nodata/error states."""
    spec = build_rule({"id": "r", "condition": "load_1m > 4"})
    assert (spec.for_, spec.keep_firing_for, spec.repeat_interval) == (0.0, 0.0, None)
    assert (spec.nodata_state, spec.error_state, spec.cooldown) == ("nodata", "error", 900.0)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("for", "soon", "expected a duration"),
        ("severity", "fatal", "expected one of info, warning, error, critical"),
        ("nodata_state", "error", "expected one of ok, alerting, nodata, keep_last"),
        ("error_state", "nodata", "expected one of ok, alerting, error, keep_last"),
        ("cooldown_min", -1, "non-negative number of minutes"),
        ("labels", {"team": 1}, "object of text values"),
        ("channels", "email", "list of channel names"),
        ("channels", ["email", "email"], "lists a channel twice"),
    ],
)
def test_invalid_field(field: str, value: object, problem: str) -> None:
    """An invalid field raises an error naming the rule and the field."""
    with pytest.raises(RuleConfigError) as caught:
        build_rule({**ORIGINAL, field: value})
    assert str(caught.value).startswith(f"rule high_cpu: {field}: ")
    assert problem in str(caught.value)


def test_missing_condition() -> None:
    """A rule without a condition is rejected with a hint."""
    with pytest.raises(RuleConfigError, match="condition: required key is missing"):
        build_rule({"id": "r"})


def test_syntax_error_raised() -> None:
    """A condition that does not parse raises the syntax error with the rule id."""
    with pytest.raises(RuleSyntaxError, match="rule high_cpu: column 13"):
        build_rule({**ORIGINAL, "condition": "cpu_usage > )"})


def test_bad_rule_does_not_stop_others() -> None:
    """A rule with a syntax error is reported, and the other rules still load."""
    loaded = load_rules([{**ORIGINAL, "condition": "cpu_usage > )"}, {**ORIGINAL, "id": "ok_rule"}])
    assert [r.rule_id for r in loaded.rules] == ["ok_rule"]
    assert loaded.health[0].status == "error"
    assert "column 13" in (loaded.health[0].message or "")
    assert loaded.health[1] == RuleHealth("ok_rule", "ok")


def test_disabled_rule() -> None:
    """A disabled rule is listed as disabled and not evaluated."""
    loaded = load_rules([{**ORIGINAL, "enabled": False}])
    assert loaded.rules == ()
    assert loaded.health_of("high_cpu") == RuleHealth("high_cpu", "disabled")


def test_disabled_rule_still_checked() -> None:
    """A disabled rule with a broken condition is still reported as an error."""
    loaded = load_rules([{**ORIGINAL, "enabled": False, "condition": "cpu_usage >"}])
    assert loaded.health[0].status == "error"


def test_duplicate_id() -> None:
    """A second rule with the same id is reported and left out."""
    loaded = load_rules([ORIGINAL, ORIGINAL])
    assert len(loaded.rules) == 1
    assert loaded.health[1].status == "error"
    assert "duplicate id" in (loaded.health[1].message or "")


def test_unknown_metric_static() -> None:
    """With the known metric names given, an unknown one is an error but still loads."""
    loaded = load_rules([{**ORIGINAL, "condition": "cpu_usge > 80"}], known_metrics={"cpu_usage"})
    assert len(loaded.rules) == 1
    assert loaded.health[0] == RuleHealth("high_cpu", "error", "rule high_cpu: unknown metric cpu_usge")


def test_missing_id_health() -> None:
    """A rule without an id is reported by its position."""
    loaded = load_rules([{"condition": "x > 1"}])
    assert loaded.health[0].rule_id == "alert_rules[0]"
    assert loaded.health[0].status == "error"

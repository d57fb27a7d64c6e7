"""Alerting: rule conditions, the state engine, the evaluation service, actions and channels.

Data flow: `rules.load_rules` parses the config's rules. `service.AlertService`
evaluates them every interval (`evaluate`, `query`) and advances each instance with
the pure `engine`. It writes states, history and outbox rows in one transaction
(`cycle`, `notices`), and `outbox.OutboxSender` delivers them through `channels`.
The console, CLI and API acknowledge and silence through `actions`.

Importing this package imports nothing else. The function `evaluate.evaluate` is not
re-exported, because the submodule of the same name would shadow it. The names below load their module on
first use, because `atlas_tui.config` imports `atlas_tui.alerts.channels.models`,
and an eager import here of anything that imports the config would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas_tui.lazy import lazy_exports

if TYPE_CHECKING:
    from atlas_tui.alerts.actions import (
        AlertNotFoundError,
        SilenceNotFoundError,
        acknowledge,
        create_silence,
        default_actor,
        expire_silence,
        unacknowledge,
    )
    from atlas_tui.alerts.engine import NoticeIntent, due_ticks, transition, transition_rule
    from atlas_tui.alerts.errors import (
        AlertError,
        AlertStateError,
        MetricQueryError,
        RuleConfigError,
        RuleSyntaxError,
    )
    from atlas_tui.alerts.evaluate import Evaluation, MetricQuery, SampleQuery, StoreQuery
    from atlas_tui.alerts.grammar import parse_condition
    from atlas_tui.alerts.internal import NOTIFICATION_FAILING
    from atlas_tui.alerts.query import PreloadedQuery
    from atlas_tui.alerts.rules import LoadedRules, RuleHealth, RuleSpec, load_rules
    from atlas_tui.alerts.service import AlertService, CycleReport
    from atlas_tui.alerts.silences import InvalidSilenceError, parse_matchers
    from atlas_tui.alerts.state import AlertState, InstanceState, fingerprint

__all__ = [
    "NOTIFICATION_FAILING",
    "AlertError",
    "AlertNotFoundError",
    "AlertService",
    "AlertState",
    "AlertStateError",
    "CycleReport",
    "Evaluation",
    "InstanceState",
    "InvalidSilenceError",
    "LoadedRules",
    "MetricQuery",
    "MetricQueryError",
    "NoticeIntent",
    "PreloadedQuery",
    "RuleConfigError",
    "RuleHealth",
    "RuleSpec",
    "RuleSyntaxError",
    "SampleQuery",
    "SilenceNotFoundError",
    "StoreQuery",
    "acknowledge",
    "create_silence",
    "default_actor",
    "due_ticks",
    "expire_silence",
    "fingerprint",
    "load_rules",
    "parse_condition",
    "parse_matchers",
    "transition",
    "transition_rule",
    "unacknowledge",
]

_MODULE_OF = {
    "AlertNotFoundError": "actions",
    "SilenceNotFoundError": "actions",
    "acknowledge": "actions",
    "create_silence": "actions",
    "default_actor": "actions",
    "expire_silence": "actions",
    "unacknowledge": "actions",
    "NoticeIntent": "engine",
    "due_ticks": "engine",
    "transition": "engine",
    "transition_rule": "engine",
    "AlertError": "errors",
    "AlertStateError": "errors",
    "MetricQueryError": "errors",
    "RuleConfigError": "errors",
    "RuleSyntaxError": "errors",
    "Evaluation": "evaluate",
    "MetricQuery": "evaluate",
    "SampleQuery": "evaluate",
    "StoreQuery": "evaluate",
    "parse_condition": "grammar",
    "NOTIFICATION_FAILING": "internal",
    "PreloadedQuery": "query",
    "LoadedRules": "rules",
    "RuleHealth": "rules",
    "RuleSpec": "rules",
    "load_rules": "rules",
    "AlertService": "service",
    "CycleReport": "service",
    "InvalidSilenceError": "silences",
    "parse_matchers": "silences",
    "AlertState": "state",
    "InstanceState": "state",
    "fingerprint": "state",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULE_OF)

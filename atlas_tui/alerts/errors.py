"""Errors raised by the alert engine: rule parsing, rule fields, metric queries, acks.

    AtlasError
    └── AlertError
        ├── RuleSyntaxError    a rule's condition does not parse
        ├── RuleConfigError    a rule field other than the condition is invalid
        ├── MetricQueryError   a metric query failed in the store
        └── AlertStateError    an acknowledgement does not apply to the alert's state

Rule loading turns the first two into per-rule health instead of stopping; the
evaluator turns `MetricQueryError` into an `error` observation. Messages name the
rule id or fingerprint and, where the user can fix it, say how.
"""

from __future__ import annotations

from atlas_tui.errors import AtlasError

__all__ = [
    "AlertError",
    "AlertStateError",
    "MetricQueryError",
    "RuleConfigError",
    "RuleSyntaxError",
]


class AlertError(AtlasError):
    """Base of every error the alert engine raises on purpose."""


class RuleSyntaxError(AlertError):
    """Raised when a rule's condition does not follow the condition grammar.

    The message names the rule, the 1-based column and what the parser expected,
    then repeats the condition with a caret under the column:

        rule high_cpu: column 13: expected a number, a metric name or "(", got ")"
          cpu_usage > )
                      ^
    """

    def __init__(
        self, rule_id: str, column: int, expected: str, text: str, got: str | None = None
    ) -> None:
        self.rule_id = rule_id
        self.column = column
        self.expected = expected
        self.text = text
        self.got = got if got is not None else _token_at(text, column)
        super().__init__(f"{self.summary}\n  {text}\n  {' ' * (column - 1)}^")

    @property
    def summary(self) -> str:
        """The first line of the message, without the caret lines."""
        return f"rule {self.rule_id}: column {self.column}: expected {self.expected}, got {self.got}"


class RuleConfigError(AlertError):
    """Raised when a rule field other than the condition is invalid (`for`, `severity`…)."""

    def __init__(self, rule_id: str, field: str, problem: str) -> None:
        self.rule_id = rule_id
        self.field = field
        self.problem = problem
        super().__init__(f"rule {rule_id}: {field}: {problem}")


class MetricQueryError(AlertError):
    """Raised by a `MetricQuery` when the store fails a query (locked, corrupt, closed)."""


class AlertStateError(AlertError):
    """Raised when an acknowledgement does not apply, such as acking a resolved alert."""

    def __init__(self, fingerprint: str, state: str, problem: str) -> None:
        self.fingerprint = fingerprint
        self.state = state
        super().__init__(f"alert {fingerprint} is {state}: {problem}")


def _token_at(text: str, column: int) -> str:
    """Return the quoted word at `column`, or `end of condition` past the end."""
    rest = text[column - 1 :].split()
    return f'"{rest[0]}"' if rest else "end of condition"

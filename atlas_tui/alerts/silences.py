"""Silence matchers: parsing `rule=high_cpu` or `{host="atlas-01"}` and matching alerts.

`actions.create_silence` parses and normalises the operator's text before storing
it. The alert service builds a `Silencer` from the active silences each cycle and
matches every instance it writes against it. A silenced alert still evaluates and
changes state; only its notices are held back.

An alert's matchable labels are its series labels and rule labels, plus
`alertname` and `rule` (both the rule id) and `severity`. Matchers follow the
condition grammar's label matchers: `=`, `!=`, `=~` and `!~`, where a regex must
match the whole value and a missing label counts as the empty string.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from atlas_tui.alerts.errors import AlertError
from atlas_tui.alerts.grammar import Matcher
from storage.silences import SilenceRecord

__all__ = [
    "InvalidSilenceError",
    "Silencer",
    "format_matchers",
    "matchable_labels",
    "parse_matchers",
]

logger = logging.getLogger(__name__)

_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
_EXAMPLE = 'rule=high_cpu or {host="atlas-01", mount=~"/data.*"}'


class InvalidSilenceError(AlertError):
    """Raised when a silence's matchers or times are invalid; the message explains the fix."""


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse comma-separated label matchers, optionally inside `{…}`.

    Values may be bare (`rule=high_cpu`) or quoted with `"` or `'`, where `\\"`,
    `\\'` and `\\\\` are escapes.

    Raises:
        InvalidSilenceError: a matcher is malformed, a regex does not compile, or
            every matcher also matches the empty label set (it would silence everything).
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers = tuple(_parse_one(part) for part in _split(body) if part.strip())
    if not matchers:
        raise InvalidSilenceError(f"silence needs at least one label matcher, such as {_EXAMPLE}")
    if all(matcher.matches({}) for matcher in matchers):
        raise InvalidSilenceError(
            f"silence matchers {format_matchers(matchers)} match every alert; "
            "add a matcher that needs a label value, such as rule=high_cpu"
        )
    return matchers


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """Return the canonical text form stored in the `silences` table: `{a="x", b=~"y"}`."""
    return "{" + ", ".join(str(matcher) for matcher in matchers) + "}"


def matchable_labels(rule_id: str, severity: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Return the labels silences match against: `labels` plus alertname, rule and severity."""
    return {**labels, "alertname": rule_id, "rule": rule_id, "severity": severity}


class Silencer:
    """The silences active at one instant, ready to match alerts."""

    def __init__(self, silences: Iterable[SilenceRecord], now: float) -> None:
        """Keep the silences of `silences` that are active at `now`.

        A stored silence whose matchers no longer parse is skipped with a warning,
        so one damaged row does not stop evaluation.
        """
        self._active: list[_Parsed] = []
        for silence in silences:
            if silence.status(now) != "active":
                continue
            try:
                self._active.append(_Parsed(silence, parse_matchers(silence.matchers)))
            except InvalidSilenceError as err:
                logger.warning("silence skipped silence=%s: %s", silence.silence_id, err)

    def __bool__(self) -> bool:
        return bool(self._active)

    def match(self, labels: Mapping[str, str]) -> SilenceRecord | None:
        """Return the first active silence whose matchers all match `labels`, if any."""
        for parsed in self._active:
            if all(matcher.matches(labels) for matcher in parsed.matchers):
                return parsed.silence
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    silence: SilenceRecord
    matchers: tuple[Matcher, ...]


def _split(body: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for char in body:
        if escaped:
            escaped = False
        elif char == "\\" and quote:
            escaped = True
        elif quote and char == quote:
            quote = None
        elif not quote and char in "\"'":
            quote = char
        elif not quote and char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _parse_one(part: str) -> Matcher:
    found = _MATCHER.fullmatch(part)
    if found is None:
        raise InvalidSilenceError(
            f"invalid silence matcher {part.strip()!r}: expected label=value, label!=value, "
            f"label=~regex or label!~regex, such as {_EXAMPLE}"
        )
    label, op, raw = found.groups()
    value = _unquote(raw, part)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as err:
            raise InvalidSilenceError(f"invalid regex in silence matcher {part.strip()!r}: {err}") from err
    return Matcher(label, op, value)  # type: ignore[arg-type]


def _unquote(raw: str, part: str) -> str:
    if len(raw) < 2 or raw[0] not in "\"'" or raw[-1] != raw[0]:
        if raw[:1] in ("'", '"'):
            raise InvalidSilenceError(f"invalid silence matcher {part.strip()!r}: the quote is not closed")
        return raw
    inner = raw[1:-1]
    out: list[str] = []
    index = 0
    while index < len(inner):
        char = inner[index]
        if char == "\\" and index + 1 < len(inner) and inner[index + 1] in "\"'\\":
            out.append(inner[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)

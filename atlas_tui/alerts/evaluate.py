"""Evaluation of a parsed condition at one instant, one observation per label set.

The daemon calls `evaluate(rule.expr, query, now)` once per rule per cycle and hands
the `Evaluation` to `engine.transition_rule`. Data comes only through the
`MetricQuery` protocol: `SampleQuery` serves samples held in memory (rule tests) and
`StoreQuery` serves the SQLite store. Nothing here reads the clock or writes.

Semantics:

- A bare selector is each matching series' latest sample within `STALENESS_SECONDS`
  (5 minutes). An older series counts as missing.
- A window function covers each series' samples in `(now - window, now]`. `delta` is
  last minus first sample and `rate` is delta divided by the seconds between them.
  Both need two samples and treat the series as a gauge (a counter reset shows as a
  negative rate).
- Label sets combine by identical labels: `disk_usage > 90` gives one observation
  per mount. A number applies to every label set of the other side. So does a
  series without labels (`memory_usage`, or the host total of `cpu_usage`), for
  each label set the other side has no identical match for, and then yields no
  observation of its own. Arithmetic and
  comparisons keep only label sets found on both sides that way. `and` is false for
  a label set found on one side only, and `or` takes that side's result. When one
  side of `and` has no data at all, the result has none. When one side of `or` has
  no data, the result is the other side.
- An observation's value is the value of the comparison side that reads metrics
  (the left side when both do). For `or`, it is the value of the first side that is
  true. Division by zero gives NaN, which compares false except with `!=`.
- No label set at all gives one rule-wide `nodata` observation, with the unknown
  metrics named. A failing source (`MetricQuery.source_error`) or a failing query
  gives one rule-wide `error` observation.
"""

from __future__ import annotations

import bisect
import math
import operator
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, TypeVar

from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.grammar import (
    Absent,
    Arithmetic,
    Comparison,
    Expr,
    Logical,
    Not,
    Number,
    Selector,
    Window,
)
from atlas_tui.durations import format_duration
from collectors.base import Labels, Sample
from storage.metrics import list_series, range_query
from storage.metrics import window as store_window

__all__ = [
    "STALENESS_SECONDS",
    "Evaluation",
    "MetricQuery",
    "Observation",
    "ObservationResult",
    "QueryFunction",
    "SampleQuery",
    "SeriesPoint",
    "StoreQuery",
    "aggregate",
    "evaluate",
]

STALENESS_SECONDS = 300.0
"""Maximum age in seconds of the sample a bare selector uses; an older series counts as missing."""

QueryFunction = Literal["avg", "min", "max", "last", "count", "first"]
"""Aggregates a `MetricQuery` computes per series over a window."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One series' aggregate over a window."""

    labels: Labels
    ts: float
    """Newest sample time in the window; the oldest for `first`."""
    value: float


class MetricQuery(Protocol):
    """The metric data the evaluator reads; every method is read-only."""

    def window(
        self, selector: Selector, func: QueryFunction, duration: float, now: float
    ) -> list[SeriesPoint]:
        """Return `func` over each matching series' samples in `(now - duration, now]`.

        Series without a sample in the window are left out.

        Raises:
            MetricQueryError: the data source failed.
        """
        ...

    def series(self, name: str) -> list[Labels]:
        """Return every series ever recorded for metric `name`; empty for an unknown name."""
        ...

    def source_error(self, name: str) -> str | None:
        """Return why the source of metric `name` is failing now, or None when it is not."""
        ...


class ObservationResult(StrEnum):
    """The outcome of a condition for one label set; `str()` is the stored form."""

    TRUE = "true"
    FALSE = "false"
    NODATA = "nodata"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Observation:
    """The condition's outcome for one label set at one evaluation."""

    labels: Labels
    value: float | None
    """The metric value shown beside the alert; None when there is none."""
    result: ObservationResult
    message: str | None = None
    """The reason for a `nodata` or `error` result."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything one evaluation of a rule's condition found."""

    observations: tuple[Observation, ...]
    """One per label set, sorted by labels; a single one with no labels when `rule_wide`."""
    unknown_metrics: frozenset[str] = frozenset()
    """Metric names the condition reads that have never been recorded."""
    rule_wide: bool = False
    """True when the single observation is a `nodata` or `error` for the whole rule."""


def evaluate(expr: Expr, query: MetricQuery, now: float) -> Evaluation:
    """Evaluate a parsed condition at `now`.

    Args:
        expr: The root of a parsed condition (see `grammar.parse_condition`).
        query: Where the metric data comes from.
        now: UTC epoch seconds of this evaluation.

    Returns:
        One observation per label set, or a single rule-wide `nodata` or `error`
        observation. A query that raises `MetricQueryError` becomes an `error`
        observation instead of an exception.
    """
    evaluator = _Evaluator(query, now)
    try:
        verdicts = evaluator.condition(expr)
    except _SourceFailure as failure:
        return _rule_wide(ObservationResult.ERROR, str(failure), evaluator.unknown)
    except MetricQueryError as err:
        return _rule_wide(ObservationResult.ERROR, f"metric query failed: {err}", evaluator.unknown)

    if not verdicts:
        message = "; ".join(evaluator.missing) or "no data"
        return _rule_wide(ObservationResult.NODATA, message, evaluator.unknown)
    observations = tuple(
        Observation(labels, verdict.value, _result(verdict.truth))
        for labels, verdict in sorted(verdicts.items())
    )
    return Evaluation(observations, frozenset(evaluator.unknown))


class SampleQuery:
    """A `MetricQuery` over samples held in memory, for rule tests and dry runs."""

    def __init__(
        self, samples: Iterable[Sample] = (), source_errors: Mapping[str, str] | None = None
    ) -> None:
        self._times: dict[tuple[str, Labels], list[float]] = {}
        self._values: dict[tuple[str, Labels], list[float]] = {}
        self.source_errors: dict[str, str] = dict(source_errors or {})
        """Metric name mapped to the error its source reports; edit it between evaluations."""
        self.add(samples)

    def add(self, samples: Iterable[Sample]) -> None:
        """Add samples; a second sample at the same series and time replaces the first."""
        for sample in samples:
            key = (sample.name, sample.labels)
            times = self._times.setdefault(key, [])
            values = self._values.setdefault(key, [])
            index = bisect.bisect_left(times, sample.ts)
            if index < len(times) and times[index] == sample.ts:
                values[index] = sample.value
            else:
                times.insert(index, sample.ts)
                values.insert(index, sample.value)

    def window(
        self, selector: Selector, func: QueryFunction, duration: float, now: float
    ) -> list[SeriesPoint]:
        """Return `func` over each matching series' samples in `(now - duration, now]`."""
        points = []
        for (name, labels), times in self._times.items():
            if name != selector.name or not selector.matches(dict(labels)):
                continue
            start = bisect.bisect_right(times, now - duration)
            end = bisect.bisect_right(times, now)
            if start < end:
                values = self._values[(name, labels)][start:end]
                points.append(aggregate(labels, func, times[start:end], values))
        return points

    def series(self, name: str) -> list[Labels]:
        """Return the label sets of every series of metric `name`."""
        return [labels for series_name, labels in self._times if series_name == name]

    def source_error(self, name: str) -> str | None:
        """Return the error set for metric `name` in `source_errors`, if any."""
        return self.source_errors.get(name)


class StoreQuery:
    """A `MetricQuery` over the SQLite store, for one thread's connection.

    Results are cached for the current `now`, so rules that share a selector in one
    cycle query the store once; a call with a new `now` drops the cache.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        source_errors: Callable[[str], str | None] | None = None,
    ) -> None:
        """Wrap `conn`; `source_errors` maps a metric name to its source's failure, if any."""
        self.conn = conn
        self._source_errors = source_errors
        self._now: float | None = None
        self._windows: dict[tuple[Selector, str, float], list[SeriesPoint]] = {}
        self._series: dict[str, list[Labels]] = {}

    def window(
        self, selector: Selector, func: QueryFunction, duration: float, now: float
    ) -> list[SeriesPoint]:
        """Return `func` over each matching series' samples in `(now - duration, now]`.

        Raises:
            MetricQueryError: the store failed.
        """
        self._start_cycle(now)
        key = (selector, func, duration)
        if key not in self._windows:
            self._windows[key] = self._query(selector, func, duration, now)
        return self._windows[key]

    def series(self, name: str) -> list[Labels]:
        """Return the label sets of every stored series of metric `name`.

        Raises:
            MetricQueryError: the store failed.
        """
        if name not in self._series:
            try:
                self._series[name] = [labels for _, labels in list_series(self.conn, name)]
            except sqlite3.Error as err:
                raise MetricQueryError(f"listing series of {name}: {err}") from err
        return self._series[name]

    def source_error(self, name: str) -> str | None:
        """Return the failure the daemon reported for the source of `name`, if any."""
        return self._source_errors(name) if self._source_errors is not None else None

    def _start_cycle(self, now: float) -> None:
        if now != self._now:
            self._now = now
            self._windows.clear()
            self._series.clear()

    def _query(
        self, selector: Selector, func: QueryFunction, duration: float, now: float
    ) -> list[SeriesPoint]:
        labels = dict(selector.equality_labels())
        try:
            if func == "first":
                return self._first(selector, duration, now, labels)
            values = store_window(self.conn, selector.name, func, duration, now, labels)
        except sqlite3.Error as err:
            raise MetricQueryError(f"{func} of {selector} over {duration:g}s: {err}") from err
        return [
            SeriesPoint(v.labels, v.ts, v.value) for v in values if selector.matches(dict(v.labels))
        ]

    def _first(
        self, selector: Selector, duration: float, now: float, labels: dict[str, str]
    ) -> list[SeriesPoint]:
        # NOTE: the store has no "first" aggregate, so this reads the whole window.
        # For windows too long for raw samples the store returns rollups, and the
        # first point is then the first whole bucket inside the window.
        points = []
        start = now - duration
        for series in range_query(self.conn, selector.name, start, now, labels):
            if not selector.matches(dict(series.labels)):
                continue
            inside = [point for point in series.points if point.ts > start]
            if inside:
                points.append(SeriesPoint(series.labels, inside[0].ts, inside[0].value))
        return points


def aggregate(
    labels: Labels, func: QueryFunction, times: list[float], values: list[float]
) -> SeriesPoint:
    """Compute `func` over one series' samples, given oldest first (at least one)."""
    if func == "first":
        return SeriesPoint(labels, times[0], values[0])
    result = {
        "avg": lambda: math.fsum(values) / len(values),
        "min": lambda: min(values),
        "max": lambda: max(values),
        "last": lambda: values[-1],
        "count": lambda: float(len(values)),
    }[func]()
    return SeriesPoint(labels, times[-1], result)


# --- evaluator ------------------------------------------------------------------

_Numbers = float | dict[Labels, float]
_T = TypeVar("_T")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _divide(left: float, right: float) -> float:
    return left / right if right != 0 else math.nan


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
}


@dataclass(frozen=True, slots=True)
class _Verdict:
    truth: bool
    value: float | None


_Verdicts = dict[Labels, _Verdict]


class _SourceFailure(Exception):
    """The source of a metric the condition reads reports an error."""


class _Evaluator:
    def __init__(self, query: MetricQuery, now: float) -> None:
        self.query = query
        self.now = now
        self.unknown: set[str] = set()
        self.missing: list[str] = []

    def condition(self, node: Expr) -> _Verdicts:
        match node:
            case Comparison(op=op, left=left, right=right):
                return _compare(op, self.number(left), self.number(right))
            case Logical(op="and", left=left, right=right):
                return _and(self.condition(left), self.condition(right))
            case Logical(op="or", left=left, right=right):
                return _or(self.condition(left), self.condition(right))
            case Not(operand=operand):
                return {k: _Verdict(not v.truth, v.value) for k, v in self.condition(operand).items()}
            case Absent(selector=selector, duration=duration):
                present = self.fetch(selector, "count", duration)
                return {selector.equality_labels(): _Verdict(not present, None)}
        raise TypeError(f"not a condition node: {node!r}")  # pragma: no cover - the parser forbids it

    def number(self, node: Expr) -> _Numbers:
        match node:
            case Number(value=value):
                return value
            case Selector():
                return _values(self.fetch(node, "last", STALENESS_SECONDS))
            case Window(func="rate" | "delta", selector=selector, duration=duration):
                return self.change(node.func, selector, duration)
            case Window(func=func, selector=selector, duration=duration):
                return _values(self.fetch(selector, func, duration))  # type: ignore[arg-type]
            case Arithmetic(op=op, left=left, right=right):
                return _arithmetic(op, self.number(left), self.number(right))
        raise TypeError(f"not a number node: {node!r}")  # pragma: no cover - the parser forbids it

    def change(self, func: str, selector: Selector, duration: float) -> dict[Labels, float]:
        firsts = self.fetch(selector, "first", duration)
        lasts = self.fetch(selector, "last", duration)
        changes: dict[Labels, float] = {}
        for labels, last in lasts.items():
            first = firsts.get(labels)
            if first is None or last.ts <= first.ts:
                continue
            delta = last.value - first.value
            changes[labels] = delta if func == "delta" else delta / (last.ts - first.ts)
        return changes

    def fetch(self, selector: Selector, func: QueryFunction, duration: float) -> dict[Labels, SeriesPoint]:
        error = self.query.source_error(selector.name)
        if error is not None:
            raise _SourceFailure(f"source of {selector.name} failed: {error}")
        points = self.query.window(selector, func, duration, self.now)
        if not points:
            self.note_missing(selector, duration)
        return {point.labels: point for point in points}

    def note_missing(self, selector: Selector, duration: float) -> None:
        if not self.query.series(selector.name):
            self.unknown.add(selector.name)
            self.missing.append(f"unknown metric {selector.name}")
        else:
            self.missing.append(f"no data for {selector} in the last {format_duration(duration)}")


def _values(points: dict[Labels, SeriesPoint]) -> dict[Labels, float]:
    return {labels: point.value for labels, point in points.items()}


def _match(left: Mapping[Labels, object], right: Mapping[Labels, object]) -> list[Labels]:
    """Return the label sets a binary operation yields, before dropping one-sided ones."""
    keys = left.keys() | right.keys()
    # A label-less entry on one side only is used for the other side's unmatched
    # label sets, so it yields no observation of its own.
    if (() in left) != (() in right) and left and right:
        keys.discard(())
    return sorted(keys)


def _lookup(side: Mapping[Labels, _T], labels: Labels) -> _T | None:
    """Return the entry for `labels`, falling back to the side's label-less entry."""
    found = side.get(labels)
    return found if found is not None else side.get(())


def _is_scalar(numbers: _Numbers) -> bool:
    return not isinstance(numbers, dict)


def _broadcast(numbers: _Numbers, labels: Labels) -> float | None:
    if not isinstance(numbers, dict):
        return numbers
    return _lookup(numbers, labels)


def _pairs(left: _Numbers, right: _Numbers) -> list[tuple[Labels, float, float]]:
    """Pair the two sides of a binary operation by label set, dropping one-sided sets."""
    if not isinstance(left, dict) and not isinstance(right, dict):
        return [((), left, right)]
    if not isinstance(left, dict):
        labels_list = list(right)  # type: ignore[arg-type]
    elif not isinstance(right, dict):
        labels_list = list(left)
    else:
        labels_list = _match(left, right)
    pairs = []
    for labels in labels_list:
        left_value, right_value = _broadcast(left, labels), _broadcast(right, labels)
        if left_value is not None and right_value is not None:
            pairs.append((labels, left_value, right_value))
    return pairs


def _arithmetic(op: str, left: _Numbers, right: _Numbers) -> _Numbers:
    apply = _ARITHMETIC[op]
    if _is_scalar(left) and _is_scalar(right):
        return apply(left, right)  # type: ignore[arg-type]
    return {labels: apply(a, b) for labels, a, b in _pairs(left, right)}


def _compare(op: str, left: _Numbers, right: _Numbers) -> _Verdicts:
    test = _COMPARE[op]
    show_left = not _is_scalar(left) or _is_scalar(right)
    return {
        labels: _Verdict(test(a, b), a if show_left else b)
        for labels, a, b in _pairs(left, right)
    }


def _and(left: _Verdicts, right: _Verdicts) -> _Verdicts:
    if not left or not right:
        return {}
    combined: _Verdicts = {}
    for labels in _match(left, right):
        a, b = _lookup(left, labels), _lookup(right, labels)
        truth = a is not None and b is not None and a.truth and b.truth
        combined[labels] = _Verdict(truth, (a or b).value)  # type: ignore[union-attr]
    return combined


def _or(left: _Verdicts, right: _Verdicts) -> _Verdicts:
    if not left or not right:
        return left or right
    combined: _Verdicts = {}
    for labels in _match(left, right):
        a, b = _lookup(left, labels), _lookup(right, labels)
        true_side = next((v for v in (a, b) if v is not None and v.truth), None)
        displayed = true_side or a or b
        combined[labels] = _Verdict(true_side is not None, displayed.value)  # type: ignore[union-attr]
    return combined


def _result(truth: bool) -> ObservationResult:
    return ObservationResult.TRUE if truth else ObservationResult.FALSE


def _rule_wide(result: ObservationResult, message: str, unknown: set[str]) -> Evaluation:
    observation = Observation((), None, result, message)
    return Evaluation((observation,), frozenset(unknown), rule_wide=True)

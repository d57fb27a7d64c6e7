"""A `MetricQuery` that reads the store in bulk once per cycle and serves every rule from memory.

The alert service calls `PreloadedQuery.preload(exprs, now)` at the start of a
cycle. It lists the requests the evaluator will make (`metric_requests`). A bare
selector requests the newest sample within `STALENESS_SECONDS`, a window function
its window, and `rate` and `delta` the first and last sample of theirs. It matches
the requests to the series of each metric (one short query per metric name) and
decides per series how far back it needs every sample and whether it also needs
its newest one. Two queries (`storage.recent.read_windows`) then fetch all the
samples. `evaluate` calls `window`, `series` and `source_error`, which read only
memory. A request the preload did not plan for falls back to `evaluate.StoreQuery`,
so results are always complete.

Invariants: answers equal those of `evaluate.StoreQuery` over raw samples, with
windows `(now - duration, now]`. Everything is cached for one cycle (`now`), and a
call with a new `now` drops it. One instance is used by one thread.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.evaluate import STALENESS_SECONDS, QueryFunction, SeriesPoint, StoreQuery
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
from collectors.base import Labels
from storage.recent import list_metric_series, read_windows

__all__ = ["PreloadedQuery", "Request", "metric_requests"]

Request = tuple[Selector, QueryFunction, float]
"""One `MetricQuery.window` call: selector, function and window seconds."""


def metric_requests(expr: Expr) -> Iterator[Request]:
    """Yield the `window` calls `evaluate.evaluate` makes for the condition."""
    match expr:
        case Selector():
            yield expr, "last", STALENESS_SECONDS
        case Window(func="rate" | "delta", selector=selector, duration=duration):
            yield selector, "first", duration
            yield selector, "last", duration
        case Window(func=func, selector=selector, duration=duration):
            yield selector, func, duration  # type: ignore[misc]
        case Absent(selector=selector, duration=duration):
            yield selector, "count", duration
        case Arithmetic(left=left, right=right) | Comparison(left=left, right=right) | Logical(
            left=left, right=right
        ):
            yield from metric_requests(left)
            yield from metric_requests(right)
        case Not(operand=operand):
            yield from metric_requests(operand)
        case Number():
            return


class PreloadedQuery:
    """A `MetricQuery` over raw samples fetched in bulk once per cycle."""

    def __init__(
        self, conn: sqlite3.Connection, source_errors: Callable[[str], str | None] | None = None
    ) -> None:
        """Wrap `conn`; `source_errors` maps a metric name to why its source is failing now."""
        self.conn = conn
        self.source_errors = source_errors
        """Metric name to its source's failure (see `sources.SourceHealth`); replace it between cycles."""
        self.queries = 0
        """Store queries issued since creation, for benchmarks and tests."""
        self._now: float | None = None
        self._metrics: dict[str, _Metric] = {}
        self._planned: set[Request] = set()
        self._results: dict[Request, list[SeriesPoint]] = {}
        self._labels_cache: dict[str, Labels] = {}
        self._fallback = StoreQuery(conn, self.source_error)

    def preload(self, exprs: Iterable[Expr], now: float) -> None:
        """Fetch, in bulk, every sample the conditions' requests will need at `now`.

        Raises:
            MetricQueryError: the store failed.
        """
        self._start_cycle(now)
        requests = {request for expr in exprs for request in metric_requests(expr)}
        names = {selector.name for selector, _, _ in requests}
        try:
            listed = list_metric_series(self.conn, sorted(names), self._labels_cache)
            self.queries += len(names)
            for name, refs in listed.items():
                self._metrics[name] = _Metric([_Series(ref.id, ref.labels) for ref in refs])
            self._fetch(requests, now)
        except sqlite3.Error as err:
            self._metrics.clear()
            raise MetricQueryError(f"preloading samples of {len(names)} metrics: {err}") from err
        self._planned = requests

    def window(
        self, selector: Selector, func: QueryFunction, duration: float, now: float
    ) -> list[SeriesPoint]:
        """Return `func` over each matching series' samples in `(now - duration, now]`.

        Raises:
            MetricQueryError: the store failed while serving a request the preload lacked.
        """
        self._start_cycle(now)
        request: Request = (selector, func, duration)
        cached = self._results.get(request)
        if cached is not None:
            return cached
        metric = self._metrics.get(selector.name)
        if request not in self._planned or metric is None:
            return self._fallback.window(selector, func, duration, now)
        cached = [
            point
            for series in metric.matching(selector)
            if (point := series.aggregate(func, now - duration, now)) is not None
        ]
        self._results[request] = cached
        return cached

    def series(self, name: str) -> list[Labels]:
        """Return the label sets of every stored series of metric `name`.

        Raises:
            MetricQueryError: the store failed.
        """
        metric = self._metrics.get(name)
        if metric is None:
            return self._fallback.series(name)
        return [series.labels for series in metric.series]

    def source_error(self, name: str) -> str | None:
        """Return why the source of metric `name` is failing now, or None."""
        return self.source_errors(name) if self.source_errors is not None else None

    def _start_cycle(self, now: float) -> None:
        if now != self._now:
            self._now = now
            self._metrics.clear()
            self._planned = set()
            self._results.clear()

    def _fetch(self, requests: set[Request], now: float) -> None:
        """Read every window the requests need, the longest per series, in two queries."""
        windows: dict[int, float] = {}
        newest: dict[int, float] = {}
        series_by_id: dict[int, _Series] = {}
        for selector, func, duration in requests:
            needs = newest if func == "last" else windows
            for series in self._metrics[selector.name].matching(selector):
                series_by_id[series.id] = series
                needs[series.id] = max(duration, needs.get(series.id, 0.0))
        # A series whose full window is at least as long as its newest-sample window
        # already contains that sample.
        newest = {sid: d for sid, d in newest.items() if d > windows.get(sid, 0.0)}

        starts = {sid: now - d for sid, d in windows.items()}
        newest_starts = {sid: now - d for sid, d in newest.items()}
        found = read_windows(self.conn, starts, newest_starts, now)
        self.queries += int(bool(starts)) + int(bool(newest_starts))
        for series_id, samples in found.items():
            series = series_by_id[series_id]
            series.times, series.values = samples.times, samples.values


@dataclass(slots=True)
class _Series:
    id: int
    labels: Labels
    label_map: dict[str, str] = field(init=False)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.label_map = dict(self.labels)

    def aggregate(self, func: QueryFunction, start: float, end: float) -> SeriesPoint | None:
        low = bisect.bisect_right(self.times, start)
        high = bisect.bisect_right(self.times, end)
        if low >= high:
            return None
        if func == "first":
            return SeriesPoint(self.labels, self.times[low], self.values[low])
        newest = self.times[high - 1]
        if func == "last":
            return SeriesPoint(self.labels, newest, self.values[high - 1])
        if func == "count":
            return SeriesPoint(self.labels, newest, float(high - low))
        window = self.values[low:high]
        if func == "avg":
            return SeriesPoint(self.labels, newest, math.fsum(window) / len(window))
        return SeriesPoint(self.labels, newest, min(window) if func == "min" else max(window))


@dataclass(slots=True)
class _Metric:
    series: list[_Series]
    by_label: dict[tuple[str, str], list[_Series]] = field(init=False)
    """Series by each of their (label, value) pairs, to narrow `=` matchers."""
    matches: dict[Selector, list[_Series]] = field(default_factory=dict)
    """Series matching each selector asked so far."""

    def __post_init__(self) -> None:
        self.by_label = {}
        for series in self.series:
            for pair in series.labels:
                self.by_label.setdefault(pair, []).append(series)

    def matching(self, selector: Selector) -> list[_Series]:
        found = self.matches.get(selector)
        if found is None:
            found = [s for s in self._candidates(selector) if selector.matches(s.label_map)]
            self.matches[selector] = found
        return found

    def _candidates(self, selector: Selector) -> list[_Series]:
        # A non-empty `label="value"` matcher can only match series carrying that pair.
        lists = [self.by_label.get(pair, []) for pair in selector.equality_labels() if pair[1]]
        return min(lists, key=len) if lists else self.series

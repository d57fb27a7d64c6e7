"""Evaluation of conditions against in-memory samples: per-series results and matching."""

from __future__ import annotations

import math

import pytest

from atlas_tui.alerts.errors import MetricQueryError
from atlas_tui.alerts.evaluate import (
    Evaluation,
    ObservationResult,
    SampleQuery,
    SeriesPoint,
    evaluate,
)
from atlas_tui.alerts.grammar import Selector, parse_condition
from atlas_tui.alerts.rules import evaluation_health
from collectors.base import Labels, Sample, make_labels

NOW = 10_000.0
TRUE = ObservationResult.TRUE
FALSE = ObservationResult.FALSE
NODATA = ObservationResult.NODATA
ERROR = ObservationResult.ERROR


def host_samples() -> list[Sample]:
    """One host's latest readings, all 10 s old."""
    ts = NOW - 10
    return [
        Sample.of("cpu_usage", 85.0, ts),
        Sample.of("cpu_usage", 95.0, ts, cpu="0"),
        Sample.of("cpu_usage", 20.0, ts, cpu="1"),
        Sample.of("memory_usage", 60.0, ts),
        Sample.of("swap_usage", 50.0, ts),
        Sample.of("disk_usage", 95.0, ts, mount="/"),
        Sample.of("disk_usage", 40.0, ts, mount="/boot"),
        Sample.of("disk_usage", 91.0, ts, mount="/data"),
        Sample.of("load_1m", 0.0, ts),
    ]


def run(condition: str, samples: list[Sample] | None = None, now: float = NOW) -> Evaluation:
    query = SampleQuery(host_samples() if samples is None else samples)
    return evaluate(parse_condition(condition), query, now)


def outcomes(evaluation: Evaluation) -> dict[Labels, ObservationResult]:
    return {o.labels: o.result for o in evaluation.observations}


def values(evaluation: Evaluation) -> dict[Labels, float | None]:
    return {o.labels: o.value for o in evaluation.observations}


def mount(path: str) -> Labels:
    return make_labels(mount=path)


def test_one_observation_per_series() -> None:
    """`disk_usage > 90` yields one observation per mount, each with its own result."""
    result = run("disk_usage > 90")
    assert outcomes(result) == {mount("/"): TRUE, mount("/boot"): FALSE, mount("/data"): TRUE}


def test_observation_value_is_left_side() -> None:
    """An observation carries the metric's value for display."""
    assert values(run("disk_usage > 90"))[mount("/")] == 95.0


def test_value_of_metric_side_when_number_left() -> None:
    """With the number on the left, the value shown is still the metric's."""
    assert values(run("90 < disk_usage"))[mount("/")] == 95.0


def test_equality_matcher_selects_series() -> None:
    """A label matcher keeps only the matching series."""
    assert outcomes(run('disk_usage{mount="/"} > 90')) == {mount("/"): TRUE}


def test_regex_matcher_selects_series() -> None:
    """A regex matcher keeps series whose whole label value matches."""
    result = run('disk_usage{mount=~"/(boot|data)"} > 90')
    assert outcomes(result) == {mount("/boot"): FALSE, mount("/data"): TRUE}


def test_negative_regex_matcher() -> None:
    """`!~` drops the series that match, and series without the label stay."""
    result = run('cpu_usage{cpu!~"\\d+"} > 80')
    assert outcomes(result) == {(): TRUE}


def test_series_without_label_in_selection() -> None:
    """A metric with a total and per-core series gives an instance for each."""
    assert set(outcomes(run("cpu_usage > 80"))) == {(), make_labels(cpu="0"), make_labels(cpu="1")}


@pytest.mark.parametrize(
    ("age", "present"),
    [(10.0, True), (299.0, True), (300.0, False), (600.0, False)],
)
def test_bare_selector_staleness(age: float, present: bool) -> None:
    """A bare selector uses the latest sample only if it is less than 5 minutes old."""
    result = run("load_1m >= 0", [Sample.of("load_1m", 1.0, NOW - age)])
    assert (result.observations[0].result is TRUE) is present


def test_stale_series_is_nodata() -> None:
    """With every sample stale, the rule gets one rule-wide nodata observation."""
    result = run("load_1m >= 0", [Sample.of("load_1m", 1.0, NOW - 400)])
    assert result.rule_wide
    assert result.observations[0].result is NODATA
    assert result.observations[0].message == "no data for load_1m in the last 5m"


def series_over_time() -> list[Sample]:
    """`x` at 10, 20, 30, 40 over the last 4 minutes; `y` with a single sample."""
    samples = [Sample.of("x", value, NOW - 240 + 60 * i) for i, value in enumerate((10, 20, 30, 40))]
    samples.append(Sample.of("y", 5.0, NOW - 60))
    return samples


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("avg(x, 10m)", 25.0),
        ("avg(x, 150s)", 35.0),
        ("min(x, 10m)", 10.0),
        ("max(x, 10m)", 40.0),
        ("last(x, 10m)", 40.0),
        ("count(x, 10m)", 4.0),
        ("delta(x, 10m)", 30.0),
        ("rate(x, 10m)", 30.0 / 180.0),
        ("delta(x, 150s)", 10.0),
    ],
)
def test_window_functions(expression: str, expected: float) -> None:
    """Window functions aggregate the samples in `(now - window, now]`."""
    result = run(f"{expression} > -1000", series_over_time())
    assert result.observations[0].value == pytest.approx(expected)


def test_window_excludes_start() -> None:
    """A sample exactly at `now - window` is outside the window."""
    result = run("count(x, 240s) > 0", series_over_time())
    assert result.observations[0].value == 3.0


@pytest.mark.parametrize("func", ["rate", "delta"])
def test_change_needs_two_samples(func: str) -> None:
    """rate and delta over a single sample have no data."""
    result = run(f"{func}(y, 5m) > 0", series_over_time())
    assert result.observations[0].result is NODATA


def test_absent_true_without_samples() -> None:
    """absent() is true when no matching series has a sample in the window."""
    result = run('absent(disk_usage{mount="/gone"}, 2m)')
    assert outcomes(result) == {mount("/gone"): TRUE}


def test_absent_false_with_samples() -> None:
    """absent() is false when a matching series has a sample in the window."""
    assert outcomes(run("absent(disk_usage, 2m)")) == {(): FALSE}


def test_absent_of_old_samples() -> None:
    """absent() ignores samples older than its window."""
    result = run("absent(load_1m, 2m)", [Sample.of("load_1m", 1.0, NOW - 180)])
    assert outcomes(result) == {(): TRUE}


def test_unknown_metric_is_nodata() -> None:
    """A metric never recorded gives rule-wide nodata and is named as unknown."""
    result = run("cpu_usge > 80")
    assert result.observations[0].result is NODATA
    assert result.unknown_metrics == frozenset({"cpu_usge"})
    assert result.observations[0].message == "unknown metric cpu_usge"


def test_unknown_metric_health() -> None:
    """The rule health after an unknown metric is an error that names it."""
    health = evaluation_health("high_cpu", run("cpu_usge > 80"))
    assert health.status == "error"
    assert health.message == "unknown metric cpu_usge"


def test_absent_unknown_metric_flagged() -> None:
    """absent() of an unknown metric is true and still flags the name."""
    result = run("absent(nothing_here, 1m)")
    assert outcomes(result) == {(): TRUE}
    assert result.unknown_metrics == frozenset({"nothing_here"})


def test_known_metric_health_ok() -> None:
    """A rule that evaluates cleanly has health ok."""
    assert evaluation_health("r", run("cpu_usage > 80")).status == "ok"


def test_scalar_broadcasts_in_arithmetic() -> None:
    """A number applies to every series of the other side."""
    result = run("disk_usage * 2 > 150")
    assert outcomes(result) == {mount("/"): TRUE, mount("/boot"): FALSE, mount("/data"): TRUE}


def test_host_series_broadcasts() -> None:
    """A side whose only series has no labels applies to every label set."""
    result = run("disk_usage > 90 and memory_usage > 50")
    assert outcomes(result) == {mount("/"): TRUE, mount("/boot"): FALSE, mount("/data"): TRUE}


def test_host_total_stands_in() -> None:
    """The label-less total of a metric with per-core series applies to other label sets."""
    result = run("disk_usage > 90 and cpu_usage > 80")
    assert outcomes(result)[mount("/")] is TRUE
    assert outcomes(result)[mount("/boot")] is FALSE
    assert outcomes(result)[make_labels(cpu="0")] is FALSE
    assert () not in outcomes(result)


def test_identical_labels_match() -> None:
    """Two host-wide metrics combine into one observation."""
    result = run("memory_usage + swap_usage > 100")
    assert values(result) == {(): 110.0}


def test_and_unmatched_labels_false() -> None:
    """`and` is false for label sets present on one side only."""
    result = run('disk_usage{mount="/"} > 90 and cpu_usage{cpu="0"} > 90')
    assert outcomes(result) == {mount("/"): FALSE, make_labels(cpu="0"): FALSE}


def test_or_unmatched_labels_keep_side() -> None:
    """`or` takes the present side's result for one-sided label sets."""
    result = run('disk_usage{mount="/"} > 90 or cpu_usage{cpu="1"} > 90')
    assert outcomes(result) == {mount("/"): TRUE, make_labels(cpu="1"): FALSE}


def test_or_shows_true_side_value() -> None:
    """`or` shows the value of the side that made it true."""
    assert values(run("cpu_usage{cpu='1'} > 90 or cpu_usage{cpu='1'} < 50")) == {make_labels(cpu="1"): 20.0}
    assert values(run("memory_usage > 90 or swap_usage > 40")) == {(): 50.0}


def test_and_with_missing_side_is_nodata() -> None:
    """`and` with one side without data has no data."""
    result = run("cpu_usage > 80 and node_block_lag > 5")
    assert result.observations[0].result is NODATA
    assert result.unknown_metrics == frozenset({"node_block_lag"})


def test_or_with_missing_side_uses_other() -> None:
    """`or` with one side without data is the other side."""
    result = run("memory_usage > 50 or node_block_lag > 5")
    assert outcomes(result) == {(): TRUE}


def test_not_flips_each_series() -> None:
    """`not` negates per series and keeps the value."""
    result = run("not disk_usage > 90")
    assert outcomes(result) == {mount("/"): FALSE, mount("/boot"): TRUE, mount("/data"): FALSE}


def test_division_by_zero_is_false() -> None:
    """Dividing by zero gives NaN, which no ordering comparison accepts."""
    result = run("memory_usage / load_1m > 1")
    assert result.observations[0].result is FALSE
    assert math.isnan(result.observations[0].value or 0.0)


def test_constant_condition() -> None:
    """A condition over numbers only gives a single label-less observation."""
    assert outcomes(run("1 < 2")) == {(): TRUE}


def test_source_error_is_rule_wide_error() -> None:
    """A failing source makes the whole rule an error observation naming it."""
    query = SampleQuery(host_samples(), source_errors={"disk_usage": "collector system timed out"})
    result = evaluate(parse_condition("disk_usage > 90"), query, NOW)
    assert result.rule_wide
    assert result.observations[0].result is ERROR
    assert result.observations[0].message == "source of disk_usage failed: collector system timed out"


def test_source_error_health() -> None:
    """The rule health after a failing source is an error."""
    query = SampleQuery(host_samples(), source_errors={"disk_usage": "down"})
    health = evaluation_health("r", evaluate(parse_condition("disk_usage > 90"), query, NOW))
    assert health.status == "error"


class FailingQuery(SampleQuery):
    """A query whose store is broken."""

    def window(self, selector: Selector, func: str, duration: float, now: float) -> list[SeriesPoint]:  # type: ignore[override]
        raise MetricQueryError("database is locked")


def test_query_failure_is_error() -> None:
    """A query that raises becomes a rule-wide error observation, never an exception."""
    result = evaluate(parse_condition("cpu_usage > 1"), FailingQuery(), NOW)
    assert result.observations[0].result is ERROR
    assert result.observations[0].message == "metric query failed: database is locked"


def test_sample_query_replaces_same_time() -> None:
    """A second sample of a series at the same time replaces the first."""
    query = SampleQuery([Sample.of("x", 1.0, NOW), Sample.of("x", 2.0, NOW)])
    assert query.window(Selector("x"), "count", 60, NOW)[0].value == 1.0
    assert query.window(Selector("x"), "last", 60, NOW)[0].value == 2.0


def test_observations_sorted_by_labels() -> None:
    """Observations come sorted by labels so output is deterministic."""
    labels = [o.labels for o in run("disk_usage > 0").observations]
    assert labels == sorted(labels)

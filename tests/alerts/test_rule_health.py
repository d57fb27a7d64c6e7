"""Rule health after an evaluation: unknown metrics against metrics without data yet."""

from __future__ import annotations

from atlas_tui.alerts.evaluate import Evaluation, Observation, ObservationResult
from atlas_tui.alerts.rules import evaluation_health
from atlas_tui.alerts.sources import KNOWN_METRICS

NO_DATA = Observation((), None, ObservationResult.NODATA, "no data")


def test_unknown_metric_is_error() -> None:
    """A name no collector writes makes the rule unhealthy, naming the metric."""
    evaluation = Evaluation((NO_DATA,), frozenset({"cpu_usge"}), rule_wide=True)
    health = evaluation_health("typo", evaluation, KNOWN_METRICS)
    assert health.status == "error"
    assert health.message == "unknown metric cpu_usge"


def test_known_metric_without_data_is_ok() -> None:
    """Lag without a reference node has no series yet, which is no data, not an error."""
    evaluation = Evaluation((NO_DATA,), frozenset({"node_block_lag"}), rule_wide=True)
    assert evaluation_health("node_lagging", evaluation, KNOWN_METRICS).status == "ok"


def test_catalogue_covers_node_and_probe_metrics() -> None:
    """The catalogue contains the metrics the example config's node and probe rules read."""
    assert {"node_block_lag", "tls_cert_days_left", "cpu_core_usage"} <= KNOWN_METRICS

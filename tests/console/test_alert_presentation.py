"""Tests of the Alerts pane's display models: state text, values, column layout, counts, lines."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from atlas_tui.console.alert_models import (
    AlertCounts,
    AlertDetail,
    AlertRow,
    AlertsSnapshot,
    ChannelStatusRow,
    DeliveryRow,
    RuleProblem,
    TimelineEntry,
)
from atlas_tui.console.alert_presentation import (
    alert_columns,
    alert_row_views,
    banner_text,
    channel_columns,
    channel_row_views,
    count_parts,
    display_state,
    engine_lines,
    format_alert_value,
    next_filter,
)
from atlas_tui.console.detail_presentation import delivery_lines, detail_fields, timeline_lines
from collectors.base import make_labels

NOW = 1_750_000_000.0
_PADDING = 2


def _row(**changes: object) -> AlertRow:
    values: dict[str, object] = {
        "alert_id": "alert_1", "rule_id": "cpu", "rule_name": "CPU high", "severity": "critical",
        "state": "firing", "labels": (), "value": 95.0, "age_seconds": 60.0, "open_incident": True,
    }
    values.update(changes)
    return AlertRow(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ("firing", "firing")),
        ({"acked_by": "alice"}, ("acked by alice", "acknowledged")),
        ({"acked_by": "alice", "silenced": True}, ("silenced", "silenced")),
        ({"state": "pending", "open_incident": False}, ("pending", "pending")),
        ({"state": "resolved", "open_incident": False, "silenced": True}, ("resolved", "resolved")),
        ({"state": "nodata", "open_incident": False}, ("no data", "nodata")),
        ({"state": "error", "open_incident": False}, ("error", "error")),
        ({"state": "strange\x1b[2J", "open_incident": False}, ("strange\N{REPLACEMENT CHARACTER}[2J", "muted")),
    ],
)
def test_display_state(changes: dict[str, object], expected: tuple[str, str]) -> None:
    """Silences and acks outrank `firing`; unknown states are shown escaped and muted."""
    assert display_state(_row(**changes)) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (93.0, "93"), (0.75, "0.75"), (78.49998, "78.5"), (1_500_000.0, "1.5M"),
     (6_291_456.0, "6.3M"), (2e9, "2G"), (-3.0, "-3"), (12345.0, "12,345")],
)
def test_alert_value(value: float | None, text: str) -> None:
    """Values are short: integers plain, decimals to two places, large numbers with a suffix."""
    assert format_alert_value(value) == text


@pytest.mark.parametrize("width", [78, 100, 158, 40])
def test_alert_columns_fit(width: int) -> None:
    """The alert columns plus their padding fit the table width, down to their minimums."""
    columns = alert_columns(width)
    used = sum(column.width + _PADDING for column in columns)
    assert used <= max(width, 71)


def test_alert_columns_name_capped() -> None:
    """On a wide table the alert name stops growing and the labels take the rest."""
    columns = {column.key: column.width for column in alert_columns(300)}
    assert columns["alert"] == 48
    assert columns["labels"] > 48


def test_rows_truncated_to_columns() -> None:
    """CJK names and long labels are cut to their column width with an ellipsis."""
    row = _row(rule_name="ディスク容量が不足 🚨" * 5, labels=make_labels(mount="/" + "x" * 200))
    columns = alert_columns(78)
    view = alert_row_views(AlertsSnapshot(now=NOW, rows=(row,)), "all", columns)[0]
    for column, cell in zip(columns, view.cells, strict=True):
        assert cell_len(cell) <= column.width
    assert view.cells[2].endswith("…")
    assert view.cells[3].endswith("…")


def test_filter_selects_severity() -> None:
    """A severity filter keeps only rows of that severity, in order."""
    rows = (_row(alert_id="alert_1"), _row(alert_id="alert_2", severity="warning"), _row(alert_id="alert_3"))
    snapshot = AlertsSnapshot(now=NOW, rows=rows)
    views = alert_row_views(snapshot, "critical", alert_columns(78))
    assert [view.key for view in views] == ["alert_1", "alert_3"]


def test_filter_order() -> None:
    """`f` cycles all, critical, error, warning, info and back to all."""
    seen = ["all"]
    for _ in range(5):
        seen.append(next_filter(seen[-1]))  # type: ignore[arg-type]
    assert seen == ["all", "critical", "error", "warning", "info", "all"]


def test_count_parts() -> None:
    """Counts list only severities with firing alerts, most severe first."""
    assert count_parts(AlertCounts(critical=2, warning=1)) == [("2 crit", "critical"), ("1 warn", "warning")]


def test_count_parts_none_firing() -> None:
    """No firing alert gives `0 firing`; no read yet gives nothing."""
    assert count_parts(AlertCounts()) == [("0 firing", "muted")]
    assert count_parts(None) == []


def test_banner_text() -> None:
    """The banner names the outage length and where critical alerts still go."""
    assert banner_text(420.0) == "All notification channels down for 7m 0s; critical alerts go to syslog only"


def test_channel_row() -> None:
    """A failing channel shows its error class and message, queue depth and time to retry."""
    snapshot = AlertsSnapshot(
        now=NOW,
        channels=(
            ChannelStatusRow("slack", "failing", last_error_class="read_timeout", last_error="no answer",
                             queue_depth=3, next_retry_at=NOW + 40),
        ),
    )
    columns = channel_columns(100)
    view = channel_row_views(snapshot, columns)[0]
    cells = dict(zip((column.key for column in columns), view.cells, strict=True))
    assert cells == {
        "channel": "slack", "state": "failing", "success": "never", "error": "read_timeout: no answer",
        "queue": "3", "retry": "in 40s",
    }
    assert view.state == "failing"


def test_misconfigured_channel_no_retry() -> None:
    """A misconfigured channel waits for a config change, so it shows no retry time."""
    row = ChannelStatusRow("hook", "misconfigured", last_error_class="http_not_found", next_retry_at=NOW - 5)
    cells = channel_row_views(AlertsSnapshot(now=NOW, channels=(row,)), channel_columns(78))[0].cells
    assert cells[5] == "—"


def test_channel_success_age() -> None:
    """A working channel shows how long ago it last delivered and no retry."""
    snapshot = AlertsSnapshot(now=NOW, channels=(ChannelStatusRow("email", "ok", last_success_at=NOW - 125),))
    cells = channel_row_views(snapshot, channel_columns(78))[0].cells
    assert cells[2] == "2m 5s ago"
    assert cells[5] == "—"


def test_engine_lines() -> None:
    """The rule line names the last evaluation and missed ones, then each rule in error."""
    snapshot = AlertsSnapshot(
        now=NOW, last_evaluation=NOW - 30, missed_evaluations=3,
        rule_problems=tuple(RuleProblem(f"r{i}", "unknown metric x") for i in range(5)),
    )
    lines = engine_lines(snapshot)
    assert lines[0] == ("Rules: evaluated 30s ago · missed evaluations 3", "warning")
    assert lines[1] == ("rule r0 error: unknown metric x", "error")
    assert lines[-1][0].startswith("2 more rules in error")
    assert len(lines) == 5


def _detail() -> AlertDetail:
    return AlertDetail(
        row=_row(acked_by="alice", labels=make_labels(host="web-1")),
        now=NOW,
        fingerprint="0123456789abcdef",
        condition="cpu_usage > 90",
        annotations=(("runbook_url", "https://runbooks.example.org/cpu"),),
        fired_at=NOW - 60,
        ack_at=NOW - 10,
        ack_message="looking",
        timeline=(
            TimelineEntry(NOW - 60, "firing", "inactive", "firing", 95.0),
            TimelineEntry(NOW - 10, "acknowledged", actor="alice", message="looking"),
        ),
        deliveries=(
            DeliveryRow("email", "firing", "delivered", 1, NOW - 60, delivered_at=NOW - 59),
            DeliveryRow("slack", "firing", "pending", 2, NOW - 60, next_attempt_at=NOW + 30,
                        last_error_class="http_rate_limited", last_error="HTTP 429"),
            DeliveryRow("slack", "acknowledge", "pending", 0, NOW - 10, next_attempt_at=NOW - 10),
        ),
    )


def test_detail_fields() -> None:
    """Details list state, labels, the rule, the runbook and the acknowledgement."""
    fields = {name: value for name, value, _status in detail_fields(_detail())}
    assert fields["State"] == "acked by alice, firing for 1m 0s since 2025-06-15 15:05:40 UTC"
    assert fields["Labels"] == "host=web-1"
    assert fields["Rule"] == "cpu: cpu_usage > 90"
    assert fields["Runbook"] == "https://runbooks.example.org/cpu"
    assert fields["Acked"] == "by alice at 2025-06-15 15:06:30 UTC: looking"


def test_timeline_lines() -> None:
    """Each event shows its UTC time, kind, transition, value and actor."""
    lines = [text for text, _status in timeline_lines(_detail())]
    assert lines[0] == "2025-06-15 15:05:40  firing         inactive → firing  value 95"
    assert lines[1] == "2025-06-15 15:06:30  acknowledged   by alice: looking"


def test_delivery_lines() -> None:
    """Deliveries show the outcome per channel: time, error class and retry, or still queued."""
    lines = delivery_lines(_detail())
    assert lines[0][0].endswith("1 attempt   at 2025-06-15 15:05:41 UTC")
    assert lines[1][0].endswith("http_rate_limited: HTTP 429; next try in 30s")
    assert lines[1][1] == "failing"
    assert lines[2][0].endswith("queued, not tried yet")

"""The channel-neutral `Notice`, groups, and the shared wording of headlines and values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from atlas_tui.alerts.channels.message import Ack, Notice, NoticeGroup, as_group
from atlas_tui.alerts.channels.render import format_rfc3339, format_value, headline
from tests.alerts.receivers import sample_notice

NOW = 1736846000.0


def test_notice_json_round_trip() -> None:
    """A notice stored as JSON in the outbox reads back equal."""
    notice = sample_notice(ack=Ack(by="alice", at=NOW, message="looking"), note="resolved during downtime")
    assert Notice.model_validate_json(notice.model_dump_json()) == notice


def test_resolved_needs_end_time() -> None:
    """A resolved notice without ends_at is rejected."""
    with pytest.raises(ValidationError, match="ends_at"):
        sample_notice(kind="resolved")


def test_acknowledge_needs_ack() -> None:
    """An acknowledge notice without the ack is rejected."""
    with pytest.raises(ValidationError, match="ack"):
        sample_notice(kind="acknowledge")


def test_unknown_kind_rejected() -> None:
    """Only the five kinds are accepted."""
    with pytest.raises(ValidationError):
        sample_notice(kind="escalate")


def test_as_group_wraps_single() -> None:
    """A single notice becomes a group of one with the same id, grouped by rule."""
    group = as_group(sample_notice())
    assert group.notice_id == "ntc_0001"
    assert group.group_labels == {"alertname": "high_cpu"}


def test_empty_group_rejected() -> None:
    """A group needs at least one notice."""
    with pytest.raises(ValidationError):
        NoticeGroup(notice_id="g", notices=[])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "[FIRING] High CPU Usage on atlas-01 (critical)"),
        ({"kind": "resolved", "ends_at": NOW}, "[RESOLVED] High CPU Usage on atlas-01 (critical)"),
        ({"kind": "repeat"}, "[STILL FIRING] High CPU Usage on atlas-01 (critical)"),
        ({"labels": {"mount": "/"}, "rule_name": ""}, "[FIRING] high_cpu on mount=/ (critical)"),
        ({"labels": {}}, "[FIRING] High CPU Usage (critical)"),
    ],
)
def test_headline_single(overrides: dict[str, object], expected: str) -> None:
    """One notice's headline names kind, rule, instance and severity."""
    assert headline(as_group(sample_notice(**overrides))) == expected


def test_headline_group() -> None:
    """A group's headline counts each kind and takes the highest severity."""
    group = NoticeGroup(notice_id="g", notices=[
        sample_notice(severity="warning"),
        sample_notice(notice_id="n2", severity="critical"),
        sample_notice(notice_id="n3", kind="resolved", ends_at=NOW, severity="info"),
    ])
    assert headline(group) == "[FIRING:2 RESOLVED:1] High CPU Usage (critical)"


@pytest.mark.parametrize(
    ("value", "text"),
    [(93.4, "93.4"), (0.000123, "0.000123"), (12345678.0, "12,345,678"), (float("nan"), "nan"), (5.0, "5")],
)
def test_format_value(value: float, text: str) -> None:
    """Values keep six significant digits and large ones are whole numbers."""
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("ts", "text"), [(1736845920.0, "2025-01-14T09:12:00Z"), (1736845920.25, "2025-01-14T09:12:00.250Z")]
)
def test_format_rfc3339(ts: float, text: str) -> None:
    """RFC 3339 times are UTC with a Z, with milliseconds only when present."""
    assert format_rfc3339(ts) == text

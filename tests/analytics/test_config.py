"""The `analytics` config section."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from atlas_tui.analytics.config import AnalyticsConfig
from atlas_tui.config import Config


def test_issue_example_loads() -> None:
    """The documented example section loads with a 7-day late window."""
    config = Config.model_validate(
        {"analytics": {"apps": {"atlas-wallet": {"ingest_key": "pk_atlas_wallet_demo"}},
                       "timezone": "UTC", "late_events_max_age": "7d"}}
    )  # fmt: skip

    assert config.analytics.late_events_max_age == 7 * 86400.0
    assert config.analytics.app_for_key("pk_atlas_wallet_demo") == "atlas-wallet"


def test_shared_key_rejected() -> None:
    """Two apps with one ingest key are rejected, naming both apps."""
    apps = {"a": {"ingest_key": "pk_same_key"}, "b": {"ingest_key": "pk_same_key"}}

    with pytest.raises(ValidationError, match="apps a and b share an ingest key"):
        AnalyticsConfig.model_validate({"apps": apps})


def test_unknown_timezone_rejected() -> None:
    """A time zone that is not an IANA name is rejected."""
    with pytest.raises(ValidationError, match="unknown time zone"):
        AnalyticsConfig.model_validate({"timezone": "Mars/Olympus"})


def test_unknown_key_rejected() -> None:
    """A misspelt key in the section is rejected."""
    with pytest.raises(ValidationError, match="extra"):
        AnalyticsConfig.model_validate({"late_event_max_age": "7d"})

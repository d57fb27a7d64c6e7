"""Conversions of API bodies for `RemoteSource`, and the checks of `--connect` and token files; no server, no terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_tui.cli_alerts import AlertHistoryView, AlertView, DeliveryView
from atlas_tui.console.remote_client import (
    ApiResponseError,
    RemoteError,
    TokenFileError,
    is_private_link,
    parse_target,
    read_token,
)
from atlas_tui.console.remote_views import alert_detail, alert_record, parse_body, range_params
from storage.alerts import AlertRecord

NOW = 1_750_000_000.0

RECORD = AlertRecord(
    alert_id="alert_7", fingerprint="0123456789abcdef", rule_id="disk_full", rule_name="Disk full",
    severity="critical", labels={"alertname": "disk_full", "mount": "/data"}, state="firing", value=95.5,
    message=None, active_since=NOW - 300, fired_at=NOW - 240, resolved_at=None, incident_id="0123456789abcdef-2",
    ack_by="api:ops", ack_at=NOW - 60, ack_message="on it", silenced=False, last_eval=NOW - 5, updated_at=NOW - 5,
)  # fmt: skip
"""An acknowledged firing alert as the store returns it."""


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://atlas-1.example.org:8443", "https://atlas-1.example.org:8443"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://atlas-1.example.org", "https://atlas-1.example.org:443"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_connect_url_accepted(url: str, base: str) -> None:
    """A URL with a scheme and host becomes `scheme://host:port`."""
    assert parse_target(url) == base


@pytest.mark.parametrize(
    "url",
    ["ftp://host:21", "atlas-1:8080", "http://host:8080/api", "https://user@host:8443", "http://host:99999", "http://"],
)
def test_connect_url_rejected(url: str) -> None:
    """A URL that is not a bare http(s) origin is rejected with the accepted form."""
    with pytest.raises(RemoteError, match="use http://HOST:PORT or https://HOST:PORT"):
        parse_target(url)


def test_token_first_line(tmp_path: Path) -> None:
    """The token is the first line of the file, without surrounding space."""
    path = tmp_path / "token"
    path.write_text("  atlas_abc  \nnote: created for the console\n", encoding="utf-8")
    assert read_token(path) == "atlas_abc"


def test_empty_token_file(tmp_path: Path) -> None:
    """An empty token file is rejected with its path and how to create a token."""
    path = tmp_path / "token"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match=f"{path} is empty.*atlas api token create"):
        read_token(path)


def test_unexpected_body_named() -> None:
    """A body of the wrong shape raises `ApiResponseError` naming the request and the field."""
    with pytest.raises(ApiResponseError, match=r"GET /api/alerts returned an unexpected body \(0\.alert_id"):
        parse_body(list[AlertView], [{"state": "firing"}], "GET /api/alerts")


def test_alert_record_round_trip() -> None:
    """An `AlertView` converts back to the record it was made from."""
    assert alert_record(AlertView.from_record(RECORD)) == RECORD


def test_skipped_delivery_is_delivered() -> None:
    """A notice the API lists as `skipped` is a delivered row marked skipped, as in the store."""
    view = DeliveryView(
        notice_id="n1", channel="slack", kind="resolved", status="skipped", attempts=0,
        created_at=NOW, created_at_iso=None, last_attempt_at=None, last_attempt_at_iso=None,
        delivered_at=NOW, delivered_at_iso=None, last_error_class=None, last_error=None, http_status=None,
    )  # fmt: skip
    history = AlertHistoryView(alert=AlertView.from_record(RECORD), events=[], deliveries=[view])
    (row,) = alert_detail(history, NOW).deliveries
    assert (row.status, row.skipped, row.delivered_at) == ("delivered", True, NOW)


def test_range_params_exact() -> None:
    """Times go as the float's repr, labels sorted, and the step in whole milliseconds."""
    params = range_params("disk_usage", NOW - 300.0, NOW, {"mount": "/data", "device": "sda1"})
    assert params == [
        ("name", "disk_usage"),
        ("from", "1749999700.0"),
        ("to", "1750000000.0"),
        ("label", "device:sda1"),
        ("label", "mount:/data"),
        ("step", "1256ms"),
    ]


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("https://atlas-1.example.org:8443", True),
        ("http://127.0.0.1:8080", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8080", True),
        ("http://atlas-1.example.org:8080", False),
        ("http://10.0.0.5:8080", False),
    ],
)
def test_private_link(url: str, private: bool) -> None:
    """Only https, or plain http to a loopback address, keeps the token off the network in clear text."""
    assert is_private_link(url) is private

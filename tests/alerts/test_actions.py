"""Operator actions: acknowledge, unacknowledge, silences and the recorded actor."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui.alerts import actions
from atlas_tui.config import Config
from atlas_tui.alerts.silences import InvalidSilenceError, format_matchers, parse_matchers
from storage.alerts import get_silence, list_silences

from tests.alerts.alert_harness import T0, Harness, cpu_rule, make_config


@pytest.fixture
def firing(tmp_path: Path) -> Iterator[Harness]:
    """A store with one firing `high_cpu` alert and its service stopped, as without a daemon."""
    h = Harness(tmp_path, make_config([cpu_rule()]))
    h.step(0, 95)
    h.service.close()
    yield h
    h.close()


def test_ack_without_daemon(firing: Harness) -> None:
    """An acknowledgement is stored with user, time and message while no service runs."""
    record = actions.acknowledge(firing.conn, "alert_1", by="alice", message="on it", now=T0 + 5, config=firing.config)
    assert (record.ack_by, record.ack_at, record.ack_message) == ("alice", T0 + 5, "on it")
    assert firing.kinds() == ["firing", "acknowledge"]


def test_ack_without_daemon_config(firing: Harness) -> None:
    """An ack made with the default config still queues an acknowledge notice.

    `atlas alerts ack` is often run without the daemon's --config. The notice goes to
    the channels that received the firing notice, as the stored alert records them.
    """
    actions.acknowledge(firing.conn, "alert_1", by="alice", message="on it", now=T0 + 5, config=Config())
    assert firing.kinds() == ["firing", "acknowledge"]
    assert [row["channel"] for row in firing.outbox()] == ["hook", "hook"]


def test_ack_by_fingerprint(firing: Harness) -> None:
    """An alert can be named by its fingerprint or a unique prefix of it."""
    fp = firing.alert().fingerprint
    assert actions.acknowledge(firing.conn, fp, by="a", message="", now=T0, config=firing.config).alert_id == "alert_1"
    assert actions.acknowledge(firing.conn, fp[:6], by="b", message="", now=T0, config=firing.config).ack_by == "b"


def test_second_ack_replaces_message(firing: Harness) -> None:
    """Acknowledging again replaces the message and queues no second acknowledge notice."""
    actions.acknowledge(firing.conn, "alert_1", by="alice", message="first", now=T0 + 5, config=firing.config)
    record = actions.acknowledge(firing.conn, "alert_1", by="bob", message="second", now=T0 + 6, config=firing.config)
    assert (record.ack_by, record.ack_message) == ("bob", "second")
    assert firing.kinds() == ["firing", "acknowledge"]


def test_unack_clears(firing: Harness) -> None:
    """Unacknowledging removes the ack and records who did it."""
    actions.acknowledge(firing.conn, "alert_1", by="alice", message="", now=T0 + 5, config=firing.config)
    record = actions.unacknowledge(firing.conn, "alert_1", by="bob", now=T0 + 9, config=firing.config)
    assert record.ack_by is None
    last = firing.history("alert_1")[-1]
    assert (last.kind, last.actor) == ("unacknowledged", "bob")


def test_unack_without_ack(firing: Harness) -> None:
    """Unacknowledging an alert that is not acknowledged raises AlertStateError."""
    with pytest.raises(actions.AlertStateError, match="no acknowledged open incident"):
        actions.unacknowledge(firing.conn, "alert_1", by="bob", now=T0, config=firing.config)


@pytest.mark.parametrize("ref", ["alert_99", "ffff", "zz"])
def test_unknown_alert(firing: Harness, ref: str) -> None:
    """An unknown alert raises AlertNotFoundError telling the user how to list ids."""
    with pytest.raises(actions.AlertNotFoundError, match="atlas alerts list"):
        actions.acknowledge(firing.conn, ref, by="a", message="", now=T0, config=firing.config)


def test_ack_silenced_no_notice(firing: Harness) -> None:
    """Acknowledging a silenced alert records the ack but queues no notice."""
    actions.create_silence(firing.conn, "rule=high_cpu", starts_at=T0, ends_at=T0 + 600, created_by="bob", comment="")
    record = actions.acknowledge(firing.conn, "alert_1", by="alice", message="", now=T0 + 5, config=firing.config)
    assert record.ack_by == "alice"
    assert firing.kinds() == ["firing"]


def test_silence_marks_at_once(firing: Harness) -> None:
    """Creating a silence marks matching alerts without waiting for a cycle; expiring unmarks."""
    silence = actions.create_silence(
        firing.conn, "rule=high_cpu", starts_at=T0, ends_at=T0 + 600, created_by="bob", comment="deploy"
    )
    assert firing.alert().silenced is True

    expired = actions.expire_silence(firing.conn, silence.silence_id, now=T0 + 60, by="carol")
    assert (expired.expired_at, expired.expired_by) == (T0 + 60, "carol")
    assert firing.alert().silenced is False
    kinds = [(e.kind, e.actor) for e in firing.history("alert_1")]
    assert kinds[-2:] == [("silenced", "bob"), ("unsilenced", "carol")]


def test_pending_silence_waits(firing: Harness) -> None:
    """A silence that starts later is listed but marks nothing yet."""
    silence = actions.create_silence(
        firing.conn, "rule=high_cpu", starts_at=T0 + 300, ends_at=T0 + 600, created_by="bob", comment="", now=T0
    )
    assert firing.alert().silenced is False
    assert [s.silence_id for s in list_silences(firing.conn, T0)] == [silence.silence_id]
    assert silence.status(T0) == "pending"


def test_silence_listing(firing: Harness) -> None:
    """Expired silences are listed only on request, after the current ones."""
    old = actions.create_silence(firing.conn, "rule=a", starts_at=T0, ends_at=T0 + 60, created_by="x", comment="")
    current = actions.create_silence(firing.conn, "rule=b", starts_at=T0, ends_at=T0 + 600, created_by="x", comment="")
    now = T0 + 120
    assert [s.silence_id for s in list_silences(firing.conn, now)] == [current.silence_id]
    everything = list_silences(firing.conn, now, include_expired=True)
    assert [s.silence_id for s in everything] == [current.silence_id, old.silence_id]


def test_expire_unknown_silence(firing: Harness) -> None:
    """Expiring a silence that does not exist raises SilenceNotFoundError."""
    with pytest.raises(actions.SilenceNotFoundError, match="atlas alerts silences"):
        actions.expire_silence(firing.conn, "silence_42", now=T0, by="a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rule=high_cpu", '{rule="high_cpu"}'),
        ('{host="atlas-01"}', '{host="atlas-01"}'),
        ("host=atlas-01, mount=~'/data.*'", '{host="atlas-01", mount=~"/data.*"}'),
        ('{note="a,b", x!="y"}', '{note="a,b", x!="y"}'),
        (r'{path=~"\d+"}', r'{path=~"\\d+"}'),
    ],
)
def test_matchers_canonical(text: str, expected: str) -> None:
    """Matchers in any accepted spelling are stored in one canonical form."""
    assert format_matchers(parse_matchers(text)) == expected


def test_matchers_round_trip() -> None:
    """The canonical form parses back to the same matchers."""
    matchers = parse_matchers(r'{a="x\"y", b=~"\d+", c!~"q"}')
    assert parse_matchers(format_matchers(matchers)) == matchers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one label matcher"),
        ("{}", "at least one label matcher"),
        ("host", "expected label=value"),
        ('host="x', "quote is not closed"),
        ("host=~'('", "invalid regex"),
        ('x!="y"', "match every alert"),
        ("a=~'.*'", "match every alert"),
    ],
)
def test_matchers_rejected(text: str, message: str) -> None:
    """Malformed or match-everything matchers raise InvalidSilenceError naming the problem."""
    with pytest.raises(InvalidSilenceError, match=message):
        parse_matchers(text)


def test_silence_times_checked(firing: Harness) -> None:
    """A silence that ends before it starts is rejected with the fix."""
    with pytest.raises(InvalidSilenceError, match="positive duration"):
        actions.create_silence(firing.conn, "rule=x", starts_at=T0, ends_at=T0, created_by="a", comment="")
    assert get_silence(firing.conn, "silence_1") is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SUDO_USER": "alice", "USER": "root"}, "alice"),
        ({"USER": "bob"}, "bob"),
        ({}, pwd.getpwuid(os.getuid()).pw_name),
    ],
)
def test_default_actor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    """The actor is $SUDO_USER, else $USER, else the name of the process's user id."""
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.delenv("USER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert actions.default_actor() == expected

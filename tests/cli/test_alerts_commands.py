"""`atlas alerts …` against a real store whose alerts come from a real evaluation cycle."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from atlas_tui.alerts.service import AlertService
from atlas_tui.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, build_parser, main
from atlas_tui.config import load_config
from collectors.base import Sample
from storage.alerts import AlertRecord
from storage.db import open_store
from storage.metrics import write_samples

NOW = 1_750_000_000.0
"""Time of the first evaluation cycle."""

CONFIG = {
    "alert_rules": [
        {"id": "high_cpu", "name": "High CPU", "condition": "cpu_usage > 80", "severity": "critical",
         "channels": ["hook"]},
        {"id": "disk_full", "name": "Disk full", "condition": "disk_usage > 90", "severity": "warning",
         "for": "5m", "channels": ["hook"]},
    ],
    # Nothing listens on port 9 and no sender runs: notices stay pending in the outbox.
    "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
}


@dataclasses.dataclass(frozen=True)
class Seeded:
    """A data directory with alerts and the config that produced them."""

    data_dir: Path
    config: Path

    def args(self, *argv: str) -> list[str]:
        """Return `argv` followed by --data-dir and --config."""
        return [*argv, "--data-dir", str(self.data_dir), "--config", str(self.config)]


def seed_alerts(tmp_path: Path, *, resolve_cpu: bool = False) -> Seeded:
    """Write samples and run the alert service once: high_cpu fires, disk_full{mount="/"} is pending.

    With `resolve_cpu`, a second cycle 30 s later reads CPU at 10 % and resolves high_cpu.
    """
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG), encoding="utf-8")
    data_dir = tmp_path / "data"
    conn = open_store(data_dir)
    write_samples(conn, [
        Sample.of("cpu_usage", 95.0, NOW - 1.0),
        Sample.of("disk_usage", 97.0, NOW - 1.0, mount="/"),
        Sample.of("disk_usage", 40.0, NOW - 1.0, mount="/var"),
    ])
    service = AlertService(load_config(config_path), data_dir)
    service.evaluate_once(NOW)
    if resolve_cpu:
        write_samples(conn, [Sample.of("cpu_usage", 10.0, NOW + 29.0)])
        service.evaluate_once(NOW + 30.0)
    service.close()
    conn.close()
    return Seeded(data_dir, config_path)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config; the SSH user is alice."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    """A store with high_cpu firing and disk_full pending."""
    return seed_alerts(tmp_path)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def _alerts(capsys: pytest.CaptureFixture[str], seeded: Seeded, *extra: str) -> dict[str, dict[str, object]]:
    items = _json(capsys, seeded.args("alerts", "list", "--json", *extra))
    assert isinstance(items, list)
    return {str(item["rule_id"]): item for item in items}


def _id(capsys: pytest.CaptureFixture[str], seeded: Seeded, rule_id: str) -> str:
    return str(_alerts(capsys, seeded, "--all")[rule_id]["alert_id"])


# --- list ---------------------------------------------------------------------------------


def test_list_table_firing_first(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The table has a header, then the firing critical alert, then the pending one."""
    code = main(seeded.args("alerts", "list"))

    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_OK
    assert lines[0].split() == ["ID", "SEVERITY", "STATE", "RULE", "LABELS", "VALUE", "AGE"]
    assert lines[1].split()[1:6] == ["critical", "firing", "high_cpu", "-", "95.00"]
    assert lines[2].split()[1:6] == ["warning", "pending", "disk_full", "mount=/", "97.00"]
    assert len(lines) == 3


def test_list_json_fields(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """Each JSON item has every AlertRecord field, and each time also as ISO 8601 UTC."""
    item = _alerts(capsys, seeded)["high_cpu"]

    record_fields = {f.name for f in dataclasses.fields(AlertRecord)}
    assert record_fields <= set(item)
    assert item["fired_at"] == NOW
    assert item["fired_at_iso"] == "2025-06-15T15:06:40Z"
    assert datetime.fromisoformat(str(item["fired_at_iso"])) == datetime.fromtimestamp(NOW, tz=timezone.utc)
    assert item["resolved_at"] is None
    assert item["resolved_at_iso"] is None
    assert item["labels"] == {"alertname": "high_cpu"}
    assert item["state"] == "firing"
    assert item["silenced"] is False


def test_list_state_filter(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """--state pending lists only the pending alert."""
    assert set(_alerts(capsys, seeded, "--state", "pending")) == {"disk_full"}


def test_list_severity_filter(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """--severity critical lists only the critical alert."""
    assert set(_alerts(capsys, seeded, "--severity", "critical")) == {"high_cpu"}


def test_list_all_includes_resolved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--state resolved finds the resolved alert; the default list still shows only active ones."""
    seeded = seed_alerts(tmp_path, resolve_cpu=True)

    resolved = _alerts(capsys, seeded, "--state", "resolved")
    assert set(resolved) == {"high_cpu"}
    assert resolved["high_cpu"]["resolved_at"] == NOW + 30.0
    assert set(_alerts(capsys, seeded, "--all")) == {"high_cpu", "disk_full"}


def test_list_bad_state_exits_2(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --state value exits 2 listing the accepted states."""
    with pytest.raises(SystemExit) as caught:
        main(seeded.args("alerts", "list", "--state", "burning"))

    assert caught.value.code == EXIT_USAGE
    assert "firing" in capsys.readouterr().err


def test_list_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store without alerts prints a note, and `[]` with --json."""
    open_store(tmp_path / "data").close()

    assert main(["alerts", "list", "--data-dir", str(tmp_path / "data")]) == EXIT_OK
    assert "no alerts; --all includes inactive ones" in capsys.readouterr().out
    assert _json(capsys, ["alerts", "list", "--json", "--data-dir", str(tmp_path / "data")]) == []


def test_missing_store_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a store file, exit 1 naming the path and how to create it."""
    code = main(["alerts", "list", "--data-dir", str(tmp_path / "none")])

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert f"no store at {tmp_path / 'none' / 'atlas.db'}" in err
    assert "atlas daemon" in err


# --- ack / unack --------------------------------------------------------------------------


def test_ack_records_user(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """`ack ID -m` stores $USER and the message, visible in `list --json`."""
    alert_id = _id(capsys, seeded, "high_cpu")

    code = main(seeded.args("alerts", "ack", alert_id, "-m", "restarting the indexer"))

    assert code == EXIT_OK
    assert capsys.readouterr().out == f"{alert_id} acknowledged by alice\n"
    item = _alerts(capsys, seeded)["high_cpu"]
    assert item["ack_by"] == "alice"
    assert item["ack_message"] == "restarting the indexer"
    assert item["ack_at_iso"] is not None


def test_ack_sudo_user(seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Under sudo, the acknowledging user is $SUDO_USER, not root."""
    monkeypatch.setenv("SUDO_USER", "bob")
    monkeypatch.setenv("USER", "root")

    main(seeded.args("alerts", "ack", _id(capsys, seeded, "high_cpu")))

    assert _alerts(capsys, seeded)["high_cpu"]["ack_by"] == "bob"


def test_ack_by_fingerprint(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The alert can be named by its fingerprint."""
    fingerprint = str(_alerts(capsys, seeded)["high_cpu"]["fingerprint"])

    assert main(seeded.args("alerts", "ack", fingerprint)) == EXIT_OK
    assert _alerts(capsys, seeded)["high_cpu"]["ack_by"] == "alice"


def test_ack_unknown_id(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown id exits 1 with the id and the command that lists ids."""
    code = main(seeded.args("alerts", "ack", "alert_99", "-m", "x"))

    assert code == EXIT_FAILURE
    assert 'alert alert_99 not found; run "atlas alerts list --all" to see ids' in capsys.readouterr().err


def test_ack_pending_rejected(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """Acknowledging a pending alert exits 1 naming the id and its state."""
    alert_id = _id(capsys, seeded, "disk_full")

    code = main(seeded.args("alerts", "ack", alert_id))

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert f"cannot acknowledge {alert_id}" in err
    assert "is pending" in err


def test_ack_shown_in_table(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The table's state column shows who acknowledged."""
    main(seeded.args("alerts", "ack", _id(capsys, seeded, "high_cpu")))
    capsys.readouterr()

    main(seeded.args("alerts", "list"))

    assert "firing (acked by alice)" in capsys.readouterr().out


def test_unack_clears(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """`unack` removes the acknowledgement; a second unack exits 1."""
    alert_id = _id(capsys, seeded, "high_cpu")
    main(seeded.args("alerts", "ack", alert_id))

    assert main(seeded.args("alerts", "unack", alert_id)) == EXIT_OK
    assert _alerts(capsys, seeded)["high_cpu"]["ack_by"] is None
    assert main(seeded.args("alerts", "unack", alert_id)) == EXIT_FAILURE


# --- history ------------------------------------------------------------------------------


def test_history_json(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """History lists the transition and the ack with actor and message, and the queued notices."""
    alert_id = _id(capsys, seeded, "high_cpu")
    main(seeded.args("alerts", "ack", alert_id, "-m", "on it"))

    history = _json(capsys, seeded.args("alerts", "history", alert_id, "--json"))

    assert isinstance(history, dict)
    events = history["events"]
    assert [e["kind"] for e in events] == ["firing", "acknowledged"]
    assert (events[0]["from_state"], events[0]["to_state"], events[0]["value"]) == ("inactive", "firing", 95.0)
    assert (events[1]["actor"], events[1]["message"]) == ("alice", "on it")
    assert [(d["channel"], d["kind"], d["status"]) for d in history["deliveries"]] == [
        ("hook", "firing", "pending"),
        ("hook", "acknowledge", "pending"),
    ]


def test_history_table(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The text history shows each event with from → to, and the notices per channel."""
    alert_id = _id(capsys, seeded, "high_cpu")

    assert main(seeded.args("alerts", "history", alert_id)) == EXIT_OK

    out = capsys.readouterr().out
    assert "2025-06-15 15:06:40  firing  inactive → firing  95.00  engine" in out
    assert "notifications:" in out
    assert "hook     firing  pending" in out


def test_history_unknown_id(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown id exits 1 with the same message as ack."""
    code = main(seeded.args("alerts", "history", "alert_99"))

    assert code == EXIT_FAILURE
    assert 'alert alert_99 not found; run "atlas alerts list --all" to see ids' in capsys.readouterr().err


# --- silences -----------------------------------------------------------------------------


def test_silence_created(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """`silence --match --for -c` stores matchers, a 2 h window, the user and the comment."""
    code = main(seeded.args("alerts", "silence", "--match", "rule=disk_full", "--match", 'mount="/"',
                            "--for", "2h", "-c", "disk swap"))

    assert code == EXIT_OK
    assert capsys.readouterr().out.startswith('silence_1 silences {rule="disk_full", mount="/"} until ')
    [silence] = _json(capsys, seeded.args("alerts", "silences", "--json"))  # type: ignore[misc]
    assert silence["ends_at"] - silence["starts_at"] == 7200.0
    assert (silence["created_by"], silence["comment"]) == ("alice", "disk swap")


def test_silence_marks_alert(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """A matching alert is listed as silenced; the other is not."""
    main(seeded.args("alerts", "silence", "--match", 'host=~".*"', "--match", "rule=disk_full",
                     "--for", "30m", "-c", "maintenance"))

    alerts = _alerts(capsys, seeded)
    assert alerts["disk_full"]["silenced"] is True
    assert alerts["high_cpu"]["silenced"] is False


def test_silence_regex_matcher(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """A regex matcher on the rule label silences the matching alert."""
    main(seeded.args("alerts", "silence", "--match", 'rule=~"high_.*"', "--for", "1h", "-c", "deploy"))

    assert _alerts(capsys, seeded)["high_cpu"]["silenced"] is True


@pytest.mark.parametrize("matcher", ['mount="/', "rule", 'rule=~"("', 'mount=""'])
def test_silence_bad_matcher(matcher: str, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed or match-everything matcher exits 2 naming the matcher."""
    code = main(seeded.args("alerts", "silence", "--match", matcher, "--for", "1h", "-c", "x"))

    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "atlas alerts silence:" in err
    assert "matcher" in err


@pytest.mark.parametrize("duration", ["0s", "two hours"])
def test_silence_bad_duration(duration: str, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """A zero or unreadable --for exits 2 with an example duration."""
    with pytest.raises(SystemExit) as caught:
        main(seeded.args("alerts", "silence", "--match", "rule=x", "--for", duration, "-c", "x"))

    assert caught.value.code == EXIT_USAGE
    assert "such as 30" in capsys.readouterr().err


def test_unsilence_expires(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """`unsilence` ends the silence: gone from the default list, expired in --all, alert unmarked."""
    main(seeded.args("alerts", "silence", "--match", "rule=disk_full", "--for", "2h", "-c", "x"))

    assert main(seeded.args("alerts", "unsilence", "silence_1")) == EXIT_OK
    assert _json(capsys, seeded.args("alerts", "silences", "--json")) == []
    [expired] = _json(capsys, seeded.args("alerts", "silences", "--all", "--json"))  # type: ignore[misc]
    assert expired["expired_at"] is not None
    assert _alerts(capsys, seeded)["disk_full"]["silenced"] is False


def test_silences_table(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """The silences table shows id, matchers, time left, user and comment."""
    main(seeded.args("alerts", "silence", "--match", "rule=disk_full", "--for", "2h", "-c", "disk swap"))
    capsys.readouterr()

    main(seeded.args("alerts", "silences"))

    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith('silence_1  {rule="disk_full"}  active, 1h59m left')
    assert row.endswith("alice       disk swap")


def test_unsilence_unknown(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown silence id exits 1 naming it."""
    code = main(seeded.args("alerts", "unsilence", "silence_7"))

    assert code == EXIT_FAILURE
    assert "silence silence_7 not found" in capsys.readouterr().err


# --- parser -------------------------------------------------------------------------------


def test_every_option_has_help() -> None:
    """Every argument of the alerts, notify and config subcommands has help text."""
    commands = _subparsers(build_parser())
    missing = [
        f"{name} {action.dest}"
        for top in ("alerts", "notify", "config")
        for name, parser in _subparsers(commands[top]).items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]

    assert missing == []


def test_alerts_needs_action() -> None:
    """`atlas alerts` without an action exits 2."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["alerts"])

    assert caught.value.code == EXIT_USAGE


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_silence_empty_comment_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A silence needs a comment saying why; a blank one exits 2 naming the fix."""
    with pytest.raises(SystemExit) as caught:
        main(["alerts", "silence", "--match", "rule=high_cpu", "--for", "1h", "-c", "  ", "--data-dir", str(tmp_path)])
    assert caught.value.code == 2
    assert "the comment is empty; say why the alerts are silenced" in capsys.readouterr().err


def test_ack_message_too_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI takes the same 2000-character limit on ack notes as the API."""
    with pytest.raises(SystemExit) as caught:
        main(["alerts", "ack", "alert_1", "-m", "x" * 2001, "--data-dir", str(tmp_path)])
    assert caught.value.code == 2
    assert "shorten it to at most 2000" in capsys.readouterr().err

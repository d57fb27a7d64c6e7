"""`backup-manager` records its runs: backup rows per set, `logs`, `status` next runs, and `schedule`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.cli_backup import EXIT_FAILURE, EXIT_LOCKED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, main
from storage.backup_runs import BackupRun, recent_runs
from storage.db import DB_FILENAME, connect

from tests.backup.conftest import CLI_PASSPHRASE, build_tree, run_cli

pytestmark = pytest.mark.usefixtures("cli_environment")


def write_config(tmp_path: Path, sets: list[dict[str, object]], **backup: object) -> Path:
    path = tmp_path / "config.json"
    section = {"repository": str(tmp_path / "repo"), "sets": sets, **backup}
    path.write_text(json.dumps({"backup": section}), encoding="utf-8")
    return path


def stored_runs(tmp_path: Path) -> list[BackupRun]:
    conn = connect(tmp_path / "data" / DB_FILENAME)
    try:
        return recent_runs(conn, 100)
    finally:
        conn.close()


@pytest.fixture
def configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A config with sets `files` (priority 5) and `docs` of a generated tree, and its initialised repository."""
    source = build_tree(tmp_path / "src")
    config = write_config(tmp_path, [
        {"name": "files", "paths": [str(source)], "priority": 5},
        {"name": "docs", "paths": [str(source / "docs")], "priority": 1},
    ])
    code, _out, err = run_cli(capsys, "--config", str(config), "init", "--chunk-avg-size", "4096")
    assert code == EXIT_OK, err
    return config


def test_wrong_passphrase_backup_unrecorded(
    configured: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup whose key derivation fails (it runs beside the walk) exits 1, names the cause and records nothing."""
    monkeypatch.setenv("ATLAS_BACKUP_PASSPHRASE", "wrong")

    code, _out, err = run_cli(capsys, "--config", str(configured), "backup")

    assert code == EXIT_FAILURE
    assert "wrong passphrase for the backup repository" in err
    assert stored_runs(tmp_path) == []
    assert list((tmp_path / "repo" / "snapshots").iterdir()) == []


def test_backup_recorded_per_set(configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manual backup stores one ok row per set, both naming the snapshot the backup printed."""
    code, out, err = run_cli(capsys, "--config", str(configured), "backup", "--json")
    result = json.loads(out)

    rows = stored_runs(tmp_path)

    assert code == EXIT_OK, err
    assert sorted((row.set_name, row.status, row.trigger, row.kind) for row in rows) == [
        ("docs", "ok", "manual", "backup"), ("files", "ok", "manual", "backup"),
    ]
    assert {row.snapshot_id for row in rows} == {result["id"]}
    assert {row.bytes_new for row in rows} == {result["new_bytes_stored"]}
    assert {row.set_name: row.files for row in rows} == {item["name"]: item["files"] for item in result["sets"]}
    assert {row.repository for row in rows} == {str(tmp_path / "repo")}


def test_partial_backup_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set whose path is missing fails alone; `logs --level warning` shows its skipped path."""
    source = build_tree(tmp_path / "src")
    config = write_config(tmp_path, [
        {"name": "files", "paths": [str(source)]},
        {"name": "gone", "paths": [str(tmp_path / "not-mounted")]},
    ])
    run_cli(capsys, "--config", str(config), "init", "--chunk-avg-size", "4096")

    code, _out, _err = run_cli(capsys, "--config", str(config), "backup")
    logs_code, logs, _ = run_cli(capsys, "--config", str(config), "logs", "--level", "warning")
    rows = {row.set_name: row for row in stored_runs(tmp_path)}

    assert code == EXIT_PARTIAL
    assert (rows["files"].status, rows["gone"].status) == ("ok", "failed")
    assert rows["gone"].error == "nothing readable: 1 paths could not be read"
    assert logs_code == EXIT_OK
    assert "set=gone failed" in logs
    assert f"WARNING skipped {tmp_path / 'not-mounted'}" in logs
    assert "set=files" not in logs


def test_locked_backup_not_recorded(configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backup that finds the repository locked exits 4 and leaves no run row."""
    lock = RepositoryLock(tmp_path / "repo", now=time.time())
    lock.acquire()
    try:
        code, _out, err = run_cli(capsys, "--config", str(configured), "backup")
    finally:
        lock.release()

    assert code == EXIT_LOCKED
    assert "locked by pid" in err
    assert stored_runs(tmp_path) == []


def test_checks_recorded(configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify, integrity and cleanup each store one run; a dry-run cleanup stores none."""
    run_cli(capsys, "--config", str(configured), "backup")
    snapshot_id = stored_runs(tmp_path)[0].snapshot_id or ""

    run_cli(capsys, "--config", str(configured), "verify", "--id", snapshot_id)
    run_cli(capsys, "--config", str(configured), "integrity")
    run_cli(capsys, "--config", str(configured), "cleanup", "--dry-run")
    run_cli(capsys, "--config", str(configured), "cleanup")
    kinds = [(row.kind, row.status, row.snapshot_id) for row in reversed(stored_runs(tmp_path))]

    assert kinds[2:] == [("verify", "ok", snapshot_id), ("integrity", "ok", snapshot_id), ("cleanup", "ok", None)]


def test_logs_text_json_and_limit(configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`logs` lists runs oldest first with their lines; --limit keeps the newest; --json carries the log."""
    run_cli(capsys, "--config", str(configured), "backup")
    run_cli(capsys, "--config", str(configured), "cleanup")

    _code, text, _ = run_cli(capsys, "--config", str(configured), "logs")
    _code, debug, _ = run_cli(capsys, "--config", str(configured), "logs", "--level", "debug")
    _code, limited, _ = run_cli(capsys, "--config", str(configured), "logs", "--limit", "1", "--json")
    _code, errors, _ = run_cli(capsys, "--config", str(configured), "logs", "--level", "error")
    [newest] = json.loads(limited)

    lines = text.splitlines()
    assert " backup manual set=files ok snapshot=backup_" in lines[0]
    assert "INFO    backup of set files into backup_" in lines[1]
    assert " cleanup manual ok freed=" in text
    assert "DEBUG   run read" in debug
    assert "DEBUG" not in text
    assert newest["kind"] == "cleanup"
    assert newest["log"][0]["message"].startswith("cleanup removed 0 snapshots")
    assert errors.startswith("no backup runs at level error or above")


def test_logs_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`logs` on a data directory without a store exits 1 and names the store path."""
    code, _out, err = run_cli(capsys, "logs")

    assert code == EXIT_FAILURE
    assert str(tmp_path / "data" / DB_FILENAME) in err


def test_logs_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid --limit is a usage error naming the value."""
    with pytest.raises(SystemExit) as exit_info:
        main(["logs", "--limit", "0"])

    assert exit_info.value.code == EXIT_USAGE
    assert "invalid number 0; give 1 or more" in capsys.readouterr().err


def test_status_shows_next_run(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` shows when each configured set is backed up next, in text and JSON."""
    run_cli(capsys, "--config", str(configured), "backup")

    _code, text, _ = run_cli(capsys, "--config", str(configured), "status")
    _code, document, _ = run_cli(capsys, "--config", str(configured), "status", "--json")
    schedule = {item["name"]: item for item in json.loads(document)["schedule"]}

    assert "next backup of files: " in text
    assert "(every 1d)" in text
    assert schedule["files"]["next_run"] == pytest.approx(schedule["docs"]["next_run"], abs=5)
    assert schedule["files"]["last_status"] == "ok"


def test_bad_frequency_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A backup_frequency below 1 s exits 2 with the value and a usable example."""
    config = write_config(tmp_path, [], backup_frequency="5ms")

    code, _out, err = run_cli(capsys, "--config", str(config), "schedule")

    assert code == EXIT_USAGE
    assert "backup.backup_frequency: backup_frequency must be at least 1s, got 0.005s" in err
    assert "24h" in err


def test_schedule_without_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`schedule` without an initialised repository exits 1 and names the command that creates one."""
    config = write_config(tmp_path, [{"name": "files", "paths": [str(tmp_path)]}])

    code, _out, err = run_cli(capsys, "--config", str(config), "schedule")

    assert code == EXIT_FAILURE
    assert "backup-manager init" in err


def test_schedule_foreground(configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`backup-manager schedule` backs up, cleans up and test-restores, logs each run and exits 0 on SIGTERM."""
    log_path = tmp_path / "schedule.log"
    proc = start_schedule(configured, tmp_path, log_path)
    try:
        deadline = time.monotonic() + 20
        while "scheduled test_restore finished" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text()
    rows = stored_runs(tmp_path)

    assert code == EXIT_OK, text
    assert "scheduled backup finished" in text
    assert "scheduled cleanup finished" in text
    assert "backup schedule stopped" in text
    assert {(row.kind, row.status, row.trigger) for row in rows} == {
        ("backup", "ok", "scheduled"), ("cleanup", "ok", "scheduled"), ("test_restore", "ok", "scheduled"),
    }


def test_schedule_after_key_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A foreground `schedule` started before `key rotate` keeps backing up readable data after it."""
    source = build_tree(tmp_path / "src")
    config = write_config(tmp_path, [{"name": "files", "paths": [str(source)]}], backup_frequency="1s")
    code, _out, err = run_cli(capsys, "--config", str(config), "init", "--chunk-avg-size", "4096")
    assert code == EXIT_OK, err
    env = schedule_environment(tmp_path)
    log_path = tmp_path / "schedule.log"
    proc = start_schedule(config, tmp_path, log_path)
    try:
        wait_for_text(log_path, "scheduled backup finished", 1)
        rotated = subprocess.run(
            [sys.executable, "-m", "atlas_tui.cli", "backup", "--config", str(config), "key", "rotate", "--yes"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        (source / "after-rotate.txt").write_text("written after the rotation\n")
        wait_for_text(log_path, "scheduled backup finished", 3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text()
    code, out, err = run_cli(capsys, "--config", str(config), "list", "--json")
    newest = max(json.loads(out), key=lambda item: item["time"])
    integrity_code, _out, integrity_err = run_cli(capsys, "--config", str(config), "integrity", "--id", newest["id"])

    assert rotated.returncode == EXIT_OK, rotated.stderr
    assert "authentication failed" not in text
    assert integrity_code == EXIT_OK, integrity_err
    assert all(row.status == "ok" for row in stored_runs(tmp_path) if row.kind == "backup"), text


def schedule_environment(tmp_path: Path) -> dict[str, str]:
    """Return the environment of a CLI child: no inherited ATLAS_ variables, the passphrase and a data dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLAS_")}
    env.update(ATLAS_BACKUP_PASSPHRASE=CLI_PASSPHRASE, ATLAS_DATA_DIR=str(tmp_path / "data"))
    return env


def start_schedule(config: Path, tmp_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `backup schedule` with `config`, its output going to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "atlas_tui.cli", "backup", "--config", str(config), "schedule"],
            stdout=log, stderr=subprocess.STDOUT, env=schedule_environment(tmp_path),
        )


def wait_for_text(path: Path, text: str, count: int, seconds: float = 30.0) -> None:
    """Wait until `text` appears `count` times in the file at `path`."""
    deadline = time.monotonic() + seconds
    while path.read_text().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.read_text().count(text) >= count, path.read_text()

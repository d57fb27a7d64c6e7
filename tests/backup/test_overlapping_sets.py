"""Backup sets whose paths overlap, run through `backup-manager` on real trees.

Each path is stored and counted once, by the set with the most specific configured
path that contains it, and every snapshot restores.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_OK, EXIT_PARTIAL
from storage.backup_runs import recent_runs
from storage.db import DB_FILENAME, connect

from tests.backup.conftest import CLI_PASSPHRASE, build_tree, restored_root, run_cli, tree_state

pytestmark = pytest.mark.usefixtures("cli_environment")


def configure(tmp_path: Path, capsys: pytest.CaptureFixture[str], sets: list[dict[str, object]]) -> Path:
    """Write a config with `sets`, initialise its repository and return the config path."""
    config = tmp_path / "config.json"
    section = {"repository": str(tmp_path / "repo"), "sets": sets}
    config.write_text(json.dumps({"backup": section}), encoding="utf-8")
    code, _out, err = run_cli(capsys, "--config", str(config), "init", "--chunk-avg-size", "4096")
    assert code == EXIT_OK, err
    return config


def snapshot_paths(tmp_path: Path, snapshot_id: str) -> list[bytes]:
    repository = Repository.open(tmp_path / "repo", CLI_PASSPHRASE.encode())
    return [entry.path for entry in repository.load_snapshot(snapshot_id).entries]


def regular_files(root: Path) -> list[Path]:
    """Return every regular file under `root`, without symlinks and FIFOs."""
    return [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


def make_linked_tree(base: Path) -> tuple[Path, Path]:
    """Write `data` with a file, a subdirectory and `data/link` -> `other`, and return both directories."""
    data = base / "data"
    other = base / "other"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("in data\n")
    (data / "sub" / "b.txt").write_text("in data/sub\n")
    (other / "deep").mkdir(parents=True)
    (other / "c.txt").write_text("in other\n")
    (other / "deep" / "d.txt").write_text("in other/deep\n")
    os.symlink(other, data / "link")
    return data, other


def test_symlinked_set_path_inside_set_restores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set path that is a symlink inside another set is stored once, as the directory it points to."""
    data, other = make_linked_tree(tmp_path / "x")
    config = configure(tmp_path, capsys, [
        {"name": "data", "paths": [str(data)], "priority": 5},
        {"name": "node", "paths": [str(data / "link")]},
    ])

    code, out, err = run_cli(capsys, "--config", str(config), "backup", "--json")
    result = json.loads(out)
    restore_code, _, restore_err = run_cli(
        capsys, "--config", str(config), "restore", "--latest", "--target", str(tmp_path / "out")
    )
    verify_code, _, verify_err = run_cli(capsys, "--config", str(config), "verify", "--id", result["id"])

    restored = restored_root(tmp_path / "out", data)
    paths = snapshot_paths(tmp_path, result["id"])
    assert code == EXIT_OK, err
    assert restore_code == EXIT_OK, restore_err
    assert verify_code == EXIT_OK, verify_err
    assert len(paths) == len(set(paths))
    assert not (restored / "link").is_symlink()
    assert tree_state(restored / "link") == tree_state(other)
    assert (restored / "a.txt").read_text() == "in data\n"
    assert (restored / "sub" / "b.txt").read_text() == "in data/sub\n"
    assert {item["name"]: item["files"] for item in result["sets"]} == {"data": 2, "node": 2}
    assert result["files"] == 4


def test_set_path_below_symlink_restores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set path reached through a symlink that another set walks leaves that link out of the snapshot."""
    data, other = make_linked_tree(tmp_path / "x")
    config = configure(tmp_path, capsys, [
        {"name": "data", "paths": [str(data)]},
        {"name": "deep", "paths": [str(data / "link" / "deep")]},
    ])

    code, out, err = run_cli(capsys, "--config", str(config), "backup", "--json")
    result = json.loads(out)
    restore_code, _, restore_err = run_cli(
        capsys, "--config", str(config), "restore", "--latest", "--target", str(tmp_path / "out")
    )

    restored = restored_root(tmp_path / "out", data)
    assert code == EXIT_OK, err
    assert restore_code == EXIT_OK, restore_err
    assert not (restored / "link").is_symlink()
    assert (restored / "link" / "deep" / "d.txt").read_text() == "in other/deep\n"
    assert not (restored / "link" / "c.txt").exists()
    assert (restored / "a.txt").read_text() == "in data\n"


def test_dangling_set_symlink_kept_as_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set path that is a dangling symlink inside another set stays in the snapshot as that link."""
    data, _other = make_linked_tree(tmp_path / "x")
    os.symlink(tmp_path / "absent", data / "gone")
    config = configure(tmp_path, capsys, [
        {"name": "data", "paths": [str(data)]},
        {"name": "gone", "paths": [str(data / "gone")]},
    ])

    code, out, _err = run_cli(capsys, "--config", str(config), "backup", "--json")
    result = json.loads(out)
    restore_code, _, restore_err = run_cli(
        capsys, "--config", str(config), "restore", "--latest", "--target", str(tmp_path / "out")
    )

    statuses = {item["name"]: item["status"] for item in result["sets"]}
    restored = restored_root(tmp_path / "out", data)
    assert code == EXIT_PARTIAL
    assert statuses == {"data": "ok", "gone": "failed"}
    assert restore_code == EXIT_OK, restore_err
    assert os.readlink(restored / "gone") == str(tmp_path / "absent")


def test_database_set_inside_plain_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A database that a set marked sqlite names inside a plain set is copied once, without its -wal file."""
    source = tmp_path / "state"
    source.mkdir()
    (source / "notes.txt").write_text("plain file\n")
    database = source / "app.db"
    conn = sqlite3.connect(database)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE item (value TEXT)")
        conn.execute("INSERT INTO item VALUES ('kept')")
        conn.commit()
        config = configure(tmp_path, capsys, [
            {"name": "state", "paths": [str(source)], "priority": 5},
            {"name": "db", "paths": [str(database)], "sqlite": True},
        ])
        wal_present = (source / "app.db-wal").exists()

        code, out, err = run_cli(capsys, "--config", str(config), "backup", "--json")
    finally:
        conn.close()
    result = json.loads(out)
    repository = Repository.open(tmp_path / "repo", CLI_PASSPHRASE.encode())
    entries = {entry.path.rsplit(b"/", 1)[-1]: entry for entry in repository.load_snapshot(result["id"]).entries}

    assert code == EXIT_OK, err
    assert wal_present
    assert sorted(entries) == [b"app.db", b"notes.txt", b"state"]
    assert entries[b"app.db"].sqlite
    assert {item["name"]: item["files"] for item in result["sets"]} == {"state": 1, "db": 1}


def test_overlapping_sets_counted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A nested set owns its subtree, a path listed in two sets counts in the higher-priority one."""
    source = build_tree(tmp_path / "src")
    config = configure(tmp_path, capsys, [
        {"name": "files", "paths": [str(source)], "priority": 5},
        {"name": "docs", "paths": [str(source / "docs")], "priority": 1},
        {"name": "again", "paths": [str(source)]},
    ])
    every_file = regular_files(source)
    docs_files = regular_files(source / "docs")
    total_bytes = sum(path.stat().st_size for path in every_file)
    docs_bytes = sum(path.stat().st_size for path in docs_files)

    code, out, err = run_cli(capsys, "--config", str(config), "backup", "--json")
    result = json.loads(out)
    _, status_out, _ = run_cli(capsys, "--config", str(config), "status", "--json")
    status = {item["name"]: item for item in json.loads(status_out)["sets"]}
    conn = connect(tmp_path / "data" / DB_FILENAME)
    try:
        rows = {row.set_name: row for row in recent_runs(conn, 10)}
    finally:
        conn.close()

    sets = {item["name"]: item for item in result["sets"]}
    paths = snapshot_paths(tmp_path, result["id"])
    assert code == EXIT_OK, err
    assert len(paths) == len(set(paths))
    assert result["files"] == len(every_file)
    assert result["bytes"] == total_bytes
    assert sets["files"]["files"] == len(every_file) - len(docs_files)
    assert sets["files"]["bytes"] == total_bytes - docs_bytes
    assert sets["docs"]["files"] == len(docs_files)
    assert sets["docs"]["bytes"] == docs_bytes
    assert (sets["again"]["files"], sets["again"]["bytes"]) == (0, 0)
    assert sets["again"]["status"] == "ok"
    assert {name: item["bytes"] for name, item in status.items()} == {
        "files": total_bytes - docs_bytes, "docs": docs_bytes, "again": 0,
    }
    assert {name: row.files for name, row in rows.items()} == {
        "files": len(every_file) - len(docs_files), "docs": len(docs_files), "again": 0,
    }
    assert len(result["warnings"]) == 1
    assert f"set files and set again both list path {source}" in result["warnings"][0]
    assert "Remove the path from one of the two sets" in result["warnings"][0]


def test_overlapping_sets_restore_whole_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A snapshot of nested sets restores the whole tree, the nested set's subtree included."""
    source = build_tree(tmp_path / "src")
    config = configure(tmp_path, capsys, [
        {"name": "docs", "paths": [str(source / "docs")], "priority": 9},
        {"name": "files", "paths": [str(source)]},
    ])

    code, _out, err = run_cli(capsys, "--config", str(config), "backup")
    restore_code, _, restore_err = run_cli(
        capsys, "--config", str(config), "restore", "--latest", "--target", str(tmp_path / "out")
    )

    assert code == EXIT_OK, err
    assert restore_code == EXIT_OK, restore_err
    assert tree_state(restored_root(tmp_path / "out", source)) == tree_state(source)


@pytest.mark.parametrize("holder", ["directory", "symlink"])
def test_set_holding_only_nested_set_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str], holder: str) -> None:
    """A set whose only content is another set's path, a directory or a link it follows, is ok with no files."""
    outer = tmp_path / "srv"
    outer.mkdir()
    if holder == "directory":
        (outer / "app").mkdir()
        (outer / "app" / "state.txt").write_text("state\n")
    else:
        target = tmp_path / "disk" / "app"
        target.mkdir(parents=True)
        (target / "state.txt").write_text("state\n")
        os.symlink(target, outer / "app")
    config = configure(tmp_path, capsys, [
        {"name": "srv", "paths": [str(outer)]},
        {"name": "app", "paths": [str(outer / "app")]},
    ])

    code, out, err = run_cli(capsys, "--config", str(config), "backup", "--json")
    result = json.loads(out)

    sets = {item["name"]: item for item in result["sets"]}
    assert code == EXIT_OK, err
    assert sets["srv"]["status"] == "ok"
    assert sets["srv"]["files"] == 0
    assert sets["srv"]["skipped"] == []
    assert sets["app"]["files"] == 1

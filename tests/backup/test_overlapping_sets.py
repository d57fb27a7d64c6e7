"""Backup sets whose paths overlap, run through `backup-manager` on real trees.

Each path is stored and counted once, by the set with the most specific configured
path that contains it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from atlas_tui.backup.repository import Repository
from atlas_tui.cli_backup import EXIT_OK
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


def test_set_holding_only_nested_set_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A set whose only content is another set's path is ok with no files, not flagged as empty."""
    outer = tmp_path / "srv"
    (outer / "app").mkdir(parents=True)
    (outer / "app" / "state.txt").write_text("state\n")
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

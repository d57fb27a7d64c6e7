"""`atlas metrics`: latest value per series as a table or JSON, clear messages when empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_tui.cli import EXIT_FAILURE, EXIT_OK, main
from collectors.base import Sample
from storage.db import open_store
from storage.metrics import write_samples

NOW = 1_750_000_000.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A data directory whose store contains two cycles of three series."""
    data_dir = tmp_path / "data"
    conn = open_store(data_dir)
    try:
        for offset, cpu in ((0.0, 10.0), (5.0, 42.5)):
            write_samples(
                conn,
                [
                    Sample.of("cpu_usage", cpu, NOW + offset),
                    Sample.of("memory_usage", 61.0, NOW + offset),
                    Sample.of("disk_usage", 70.25, NOW + offset, mount="/"),
                ],
            )
    finally:
        conn.close()
    return data_dir


def test_json_lists_latest(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object per series with its newest ts and value."""
    code = main(["metrics", "--json", "--data-dir", str(store_dir)])

    items = json.loads(capsys.readouterr().out)
    by_name = {item["name"]: item for item in items}
    assert code == EXIT_OK
    assert len(items) == 3
    assert by_name["cpu_usage"] == {"name": "cpu_usage", "labels": {}, "ts": NOW + 5.0, "value": 42.5}
    assert by_name["disk_usage"]["labels"] == {"mount": "/"}


def test_name_filter(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--name keeps only the series of that metric."""
    main(["metrics", "--json", "--name", "disk_usage", "--data-dir", str(store_dir)])

    items = json.loads(capsys.readouterr().out)
    assert [item["name"] for item in items] == ["disk_usage"]


def test_table_output(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default output is a table with labels as key=value and the time in UTC."""
    main(["metrics", "--data-dir", str(store_dir)])

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "LABELS", "VALUE", "TIME", "(UTC)"]
    assert lines[2].split() == ["disk_usage", "mount=/", "70.25", "2025-06-15", "15:06:45"]


def test_unknown_name_lists_known(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --name exits 1 and lists the stored metric names."""
    code = main(["metrics", "--name", "cpu_usgae", "--data-dir", str(store_dir)])

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "no series named 'cpu_usgae'" in err
    assert "cpu_usage, disk_usage, memory_usage" in err


def test_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A data directory without a store exits 1 with a message and creates nothing."""
    data_dir = tmp_path / "empty"

    code = main(["metrics", "--json", "--data-dir", str(data_dir)])

    out, err = capsys.readouterr()
    assert code == EXIT_FAILURE
    assert json.loads(out) == []
    assert f"no store at {data_dir / 'atlas.db'}" in err
    assert not data_dir.exists()


def test_data_dir_is_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --data-dir that is a file exits 1 saying so, without advising a daemon on that path."""
    path = tmp_path / "plain-file"
    path.write_text("x", encoding="utf-8")

    code = main(["metrics", "--data-dir", str(path)])

    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert f"atlas metrics: {path} is not a directory" in err
    assert "atlas daemon" not in err


def test_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store with no samples exits 1 and suggests starting the daemon."""
    data_dir = tmp_path / "data"
    open_store(data_dir).close()

    code = main(["metrics", "--data-dir", str(data_dir)])

    assert code == EXIT_FAILURE
    assert "no metrics stored yet" in capsys.readouterr().err


def test_env_data_dir(store_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """ATLAS_DATA_DIR is used when --data-dir is absent."""
    monkeypatch.setenv("ATLAS_DATA_DIR", str(store_dir))

    code = main(["metrics", "--json"])

    assert code == EXIT_OK
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_flag_beats_env_data_dir(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--data-dir wins over ATLAS_DATA_DIR."""
    monkeypatch.setenv("ATLAS_DATA_DIR", str(store_dir))
    other = tmp_path / "other"

    code = main(["metrics", "--data-dir", str(other)])

    assert code == EXIT_FAILURE
    assert str(other) in capsys.readouterr().err

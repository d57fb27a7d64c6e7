"""`--log-file` rotation: `configure_logging` rotates the file by size and keeps a bounded number of backups."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas_tui import logs
from atlas_tui.logs import LOG_FILE_BACKUPS, configure_logging

MAX_BYTES = 2048
"""Rotation size used by these tests instead of the 10 MiB default."""


@pytest.fixture
def small_rotation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Rotate at `MAX_BYTES`, and restore the root logger's handlers and level afterwards."""
    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", MAX_BYTES)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _write_lines(count: int) -> None:
    logger = logging.getLogger("atlas_tui.rotation_test")
    for number in range(count):
        logger.info("line %05d %s", number, "x" * 80)


def test_log_file_rotates(tmp_path: Path, small_rotation: None) -> None:
    """Past the size limit the file is renamed to `.1` and a new file is started."""
    path = tmp_path / "logs" / "daemon.log"
    configure_logging("INFO", path, stderr=False)

    _write_lines(60)

    backup = path.with_name("daemon.log.1")
    assert backup.exists()
    assert path.stat().st_size <= MAX_BYTES
    assert backup.stat().st_size <= MAX_BYTES


def test_log_backups_bounded(tmp_path: Path, small_rotation: None) -> None:
    """Only `LOG_FILE_BACKUPS` rotated files are kept, and the newest lines stay in the live file."""
    path = tmp_path / "daemon.log"
    configure_logging("INFO", path, stderr=False)

    _write_lines(400)

    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "daemon.log")
    assert rotated == [f"daemon.log.{n}" for n in range(1, LOG_FILE_BACKUPS + 1)]
    assert "line 00399" in path.read_text(encoding="utf-8")
    assert "line 00000" not in "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir())

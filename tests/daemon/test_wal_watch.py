"""`WalWatch`: one warning when the WAL stays above its limit, one line when it recovers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from atlas_tui.daemon import WAL_WARNING_BYTES, WalWatch, heartbeat_stale_after

OVER = WAL_WARNING_BYTES + 1


def test_warns_once_while_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Three runs above the limit log one warning naming the size and the store."""
    watch = WalWatch(tmp_path)

    with caplog.at_level(logging.INFO, logger="atlas_tui.daemon"):
        for _ in range(3):
            watch.observe(OVER, checkpoint_busy=1)

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"wal_bytes={OVER}" in warnings[0].getMessage()
    assert str(tmp_path) in warnings[0].getMessage()


def test_recovery_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Dropping back under the limit logs an info line and re-arms the warning."""
    watch = WalWatch(tmp_path)

    with caplog.at_level(logging.INFO, logger="atlas_tui.daemon"):
        watch.observe(OVER, checkpoint_busy=1)
        watch.observe(4096, checkpoint_busy=0)
        watch.observe(OVER, checkpoint_busy=1)

    messages = [record.getMessage() for record in caplog.records]
    assert sum("above limit" in message for message in messages) == 2
    assert sum("back under limit" in message for message in messages) == 1


def test_at_limit_is_fine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A WAL exactly at the limit (the store's journal_size_limit) logs nothing."""
    watch = WalWatch(tmp_path)

    with caplog.at_level(logging.INFO, logger="atlas_tui.daemon"):
        watch.observe(WAL_WARNING_BYTES, checkpoint_busy=0)

    assert caplog.records == []
    assert watch.over_limit is False


@pytest.mark.parametrize(("interval", "expected"), [(0.5, 15.0), (5.0, 15.0), (10.0, 30.0)])
def test_stale_after(interval: float, expected: float) -> None:
    """The daemon counts as stale after three missed heartbeats, at least 15 s."""
    assert heartbeat_stale_after(interval) == expected

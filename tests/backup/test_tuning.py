"""The runtime settings of a backup run."""

from __future__ import annotations

import sys

from atlas_tui.backup.heap import BACKUP_SWITCH_INTERVAL_S, backup_tuning


def test_tuning_restored_after_nested_runs() -> None:
    before = sys.getswitchinterval()
    with backup_tuning():
        assert sys.getswitchinterval() == BACKUP_SWITCH_INTERVAL_S
        with backup_tuning():
            assert sys.getswitchinterval() == BACKUP_SWITCH_INTERVAL_S
        # The outer run keeps the setting.
        assert sys.getswitchinterval() == BACKUP_SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == before


def test_tuning_restored_after_an_error() -> None:
    before = sys.getswitchinterval()
    try:
        with backup_tuning():
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert sys.getswitchinterval() == before

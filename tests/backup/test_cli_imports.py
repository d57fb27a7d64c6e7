"""Modules that `atlas backup` and `backup-manager` load: none of the console, API or HTTP stack.

Each check runs the command in a fresh interpreter, because the test process has
already imported everything, and then reads that interpreter's `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_tui.backup.repository import Repository

from tests.backup.conftest import PASSPHRASE, SMALL_CHUNKS

UNNEEDED_BY_BACKUP = (
    "textual",
    "rich",
    "httpx",
    "fastapi",
    "uvicorn",
    "psutil",
    "atlas_tui.alerts.channels.dispatch",
    "atlas_tui.analytics.simulator",
    "storage.metrics",
)
"""Top-level packages and modules a backup, a listing and `--help` must not import."""

_RUN_ACTIONS = """
import json, sys
from {module} import main

prefix, repo, source, out = sys.argv[1].split(), sys.argv[2], sys.argv[3], sys.argv[4]
codes = [
    main([*prefix, "backup", "--repo", repo, "--path", source]),
    main([*prefix, "list", "--repo", repo]),
]
try:
    main([*prefix, "--help"])
except SystemExit as exit_:
    codes.append(exit_.code)
with open(out, "w") as handle:
    json.dump({{"codes": codes, "modules": sorted(sys.modules)}}, handle)
"""


@pytest.mark.parametrize(
    ("module", "prefix"),
    [("atlas_tui.cli", "backup"), ("atlas_tui.cli_backup", "")],
    ids=["atlas-backup", "backup-manager"],
)
def test_backup_path_skips_heavy_modules(tmp_path: Path, module: str, prefix: str) -> None:
    """A backup, a listing and `--help` run without importing Textual, httpx, FastAPI or psutil."""
    repo = tmp_path / "repo"
    Repository.init(repo, PASSPHRASE, now=time.time(), chunker=SMALL_CHUNKS, scrypt_n=2**10)
    source = tmp_path / "src"
    source.mkdir()
    (source / "file.txt").write_bytes(b"backed up\n")
    out = tmp_path / "modules.json"
    env = {key: value for key, value in os.environ.items() if key != "ATLAS_CONFIG"}
    env.update(
        ATLAS_BACKUP_PASSPHRASE=PASSPHRASE.decode(),
        ATLAS_DATA_DIR=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
    )

    completed = subprocess.run(
        [sys.executable, "-c", _RUN_ACTIONS.format(module=module), prefix, str(repo), str(source), str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["codes"] == [0, 0, 0], completed.stderr
    loaded = set(result["modules"])
    assert sorted(name for name in UNNEEDED_BY_BACKUP if name in loaded) == []

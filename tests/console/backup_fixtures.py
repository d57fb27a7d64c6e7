"""A real backup repository in a temporary directory for the Backups pane's tests.

`make_backup_setup` writes a small seeded source tree, a passphrase file and a
config whose `backup` section points at a repository next to them, and initialises
the repository with cheap scrypt and small chunks so the tests stay fast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from atlas_tui.backup.models import ChunkerParams
from atlas_tui.backup.repository import Repository
from atlas_tui.config import Config

PASSPHRASE = b"pane test passphrase"
"""Passphrase of the test repository, in `BackupSetup.passphrase_file`."""

START = 1_749_000_000.0
"""Creation time of the test repository."""


@dataclass(frozen=True)
class BackupSetup:
    """Paths and config of one test repository."""

    config: Config
    data_dir: Path
    repository: Path
    sources: Path
    passphrase_file: Path


def make_backup_setup(
    tmp_path: Path, *, init: bool = True, passphrase_env: str = "ATLAS_TEST_NO_SUCH_VARIABLE"
) -> BackupSetup:
    """Create the sources, the passphrase file, the config and (with `init`) the repository under `tmp_path`."""
    sources = tmp_path / "sources"
    (sources / "node" / "chain").mkdir(parents=True)
    noise = random.Random(7)
    (sources / "node" / "chain" / "blocks.dat").write_bytes(noise.randbytes(200_000))
    for index in range(5):
        (sources / "node" / f"peer-{index}.json").write_text(f'{{"peer": {index}}}\n')
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE + b"\n")
    repository = tmp_path / "repo"
    config = Config.model_validate(
        {
            "backup": {
                "repository": str(repository),
                "passphrase_env": passphrase_env,
                "passphrase_file": str(passphrase_file),
                "sets": [{"name": "node", "paths": [str(sources / "node")]}],
            }
        }
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if init:
        chunker = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)
        Repository.init(repository, PASSPHRASE, now=START, chunker=chunker, pack_size=64 * 1024, scrypt_n=2**10)
    return BackupSetup(config, data_dir, repository, sources, passphrase_file)


def without_passphrase(setup: BackupSetup) -> Config:
    """Return the setup's config with no passphrase file (its variable is never set in tests)."""
    backup = setup.config.backup.model_copy(update={"passphrase_file": None})
    return setup.config.model_copy(update={"backup": backup})

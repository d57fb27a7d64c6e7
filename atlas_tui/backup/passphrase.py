"""Sources of the repository passphrase: a file flag, the environment, a config file or a prompt.

The order is `--passphrase-file`, then the environment variable named by
`backup.passphrase_env`, then `backup.passphrase_file`, then a terminal prompt.
The passphrase is never read from the JSON config and never logged. `key add`
reads the new key's passphrase from its own sources (`read_new_passphrase`).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.errors import PassphraseMissing

__all__ = ["NEW_PASSPHRASE_ENV", "read_new_passphrase", "read_passphrase", "read_passphrase_and_source"]

NEW_PASSPHRASE_ENV = "ATLAS_BACKUP_NEW_PASSPHRASE"
"""Environment variable read by `key add` for the passphrase of the new key."""


def read_passphrase(
    config: BackupConfig, flag_file: Path | None, *, confirm: bool = False, prompt: bool = True
) -> bytes:
    """Return the passphrase as UTF-8 bytes.

    Args:
        confirm: Prompt twice when prompting, as `init` does.
        prompt: False never prompts, even on a terminal, as in the daemon's backup schedule.

    Raises:
        PassphraseMissing: no source is set, a file cannot be read, or the passphrase is empty.
    """
    return read_passphrase_and_source(config, flag_file, confirm=confirm, prompt=prompt)[0]


def read_passphrase_and_source(
    config: BackupConfig, flag_file: Path | None, *, confirm: bool = False, prompt: bool = True
) -> tuple[bytes, str]:
    """Return the passphrase as `read_passphrase` does, and a description of its source for messages.

    The description is such as `--passphrase-file /etc/atlas/pass` or `the environment
    variable ATLAS_BACKUP_PASSPHRASE (backup.passphrase_env)`; it never contains the passphrase.

    Raises:
        PassphraseMissing: no source is set, a file cannot be read, or the passphrase is empty.
    """
    if flag_file is not None:
        return _from_file(flag_file, "--passphrase-file"), f"--passphrase-file {flag_file}"
    value = os.environ.get(config.passphrase_env)
    if value:
        return value.encode(), f"the environment variable {config.passphrase_env} (backup.passphrase_env)"
    if config.passphrase_file:
        path = Path(config.passphrase_file).expanduser()
        return _from_file(path, "backup.passphrase_file"), f"backup.passphrase_file {path}"
    if prompt and sys.stdin.isatty():
        return _prompt(confirm), "the prompt"
    raise PassphraseMissing(
        f"no backup passphrase: set the environment variable {config.passphrase_env}, "
        "set `backup.passphrase_file` in the config, or pass --passphrase-file"
    )


def read_new_passphrase(flag_file: Path | None) -> bytes:
    """Return the passphrase of a key that `key add` creates, as UTF-8 bytes.

    The order is `--new-passphrase-file`, then `ATLAS_BACKUP_NEW_PASSPHRASE`, then
    a prompt asked twice on a terminal.

    Raises:
        PassphraseMissing: no source is set, the file cannot be read, or the passphrase is empty.
    """
    if flag_file is not None:
        return _from_file(flag_file, "--new-passphrase-file")
    value = os.environ.get(NEW_PASSPHRASE_ENV)
    if value:
        return value.encode()
    if sys.stdin.isatty():
        return _prompt(True, "new passphrase: ")
    raise PassphraseMissing(
        f"no passphrase for the new key: pass --new-passphrase-file or set the environment variable {NEW_PASSPHRASE_ENV}"
    )


def _from_file(path: Path, source: str) -> bytes:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PassphraseMissing(f"cannot read the passphrase file {path} ({source}): {err.strerror}") from err
    first = text.splitlines()[0] if text else ""
    if not first:
        raise PassphraseMissing(f"the passphrase file {path} ({source}) is empty; write the passphrase on its first line")
    return first.encode()


def _prompt(confirm: bool, label: str = "backup repository passphrase: ") -> bytes:
    first = getpass.getpass(label)
    if not first:
        raise PassphraseMissing("the passphrase is empty; enter a passphrase")
    if confirm and getpass.getpass("repeat the passphrase: ") != first:
        raise PassphraseMissing("the two passphrases differ; run the command again")
    return first.encode()

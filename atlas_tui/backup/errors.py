"""Errors raised by the backup engine.

    AtlasError
    └── BackupError              any backup, restore or repository failure
        ├── RepositoryNotFound   no repository at the path
        ├── RepositoryExists     `init` on a path that already contains a repository
        ├── PassphraseMissing    no passphrase in the environment, the file or a prompt
        ├── WrongPassphrase      no key file of the repository opens with the passphrase
        ├── KeyFilesMissing      the repository has no key file at all
        ├── RepositoryLocked     another live process holds the repository lock
        ├── SnapshotNotFound     no snapshot with the id, none for `--latest`, none old enough for `--at`
        ├── KeyNotFound          `key remove` with an id that no key file has
        ├── KeyRemovalRejected   `key remove` of the last key or of the key in use
        ├── KeyRotationRejected  `key rotate` while other key files exist, without confirmation to remove them
        ├── UnsafeRestorePath    a restore would write outside the target directory
        ├── CorruptData          a pack, index or snapshot failed authentication or its hash
        ├── CleanupRejected      `cleanup` found a snapshot file it cannot read and changed nothing
        ├── ChunkerUnavailable   the compiled chunker was not built
        └── RunCancelled         a progress callback stopped a run, as the schedule does on a stop signal

    BaseException
    └── BackupInterrupted        SIGINT or SIGTERM stopped `backup-manager backup`

Each message names the repository, snapshot, pack or path at fault and, where the
user can fix it, the command or config key to use.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from atlas_tui.errors import AtlasError

if TYPE_CHECKING:
    from atlas_tui.backup.models import CleanupResult

__all__ = [
    "BackupError",
    "BackupInterrupted",
    "ChunkerUnavailable",
    "CleanupRejected",
    "CorruptData",
    "KeyFilesMissing",
    "KeyNotFound",
    "KeyRejected",
    "KeyRemovalRejected",
    "KeyRotationRejected",
    "PassphraseMissing",
    "RepositoryExists",
    "RepositoryLocked",
    "RepositoryNotFound",
    "SnapshotNotFound",
    "UnsafeRestorePath",
    "RunCancelled",
    "WrongPassphrase",
]


class BackupError(AtlasError):
    """Base of the backup engine's errors."""


class RepositoryNotFound(BackupError):
    """Raised when the repository directory or its config file is missing."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"no backup repository at {path}; run `backup-manager init` or set `backup.repository` in the config"
        )


class RepositoryExists(BackupError):
    """Raised by `init` when the directory already contains a repository config."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"a backup repository already exists at {path}; choose another `backup.repository`")


class PassphraseMissing(BackupError):
    """Raised when no passphrase source is set and no terminal can prompt for one."""


class WrongPassphrase(BackupError):
    """Raised when no key file opens with the passphrase.

    The message does not say whether the passphrase or a key file is at fault,
    because telling them apart would need an unauthenticated check.
    """

    def __init__(self, path: str, source: str | None = None) -> None:
        self.path = path
        # Where the passphrase came from, such as `--passphrase-file /etc/atlas/pass`; None when unknown.
        self.source = source
        if source is None:
            where = "no key file opens with it; check the passphrase environment variable or file"
        else:
            where = (
                f"no key file opens with the passphrase from {source}; check that passphrase, "
                "or pass the right one with --passphrase-file"
            )
        super().__init__(f"wrong passphrase for the backup repository at {path}: {where}")


class KeyFilesMissing(BackupError):
    """Raised when the `keys` directory of a repository is missing or contains no key file."""

    def __init__(self, path: str, keys_dir: str) -> None:
        self.path = path
        super().__init__(
            f"no key file in {keys_dir}, so the backup repository at {path} cannot be opened with any passphrase; "
            "restore the keys directory from another copy of this repository"
        )


class RepositoryLocked(BackupError):
    """Raised when a live process holds the repository lock."""

    def __init__(self, path: str, host: str, pid: int) -> None:
        self.path = path
        self.host = host
        self.pid = pid
        super().__init__(
            f"the backup repository at {path} is locked by pid {pid} on {host}; wait for it to finish, "
            "or run `backup-manager unlock` if that process is gone"
        )


class SnapshotNotFound(BackupError):
    """Raised when a snapshot id is unknown, or `--latest` finds no snapshot."""


class KeyNotFound(BackupError):
    """Raised when `key remove` names a key id that no key file has."""


class KeyRemovalRejected(BackupError):
    """Raised when `key remove` would delete the last key or the key that opened the repository."""


class KeyRejected(BackupError):
    """Raised when `key add` gets a passphrase that already opens a key of the repository."""


class KeyRotationRejected(BackupError):
    """Raised when `key rotate` finds key files of other passphrases and removing them was not confirmed.

    Those files seal the old master key under passphrases this command does not have,
    so they can neither be sealed again nor be left to open the repository.
    """

    def __init__(self, path: str, key_ids: list[str]) -> None:
        self.path = path
        self.key_ids = key_ids
        super().__init__(
            f"key rotate of {path} would remove the keys of other passphrases: {', '.join(key_ids)}; "
            "remove them first with `backup-manager key remove ID`, or pass --yes to remove them during the rotation"
        )


class UnsafeRestorePath(BackupError):
    """Raised when a snapshot path is absolute, contains `..` or leads through a symlink out of the target."""


class CorruptData(BackupError):
    """Raised when stored data fails authentication, decompression or its content hash."""


class CleanupRejected(BackupError):
    """Raised by `cleanup` when a snapshot file cannot be read.

    The chunks such a snapshot uses are unknown, so pruning could delete its data.
    `plan` is what retention would do with the readable snapshots, for the report.
    """

    def __init__(self, path: str, plan: CleanupResult) -> None:
        self.path = path
        self.plan = plan
        ids = [item.id for item in plan.damaged_snapshots]
        named = f"snapshot {ids[0]} cannot be read" if len(ids) == 1 else f"snapshots {', '.join(ids)} cannot be read"
        fix = f"`backup-manager delete --id {ids[0]}`" + ("" if len(ids) == 1 else " and the same for each of the others")
        super().__init__(
            f"cleanup of {path} changed nothing: {named}, so cleanup cannot tell which data it uses; "
            f"restore the snapshot file from another copy of the repository, or remove it with {fix}, "
            "then run cleanup again"
        )


class ChunkerUnavailable(BackupError):
    """Raised when the compiled chunker extension is missing."""


class RunCancelled(BackupError):
    """Raised from a progress callback to stop a backup run; the run writes no index or snapshot."""


class BackupInterrupted(BaseException):
    """Raised by the signal handler of `backup-manager backup` and `restore` on SIGINT or SIGTERM.

    A `BaseException`, like `KeyboardInterrupt`, so that no `except Exception` or
    `except BackupError` in the engine takes it for a failed file or chunk.
    """

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")

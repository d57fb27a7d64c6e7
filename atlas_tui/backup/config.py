"""The `backup` section of the config file: repository, passphrase source and backup sets.

`atlas_tui.config.Config.backup` is one `BackupConfig`. The keys operators already
use (`backup_frequency`, `retention_period`, `max_backup_size`,
`encryption_enabled`, `test_restores_enabled`) keep their meaning and defaults.
The passphrase never appears here: only the name of the environment variable or
the file that contains it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from atlas_tui.durations import Duration

__all__ = ["DEFAULT_PASSPHRASE_ENV", "MIN_FREQUENCY", "BackupConfig", "BackupSetConfig"]

MIN_FREQUENCY = 1.0
"""Shortest accepted `backup_frequency` in seconds, so a typo such as `5ms` cannot start a backup loop."""

DEFAULT_PASSPHRASE_ENV = "ATLAS_BACKUP_PASSPHRASE"
"""Environment variable read for the repository passphrase unless `passphrase_env` names another."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BackupSetConfig(_Section):
    """A named group of paths backed up together."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    """Set name, used in run results and the `backup_set` metric label."""
    paths: list[str] = Field(min_length=1)
    """Absolute files or directories to back up. A path inside another set's path is backed up by this set alone."""
    priority: StrictInt = 0
    """Sets with a higher priority run first, and a path that two sets list is backed up by the higher one."""
    sqlite: StrictBool = False
    """Copy SQLite databases in these paths with the online backup API and leave out their -wal and -shm files."""

    @field_validator("paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not Path(path).is_absolute():
                raise ValueError(f"backup paths must be absolute, got {path!r}")
        return paths


class BackupConfig(_Section):
    """Backup repository, schedule keys and sets."""

    repository: str | None = None
    """Absolute repository directory (`~` allowed); unset uses `backups` in the data directory, which the backup itself leaves out."""
    passphrase_env: str = Field(default=DEFAULT_PASSPHRASE_ENV, min_length=1)
    """Environment variable holding the repository passphrase."""
    passphrase_file: str | None = None
    """File whose first line is the passphrase; used when the environment variable is unset."""
    backup_frequency: Duration = Field(default=86400.0, gt=0)
    """Time between two scheduled backups of a set (24h), at least `MIN_FREQUENCY`; the daemon and `backup-manager schedule` run them."""
    retention_period: Duration = Field(default=720 * 3600.0, gt=0)
    """How long `cleanup` keeps every snapshot (720h); older ones stay only by a keep_* rule or as the newest success."""
    max_backup_size: StrictInt = Field(default=100 * 1024**3, gt=0)
    """Largest backup in bytes (100 GiB); lower-priority sets are skipped above it (not enforced yet)."""
    encryption_enabled: StrictBool = True
    """Repositories are always encrypted; false is rejected."""
    test_restores_enabled: StrictBool = True
    """Let the schedule restore the newest snapshot into a temporary directory and compare it, once a day."""
    keep_daily: StrictInt | None = Field(default=None, ge=0)
    """`cleanup` also keeps the newest successful snapshot of each of the N most recent UTC days that have one."""
    keep_weekly: StrictInt | None = Field(default=None, ge=0)
    """The same per ISO week (UTC)."""
    keep_monthly: StrictInt | None = Field(default=None, ge=0)
    """The same per calendar month (UTC)."""
    sets: list[BackupSetConfig] = Field(default_factory=list)
    """Backup sets; empty backs up the data directory with its databases."""

    @field_validator("backup_frequency")
    @classmethod
    def _not_too_often(cls, seconds: float) -> float:
        if seconds < MIN_FREQUENCY:
            raise ValueError(
                f"backup_frequency must be at least {MIN_FREQUENCY:g}s, got {seconds:g}s; "
                "use a duration such as 6h or 24h"
            )
        return seconds

    @field_validator("repository")
    @classmethod
    def _absolute_repository(cls, repository: str | None) -> str | None:
        # A relative path would be resolved against each process's working directory,
        # so the daemon and a manual run could use different repositories.
        if repository is not None and not Path(repository).expanduser().is_absolute():
            raise ValueError(
                f"the repository must be an absolute path, got {repository!r}, because a relative path depends "
                "on the directory each command starts in; use an absolute path such as /var/backups/atlas"
            )
        return repository

    @field_validator("encryption_enabled")
    @classmethod
    def _encrypted(cls, enabled: bool) -> bool:
        if not enabled:
            raise ValueError("unencrypted backup repositories are not supported; remove the key or set it to true")
        return enabled

    @field_validator("sets")
    @classmethod
    def _unique_names(cls, sets: list[BackupSetConfig]) -> list[BackupSetConfig]:
        names = [item.name for item in sets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"backup set names must be unique, got {', '.join(duplicates)} more than once")
        return sets

"""Errors raised by the `storage` package.

    AtlasError
    └── StorageError          the store cannot be used as asked
        ├── StoreOpenError    the data directory or database file cannot be opened or written
        ├── StoreCorruptError the database file fails SQLite's integrity check
        └── MigrationError    the schema cannot be brought to the current version

Each message names the file or migration at fault and, where the user can fix it,
how. Errors from single queries stay `sqlite3.Error`, because callers at a worker
boundary already catch those and turn them into a status.
"""

from __future__ import annotations

from atlas_tui.errors import AtlasError

__all__ = ["MigrationError", "StorageError", "StoreCorruptError", "StoreOpenError"]


class StorageError(AtlasError):
    """Base of the errors the store raises on purpose."""


class StoreOpenError(StorageError):
    """Raised when the data directory is missing or unwritable, or the database cannot be opened in WAL mode."""


class StoreCorruptError(StorageError):
    """Raised by `check_integrity` when `PRAGMA quick_check` reports a damaged database file."""


class MigrationError(StorageError):
    """Raised by `migrate` when a migration fails or the store is newer than the code."""

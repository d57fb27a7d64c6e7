"""Encrypted, deduplicated backups of the node's data, the live databases and config files.

A backup run walks the configured sets and, per file:

1. copies a live SQLite database with the online backup API (never the raw file
   with its `-wal`), or skips a file the files cache shows unchanged;
2. cuts the content into content-defined chunks (the compiled gear-hash chunker,
   seeded from the repository key);
3. names each chunk by its keyed BLAKE2b hash and skips chunks the index has;
4. compresses new chunks with zstd and encrypts them with AES-256-GCM, the chunk
   id as associated data, into pack files named by their SHA-256;
5. writes one index file for the run's packs, and last the snapshot manifest.

`cleanup` (`pruner.Pruner`) applies retention (`retention.select_kept`) and then
removes the data that no remaining snapshot uses.

Every file is written under a temporary name, fsynced and renamed. The format is
documented in docs/backup-format.md. The engine is plain classes driven by the
CLI (`atlas backup`, `backup-manager`); nothing here prints or reads the clock for
decisions, callers pass `now`.

The names below are imported on first use, so reading the `backup` config section
does not load cryptography and zstandard into every `atlas` command.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Archiver": "archiver",
    "backup_id": "archiver",
    "check_integrity": "checker",
    "verify_snapshot": "checker",
    "BackupError": "errors",
    "ChunkerUnavailable": "errors",
    "CorruptData": "errors",
    "PassphraseMissing": "errors",
    "RepositoryExists": "errors",
    "RepositoryLocked": "errors",
    "RepositoryNotFound": "errors",
    "SnapshotNotFound": "errors",
    "UnsafeRestorePath": "errors",
    "WrongPassphrase": "errors",
    "BackupRequest": "models",
    "BackupResult": "models",
    "BackupSetSpec": "models",
    "ChunkerParams": "models",
    "IntegrityResult": "models",
    "RestoreResult": "models",
    "Snapshot": "models",
    "SnapshotSummary": "models",
    "VerifyResult": "models",
    "Repository": "repository",
    "Restorer": "restorer",
    "KeyNotFound": "errors",
    "KeyRemovalRejected": "errors",
    "CleanupResult": "models",
    "KeyInfo": "models",
    "RetentionPolicy": "models",
    "StatusResult": "models",
    "Pruner": "pruner",
    "select_kept": "retention",
    "repository_status": "status",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

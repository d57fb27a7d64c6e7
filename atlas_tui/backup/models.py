"""Pydantic models of the repository's files and of the engine's inputs and outputs.

The repository models (`RepositoryConfig`, `KeyFile`, `Snapshot` with its `Entry`
list) are what `docs/backup-format.md` describes; change them only together with
that document and `FORMAT_VERSION`. Paths inside a snapshot are bytes, relative to
the filesystem root, so names that are not UTF-8 survive a round trip. Bytes fields
appear in JSON as base64. Times are UTC epoch seconds, file times nanoseconds.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ENTRY_FIELDS",
    "FORMAT_VERSION",
    "BackupRequest",
    "BackupResult",
    "BackupSetSpec",
    "ChunkerParams",
    "CleanupResult",
    "DamagedPack",
    "DamagedSnapshot",
    "Entry",
    "EntryType",
    "IntegrityResult",
    "KdfParams",
    "KeyFile",
    "KeyInfo",
    "ManifestPiece",
    "RepositoryConfig",
    "RestoreResult",
    "RetentionPolicy",
    "RunStatus",
    "SetResult",
    "SetStatus",
    "SkippedPath",
    "display_path",
    "Snapshot",
    "SnapshotSummary",
    "StatusResult",
    "Trigger",
    "VanishedPath",
    "VerifyResult",
]

FORMAT_VERSION = 1
"""Version of the on-disk format in `config`; readers reject other versions."""

Trigger = Literal["manual", "scheduled", "test"]
"""Origin of a backup run, the last part of its id."""
RunStatus = Literal["ok", "partial", "failed"]
"""Outcome of a backup run; only `ok` counts as a successful backup."""
EntryType = Literal["file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"]
"""Kind of a filesystem entry in a snapshot."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


class ChunkerParams(_Model):
    """Chunk size bounds of a repository, fixed at `init` because they decide deduplication."""

    min_size: int = Field(default=256 * 1024, ge=64)
    """No boundary is placed closer than this to the chunk start, in bytes."""
    avg_size: int = Field(default=1024 * 1024, ge=128)
    """Target average chunk size in bytes, a power of two; 1 MiB keeps the index small."""
    max_size: int = Field(default=4 * 1024 * 1024, ge=256)
    """A chunk that reaches this many bytes is cut there."""

    @model_validator(mode="after")
    def _check_order(self) -> ChunkerParams:
        if self.avg_size & (self.avg_size - 1):
            raise ValueError(f"avg_size must be a power of two, got {self.avg_size}")
        if not self.min_size < self.avg_size < self.max_size:
            raise ValueError(
                f"need min_size < avg_size < max_size, got {self.min_size}, {self.avg_size}, {self.max_size}"
            )
        return self


class RepositoryConfig(_Model):
    """The plaintext `config` file at the repository root."""

    version: int = FORMAT_VERSION
    """On-disk format version."""
    id: str
    """Random repository id (hex), also bound into every key file."""
    created: float
    """Creation time."""
    chunker: ChunkerParams = Field(default_factory=ChunkerParams)
    """Chunk size bounds."""
    pack_size: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Pack size in bytes at which a pack is closed. 16 MiB keeps file counts low, and a
    restore still reads only the packs it needs."""
    chunk_hash: Literal["blake2b", "blake3"] = "blake2b"
    """Keyed hash of chunk ids and content hashes. `init` writes `blake3`; a config
    without this key is from a repository made before BLAKE3 and uses BLAKE2b."""


class KdfParams(_Model):
    """scrypt parameters of one key file."""

    name: Literal["scrypt"] = "scrypt"
    salt: bytes
    """Random 16-byte salt."""
    n: int = Field(default=2**15, ge=2**10, le=2**20)
    """CPU and memory cost, a power of two. 2^15 with r=8 needs 32 MiB (128 * n * r bytes)."""
    r: int = Field(default=8, ge=1, le=32)
    p: int = Field(default=1, ge=1, le=16)

    @model_validator(mode="after")
    def _check_cost(self) -> KdfParams:
        if self.n & (self.n - 1):
            raise ValueError(f"scrypt n must be a power of two, got {self.n}")
        if 128 * self.n * self.r > 512 * 1024**2:
            raise ValueError(f"scrypt n={self.n}, r={self.r} needs more than 512 MiB")
        return self


class KeyFile(_Model):
    """One file under `keys/`: the master key sealed under a passphrase-derived key."""

    id: str
    """Random key id (hex), the file name."""
    created: float
    hostname: str
    """Host that created the key, for `key list`."""
    kdf: KdfParams
    sealed_master: bytes
    """AES-256-GCM nonce, ciphertext and tag of the master key."""


class Entry(_Model):
    """One filesystem entry of a snapshot."""

    path: bytes
    """Path relative to the filesystem root, `/`-separated, without a leading slash."""
    type: EntryType
    mode: int
    """Permission bits including setuid, setgid and sticky (no file type bits)."""
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    """File size in bytes; 0 for other types."""
    inode: int = 0
    """Inode and ctime feed the files cache of the next incremental run."""
    ctime_ns: int = 0
    chunks: list[str] = Field(default_factory=list)
    """Chunk ids (hex) of a file's content, in order."""
    content_hash: str | None = None
    """Keyed BLAKE2b of a file's whole content, which `verify` checks."""
    link_target: bytes | None = None
    """Target of a symlink, as stored by the filesystem."""
    rdev: int | None = None
    """Device number of a character or block device."""
    sqlite: bool = False
    """True for a database copied with SQLite's online backup API."""
    source: list[int] | None = None
    """For a database: the database file's size, then size, mtime_ns and inode of its
    `-wal` file (0 without one), when it was copied. `size` is the copy's size, which
    can differ. With `mtime_ns`, `ctime_ns` and `inode` they let the next run reuse
    the copy's chunks."""

    @classmethod
    def from_manifest(cls, items: list[dict[str, Any]]) -> list[Entry]:
        """Build entries from the parsed JSON objects of an authenticated snapshot manifest.

        A manifest that decrypted with the repository key was written by this code, so
        the values are not validated again. Each object becomes the entry's attribute
        dict (see `from_trusted`), and all entries share one set of given field names. Pydantic's own
        `model_validate_json` kept a separate set per entry, at about 700 bytes a
        third of the entry, and needed 120 MiB for a manifest of 42,000 files.

        Raises:
            ValueError: an object lacks a required field or has an unknown one.
        """
        entries = []
        for item in items:
            keys = item.keys()
            if not _ENTRY_REQUIRED <= keys or not keys <= ENTRY_FIELDS:
                raise ValueError(f"snapshot entry has fields {sorted(keys)}; expected {sorted(ENTRY_FIELDS)}")
            item["path"] = base64.urlsafe_b64decode(item["path"])
            if item.get("link_target") is not None:
                item["link_target"] = base64.urlsafe_b64decode(item["link_target"])
            entries.append(cls.from_trusted(item))
        return entries

    @classmethod
    def from_trusted(cls, values: dict[str, Any]) -> Entry:
        """Make an entry whose attribute dict is `values`, without validation.

        For values that this code produced (stat results, chunk ids) or read from an
        authenticated manifest. Missing fields get their defaults. It is about five
        times faster than `model_construct`, which matters once per file of a backup.
        """
        if len(values) < len(ENTRY_FIELDS):
            for name in ENTRY_FIELDS - values.keys():
                values[name] = cls.model_fields[name].get_default(call_default_factory=True)
        entry = cls.__new__(cls)
        object.__setattr__(entry, "__dict__", values)
        object.__setattr__(entry, "__pydantic_fields_set__", ENTRY_FIELDS)
        object.__setattr__(entry, "__pydantic_extra__", None)
        object.__setattr__(entry, "__pydantic_private__", None)
        return entry

    def display_path(self) -> str:
        """Return the path as text for messages; see the module's `display_path`."""
        return "/" + display_path(self.path)


_CONTROL_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def display_path(path: bytes) -> str:
    """Return a file name as one line of text for messages and logs.

    Bytes that are not UTF-8 become `\\xNN`, and so do other control characters, while
    a backslash, newline, carriage return or tab becomes `\\\\`, `\\n`, `\\r` or `\\t`.
    A name with a newline then cannot add a line of its own to a report, and a name
    with a literal backslash does not read like one with an escaped byte.
    """
    text = path.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    parts = []
    for char in text:
        code = ord(char)
        if char in _CONTROL_ESCAPES:
            parts.append(_CONTROL_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif not char.isprintable() and char != " ":
            parts.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            parts.append(char)
    return "".join(parts)


class SkippedPath(_Model):
    """A path the backup could not read."""

    path: str
    reason: str


class VanishedPath(_Model):
    """A path that the walk found and that no longer existed when the run read it."""

    backup_set: str
    path: str


class SetResult(_Model):
    """Outcome of one backup set in a run."""

    name: str
    paths: list[str]
    status: RunStatus
    files: int = 0
    bytes: int = 0
    skipped: list[SkippedPath] = Field(default_factory=list)


class SnapshotSummary(_Model):
    """A snapshot without its entries, as `list` shows it."""

    id: str
    """`backup_<unix seconds>_<trigger>`."""
    time: float
    trigger: Trigger
    hostname: str
    status: RunStatus
    parent: str | None = None
    """Snapshot whose files cache this run used."""
    files: int = 0
    bytes: int = 0
    """Total size of the files in the snapshot."""
    sets: list[SetResult] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class ManifestPiece(_Model):
    """Description of one manifest chunk, which the next run reads instead of the chunk."""

    last_path: bytes
    """Path of the piece's last entry, which names the piece from one run to the next."""
    entries: int
    fingerprint: str
    """Hash of the paths and stat fields of the piece's entries (`manifest.fingerprint`)."""


class Snapshot(SnapshotSummary):
    """A snapshot manifest under `snapshots/`, written last in a run."""

    entries: list[Entry] = Field(default_factory=list)
    manifest_chunks: list[str] | None = None
    """Ids of the chunks that hold `entries` as JSON arrays, in order; the file then stores no
    entries. None in manifests written before entries moved into chunks."""
    manifest_pieces: list[ManifestPiece] | None = None
    """One item per manifest chunk, in the same order; None in older manifests."""

    def summary(self) -> SnapshotSummary:
        """Return the snapshot without its entries."""
        return SnapshotSummary.model_validate(
            self.model_dump(exclude={"entries", "manifest_chunks", "manifest_pieces"})
        )


class BackupSetSpec(_Model):
    """One backup set given to the engine."""

    name: str
    paths: list[Path]
    sqlite: bool = False
    """Copy SQLite databases in these paths with the online backup API and skip their -wal and -shm files."""
    priority: int = 0
    """Higher priority sets run first."""


class BackupRequest(_Model):
    """Input of one backup run."""

    sets: list[BackupSetSpec] = Field(min_length=1)
    trigger: Trigger = "manual"
    full: bool = False
    """Read every file, even those the files cache marks as unchanged."""
    now: float
    """Start time; the backup id uses its whole seconds."""


class BackupResult(_Model):
    """Outcome of one backup run."""

    id: str | None
    """Snapshot id, None when the run failed and wrote no snapshot."""
    status: RunStatus
    files: int = 0
    files_read: int = 0
    """Files whose content was read; the others came from the files cache."""
    bytes: int = 0
    bytes_read: int = 0
    new_chunks: int = 0
    new_bytes_stored: int = 0
    """Sealed bytes added to packs by this run."""
    sets: list[SetResult] = Field(default_factory=list)
    skipped: list[SkippedPath] = Field(default_factory=list)
    vanished: int = 0
    """Paths deleted between the walk and the read (ENOENT or ENOTDIR); they are not failures."""
    vanished_by_set: dict[str, int] = Field(default_factory=dict)
    """Set name -> vanished paths of that set, for the sets that have any."""
    vanished_paths: list[VanishedPath] = Field(default_factory=list)
    """The first `archiver.LISTED_VANISHED` of them."""
    warnings: list[str] = Field(default_factory=list)
    duration: float = 0.0


class RestoreResult(_Model):
    """Outcome of a restore."""

    id: str
    target: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    special: int = 0
    bytes: int = 0
    not_restored: list[SkippedPath] = Field(default_factory=list)
    """Entries that cannot be recreated here, such as sockets or devices without root."""
    damaged: list[SkippedPath] = Field(default_factory=list)
    """Files left out because a chunk of theirs is missing or damaged in the repository."""


class VerifyResult(_Model):
    """Outcome of a test restore compared with the snapshot."""

    id: str
    status: RunStatus
    checked: int = 0
    mismatches: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class DamagedPack(_Model):
    """A pack (or a missing chunk) that failed the integrity check."""

    pack: str
    reason: str
    chunks: int = 0
    """Chunks of the checked snapshots that are unreadable."""
    snapshots: list[str] = Field(default_factory=list)
    """Every snapshot that uses a chunk of this pack."""


class DamagedSnapshot(_Model):
    """A snapshot file under `snapshots/` that cannot be read: it fails authentication or is not valid."""

    id: str
    reason: str


class IntegrityResult(_Model):
    """Outcome of reading and authenticating every chunk of some snapshots."""

    snapshots: list[str]
    packs: int = 0
    chunks: int = 0
    damaged: list[DamagedPack] = Field(default_factory=list)
    damaged_snapshots: list[DamagedSnapshot] = Field(default_factory=list)
    """Snapshot files that cannot be read; the chunks they use are not checked."""

    @property
    def ok(self) -> bool:
        """True when no pack and no snapshot file is damaged."""
        return not self.damaged and not self.damaged_snapshots


class RetentionPolicy(_Model):
    """Retention rules of `cleanup`. A snapshot stays when any rule keeps it."""

    period: float = Field(gt=0)
    """Snapshots taken within this many seconds before `now` are kept (config `retention_period`)."""
    keep_daily: int = Field(default=0, ge=0)
    """Keep the newest successful snapshot of each of the N most recent UTC days that have one."""
    keep_weekly: int = Field(default=0, ge=0)
    """The same per ISO week (Monday to Sunday, UTC)."""
    keep_monthly: int = Field(default=0, ge=0)
    """The same per calendar month (UTC)."""


class CleanupResult(_Model):
    """Outcome of `cleanup`: retention, then prune. In a dry run, what it would do."""

    dry_run: bool = False
    kept_snapshots: dict[str, list[str]] = Field(default_factory=dict)
    """Kept snapshot id -> the rules that keep it (`period`, `daily`, `weekly`, `monthly`, `newest`)."""
    removed_snapshots: list[str] = Field(default_factory=list)
    deleted_packs: list[str] = Field(default_factory=list)
    """Packs whose chunks no snapshot uses, or that no index names (left by killed runs)."""
    rewritten_packs: list[str] = Field(default_factory=list)
    """Packs that still contained used chunks; those chunks moved to `new_packs`."""
    new_packs: list[str] = Field(default_factory=list)
    removed_temporaries: int = 0
    """Unfinished `.tmp-` files and `.tmp-sqlite-` database copy directories of killed runs."""
    freed_bytes: int = 0
    """Drop in repository size; an estimate in a dry run."""
    damaged_snapshots: list[DamagedSnapshot] = Field(default_factory=list)
    """Snapshot files that cannot be read. When there is one, cleanup changes nothing."""


class SetStatus(_Model):
    """The last run of one backup set, taken from the snapshots."""

    name: str
    last_run: str
    """Id of the newest snapshot that contains the set."""
    last_run_time: float
    last_status: RunStatus
    """Status of the set in that snapshot."""
    last_success: str | None = None
    """Id of the newest snapshot in which the set is `ok`."""
    last_success_time: float | None = None
    bytes: int = 0
    """Size of the set's files in its last run."""


class StatusResult(_Model):
    """Repository overview for `status`."""

    repository: str
    snapshots: int
    size_bytes: int
    """Bytes of every file in the repository directory."""
    sets: list[SetStatus] = Field(default_factory=list)
    damaged_snapshots: list[DamagedSnapshot] = Field(default_factory=list)
    """Snapshot files that cannot be read, left out of `sets` but counted in `snapshots`."""


class KeyInfo(_Model):
    """A key file without its sealed master key, as `key list` shows it."""

    id: str
    created: float
    hostname: str
    current: bool = False
    """True for the key that opened the repository in this command."""


ENTRY_FIELDS = frozenset(Entry.model_fields)
"""Names of every `Entry` field, shared by entries as their set of given fields."""
_ENTRY_REQUIRED = frozenset(name for name, field in Entry.model_fields.items() if field.is_required())

"""An opened backup repository: config, master key, index and snapshots on disk.

Layout (see docs/backup-format.md):

    config                 plaintext JSON `RepositoryConfig`
    keys/<key id>          `KeyFile`, one per passphrase
    data/<xx>/<pack id>    packs of sealed chunks
    index/<index id>       sealed JSON: pack id -> chunk entries, one file per backup run
    snapshots/<backup id>  sealed JSON `Snapshot`, written last in a run
    lock                   owner of the writer lock

Writers call `lock()`. A backup writes packs, then one index file, then the
snapshot. Each step is an atomic rename, so a crash leaves at worst packs that no
index names, and the next run does not use them.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import secrets
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import pydantic_core
from pydantic import ValidationError

from atlas_tui.backup.atomic import TEMP_PREFIX, fsync_dir, write_atomic
from atlas_tui.backup.crypto import BaseLoader, ContentHasher, MasterKey, chunk_id, open_sealed, seal
from atlas_tui.backup.errors import (
    CorruptData,
    KeyNotFound,
    KeyRejected,
    KeyRemovalRejected,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongPassphrase,
)
from atlas_tui.backup.heap import collector_paused, release_free_memory
from atlas_tui.backup.keys import create_key_file, list_key_files, open_master_key
from atlas_tui.backup.lock import RepositoryLock
from atlas_tui.backup.models import (
    FORMAT_VERSION,
    ChunkerParams,
    DamagedSnapshot,
    Entry,
    KeyFile,
    KeyInfo,
    RepositoryConfig,
    SkippedPath,
    Snapshot,
    display_path,
)
from atlas_tui.backup.packs import PackInfo, chunk_associated, pack_path, read_pack_header

__all__ = ["IndexEntry", "Repository", "sealed_file_associated", "with_bases"]

_INDEX_ASSOCIATED = b"atlas-index"

logger = logging.getLogger(__name__)


class IndexEntry(NamedTuple):
    """Location of one chunk."""

    pack_id: str
    offset: int
    length: int
    raw_length: int
    base: bytes | None = None
    """Id of the chunk a delta chunk is stored against (see `crypto.seal_delta`)."""


def with_bases(identifiers: set[bytes], index: dict[bytes, IndexEntry]) -> set[bytes]:
    """Return `identifiers` plus the base chunk of every delta among them, which reading them needs."""
    bases = set()
    for identifier in identifiers:
        location = index.get(identifier)
        if location is not None and location.base is not None:
            bases.add(location.base)
    return identifiers | bases


class Repository:
    """A repository opened with a passphrase; build it with `init` or `open`."""

    def __init__(
        self,
        path: Path,
        config: RepositoryConfig,
        key: MasterKey | None,
        key_id: str | None,
        *,
        opening: Future[tuple[MasterKey, str]] | None = None,
    ) -> None:
        """Keep an opened repository; `opening` delivers the key and key id when they are None."""
        self.path = path
        self.config = config
        self._key = key
        self._key_id = key_id
        self._opening = opening
        self._index: dict[bytes, IndexEntry] | None = None
        self._index_names: tuple[Path, ...] = ()

    @classmethod
    def init(
        cls,
        path: Path,
        passphrase: bytes,
        *,
        now: float,
        chunker: ChunkerParams | None = None,
        pack_size: int | None = None,
        scrypt_n: int = 2**15,
    ) -> Repository:
        """Create a repository in `path` (new or empty directory) with one key.

        Raises:
            RepositoryExists: `path` already has a `config` file.
        """
        if (path / "config").exists():
            raise RepositoryExists(str(path))
        for name in ("keys", "data", "index", "snapshots"):
            (path / name).mkdir(parents=True, exist_ok=True)
        config = RepositoryConfig(
            id=secrets.token_hex(16), created=now, chunker=chunker or ChunkerParams(), chunk_hash="blake3"
        )
        if pack_size is not None:
            config.pack_size = pack_size
        key = MasterKey.generate()
        key_file = create_key_file(path / "keys", config.id, key, passphrase, now=now, scrypt_n=scrypt_n)
        write_atomic(path / "config", config.model_dump_json(indent=2).encode(), mode=0o644)
        logger.info("initialised backup repository repository=%s id=%s", path, config.id)
        return cls(path, config, key, key_file.id)

    @classmethod
    def open(
        cls, path: Path, passphrase: bytes, *, background: bool = False, passphrase_source: str | None = None
    ) -> Repository:
        """Open the repository in `path`.

        Args:
            background: Derive the key on a thread and return at once. The first use of
                `key` waits for it and raises `WrongPassphrase` then, so a caller can walk
                the source tree during the 0.1 s of scrypt.
            passphrase_source: Where the passphrase came from, named by `WrongPassphrase`.

        Raises:
            RepositoryNotFound: no `config` file in `path`.
            KeyFilesMissing: the `keys` directory is missing or empty.
            WrongPassphrase: no key file opens with `passphrase`.
            CorruptData: the config file is invalid or has another format version.
        """
        try:
            text = (path / "config").read_bytes()
        except (FileNotFoundError, NotADirectoryError) as err:
            raise RepositoryNotFound(str(path)) from err
        try:
            config = RepositoryConfig.model_validate_json(text)
        except ValidationError as err:
            raise CorruptData(
                f"the repository config file {path / 'config'} is invalid ({_validation_problems(err)}); restore it "
                "from another copy of this repository. No other file can replace it: it contains the repository id, "
                "which every key file is bound to, and the chunk hash of the stored data"
            ) from err
        if config.version != FORMAT_VERSION:
            raise CorruptData(
                f"repository {path} has format version {config.version}; this atlas reads version {FORMAT_VERSION}"
            )
        if background:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-key")
            opening = pool.submit(
                open_master_key, path / "keys", config.id, passphrase, str(path), passphrase_source
            )
            pool.shutdown(wait=False)
            return cls(path, config, None, None, opening=opening)
        key, key_id = open_master_key(path / "keys", config.id, passphrase, str(path), passphrase_source)
        return cls(path, config, key, key_id)

    @property
    def key(self) -> MasterKey:
        """The master key; with `open(background=True)`, waits for the key derivation.

        Raises:
            WrongPassphrase: no key file opens with the passphrase.
        """
        if self._key is None:
            self._wait_for_key()
        assert self._key is not None
        return self._key

    @key.setter
    def key(self, value: MasterKey) -> None:
        """Replace the master key in memory, as `key rotate` does after writing it to the key file."""
        self.key  # noqa: B018 - a derivation still running must not overwrite the new key later
        self._key = value

    @property
    def key_id(self) -> str:
        """Id of the key file that opened the repository; waits like `key`."""
        if self._key_id is None:
            self._wait_for_key()
        assert self._key_id is not None
        return self._key_id

    def _wait_for_key(self) -> None:
        if self._opening is None:
            raise RuntimeError("repository has neither a key nor a key derivation under way")
        self._key, self._key_id = self._opening.result()
        self._opening = None

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """Return the id of a chunk with this plaintext."""
        return chunk_id(self.key, data, self.config.chunk_hash)

    def content_hasher(self) -> ContentHasher:
        """Return a new hasher of a whole file's content, as stored in `Entry.content_hash`."""
        return ContentHasher(self.key, self.config.chunk_hash)

    def add_key(self, passphrase: bytes, *, now: float, scrypt_n: int = 2**15) -> KeyFile:
        """Seal the master key under another passphrase; the caller holds the lock.

        Raises:
            KeyRejected: the passphrase already opens a key of the repository.
        """
        try:
            _, existing = open_master_key(self.path / "keys", self.config.id, passphrase, str(self.path))
        except WrongPassphrase:
            existing = None
        if existing is not None:
            # A second key with the same passphrase could never be removed while that
            # passphrase opens the repository, since the first matching key is the one in use.
            raise KeyRejected(f"the new passphrase already opens key {existing} of {self.path}; choose another passphrase")
        key_file = create_key_file(self.path / "keys", self.config.id, self.key, passphrase, now=now, scrypt_n=scrypt_n)
        logger.info("added key key_id=%s repository=%s", key_file.id, self.path)
        return key_file

    def list_keys(self) -> list[KeyInfo]:
        """Return every key file's id, creation time and host, oldest first."""
        return [
            KeyInfo(id=item.id, created=item.created, hostname=item.hostname, current=item.id == self.key_id)
            for item in list_key_files(self.path / "keys")
        ]

    def remove_key(self, key_id: str) -> None:
        """Delete one key file; the caller holds the lock.

        Raises:
            KeyNotFound: no key file has this id.
            KeyRemovalRejected: it is the last key, or the key that opened the repository.
        """
        ids = [item.id for item in self.list_keys()]
        if key_id not in ids:
            raise KeyNotFound(f"no key {key_id!r} in {self.path}; run `backup-manager key list` for the ids")
        if len(ids) == 1:
            raise KeyRemovalRejected(f"key {key_id} is the last key of {self.path}; add another with `key add` first")
        if key_id == self.key_id:
            raise KeyRemovalRejected(
                f"key {key_id} opened the repository in this command; run `key remove` with another passphrase"
            )
        path = self.path / "keys" / key_id
        path.unlink()
        fsync_dir(path.parent)
        logger.info("removed key key_id=%s repository=%s", key_id, self.path)

    def lock(self, *, now: float) -> RepositoryLock:
        """Return the writer lock, not yet taken; use it in a `with` block."""
        return RepositoryLock(self.path, now=now)

    def load_index(self) -> dict[bytes, IndexEntry]:
        """Read every index file into a map from chunk id to location.

        The map is kept until an index file is added or removed (by any process), so
        reading manifests and then backing up reads the index once. Callers must not
        change it.

        Raises:
            CorruptData: an index file fails authentication.
        """
        names = tuple(self._names("index"))
        if self._index is not None and self._index_names == names:
            return self._index
        self.forget_index()
        index: dict[bytes, IndexEntry] = {}
        with collector_paused():
            self._read_index_files(index, names)
        release_free_memory()
        self._index, self._index_names = index, names
        return index

    def forget_index(self) -> None:
        """Drop the index that `load_index` keeps, so its memory can go back."""
        self._index, self._index_names = None, ()

    def _read_index_files(self, index: dict[bytes, IndexEntry], paths: tuple[Path, ...]) -> None:
        for path in paths:
            sealed = path.read_bytes()
            plain = open_sealed(self.key, sealed, _INDEX_ASSOCIATED, f"index {path.name}")
            for pack_id, rows in json.loads(plain).items():
                pack_id = sys.intern(pack_id)
                for row in rows:
                    # A fifth field names the base of a delta chunk.
                    base = bytes.fromhex(row[4]) if len(row) > 4 else None
                    index[bytes.fromhex(row[0])] = IndexEntry(pack_id, row[1], row[2], row[3], base)

    def write_index(self, packs: list[PackInfo]) -> Path:
        """Write one index file naming the chunks of `packs` and return its path."""
        document = {
            info.pack_id: [
                [e.chunk_id.hex(), e.offset, e.length, e.raw_length, *([e.base.hex()] if e.base else [])]
                for e in info.entries
            ]
            for info in packs
        }
        sealed = seal(self.key, json.dumps(document).encode(), _INDEX_ASSOCIATED)
        path = self.path / "index" / secrets.token_hex(16)
        write_atomic(path, sealed)
        self.forget_index()
        return path

    def index_files(self) -> list[Path]:
        """Return the paths of every finished index file."""
        return self._names("index")

    def rebuild_index(self) -> int:
        """Replace every index file with one built from the pack headers; return the chunk count."""
        packs: list[PackInfo] = []
        for pack_id in self.pack_ids():
            data = pack_path(self.path, pack_id).read_bytes()
            packs.append(PackInfo(pack_id, read_pack_header(data, self.key, pack_id)))
        old = self._names("index")
        self.write_index(packs)
        for path in old:
            path.unlink()
        count = sum(len(info.entries) for info in packs)
        logger.info("rebuilt index repository=%s packs=%d chunks=%d", self.path, len(packs), count)
        return count

    def pack_ids(self) -> list[str]:
        """Return the ids of every finished pack."""
        return sorted(
            path.name
            for path in (self.path / "data").glob("??/*")
            if not path.name.startswith(TEMP_PREFIX)
        )

    def read_chunk(
        self,
        entry: IndexEntry,
        expected_id: bytes,
        pack: bytes | None = None,
        *,
        index: dict[bytes, IndexEntry] | None = None,
    ) -> bytes:
        """Read, authenticate and return one chunk's plaintext.

        Args:
            pack: The pack's bytes when the caller has read them already.
            index: Locates the base of a delta chunk; without it a delta chunk is an error.

        Raises:
            CorruptData: the chunk fails authentication or its id does not match.
        """
        if pack is None:
            with pack_path(self.path, entry.pack_id).open("rb") as handle:
                handle.seek(entry.offset)
                sealed: bytes | memoryview = handle.read(entry.length)
        else:
            sealed = memoryview(pack)[entry.offset : entry.offset + entry.length]
        loader = None
        if index is not None:

            def loader(base_id: bytes) -> bytes:
                return self.read_base(base_id, index, entry, pack)

        return self.open_chunk(entry, expected_id, sealed, base_loader=loader)

    def read_base(
        self, base_id: bytes, index: dict[bytes, IndexEntry], child: IndexEntry, pack: bytes | None = None
    ) -> bytes:
        """Read the base chunk of the delta chunk at `child`. `pack` is the child's pack when already read.

        Raises:
            CorruptData: the base is not in the index, is itself a delta, or fails its checks.
        """
        location = index.get(base_id)
        if location is None:
            raise CorruptData(
                f"pack {child.pack_id}: base chunk {base_id.hex()} of a delta chunk is not in the index"
            )
        if location.base is not None:
            raise CorruptData(f"pack {location.pack_id} chunk {base_id.hex()}: a delta's base is itself a delta")
        same = pack if pack is not None and location.pack_id == child.pack_id else None
        return self.read_chunk(location, base_id, same)

    def open_chunk(
        self, entry: IndexEntry, expected_id: bytes, sealed: bytes | memoryview, *, base_loader: BaseLoader | None = None
    ) -> bytes:
        """Authenticate and decrypt one sealed chunk read from `entry`'s pack, and check its id.

        Args:
            base_loader: Returns the plaintext of a delta chunk's base.

        Raises:
            CorruptData: the chunk fails authentication or its id does not match.
        """
        description = f"pack {entry.pack_id} chunk {expected_id.hex()}"
        plain = open_sealed(self.key, sealed, chunk_associated(expected_id), description, base_loader=base_loader)
        if self.chunk_id(plain) != expected_id:
            raise CorruptData(f"{description}: content does not match the chunk id")
        return plain

    def snapshot_ids(self) -> list[str]:
        """Return the ids of every snapshot, oldest first."""
        return sorted((path.name for path in self._names("snapshots")), key=_snapshot_order)

    def load_summaries(self) -> tuple[list[Snapshot], list[DamagedSnapshot]]:
        """Read every snapshot manifest without its entries, oldest first.

        A snapshot file that fails authentication or is not valid does not stop the
        others: it is returned in the second list and logged as a warning.
        """
        readable: list[Snapshot] = []
        damaged: list[DamagedSnapshot] = []
        for snapshot_id in self.snapshot_ids():
            try:
                readable.append(self.load_snapshot(snapshot_id, entries=False))
            except CorruptData as err:
                logger.warning("damaged snapshot id=%s repository=%s error=%s", snapshot_id, self.path, err)
                damaged.append(DamagedSnapshot(id=snapshot_id, reason=str(err)))
        return readable, damaged

    def load_snapshot(
        self, snapshot_id: str, *, entries: bool = True, damaged_pieces: list[SkippedPath] | None = None
    ) -> Snapshot:
        """Read one snapshot manifest.

        Args:
            entries: Read the entries too; without them the snapshot is as cheap as its summary.
            damaged_pieces: When given, a manifest chunk that cannot be read does not stop
                the read: its entries are left out, and one item describing them is
                appended here. A restore uses this to restore what can be read.

        Raises:
            SnapshotNotFound: no snapshot has this id.
            CorruptData: the manifest or one of its chunks fails authentication.
        """
        path = self.path / "snapshots" / snapshot_id
        if "/" in snapshot_id or not path.is_file():
            raise SnapshotNotFound(
                f"no snapshot {snapshot_id!r} in {self.path}; run `backup-manager list` for the ids"
            )
        plain = open_sealed(self.key, path.read_bytes(), _snapshot_associated(snapshot_id), f"snapshot {snapshot_id}")
        try:
            with collector_paused():
                document = pydantic_core.from_json(plain, cache_strings="all")
                del plain
                items = document.pop("entries", [])
                snapshot = Snapshot.model_validate(document)
                if entries and snapshot.manifest_chunks is None:
                    snapshot.entries = Entry.from_manifest(items)
                del items
                if entries and snapshot.manifest_chunks is not None:
                    snapshot.entries = self._manifest_entries(snapshot, damaged_pieces)
        except (ValueError, TypeError, binascii.Error) as err:
            raise CorruptData(f"snapshot {snapshot_id}: the manifest is not valid: {err}") from err
        release_free_memory()
        return snapshot

    def _manifest_entries(self, snapshot: Snapshot, damaged_pieces: list[SkippedPath] | None) -> list[Entry]:
        """Read the entries of a snapshot from its manifest chunks.

        A cleanup in another process may have moved chunks since the index was read,
        so a chunk that is not found is looked up once more in a fresh index.
        """
        assert snapshot.manifest_chunks is not None
        entries: list[Entry] = []
        for number, hex_id in enumerate(snapshot.manifest_chunks):
            try:
                entries.extend(self.manifest_piece(snapshot.id, bytes.fromhex(hex_id)))
            except CorruptData as err:
                if damaged_pieces is None:
                    raise
                logger.error("unreadable manifest chunk id=%s chunk=%s error=%s", snapshot.id, hex_id, err)
                damaged_pieces.append(_damaged_piece(snapshot, number, err))
        return entries

    def manifest_piece(self, snapshot_id: str, identifier: bytes) -> list[Entry]:
        """Return the entries of one manifest chunk of the snapshot `snapshot_id`.

        Raises:
            CorruptData: the chunk is not indexed or fails its checks.
        """
        plain = self._read_manifest_chunk(snapshot_id, identifier)
        return Entry.from_manifest(pydantic_core.from_json(plain, cache_strings="all"))

    def piece_chunk_ids(self, snapshot_id: str, identifier: bytes) -> set[bytes]:
        """Return the file chunk ids that one manifest chunk names, without building its entries.

        Raises:
            CorruptData: the chunk is not indexed or fails its checks.
        """
        plain = self._read_manifest_chunk(snapshot_id, identifier)
        try:
            items = pydantic_core.from_json(plain, cache_strings="keys")
            return {bytes.fromhex(hex_id) for item in items for hex_id in item["chunks"]}
        except (ValueError, TypeError, KeyError) as err:
            raise CorruptData(f"snapshot {snapshot_id}: manifest chunk {identifier.hex()} is not valid: {err}") from err

    def _read_manifest_chunk(self, snapshot_id: str, identifier: bytes) -> bytes:
        """Read one manifest chunk's plaintext, with a fresh index when the cached one fails.

        A cleanup in another process may have moved chunks since the index was read.
        """
        try:
            return self._read_indexed(identifier, snapshot_id, self.load_index())
        except CorruptData:
            self.forget_index()
            return self._read_indexed(identifier, snapshot_id, self.load_index())

    def _read_indexed(self, identifier: bytes, snapshot_id: str, index: dict[bytes, IndexEntry]) -> bytes:
        location = index.get(identifier)
        if location is None:
            raise CorruptData(
                f"snapshot {snapshot_id}: manifest chunk {identifier.hex()} is not in the index; "
                "run `backup-manager integrity` to find the damage"
            )
        try:
            return self.read_chunk(location, identifier, index=index)
        except OSError as err:
            raise CorruptData(
                f"snapshot {snapshot_id}: manifest chunk {identifier.hex()} in pack {location.pack_id} cannot be "
                f"read ({err.strerror or err}); run `backup-manager integrity` to find the damage"
            ) from err

    def latest_snapshot(self, *, damaged_pieces: list[SkippedPath] | None = None) -> Snapshot:
        """Return the newest snapshot; failed runs write none, so it is ok or partial.

        `damaged_pieces` is as for `load_snapshot`.

        Raises:
            SnapshotNotFound: the repository contains no snapshot yet.
        """
        for snapshot_id in reversed(self.snapshot_ids()):
            try:
                return self.load_snapshot(snapshot_id, damaged_pieces=damaged_pieces)
            except CorruptData as err:
                raise CorruptData(
                    f"{err}; the newest snapshot cannot be read, so choose another with --id or --at "
                    "(`backup-manager list` shows which are readable)"
                ) from err
        raise SnapshotNotFound(f"no snapshots in {self.path} yet; run `backup-manager backup` first")

    def snapshot_at(self, moment: float, *, damaged_pieces: list[SkippedPath] | None = None) -> Snapshot:
        """Return the newest successful snapshot taken at or before `moment` (epoch seconds).

        A snapshot file that cannot be read is passed over, with the warning that
        `load_summaries` logs. `damaged_pieces` is as for `load_snapshot`.

        Raises:
            SnapshotNotFound: no successful snapshot is that old; the message names the oldest one.
        """
        # Ids order snapshots by whole seconds only, so the manifests' own times decide.
        readable, _damaged = self.load_summaries()
        successful = [snapshot for snapshot in readable if snapshot.status == "ok"]
        if not successful:
            raise SnapshotNotFound(f"no successful snapshots in {self.path} yet; run `backup-manager backup` first")
        candidates = [snapshot for snapshot in successful if snapshot.time <= moment]
        if candidates:
            return self.load_snapshot(max(candidates, key=lambda snapshot: snapshot.time).id, damaged_pieces=damaged_pieces)
        oldest = min(successful, key=lambda snapshot: snapshot.time)
        raise SnapshotNotFound(
            f"no successful snapshot at or before {_iso(moment)}; the oldest is {oldest.id} "
            f"from {_iso(oldest.time)}, so choose --at {_iso(oldest.time)} or later"
        )

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Remove one snapshot manifest; the caller holds the lock. Its data stays until a prune.

        Raises:
            SnapshotNotFound: no snapshot has this id.
        """
        path = self.path / "snapshots" / snapshot_id
        if "/" in snapshot_id or snapshot_id.startswith(TEMP_PREFIX) or not path.is_file():
            raise SnapshotNotFound(
                f"no snapshot {snapshot_id!r} in {self.path}; run `backup-manager list` for the ids"
            )
        path.unlink()
        fsync_dir(path.parent)
        logger.info("deleted snapshot id=%s repository=%s", snapshot_id, self.path)

    def size_bytes(self) -> int:
        """Return the total size of every file in the repository directory."""
        return sum(path.lstat().st_size for path in self.path.rglob("*") if path.is_file())

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Write a snapshot manifest atomically."""
        # Entries kept in manifest chunks are not repeated in the file.
        exclude = {"entries"} if snapshot.manifest_chunks is not None else None
        document = Snapshot.__pydantic_serializer__.to_json(snapshot, exclude=exclude)
        sealed = seal(self.key, document, _snapshot_associated(snapshot.id))
        write_atomic(self.path / "snapshots" / snapshot.id, sealed)

    def _names(self, folder: str) -> list[Path]:
        directory = self.path / folder
        return sorted(path for path in directory.iterdir() if not path.name.startswith(TEMP_PREFIX))


def sealed_file_associated(folder: str, name: str) -> bytes:
    """Return the associated data of the sealed file `name` in the folder `index` or `snapshots`.

    Raises:
        ValueError: `folder` is another folder.
    """
    if folder == "index":
        return _INDEX_ASSOCIATED
    if folder == "snapshots":
        return _snapshot_associated(name)
    raise ValueError(f"no sealed files in folder {folder!r}; expected index or snapshots")


def _validation_problems(err: ValidationError) -> str:
    """Return each problem of `err` as `field: message`, without pydantic's links."""
    problems = []
    for error in err.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "file"
        problems.append(f"{field}: {error['msg']}")
    return "; ".join(problems)


def _iso(moment: float) -> str:
    # Cut, not rounded, to whole seconds, as `--at` reads a time without a fraction.
    return datetime.fromtimestamp(math.floor(moment), tz=timezone.utc).isoformat(timespec="seconds")


def _snapshot_associated(snapshot_id: str) -> bytes:
    return b"atlas-snapshot:" + snapshot_id.encode()


def _snapshot_order(snapshot_id: str) -> tuple[int, str]:
    parts = snapshot_id.split("_")
    seconds = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0
    return seconds, snapshot_id


def _damaged_piece(snapshot: Snapshot, number: int, err: CorruptData) -> SkippedPath:
    """Describe the entries of manifest chunk `number` of `snapshot`, which cannot be read."""
    total = len(snapshot.manifest_chunks or [])
    pieces = snapshot.manifest_pieces
    if pieces is None or number >= len(pieces):
        return SkippedPath(path=f"manifest chunk {number + 1} of {total}", reason=f"its entries are not restored: {err}")
    after = f"after {display_path(pieces[number - 1].last_path)} " if number else ""
    return SkippedPath(
        path=f"{pieces[number].entries} entries {after}up to {display_path(pieces[number].last_path)}",
        reason=f"manifest chunk {number + 1} of {total} cannot be read, so they are not restored: {err}",
    )

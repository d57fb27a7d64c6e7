"""`key rotate`: move every sealed object of a repository to a new AES-256-GCM key.

Only the encryption key of the master key changes. The chunk-id key and the chunker
seed stay, so chunk ids, the chunk lists of snapshots and deduplication stay valid.
`KeyRotator.rotate` runs under the repository lock, in this order:

1. reject the rotation when key files of other passphrases exist and their removal
   was not confirmed, else delete them, because they hold the old key under
   passphrases this command does not have;
2. delete the `.tmp-` files that killed runs left;
3. write the new master key into the key file of the passphrase in use, with the
   old encryption key kept as a previous key so that `crypto.open_sealed` still opens
   objects sealed under it;
4. delete the packs that no index names, then copy each pack that still contains an
   object sealed under the old key into a new pack, re-encrypting every sealed chunk
   with its plaintext kept byte for byte and a fresh nonce. After each batch of packs
   it writes one index file naming every chunk, removes the older index files and
   then deletes the copied packs;
5. re-encrypt every index file and snapshot still sealed under the old key;
6. write the master key without the previous key.

A kill at any point leaves a repository that opens with the passphrase, in which
every location that an index file names is a pack on disk. The next `key rotate`
finds the previous key in the master key and goes on from step 4 with the same new
key. The encryption key that opens an object shows whether that object is done.

Test-only: the environment variable `ATLAS_BACKUP_TEST_ROTATE_KILL_AT` set to `STEP`
or `STEP:N` makes the process kill itself with SIGKILL at the N-th (default the first)
checkpoint named STEP. The steps are in `CHECKPOINTS`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from atlas_tui.backup.atomic import TEMP_PREFIX, fsync_dir, write_atomic
from atlas_tui.backup.crypto import KEY_BYTES, MasterKey, reseal
from atlas_tui.backup.errors import BackupError, CorruptData, KeyRotationRejected
from atlas_tui.backup.keys import rewrite_key_file
from atlas_tui.backup.models import KeyInfo
from atlas_tui.backup.packs import PackEntry, PackInfo, PackWriter, chunk_associated, pack_path, read_pack_header
from atlas_tui.backup.repository import IndexEntry, Repository, sealed_file_associated

__all__ = ["CHECKPOINTS", "KILL_AT_ENV", "KeyRotator", "RotationProgress", "RotationResult"]

KILL_AT_ENV = "ATLAS_BACKUP_TEST_ROTATE_KILL_AT"
"""Test-only environment variable: `STEP` or `STEP:N` kills the process at that checkpoint."""
CHECKPOINTS = (
    "keys-removed",
    "key-written",
    "pack-written",
    "index-written",
    "old-index-removed",
    "pack-removed",
    "snapshot-written",
    "rotated",
)
"""Names of the points where the test hook can kill a rotation, in the order they are reached."""
BATCH_MIN_BYTES = 512 * 1024**2
"""Packs copied before the index is rewritten and the old packs deleted. The rotation needs
this much free space on top of the repository, or a sixteenth of the packs' size when larger."""
MAX_BATCHES = 16
"""Upper bound on the index rewrites, which each write the whole index."""

RotationProgress = Callable[[str, int, int], None]
"""Called with a phase (`packs` or `snapshots`), the items done and the items in the phase."""
Checkpoint = Callable[[str], None]

logger = logging.getLogger(__name__)


class RotationResult(BaseModel):
    """Outcome of `key rotate`, as `--json` prints it."""

    model_config = ConfigDict(extra="forbid")

    repository: str
    key_id: str
    """Key file that contains the new master key."""
    resumed: bool = False
    """True when the command went on with a rotation that a killed run had started."""
    removed_keys: list[str] = []
    """Key files of other passphrases that were deleted."""
    packs_rewritten: int = 0
    packs_current: int = 0
    """Packs that were already sealed under the new key, by an earlier run or a backup after it."""
    unindexed_packs_deleted: int = 0
    """Packs that no index named, left by killed runs."""
    bytes_rewritten: int = 0
    """Size of the packs that were copied."""
    index_files_written: int = 0
    snapshots_rewritten: int = 0
    temporaries_removed: int = 0


class KeyRotator:
    """Rotates the encryption key of one repository opened with `passphrase`."""

    def __init__(
        self,
        repository: Repository,
        passphrase: bytes,
        *,
        batch_bytes: int | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        """Prepare a rotation.

        Args:
            passphrase: The passphrase that opened `repository`, to seal the new master key.
            batch_bytes: Pack bytes copied between index rewrites; by default the larger of
                `BATCH_MIN_BYTES` and a `MAX_BATCHES`-th of all packs.
            checkpoint: Called at each point in `CHECKPOINTS`; by default the test hook of
                `ATLAS_BACKUP_TEST_ROTATE_KILL_AT`.
        """
        self.repository = repository
        self._passphrase = passphrase
        self._batch_bytes = batch_bytes
        self._checkpoint = checkpoint or kill_hook_from_environment()
        self._progress: RotationProgress = lambda phase, done, total: None

    def other_keys(self) -> list[KeyInfo]:
        """Return the key files of other passphrases, which a rotation deletes."""
        return [item for item in self.repository.list_keys() if not item.current]

    def rotate(
        self, *, now: float, remove_keys: Collection[str] = (), progress: RotationProgress | None = None
    ) -> RotationResult:
        """Move every sealed object to a new encryption key, or finish a rotation a killed run started.

        Args:
            remove_keys: Ids of other passphrases' key files that the user agreed to delete.
            progress: Called after each pack and snapshot; an exception it raises stops the
                rotation, which the next run finishes.

        Raises:
            KeyRotationRejected: a key file of another passphrase is not in `remove_keys`.
            RepositoryLocked: another live process holds the repository lock.
            CorruptData: an object opens with no key, or the index names chunks a pack lacks.
        """
        if progress is not None:
            self._progress = progress
        path = self.repository.path
        logger.info("key rotate started repository=%s key_id=%s", path, self.repository.key_id)
        try:
            with self.repository.lock(now=now):
                result = self._rotate_locked(set(remove_keys))
        except (BackupError, OSError) as err:
            logger.warning("key rotate stopped repository=%s key_id=%s: %s", path, self.repository.key_id, err)
            if isinstance(err, CorruptData) and self.repository.key.previous:
                # NOTE: a pack that stays damaged stops every later rotation too, because no
                # command drops its chunks yet; both keys keep working meanwhile.
                raise CorruptData(
                    f"{err}; the rotation is unfinished and every command still reads both keys: run "
                    "`backup-manager integrity`, restore the damaged packs from another copy, "
                    "then run `key rotate` again"
                ) from err
            raise
        logger.info(
            "key rotate finished repository=%s key_id=%s resumed=%s removed_keys=%s packs_rewritten=%d "
            "packs_current=%d unindexed_packs_deleted=%d snapshots_rewritten=%d",
            path, result.key_id, result.resumed, ",".join(result.removed_keys) or "-", result.packs_rewritten,
            result.packs_current, result.unindexed_packs_deleted, result.snapshots_rewritten,
        )
        return result

    def _rotate_locked(self, remove_keys: set[str]) -> RotationResult:
        others = [item.id for item in self.other_keys()]
        unconfirmed = [key_id for key_id in others if key_id not in remove_keys]
        if unconfirmed:
            raise KeyRotationRejected(str(self.repository.path), unconfirmed)
        result = RotationResult(repository=str(self.repository.path), key_id=self.repository.key_id)
        for key_id in others:
            self.repository.remove_key(key_id)
        result.removed_keys = others
        self._checkpoint("keys-removed")

        result.temporaries_removed = self._remove_temporaries()
        result.resumed = bool(self.repository.key.previous)
        if result.resumed:
            logger.info("key rotate continues an unfinished rotation repository=%s", self.repository.path)
        else:
            self._start_new_key()
        self._rotate_packs(result)
        self._rotate_snapshots(result)
        self._checkpoint("rotated")
        self._drop_previous_keys()
        return result

    def _remove_temporaries(self) -> int:
        temporaries = _temporaries(self.repository.path)
        for path in temporaries:
            path.unlink(missing_ok=True)
        return len(temporaries)

    def _start_new_key(self) -> None:
        """Write a master key with a new encryption key and the current one as previous key."""
        old = self.repository.key
        new = replace(old, encryption=os.urandom(KEY_BYTES), previous=(old.encryption,))
        self._write_master(new)
        logger.info("key rotate wrote the new data key repository=%s key_id=%s", self.repository.path,
                    self.repository.key_id)
        self._checkpoint("key-written")

    def _drop_previous_keys(self) -> None:
        self._write_master(replace(self.repository.key, previous=()))
        logger.info("key rotate removed the old data key repository=%s key_id=%s", self.repository.path,
                    self.repository.key_id)

    def _write_master(self, master: MasterKey) -> None:
        repository = self.repository
        rewrite_key_file(repository.path / "keys", repository.config.id, repository.key_id, master, self._passphrase)
        repository.key = master

    def _rotate_packs(self, result: RotationResult) -> None:
        """Copy every pack with an object under an old key, then rewrite the index if it is still old."""
        index = self.repository.load_index()
        by_pack: dict[str, list[bytes]] = defaultdict(list)
        for identifier, entry in index.items():
            by_pack[entry.pack_id].append(identifier)
        on_disk = self.repository.pack_ids()
        self._report_missing(set(by_pack) - set(on_disk))
        for pack_id in on_disk:
            if pack_id not in by_pack:
                pack_path(self.repository.path, pack_id).unlink(missing_ok=True)
                result.unindexed_packs_deleted += 1
                logger.info("key rotate deleted a pack no index names pack=%s", pack_id)

        indexed = [pack_id for pack_id in on_disk if pack_id in by_pack]
        sizes = {pack_id: pack_path(self.repository.path, pack_id).stat().st_size for pack_id in indexed}
        batch_limit = self._batch_bytes or max(BATCH_MIN_BYTES, math.ceil(sum(sizes.values()) / MAX_BATCHES))
        locations = {identifier: _pack_entry(identifier, entry) for identifier, entry in index.items()}
        copied: list[str] = []
        copied_bytes = 0
        for done, pack_id in enumerate(indexed, start=1):
            new_pack = self._rotate_pack(pack_id, by_pack[pack_id], index)
            if new_pack is None:
                result.packs_current += 1
            else:
                for entry in new_pack.entries:
                    locations[entry.chunk_id] = (new_pack.pack_id, entry)
                copied.append(pack_id)
                copied_bytes += sizes[pack_id]
                result.packs_rewritten += 1
                result.bytes_rewritten += sizes[pack_id]
            if copied_bytes >= batch_limit:
                self._replace_index(locations, copied, result)
                copied, copied_bytes = [], 0
            self._progress("packs", done, len(indexed))
        if copied or self._index_has_old_key():
            self._replace_index(locations, copied, result)

    def _rotate_pack(self, pack_id: str, identifiers: list[bytes], index: dict[bytes, IndexEntry]) -> PackInfo | None:
        """Copy the indexed chunks of one pack into a new pack under the current key.

        Returns None, and writes nothing, when the header and every chunk already open with it.
        """
        key = self.repository.key
        data = pack_path(self.repository.path, pack_id).read_bytes()
        stale = not _header_opens_with_current_key(data, key, pack_id)
        expected = {(identifier, index[identifier].offset) for identifier in identifiers}
        sealed: dict[tuple[bytes, int], bytes | memoryview] = {}
        for item in read_pack_header(data, key, pack_id):
            original = memoryview(data)[item.offset : item.offset + item.length]
            description = f"pack {pack_id} chunk {item.chunk_id.hex()}"
            try:
                resealed = reseal(key, original, chunk_associated(item.chunk_id), description)
            except CorruptData:
                if (item.chunk_id, item.offset) in expected:
                    raise
                # A chunk that no index places here is not copied, so the new pack leaves it out.
                stale = True
                continue
            stale = stale or resealed is not None
            sealed[(item.chunk_id, item.offset)] = original if resealed is None else resealed
        if not stale:
            return None

        writer = PackWriter(self.repository.path, key)
        try:
            for identifier in sorted(identifiers, key=lambda chunk: index[chunk].offset):
                entry = index[identifier]
                blob = sealed.get((identifier, entry.offset))
                if blob is None or len(blob) != entry.length:
                    raise CorruptData(
                        f"pack {pack_id}: the index places chunk {identifier.hex()} at offset {entry.offset}, "
                        "but the pack header does not list it there; run `backup-manager integrity`"
                    )
                writer.add_sealed(identifier, blob, entry.raw_length, entry.base)
            new_pack = writer.finish()
        except BaseException:
            writer.discard()
            raise
        logger.debug("key rotate copied pack old=%s new=%s chunks=%d", pack_id, new_pack.pack_id, len(identifiers))
        self._checkpoint("pack-written")
        return new_pack

    def _replace_index(
        self, locations: dict[bytes, tuple[str, PackEntry]], copied: list[str], result: RotationResult
    ) -> None:
        """Write one index file naming every chunk, remove the older index files, then delete `copied`."""
        old_files = self.repository.index_files()
        by_pack: dict[str, list[PackEntry]] = defaultdict(list)
        for pack_id, entry in locations.values():
            by_pack[pack_id].append(entry)
        written = self.repository.write_index([PackInfo(pack_id, entries) for pack_id, entries in by_pack.items()])
        result.index_files_written += 1
        self._checkpoint("index-written")

        for path in old_files:
            if path != written:
                path.unlink()
        # The old index files must be gone for good before the packs they name are.
        fsync_dir(self.repository.path / "index")
        self._checkpoint("old-index-removed")
        for pack_id in copied:
            pack_path(self.repository.path, pack_id).unlink(missing_ok=True)
            self._checkpoint("pack-removed")
        logger.info(
            "key rotate replaced the index repository=%s index=%s old_packs_deleted=%d",
            self.repository.path, written.name, len(copied),
        )

    def _index_has_old_key(self) -> bool:
        for path in self.repository.index_files():
            associated = sealed_file_associated("index", path.name)
            if reseal(self.repository.key, path.read_bytes(), associated, f"index {path.name}") is not None:
                return True
        return False

    def _rotate_snapshots(self, result: RotationResult) -> None:
        snapshot_ids = self.repository.snapshot_ids()
        for done, snapshot_id in enumerate(snapshot_ids, start=1):
            path = self.repository.path / "snapshots" / snapshot_id
            associated = sealed_file_associated("snapshots", snapshot_id)
            resealed = reseal(self.repository.key, path.read_bytes(), associated, f"snapshot {snapshot_id}")
            if resealed is not None:
                write_atomic(path, resealed)
                result.snapshots_rewritten += 1
                self._checkpoint("snapshot-written")
            self._progress("snapshots", done, len(snapshot_ids))
        logger.info(
            "key rotate rewrote snapshots repository=%s snapshots=%d of %d",
            self.repository.path, result.snapshots_rewritten, len(snapshot_ids),
        )

    def _report_missing(self, missing: set[str]) -> None:
        if missing:
            # Rotation is no repair: their index entries stay as they are, and `integrity` names them.
            logger.warning(
                "key rotate found indexed packs missing on disk repository=%s packs=%s",
                self.repository.path, ",".join(sorted(missing)),
            )


def kill_hook_from_environment() -> Checkpoint:
    """Return the checkpoint hook that `ATLAS_BACKUP_TEST_ROTATE_KILL_AT` names, or one that does nothing.

    Raises:
        ValueError: the variable names no checkpoint or a count below 1.
    """
    spec = os.environ.get(KILL_AT_ENV, "")
    if not spec:
        return lambda step: None
    step, _, count = spec.partition(":")
    if step not in CHECKPOINTS or not (count or "1").isdigit() or int(count or "1") < 1:
        raise ValueError(
            f"invalid {KILL_AT_ENV}={spec!r}; use STEP or STEP:N with STEP one of {', '.join(CHECKPOINTS)}"
        )
    target = int(count or "1")
    reached: Counter[str] = Counter()

    def checkpoint(name: str) -> None:
        reached[name] += 1
        if name == step and reached[name] == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


def _pack_entry(identifier: bytes, entry: IndexEntry) -> tuple[str, PackEntry]:
    return entry.pack_id, PackEntry(identifier, entry.offset, entry.length, entry.raw_length, entry.base)


def _header_opens_with_current_key(data: bytes, key: MasterKey, pack_id: str) -> bool:
    try:
        read_pack_header(data, replace(key, previous=()), pack_id)
    except CorruptData:
        return False
    return True


def _temporaries(root: Path) -> list[Path]:
    folders = [root / "data", root / "index", root / "snapshots", root / "keys"]
    folders += [path for path in (root / "data").iterdir() if path.is_dir()]
    return [path for folder in folders for path in folder.glob(f"{TEMP_PREFIX}*") if path.is_file()]

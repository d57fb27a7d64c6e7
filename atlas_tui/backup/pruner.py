"""`cleanup`: apply retention, then prune data that no remaining snapshot uses.

`Pruner.cleanup` runs under the repository lock, in this order:

1. remove `.tmp-` files and `.tmp-sqlite-` database copy directories that killed runs
   left (the lock proves their writers are gone);
2. delete the manifests of snapshots that `retention.select_kept` does not keep;
3. sort every pack on disk by the chunks that the index places in it: all used
   (kept), none used or not indexed at all (deleted), some used (rewritten);
4. copy the used chunks of rewritten packs into new packs, as sealed, after
   authenticating them (a chunk is used when a kept snapshot names it or a used
   delta chunk is stored against it);
5. write one index file naming every used chunk, then remove the older index files;
6. delete the unused and rewritten packs.

Before step 1 every snapshot is read. When a snapshot file cannot be read, the
chunks it uses are unknown, so cleanup raises `CleanupRejected` and changes nothing.

Invariant: at every step each location that an index file names is a pack on disk,
so a kill at any point leaves a repository that `integrity` accepts and a next
backup can use. What a kill leaves behind (new packs without an index, old packs
no index names) is what step 3 deletes in the next run.

NOTE: `restore`, `verify` and `integrity` take no lock. A restore or verify that
finds a pack gone rereads the index and follows chunks that a cleanup moved, but an
`integrity` that runs while a cleanup deletes packs can fail with a missing pack,
and succeeds when run again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from atlas_tui.backup.atomic import TEMP_PREFIX
from atlas_tui.backup.errors import CleanupRejected, CorruptData
from atlas_tui.backup.models import CleanupResult, DamagedSnapshot, RetentionPolicy, Snapshot
from atlas_tui.backup.packs import PACK_MAGIC, PackEntry, PackInfo, PackWriter, pack_path
from atlas_tui.backup.repository import IndexEntry, Repository, with_bases
from atlas_tui.backup.retention import select_kept
from atlas_tui.backup.sqlite_copy import remove_scratch_directories, scratch_directories

__all__ = ["Pruner"]

_PACK_OVERHEAD = 64
"""Bytes of magic, sealed header framing and trailer in a pack, for the dry-run estimate."""
_HEADER_ENTRY_BYTES = 48

logger = logging.getLogger(__name__)


@dataclass
class _Plan:
    """Packs sorted by what happens to them, and where each used chunk is now."""

    keep: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    rewrite: list[str] = field(default_factory=list)
    used_in: dict[str, list[tuple[bytes, IndexEntry]]] = field(default_factory=dict)
    """Pack id -> the used chunks that the index places in it."""


class Pruner:
    """Applies retention and prunes one repository."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._index: dict[bytes, IndexEntry] = {}

    def cleanup(self, policy: RetentionPolicy, *, now: float, dry_run: bool = False) -> CleanupResult:
        """Remove the snapshots `policy` does not keep and the data only they used.

        With `dry_run` nothing changes and `freed_bytes` is an estimate.

        Raises:
            RepositoryLocked: another live process holds the repository lock.
            CleanupRejected: a snapshot file cannot be read; nothing was changed.
            CorruptData: a chunk to copy failed authentication; nothing was deleted after it.
        """
        logger.info("cleanup started repository=%s dry_run=%s", self.repository.path, dry_run)
        with self.repository.lock(now=now):
            result = self._cleanup_locked(policy, now, dry_run)
        logger.info(
            "cleanup finished repository=%s removed_snapshots=%d deleted_packs=%d rewritten_packs=%d freed_bytes=%d",
            self.repository.path, len(result.removed_snapshots), len(result.deleted_packs),
            len(result.rewritten_packs), result.freed_bytes,
        )
        return result

    def _cleanup_locked(self, policy: RetentionPolicy, now: float, dry_run: bool) -> CleanupResult:
        size_before = self.repository.size_bytes()
        snapshots, damaged = self._load_snapshots()
        keep_rules = select_kept((snapshot.summary() for snapshot in snapshots.values()), policy, now=now)
        removed = [snapshot_id for snapshot_id in snapshots if snapshot_id not in keep_rules]
        if damaged:
            plan = CleanupResult(
                dry_run=True, kept_snapshots=keep_rules, removed_snapshots=removed, damaged_snapshots=damaged
            )
            raise CleanupRejected(str(self.repository.path), plan)
        temporaries = self._temporaries()
        used = _used_chunks(snapshot for snapshot_id, snapshot in snapshots.items() if snapshot_id in keep_rules)
        plan = self._plan(used)
        result = CleanupResult(
            dry_run=dry_run, kept_snapshots=keep_rules, removed_snapshots=removed, deleted_packs=plan.delete,
            rewritten_packs=plan.rewrite, removed_temporaries=len(temporaries),
        )
        if dry_run:
            scratch = scratch_directories(self.repository.path)
            result.removed_temporaries += len(scratch)
            result.freed_bytes = self._estimate_freed(plan, temporaries, scratch)
            return result

        for path in temporaries:
            path.unlink(missing_ok=True)
        result.removed_temporaries += remove_scratch_directories(self.repository.path)[0]
        for snapshot_id in removed:
            self.repository.delete_snapshot(snapshot_id)
        new_packs = self._write_rewrites(plan)
        result.new_packs = [info.pack_id for info in new_packs]
        self._replace_index(plan, new_packs)
        for pack_id in plan.delete + plan.rewrite:
            self._delete_pack(pack_id)
        result.freed_bytes = size_before - self.repository.size_bytes()
        return result

    def _load_snapshots(self) -> tuple[dict[str, Snapshot], list[DamagedSnapshot]]:
        """Read every snapshot with its entries; the ones that cannot be read come back as damaged."""
        snapshots: dict[str, Snapshot] = {}
        damaged: list[DamagedSnapshot] = []
        for snapshot_id in self.repository.snapshot_ids():
            try:
                snapshots[snapshot_id] = self.repository.load_snapshot(snapshot_id)
            except CorruptData as err:
                logger.warning("cleanup cannot read snapshot id=%s error=%s", snapshot_id, err)
                damaged.append(DamagedSnapshot(id=snapshot_id, reason=str(err)))
        return snapshots, damaged

    def _temporaries(self) -> list[Path]:
        root = self.repository.path
        folders = [root / "data", root / "index", root / "snapshots", root / "keys"]
        folders += [path for path in (root / "data").iterdir() if path.is_dir()]
        return sorted(path for folder in folders for path in folder.glob(f"{TEMP_PREFIX}*") if path.is_file())

    def _plan(self, used: set[bytes]) -> _Plan:
        by_pack: dict[str, list[tuple[bytes, IndexEntry]]] = defaultdict(list)
        index = self.repository.load_index()
        self._index = index
        used = with_bases(used, index)
        for identifier, entry in index.items():
            by_pack[entry.pack_id].append((identifier, entry))
        plan = _Plan()
        on_disk = self.repository.pack_ids()
        lost = sum(1 for pack_id in set(by_pack) - set(on_disk) for item in by_pack[pack_id] if item[0] in used)
        if lost:
            # The new index leaves these chunks out, so the next backup stores them again if the files still exist.
            logger.warning("used chunks in missing packs repository=%s chunks=%d", self.repository.path, lost)
        for pack_id in on_disk:
            indexed = by_pack.get(pack_id, [])
            needed = [item for item in indexed if item[0] in used]
            if not needed:
                plan.delete.append(pack_id)
                continue
            plan.used_in[pack_id] = needed
            (plan.keep if len(needed) == len(indexed) else plan.rewrite).append(pack_id)
        return plan

    def _write_rewrites(self, plan: _Plan) -> list[PackInfo]:
        """Copy the used chunks of every pack to rewrite into new packs and return those packs."""
        if not plan.rewrite:
            return []
        finished: list[PackInfo] = []
        writer = PackWriter(self.repository.path, self.repository.key)
        try:
            for pack_id in plan.rewrite:
                data = pack_path(self.repository.path, pack_id).read_bytes()
                for identifier, entry in plan.used_in[pack_id]:
                    # Authenticated first, then copied as sealed, so a delta chunk stays a delta.
                    self.repository.read_chunk(entry, identifier, pack=data, index=self._index)
                    sealed = memoryview(data)[entry.offset : entry.offset + entry.length]
                    writer.add_sealed(identifier, sealed, entry.raw_length, entry.base)
                    if writer.size >= self.repository.config.pack_size:
                        finished.append(writer.finish())
                        writer = PackWriter(self.repository.path, self.repository.key)
            if writer.size > len(PACK_MAGIC):
                finished.append(writer.finish())
            else:
                writer.discard()
        except BaseException:
            writer.discard()
            raise
        return finished

    def _replace_index(self, plan: _Plan, new_packs: list[PackInfo]) -> None:
        """Write one index file for the used chunks, then remove every older index file."""
        old = self.repository.index_files()
        packs = [
            PackInfo(pack_id, [PackEntry(identifier, entry.offset, entry.length, entry.raw_length, entry.base)
                               for identifier, entry in plan.used_in[pack_id]])
            for pack_id in plan.keep
        ]
        written = self.repository.write_index(packs + new_packs)
        for path in old:
            if path != written:
                path.unlink()

    def _delete_pack(self, pack_id: str) -> None:
        pack_path(self.repository.path, pack_id).unlink(missing_ok=True)
        logger.debug("deleted pack pack=%s", pack_id)

    def _estimate_freed(self, plan: _Plan, temporaries: list[Path], scratch: list[Path]) -> int:
        freed = sum(path.stat().st_size for path in temporaries)
        freed += sum(path.lstat().st_size for directory in scratch for path in directory.rglob("*") if path.is_file())
        for pack_id in plan.delete + plan.rewrite:
            freed += pack_path(self.repository.path, pack_id).stat().st_size
        for pack_id in plan.rewrite:
            freed -= sum(entry.length + _HEADER_ENTRY_BYTES for _identifier, entry in plan.used_in[pack_id])
        if plan.rewrite:
            freed -= _PACK_OVERHEAD
        return max(freed, 0)


def _used_chunks(snapshots: Iterable[Snapshot]) -> set[bytes]:
    used = set()
    for snapshot in snapshots:
        used.update(bytes.fromhex(hex_id) for hex_id in snapshot.manifest_chunks or ())
        used.update(bytes.fromhex(hex_id) for entry in snapshot.entries for hex_id in entry.chunks)
    return used

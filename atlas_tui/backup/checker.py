"""Checks that snapshots can be restored: `verify` (test restore) and `integrity` (every chunk).

`verify` restores a snapshot into a temporary directory and compares each restored
entry with the manifest: type, size, permissions, mtime, symlink target and the
keyed content hash of every file. `integrity` reads every pack that the checked
snapshots use, compares its SHA-256 with its name, authenticates its header and
decrypts every chunk they need, then names each damaged pack together with every
snapshot that uses a chunk from it. A snapshot file that cannot be read is named
as damaged too, and the check goes on with the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from atlas_tui.backup.errors import BackupError, CorruptData
from atlas_tui.backup.models import DamagedPack, DamagedSnapshot, Entry, IntegrityResult, Snapshot, VerifyResult
from atlas_tui.backup.packs import pack_path, read_pack_header
from atlas_tui.backup.repository import IndexEntry, Repository, with_bases
from atlas_tui.backup.restorer import Restorer

__all__ = ["check_integrity", "verify_snapshot"]

_READ_SIZE = 1024 * 1024
_MISSING = "(missing)"

logger = logging.getLogger(__name__)


def verify_snapshot(
    repository: Repository,
    snapshot: Snapshot,
    scratch: Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """Restore `snapshot` into a temporary directory under `scratch` and compare it with the manifest.

    A snapshot recorded as partial never verifies as ok: its status stays partial.

    Args:
        progress: Called with the entries and file bytes done so far, counted over
            both phases. The restore goes over the entries and their bytes once and
            the comparison once more, so the counts end near twice the snapshot's.
            An exception it raises stops the verify.
    """
    result = VerifyResult(id=snapshot.id, status="ok")
    with tempfile.TemporaryDirectory(prefix="atlas-verify-", dir=scratch) as directory:
        try:
            restored = Restorer(repository).restore(snapshot, Path(directory), progress=progress)
        except BackupError as err:
            result.status = "failed"
            result.mismatches.append(f"test restore failed: {err}")
            return result
        for item in restored.damaged:
            result.mismatches.append(f"{item.path}: test restore failed: {item.reason}")
        skipped = {item.path for item in restored.not_restored + restored.damaged}
        restored_entries = sum(1 for entry in snapshot.entries if entry.type != "symlink")
        compared_bytes = 0
        for entry in snapshot.entries:
            if entry.display_path() in skipped:
                continue
            problem = _compare(repository, os.path.join(os.fsencode(directory), entry.path), entry)
            result.checked += 1
            if problem:
                result.mismatches.append(f"{entry.display_path()}: {problem}")
            if progress is not None:
                compared_bytes += entry.size
                progress(restored_entries + result.checked, restored.bytes + compared_bytes)
    for item in restored.not_restored:
        result.notes.append(f"{item.path} not restored: {item.reason}")
    if result.mismatches:
        result.status = "failed"
    elif snapshot.status != "ok":
        result.status = snapshot.status
        result.notes.append(f"the snapshot itself is {snapshot.status}: the backup could not read every path")
    logger.info("verify finished id=%s status=%s checked=%d", snapshot.id, result.status, result.checked)
    return result


def check_integrity(
    repository: Repository, snapshot_ids: list[str], *, progress: Callable[[int, int], None] | None = None
) -> IntegrityResult:
    """Read and authenticate every chunk that the snapshots `snapshot_ids` use.

    Args:
        progress: Called after each pack with the packs checked and the packs to
            check; an exception it raises stops the check.
    """
    index = repository.load_index()
    pieces: dict[str, set[bytes]] = {}
    needed: set[bytes] = set()
    result = IntegrityResult(snapshots=snapshot_ids)
    for snapshot_id in snapshot_ids:
        try:
            needed |= _snapshot_chunks(repository, snapshot_id, index, pieces)
        except CorruptData as err:
            logger.warning("integrity cannot read snapshot id=%s error=%s", snapshot_id, err)
            result.damaged_snapshots.append(DamagedSnapshot(id=snapshot_id, reason=str(err)))
    pieces.clear()
    by_pack: dict[str, set[bytes]] = defaultdict(set)
    missing: set[bytes] = set()
    for identifier in needed:
        location = index.get(identifier)
        if location is None:
            missing.add(identifier)
        else:
            by_pack[location.pack_id].add(identifier)

    damaged: dict[str, DamagedPack] = {}
    if missing:
        damaged[_MISSING] = DamagedPack(pack=_MISSING, reason="chunks not in any index", chunks=len(missing))
    # Worker threads check whole packs in parallel: reading, SHA-256, AES-GCM, zstd and
    # BLAKE3 release the GIL. Results are taken in pack order, so progress stays ordered.
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="integrity")
    try:
        checks = [
            (pack_id, identifiers, pool.submit(_check_pack, repository, pack_id, identifiers, index))
            for pack_id, identifiers in sorted(by_pack.items())
        ]
        for pack_id, identifiers, check in checks:
            problem, bad = check.result()
            result.packs += 1
            result.chunks += len(identifiers)
            if problem:
                damaged[pack_id] = DamagedPack(pack=pack_id, reason=problem, chunks=bad)
            if progress is not None:
                progress(result.packs, len(by_pack))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _name_affected_snapshots(repository, damaged, index, missing)
    result.damaged = list(damaged.values())
    logger.info(
        "integrity finished snapshots=%d packs=%d chunks=%d damaged=%d damaged_snapshots=%d",
        len(snapshot_ids), result.packs, result.chunks, len(result.damaged), len(result.damaged_snapshots),
    )
    return result


def _check_pack(
    repository: Repository, pack_id: str, identifiers: set[bytes], index: dict[bytes, IndexEntry]
) -> tuple[str, int]:
    """Return a description of the damage in one pack (empty when sound) and the bad chunk count."""
    try:
        data = pack_path(repository.path, pack_id).read_bytes()
    except OSError as err:
        return f"cannot read the pack: {err.strerror}", len(identifiers)
    problems = []
    if hashlib.sha256(data).hexdigest() != pack_id:
        problems.append("content hash does not match the pack name")
    try:
        read_pack_header(data, repository.key, pack_id)
    except CorruptData as err:
        problems.append(str(err))
    bad = 0
    for identifier in identifiers:
        location = index[identifier]
        try:
            repository.open_chunk(
                location,
                identifier,
                memoryview(data)[location.offset : location.offset + location.length],
                base_loader=lambda base_id, child=location: _base_for_check(repository, base_id, index, child, data),
            )
        except _BaseUnreadable:
            # The base's own pack is checked too and reported with the damage.
            continue
        except CorruptData as err:
            bad += 1
            if bad == 1:
                problems.append(str(err))
    if bad > 1:
        problems.append(f"{bad} chunks unreadable in total")
    return "; ".join(problems), bad


class _BaseUnreadable(Exception):
    """The base of a delta chunk failed its checks; the damage is in the base's pack."""


def _base_for_check(
    repository: Repository, base_id: bytes, index: dict[bytes, IndexEntry], child: IndexEntry, data: bytes
) -> bytes:
    try:
        return repository.read_base(base_id, index, child, data)
    except (CorruptData, OSError) as err:
        if base_id not in index:
            raise
        raise _BaseUnreadable(str(err)) from err


def _name_affected_snapshots(
    repository: Repository, damaged: dict[str, DamagedPack], index: dict[bytes, IndexEntry], missing: set[bytes]
) -> None:
    if not damaged:
        return
    pieces: dict[str, set[bytes]] = {}
    for snapshot_id in repository.snapshot_ids():
        try:
            used = _snapshot_chunks(repository, snapshot_id, index, pieces)
        except CorruptData:
            # A damaged snapshot file is reported on its own; the packs it uses are unknown.
            continue
        for identifier in used:
            location = index.get(identifier)
            pack_id = _MISSING if identifier in missing or location is None else location.pack_id
            report = damaged.get(pack_id)
            if report is not None and snapshot_id not in report.snapshots:
                report.snapshots.append(snapshot_id)


def _snapshot_chunks(
    repository: Repository, snapshot_id: str, index: dict[bytes, IndexEntry], pieces: dict[str, set[bytes]]
) -> set[bytes]:
    """Return every chunk a snapshot needs, delta bases included.

    Args:
        pieces: The file chunks named by each manifest chunk read so far; snapshots share
            most manifest chunks, and each is read once.

    When a manifest chunk is damaged its entries cannot be read: the manifest chunk
    itself is still returned, so that the check reaches and names the damaged pack.
    """
    snapshot = repository.load_snapshot(snapshot_id, entries=False)
    if snapshot.manifest_chunks is None:
        # Written before entries moved into manifest chunks: they are in the snapshot file.
        snapshot = repository.load_snapshot(snapshot_id)
    used = _chunk_ids(snapshot)
    for hex_id in snapshot.manifest_chunks or ():
        if hex_id not in pieces:
            try:
                pieces[hex_id] = repository.piece_chunk_ids(snapshot_id, bytes.fromhex(hex_id))
            except CorruptData as err:
                logger.warning("integrity cannot read the entries of snapshot id=%s error=%s", snapshot_id, err)
                pieces[hex_id] = set()
        used |= pieces[hex_id]
    return with_bases(used, index)



def _chunk_ids(snapshot: Snapshot) -> set[bytes]:
    used = {bytes.fromhex(hex_id) for hex_id in snapshot.manifest_chunks or ()}
    used.update(bytes.fromhex(hex_id) for entry in snapshot.entries for hex_id in entry.chunks)
    return used


def _compare(repository: Repository, path: bytes, entry: Entry) -> str:
    """Return what differs between the restored `path` and `entry`, or an empty string."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "missing after restore"
    kind = _kind(info.st_mode)
    if kind != entry.type:
        return f"restored as {kind}, expected {entry.type}"
    if kind == "symlink":
        target = os.readlink(path)
        return "" if target == entry.link_target else f"link target {target!r}, expected {entry.link_target!r}"
    if stat.S_IMODE(info.st_mode) != entry.mode:
        return f"mode {stat.S_IMODE(info.st_mode):o}, expected {entry.mode:o}"
    if info.st_mtime_ns != entry.mtime_ns:
        return f"mtime {info.st_mtime_ns} ns, expected {entry.mtime_ns} ns"
    if kind == "file":
        return _compare_content(repository, path, entry, info.st_size)
    return ""


def _compare_content(repository: Repository, path: bytes, entry: Entry, size: int) -> str:
    if size != entry.size:
        return f"size {size}, expected {entry.size}"
    hasher = repository.content_hasher()
    with open(path, "rb") as handle:
        while block := handle.read(_READ_SIZE):
            hasher.update(block)
    return "" if hasher.hexdigest() == entry.content_hash else "content hash differs"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFREG: "file",
        stat.S_IFDIR: "dir",
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "chardev",
        stat.S_IFBLK: "blockdev",
    }
    return kinds.get(stat.S_IFMT(mode), "unknown")

"""`backup-manager key rotate` (and `atlas backup key rotate`): the command around `KeyRotator`.

`cli_backup` parses the flags and calls `run_key_rotate` with the repository path,
the passphrase and `now`. This module requests confirmation before key files of other
passphrases are deleted, draws progress on a terminal and prints the summary or, with `--json`,
the `RotationResult`. Errors go back to `cli_backup.run_backup`, which maps them to
its exit codes (a locked repository exits 4, a rejected rotation 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from atlas_tui.backup.models import KeyInfo
    from atlas_tui.backup.rotation import RotationResult

__all__ = ["run_key_rotate"]

_EXIT_OK = 0


def run_key_rotate(
    args: argparse.Namespace, path: Path, passphrase: bytes, now: float, *, passphrase_source: str | None = None
) -> int:
    """Rotate the data key of the repository at `path` and return the exit code.

    Args:
        passphrase_source: Where the passphrase came from, named when it opens no key.

    Raises:
        KeyRotationRejected: other passphrases' key files exist and their removal was not confirmed.
        WrongPassphrase: no key file opens with `passphrase`.
        RepositoryLocked: another live process holds the repository lock.
    """
    from atlas_tui.backup.repository import Repository
    from atlas_tui.backup.rotation import KeyRotator

    wants_json = bool(getattr(args, "json", False))
    repository = Repository.open(path, passphrase, passphrase_source=passphrase_source)
    rotator = KeyRotator(repository, passphrase)
    confirmed = _confirm_removal(rotator.other_keys(), yes=args.yes, interactive=not wants_json)
    progress = _RotationProgress(sys.stderr) if sys.stderr.isatty() and not wants_json else None
    try:
        result = rotator.rotate(now=now, remove_keys=confirmed, progress=progress)
    finally:
        if progress is not None:
            progress.finish()
    if wants_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print(_summary(result))
    return _EXIT_OK


def _confirm_removal(others: list[KeyInfo], *, yes: bool, interactive: bool) -> list[str]:
    """Return the ids of other passphrases' key files that may be deleted: all with --yes or a yes on a terminal."""
    if not others:
        return []
    ids = [item.id for item in others]
    if yes:
        return ids
    if not (interactive and sys.stdin.isatty() and sys.stderr.isatty()):
        return []
    print("These keys were added with other passphrases. They hold the old data key and cannot be", file=sys.stderr)
    print("sealed under the new one without their passphrases, so key rotate deletes them:", file=sys.stderr)
    for item in others:
        added = datetime.fromtimestamp(item.created, tz=timezone.utc).isoformat(timespec="seconds")
        print(f"  {item.id}  added {added} on {item.hostname}", file=sys.stderr)
    sys.stderr.write("Delete these keys and rotate? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return ids if answer in ("y", "yes") else []


def _summary(result: RotationResult) -> str:
    lines = [
        f"rotated the data key of {result.repository} (key {result.key_id}): "
        f"{result.packs_rewritten} packs rewritten ({result.bytes_rewritten} bytes), "
        f"{result.packs_current} already under the new key, {result.snapshots_rewritten} snapshots and "
        f"{result.index_files_written} index files written"
    ]
    if result.resumed:
        lines.append("finished the rotation that an interrupted key rotate had started")
    lines += [f"removed key {key_id}" for key_id in result.removed_keys]
    if result.unindexed_packs_deleted or result.temporaries_removed:
        lines.append(
            f"deleted {result.unindexed_packs_deleted} packs that no index named "
            f"and {result.temporaries_removed} unfinished files"
        )
    return "\n".join(lines)


class _RotationProgress:
    """One status line on a terminal: the phase and the items done, redrawn at most 4 times a second."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._drawn = 0.0
        self._visible = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = self._clock()
        if now - self._drawn < 0.25 and done < total:
            return
        self._drawn = now
        self._stream.write(f"\rkey rotate: {phase} {done}/{total} ")
        self._stream.flush()
        self._visible = True

    def finish(self) -> None:
        """End the status line so the summary starts on a new one."""
        if self._visible:
            self._stream.write("\n")
            self._stream.flush()

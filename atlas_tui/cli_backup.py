"""The backup commands: `atlas backup ACTION` and the `backup-manager ACTION` script.

Both build the same actions with `add_actions`: init, backup, list, restore,
delete, cleanup, verify, integrity, status, key, unlock, schedule and logs.
Backup, cleanup, verify and integrity record their runs in the store of the data
directory (`atlas_tui.backup.jobs`), which `logs`, the schedule and the backup
metrics read. `schedule` runs `atlas_tui.backup.service` in the foreground. `atlas_tui.cli` calls
`register(commands)` while it builds its parser and `run_backup(args)` for the
`backup` command; `main()` is the `backup-manager` entry point. The repository is
`--repo`, else `backup.repository` in the config, else `backups` in the data
directory. This module reads the clock and passes `now` to the engine.

Exit codes: 0 success. 1 failure, including a wrong passphrase and a damaged
repository. 2 invalid usage or config. 3 partial: a backup that could not read
every path, the verify of such a snapshot, or a `list` or `status` that found a
snapshot file it cannot read. 4 repository locked by a live process.
`backup` and `restore` exit 130 after SIGINT and 143 after SIGTERM (128 + the signal number).
`schedule` exits 0 after SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from atlas_tui.backup.config import BackupConfig
from atlas_tui.backup.jobs import REPOSITORY_DIRNAME
from atlas_tui.config import Config, load_config, resolve_config_path, resolve_data_dir
from atlas_tui.errors import AtlasError, ConfigError
from atlas_tui.logs import LOG_LEVELS, configure_logging

if TYPE_CHECKING:
    from atlas_tui.backup.jobs import RunRecorder
    from atlas_tui.backup.models import BackupResult, BackupSetSpec, CleanupResult, SkippedPath, SnapshotSummary
    from atlas_tui.backup.repository import Repository
    from atlas_tui.backup.schedule import SetPlan
    from atlas_tui.backup.service import BackupService
    from storage.backup_runs import BackupRun

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "PRINTED_SKIPS",
    "REPOSITORY_DIRNAME",
    "add_actions",
    "main",
    "register",
    "run_backup",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
"""Some paths could not be read, so the snapshot is incomplete; or `list` or `status` found a damaged snapshot file."""
EXIT_LOCKED = 4
"""Another live process holds the repository lock."""
EXIT_INTERRUPTED = 130
"""SIGINT (Ctrl+C) stopped the command."""


DEFAULT_LOGS_LIMIT = 20
"""Runs `logs` shows without `--limit`."""

PRINTED_SKIPS = 20
"""Skipped paths that the text report of a backup prints. `--json` and the snapshot list all of them."""

logger = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup` and its actions to the `atlas` subcommands."""
    backup = commands.add_parser(
        "backup",
        help="encrypted, deduplicated backups: init, backup, list, restore, delete, cleanup, status, key, ...",
        description="Back up and restore the configured backup sets. `backup-manager` is the same command.",
    )
    add_actions(backup, suppress=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `backup-manager` and return its exit code."""
    parser = argparse.ArgumentParser(
        prog="backup-manager",
        description="Back up and restore the configured backup sets. `atlas backup` is the same command.",
    )
    add_actions(parser, suppress=False)
    args = parser.parse_args(argv)
    try:
        return run_backup(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def add_actions(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Add the common flags and every action to `parser`."""
    _add_common_flags(parser, suppress=suppress)
    actions = parser.add_subparsers(dest="backup_command", metavar="ACTION", required=True)

    init = _action(actions, "init", "create the repository with the passphrase")
    _add_chunker_flags(init)
    backup = _action(actions, "backup", "back up the configured sets, reading only changed files")
    _add_backup_flags(backup)
    _action(actions, "list", "list the snapshots, oldest first")
    restore = _action(actions, "restore", "restore a snapshot into a target directory")
    chosen = restore.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--id", metavar="ID", help="snapshot id such as backup_1767225600_manual")
    chosen.add_argument("--latest", action="store_true", help="restore the newest snapshot, ok or partial")
    chosen.add_argument(
        "--at", type=_moment, metavar="TIME",
        help=(
            "restore the newest ok snapshot taken at or before TIME (ISO 8601 with offset, or unix seconds); "
            "a TIME in whole seconds includes that whole second"
        ),
    )
    restore.add_argument("--target", type=_target, required=True, metavar="PATH", help="directory to restore into")
    delete = _action(actions, "delete", "delete a snapshot manifest; its data stays until cleanup")
    delete.add_argument("--id", required=True, metavar="ID", help="snapshot id")
    cleanup = _action(actions, "cleanup", "apply the retention settings, then delete data no snapshot uses")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be removed and change nothing")
    _action(actions, "status", "show the last run of each backup set, the repository size and snapshot count")
    _add_key_actions(
        _action(actions, "key", "add, list or remove the passphrases that open the repository, or rotate the data key")
    )
    verify = _action(actions, "verify", "restore a snapshot into a temporary directory and compare it")
    verify.add_argument("--id", required=True, metavar="ID", help="snapshot id")
    integrity = _action(actions, "integrity", "read and authenticate every chunk a snapshot uses")
    integrity.add_argument("--id", metavar="ID", help="snapshot id (default: every snapshot)")
    _action(actions, "unlock", "remove the repository lock of a process that is gone")
    _action(
        actions, "schedule",
        "run scheduled backups, cleanups and test restores in the foreground until SIGINT or SIGTERM",
    )
    _add_logs_flags(_action(actions, "logs", "show the recorded backup, cleanup and check runs with their log lines"))


def _add_logs_flags(logs: argparse.ArgumentParser) -> None:
    logs.add_argument(
        "--level", type=str.lower, choices=("debug", "info", "warning", "error"), default="info",
        help="lowest level shown; warning and error also hide runs without such lines or status (default: info)",
    )
    logs.add_argument(
        "--limit", type=_positive_int, default=DEFAULT_LOGS_LIMIT, metavar="N",
        help=f"show the N newest matching runs, oldest first (default: {DEFAULT_LOGS_LIMIT})",
    )
    logs.add_argument(
        "--kind", choices=("backup", "cleanup", "verify", "integrity", "test_restore"), default=None,
        help="show only runs of this kind",
    )


def _target(text: str) -> Path:
    # An empty value, such as an unset shell variable, would restore into the working
    # directory, over live files when that is `/`.
    if not text.strip():
        raise argparse.ArgumentTypeError("empty restore target; give the directory to restore into, such as /srv/restore")
    return Path(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}; give a whole number such as 20") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid number {value}; give 1 or more")
    return value


def _add_key_actions(key: argparse.ArgumentParser) -> None:
    key_actions = key.add_subparsers(dest="key_command", metavar="KEY_ACTION", required=True)
    add = _action(key_actions, "add", "add a key with a new passphrase; existing passphrases keep working")
    add.add_argument(
        "--new-passphrase-file", type=Path, default=None, metavar="FILE",
        help="file whose first line is the new passphrase (default: $ATLAS_BACKUP_NEW_PASSPHRASE, else a prompt)",
    )
    _action(key_actions, "list", "list the keys; the one that opened the repository is marked")
    remove = _action(key_actions, "remove", "remove a key; the last key and the key in use are kept")
    remove.add_argument("key_id", metavar="ID", help="key id from `key list`")
    rotate = _action(
        key_actions, "rotate",
        "re-encrypt every pack, index and snapshot under a new data key; run it again to finish an interrupted one",
    )
    rotate.add_argument(
        "--yes", action="store_true",
        help="delete the keys of other passphrases without asking; they cannot be sealed under the new data key",
    )


def _moment(text: str) -> float:
    """Parse `--at`: unix seconds, or ISO 8601 with a UTC offset.

    A time without a fraction of a second stands for the whole second, so the last
    instant before the next second is returned. Displayed times are cut to whole
    seconds, and a snapshot taken at 10:01:06.4 shows as 10:01:06; `--at 10:01:06`
    must include it.
    """
    whole_second = not re.search(r"[.,]\d", text)
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise argparse.ArgumentTypeError(f"invalid time {text!r}; use unix seconds or ISO 8601 with an offset")
        return _end_of_second(seconds) if whole_second else seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}; use ISO 8601 with an offset such as 2026-01-01T12:00:00+00:00, or unix seconds"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time {text!r} has no UTC offset; add one such as +00:00 or Z")
    return _end_of_second(moment.timestamp()) if whole_second else moment.timestamp()


def _end_of_second(seconds: float) -> float:
    """Return the largest float before the second that follows `seconds`."""
    return math.nextafter(math.floor(seconds) + 1.0, -math.inf)


def run_backup(args: argparse.Namespace) -> int:
    """Run the chosen backup action and return its exit code."""
    configure_logging(getattr(args, "log_level", None) or "WARNING")
    command = args.backup_command
    from atlas_tui.backup.errors import BackupError, RepositoryLocked

    try:
        config = load_config(resolve_config_path(getattr(args, "config", None)))
        return _ACTIONS[command](args, config, time.time())
    except ConfigError as err:
        for problem in err.problems:
            print(f"{err.source}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except RepositoryLocked as err:
        print(f"backup {command}: {err}", file=sys.stderr)
        return EXIT_LOCKED
    except (BackupError, AtlasError) as err:
        print(f"backup {command}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        # For example a target path that is a file, a full disk, or a repository without write permission.
        print(f"backup {command}: {err}", file=sys.stderr)
        return EXIT_FAILURE


def _add_common_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Actions repeat these with SUPPRESS so they may come before or after the action name.
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", default=default, metavar="FILE", help="JSON config file (default: $ATLAS_CONFIG)")
    parser.add_argument(
        "--data-dir", default=default, metavar="DIR", help="data directory (default: $ATLAS_DATA_DIR)"
    )
    parser.add_argument(
        "--repo", default=default, type=Path, metavar="DIR",
        help="repository directory (default: backup.repository, else backups in the data directory)",
    )
    parser.add_argument(
        "--passphrase-file", default=default, type=Path, metavar="FILE",
        help="file whose first line is the passphrase (default: $ATLAS_BACKUP_PASSPHRASE or backup.passphrase_env)",
    )
    parser.add_argument(
        "--log-level", default=default, type=str.upper, choices=LOG_LEVELS,
        help="minimum level of log records on stderr (default: WARNING)",
    )
    parser.add_argument("--json", action="store_true", default=default, help="print the result as JSON")


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    action = actions.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
    _add_common_flags(action, suppress=True)
    return action


def _add_chunker_flags(init: argparse.ArgumentParser) -> None:
    init.add_argument(
        "--chunk-avg-size", type=int, default=None, metavar="BYTES",
        help="average chunk size, a power of two (default: 1 MiB); min and max follow at 1/4 and 4x",
    )


def _add_backup_flags(backup: argparse.ArgumentParser) -> None:
    mode = backup.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="read every file, ignoring the files cache")
    mode.add_argument("--incremental", action="store_true", help="read only changed files (the default)")
    backup.add_argument(
        "--path", action="append", type=Path, default=None, metavar="PATH",
        help="back up PATH instead of the configured sets; repeat for several",
    )
    backup.add_argument(
        "--sqlite", action="store_true", help="with --path: copy SQLite databases with the online backup API",
    )
    backup.add_argument(
        "--trigger", choices=("manual", "scheduled", "test"), default="manual",
        help="what started the backup; the last part of the id (default: manual)",
    )


def _repository_path(args: argparse.Namespace, config: Config) -> Path:
    from atlas_tui.backup.jobs import repository_path

    flag = getattr(args, "repo", None)
    if flag is not None:
        return Path(flag).expanduser()
    return repository_path(config.backup, _data_dir(args))


def _data_dir(args: argparse.Namespace) -> Path:
    return resolve_data_dir(getattr(args, "data_dir", None))


def _recorder(args: argparse.Namespace, repository: Repository) -> RunRecorder:
    from atlas_tui.backup.jobs import RunRecorder

    return RunRecorder.open(_data_dir(args), repository=repository.path)


def _passphrase(args: argparse.Namespace, backup: BackupConfig, *, confirm: bool = False) -> bytes:
    from atlas_tui.backup.passphrase import read_passphrase

    return read_passphrase(backup, getattr(args, "passphrase_file", None), confirm=confirm)


def _open(args: argparse.Namespace, config: Config, *, background: bool = False) -> Repository:
    from atlas_tui.backup.passphrase import read_passphrase_and_source
    from atlas_tui.backup.repository import Repository

    passphrase, source = read_passphrase_and_source(config.backup, getattr(args, "passphrase_file", None))
    return Repository.open(
        _repository_path(args, config), passphrase, background=background, passphrase_source=source
    )


def _cmd_init(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.models import ChunkerParams
    from atlas_tui.backup.repository import Repository

    path = _repository_path(args, config)
    passphrase = _passphrase(args, config.backup, confirm=True)
    chunker = None
    if args.chunk_avg_size is not None:
        average = args.chunk_avg_size
        try:
            chunker = ChunkerParams(min_size=average // 4, avg_size=average, max_size=average * 4)
        except ValueError as err:
            print(f"backup init: --chunk-avg-size {average}: {err}", file=sys.stderr)
            return EXIT_USAGE
    repository = Repository.init(path, passphrase, now=now, chunker=chunker)
    _emit(args, {"repository": str(path), "id": repository.config.id, "key_id": repository.key_id},
          f"created backup repository {path} (id {repository.config.id})")
    return EXIT_OK


def _cmd_backup(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.errors import BackupInterrupted

    try:
        result = _run_interruptible_backup(args, config, now)
    except BackupInterrupted as err:
        # The engine's cleanup ran on the way out: unfinished packs and database copies are
        # removed, the lock is released, and no index or snapshot names missing data.
        logger.info("backup stopped by signal=%s", signal.Signals(err.signal_number).name)
        print(
            f"backup {err}: the run wrote no snapshot and the repository is consistent; "
            "`backup-manager cleanup` deletes the packs it left",
            file=sys.stderr,
        )
        return 128 + err.signal_number
    if _wants_json(args):
        print(result.model_dump_json(indent=2))
    else:
        _print_backup(result, sys.stdout)
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(result.status, EXIT_FAILURE)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _run_interruptible_backup(args: argparse.Namespace, config: Config, now: float) -> BackupResult:
    """Run the backup with SIGINT and SIGTERM raising `BackupInterrupted`, and return its result.

    A second signal, during the cleanup that the first one starts, ends the process at
    once. That leaves the repository as a SIGKILL does, which the format allows for.
    NOTE: a signal after the snapshot is saved and before the run records are finished
    marks the records failed although the snapshot exists.
    """
    from atlas_tui.backup.jobs import backup_job
    from atlas_tui.backup.models import BackupRequest

    with _interrupt_on_stop_signals():
        # The key is derived while the backup walks the source tree.
        repository = _open(args, config, background=True)
        request = BackupRequest(sets=_sets(args, config), trigger=args.trigger, full=args.full, now=now)
        progress = _TerminalProgress(sys.stderr) if sys.stderr.isatty() and not _wants_json(args) else None
        recorder = _recorder(args, repository)
        try:
            return backup_job(repository, request, recorder, progress=progress)
        finally:
            recorder.close()
            if progress is not None:
                progress.finish()


@contextlib.contextmanager
def _interrupt_on_stop_signals() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise `BackupInterrupted` in the block, then restore the previous handlers."""
    previous = {number: signal.signal(number, _raise_interrupted) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _raise_interrupted(number: int, frame: object) -> None:
    from atlas_tui.backup.errors import BackupInterrupted

    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    raise BackupInterrupted(number)


def _sets(args: argparse.Namespace, config: Config) -> list[BackupSetSpec]:
    from atlas_tui.backup.jobs import configured_sets
    from atlas_tui.backup.models import BackupSetSpec

    if args.path:
        return [BackupSetSpec(name="paths", paths=[path.absolute() for path in args.path], sqlite=args.sqlite)]
    return configured_sets(config.backup, _data_dir(args))


def _cmd_list(args: argparse.Namespace, config: Config, now: float) -> int:
    repository = _open(args, config)
    snapshots, damaged = repository.load_summaries()
    # Damaged snapshots are listed in their place among the others, oldest first.
    position = {snapshot_id: number for number, snapshot_id in enumerate(repository.snapshot_ids())}
    if _wants_json(args):
        documents = [snapshot.summary().model_dump(mode="json") for snapshot in snapshots]
        documents += [{"id": item.id, "status": "damaged", "error": item.reason} for item in damaged]
        documents.sort(key=lambda document: position.get(document["id"], len(position)))
        print(json.dumps(documents, indent=2))
        return EXIT_PARTIAL if damaged else EXIT_OK
    if not snapshots and not damaged:
        print(f"no snapshots in {repository.path}")
    lines = [(snapshot.id, _list_line(snapshot.summary())) for snapshot in snapshots]
    lines += [(item.id, f"{item.id}  damaged: {item.reason}") for item in damaged]
    for _snapshot_id, line in sorted(lines, key=lambda pair: position.get(pair[0], len(position))):
        print(line)
    for item in damaged:
        print(
            f"snapshot {item.id} cannot be read; restore its file from another copy of the repository, "
            f"or remove it with `backup-manager delete --id {item.id}`",
            file=sys.stderr,
        )
    return EXIT_PARTIAL if damaged else EXIT_OK


def _list_line(summary: SnapshotSummary) -> str:
    sets = ",".join(item.name for item in summary.sets)
    return (
        f"{summary.id}  {_iso(summary.time)}  {summary.status:<7}  {summary.files:>7} files  "
        f"{summary.bytes:>14} bytes  {sets}"
    )


def _cmd_restore(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.errors import BackupInterrupted
    from atlas_tui.backup.restore_workers import RestoreWorkers
    from atlas_tui.backup.restorer import Restorer

    workers: RestoreWorkers | None = None
    try:
        with _interrupt_on_stop_signals():
            # The worker processes start while the key is derived and the snapshot loads.
            workers = RestoreWorkers.for_cores()
            repository = _open(args, config)
            # Entries of manifest chunks that cannot be read are left out, and the rest restored.
            damaged_pieces: list[SkippedPath] = []
            if args.latest:
                snapshot = repository.latest_snapshot(damaged_pieces=damaged_pieces)
            elif args.at is not None:
                snapshot = repository.snapshot_at(args.at, damaged_pieces=damaged_pieces)
            else:
                snapshot = repository.load_snapshot(args.id, damaged_pieces=damaged_pieces)
            result = Restorer(repository, workers=workers).restore(snapshot, args.target)
            result.damaged[:0] = damaged_pieces
    except BackupInterrupted as err:
        print(
            f"backup restore: {err}; the files written before it stay in {args.target} and the last ones "
            f"may be incomplete, so run the same restore into {args.target} again",
            file=sys.stderr,
        )
        return 128 + err.signal_number
    finally:
        if workers is not None:
            workers.close()
    summary = (
        f"restored {snapshot.id} into {args.target}: {result.files} files, {result.dirs} directories, "
        f"{result.symlinks} symlinks, {result.special} special files, {result.bytes} bytes"
    )
    if result.damaged:
        summary += (
            f"; {len(result.damaged)} damaged items left out (listed on stderr and under `damaged` in --json): "
            f"run `backup-manager integrity --id {snapshot.id}` to find the damaged packs"
        )
    _emit(args, result.model_dump(mode="json"), summary)
    if _wants_json(args) and result.damaged:
        print(
            f"backup restore: {len(result.damaged)} damaged items left out; "
            f"run `backup-manager integrity --id {snapshot.id}` to find the damaged packs",
            file=sys.stderr,
        )
    if not _wants_json(args):
        for item in result.not_restored:
            print(f"not restored: {item.path}: {item.reason}", file=sys.stderr)
        for item in result.damaged[:PRINTED_SKIPS]:
            print(f"damaged, not restored: {item.path}: {item.reason}", file=sys.stderr)
        if len(result.damaged) > PRINTED_SKIPS:
            print(
                f"{len(result.damaged) - PRINTED_SKIPS} more damaged files not shown; `--json` lists all of them",
                file=sys.stderr,
            )
    return EXIT_PARTIAL if result.damaged else EXIT_OK


def _cmd_delete(args: argparse.Namespace, config: Config, now: float) -> int:
    repository = _open(args, config)
    with repository.lock(now=now):
        repository.delete_snapshot(args.id)
    _emit(args, {"deleted": args.id}, f"deleted snapshot {args.id}; run `backup-manager cleanup` to free its data")
    return EXIT_OK


def _cmd_cleanup(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.errors import CleanupRejected
    from atlas_tui.backup.jobs import cleanup_job, retention_policy

    repository = _open(args, config)
    recorder = _recorder(args, repository)
    try:
        result = cleanup_job(
            repository, retention_policy(config.backup), recorder, trigger="manual", now=now, dry_run=args.dry_run
        )
    except CleanupRejected as err:
        # What retention would do with the readable snapshots; nothing of it was done.
        _emit(args, err.plan.model_dump(mode="json"), _cleanup_text(err.plan))
        print(f"backup cleanup: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        recorder.close()
    _emit(args, result.model_dump(mode="json"), _cleanup_text(result))
    return EXIT_OK


def _cleanup_text(result: CleanupResult) -> str:
    remove, delete, rewrite = ("would remove", "would delete", "would rewrite") if result.dry_run else (
        "removed", "deleted", "rewrote"
    )
    lines = [f"{remove} snapshot {snapshot_id}" for snapshot_id in result.removed_snapshots]
    if result.damaged_snapshots:
        lines.append(
            f"cleanup: retention would keep {len(result.kept_snapshots)} readable snapshots and remove "
            f"{len(result.removed_snapshots)}; nothing was removed because "
            f"{len(result.damaged_snapshots)} snapshot files cannot be read"
        )
        return "\n".join(lines)
    lines += [f"{delete} pack {pack_id}" for pack_id in result.deleted_packs]
    lines += [f"{rewrite} pack {pack_id}" for pack_id in result.rewritten_packs]
    freed = "bytes would be freed (estimate)" if result.dry_run else "bytes freed"
    lines.append(
        f"cleanup: {len(result.kept_snapshots)} snapshots kept, {len(result.removed_snapshots)} removed, "
        f"{len(result.deleted_packs)} packs deleted, {len(result.rewritten_packs)} rewritten, "
        f"{result.removed_temporaries} unfinished files removed; {result.freed_bytes} {freed}"
    )
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.status import repository_status

    repository = _open(args, config)
    result = repository_status(repository)
    lines = [f"repository {result.repository}: {result.snapshots} snapshots, {result.size_bytes} bytes"]
    for item in result.sets:
        success = f"{item.last_success} ({_iso(item.last_success_time)})" if item.last_success_time else "never"
        lines.append(
            f"  {item.name}: last run {item.last_run} ({_iso(item.last_run_time)}) {item.last_status}, "
            f"{item.bytes} bytes; last success {success}"
        )
    for damaged in result.damaged_snapshots:
        lines.append(
            f"  damaged snapshot {damaged.id}: {damaged.reason}; restore its file from another copy of the "
            f"repository, or remove it with `backup-manager delete --id {damaged.id}`"
        )
    schedule = _schedule_plan(args, config, repository.path, now)
    document = result.model_dump(mode="json")
    document["schedule"] = [item.model_dump(mode="json") for item in schedule]
    lines += [_next_run_line(item, now) for item in schedule]
    _emit(args, document, "\n".join(lines))
    return EXIT_PARTIAL if result.damaged_snapshots else EXIT_OK


def _schedule_plan(args: argparse.Namespace, config: Config, repository: Path, now: float) -> list[SetPlan]:
    """Return when each configured set runs next, from the run records; empty without a store."""
    from atlas_tui.backup.jobs import configured_sets
    from atlas_tui.backup.schedule import BackupSchedule, ScheduleSettings, load_history
    from storage.db import DB_FILENAME, connect

    store = _data_dir(args) / DB_FILENAME
    if not store.is_file():
        return []
    settings = ScheduleSettings.from_config(config.backup, configured_sets(config.backup, _data_dir(args)))
    conn = connect(store)
    try:
        history = load_history(conn, settings, str(repository))
    except sqlite3.OperationalError as err:
        logger.warning("next runs not shown: cannot read the backup runs in %s: %s", store, err)
        return []
    finally:
        conn.close()
    return list(BackupSchedule(settings).plan(history, now).sets)


def _next_run_line(item: SetPlan, now: float) -> str:
    if item.next_run is None:
        when = "running now"
    elif item.next_run <= now:
        when = "due now"
    else:
        when = _iso(item.next_run)
    return f"  next backup of {item.name}: {when} ({item.reason})"


def _cmd_key(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.passphrase import read_new_passphrase

    if args.key_command == "rotate":
        from atlas_tui.backup.passphrase import read_passphrase_and_source
        from atlas_tui.cli_backup_rotate import run_key_rotate

        passphrase, source = read_passphrase_and_source(config.backup, getattr(args, "passphrase_file", None))
        return run_key_rotate(args, _repository_path(args, config), passphrase, now, passphrase_source=source)
    repository = _open(args, config)
    if args.key_command == "list":
        keys = repository.list_keys()
        text = "\n".join(
            f"{item.id}  {_iso(item.created)}  {item.hostname}{'  (in use)' if item.current else ''}" for item in keys
        )
        _emit(args, [item.model_dump(mode="json") for item in keys], text)
        return EXIT_OK
    with repository.lock(now=now):
        if args.key_command == "add":
            key_file = repository.add_key(read_new_passphrase(args.new_passphrase_file), now=now)
            _emit(args, {"added": key_file.id}, f"added key {key_file.id}")
        else:
            repository.remove_key(args.key_id)
            _emit(args, {"removed": args.key_id}, f"removed key {args.key_id}")
    return EXIT_OK


def _iso(moment: float) -> str:
    # Cut, not rounded, to whole seconds, so that `--at` with a shown time includes the snapshot shown.
    return datetime.fromtimestamp(math.floor(moment), tz=timezone.utc).isoformat(timespec="seconds")


def _cmd_verify(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.jobs import verify_job

    repository = _open(args, config)
    snapshot = repository.load_snapshot(args.id)
    recorder = _recorder(args, repository)
    try:
        result = verify_job(repository, snapshot, recorder, kind="verify", trigger="manual", now=now, locked=False)
    finally:
        recorder.close()
    lines = [f"verify {result.id}: {result.status}, {result.checked} entries compared"]
    lines += [f"  mismatch: {line}" for line in result.mismatches] + [f"  note: {line}" for line in result.notes]
    _emit(args, result.model_dump(mode="json"), "\n".join(lines))
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL}.get(result.status, EXIT_FAILURE)


def _cmd_integrity(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.jobs import check_job

    from atlas_tui.backup.errors import CorruptData

    repository = _open(args, config)
    ids = [args.id] if args.id else repository.snapshot_ids()
    if args.id:
        try:
            repository.load_snapshot(args.id, entries=False)
        except CorruptData:
            pass  # the check reports the damaged snapshot file with the rest
    recorder = _recorder(args, repository)
    try:
        result = check_job(repository, ids, recorder, trigger="manual", now=now)
    finally:
        recorder.close()
    snapshots = f"{len(ids)} snapshot" + ("" if len(ids) == 1 else "s")
    lines = [f"integrity: {result.chunks} chunks in {result.packs} packs of {snapshots} checked"]
    for snapshot in result.damaged_snapshots:
        lines.append(f"  damaged snapshot {snapshot.id}: {snapshot.reason}")
        lines.append(
            "    restore its file from another copy of the repository, or remove it with "
            f"`backup-manager delete --id {snapshot.id}`; the chunks it uses were not checked"
        )
    for damage in result.damaged:
        lines.append(f"  damaged pack {damage.pack}: {damage.reason}")
        lines.append(f"    snapshots affected: {', '.join(damage.snapshots) or '-'}")
    if result.damaged:
        lines.append("restore the damaged packs from another copy of the repository, or back up again")
    _emit(args, result.model_dump(mode="json"), "\n".join(lines))
    return EXIT_OK if result.ok else EXIT_FAILURE


def _cmd_unlock(args: argparse.Namespace, config: Config, now: float) -> int:
    from atlas_tui.backup.errors import RepositoryNotFound
    from atlas_tui.backup.lock import clear_stale_lock

    path = _repository_path(args, config)
    if not (path / "config").is_file():
        raise RepositoryNotFound(str(path))
    owner = clear_stale_lock(path, now=now)
    message = f"removed the lock of pid {owner.get('pid')} on {owner.get('host')}" if owner else "the repository was not locked"
    _emit(args, {"removed": owner}, message)
    return EXIT_OK


def _cmd_schedule(args: argparse.Namespace, config: Config, now: float) -> int:
    import asyncio

    from atlas_tui.backup.passphrase import read_passphrase_and_source
    from atlas_tui.backup.repository import Repository
    from atlas_tui.backup.service import BackupService

    configure_logging(getattr(args, "log_level", None) or "INFO")
    path = _repository_path(args, config)
    passphrase, source = read_passphrase_and_source(config.backup, getattr(args, "passphrase_file", None))

    def open_repository() -> Repository:
        return Repository.open(path, passphrase, passphrase_source=source)

    # Opened here so that a wrong passphrase stops the command at once.
    open_repository()
    # Opened again before each job, as the daemon does: a repository kept open across
    # a `key rotate` in another process keeps the old key in memory, and that key no
    # longer opens the re-encrypted index and snapshots.
    service = BackupService(config.backup, _data_dir(args), repository=path, open_repository=open_repository)
    asyncio.run(_run_schedule(service))
    if service.abandoned:
        # The job thread would hold the interpreter's exit until it ends; its rows are
        # already marked failed, and the repository is safe to leave mid-run.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK


async def _run_schedule(service: BackupService) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop_on_signal, service, sig)
    try:
        await service.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _stop_on_signal(service: BackupService, sig: signal.Signals) -> None:
    logger.info("stopping the backup schedule signal=%s", sig.name)
    service.request_stop()


def _cmd_logs(args: argparse.Namespace, config: Config, now: float) -> int:
    from storage.backup_runs import recent_runs_at_level, run_log
    from storage.db import DB_FILENAME, connect

    store = _data_dir(args) / DB_FILENAME
    if not store.is_file():
        print(f"backup logs: no store at {store}; no run was recorded there, check --data-dir", file=sys.stderr)
        return EXIT_FAILURE
    conn = connect(store)
    try:
        runs = list(reversed(recent_runs_at_level(conn, args.level, args.limit, args.kind)))
        lines = run_log(conn, [run.run_id for run in runs], min_level=args.level)
    except sqlite3.OperationalError as err:
        print(f"backup logs: cannot read the backup runs in {store}: {err}; run `atlas daemon` or any "
              "`backup-manager backup` once to update the store", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        conn.close()
    if _wants_json(args):
        documents = [{**run.model_dump(mode="json"), "log": [line.model_dump(mode="json")
                      for line in lines.get(run.run_id, [])]} for run in runs]
        print(json.dumps(documents, indent=2))
        return EXIT_OK
    if not runs:
        print(f"no backup runs at level {args.level} or above in {store}")
    for run in runs:
        print(_run_line(run))
        for line in lines.get(run.run_id, []):
            print(f"  {_iso(line.ts)} {line.level.upper():<7} {line.message}")
    return EXIT_OK


def _run_line(run: BackupRun) -> str:
    parts = [_iso(run.started), f"run {run.run_id}", run.kind, run.trigger]
    if run.set_name:
        parts.append(f"set={run.set_name}")
    parts.append(run.status)
    if run.snapshot_id:
        parts.append(f"snapshot={run.snapshot_id}")
    if run.kind == "backup" and run.status != "running":
        parts.append(f"files={run.files} bytes={run.bytes} read={run.bytes_read} new={run.bytes_new}")
    if run.kind == "cleanup" and run.status == "ok":
        parts.append(f"freed={run.bytes}")
    if run.finished is not None:
        parts.append(f"duration={run.finished - run.started:.1f}s")
    if run.error:
        parts.append(f"error={run.error}")
    return " ".join(parts)


_ACTIONS = {
    "init": _cmd_init,
    "backup": _cmd_backup,
    "list": _cmd_list,
    "restore": _cmd_restore,
    "delete": _cmd_delete,
    "cleanup": _cmd_cleanup,
    "status": _cmd_status,
    "key": _cmd_key,
    "verify": _cmd_verify,
    "integrity": _cmd_integrity,
    "unlock": _cmd_unlock,
    "schedule": _cmd_schedule,
    "logs": _cmd_logs,
}


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _emit(args: argparse.Namespace, document: object, text: str) -> None:
    if _wants_json(args):
        print(json.dumps(document, indent=2))
    else:
        print(text)


def _print_backup(result: BackupResult, stream: TextIO) -> None:
    print(
        f"{result.id or 'no snapshot'}: {result.status}, {result.files} files ({result.files_read} read), "
        f"{result.bytes} bytes, {result.new_bytes_stored} new bytes stored in {result.duration:.1f} s",
        file=stream,
    )
    if result.vanished:
        noun = "path was" if result.vanished == 1 else "paths were"
        print(
            f"  {result.vanished} {noun} deleted during the backup and left out; this is no failure "
            "(`--json` lists them under vanished_paths)",
            file=stream,
        )
    for item in result.skipped[:PRINTED_SKIPS]:
        print(f"  skipped {item.path}: {item.reason}", file=stream)
    hidden = len(result.skipped) - PRINTED_SKIPS
    if hidden > 0:
        where = (
            f"`backup-manager list --json` lists them all in the sets of {result.id}" if result.id
            else "Run the backup with --json to list them all"
        )
        noun = "path" if hidden == 1 else "paths"
        print(f"  {hidden} more skipped {noun} not shown. {where}", file=stream)
    for warning in result.warnings:
        print(f"  warning: {warning}", file=stream)


class _TerminalProgress:
    """One status line on a terminal: entries, bytes read and the read rate, redrawn at most 4 times a second."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._drawn = 0.0
        self._visible = False

    def __call__(self, entries: int, read: int) -> None:
        now = self._clock()
        if now - self._drawn < 0.25:
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        mebibytes = read / 1024**2
        self._stream.write(f"\r{entries} entries, {mebibytes:.1f} MiB read, {mebibytes / elapsed:.1f} MiB/s ")
        self._stream.flush()
        self._visible = True

    def finish(self) -> None:
        """End the status line so the summary starts on a new one."""
        if self._visible:
            self._stream.write("\n")
            self._stream.flush()

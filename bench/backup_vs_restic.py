"""Compare `atlas backup` with restic and BorgBackup on the same seeded corpus.

`bench/backup_vs_restic.sh` installs the tools and runs this script. Each round copies
the pristine corpus (see `backup_corpus.py`), starts a process that keeps its SQLite
database open, and then runs the three tools one after the other in each phase:

1. first backup into a new encrypted repository,
2. backup of the unchanged tree,
3. backup after a change of about 1 % (database inserts, updates and deletes through
   the open connection, appended log lines, rewritten and new small files, a new blob),
4. full restore of the latest snapshot into an empty directory,
5. full data check (restic `check --read-data`, borg `check --verify-data`,
   `atlas backup integrity` of every snapshot).

Every command runs under `/usr/bin/time`, which reports its peak RSS; wall time is
measured around it. Dirty pages are written out with `sync` before each step, and
the tool order changes between rounds (see `_ORDER_SEQUENCE`). The corpus stays in the page cache, so reads
come from memory for every tool. Repository size is the sum of the file sizes in
the repository directory; "new data" is its growth in phase 3.

restic and borg read the database as raw files (`events.db`, `-wal`, `-shm`) unless
`--others-sqlite copy` gives them a copy made with SQLite's online backup API (the
copy's time counts as part of their backup). ATLAS always copies through that API.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup_corpus import DatabaseHolder, apply_file_change, database_change_rows, generate  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSPHRASE = "bench-passphrase-not-secret"
PHASES = ("first", "unchanged", "changed", "restore", "check")
PHASE_TITLES = {
    "first": "first backup (s)",
    "unchanged": "unchanged backup (s)",
    "changed": "backup after ~1 % change (s)",
    "restore": "full restore (s)",
    "check": "full data check (s)",
}
TARGETS = {
    "first": 0.8,
    "unchanged": 0.3,
    "restore": 0.6,
    "check": 0.75,
    "size": 1.0,
    "new_data": 0.15,
}
RSS_TARGET_MIB = 200
_ORDER_SEQUENCE = (0, 5, 3, 2, 1, 4)
"""Indexes into the permutations of three tools (restic, borg, atlas first), so that in any
four rounds each tool runs right after each other one equally often. A step after borg's
ran slower (borg leaves the disk busy), so a plain rotation put that cost on one tool."""


@dataclass
class Measurement:
    """One timed command."""

    seconds: float
    rss_kib: int


@dataclass
class RoundResult:
    """Everything measured for one tool in one round."""

    steps: dict[str, Measurement] = field(default_factory=dict)
    size_after: dict[str, int] = field(default_factory=dict)
    restored_files: int = 0
    restored_bytes: int = 0


class Tool:
    """A backup program driven through its command line."""

    name = ""

    def __init__(self, work: Path, corpus: Path, others_sqlite: str) -> None:
        self.work = work / self.name
        self.work.mkdir(parents=True)
        self.repo = self.work / "repo"
        self.corpus = corpus
        self.others_sqlite = others_sqlite
        self.env = dict(os.environ)
        self.backups = 0

    def init(self) -> list[list[str]]:
        """Return the commands that create the repository."""
        raise NotImplementedError

    def backup(self) -> list[str]:
        """Return the command of the next backup."""
        raise NotImplementedError

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        """Return the command that restores the latest snapshot into `target`, and its working directory."""
        raise NotImplementedError

    def check(self) -> list[str]:
        """Return the command that reads and verifies all data in the repository."""
        raise NotImplementedError

    def _sources(self) -> list[str]:
        """Return the paths that restic and borg back up. A database copy replaces the live files."""
        if self.others_sqlite == "raw":
            return [str(self.corpus)]
        parts = [str(self.corpus / name) for name in ("files", "blobs", "logs")]
        return parts + [str(self.work / "sqlite-copy")]

    def _with_copy(self, command: list[str]) -> list[str]:
        if self.others_sqlite == "raw":
            return command
        copy = [
            sys.executable, str(REPO_ROOT / "bench" / "backup_corpus.py"), "copy",
            str(self.corpus / "db" / "events.db"), str(self.work / "sqlite-copy" / "events.db"),
        ]
        return ["bash", "-c", f"{_quote(copy)} && {_quote(command)}"]


class Restic(Tool):
    """restic with its defaults: repository format 2, automatic zstd compression."""

    name = "restic"

    def init(self) -> list[list[str]]:
        self.env.update(
            RESTIC_REPOSITORY=str(self.repo), RESTIC_PASSWORD=PASSPHRASE, RESTIC_CACHE_DIR=str(self.work / "cache")
        )
        return [["restic", "init", "-q"]]

    def backup(self) -> list[str]:
        return self._with_copy(["restic", "backup", "-q", "--host", "bench", *self._sources()])

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        return ["restic", "restore", "-q", "latest", "--target", str(target)], None

    def check(self) -> list[str]:
        return ["restic", "check", "-q", "--read-data"]


class Borg(Tool):
    """BorgBackup with `repokey-blake2` encryption and its default lz4 compression."""

    name = "borg"

    def init(self) -> list[list[str]]:
        self.env.update(
            BORG_REPO=str(self.repo), BORG_PASSPHRASE=PASSPHRASE, BORG_BASE_DIR=str(self.work / "base"),
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
        )
        return [["borg", "init", "-e", "repokey-blake2"]]

    def backup(self) -> list[str]:
        self.backups += 1
        return self._with_copy(["borg", "create", f"::b{self.backups}", *self._sources()])

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        return ["borg", "extract", f"::b{self.backups}"], target

    def check(self) -> list[str]:
        return ["borg", "check", "--verify-data"]


class Atlas(Tool):
    """`atlas backup` with a config of two sets: the files, and the database marked `sqlite`."""

    name = "atlas"

    def init(self) -> list[list[str]]:
        config = {
            "backup": {
                "repository": str(self.repo),
                "passphrase_env": "ATLAS_BACKUP_PASSPHRASE",
                "sets": [
                    {"name": "node", "priority": 10,
                     "paths": [str(self.corpus / name) for name in ("files", "blobs", "logs")]},
                    {"name": "analytics", "priority": 20, "sqlite": True,
                     "paths": [str(self.corpus / "db" / "events.db")]},
                ],
            }
        }
        self.config = self.work / "config.json"
        self.config.write_text(json.dumps(config, indent=2))
        self.env.update(
            ATLAS_BACKUP_PASSPHRASE=PASSPHRASE, ATLAS_CONFIG=str(self.config), ATLAS_DATA_DIR=str(self.work / "data")
        )
        return [self._command("init")]

    def backup(self) -> list[str]:
        return self._command("backup")

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        return self._command("restore", "--latest", "--target", str(target)), None

    def check(self) -> list[str]:
        return self._command("integrity")

    def _command(self, *arguments: str) -> list[str]:
        python = str(REPO_ROOT / ".venv" / "bin" / "python")
        return [python, "-m", "atlas_tui.cli", "backup", arguments[0], "--config", str(self.config), *arguments[1:]]


TOOLS: dict[str, type[Tool]] = {"restic": Restic, "borg": Borg, "atlas": Atlas}


def main() -> int:
    """Parse the options, run the rounds and print the table."""
    args = _parse_args()
    total = args.size_mib * 1024 * 1024
    pristine = _pristine_corpus(args, total)
    results: dict[str, list[RoundResult]] = {name: [] for name in args.tools}
    orders = list(itertools.permutations(args.tools))
    # Every round's corpus copy, repositories and restored trees stay until the last
    # round ends. On the ext4 of the VM in docs/benchmarks.md, creating a file right
    # after a large deletion is slow: `perf` put a quarter of the samples in ext4's
    # `recently_deleted()`, which passes over inodes freed shortly before. Three
    # cycles of deleting a restored tree and restoring it again took 3.8, 10.8 and
    # 18.7 s, so deleting between rounds made the later rounds measure the deletion.
    runs = Path(tempfile.mkdtemp(prefix="atlas-bench-backup-", dir=args.workdir))
    try:
        for number in range(args.rounds):
            order = list(orders[_ORDER_SEQUENCE[number % len(_ORDER_SEQUENCE)] % len(orders)])
            work = runs / f"round-{number + 1}"
            work.mkdir()
            round_results = _run_round(work, pristine, order, args, total)
            for name, result in round_results.items():
                results[name].append(result)
            _print_table(results, args)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    if args.output:
        args.output.write_text(json.dumps(_summary(results), indent=2))
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="corpus size in MiB (default: 1024)")
    parser.add_argument("--seed", type=int, default=7, help="corpus and change seed (default: 7)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the table shows medians (default: 1)")
    parser.add_argument(
        "--tools", type=lambda text: text.split(","), default=["restic", "borg", "atlas"],
        help="comma-separated tools in first-round order (default: restic,borg,atlas)",
    )
    parser.add_argument(
        "--others-sqlite", choices=("raw", "copy"), default="raw",
        help="raw: restic and borg read the live database files; copy: they get an online backup API copy",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="directory for repositories and restores")
    parser.add_argument(
        "--corpus-cache", type=Path, default=None,
        help="keep the generated corpus here and reuse it when seed and size match",
    )
    parser.add_argument("--output", type=Path, default=None, help="write the medians as JSON to this file")
    return parser.parse_args()


def _pristine_corpus(args: argparse.Namespace, total: int) -> Path:
    base = args.corpus_cache or Path(tempfile.mkdtemp(prefix="atlas-bench-corpus-", dir=args.workdir))
    corpus = base / f"corpus-{args.seed}-{args.size_mib}"
    marker = base / f"corpus-{args.seed}-{args.size_mib}.done"
    if not marker.exists():
        shutil.rmtree(corpus, ignore_errors=True)
        started = time.monotonic()
        print(f"generating a {args.size_mib} MiB corpus with seed {args.seed} in {corpus}", flush=True)
        generate(corpus, total, args.seed)
        marker.write_text("done\n")
        print(f"corpus ready in {time.monotonic() - started:.1f} s: {_tree_size(corpus)[1] / 2**20:.0f} MiB", flush=True)
    return corpus


def _run_round(
    work: Path, pristine: Path, order: list[str], args: argparse.Namespace, total: int
) -> dict[str, RoundResult]:
    corpus = work / "corpus"
    subprocess.run(["cp", "-a", str(pristine), str(corpus)], check=True)
    holder = DatabaseHolder(corpus / "db" / "events.db")
    try:
        tools = [TOOLS[name](work, corpus, args.others_sqlite) for name in order]
        results = {tool.name: RoundResult() for tool in tools}
        for tool in tools:
            for command in tool.init():
                _run(command, tool.env)
        for phase in ("first", "unchanged", "changed"):
            if phase == "changed":
                holder.change(database_change_rows(total), args.seed)
                apply_file_change(corpus, total, args.seed)
            for tool in tools:
                results[tool.name].steps[phase] = _run(tool.backup(), tool.env)
                results[tool.name].size_after[phase] = _tree_size(tool.repo)[1]
                _log(tool.name, phase, results[tool.name].steps[phase])
        for tool in tools:
            _restore(tool, work, results[tool.name])
        os.sync()
        for tool in tools:
            results[tool.name].steps["check"] = _run(tool.check(), tool.env)
            _log(tool.name, "check", results[tool.name].steps["check"])
    finally:
        holder.close()
    return results


def _restore(tool: Tool, work: Path, result: RoundResult) -> None:
    target = work / f"restore-{tool.name}"
    target.mkdir()
    command, cwd = tool.restore(target)
    result.steps["restore"] = _run(command, tool.env, cwd=cwd)
    result.restored_files, result.restored_bytes = _tree_size(target)
    _log(tool.name, "restore", result.steps["restore"], f"{result.restored_files} files")


def _run(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Measurement:
    os.sync()
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        completed = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        seconds = time.monotonic() - started
        lines = [line for line in report.read().splitlines() if line.strip()]
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {completed.returncode}: {completed.stderr[-2000:]}")
    return Measurement(seconds=seconds, rss_kib=int(lines[-1]))


def _tree_size(root: Path) -> tuple[int, int]:
    """Return the number of regular files under `root` and their total size in bytes."""
    files = size = 0
    for directory, _, names in os.walk(root):
        for name in names:
            info = os.lstat(os.path.join(directory, name))
            if not os.path.islink(os.path.join(directory, name)):
                files += 1
                size += info.st_size
    return files, size


def _log(tool: str, phase: str, measurement: Measurement, extra: str = "") -> None:
    rss = measurement.rss_kib / 1024
    print(f"  {tool:<7} {phase:<10} {measurement.seconds:8.2f} s  peak RSS {rss:7.1f} MiB  {extra}", flush=True)


def _summary(results: dict[str, list[RoundResult]]) -> dict[str, dict[str, float]]:
    """Return the median of every metric per tool."""
    summary: dict[str, dict[str, float]] = {}
    for name, rounds in results.items():
        values: dict[str, float] = {
            phase: statistics.median(result.steps[phase].seconds for result in rounds) for phase in PHASES
        }
        values["size"] = statistics.median(result.size_after["changed"] for result in rounds) / 2**20
        values["new_data"] = statistics.median(
            result.size_after["changed"] - result.size_after["unchanged"] for result in rounds
        ) / 2**20
        values["rss"] = max(step.rss_kib for result in rounds for step in result.steps.values()) / 1024
        summary[name] = values
    return summary


def _print_table(results: dict[str, list[RoundResult]], args: argparse.Namespace) -> None:
    summary = _summary(results)
    names = [name for name in ("restic", "borg", "atlas") if name in summary]
    rounds = len(next(iter(results.values())))
    print(f"\n{rounds} round(s), {args.size_mib} MiB corpus, seed {args.seed}, restic/borg database: {args.others_sqlite}")
    header = "| metric | " + " | ".join(names) + " | borg / restic | atlas / restic | target | met |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = [*PHASES, "size", "new_data", "rss"]
    titles = {**PHASE_TITLES, "size": "repository size (MiB)", "new_data": "new data from the change (MiB)",
              "rss": "peak RSS (MiB)"}
    for row in rows:
        cells = [f"{summary[name][row]:.2f}" for name in names]
        ratios = [_ratio(summary, name, row) for name in ("borg", "atlas")]
        target, met = _target(summary, row)
        print(f"| {titles[row]} | " + " | ".join(cells) + f" | {ratios[0]} | {ratios[1]} | {target} | {met} |")
    print(flush=True)


def _ratio(summary: dict[str, dict[str, float]], name: str, row: str) -> str:
    if name not in summary or "restic" not in summary or summary["restic"][row] == 0:
        return "-"
    return f"{summary[name][row] / summary['restic'][row]:.2f}"


def _target(summary: dict[str, dict[str, float]], row: str) -> tuple[str, str]:
    if "atlas" not in summary:
        return "-", "-"
    if row == "rss":
        return f"≤ {RSS_TARGET_MIB} MiB", "yes" if summary["atlas"]["rss"] <= RSS_TARGET_MIB else "no"
    if row not in TARGETS or "restic" not in summary:
        return "-", "-"
    ratio = summary["atlas"][row] / summary["restic"][row] if summary["restic"][row] else float("inf")
    return f"≤ {TARGETS[row]}", "yes" if ratio <= TARGETS[row] else "no"


def _quote(command: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(part) for part in command)


if __name__ == "__main__":
    sys.exit(main())

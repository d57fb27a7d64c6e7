"""Compare the CPU and memory cost of `atlas daemon` with a minimal psutil loop.

Both run side by side for the same window, so machine noise hits both alike. The
minimal loop reads the same psutil sources at the same interval and stores nothing;
it is the floor a collector cannot go below. CPU is measured from each process's own
`cpu_times()` after a warm-up, so interpreter start-up and imports are not counted.

Run by hand (not part of `make test`):

    .venv/bin/python bench/daemon_overhead.py --seconds 60 --interval 1

Targets: daemon CPU at most 3x the loop's, under 0.4 % of one core, RSS under 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MINIMAL_LOOP = """
import sys, time, psutil
interval = float(sys.argv[1])
psutil.cpu_percent(percpu=True)
while True:
    psutil.cpu_percent(); psutil.cpu_percent(percpu=True)
    psutil.virtual_memory(); psutil.swap_memory()
    for part in psutil.disk_partitions(all=False):
        try:
            psutil.disk_usage(part.mountpoint)
        except OSError:
            pass
    psutil.disk_io_counters(perdisk=True); psutil.net_io_counters(pernic=True)
    psutil.getloadavg(); len(psutil.pids()); psutil.boot_time()
    time.sleep(interval)
"""


@dataclass
class Usage:
    """CPU seconds used in the measured window and the RSS seen during it."""

    label: str
    cpu_seconds: float
    rss_peak: int
    rss_end: int

    def core_percent(self, seconds: float) -> float:
        """Return the CPU use as a percentage of one core."""
        return 100.0 * self.cpu_seconds / seconds


def main() -> int:
    """Run both processes, measure them and print a Markdown table and JSON."""
    args = _parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        daemon, loop = _start(Path(tmp), args.interval, args.api)
        try:
            time.sleep(args.warmup)
            processes = {"atlas daemon": daemon, "minimal psutil loop": loop}
            _check_running(processes)
            usages = _measure(processes, args.seconds)
            _check_running(processes)
        finally:
            for process in (daemon, loop):
                process.terminate()
            for process in (daemon, loop):
                process.wait(timeout=10)
    _report(usages, args)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window in seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="collection interval in seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds ignored after start")
    parser.add_argument("--no-api", dest="api", action="store_false", help="run the daemon with --no-api")
    return parser.parse_args()


def _start(tmp: Path, interval: float, api: bool) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    config = tmp / "config.json"
    config.write_text(json.dumps({"collectors": {"system": {"interval": interval}}}), encoding="utf-8")
    command = [sys.executable, "-m", "atlas_tui.cli", "daemon", "--data-dir", str(tmp / "data"),
               "--config", str(config), "--log-level", "warning"]
    command += ["--port", str(_free_port())] if api else ["--no-api"]
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=(tmp / "daemon.log").open("wb"))
    loop = subprocess.Popen([sys.executable, "-c", MINIMAL_LOOP, str(interval)])
    return daemon, loop


def _measure(processes: dict[str, subprocess.Popen[bytes]], seconds: float) -> list[Usage]:
    handles = {label: psutil.Process(proc.pid) for label, proc in processes.items()}
    start = {label: _cpu(handle) for label, handle in handles.items()}
    peaks = dict.fromkeys(handles, 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for label, handle in handles.items():
            peaks[label] = max(peaks[label], handle.memory_info().rss)
        time.sleep(1.0)
    return [
        Usage(label, _cpu(handle) - start[label], peaks[label], handle.memory_info().rss)
        for label, handle in handles.items()
    ]


def _check_running(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Raise if a process ended early, so a crash never reads as zero cost."""
    for label, process in processes.items():
        if process.poll() is not None:
            raise SystemExit(f"{label} exited early with code {process.returncode}; no result")


def _cpu(handle: psutil.Process) -> float:
    times = handle.cpu_times()
    return times.user + times.system


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _report(usages: list[Usage], args: argparse.Namespace) -> None:
    daemon, loop = usages
    mib = 1024 * 1024
    print(f"window {args.seconds:g} s, interval {args.interval:g} s, api {'on' if args.api else 'off'}, "
          f"{os.cpu_count()} cores\n")
    print("| process | CPU s | % of one core | peak RSS MiB | end RSS MiB |")
    print("|---|---|---|---|---|")
    for usage in usages:
        print(f"| {usage.label} | {usage.cpu_seconds:.3f} | {usage.core_percent(args.seconds):.3f} | "
              f"{usage.rss_peak / mib:.1f} | {usage.rss_end / mib:.1f} |")
    ratio = daemon.cpu_seconds / loop.cpu_seconds if loop.cpu_seconds else float("inf")
    print(f"\nCPU ratio daemon / loop: {ratio:.2f} (target <= 3)")
    print(f"daemon CPU: {daemon.core_percent(args.seconds):.3f} % of one core (target < 0.4)")
    print(f"daemon peak RSS: {daemon.rss_peak / mib:.1f} MiB (target < 64)")


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure one alert evaluation cycle: 1,000 rules over 500 series with 24 h of raw history.

The script builds a store in a temporary directory (or reuses `--store`): 500
series of the design's metric names plus `probe_latency_ms{target}`, one raw sample
every `--step` seconds (default 10 s) for 24 hours, as seeded random walks. It then
generates 1,000 seeded rules: plain thresholds, thresholds with label and regex
matchers, `avg`/`max`/`min` windows of 1 to 15 minutes, `rate` windows, `absent`, and
`and`/`or` combinations, all routed to one webhook channel so firing alerts queue
outbox rows. Every run starts with empty alert and outbox tables. Each cycle is `AlertService.evaluate_once`: preload, evaluate every
rule, advance every instance, and one write transaction with instances, history
and outbox rows. Cycles run 30 s apart at the end of the recorded history.

Run by hand (not part of `make test`):

    .venv/bin/python bench/rule_evaluation.py --cycles 10

Target: one cycle under 200 ms (median and max of the cycles after the first).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from atlas_tui.alerts.service import AlertService
from atlas_tui.config import Config
from collectors.base import Sample
from storage.db import open_store, transaction
from storage.metrics import write_samples

HOURS = 24
SERIES_TARGET = 500
RULES = 1000
END = 1_767_225_600.0
"""End of the recorded history (2026-01-01 00:00 UTC), so runs are reproducible."""


def series_layout() -> list[tuple[str, dict[str, str], float, float]]:
    """Return (metric, labels, level, spread) for the 500 series."""
    layout: list[tuple[str, dict[str, str], float, float]] = [("cpu_usage", {}, 40.0, 15.0)]
    layout += [("cpu_usage", {"cpu": str(i)}, 40.0, 20.0) for i in range(63)]
    for name, level in (("memory_usage", 60.0), ("swap_usage", 10.0), ("load_1m", 1.5),
                        ("load_5m", 1.4), ("load_15m", 1.3), ("process_count", 300.0)):
        layout.append((name, {}, level, level * 0.2))
    layout += [("disk_usage", {"mount": f"/m{i}"}, 50.0 + i * 0.6, 2.0) for i in range(60)]
    for name in ("disk_read_bytes_per_second", "disk_write_bytes_per_second"):
        layout += [(name, {"device": f"sd{i}"}, 5e6, 3e6) for i in range(60)]
    for name in ("net_recv_bytes_per_second", "net_sent_bytes_per_second"):
        layout += [(name, {"interface": f"eth{i}"}, 2e6, 1e6) for i in range(75)]
    layout += [("probe_latency_ms", {"target": f"t{i}"}, 120.0, 60.0)
               for i in range(SERIES_TARGET - len(layout))]
    return layout


def build_store(data_dir: Path, step: float, seed: int) -> int:
    """Write 24 h of samples for every series, one hour per transaction; return the count."""
    conn = open_store(data_dir)
    rng = random.Random(seed)
    layout = series_layout()
    values = [level for _, _, level, _ in layout]
    start = END - HOURS * 3600
    steps = int(HOURS * 3600 / step)
    per_hour = max(1, int(3600 / step))
    written = 0
    batch: list[Sample] = []
    for index in range(1, steps + 1):
        ts = start + index * step
        for position, (name, labels, level, spread) in enumerate(layout):
            # A walk pulled back towards its level keeps values plausible for 24 h.
            drift = (level - values[position]) * 0.05 + rng.gauss(0.0, spread * 0.1)
            values[position] = max(0.0, values[position] + drift)
            batch.append(Sample(name, tuple(sorted(labels.items())), ts, values[position]))
        if index % per_hour == 0 or index == steps:
            written += write_samples(conn, batch)
            batch = []
    conn.close()
    return written


def clear_alert_tables(data_dir: Path) -> None:
    """Empty the alert and outbox tables, so a reused store starts every run alike."""
    conn = open_store(data_dir)
    with transaction(conn):
        for table in ("alert_instances", "alert_events", "silences", "alert_engine_state",
                      "deliveries", "outbox", "channel_health"):
            conn.execute(f"DELETE FROM {table}")
    conn.close()


def generate_rules(seed: int) -> list[dict[str, object]]:
    """Return 1,000 seeded rules mixing every condition shape the grammar offers."""
    rng = random.Random(seed)
    shapes = [
        (30, _single_threshold),
        (15, _wide_threshold),
        (25, _window_rule),
        (15, _rate_rule),
        (15, _combined_rule),
    ]
    makers = [maker for weight, maker in shapes for _ in range(weight)]
    rules = []
    for number in range(RULES):
        condition = rng.choice(makers)(rng)
        rules.append({
            "id": f"rule_{number:04d}",
            "name": f"Bench rule {number}",
            "condition": condition,
            "severity": rng.choice(["info", "warning", "error", "critical"]),
            "for": rng.choice(["0s", "0s", "1m", "2m"]),
            "channels": ["bench"],
            "labels": {"team": rng.choice(["wallet", "infra"])},
        })
    return rules


def _single_threshold(rng: random.Random) -> str:
    return rng.choice([
        f'disk_usage{{mount="/m{rng.randrange(60)}"}} > {rng.uniform(60, 95):.0f}',
        f'cpu_usage{{cpu="{rng.randrange(63)}"}} > {rng.uniform(60, 95):.0f}',
        f'probe_latency_ms{{target="t{rng.randrange(100)}"}} > {rng.uniform(150, 400):.0f}',
        f"memory_usage > {rng.uniform(60, 90):.0f}",
    ])


def _wide_threshold(rng: random.Random) -> str:
    return rng.choice([
        f"disk_usage > {rng.uniform(80, 99):.0f}",
        f"cpu_usage > {rng.uniform(70, 99):.0f}",
        f'probe_latency_ms{{target=~"t{rng.randrange(10)}.*"}} > {rng.uniform(150, 400):.0f}',
        f'disk_usage{{mount!~"/m1.*"}} > {rng.uniform(80, 99):.0f}',
    ])


def _window_rule(rng: random.Random) -> str:
    func = rng.choice(["avg", "max", "min"])
    window = rng.choice(["1m", "2m", "5m", "10m", "15m"])
    return rng.choice([
        f'{func}(cpu_usage{{cpu="{rng.randrange(63)}"}}, {window}) > {rng.uniform(50, 90):.0f}',
        f'{func}(disk_usage{{mount="/m{rng.randrange(60)}"}}, {window}) > {rng.uniform(60, 95):.0f}',
        f'{func}(probe_latency_ms{{target=~"t{rng.randrange(10)}"}}, {window}) > {rng.uniform(150, 300):.0f}',
        f"{func}(load_1m, {window}) > {rng.uniform(1.5, 3):.1f}",
    ])


def _rate_rule(rng: random.Random) -> str:
    window = rng.choice(["1m", "5m", "10m", "15m"])
    name = rng.choice(["net_recv_bytes_per_second", "net_sent_bytes_per_second"])
    return rng.choice([
        f'rate({name}{{interface="eth{rng.randrange(75)}"}}, {window}) > {rng.uniform(1e3, 5e4):.0f}',
        f'delta(disk_read_bytes_per_second{{device="sd{rng.randrange(60)}"}}, {window}) > {rng.uniform(1e6, 4e6):.0f}',
    ])


def _combined_rule(rng: random.Random) -> str:
    return rng.choice([
        f"avg(cpu_usage, 5m) > {rng.uniform(50, 80):.0f} and memory_usage > {rng.uniform(50, 80):.0f}",
        f"load_1m > {rng.uniform(1.5, 3):.1f} or swap_usage > {rng.uniform(10, 30):.0f}",
        f'absent(probe_latency_ms{{target="t{rng.randrange(100)}"}}, 2m)',
        f'not (disk_usage{{mount="/m{rng.randrange(60)}"}} < {rng.uniform(50, 90):.0f})',
    ])


def run(args: argparse.Namespace) -> dict[str, object]:
    """Build or reuse the store, run the cycles and return the measurements."""
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as scratch:
        data_dir = Path(args.store) if args.store else Path(scratch)
        build_seconds = None
        if not (data_dir / "atlas.db").exists():
            began = time.perf_counter()
            samples = build_store(data_dir, args.step, args.seed)
            build_seconds = time.perf_counter() - began
            print(f"built store samples={samples} seconds={build_seconds:.1f}", file=sys.stderr)

        clear_alert_tables(data_dir)
        config = Config.model_validate({
            "alert_rules": generate_rules(args.seed),
            "channels": {"bench": {"type": "webhook", "url": "http://127.0.0.1:9/bench"}},
        })
        service = AlertService(config, data_dir, statuses=list)
        reports = []
        for cycle in range(args.cycles):
            now = END - (args.cycles - 1 - cycle) * 30.0
            reports.append(service.evaluate_once(now, after_restart=cycle == 0))
        service.close()

    steady = [r.duration_ms for r in reports[1:]] or [reports[0].duration_ms]
    return {
        "step_s": args.step,
        "rules": len(config.alert_rules),
        "first_cycle_ms": round(reports[0].duration_ms, 1),
        "median_ms": round(statistics.median(steady), 1),
        "max_ms": round(max(steady), 1),
        "cycles_ms": [round(r.duration_ms, 1) for r in reports],
        "instances_written": [r.written for r in reports],
        "notices": [r.notices for r in reports],
        "build_seconds": None if build_seconds is None else round(build_seconds, 1),
    }


def main() -> int:
    """Parse the options, run the benchmark and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10, help="evaluation cycles to run (the first is reported apart)")
    parser.add_argument("--step", type=float, default=10.0, help="seconds between two samples of a series")
    parser.add_argument("--seed", type=int, default=7, help="seed of the sample and rule generators")
    parser.add_argument("--store", help="data directory to build once and reuse in later runs")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))
    return 0 if result["max_ms"] < 200 else 1  # type: ignore[operator]


if __name__ == "__main__":
    sys.exit(main())

"""Measure analytics ingestion over HTTP and the summary over a large store.

Three measurements, each on its own temporary data directory:

1. HTTP ingest: a real `atlas daemon` (one analytics app, rate limits raised so
   the benchmark measures throughput, not the limiter) receives `--http-events`
   simulator events in gzip batches of 100 over 8 concurrent keep-alive connections.
   The bodies are encoded before the clock starts and sent as hand-written HTTP/1.1
   requests, so the senders cost little CPU, but they share the host's cores with
   the daemon.
2. Ceiling: the same rows, read back from the daemon's store, inserted into a fresh
   store with plain `sqlite3` `executemany`, 100 rows per transaction like one
   batch, and once more in a single transaction.
3. Summary: `--summary-events` simulator events spread over 30 days are stored
   through `storage.events.store_events` (rows built in a worker process, no HTTP),
   `refresh` derives the sessions and rollups (timed on its own), and
   `build_summary` over the 30 days is timed `--repeat` times. With `--store-dir`
   the filled store is kept and later runs with the same `--summary-events` reuse
   it; opening it applies any newer migrations first.

Run by hand (not part of `make test`):

    .venv/bin/python bench/analytics_ingest.py --http-events 200000 --summary-events 10000000

Targets: at least 20,000 events/s accepted over HTTP, and the summary in under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from atlas_tui.analytics.simulator import SimulatorConfig, generate
from storage.db import DB_FILENAME, open_store, transaction
from storage.events import EventRow, store_events

APP_ID = "atlas-wallet"
INGEST_KEY = "pk_atlas_wallet_bench"
BATCH_SIZE = 100
SENDERS = 8
DAY = 86400.0
STORE_FORMAT = 1
"""Version of the generated summary store; a cached store of another version is not reused."""
_MANIFEST = "bench-store.json"
_FILL_CHUNK = 50_000
_STARTED = re.compile(r"daemon started pid=(\d+) .* port=(\d+)")
_COLUMNS = (
    "app_id, event_id, type, schema_version, schema_known, session_id, device_hash, user_hash, app_version, "
    "platform, privacy_level, client_ts, sent_at, received_at, skew, event_ts, future_clamped, ip_prefix, "
    "attrs, properties, extra, content_hash"
)
_INSERT = f"INSERT INTO analytics_events ({_COLUMNS}) VALUES ({', '.join('?' * 22)})"
_BASE_FIELDS = frozenset(
    ("event_id", "type", "client_ts", "session_id", "device_id", "user_id", "app_id", "app_version",
     "platform", "privacy_level", "properties")
)  # fmt: skip


@dataclass
class HttpResult:
    """Outcome of the HTTP ingest run."""

    events: int
    batches: int
    seconds: float
    accepted: int
    rate_limited: int
    p50_ms: float
    p95_ms: float

    @property
    def events_per_second(self) -> float:
        """Accepted events per wall-clock second."""
        return self.accepted / self.seconds


def main() -> int:
    """Run the measurements and print a Markdown table and JSON."""
    args = _parse_args()
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="atlas-bench-analytics-") as tmp:
        root = Path(tmp)
        if args.http_events:
            http, rows = _measure_http(root / "http", args.http_events)
            results["http"] = http.__dict__ | {"events_per_second": round(http.events_per_second)}
            results["executemany_100"] = round(_measure_executemany(root / "ceiling-100", rows, BATCH_SIZE))
            results["executemany_all"] = round(_measure_executemany(root / "ceiling-all", rows, len(rows)))
        if args.summary_events:
            store_dir = args.store_dir or root / "summary"
            results["summary"] = _measure_summary(store_dir, args.summary_events, args.repeat)
    _report(results)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-events", type=int, default=200_000, help="events sent over HTTP; 0 skips (default: 200000)")
    parser.add_argument(
        "--summary-events", type=int, default=10_000_000, help="events in the summary store; 0 skips (default: 10000000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="build_summary runs to time (default: 5)")
    parser.add_argument(
        "--store-dir", type=Path, default=None,
        help="directory of the summary store, kept after the run and reused by later runs with the same "
        "--summary-events (default: a temporary directory)",
    )  # fmt: skip
    return parser.parse_args()


def _simulated_events(count: int, *, end: float, span_days: float = 6.0, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield `count` simulator events, one device group at a time so memory stays small.

    Groups cycle their end over `span_days` in steps of 6 days, because one simulation covers at most 6 days.
    """
    produced = 0
    group = 0
    while produced < count:
        for event in generate(_group_config(group, end, span_days, seed)).events.values():
            yield event
            produced += 1
            if produced >= count:
                return
        group += 1


def _group_config(group: int, end: float, span_days: float, seed: int) -> SimulatorConfig:
    """Return the simulator settings of device group `group`: 500 devices over the 6 days ending `end` minus its offset."""
    offset = ((group * 6.0) % span_days) * DAY if span_days > 6.0 else 0.0
    return SimulatorConfig(
        devices=500, days=6.0, end=end - offset, seed=seed * 100_000 + group, skewed_device_share=0.0,
        offline_rate=0.0, app_id=APP_ID,
    )  # fmt: skip


def _measure_http(data_dir: Path, count: int) -> tuple[HttpResult, list[tuple[Any, ...]]]:
    data_dir.mkdir(parents=True)
    now = time.time()
    bodies = _encoded_batches(list(_simulated_events(count, end=now - 3600.0)), now)
    daemon, port = _start_daemon(data_dir)
    try:
        result = _send_all(f"http://127.0.0.1:{port}/api/analytics/events", bodies, count)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    with closing(sqlite3.connect(data_dir / "data" / DB_FILENAME)) as conn:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM analytics_events ORDER BY id").fetchall()
    return result, rows


def _encoded_batches(events: list[dict[str, Any]], now: float) -> list[bytes]:
    sent_at = datetime.fromtimestamp(now).astimezone().isoformat()
    bodies = []
    for offset in range(0, len(events), BATCH_SIZE):
        batch = {"schema": 1, "sent_at": sent_at, "events": events[offset : offset + BATCH_SIZE]}
        bodies.append(gzip.compress(json.dumps(batch, separators=(",", ":")).encode(), compresslevel=5))
    return bodies


def _start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    config = {
        "collectors": {"system": {"interval": "5s"}},
        "analytics": {
            "apps": {APP_ID: {"ingest_key": INGEST_KEY}},
            "rate_limits": {"device_batches_per_minute": 100_000, "daemon_batches_per_second": 1_000_000},
        },
    }
    config_path = root / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log_path = root / "daemon.log"
    command = [sys.executable, "-m", "atlas_tui.cli", "daemon", "--data-dir", str(root / "data"),
               "--config", str(config_path), "--port", "0"]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        match = _STARTED.search(log_path.read_text(errors="replace"))
        if match:
            return proc, int(match.group(2))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the daemon did not start:\n{log_path.read_text(errors='replace')}")


def _send_all(url: str, bodies: list[bytes], count: int) -> HttpResult:
    """Post every body over `SENDERS` keep-alive connections and time the whole run."""
    return asyncio.run(_send_all_async(httpx.URL(url), bodies, count))


async def _send_all_async(url: httpx.URL, bodies: list[bytes], count: int) -> HttpResult:
    pending = iter(bodies)
    latencies: list[float] = []
    totals = {"accepted": 0, "rate_limited": 0}

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for body in pending:
                accepted, limited, seconds = await _post(reader, writer, url, body)
                totals["accepted"] += accepted
                totals["rate_limited"] += limited
                latencies.append(seconds)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return HttpResult(
        events=count, batches=len(bodies), seconds=round(seconds, 3), accepted=totals["accepted"],
        rate_limited=totals["rate_limited"], p50_ms=round(1000 * _nearest_rank(latencies, 50), 1),
        p95_ms=round(1000 * _nearest_rank(latencies, 95), 1),
    )  # fmt: skip


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: httpx.URL, body: bytes
) -> tuple[int, int, float]:
    """Post one batch until the response is 200; return accepted events, 429s seen and the last latency.

    A hand-written HTTP/1.1 request on a kept-alive connection, like a load generator
    such as wrk, so the sender's own CPU stays small next to the daemon's.
    """
    head = (
        f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {INGEST_KEY}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    limited = 0
    while True:
        started = time.perf_counter()
        writer.write(head + body)
        status, headers, payload = await _read_response(reader)
        seconds = time.perf_counter() - started
        if status == 200:
            return int(json.loads(payload)["accepted"]), limited, seconds
        if status != 429:
            raise SystemExit(f"batch failed with status {status}: {payload[:500]!r}")
        limited += 1
        await asyncio.sleep(float(headers.get("retry-after", "1")))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


def _nearest_rank(values: list[float], percent: float) -> float:
    index = max(0, -(-len(values) * percent // 100) - 1)
    return values[int(index)]


def _measure_executemany(data_dir: Path, rows: list[tuple[Any, ...]], per_transaction: int) -> float:
    """Insert `rows` into a fresh store in transactions of `per_transaction` rows; return rows per second."""
    conn = open_store(data_dir)
    try:
        started = time.perf_counter()
        for offset in range(0, len(rows), per_transaction):
            with transaction(conn):
                conn.executemany(_INSERT, rows[offset : offset + per_transaction])
        return len(rows) / (time.perf_counter() - started)
    finally:
        conn.close()


def _measure_summary(data_dir: Path, count: int, repeat: int) -> dict[str, Any]:
    """Time `build_summary` over the 30 days of the store in `data_dir`, building the store unless it is cached there."""
    from atlas_tui.analytics.reports import build_summary
    from atlas_tui.analytics.rollups import refresh

    manifest = _summary_store(data_dir, count)
    end = manifest["end"]
    started = time.perf_counter()
    # Opening applies the migrations a cached store has not seen yet.
    conn = open_store(data_dir)
    open_seconds = time.perf_counter() - started
    try:
        started = time.perf_counter()
        refresh(conn)
        catch_up_seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM analytics_events").fetchone()[0]
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            summary = build_summary(conn, start=end - 30 * DAY, end=end, app=APP_ID, now=end)
            timings.append(time.perf_counter() - started)
    finally:
        conn.close()
    return {
        "events": stored,
        "store_reused": manifest["reused"],
        "fill_seconds": manifest["fill_seconds"],
        "refresh_seconds": manifest["refresh_seconds"],
        "open_seconds": round(open_seconds, 1),
        "catch_up_refresh_seconds": round(catch_up_seconds, 1),
        "summary_seconds": [round(seconds, 3) for seconds in timings],
        "summary_seconds_min": round(min(timings), 3),
        "summary_seconds_median": round(statistics.median(timings), 3),
        "sessions": summary.sessions.count,
        "mau": summary.usage.mau,
    }


def _summary_store(data_dir: Path, count: int) -> dict[str, Any]:
    """Return the manifest of the summary store in `data_dir`; fill and refresh the store first unless it is cached.

    The manifest is written last, so a build that was interrupted is never reused.
    """
    manifest_path = data_dir / _MANIFEST
    expected = {"format": STORE_FORMAT, "events_requested": count}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if {key: manifest.get(key) for key in expected} != expected:
            raise SystemExit(
                f"{data_dir} contains a summary store of {manifest.get('events_requested')} events in format "
                f"{manifest.get('format')}, not {count} in format {STORE_FORMAT}; delete it or give another --store-dir"
            )
        print(f"reusing the summary store in {data_dir}", file=sys.stderr)
        return manifest | {"reused": True}
    if data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"{data_dir} is not empty but has no {_MANIFEST} (an interrupted build?); delete it first")

    from atlas_tui.analytics.rollups import refresh

    end = time.time()
    conn = open_store(data_dir)
    try:
        fill_seconds = _fill_store(conn, count, end)
        print(f"filled {count} events in {fill_seconds:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        refresh(conn)
        refresh_seconds = time.perf_counter() - started
        print(f"refresh took {refresh_seconds:.1f} s", file=sys.stderr)
    finally:
        conn.close()
    manifest = expected | {"end": end, "fill_seconds": round(fill_seconds, 1), "refresh_seconds": round(refresh_seconds, 1)}
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest | {"reused": False}


def _fill_store(conn: sqlite3.Connection, count: int, end: float) -> float:
    """Store `count` simulator events spread over the 30 days before `end`; return the seconds it took.

    Rows go through `storage.events.store_events`, the insert the daemon uses, so the
    ingest counters are filled too. A worker process builds the next device group's
    rows while this process stores the current one.
    """
    # A build that dies has no manifest and is started over, so losing it to a crash costs nothing.
    conn.execute("PRAGMA synchronous = OFF")
    # 1 GiB of page cache keeps the random inserts into the unique (app_id, event_id) index off the disk.
    conn.execute("PRAGMA cache_size = -1048576")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1) as pool:
        for values in _generated_rows(pool, count, end):
            rows = [EventRow(*row) for row in values]
            for offset in range(0, len(rows), _FILL_CHUNK):
                chunk = rows[offset : offset + _FILL_CHUNK]
                store_events(conn, chunk, {}, max(row.received_at for row in chunk))
    return time.perf_counter() - started


def _generated_rows(pool: ProcessPoolExecutor, count: int, end: float) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the rows of device group after group, built one group ahead in `pool`, until `count` rows are yielded."""
    pending = deque([pool.submit(_group_rows, 0, end)])
    next_group = 1
    produced = 0
    while pending:
        rows = pending.popleft().result()[: count - produced]
        produced += len(rows)
        if produced < count:
            pending.append(pool.submit(_group_rows, next_group, end))
            next_group += 1
        yield rows


def _group_rows(group: int, end: float) -> list[tuple[Any, ...]]:
    """Build the `EventRow` fields of one device group's events over the 30 days before `end` (runs in the worker).

    Tuples, because they cross the process boundary several times faster than dataclass instances.
    """
    # The SDK sends within 5 minutes when online, so receipt times spread over the
    # 30 days like the events. The ingest view reads raw events by receipt time.
    delays = random.Random(group)
    events = generate(_group_config(group, end, 30.0, seed=2)).events.values()
    return [_event_row(event, delays.uniform(1.0, 300.0)) for event in events]


def _event_row(event: dict[str, Any], delay: float) -> tuple[Any, ...]:
    """Build the `EventRow` fields the daemon would store for `event` received `delay` seconds after it happened.

    A plain SHA-256 replaces the daemon's keyed hash.
    """
    event_ts = datetime.fromisoformat(event["client_ts"]).timestamp()
    received_at = event_ts + delay
    attrs = {key: value for key, value in event.items() if key not in _BASE_FIELDS}
    full = event["privacy_level"] == "full"
    user_id = event.get("user_id")
    return (
        event["app_id"], event["event_id"], event["type"], 1, True, event["session_id"], _hash(event["device_id"]),
        _hash(user_id) if full and user_id else None, event["app_version"], event["platform"], event["privacy_level"],
        event_ts, received_at, received_at, 0.0, event_ts, False, "127.0.0.0/24",
        json.dumps(attrs, separators=(",", ":"), sort_keys=True),
        json.dumps(event["properties"] if full else {}, separators=(",", ":"), sort_keys=True),
        None, _hash(event["event_id"]),
    )  # fmt: skip


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _report(results: dict[str, Any]) -> None:
    print("| measurement | result |")
    print("|---|---|")
    http = results.get("http")
    if http:
        print(f"| HTTP ingest, {SENDERS} senders, batches of {BATCH_SIZE} | {http['events_per_second']:,} events/s "
              f"({http['accepted']:,} accepted in {http['seconds']} s; batch p50 {http['p50_ms']} ms, "
              f"p95 {http['p95_ms']} ms) |")  # fmt: skip
        print(f"| executemany, 100 rows per transaction | {results['executemany_100']:,} rows/s |")
        print(f"| executemany, one transaction | {results['executemany_all']:,} rows/s |")
    summary = results.get("summary")
    if summary:
        cached = " (when the store was built)" if summary["store_reused"] else ""
        print(f"| store fill, {summary['events']:,} events{cached} | {summary['fill_seconds']} s |")
        print(f"| refresh (sessions and rollups){cached} | {summary['refresh_seconds']} s |")
        print(f"| open (pending migrations) and catch-up refresh | {summary['open_seconds']} s, "
              f"{summary['catch_up_refresh_seconds']} s |")  # fmt: skip
        print(f"| build_summary, 30 days | {summary['summary_seconds_median']} s median, "
              f"{summary['summary_seconds_min']} s min |")  # fmt: skip
    print()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())

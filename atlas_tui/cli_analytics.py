"""The analytics commands of `atlas`: `analytics simulate`, `analytics summary` and `analytics rebuild`.

`register(commands)` adds the `analytics` parser with its actions; `atlas_tui.cli`
calls it while building its parser and runs `run_analytics(args)` for the
`analytics` command. Each action stores its function as `args.analytics_handler`.

`simulate` runs `atlas_tui.analytics.simulator` against a daemon's
`POST /api/analytics/events`: it reads the clock once for the end of the simulated
period, and sends only to the URL given (default: the configured port on 127.0.0.1).

`summary` opens the store, brings the rollups up to date with `rollups.refresh` and
prints `reports.build_summary`. The refresh writes in short transactions, so it is
safe beside a running daemon. `--json` prints the same `AnalyticsSummary` as
`GET /api/analytics`.

`rebuild` recomputes the sessions and every rollup from the stored events with
`rollups.rebuild`, also in short transactions, for a store whose rollups are in
doubt (after a restore, or a bug fixed in the rollup code).

Each action imports its analytics modules when it runs, so building the `atlas`
parser does not import httpx and the simulator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from atlas_tui.config import Config, load_config, resolve_config_path, resolve_data_dir
from atlas_tui.logs import configure_logging
from storage.db import DB_FILENAME, open_store

if TYPE_CHECKING:
    from atlas_tui.analytics.models import AnalyticsSummary
    from atlas_tui.analytics.simulator import RunReport, Simulator

__all__ = ["rebuild_rollups", "register", "run_analytics", "simulate", "summary"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `analytics` and its actions to the `atlas` subcommands."""
    analytics = commands.add_parser("analytics", help="mobile analytics: simulate SDK traffic, print the summary")
    actions = analytics.add_subparsers(dest="analytics_command", metavar="ACTION", required=True)
    _add_simulate_parser(actions)
    _add_summary_parser(actions)
    _add_rebuild_parser(actions)


def run_analytics(args: argparse.Namespace) -> int:
    """Run the chosen `atlas analytics` action and return its exit code."""
    handler = args.analytics_handler
    return int(handler(args))


def _add_simulate_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate_parser = actions.add_parser(
        "simulate",
        help="send simulated SDK traffic to a daemon",
        description=(
            "Simulate mobile devices over past days (sessions, crashes, offline periods, skewed clocks) "
            "and send their batches to POST /api/analytics/events, retrying failures with the same event ids."
        ),
    )
    simulate_parser.add_argument("--devices", type=int, default=20, help="number of simulated devices (default: 20)")
    simulate_parser.add_argument(
        "--days", type=float, default=1.0, help="simulated days ending now, at most 6 (default: 1)"
    )
    simulate_parser.add_argument(
        "--url", default=None, help="daemon base URL (default: http://127.0.0.1:<config port>)"
    )
    simulate_parser.add_argument(
        "--key", default=None, help="ingest key of the app (default: the key of the only configured app)"
    )
    simulate_parser.add_argument("--app", default=None, help="app id of the events (default: the key's app)")
    simulate_parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed of the traffic; event ids also depend on the current time, so each run sends new events",
    )
    simulate_parser.add_argument("--json", action="store_true", help="print the run report and the tally as JSON")
    simulate_parser.set_defaults(analytics_handler=simulate)


def simulate(args: argparse.Namespace) -> int:
    """Run `atlas analytics simulate` and print what was sent and the simulator's own tally."""
    from atlas_tui.analytics.simulator import HttpSender, Simulator, SimulatorConfig, SimulatorError

    configure_logging("WARNING")
    config = load_config(resolve_config_path(args.config))
    try:
        key, app_id = _ingest_key(config, args.key, args.app)
    except SimulatorError as err:
        print(f"atlas analytics simulate: {err}", file=sys.stderr)
        return EXIT_USAGE
    url = args.url or f"http://127.0.0.1:{config.port}"
    sim_config = SimulatorConfig(devices=args.devices, days=args.days, end=time.time(), seed=args.seed, app_id=app_id)
    try:
        simulator = Simulator(sim_config)
    except SimulatorError as err:
        print(f"atlas analytics simulate: {err}", file=sys.stderr)
        return EXIT_USAGE

    sender = HttpSender(url, key)
    try:
        report = simulator.run(sender)
    except SimulatorError as err:
        print(f"atlas analytics simulate: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        sender.close()
    _print_result(simulator, report, as_json=args.json)
    return EXIT_OK if report.undelivered_events == 0 else EXIT_FAILURE


def _ingest_key(config: Config, key: str | None, app_id: str | None) -> tuple[str, str]:
    from atlas_tui.analytics.simulator import SimulatorError

    apps = config.analytics.apps
    if key is not None:
        return key, app_id or config.analytics.app_for_key(key) or "atlas-wallet"
    if app_id is not None and app_id in apps:
        return apps[app_id].ingest_key, app_id
    if len(apps) == 1:
        only, settings = next(iter(apps.items()))
        return settings.ingest_key, only
    raise SimulatorError("no ingest key: pass --key, or configure exactly one app under analytics.apps")


def _print_result(simulator: Simulator, report: RunReport, *, as_json: bool) -> None:
    plan = simulator.plan
    releases = [
        {
            "version": version,
            "platform": platform,
            "sessions": tally.sessions,
            "crashed_sessions": tally.crashed_sessions,
            "devices": len(tally.devices),
            "crashed_devices": len(tally.crashed_devices),
            "crash_free_sessions_pct": tally.crash_free_sessions_pct,
            "crash_free_users_pct": tally.crash_free_users_pct,
        }
        for (version, platform), tally in sorted(plan.tally.items())
    ]
    if as_json:
        result = {
            "events": len(plan.events),
            "sessions": plan.session_count,
            "batches": report.batches,
            "attempts": report.attempts,
            "retries": report.retries,
            "rate_limited": report.rate_limited,
            "statuses": dict(report.statuses),
            "undelivered_events": report.undelivered_events,
            "releases": releases,
        }
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"events {len(plan.events)}  sessions {plan.session_count}  batches {report.batches}  "
          f"attempts {report.attempts}  retries {report.retries}  undelivered events {report.undelivered_events}")
    print("statuses " + ", ".join(f"{name} {count}" for name, count in sorted(report.statuses.items())))
    for row in releases:
        print(f"{row['version']:<10} {row['platform']:<8} sessions {row['sessions']:>6}  "
              f"crash-free sessions {_pct(row['crash_free_sessions_pct'])}  users {_pct(row['crash_free_users_pct'])}")


def _pct(value: object) -> str:
    return f"{value:.2f} %" if isinstance(value, float) else "-"


def _add_summary_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary_parser = actions.add_parser(
        "summary",
        help="print usage, sessions, crash-free rates, performance and ingest numbers",
        description="Refresh the analytics rollups in the store and print the summary of a window.",
    )
    summary_parser.add_argument(
        "--data-dir", default=argparse.SUPPRESS, metavar="DIR",
        help="data directory holding the store (default: $ATLAS_DATA_DIR, else ~/.local/share/atlas)",
    )  # fmt: skip
    summary_parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help="JSON config file")
    summary_parser.add_argument(
        "--from", dest="start", type=_timestamp, default=None, metavar="TIME",
        help="window start as UTC epoch seconds or ISO 8601 (default: 7 days before --to)",
    )  # fmt: skip
    summary_parser.add_argument(
        "--to", dest="end", type=_timestamp, default=None, metavar="TIME",
        help="window end as UTC epoch seconds or ISO 8601 (default: now)",
    )  # fmt: skip
    summary_parser.add_argument("--app", default=None, help="only this app id")
    summary_parser.add_argument("--version", dest="app_version", default=None, help="only this app version")
    summary_parser.add_argument("--platform", choices=("android", "ios"), default=None, help="only this platform")
    summary_parser.add_argument("--json", action="store_true", help="print the summary as JSON (as GET /api/analytics)")
    summary_parser.set_defaults(analytics_handler=summary)


def summary(args: argparse.Namespace) -> int:
    """Run `atlas analytics summary`: refresh the rollups and print the summary."""
    from atlas_tui.analytics.reports import build_summary
    from atlas_tui.analytics.rollups import refresh

    configure_logging("WARNING")
    config = load_config(resolve_config_path(args.config))
    data_dir = resolve_data_dir(args.data_dir)
    if not (data_dir / DB_FILENAME).is_file():
        print(f"atlas analytics summary: no store at {data_dir / DB_FILENAME}; check --data-dir", file=sys.stderr)
        return EXIT_FAILURE
    now = time.time()
    end = now if args.end is None else args.end
    start = end - 7 * 86400.0 if args.start is None else args.start
    if not start < end:
        print(f"atlas analytics summary: --from ({start}) must be before --to ({end})", file=sys.stderr)
        return EXIT_USAGE

    conn = open_store(data_dir)
    try:
        refresh(conn)
        report = build_summary(
            conn, start=start, end=end, app=args.app, version=args.app_version, platform=args.platform,
            timezone=config.analytics.timezone, now=now,
        )  # fmt: skip
    finally:
        conn.close()
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_summary(report)
    return EXIT_OK


def _add_rebuild_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rebuild_parser = actions.add_parser(
        "rebuild",
        help="recompute analytics sessions and rollups from the stored events",
        description=(
            "Recompute the analytics sessions and the hour and day rollups from the stored events. "
            "Reports keep reading the old rows until each is replaced."
        ),
    )
    rebuild_parser.add_argument(
        "--data-dir", default=argparse.SUPPRESS, metavar="DIR",
        help="data directory holding the store (default: $ATLAS_DATA_DIR, else ~/.local/share/atlas)",
    )  # fmt: skip
    rebuild_parser.set_defaults(analytics_handler=rebuild_rollups)


def rebuild_rollups(args: argparse.Namespace) -> int:
    """Run `atlas analytics rebuild`: recompute the sessions and rollups from the events and print the counts."""
    from atlas_tui.analytics.rollups import rebuild

    configure_logging("WARNING")
    data_dir = resolve_data_dir(args.data_dir)
    if not (data_dir / DB_FILENAME).is_file():
        print(f"atlas analytics rebuild: no store at {data_dir / DB_FILENAME}; check --data-dir", file=sys.stderr)
        return EXIT_FAILURE
    conn = open_store(data_dir)
    try:
        started = time.monotonic()
        result = rebuild(conn)
    finally:
        conn.close()
    print(f"rebuilt from {result.events} events: {result.devices} devices, {result.hours} hours, "
          f"{result.days} days in {time.monotonic() - started:.1f} s")  # fmt: skip
    return EXIT_OK


def _print_summary(report: AnalyticsSummary) -> None:
    window = report.window
    print(f"window {_iso(window.start)} .. {_iso(window.end)} ({window.timezone})")
    usage = report.usage
    print(f"active devices  DAU {usage.dau}  WAU {usage.wau}  MAU {usage.mau}  stickiness {_number(usage.stickiness)}")
    sessions = report.sessions
    print(f"sessions {sessions.count}  median {_number(sessions.median_duration_s)} s  p90 "
          f"{_number(sessions.p90_duration_s)} s  crashed {sessions.crashed}  abnormal {sessions.abnormal}  "
          f"errored {sessions.errored}")  # fmt: skip
    print(f"crash-free sessions {_pct(report.crash_free.sessions_pct)}  users {_pct(report.crash_free.users_pct)}")
    for release in report.by_release:
        print(f"  {release.version:<10} {release.platform:<8} sessions {release.sessions:>6}  crash-free "
              f"{_pct(release.crash_free_sessions_pct)}  app start p95 {_number(release.app_start_p95_ms)} ms")  # fmt: skip
    for screen in report.top_screens[:5]:
        print(f"  screen {screen.screen:<20} views {screen.views:>7}  devices {screen.devices:>6}  "
              f"median {_number(screen.median_time_s)} s")  # fmt: skip
    errors = report.errors
    print(f"errors {errors.count}  fatal {errors.fatal}  handled {errors.handled}")
    ingest = report.ingest
    print(f"ingest {ingest.events_per_minute:.1f} events/min  accepted {ingest.accepted}  duplicate "
          f"{ingest.duplicate}  rejected {sum(ingest.rejected.values())}")  # fmt: skip


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected UTC epoch seconds or ISO 8601 such as 2026-12-04T00:00Z, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"

"""The `atlas` command: console (default), daemon, metrics, config check, alerts, notify, analytics, api.

`main()` parses the arguments, resolves the config file and the data directory
(flag, else environment, else XDG default) and hands over to the console, the
daemon or a short store read. `atlas alerts`, `atlas notify test` and the rule check
of `atlas config check` run in `atlas_tui.cli_alerts`, and `atlas api token` in
`atlas_tui.cli_api`. `atlas backup`, also installed as `backup-manager`, runs in
`atlas_tui.cli_backup`, which adds exit codes 3 (partial) and 4 (locked). Heavy packages (Textual,
FastAPI, uvicorn, httpx, the alert channels, the metric store queries) are imported inside
the subcommand that needs them, so `atlas metrics` and `atlas backup` start fast.

Exit codes: 0 for success. 1 when the command ran and failed, for example with no
data, the data directory locked by another daemon, an unreadable store, an unknown
alert id, or a test notice the channel did not accept. 2 for invalid usage or an
invalid config file, including a rule condition that does not parse and an unknown
channel name. 130 when Ctrl-C arrived before the command installed its own handler.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, get_args

from atlas_tui import __version__
from atlas_tui.alerts.state import AlertState
from atlas_tui.config import Config, Severity, load_config, resolve_config_path, resolve_data_dir
from atlas_tui.durations import parse_duration
from atlas_tui.errors import AtlasError, ConfigError
from atlas_tui.logs import LOG_LEVELS, LogFileError, configure_logging

if TYPE_CHECKING:
    from atlas_tui.console.source import ConsoleSource
    from storage.metrics import SeriesValue

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
"""The command succeeded."""
EXIT_FAILURE = 1
"""The command ran and failed."""
EXIT_USAGE = 2
"""Invalid arguments or an invalid config file."""
EXIT_INTERRUPTED = 130
"""Ctrl-C arrived before the command installed its own handler."""

_ALERT_STATES = (*(str(state) for state in AlertState), "acknowledged", "silenced")
"""Values of `atlas alerts list --state`: the engine states plus the two markers."""
_SEVERITIES: tuple[str, ...] = get_args(Severity)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `atlas` command line and return its exit code.

    Args:
        argv: Arguments without the program name. None reads `sys.argv[1:]`.
    """
    args = build_parser().parse_args(argv)
    command = args.command or "tui"
    try:
        return _COMMANDS[command](args)
    except ConfigError as err:
        _print_config_error(err, sys.stderr)
        return EXIT_USAGE
    except LogFileError as err:
        print(f"atlas {command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except AtlasError as err:
        print(f"atlas {command}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader (`| head`, `| less` quit early) went away. Point stdout at
        # /dev/null so the interpreter's final flush does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="atlas",
        description="ATLAS ops console and monitoring daemon. Without a command, opens the console.",
    )
    parser.add_argument("--version", action="version", version=f"atlas {__version__}")
    _add_location_flags(parser, suppress=False)
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="write log records to FILE, rotated at 10 MiB; the console never logs to the terminal",
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    tui = commands.add_parser("tui", help="open the console (the default command)")
    _add_location_flags(tui, suppress=True)
    _add_log_file_flag(tui, "write log records to FILE; the console never logs to the terminal")
    _add_connect_flags(tui)
    _add_daemon_parser(commands)
    _add_metrics_parser(commands)
    _add_config_parser(commands)
    _add_alerts_parser(commands)
    _add_notify_parser(commands)
    from atlas_tui.cli_analytics import register as register_analytics

    register_analytics(commands)
    from atlas_tui.cli_api import register as register_api

    register_api(commands)
    from atlas_tui.cli_backup import register as register_backup

    register_backup(commands)
    _add_missing_location_flags(parser)
    return parser


def _add_missing_location_flags(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand `--data-dir` and `--config`, so both may follow it (`atlas metrics --config F`)."""
    for action in parser._actions:  # noqa: SLF001 - argparse lists subparsers only here
        if not isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            continue
        for subparser in set(action.choices.values()):
            options = subparser._option_string_actions  # noqa: SLF001
            default = argparse.SUPPRESS
            if "--data-dir" not in options:
                subparser.add_argument("--data-dir", default=default, metavar="DIR", help="data directory holding the store")
            if "--config" not in options:
                subparser.add_argument("--config", default=default, metavar="FILE", help="JSON config file")
            _add_missing_location_flags(subparser)


def _add_location_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Subcommands use SUPPRESS so an unset flag there does not overwrite the same
    # flag given before the subcommand (`atlas --data-dir D daemon`).
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="data directory holding the store (default: $ATLAS_DATA_DIR, else ~/.local/share/atlas)",
    )
    parser.add_argument(
        "--config",
        default=default,
        metavar="FILE",
        help="JSON config file (default: $ATLAS_CONFIG, else ~/.config/atlas/config.json if present)",
    )


def _add_log_file_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--log-file", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=help_text)


def _add_connect_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        type=_connect_url,
        default=None,
        metavar="URL",
        help="show the daemon whose API is at URL (http://HOST:PORT or https://HOST:PORT) "
        "instead of the local store",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --connect: file whose first line is an API token with the read scope, and ack to "
        "acknowledge (default: the daemon's local token file, api-token in the data directory)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --connect https://...: PEM file of the certificate authorities to trust "
        "(default: the certifi bundle)",
    )


def _add_daemon_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    daemon = commands.add_parser(
        "daemon",
        help="run collectors, store maintenance and the HTTP API in the foreground",
        description="Run headless until SIGTERM or SIGINT. Logs go to stderr.",
    )
    _add_location_flags(daemon, suppress=True)
    daemon.add_argument(
        "--port",
        type=_port,
        default=None,
        help="API port (default: the config's `port`, 8080); 0 picks a free port",
    )
    daemon.add_argument(
        "--bind",
        type=_bind_address,
        default=None,
        metavar="ADDR",
        help="IP address the API listens on (default: the config's `api.bind`, 127.0.0.1); "
        "any other than loopback needs API tokens and `api.allowed_hosts`",
    )
    daemon.add_argument("--no-api", action="store_true", help="serve no HTTP API and open no port")
    _add_log_file_flag(daemon, "also write the log to FILE, rotated at 10 MiB")
    daemon.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="minimum level of logged records (default: INFO)",
    )


def _add_metrics_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    metrics = commands.add_parser("metrics", help="print the latest value of every series")
    metrics.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="data directory holding the store (default: $ATLAS_DATA_DIR, else ~/.local/share/atlas)",
    )
    metrics.add_argument("--name", default=None, help="print only the series of this metric name")
    metrics.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects with name, labels, ts (UTC epoch seconds) and value",
    )


def _add_config_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser("config", help="inspect the config file")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate the config file and print the effective config as JSON",
    )
    check.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help="JSON config file to check")
    check.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="also accept the metric names stored in DIR's store when checking rules "
        "(default: $ATLAS_DATA_DIR if set, else only the built-in collectors' metrics)",
    )


def _add_alerts_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="list, acknowledge and silence alerts in the store",
        description="Read and change alerts in the store. Works with or without a running daemon.",
    )
    actions = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    _add_alerts_list_parser(actions)
    _add_alerts_ack_parsers(actions)
    _add_alerts_silence_parsers(actions)


def _add_alerts_list_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = _alerts_action(actions, "list", "list alerts, firing first, then by severity and age")
    listing.add_argument(
        "--state",
        choices=_ALERT_STATES,
        default=None,
        help="list only alerts in this state; acknowledged and silenced select alerts with that marker",
    )
    listing.add_argument(
        "--severity",
        choices=_SEVERITIES,
        default=None,
        help="list only alerts of this severity",
    )
    listing.add_argument(
        "--all",
        action="store_true",
        help="include inactive alerts (default: pending, firing, nodata, error, and resolved "
        "in the last 15 minutes)",
    )
    _add_json_flag(listing, "print a JSON list with every field of each alert; times as epoch seconds and ISO 8601 UTC")

    history = _alerts_action(actions, "history", "print an alert's transitions and notification deliveries")
    _add_alert_id(history)
    _add_json_flag(history, "print a JSON object with the alert, its events and its deliveries")


def _add_alerts_ack_parsers(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ack = _alerts_action(
        actions,
        "ack",
        "acknowledge a firing alert, which stops repeat notices but still sends the resolved notice",
    )
    _add_alert_id(ack)
    ack.add_argument(
        "-m",
        "--message",
        default="",
        type=_ack_message,
        help="note stored with the acknowledgement, for example what is being done (at most 2000 characters)",
    )

    unack = _alerts_action(actions, "unack", "remove the acknowledgement of a firing alert, so repeats resume")
    _add_alert_id(unack)


def _add_alerts_silence_parsers(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = _alerts_action(
        actions,
        "silence",
        "suppress notices of matching alerts for a while; they are still evaluated and listed",
    )
    silence.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="MATCHER",
        help="label matcher such as rule=high_cpu, mount=\"/\" or host=~\"atlas-.*\"; "
        "repeat to require several (all must match)",
    )
    silence.add_argument(
        "--for",
        dest="duration",
        required=True,
        type=_silence_duration,
        metavar="DURATION",
        help="how long the silence lasts from now, such as 30m, 2h or 1d",
    )
    silence.add_argument(
        "-c", "--comment", required=True, type=_silence_comment,
        help="why the alerts are silenced; shown with the silence",
    )

    silences = _alerts_action(actions, "silences", "list active silences")
    silences.add_argument("--all", action="store_true", help="include expired silences")
    _add_json_flag(silences, "print a JSON list of silences; times as epoch seconds and ISO 8601 UTC")

    unsilence = _alerts_action(actions, "unsilence", "end a silence now")
    unsilence.add_argument("silence_id", metavar="SILENCE_ID", help="silence id as listed, such as silence_3")


def _alerts_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    action = actions.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
    _add_location_flags(action, suppress=True)
    return action


def _add_alert_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id",
        metavar="ID",
        help="alert id such as alert_12, or its fingerprint (a unique prefix of 4 or more characters is enough)",
    )


def _add_json_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def _add_notify_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    notify = commands.add_parser("notify", help="check notification channels")
    actions = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = actions.add_parser(
        "test",
        help="send a labelled test message to one channel and print the latency and response",
        description="Send a message labelled [TEST] to CHANNEL. Exits 0 when the channel accepted it, 1 otherwise.",
    )
    test.add_argument("channel", metavar="CHANNEL", help="channel name, a key of the config's \"channels\" section")
    test.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE", help="JSON config file with the channel")


def _cmd_tui(args: argparse.Namespace) -> int:
    config = _load(args)
    configure_logging("INFO", args.log_file, stderr=False)
    from atlas_tui.console.app import run_console

    connect = getattr(args, "connect", None)
    if connect is None:
        if getattr(args, "token_file", None) is not None or getattr(args, "ca_file", None) is not None:
            print("atlas tui: --token-file and --ca-file apply only with --connect URL", file=sys.stderr)
            return EXIT_USAGE
        return run_console(config, resolve_data_dir(args.data_dir))
    return run_console(config, resolve_data_dir(args.data_dir), _remote_source(args, connect))


def _remote_source(args: argparse.Namespace, url: str) -> ConsoleSource:
    """Build the console's source for `--connect`, checking the token and CA files first.

    Raises:
        atlas_tui.console.remote_client.RemoteError: a file cannot be read.
    """
    from atlas_tui.api_tokens import LOCAL_TOKEN_FILE
    from atlas_tui.console.remote_client import read_token, tls_context
    from atlas_tui.console.remote_source import RemoteSource

    token_file = args.token_file or resolve_data_dir(args.data_dir) / LOCAL_TOKEN_FILE
    read_token(token_file)
    tls_context(args.ca_file)
    return RemoteSource(url, token_file, ca_file=args.ca_file)


def _cmd_daemon(args: argparse.Namespace) -> int:
    config = _load(args)
    from atlas_tui.daemon import run_daemon

    return run_daemon(
        config,
        resolve_data_dir(args.data_dir),
        port=args.port,
        api=not args.no_api,
        log_file=args.log_file,
        log_level=args.log_level,
        bind=args.bind,
        config_path=resolve_config_path(args.config),
    )


def _cmd_metrics(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    data_dir = resolve_data_dir(args.data_dir)
    try:
        rows = _read_latest(data_dir, args.name)
    except _NoMetricsError as err:
        if args.json:
            print("[]")
        print(f"atlas metrics: {err}", file=sys.stderr)
        return EXIT_FAILURE

    if args.json:
        json.dump([_metric_json(row) for row in rows], sys.stdout, indent=2)
        print()
    else:
        _print_metrics_table(rows, sys.stdout)
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    config = load_config(path)
    from atlas_tui.cli_alerts import check_alerting

    stored, notes = _stored_metrics(args)
    check = check_alerting(config, stored)
    if check.errors:
        # The warnings go with the errors, so one run shows every problem.
        raise ConfigError(str(path) if path is not None else "defaults", [*check.errors, *notes, *check.warnings])

    print(json.dumps(config.model_dump(mode="json", by_alias=True), indent=2))
    source = str(path) if path is not None else "defaults (no config file found)"
    for warning in [*notes, *check.warnings]:
        print(f"{source}: {warning}", file=sys.stderr)
    print(f"config ok: {source}", file=sys.stderr)
    return EXIT_OK


def _cmd_alerts(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    config = _load(args)
    from atlas_tui.alerts.silences import InvalidSilenceError
    from atlas_tui.cli_alerts import run_alerts

    try:
        run_alerts(args, config, resolve_data_dir(args.data_dir), now=time.time(), out=sys.stdout)
    except InvalidSilenceError as err:
        print(f"atlas alerts {args.alerts_command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_analytics(args: argparse.Namespace) -> int:
    from atlas_tui.cli_analytics import run_analytics

    return run_analytics(args)


def _cmd_api(args: argparse.Namespace) -> int:
    from atlas_tui.cli_api import run_api

    return run_api(args)


def _cmd_backup(args: argparse.Namespace) -> int:
    from atlas_tui.cli_backup import run_backup

    return run_backup(args)


def _cmd_notify(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    path = resolve_config_path(args.config)
    config = load_config(path)
    from atlas_tui.cli_alerts import notify_test

    source = str(path) if path is not None else "defaults (no config file found)"
    delivered = notify_test(config, source, args.channel, sys.stdout, sys.stderr)
    return EXIT_OK if delivered else EXIT_FAILURE


_COMMANDS = {
    "tui": _cmd_tui,
    "daemon": _cmd_daemon,
    "metrics": _cmd_metrics,
    "config": _cmd_config,
    "alerts": _cmd_alerts,
    "notify": _cmd_notify,
    "analytics": _cmd_analytics,
    "api": _cmd_api,
    "backup": _cmd_backup,
}


class _NoMetricsError(AtlasError):
    """Raised by `atlas metrics` when the store is missing, unreadable or has no matching series."""


def _load(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config))


def _stored_metrics(args: argparse.Namespace) -> tuple[set[str], list[str]]:
    """Return the metric names in the store of `--data-dir` or `$ATLAS_DATA_DIR`, and notes.

    Without either, only the built-in metric names count, so a check on a machine
    without a store never warns about the default data directory.
    """
    chosen = args.data_dir or os.environ.get("ATLAS_DATA_DIR")
    if not chosen:
        return set(), []
    from atlas_tui.cli_alerts import NoStoreError, stored_metric_names

    try:
        return stored_metric_names(resolve_data_dir(chosen)), []
    except NoStoreError as err:
        return set(), [f"warning: {err}; rules were checked against the built-in metric names only"]


ACK_MESSAGE_MAX = 2000
"""Maximum length of an acknowledgement note, the same limit as `POST /api/alerts/ack/{id}`."""


def _ack_message(text: str) -> str:
    if len(text) > ACK_MESSAGE_MAX:
        raise argparse.ArgumentTypeError(
            f"the message has {len(text)} characters; shorten it to at most {ACK_MESSAGE_MAX}"
        )
    return text


def _silence_comment(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the comment is empty; say why the alerts are silenced")
    return text


def _silence_duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration longer than zero such as 30m or 2h, got {text!r}")
    return seconds


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {port}")
    return port


def _connect_url(text: str) -> str:
    from atlas_tui.console.remote_client import RemoteError, parse_target

    try:
        return parse_target(text)
    except RemoteError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _bind_address(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address such as 127.0.0.1 or 0.0.0.0, got {text!r}") from None
    return text


def _print_config_error(err: ConfigError, stream: TextIO) -> None:
    for problem in err.problems:
        print(f"{err.source}: {problem}", file=stream)


def _read_latest(data_dir: Path, name: str | None) -> list[SeriesValue]:
    """Read the newest sample of each series, sorted by name and labels, in one short read.

    Raises:
        _NoMetricsError: no store file, an unreadable store, or no matching series.
    """
    import sqlite3

    from storage.db import DB_FILENAME, connect
    from storage.errors import StorageError
    from storage.metrics import latest, list_series

    path = data_dir / DB_FILENAME
    if data_dir.exists() and not data_dir.is_dir():
        raise _NoMetricsError(
            f"{data_dir} is not a directory; pass the daemon's data directory to --data-dir "
            "or set ATLAS_DATA_DIR"
        )
    if not path.is_file():
        raise _NoMetricsError(
            f"no store at {path}; start `atlas daemon --data-dir {data_dir}` or check --data-dir"
        )
    try:
        conn = connect(path)
        try:
            rows = latest(conn, name)
            known = sorted({series_name for series_name, _labels in list_series(conn)})
        finally:
            conn.close()
    except (sqlite3.Error, StorageError) as err:
        raise _NoMetricsError(f"cannot read the store {path}: {err}") from err

    if rows:
        return sorted(rows, key=lambda row: (row.name, row.labels))
    if name is not None and known:
        raise _NoMetricsError(f"no series named {name!r} in {path}; stored metrics: {', '.join(known)}")
    raise _NoMetricsError(
        f"no metrics stored yet in {path}; is `atlas daemon --data-dir {data_dir}` running?"
    )


def _metric_json(row: SeriesValue) -> dict[str, object]:
    return {"name": row.name, "labels": dict(row.labels), "ts": row.ts, "value": row.value}


def _print_metrics_table(rows: list[SeriesValue], stream: TextIO) -> None:
    table = [("NAME", "LABELS", "VALUE", "TIME (UTC)")]
    for row in rows:
        labels = ",".join(f"{key}={value}" for key, value in row.labels) or "-"
        when = datetime.fromtimestamp(row.ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        table.append((row.name, labels, f"{row.value:.2f}", when))

    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for name, labels, value, when in table:
        print(
            f"{name:<{widths[0]}}  {labels:<{widths[1]}}  {value:>{widths[2]}}  {when}",
            file=stream,
        )


if __name__ == "__main__":
    sys.exit(main())

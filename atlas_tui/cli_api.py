"""The `atlas api` commands: `api token create`, `api token revoke` and `api token list`.

`register(commands)` adds the `api` parser, and `atlas_tui.cli` runs `run_api(args)`
for the `api` command. The commands write to the store directly, in short
transactions, so they work with or without a running daemon. A running daemon
applies a new or revoked token within about a second. Invariants: `create` prints the token
once, on stdout alone, so `TOKEN=$(atlas api token create ...)` captures it, and no
command prints a token or its hash afterwards.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from atlas_tui.api_tokens import (
    LOCAL_TOKEN_FILE,
    LOCAL_TOKEN_NAME,
    Scope,
    check_name,
    create_token,
    format_scopes,
    parse_scopes,
    revoke,
)
from atlas_tui.config import resolve_data_dir
from atlas_tui.errors import AtlasError
from atlas_tui.logs import configure_logging
from storage.db import DB_FILENAME, connect, open_store
from storage.tokens import TokenRow, list_tokens

__all__ = ["register", "run_api"]

EXIT_OK = 0


class _NoStoreError(AtlasError):
    """Raised by `revoke` and `list` when the data directory has no store yet."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `api` and its `token` actions to the `atlas` subcommands."""
    api = commands.add_parser("api", help="manage the HTTP API's bearer tokens")
    groups = api.add_subparsers(dest="api_command", metavar="GROUP", required=True)
    token = groups.add_parser(
        "token",
        help="create, revoke and list API tokens",
        description="Manage bearer tokens of the HTTP API. Tokens are stored hashed in the data directory's store.",
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    _add_create_parser(actions)
    _add_revoke_parser(actions)
    _add_list_parser(actions)


def run_api(args: argparse.Namespace) -> int:
    """Run the chosen `atlas api token` action and return its exit code."""
    configure_logging("WARNING")
    data_dir = resolve_data_dir(args.data_dir)
    handler = _HANDLERS[args.token_command]
    handler(args, data_dir, sys.stdout, sys.stderr)
    return EXIT_OK


def _add_create_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = _action(
        actions,
        "create",
        "create a token and print it once",
        "Create a bearer token and print it on stdout. Only its SHA-256 hash is stored, "
        "so it cannot be shown again.",
    )
    create.add_argument(
        "--name", required=True, type=_name, help="unique name of the token, such as ci-deploy or grafana"
    )
    create.add_argument(
        "--scope",
        required=True,
        type=_scopes,
        metavar="SCOPES",
        help=f"comma-separated scopes, from {format_scopes(Scope)} (admin also grants read and ack)",
    )


def _add_revoke_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    revoke_parser = _action(
        actions,
        "revoke",
        "revoke a token by name; requests with it get 401",
        "Revoke the active token NAME. A running daemon rejects it within about a second. "
        f"Revoking {LOCAL_TOKEN_NAME!r} makes the daemon write a new {LOCAL_TOKEN_FILE} file at its next start.",
    )
    revoke_parser.add_argument("name", metavar="NAME", help="name of the token, as `atlas api token list` shows it")


def _add_list_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = _action(actions, "list", "list tokens by name with scopes and times, never the tokens")
    listing.add_argument("--all", action="store_true", help="also list revoked tokens")
    listing.add_argument(
        "--json", action="store_true", help="print a JSON list with name, scopes, created_at and revoked_at (UTC epoch seconds)"
    )


def _action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    action = actions.add_parser(name, help=help_text, description=description or help_text[:1].upper() + help_text[1:] + ".")
    action.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="data directory holding the store (default: $ATLAS_DATA_DIR, else ~/.local/share/atlas)",
    )
    return action


def _name(text: str) -> str:
    try:
        check_name(text)
    except AtlasError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _scopes(text: str) -> frozenset[Scope]:
    try:
        return parse_scopes(text)
    except AtlasError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _create(args: argparse.Namespace, data_dir: Path, out: TextIO, err: TextIO) -> None:
    conn = open_store(data_dir)
    try:
        token = create_token(conn, args.name, args.scope, time.time())
    finally:
        conn.close()
    print(token, file=out)
    print(
        f"token {args.name!r} created with scopes {format_scopes(args.scope)}; it is shown only this once, "
        "so store it now, for example in a file readable only by you",
        file=err,
    )


def _revoke(args: argparse.Namespace, data_dir: Path, out: TextIO, err: TextIO) -> None:
    conn = _existing_store(data_dir)
    try:
        revoke(conn, args.name, time.time())
    finally:
        conn.close()
    print(f"token {args.name!r} revoked", file=err)


def _list(args: argparse.Namespace, data_dir: Path, out: TextIO, err: TextIO) -> None:
    conn = _existing_store(data_dir)
    try:
        rows = list_tokens(conn, include_revoked=args.all)
    finally:
        conn.close()
    if args.json:
        json.dump([_row_json(row) for row in rows], out, indent=2)
        print(file=out)
    elif rows:
        _print_table(rows, out)
    else:
        print("no API tokens; create one with `atlas api token create --name NAME --scope read`", file=err)


def _existing_store(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / DB_FILENAME
    if not path.is_file():
        raise _NoStoreError(f"no store at {path}; create a token first or check --data-dir")
    return connect(path)


def _row_json(row: TokenRow) -> dict[str, object]:
    return {"name": row.name, "scopes": list(row.scopes), "created_at": row.created_at, "revoked_at": row.revoked_at}


def _print_table(rows: list[TokenRow], out: TextIO) -> None:
    table = [("NAME", "SCOPES", "CREATED (UTC)", "REVOKED (UTC)")]
    table += [(row.name, ",".join(row.scopes), _utc(row.created_at), _utc(row.revoked_at)) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for name, scopes, created, revoked in table:
        print(f"{name:<{widths[0]}}  {scopes:<{widths[1]}}  {created:<{widths[2]}}  {revoked}".rstrip(), file=out)


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


_HANDLERS = {"create": _create, "revoke": _revoke, "list": _list}

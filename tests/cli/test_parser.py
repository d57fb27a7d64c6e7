"""The `atlas` argument parser: default command, flag placement and port validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_tui.cli import build_parser


def test_no_command_is_console() -> None:
    """`atlas` without a command selects the console."""
    args = build_parser().parse_args([])

    assert args.command is None
    assert args.data_dir is None


def test_flag_before_command() -> None:
    """A --data-dir given before the command survives the subcommand's parsing."""
    args = build_parser().parse_args(["--data-dir", "/d", "daemon"])

    assert args.data_dir == "/d"


def test_flag_after_command() -> None:
    """Daemon flags after the command are parsed with their types and defaults."""
    args = build_parser().parse_args(["daemon", "--data-dir", "/d", "--port", "9000", "--log-file", "x.log"])

    assert args.data_dir == "/d"
    assert args.port == 9000
    assert args.log_file == Path("x.log")
    assert args.no_api is False
    assert args.log_level == "INFO"


def test_log_level_case_insensitive() -> None:
    """--log-level accepts lower-case level names."""
    args = build_parser().parse_args(["daemon", "--log-level", "debug"])

    assert args.log_level == "DEBUG"


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_bad_port_rejected(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range or non-numeric --port exits 2 with the accepted range."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["daemon", "--port", port])

    assert caught.value.code == 2
    assert "expected a port number from 0 to 65535" in capsys.readouterr().err


def test_config_needs_action(capsys: pytest.CaptureFixture[str]) -> None:
    """`atlas config` without an action exits 2."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["config"])

    assert caught.value.code == 2

"""`atlas tui --connect URL --token-file FILE --ca-file FILE`: parsing and the checks made before the console opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_tui.cli import EXIT_FAILURE, EXIT_USAGE, build_parser, main


def test_connect_normalised() -> None:
    """The URL is stored as `scheme://host:port`, the port filled in from the scheme."""
    args = build_parser().parse_args(["tui", "--connect", "https://atlas-1.example.org", "--token-file", "t"])
    assert args.connect == "https://atlas-1.example.org:443"
    assert args.token_file == Path("t")


def test_connect_bad_url_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL with a path is a usage error that shows the accepted form."""
    with pytest.raises(SystemExit) as caught:
        main(["tui", "--connect", "http://host:8080/api"])
    assert caught.value.code == EXIT_USAGE
    assert "use http://HOST:PORT or https://HOST:PORT" in capsys.readouterr().err


def test_token_file_needs_connect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--token-file` without `--connect` is a usage error."""
    code = main(["tui", "--data-dir", str(tmp_path), "--token-file", str(tmp_path / "t")])
    assert code == EXIT_USAGE
    assert "only with --connect" in capsys.readouterr().err


def test_missing_token_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a readable token file the console does not open; the message names the file."""
    code = main(["tui", "--data-dir", str(tmp_path), "--connect", "http://127.0.0.1:9"])
    assert code == EXIT_FAILURE
    err = capsys.readouterr().err
    assert str(tmp_path / "api-token") in err
    assert "atlas api token create" in err


def test_bad_ca_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CA file that contains no certificate fails before the console opens."""
    token = tmp_path / "t"
    token.write_text("atlas_x\n", encoding="utf-8")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not a certificate\n", encoding="utf-8")
    code = main(["tui", "--connect", "https://127.0.0.1:9", "--token-file", str(token), "--ca-file", str(ca_file)])
    assert code == EXIT_FAILURE
    assert f"cannot load the CA file {ca_file}" in capsys.readouterr().err

"""`atlas api token create|revoke|list`: shown once, never listed, usable at once against the API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from atlas_tui.api import create_api
from atlas_tui.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from storage.db import DB_FILENAME, connect

NOW = 1_750_000_000.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the caller's ATLAS_* variables and XDG config."""
    monkeypatch.delenv("ATLAS_CONFIG", raising=False)
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def _atlas(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _create(capsys: pytest.CaptureFixture[str], data_dir: Path, name: str = "ci", scope: str = "read,ack") -> str:
    code, out, _err = _atlas(capsys, "api", "token", "create", "--data-dir", str(data_dir), "--name", name, "--scope", scope)
    assert code == EXIT_OK
    return out.strip()


def test_create_prints_token_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`create` prints only the token on stdout and the one-time notice on stderr, creating the store."""
    code, out, err = _atlas(
        capsys, "api", "token", "create", "--data-dir", str(tmp_path / "d"), "--name", "ci", "--scope", "read,ack"
    )

    assert code == EXIT_OK
    assert out.count("\n") == 1
    assert out.startswith("atlas_")
    assert "shown only this once" in err
    assert (tmp_path / "d" / DB_FILENAME).is_file()


def test_list_never_prints_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`list` shows name and scopes but neither the token nor its hash."""
    token = _create(capsys, tmp_path)
    conn = connect(tmp_path / DB_FILENAME)
    try:
        digest = conn.execute("SELECT token_hash FROM api_tokens").fetchone()[0]
    finally:
        conn.close()

    code, out, _err = _atlas(capsys, "api", "token", "list", "--data-dir", str(tmp_path))
    _code, as_json, _err = _atlas(capsys, "api", "token", "list", "--data-dir", str(tmp_path), "--json")

    assert code == EXIT_OK
    assert out.splitlines()[0].split() == ["NAME", "SCOPES", "CREATED", "(UTC)", "REVOKED", "(UTC)"]
    assert out.splitlines()[1].split()[:2] == ["ci", "ack,read"]
    for text in (out, as_json):
        assert token not in text
        assert digest not in text
    assert [item["name"] for item in json.loads(as_json)] == ["ci"]


def test_revoke_then_list_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A revoked token leaves `list` and shows in `list --all` with its revocation time."""
    _create(capsys, tmp_path)

    code, _out, err = _atlas(capsys, "api", "token", "revoke", "ci", "--data-dir", str(tmp_path))
    _code, active, _err = _atlas(capsys, "api", "token", "list", "--data-dir", str(tmp_path), "--json")
    _code, everything, _err = _atlas(capsys, "api", "token", "list", "--data-dir", str(tmp_path), "--json", "--all")

    assert code == EXIT_OK
    assert "revoked" in err
    assert json.loads(active) == []
    assert json.loads(everything)[0]["revoked_at"] is not None


def test_revoke_unknown_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Revoking a name that has no active token exits 1 naming the list command."""
    _create(capsys, tmp_path)

    code, _out, err = _atlas(capsys, "api", "token", "revoke", "nobody", "--data-dir", str(tmp_path))

    assert code == EXIT_FAILURE
    assert "atlas api token list" in err


def test_duplicate_name_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second `create` with an active name exits 1 and prints no token."""
    _create(capsys, tmp_path)

    code, out, err = _atlas(capsys, "api", "token", "create", "--data-dir", str(tmp_path), "--name", "ci", "--scope", "read")

    assert code == EXIT_FAILURE
    assert out == ""
    assert "revoke it first" in err


@pytest.mark.parametrize(
    ("name", "scope", "message"),
    [("ci", "write", "unknown scope 'write'"), ("local", "read", "reserved"), ("a b", "read", "invalid token name")],
)
def test_invalid_usage_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, scope: str, message: str
) -> None:
    """An unknown scope or a reserved or malformed name exits 2 before the store is touched."""
    with pytest.raises(SystemExit) as caught:
        main(["api", "token", "create", "--data-dir", str(tmp_path / "d"), "--name", name, "--scope", scope])

    assert caught.value.code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_list_without_store_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`list` on a directory without a store exits 1 and creates nothing."""
    code, _out, err = _atlas(capsys, "api", "token", "list", "--data-dir", str(tmp_path / "none"))

    assert code == EXIT_FAILURE
    assert "no store at" in err
    assert not (tmp_path / "none").exists()


async def test_created_token_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A token from `create` reads and acknowledges through the API; after `revoke` it gets 401."""
    token = _create(capsys, tmp_path)
    app = create_api(tmp_path, started_at=NOW, version="t", statuses_provider=list, clock=lambda: NOW)
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as http:
        read = await http.get("/api/metrics")
        ack = await http.post("/api/alerts/ack/alert_1")
        _atlas(capsys, "api", "token", "revoke", "ci", "--data-dir", str(tmp_path))
        app.state.token_cache.invalidate()
        revoked = await http.get("/api/metrics")

    assert read.status_code == 200
    assert ack.status_code == 404
    assert revoked.status_code == 401

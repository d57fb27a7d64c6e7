"""Privacy building blocks: host secret, pseudonyms, IP masking and the wallet guard."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from atlas_tui.analytics import privacy
from atlas_tui.analytics.errors import HostSecretError
from atlas_tui.analytics.privacy import (
    SECRET_FILENAME,
    Pseudonymizer,
    detect_wallet_secret,
    load_host_secret,
    mask_ip,
    scrub_properties,
)

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
WALLET_SECRETS = {
    "bip39_mnemonic": MNEMONIC,
    "private_key": "e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35",
    "evm_address": "0x52908400098527886E0F7030069857D2E4169EE7",
    "bech32_address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060",
}
"""One value per wallet-guard rule, shared with the storage grep test."""


def test_secret_created_0600(tmp_path: Path) -> None:
    """The host secret is created with mode 0600 and 32 bytes."""
    secret = load_host_secret(tmp_path)

    mode = stat.S_IMODE((tmp_path / SECRET_FILENAME).stat().st_mode)
    assert mode == 0o600
    assert len(secret) == 32


def test_secret_stable(tmp_path: Path) -> None:
    """A second load returns the same secret."""
    assert load_host_secret(tmp_path) == load_host_secret(tmp_path)


def test_secret_wrong_size(tmp_path: Path) -> None:
    """A secret file of the wrong size raises with the path in the message."""
    (tmp_path / SECRET_FILENAME).write_bytes(b"short")

    with pytest.raises(HostSecretError, match=SECRET_FILENAME):
        load_host_secret(tmp_path)


def test_secret_tightened(tmp_path: Path) -> None:
    """A secret readable by others is set back to 0600."""
    load_host_secret(tmp_path)
    (tmp_path / SECRET_FILENAME).chmod(0o644)

    load_host_secret(tmp_path)

    assert stat.S_IMODE((tmp_path / SECRET_FILENAME).stat().st_mode) == 0o600


def test_pseudonym_keyed() -> None:
    """The same id gives the same pseudonym under one secret and another under a new one."""
    first = Pseudonymizer(b"a" * 32)
    rotated = Pseudonymizer(b"b" * 32)

    assert first.pseudonym("device-1") == first.pseudonym("device-1")
    assert first.pseudonym("device-1") != rotated.pseudonym("device-1")
    assert "device-1" not in first.pseudonym("device-1")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678:9abc::1", "2001:db8:1234::/48"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),
        ("testclient", None),
        (None, None),
    ],
)
def test_mask_ip(address: str | None, expected: str | None) -> None:
    """IPv4 is masked to /24, IPv6 to /48, and a non-address gives None."""
    assert mask_ip(address) == expected


@pytest.mark.parametrize(("rule", "value"), sorted(WALLET_SECRETS.items()))
def test_guard_detects(rule: str, value: str) -> None:
    """Each kind of wallet secret is detected, alone or inside text."""
    assert detect_wallet_secret(value) == rule
    assert detect_wallet_secret(f"copied: {value} (clipboard)") == rule


@pytest.mark.parametrize(
    "value",
    [
        "send",
        "the quick brown fox jumps over the lazy dog",
        " ".join(MNEMONIC.split()[:11]),
        "0x1234",
        "a" * 63,
        "2.3.0+build.77",
    ],
)
def test_guard_ignores_ordinary(value: str) -> None:
    """Ordinary values, 11 mnemonic words and short hex are kept."""
    assert detect_wallet_secret(value) is None


def test_scrub_allowlist() -> None:
    """An allowlisted property is kept, the others that match are dropped with their rule."""
    properties = {"contract": WALLET_SECRETS["evm_address"], "to": WALLET_SECRETS["evm_address"], "screen": "send"}

    kept, rules = scrub_properties(properties, allowlisted=["contract"])

    assert kept == {"contract": WALLET_SECRETS["evm_address"], "screen": "send"}
    assert rules == ["evm_address"]


def test_guard_without_wordlist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the `mnemonic` package, 12 short lower-case words still count as a mnemonic."""
    monkeypatch.setattr(privacy, "_bip39_words", lambda: None)

    assert detect_wallet_secret(MNEMONIC) == "bip39_mnemonic"
    assert detect_wallet_secret("Send 0.1 BTC to Alice") is None

"""Server-side privacy for analytics events: keyed pseudonyms, IP masking and the wallet guard.

`ingest.prepare_batch` calls these before anything reaches the store, so a raw device id,
user id, client IP or wallet secret never enters `storage.events`. Invariants:

- Device and user ids become `HMAC-SHA256(host secret, id)` in hex. The secret is 32
  random bytes in `<data_dir>/analytics_secret` (mode 0600), created on first use
  and never logged. A new secret starts new pseudonyms; stored rows are untouched.
- Client addresses are masked in memory to /24 (IPv4) or /48 (IPv6).
- A string that looks like a wallet secret (BIP-39 mnemonic, private key, EVM or
  bech32 address, transaction hash) is dropped whole, and its rule is returned so
  the caller can count it under `privacy_redactions{rule}`.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atlas_tui.analytics.errors import HostSecretError

__all__ = [
    "SECRET_BYTES",
    "SECRET_FILENAME",
    "Pseudonymizer",
    "detect_wallet_secret",
    "load_host_secret",
    "mask_ip",
    "scrub_properties",
    "scrub_value",
]

logger = logging.getLogger(__name__)

SECRET_FILENAME = "analytics_secret"
"""File in the data directory holding the HMAC key for pseudonyms."""

SECRET_BYTES = 32
"""Length of the host secret; 32 bytes matches SHA-256's block security."""

_MNEMONIC_LENGTHS = (12, 15, 18, 21, 24)
_MIN_SECRET_LENGTH = 14
"""Length of the shortest text any rule matches: `bc1` and 11 more characters of a bech32 address."""
_PSEUDONYM_CACHE = 4096
"""Ids whose pseudonyms are kept in memory; the cache starts over when full."""
_WORD = re.compile(r"[a-z]+")
_HEX_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tx_hash", re.compile(r"(?<![0-9a-fA-FxX])0[xX][0-9a-fA-F]{64}(?![0-9a-fA-F])")),
    ("evm_address", re.compile(r"(?<![0-9a-fA-FxX])0[xX][0-9a-fA-F]{40}(?![0-9a-fA-F])")),
    ("private_key", re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")),
    ("bech32_address", re.compile(r"(?<![0-9a-zA-Z])(?:bc|tb)1[ac-hj-np-z02-9]{11,71}(?![0-9a-zA-Z])", re.IGNORECASE)),
    ("extended_private_key", re.compile(r"(?<![0-9a-zA-Z])[xyzt]prv[1-9A-HJ-NP-Za-km-z]{100,112}(?![0-9a-zA-Z])")),
    ("wif_private_key", re.compile(r"(?<![0-9a-zA-Z])[5KLc][1-9A-HJ-NP-Za-km-z]{50,51}(?![0-9a-zA-Z])")),
)


def load_host_secret(data_dir: Path) -> bytes:
    """Read the host secret from `data_dir`, creating it with mode 0600 on first use.

    Creation writes a temporary file and links it into place, so two processes
    starting together end up with the same secret and no process reads a partial file.

    Raises:
        HostSecretError: the file cannot be created or read, or is not 32 bytes long.
    """
    path = data_dir / SECRET_FILENAME
    if not path.exists():
        _create_secret(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("analytics secret was readable by others path=%s mode=%o; set to 0600", path, mode)
            path.chmod(0o600)
        secret = path.read_bytes()
    except OSError as err:
        raise HostSecretError(path, err.strerror or str(err)) from err
    if len(secret) != SECRET_BYTES:
        raise HostSecretError(path, f"expected {SECRET_BYTES} bytes, found {len(secret)}")
    return secret


class Pseudonymizer:
    """Keyed hashes of ids and event contents, under one host secret."""

    def __init__(self, secret: bytes) -> None:
        # Copies of a keyed HMAC skip the key set-up, and unlike `hmac.digest` they keep
        # the GIL for short inputs, which spares the ingest loop a thread hand-off per call.
        self._keyed = hmac.new(secret, digestmod="sha256")
        self._recent: dict[str, str] = {}

    def pseudonym(self, value: str) -> str:
        """Return `HMAC-SHA256(secret, value)` in hex, the stored form of a device or user id."""
        # A batch carries one device's events, so most calls repeat the previous ids.
        known = self._recent.get(value)
        if known is not None:
            return known
        digest = self._digest(value.encode("utf-8", "surrogatepass"))
        if len(self._recent) >= _PSEUDONYM_CACHE:
            self._recent.clear()
        self._recent[value] = digest
        return digest

    def content_hash(self, data: bytes) -> str:
        """Return a keyed hash of an event's canonical JSON, to tell a resend from a conflicting reuse of its id.

        It is keyed because the content includes the raw device id, which a plain
        hash would let anyone confirm by guessing.
        """
        return self._digest(b"content\0" + data)

    def _digest(self, data: bytes) -> str:
        keyed = self._keyed.copy()
        keyed.update(data)
        return keyed.hexdigest()


def mask_ip(address: str | None) -> str | None:
    """Return the network of `address`: /24 for IPv4, /48 for IPv6, None if it is not an IP.

    An IPv4-mapped IPv6 address (`::ffff:203.0.113.7`) is masked as IPv4.
    """
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def detect_wallet_secret(text: str) -> str | None:
    """Return the wallet-guard rule that `text` matches, or None.

    Rules: `bip39_mnemonic` (12, 15, 18, 21 or 24 words in a row from the BIP-39
    English wordlist), `tx_hash` (0x + 64 hex), `evm_address` (0x + 40 hex),
    `private_key` (64 hex), `bech32_address` (`bc1…`/`tb1…`), `extended_private_key`
    (`xprv…`) and `wif_private_key` (base58 WIF).
    """
    if len(text) < _MIN_SECRET_LENGTH:
        return None
    for rule, pattern in _HEX_PATTERNS:
        if pattern.search(text):
            return rule
    if _has_mnemonic_run(text):
        return "bip39_mnemonic"
    return None


def scrub_properties(
    properties: dict[str, Any], allowlisted: Iterable[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Drop string properties that look like wallet secrets.

    Args:
        properties: Scalar properties of one event.
        allowlisted: Property names the guard leaves alone for this event type.

    Returns:
        The kept properties and the rule of each dropped one.
    """
    skip = set(allowlisted)
    kept: dict[str, Any] = {}
    rules: list[str] = []
    for key, value in properties.items():
        rule = detect_wallet_secret(value) if isinstance(value, str) and key not in skip else None
        if rule is None:
            kept[key] = value
        else:
            rules.append(rule)
    return kept, rules


def scrub_value(value: Any, rules: list[str]) -> Any:
    """Return `value` (any JSON) with every string that looks like a wallet secret replaced by None.

    Each dropped string appends its rule to `rules`. Used on the raw JSON of events
    the daemon cannot validate, where no field is known to be safe.
    """
    if isinstance(value, str):
        rule = detect_wallet_secret(value)
        if rule is None:
            return value
        rules.append(rule)
        return None
    if isinstance(value, dict):
        return {key: scrub_value(item, rules) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_value(item, rules) for item in value]
    return value


def _create_secret(path: Path) -> None:
    temporary = path.with_name(f".{SECRET_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(SECRET_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            logger.info("analytics secret created path=%s", path)
        except FileExistsError:
            pass  # Another process created it first; both use that one.
    except OSError as err:
        raise HostSecretError(path, err.strerror or str(err)) from err
    finally:
        temporary.unlink(missing_ok=True)


def _has_mnemonic_run(text: str) -> bool:
    words = text.lower().split()
    if len(words) < _MNEMONIC_LENGTHS[0]:
        return False
    wordlist = _bip39_words()
    run = 0
    for word in words:
        run = run + 1 if _is_mnemonic_word(word, wordlist) else 0
        if run >= _MNEMONIC_LENGTHS[0]:
            return True
    return False


def _is_mnemonic_word(word: str, wordlist: frozenset[str] | None) -> bool:
    word = word.strip(".,;:\"'")
    if wordlist is not None:
        return word in wordlist
    # NOTE: without the `mnemonic` package this falls back to "3 to 8 lower-case
    # letters", the shape of every BIP-39 English word. It also drops ordinary
    # lower-case sentences of 12 or more short words.
    return 3 <= len(word) <= 8 and _WORD.fullmatch(word) is not None


@functools.cache
def _bip39_words() -> frozenset[str] | None:
    """Load the BIP-39 English wordlist shipped by the `mnemonic` package, once."""
    try:
        from mnemonic import Mnemonic
    except ImportError:
        logger.warning("mnemonic package missing; wallet guard uses the word-shape heuristic")
        return None
    return frozenset(Mnemonic("english").wordlist)

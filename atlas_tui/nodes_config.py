"""Config models of the blockchain node and HTTP probe collectors (`collectors.nodes`, `collectors.probes`).

`atlas_tui.config.CollectorsConfig` contains a `NodeList` and a `ProbeList`;
`atlas_tui.collection.build_collectors` turns each entry into one collector. The
models only validate: nothing here opens a connection or reads a file.

Invariants:

- Node and probe names are unique within their list and safe as metric label values
  and collector names (`node:<name>`, `probe:<name>`).
- URLs use http or https and carry no user or password: a password comes from the
  environment variable named in `auth.password_env`, or from a cookie file.
- A node's `reference` entries are URLs, or names of other nodes of the same kind in
  the same list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from atlas_tui.durations import Duration

__all__ = [
    "DEFAULT_MAX_HEAD_AGE",
    "DEFAULT_MAX_LAG",
    "NodeAuth",
    "NodeConfig",
    "NodeKind",
    "NodeList",
    "ProbeConfig",
    "ProbeList",
    "check_url",
    "is_url",
]

NodeKind = Literal["ethereum", "bitcoin"]
"""The JSON-RPC dialect of a node."""

DEFAULT_MAX_HEAD_AGE: dict[NodeKind, float] = {"ethereum": 120.0, "bitcoin": 7200.0}
"""Seconds without a new head before a node counts as stalled, by kind.

Ethereum produces a block every 12 s, so 120 s is ten missed slots. Bitcoin blocks
arrive every 10 min on average, and a gap of two hours happens for well under 1 % of
blocks, so a shorter limit would raise false alarms.
"""

DEFAULT_MAX_LAG: dict[NodeKind, int] = {"ethereum": 20, "bitcoin": 3}
"""Blocks behind the highest reference before a node counts as lagging, by kind.

References are polled at different moments, so a few blocks of lag are normal on a
chain with 12 s blocks. On Bitcoin, more than one block behind already means missed
blocks, and 3 leaves room for one poll interval.
"""

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BITCOIN_CHAINS = ("main", "test", "testnet4", "signet", "regtest")
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def is_url(text: str) -> bool:
    """Return whether `text` looks like an http or https URL rather than a node name."""
    return text.startswith(("http://", "https://"))


def check_url(url: str) -> str:
    """Validate an endpoint URL: http or https, a host, and no credentials in it.

    Raises:
        ValueError: the URL has another scheme, no host, or a user or password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"the URL has no host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        # The message must not echo the URL, because it contains the password.
        raise ValueError(
            "remove the user and password from the URL and use auth.user with auth.password_env, "
            "got a URL with credentials"
        )
    return url


class NodeAuth(_Section):
    """How to authenticate to a node: a cookie file, or a user with a password from the environment."""

    cookie_file: Path | None = None
    """Bitcoin Core's `.cookie` file (`__cookie__:<password>`); re-read once after an HTTP 401."""
    user: str | None = None
    """User name for HTTP basic authentication; requires `password_env`."""
    password_env: str | None = None
    """Name of the environment variable that contains the password, for example `BTC_RPC_PASSWORD`."""

    @model_validator(mode="after")
    def _one_method(self) -> NodeAuth:
        if self.cookie_file is not None and (self.user is not None or self.password_env is not None):
            raise ValueError("set either cookie_file or user with password_env, not both")
        if self.cookie_file is None and (self.user is None or self.password_env is None):
            raise ValueError("set cookie_file, or both user and password_env")
        if self.password_env is not None and not _ENV_NAME.fullmatch(self.password_env):
            raise ValueError(
                f"password_env must name an environment variable such as BTC_RPC_PASSWORD, got {self.password_env!r}"
            )
        return self


class NodeConfig(_Section):
    """One blockchain node watched over JSON-RPC."""

    name: str = Field(pattern=_NAME_PATTERN)
    """Label value of the node's metrics (`node_block_height{node="eth-main"}`)."""
    kind: NodeKind
    """`ethereum` for Ethereum JSON-RPC nodes (geth, Nethermind, Erigon, Besu, ganache), `bitcoin` for Bitcoin Core."""
    url: Annotated[str, AfterValidator(check_url)]
    """The JSON-RPC endpoint, for example `http://127.0.0.1:8545`. Never logged, since it may contain an API key."""
    auth: NodeAuth | None = None
    """Credentials; None for an open endpoint."""
    interval: Duration = Field(default=15.0, gt=0)
    """Time between two polls of the node."""
    timeout: Duration = Field(default=5.0, gt=0)
    """Time one poll's requests may take in total before the node counts as down; below `interval`."""
    reference: list[str] = Field(default_factory=list)
    """Nodes to compute lag against: names of other nodes of the same kind, or URLs queried without auth."""
    txpool: bool = False
    """Ethereum only: ask `txpool_status` for `node_pending_transactions` (many nodes disable the txpool API)."""
    chain: int | str | None = None
    """Expected chain: the Ethereum chain id (1 for mainnet) or the Bitcoin chain (main, test, signet, regtest).

    A node on another chain is reported as misconfigured. None accepts any chain.
    """
    max_head_age: Duration | None = Field(default=None, gt=0)
    """Time without a new head before the node counts as stalled; None uses `DEFAULT_MAX_HEAD_AGE` of its kind."""
    max_lag: int | None = Field(default=None, ge=0)
    """Blocks behind the highest reference before the node counts as lagging; None uses `DEFAULT_MAX_LAG`."""
    min_peers: int = Field(default=1, ge=0)
    """Minimum number of peers of a healthy node; 0 for a development node without peers."""

    @field_validator("reference")
    @classmethod
    def _check_references(cls, references: list[str]) -> list[str]:
        for reference in references:
            if is_url(reference):
                check_url(reference)
        return references

    @model_validator(mode="after")
    def _check_node(self) -> NodeConfig:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must be shorter than interval ({self.interval:g}s)"
            )
        if self.kind == "ethereum" and self.chain is not None and not isinstance(self.chain, int):
            raise ValueError(f"chain of an ethereum node is its chain id as a number, got {self.chain!r}")
        if self.kind == "bitcoin" and self.chain is not None and self.chain not in _BITCOIN_CHAINS:
            raise ValueError(f"chain of a bitcoin node is one of {', '.join(_BITCOIN_CHAINS)}, got {self.chain!r}")
        if self.kind == "bitcoin" and self.txpool:
            raise ValueError("txpool applies to ethereum nodes only; Bitcoin Core's mempool is always read")
        return self

    @property
    def head_age_limit(self) -> float:
        """Seconds without a new head before the node counts as stalled."""
        return self.max_head_age if self.max_head_age is not None else DEFAULT_MAX_HEAD_AGE[self.kind]

    @property
    def lag_limit(self) -> int:
        """Blocks behind the highest reference before the node counts as lagging."""
        return self.max_lag if self.max_lag is not None else DEFAULT_MAX_LAG[self.kind]


class ProbeConfig(_Section):
    """One HTTP(S) endpoint checked with a request."""

    name: str = Field(pattern=_NAME_PATTERN)
    """Label value of the probe's metrics (`probe_up{target="wallet-api"}`)."""
    url: Annotated[str, AfterValidator(check_url)]
    """The URL to request."""
    method: HttpMethod = "GET"
    """HTTP method of the request."""
    expected_status: int | list[int] = 200
    """Status code, or list of codes, that counts as up."""
    body_contains: str | None = Field(default=None, min_length=1)
    """Text the response body must contain to count as up; None checks the status only."""
    timeout: Duration = Field(default=5.0, gt=0)
    """Time the request may take, connection and TLS handshake included; below `interval`."""
    interval: Duration = Field(default=30.0, gt=0)
    """Time between two requests."""
    verify_tls: bool = True
    """Check the server's certificate; false accepts any certificate (the days left are still reported)."""
    ca_file: Path | None = None
    """PEM file of the CA certificates to trust instead of the system's, for a private CA."""

    @field_validator("expected_status")
    @classmethod
    def _check_status(cls, status: int | list[int]) -> int | list[int]:
        codes = status if isinstance(status, list) else [status]
        if not codes or any(code < 100 or code > 599 for code in codes):
            raise ValueError(f"expected_status must be HTTP status codes between 100 and 599, got {status!r}")
        return status

    @model_validator(mode="after")
    def _check_probe(self) -> ProbeConfig:
        if self.timeout >= self.interval:
            raise ValueError(f"timeout ({self.timeout:g}s) must be shorter than interval ({self.interval:g}s)")
        return self

    @property
    def expected_statuses(self) -> frozenset[int]:
        """The status codes that count as up."""
        return frozenset(self.expected_status if isinstance(self.expected_status, list) else [self.expected_status])


def _check_nodes(nodes: list[NodeConfig]) -> list[NodeConfig]:
    by_name: dict[str, NodeConfig] = {}
    for node in nodes:
        if node.name in by_name:
            raise ValueError(f"node names must be unique, so give each node its own name, got {node.name!r} twice")
        by_name[node.name] = node
    for node in nodes:
        for reference in node.reference:
            if is_url(reference):
                continue
            target = by_name.get(reference)
            if target is None:
                raise ValueError(
                    f"node {node.name!r}: a reference must be a URL or the name of a configured node, got {reference!r}"
                )
            if target is node:
                raise ValueError(f"node {node.name!r}: a node cannot be its own reference, got {reference!r}")
            if target.kind != node.kind:
                raise ValueError(
                    f"node {node.name!r} ({node.kind}): a reference must be a node of the same kind, "
                    f"got {reference!r} of kind {target.kind}"
                )
    return nodes


def _check_probes(probes: list[ProbeConfig]) -> list[ProbeConfig]:
    names: set[str] = set()
    for probe in probes:
        if probe.name in names:
            raise ValueError(f"probe names must be unique, so give each probe its own name, got {probe.name!r} twice")
        names.add(probe.name)
    return probes


NodeList = Annotated[list[NodeConfig], AfterValidator(_check_nodes)]
"""The `collectors.nodes` list, with names unique and references resolved."""

ProbeList = Annotated[list[ProbeConfig], AfterValidator(_check_probes)]
"""The `collectors.probes` list, with names unique."""

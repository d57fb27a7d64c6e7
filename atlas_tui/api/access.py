"""The credential each API request needs, looked up by method and path.

`ApiGuard` (`atlas_tui.api.auth`) calls `required_access` for every HTTP and
WebSocket request before any route runs, so a router added later is covered without
changes here. Invariants: public entries match one exact path only, never a prefix,
so `/healthz/../api/metrics` is not public. A path no rule names needs `read`, so a
new route is never open by accident. WebSocket handshakes count as GET.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from atlas_tui.api_tokens import Scope

__all__ = ["ACCESS_RULES", "AccessRule", "Credential", "INGEST_PATH", "required_access"]

INGEST_PATH = "/api/analytics/events"
"""The analytics ingest route, which checks the app's ingest key and its own body limit and rates."""


class Credential(Enum):
    """A credential that is not a token scope."""

    NONE = "none"
    """Anyone who can reach the port may call the route."""
    INGEST_KEY = "ingest_key"
    """The route checks an app's ingest key itself."""


Access = Scope | Credential
"""Requirement of a request: a token with this scope, or one of the `Credential` cases."""

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ANY_METHOD: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccessRule:
    """One row of the access table."""

    path: str
    """Exact path, or a prefix when `prefix` is set."""
    access: Access
    """Requirement of a matching request."""
    methods: frozenset[str] = _ANY_METHOD
    """Methods the rule applies to. Empty means every method."""
    prefix: bool = False
    """Match every path that starts with `path`."""

    def matches(self, method: str, path: str) -> bool:
        """Return True when the rule applies to `method` and `path`."""
        if self.methods and method not in self.methods:
            return False
        return path.startswith(self.path) if self.prefix else path == self.path


ACCESS_RULES: tuple[AccessRule, ...] = (
    AccessRule("/healthz", Credential.NONE),
    AccessRule("/readyz", Credential.NONE),
    AccessRule("/openapi.json", Credential.NONE, methods=frozenset({"GET", "HEAD"})),
    # NOTE: a token with the `ingest` scope is not accepted here yet, because the route
    # maps the ingest key to its app and a token names no app.
    AccessRule(INGEST_PATH, Credential.INGEST_KEY, methods=frozenset({"POST"})),
    AccessRule("/api/", Scope.READ, methods=_READ_METHODS, prefix=True),
    AccessRule("/api/alerts/", Scope.ACK, prefix=True),
    AccessRule("/api/", Scope.ADMIN, prefix=True),
    AccessRule("/ws", Scope.READ),
    AccessRule("/metrics", Scope.READ),
)
"""The access table, in which the first matching rule wins."""

_DEFAULT: Access = Scope.READ


def required_access(method: str, path: str, rules: tuple[AccessRule, ...] = ACCESS_RULES) -> Access:
    """Return what a request with `method` to `path` needs: the first matching rule's access, else `read`."""
    for rule in rules:
        if rule.matches(method, path):
            return rule.access
    return _DEFAULT

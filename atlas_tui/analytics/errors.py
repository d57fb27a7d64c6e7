"""Errors raised by the `atlas_tui.analytics` package.

    AtlasError
    └── AnalyticsError            analytics ingestion cannot go on as asked
        ├── BatchRejectedError    the whole batch is rejected (size, JSON, envelope)
        ├── UnknownIngestKeyError the bearer token names no configured app
        ├── RateLimitedError      a device or the whole daemon is over its rate
        ├── HostSecretError       the pseudonymisation secret cannot be read or created
        ├── PrepareWorkerError    the child process preparing the batch exited; nothing of it was stored
        └── StoreWriteError       the store could not take the batch; nothing of it was stored

Errors carry data only. `atlas_tui.api.analytics` turns them into HTTP responses
with the body `{"error": {"code", "message", "details"}}`. A problem with one event
is never an exception: it becomes that event's `rejected` status.
"""

from __future__ import annotations

from pathlib import Path

from atlas_tui.errors import AtlasError

__all__ = [
    "AnalyticsError",
    "BatchRejectedError",
    "HostSecretError",
    "PrepareWorkerError",
    "RateLimitedError",
    "StoreWriteError",
    "UnknownIngestKeyError",
]


class AnalyticsError(AtlasError):
    """Base of the errors the analytics package raises on purpose."""


class BatchRejectedError(AnalyticsError):
    """Raised when a whole batch is rejected: too large, not JSON, or a broken envelope.

    `status_code` is the HTTP status of the API's response (400, 413 or 415), and
    `code` a stable machine-readable name such as `body_too_large`.
    """

    def __init__(self, status_code: int, code: str, message: str, details: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.code = code
        self.details = details or {}
        super().__init__(message)


class UnknownIngestKeyError(AnalyticsError):
    """Raised when a request has no bearer token or one that no app in `analytics.apps` uses."""

    def __init__(self) -> None:
        super().__init__(
            "missing or unknown ingest key; send `Authorization: Bearer <ingest_key>` with the "
            "key configured under analytics.apps.<app_id>.ingest_key"
        )


class RateLimitedError(AnalyticsError):
    """Raised when a device or the whole daemon has sent more batches than its rate allows.

    `retry_after` is the number of whole seconds until a batch would be accepted, and
    `scope` is `device` or `daemon`.
    """

    def __init__(self, scope: str, retry_after: int) -> None:
        self.scope = scope
        self.retry_after = retry_after
        super().__init__(f"too many batches for this {scope}; retry after {retry_after} s")


class HostSecretError(AnalyticsError):
    """Raised when the host secret file cannot be created or read, or has the wrong size."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"cannot use the analytics host secret {path}: {reason}; fix the file's permissions, "
            "or move it aside to create a new secret (new pseudonyms start from then on)"
        )


class PrepareWorkerError(AnalyticsError):
    """Raised when the prepare worker process exited, or failed to start, before it returned the batch.

    The worker never writes to the store, so nothing of the batch was stored.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the analytics prepare worker is unavailable: {reason}; nothing was stored, resend the batch")


class StoreWriteError(AnalyticsError):
    """Raised when the batch's transaction failed or the store cannot be opened; the batch was not stored."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"cannot store the batch in {path}: {reason}; nothing was stored, resend the batch later")

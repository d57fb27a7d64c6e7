"""Token buckets that cap ingest batches per device and for the whole daemon.

The ingest route owns one `RateLimiter` per scope and calls `acquire` with a
monotonic `now`. Invariants: a bucket starts full. `acquire` takes one token for
every key or none. Once more than `max_keys` buckets exist, those idle long enough
to be full again are forgotten, which loses nothing.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from atlas_tui.analytics.errors import RateLimitedError

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, scope: str, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        """Create an empty limiter.

        Args:
            scope: `device` or `daemon`, named in the 429 response.
            rate: Tokens added per second.
            burst: Bucket size: how many batches may arrive at once after a quiet spell.
            max_keys: Buckets kept before idle full ones are dropped.
        """
        self.scope = scope
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, keys: set[str] | frozenset[str], now: float) -> None:
        """Take one token from the bucket of every key in `keys`.

        Raises:
            RateLimitedError: one bucket is empty; nothing was taken. `retry_after`
                is the whole seconds until it has a token again.
        """
        with self._lock:
            buckets = [self._refill(key, now) for key in sorted(keys)]
            short = [1.0 - bucket.tokens for bucket in buckets if bucket.tokens < 1.0]
            if short:
                raise RateLimitedError(self.scope, max(1, math.ceil(max(short) / self._rate)))
            for bucket in buckets:
                bucket.tokens -= 1.0
            self._forget_idle(now)

    def tracked_keys(self) -> int:
        """Return how many buckets are kept in memory."""
        with self._lock:
            return len(self._buckets)

    def _refill(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) <= self._max_keys:
            return
        full_after = self._burst / self._rate
        for key in [key for key, bucket in self._buckets.items() if now - bucket.updated >= full_after]:
            del self._buckets[key]

"""`RateLimiter`: token buckets per key with an injected clock."""

from __future__ import annotations

import pytest

from atlas_tui.analytics.errors import RateLimitedError
from atlas_tui.analytics.ratelimit import RateLimiter


def test_burst_then_limited() -> None:
    """A full bucket allows `burst` batches at once, then raises with a retry time."""
    limiter = RateLimiter("device", rate=1.0, burst=3)
    for _ in range(3):
        limiter.acquire({"d1"}, now=100.0)

    with pytest.raises(RateLimitedError) as error:
        limiter.acquire({"d1"}, now=100.0)

    assert error.value.retry_after == 1
    assert error.value.scope == "device"


def test_refill_over_time() -> None:
    """Tokens come back at `rate` per second."""
    limiter = RateLimiter("device", rate=0.5, burst=1)
    limiter.acquire({"d1"}, now=0.0)

    with pytest.raises(RateLimitedError) as error:
        limiter.acquire({"d1"}, now=1.0)
    limiter.acquire({"d1"}, now=2.0)

    assert error.value.retry_after == 1


def test_all_or_nothing() -> None:
    """When one key is empty, no other key's token is taken."""
    limiter = RateLimiter("device", rate=1.0, burst=1)
    limiter.acquire({"d2"}, now=0.0)

    with pytest.raises(RateLimitedError):
        limiter.acquire({"d1", "d2"}, now=0.0)
    limiter.acquire({"d1"}, now=0.0)


def test_idle_keys_forgotten() -> None:
    """Past `max_keys`, buckets idle long enough to be full again are dropped."""
    limiter = RateLimiter("device", rate=1.0, burst=2, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.acquire({key}, now=0.0)

    limiter.acquire({"d"}, now=10.0)

    assert limiter.tracked_keys() == 1

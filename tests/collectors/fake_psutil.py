"""A stand-in for the psutil module: real psutil, with chosen functions replaced or removed.

Tests pass a `FakePsutil` as `psutil_module` to `SystemCollector` to reproduce hosts
where a source raises, reports nothing or does not exist, while every other source
still reads this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import psutil


class FakePsutil:
    """Delegates to psutil except for the functions in `replacements` and `missing`."""

    def __init__(self, replacements: dict[str, Callable[..., Any]] | None = None, missing: Iterable[str] = ()) -> None:
        self._replacements = dict(replacements or {})
        self._missing = set(missing)

    def __getattr__(self, name: str) -> Any:
        if name in self._missing:
            raise AttributeError(f"module 'psutil' has no attribute '{name}'")
        if name in self._replacements:
            return self._replacements[name]
        return getattr(psutil, name)


def outcomes(*results: Any) -> Callable[..., Any]:
    """Return a function whose n-th call returns or raises `results[n]`; the last one repeats."""
    calls = 0

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = results[min(calls, len(results) - 1)]
        calls += 1
        if isinstance(result, BaseException):
            raise result
        return result

    return call


def raises(error: BaseException) -> Callable[..., Any]:
    """Return a function that raises `error` on every call."""
    return outcomes(error)


def returns(value: Any) -> Callable[..., Any]:
    """Return a function that returns `value` on every call."""
    return outcomes(value)


class Partition(NamedTuple):
    """The fields of `psutil.disk_partitions()` entries."""

    device: str
    mountpoint: str
    fstype: str
    opts: str


class Temperature(NamedTuple):
    """The fields of `psutil.sensors_temperatures()` entries."""

    label: str
    current: float | None
    high: float | None
    critical: float | None


class Swap(NamedTuple):
    """The fields of `psutil.swap_memory()`."""

    total: int
    used: int
    free: int
    percent: float
    sin: int
    sout: int


class CpuFrequency(NamedTuple):
    """The fields of `psutil.cpu_freq()`."""

    current: float
    min: float
    max: float

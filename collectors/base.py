"""The contract between collectors and the rest of ATLAS: `Sample`, `Collector`, errors.

Collectors produce `Sample` records; the scheduler hands each cycle's samples to
`storage.metrics.write_samples` in one transaction. Invariants:

- `Sample.ts` is UTC epoch seconds (float), taken from the `now` the scheduler passes in.
- `Sample.labels` is a tuple of `(key, value)` pairs sorted by key, so equal label sets
  compare and hash equal whatever order a collector built them in.
- A collector never invents a value: a source it cannot read is left out of the cycle
  and named in `unavailable_sources()`, never written as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "Collector",
    "CollectorError",
    "CollectorStatus",
    "Labels",
    "Sample",
    "make_labels",
]

Labels = tuple[tuple[str, str], ...]
"""Sorted `(key, value)` pairs identifying one series of a metric."""


def make_labels(labels: Mapping[str, str] | None = None, **extra: str) -> Labels:
    """Build the canonical, sorted label tuple from a mapping and keyword labels."""
    merged = dict(labels or {})
    merged.update(extra)
    return tuple(sorted((str(key), str(value)) for key, value in merged.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one series at one time."""

    name: str
    """Metric name from the design's table, for example `cpu_usage` or `disk_usage`."""
    labels: Labels
    """Sorted label pairs, for example `(("mount", "/"),)`; empty for a host-wide metric."""
    ts: float
    """UTC epoch seconds of the reading."""
    value: float
    """The reading in the unit the metric name implies (percent unless the name says otherwise)."""

    @classmethod
    def of(cls, name: str, value: float, ts: float, **labels: str) -> Sample:
        """Create a sample with keyword labels, sorted into canonical order."""
        return cls(name=name, labels=make_labels(labels), ts=ts, value=float(value))

    @property
    def label_dict(self) -> dict[str, str]:
        """The labels as a plain dictionary."""
        return dict(self.labels)


@dataclass(slots=True)
class CollectorStatus:
    """What the scheduler knows about one collector after its latest cycle."""

    name: str
    """The collector's name."""
    interval: float
    """Seconds between cycles."""
    last_run: float | None = None
    """UTC epoch seconds when the latest cycle started; None before the first."""
    last_duration_ms: float | None = None
    """Wall time of the latest cycle in milliseconds."""
    last_error: str | None = None
    """Error of the latest cycle (`timed out after 4s`, `OSError: ...`); None when it succeeded."""
    last_sample_count: int = 0
    """Samples the latest cycle produced."""
    runs: int = 0
    """Cycles started since the scheduler began."""
    failures: int = 0
    """Cycles that raised or timed out since the scheduler began."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Sources skipped in the latest cycle, mapped to the reason."""
    deliveries: int = field(default=0, compare=False)
    """Cycles whose samples were handed to the sink since the scheduler began, written or not.
    Only the running scheduler counts them: the store does not keep them."""


class CollectorError(Exception):
    """Raised by a collector when a whole cycle fails (not for one missing source)."""


@runtime_checkable
class Collector(Protocol):
    """A source of samples that the scheduler runs every `interval` seconds.

    The scheduler enforces a per-cycle timeout and catches every exception, so one
    collector that raises or hangs never delays another.
    """

    name: str
    """Short identifier used in logs, self-health samples and the status API."""
    interval: float
    """Seconds between the starts of two cycles."""

    async def collect(self, now: float) -> list[Sample]:
        """Read the source once and return the samples stamped with `now`."""
        ...

    def unavailable_sources(self) -> Mapping[str, str]:
        """Return the sources skipped in the last cycle, mapped to the reason."""
        ...

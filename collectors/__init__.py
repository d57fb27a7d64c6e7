"""Collectors: sources of `Sample` records and the scheduler that runs them.

Each collector reads one source (`SystemCollector` for the host, `SelfHealthCollector`
for ATLAS itself) and returns samples. `Scheduler` runs them on their intervals and
hands every cycle's samples to a sink, usually the store. Importing this package reads
nothing: work starts in `collect()` and `Scheduler.run()`.
"""

from __future__ import annotations

from collectors.base import Collector, CollectorError, CollectorStatus, Labels, Sample, make_labels
from collectors.scheduler import Scheduler, default_timeout
from collectors.self_health import SelfHealthCollector
from collectors.system import SystemCollector

__all__ = [
    "Collector",
    "CollectorError",
    "CollectorStatus",
    "Labels",
    "Sample",
    "Scheduler",
    "SelfHealthCollector",
    "SystemCollector",
    "default_timeout",
    "make_labels",
]

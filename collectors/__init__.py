"""Collectors: sources of `Sample` records and the scheduler that runs them.

Each collector reads one source (`SystemCollector` for the host, `SelfHealthCollector`
for ATLAS itself) and returns samples. `Scheduler` runs them on their intervals and
hands every cycle's samples to a sink, usually the store. Importing this package reads
nothing: work starts in `collect()` and `Scheduler.run()`.

`Scheduler`, `SystemCollector` and `SelfHealthCollector` load their module on first
use, so a module that needs only `Sample` or `Labels` does not import asyncio and psutil.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas_tui.lazy import lazy_exports
from collectors.base import Collector, CollectorError, CollectorStatus, Labels, Sample, make_labels

if TYPE_CHECKING:
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


_LAZY_MODULE_OF = {
    "Scheduler": "scheduler",
    "default_timeout": "scheduler",
    "SelfHealthCollector": "self_health",
    "SystemCollector": "system",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_MODULE_OF)

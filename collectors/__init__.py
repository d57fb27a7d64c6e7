"""Collectors: sources of `Sample` records and the scheduler that runs them.

Each collector reads one source (`SystemCollector` for the host, `SelfHealthCollector`
for ATLAS itself) and returns samples. `Scheduler` runs them on their intervals and
hands every cycle's samples to a sink, usually the store. Importing this package reads
nothing: work starts in `collect()` and `Scheduler.run()`.

`Scheduler`, `SystemCollector` and `SelfHealthCollector` load their module on first
use, so a module that needs only `Sample` or `Labels` does not import asyncio and psutil.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


def __getattr__(name: str) -> object:
    module = _LAZY_MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

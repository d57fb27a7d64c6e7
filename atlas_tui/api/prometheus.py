"""`GET /metrics`: the latest value of every stored series in the Prometheus text format 0.0.4.

A Prometheus server scrapes this route on each daemon. `render_exposition` builds the
text from the store's latest values and a snapshot of this process. It is a pure
function, so tests call it without a server. The route reads the store, the clock
and the process, then calls it.

The text has one metric family per exposed name, sorted by name. Each family has
`# HELP` and `# TYPE` lines, then one line per series sorted by its labels. Names and
units follow `atlas_tui.api.prometheus_names` (`cpu_usage` 12.5 becomes
`atlas_cpu_usage_ratio 0.125`). Beside the stored series the output has:

- the serving process under the names the official Prometheus client libraries use
  (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so existing
  dashboards read them;
- `atlas_build_info{version}` with the value 1;
- `atlas_exposition_stale_series`, the number of series left out as stale.

Invariants: a series whose newest sample is older than the stale limit is left out,
so an unmounted disk or a removed probe disappears from Prometheus instead of
repeating its last value. Lines carry no timestamp, so Prometheus stamps each value
with its scrape time. Label values are escaped (backslash, double quote, line
feed), and label names are made valid by `label_name`. When two series end up with
the same exposed name and labels, the first in store order is kept.
"""

from __future__ import annotations

import logging
import math
import resource
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psutil
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.api.prometheus_names import PREFIX, exposed_metric, label_name
from collectors.base import CollectorStatus, Labels
from storage.metrics import SeriesValue, latest

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_STALE_AFTER",
    "STALE_INTERVALS",
    "ProcessSnapshot",
    "read_process",
    "render_exposition",
    "router",
    "stale_limit",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Media type of the Prometheus text format, version 0.0.4."""

DEFAULT_STALE_AFTER = 300.0
"""Seconds without a new sample after which a series is left out. Prometheus' default
look-back for queries (`--query.lookback-delta`) is also 5 minutes."""

STALE_INTERVALS = 3
"""A series is also kept for this many intervals of the slowest collector, so a
collector that runs every 10 minutes does not blink in and out."""

router = APIRouter(tags=["prometheus"])


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """Resources of the serving process, read once per scrape."""

    cpu_seconds: float
    """User plus system CPU time since the process started."""
    resident_bytes: int
    virtual_bytes: int
    start_time: float
    """UTC epoch seconds when the process started."""
    open_fds: int | None = None
    """Open file descriptors, or None where the platform does not report them."""
    max_fds: int | None = None
    """Soft limit on open file descriptors, or None when it is unlimited."""


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4."}},
)
def get_prometheus_metrics(context: ApiContext = Depends(get_context)) -> Response:
    """Return every fresh series' latest value and this process's resources for Prometheus."""
    now = context.clock()
    with context.read_connection() as conn:
        rows = latest(conn)
    text = render_exposition(
        rows,
        now=now,
        stale_after=stale_limit(context.statuses_provider()),
        version=context.version,
        process=read_process(),
    )
    return Response(content=text, media_type=CONTENT_TYPE)


def render_exposition(
    series: Iterable[SeriesValue],
    *,
    now: float,
    stale_after: float,
    version: str,
    process: ProcessSnapshot | None = None,
) -> str:
    """Render the latest values in the Prometheus text format 0.0.4.

    Args:
        series: The newest sample of each stored series.
        now: UTC epoch seconds of the scrape.
        stale_after: Seconds after which a series' newest sample is too old to show.
        version: ATLAS version for `atlas_build_info`.
        process: The serving process's resources; None leaves the `process_*` series out.

    Returns:
        The exposition text, ending with a line feed.
    """
    families: dict[str, _Family] = {}
    stale = 0
    for row in series:
        if now - row.ts > stale_after:
            stale += 1
            continue
        exposed = exposed_metric(row.name)
        family = families.setdefault(exposed.name, _Family(exposed.name, exposed.help, "gauge"))
        family.add(row.labels, exposed.convert(row.value))

    for family in _own_families(version, stale, process):
        families.setdefault(family.name, family)
    return "".join(families[name].render() for name in sorted(families))


def stale_limit(statuses: Sequence[CollectorStatus]) -> float:
    """Return the stale limit in seconds: `DEFAULT_STALE_AFTER`, or more for a slow collector."""
    slowest = max((status.interval for status in statuses), default=0.0)
    return max(DEFAULT_STALE_AFTER, STALE_INTERVALS * slowest)


def read_process(process: psutil.Process | None = None) -> ProcessSnapshot | None:
    """Read the resources of `process`, this process when None. Return None when psutil fails."""
    try:
        current = process or psutil.Process()
        with current.oneshot():
            times = current.cpu_times()
            memory = current.memory_info()
            started = current.create_time()
            open_fds = current.num_fds() if hasattr(current, "num_fds") else None
    except psutil.Error as err:
        logger.warning("process metrics not read pid=%s: %s", getattr(process, "pid", "self"), err)
        return None
    return ProcessSnapshot(
        cpu_seconds=times.user + times.system,
        resident_bytes=memory.rss,
        virtual_bytes=memory.vms,
        start_time=started,
        open_fds=open_fds,
        max_fds=_max_fds(),
    )


@dataclass(slots=True)
class _Family:
    name: str
    help: str
    type: str
    lines: dict[str, float] = field(default_factory=dict)
    """Label text (`{k="v"}` or empty) to value, in insertion order."""

    def add(self, labels: Labels, value: float) -> None:
        self.lines.setdefault(_format_labels(labels), value)

    def render(self) -> str:
        header = f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} {self.type}\n"
        body = "".join(f"{self.name}{labels} {_format_value(value)}\n" for labels, value in sorted(self.lines.items()))
        return header + body


def _own_families(version: str, stale: int, process: ProcessSnapshot | None) -> list[_Family]:
    build = _Family(f"{PREFIX}build_info", "ATLAS version of the serving daemon; the value is always 1.", "gauge")
    build.add((("version", version),), 1.0)
    stale_family = _Family(
        f"{PREFIX}exposition_stale_series", "Stored series left out of this output because they are stale.", "gauge"
    )
    stale_family.add((), float(stale))
    return [build, stale_family, *_process_families(process)]


def _process_families(process: ProcessSnapshot | None) -> list[_Family]:
    if process is None:
        return []
    values: list[tuple[str, str, str, float | None]] = [
        ("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.", process.cpu_seconds),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", process.resident_bytes),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", process.virtual_bytes),
        ("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.",
         process.start_time),
        ("process_open_fds", "gauge", "Number of open file descriptors.", process.open_fds),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", process.max_fds),
    ]
    families = []
    for name, kind, help_text, value in values:
        if value is None:
            continue
        family = _Family(name, help_text, kind)
        family.add((), float(value))
        families.append(family)
    return families


def _format_labels(labels: Labels) -> str:
    pairs: dict[str, str] = {}
    for key, value in labels:
        pairs.setdefault(label_name(key), value)
    if not pairs:
        return ""
    inner = ",".join(f'{key}="{_escape_label_value(pairs[key])}"' for key in sorted(pairs))
    return "{" + inner + "}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _max_fds() -> int | None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft

"""The ATLAS store: one SQLite file in WAL mode with time series and daemon status.

Collectors' samples enter through `write_samples`. The console, the API and the
alert engine read with `latest`, `window` and `range_query`. The daemon maintains
the store with `update_rollups`, `apply_retention` and `checkpoint`. Every
connection comes from `connect` or `open_store`, which also migrates the schema.
Importing the package touches no file. The names from `metrics` and `status` load
their module on first use, so a command that only opens the store, such as
`atlas backup`, does not import the time-series code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atlas_tui.lazy import lazy_exports
from storage.db import (
    DB_FILENAME,
    StoreConnection,
    check_integrity,
    connect,
    migrate,
    open_store,
    prepare_data_dir,
    transaction,
)
from storage.errors import MigrationError, StorageError, StoreCorruptError, StoreOpenError

if TYPE_CHECKING:
    from storage.metrics import (
        Point,
        SeriesRange,
        SeriesValue,
        WindowFunction,
        apply_retention,
        latest,
        list_series,
        range_query,
        update_rollups,
        window,
        write_samples,
    )
    from storage.status import (
        DaemonState,
        Heartbeat,
        StoreSize,
        checkpoint,
        clear_heartbeat,
        daemon_state,
        read_collector_statuses,
        read_heartbeat,
        store_size,
        write_collector_statuses,
        write_heartbeat,
    )

__all__ = [
    "DB_FILENAME",
    "DaemonState",
    "Heartbeat",
    "MigrationError",
    "Point",
    "SeriesRange",
    "SeriesValue",
    "StorageError",
    "StoreConnection",
    "StoreCorruptError",
    "StoreOpenError",
    "StoreSize",
    "WindowFunction",
    "apply_retention",
    "check_integrity",
    "checkpoint",
    "clear_heartbeat",
    "connect",
    "daemon_state",
    "latest",
    "list_series",
    "migrate",
    "open_store",
    "prepare_data_dir",
    "range_query",
    "read_collector_statuses",
    "read_heartbeat",
    "store_size",
    "transaction",
    "update_rollups",
    "window",
    "write_collector_statuses",
    "write_heartbeat",
    "write_samples",
]


_LAZY_MODULE_OF = {
    **dict.fromkeys(
        (
            "Point", "SeriesRange", "SeriesValue", "WindowFunction", "apply_retention", "latest",
            "list_series", "range_query", "update_rollups", "window", "write_samples",
        ),
        "metrics",
    ),
    **dict.fromkeys(
        (
            "DaemonState", "Heartbeat", "StoreSize", "checkpoint", "clear_heartbeat", "daemon_state",
            "read_collector_statuses", "read_heartbeat", "store_size", "write_collector_statuses",
            "write_heartbeat",
        ),
        "status",
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY_MODULE_OF)

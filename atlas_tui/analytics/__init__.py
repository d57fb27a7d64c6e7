"""Mobile analytics: the SDK protocol, server-side privacy and idempotent batch ingestion.

The app SDK posts batches to `POST /api/analytics/events` (`atlas_tui.api.analytics`).
`ingest.prepare_batch` validates each event (`protocol`), removes what privacy
forbids (`privacy`) and corrects the device clock. `ingest.store_batch` then stores
the batch through `storage.events` in one transaction. Importing the package touches no file; the
host secret is read on first use.
"""

from __future__ import annotations

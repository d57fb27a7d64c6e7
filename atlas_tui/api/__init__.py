"""The daemon's HTTP API: a FastAPI app factory, one router per area, and its server.

`create_api` builds the app, and `ApiServer` runs it with uvicorn inside the daemon's
asyncio loop on `api.bind` (127.0.0.1 by default). Routes: `GET /api/system/status`,
`GET /api/metrics`, `GET /metrics` (Prometheus), `GET /api/alerts`, `POST /api/alerts/ack/{id}`,
`GET /api/alerts/{id}/history` and `POST /api/analytics/events` (the mobile SDK's
batches). Every route but the probes, `/openapi.json` and the ingest route needs a
bearer token (`atlas_tui.api.auth`).
"""

from __future__ import annotations

from atlas_tui.api.app import create_api
from atlas_tui.api.context import ApiContext
from atlas_tui.api.server import API_HOST, ApiBindError, ApiServer

__all__ = ["API_HOST", "ApiBindError", "ApiContext", "ApiServer", "create_api"]

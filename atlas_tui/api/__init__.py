"""The daemon's HTTP API: a FastAPI app factory, one router per area, and its server.

`create_api` builds the app, and `ApiServer` runs it with uvicorn inside the daemon's
asyncio loop on 127.0.0.1. Routes: `GET /api/system/status`, `GET /api/metrics`,
`GET /api/alerts`, `POST /api/alerts/ack/{id}`, `GET /api/alerts/{id}/history` and
`POST /api/analytics/events` (the mobile SDK's batches).
"""

from __future__ import annotations

from atlas_tui.api.app import create_api
from atlas_tui.api.context import ApiContext
from atlas_tui.api.server import API_HOST, ApiBindError, ApiServer

__all__ = ["API_HOST", "ApiBindError", "ApiContext", "ApiServer", "create_api"]

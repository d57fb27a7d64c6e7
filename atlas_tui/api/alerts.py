"""`/api/alerts`: list alerts, acknowledge one or remove its acknowledgement, read its history.

Existing scripts call `GET /api/alerts` and `POST /api/alerts/ack/{id}`, so their
shapes are fixed: the items are `AlertView`, the same objects `atlas alerts list
--json` prints. The acknowledgement goes through `atlas_tui.alerts.actions.acknowledge`,
the same function the console and the CLI call, in FastAPI's thread pool on a
connection opened for that request alone.

Errors of these routes (404, 409, 422) have the body `{"error": {"code", "message",
"details"}}`. `AlertApiError` carries them and `handle_alert_api_error` renders them.
`atlas_tui.api.errors` registers that handler and renders FastAPI's own errors (422,
and the store's 503) in the same shape.
"""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from atlas_tui.alerts.actions import AlertNotFoundError, acknowledge, unacknowledge
from atlas_tui.alerts.errors import AlertStateError
from atlas_tui.alerts.state import AlertState
from atlas_tui.api.auth import request_actor
from atlas_tui.api.context import ApiContext, get_context
from atlas_tui.cli_alerts import AlertHistoryView, AlertView, UnknownAlertError, read_history
from atlas_tui.config import Config, Severity
from storage.alerts import list_alerts

__all__ = [
    "API_ACTOR",
    "STATE_FILTERS",
    "AckRequest",
    "AlertApiError",
    "ErrorBody",
    "ErrorDetail",
    "get_config",
    "handle_alert_api_error",
    "router",
]

API_ACTOR = "api"
"""Actor recorded for an acknowledgement through the API when no token name is known. With a token it is `api:<name>`."""

STATE_FILTERS = (*(str(state) for state in AlertState), "acknowledged", "silenced")
"""Values `?state=` accepts: the engine states plus the acknowledged and silenced markers."""

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


class AckRequest(BaseModel):
    """Optional body of `POST /api/alerts/ack/{id}`."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(default="", max_length=2000)
    """Note stored with the acknowledgement, at most 2000 characters."""


class ErrorDetail(BaseModel):
    """The `error` member of an error response."""

    code: str
    """Stable machine-readable code, such as `alert_not_found`."""
    message: str
    """One sentence for people: what failed, on which value, what to do."""
    details: dict[str, str]
    """The values involved, such as `{"id": "alert_99"}`."""


class ErrorBody(BaseModel):
    """Body of every API error response, whether a route, FastAPI's validation or the token guard sent it."""

    error: ErrorDetail


class AlertApiError(Exception):
    """Raised by an alert route to respond with a status and an `ErrorBody`."""

    def __init__(self, status_code: int, code: str, message: str, details: dict[str, str]) -> None:
        self.status_code = status_code
        self.body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
        super().__init__(message)


async def handle_alert_api_error(request: Request, exc: Exception) -> JSONResponse:
    """Render an `AlertApiError` as its status code and JSON body (an exception handler)."""
    assert isinstance(exc, AlertApiError)
    return JSONResponse(status_code=exc.status_code, content=exc.body.model_dump())


def get_config(request: Request) -> Config:
    """Return the config the app was built with (a FastAPI dependency)."""
    config: Config = request.app.state.config
    return config


_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No alert has this id or fingerprint."},
    422: {"model": ErrorBody, "description": "A parameter or the body is invalid."},
}


@router.get("", response_model=list[AlertView], responses={422: _ERROR_RESPONSES[422]})
def get_alerts(
    state: str | None = Query(default=None, description=f"Only alerts in this state: {', '.join(STATE_FILTERS)}."),
    severity: str | None = Query(default=None, description="Only alerts of this severity."),
    include_all: bool = Query(default=False, alias="all", description="Include inactive alerts."),
    context: ApiContext = Depends(get_context),
) -> list[AlertView]:
    """Return alerts, firing first, then by severity (critical first), newest first.

    Empty `state` and `severity` parameters (`?state=&severity=`) mean no filter.
    """
    state = _choice("state", state, STATE_FILTERS)
    severity = _choice("severity", severity, get_args(Severity))
    with context.read_connection() as conn:
        records = list_alerts(conn, state=state, severity=severity, include_inactive=include_all)
    return [AlertView.from_record(record) for record in records]


@router.post(
    "/ack/{alert_id}",
    response_model=AlertView,
    responses={
        **_ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "The alert has no open incident to acknowledge."},
    },
)
def post_ack(
    alert_id: str,
    payload: AckRequest | None = Body(default=None),
    context: ApiContext = Depends(get_context),
    config: Config = Depends(get_config),
    actor: str = Depends(request_actor),
) -> AlertView:
    """Acknowledge the firing alert `alert_id` (`alert_<n>` or a fingerprint) and return it.

    The body is optional; without one the acknowledgement has no message.
    """
    message = payload.message if payload is not None else ""
    with context.read_connection() as conn:
        try:
            record = acknowledge(conn, alert_id, by=actor, message=message, now=context.clock(), config=config)
        except AlertNotFoundError as err:
            raise _not_found(alert_id) from err
        except AlertStateError as err:
            raise AlertApiError(
                409,
                "alert_not_acknowledgeable",
                f"alert {alert_id} is {err.state}; only an alert with an open incident (firing) can be acknowledged",
                {"id": alert_id, "state": err.state},
            ) from err
    return AlertView.from_record(record)


@router.post(
    "/unack/{alert_id}",
    response_model=AlertView,
    responses={
        **_ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "The alert is not acknowledged, or its incident is closed."},
    },
)
def post_unack(
    alert_id: str,
    context: ApiContext = Depends(get_context),
    config: Config = Depends(get_config),
    actor: str = Depends(request_actor),
) -> AlertView:
    """Remove the acknowledgement of alert `alert_id` (`alert_<n>` or a fingerprint), so repeats resume."""
    with context.read_connection() as conn:
        try:
            record = unacknowledge(conn, alert_id, by=actor, now=context.clock(), config=config)
        except AlertNotFoundError as err:
            raise _not_found(alert_id) from err
        except AlertStateError as err:
            raise AlertApiError(
                409,
                "alert_not_acknowledged",
                f"alert {alert_id} is {err.state} and not acknowledged; only an acknowledged open incident can lose its acknowledgement",
                {"id": alert_id, "state": err.state},
            ) from err
    return AlertView.from_record(record)


@router.get("/{alert_id}/history", response_model=AlertHistoryView, responses={404: _ERROR_RESPONSES[404]})
def get_history(alert_id: str, context: ApiContext = Depends(get_context)) -> AlertHistoryView:
    """Return the alert, its transitions oldest first and its notices per channel."""
    with context.read_connection() as conn:
        try:
            return read_history(conn, alert_id)
        except UnknownAlertError as err:
            raise _not_found(alert_id) from err


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise AlertApiError(
            422,
            "invalid_request",
            f"invalid query.{name} {value!r}; use one of {', '.join(allowed)}",
            {"field": f"query.{name}", "value": value},
        )
    return value


def _not_found(alert_id: str) -> AlertApiError:
    return AlertApiError(
        404,
        "alert_not_found",
        f"alert {alert_id} not found; GET /api/alerts?all=true lists every id",
        {"id": alert_id},
    )

"""One error body for every API response that reports a failure, and its OpenAPI entries.

Routes fail in three ways. They raise `AlertApiError` with their own code. FastAPI
raises `RequestValidationError` for a parameter or body that does not match its
declared type. Starlette, FastAPI and `ApiContext.read_connection` raise
`HTTPException` for an unknown path, a method the path does not take, a body that
cannot be decoded and a store that cannot be read. `install` renders all three as
`ErrorBody`, `{"error": {"code", "message", "details"}}`, so a client parses one
shape whatever failed. `details` names the field, path or method at fault. The guard
in `atlas_tui.api.auth` and the analytics ingest route build the same shape themselves.

The OpenAPI schema documents the same: `install` points every operation's 422 at
`ErrorBody` instead of FastAPI's `HTTPValidationError`, and adds the 400 for an
undecodable body to every operation that takes one.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from atlas_tui.api.alerts import AlertApiError, ErrorBody, ErrorDetail, handle_alert_api_error

__all__ = ["handle_http_exception", "handle_validation_error", "install"]

logger = logging.getLogger(__name__)

_BODY_NOT_DECODED = "There was an error parsing the body"
"""FastAPI's `HTTPException` detail for a body it cannot decode, such as bytes that are not UTF-8."""

_STORE_UNAVAILABLE = "store_unavailable"
"""Code of the 503 that `ApiContext.read_connection` raises, the same code the ingest route uses."""

_VALIDATION_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")
"""FastAPI's component schemas for its own 422 body, which no response uses after `install`."""


def install(app: FastAPI) -> None:
    """Register the error handlers on `app` and describe their 422 body in its OpenAPI schema.

    Call it after every router is included, so the schema edit reaches every operation.
    """
    app.add_exception_handler(AlertApiError, handle_alert_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
    _document_validation_errors(app)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Render a request that fails FastAPI's validation as a 422 `ErrorBody` (an exception handler).

    The first problem found is reported, and `details.field` is its location, such as
    `query.from` or `body.message`.
    """
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if not problems:
        return _render(422, "invalid_request", "invalid request", {"field": "request"})

    first = problems[0]
    if first.get("type") == "json_invalid":
        # The body is not JSON at all: the same 400 as a body that cannot be decoded.
        _log(request, 400, "invalid_request")
        return _render(400, "invalid_request", f"invalid body: not valid JSON ({first['msg']}); send a JSON object",
                       {"field": "body"})  # fmt: skip
    where = ".".join(str(part) for part in first["loc"])
    message = f"invalid {where}: {first['msg']}"
    if len(problems) > 1:
        message += f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} in this request)"
    _log(request, 422, "invalid_request")
    return _render(422, "invalid_request", message, {"field": where})


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Render a Starlette or FastAPI `HTTPException` as an `ErrorBody` (an exception handler).

    The exception's headers, such as `Allow` on a 405, are kept.
    """
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    # A WebSocket handshake has no method in its scope.
    method, path = request.scope.get("method", "WS"), request.url.path
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase

    if status == 404:
        code, details = "not_found", {"path": path}
        message = f"no route matches {path}; GET /openapi.json lists every route"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        code, details = "method_not_allowed", {"method": method, "path": path, "allowed": allowed}
        message = f"{method} is not allowed on {path}; use {allowed or 'another method'}"
    elif status == 400 and detail == _BODY_NOT_DECODED:
        code, details = "invalid_request", {"field": "body"}
        message = "invalid body: it cannot be decoded; send JSON text encoded as UTF-8"
    elif status == 503:
        code, details, message = _STORE_UNAVAILABLE, {}, detail
    else:
        code, details, message = _code_of(status), {}, detail
    _log(request, status, code)
    return _render(status, code, message, details, exc.headers)


def _log(request: Request, status: int, code: str) -> None:
    # DEBUG only: a client probing paths would otherwise fill the log, and
    # `ApiContext.read_connection` logs the cause of a 503 itself.
    method = request.scope.get("method", "WS")
    logger.debug("api error status=%d code=%s method=%s path=%r", status, code, method, request.url.path)


def _render(
    status: int, code: str, message: str, details: dict[str, str], headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def _code_of(status: int) -> str:
    """Return the snake_case reason phrase of `status`, such as `bad_request` for 400."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def _document_validation_errors(app: FastAPI) -> None:
    """Make every operation's 422 response refer to `ErrorBody`, and declare the 400 of operations with a body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorBody" not in components:
            error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(error.pop("$defs", {}))
            components["ErrorBody"] = error
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _point_422_at_error_body(operation)
                _declare_undecodable_body(operation)
        for name in _VALIDATION_ERROR_SCHEMAS:
            if f'"#/components/schemas/{name}"' not in json.dumps(schema["paths"]):
                components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _point_422_at_error_body(operation: dict[str, Any]) -> None:
    response = operation.get("responses", {}).get("422")
    if response is None:
        return
    content = response.get("content", {}).get("application/json", {})
    if content.get("schema", {}).get("$ref") != "#/components/schemas/HTTPValidationError":
        return
    response["description"] = "A parameter or the body is invalid; `details.field` names it."
    content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}


def _declare_undecodable_body(operation: dict[str, Any]) -> None:
    if "requestBody" not in operation:
        return
    operation.setdefault("responses", {}).setdefault(
        "400",
        {
            "description": "The body cannot be decoded, for example because it is not UTF-8.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    )

"""Every API error has the body `{"error": {"code", "message", "details"}}`, whatever raised it.

Served by real uvicorn on 127.0.0.1 over a real store. The OpenAPI tests read the
schema the same app serves at `/openapi.json`.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from atlas_tui.api.openapi_file import DEFAULT_PATH, build_openapi, render_openapi
from storage.db import DB_FILENAME
from tests.api.conftest import NOW

REPOSITORY = Path(__file__).resolve().parents[2]


def error_of(response: httpx.Response) -> dict[str, object]:
    """Return the `error` member, checking that it is the only member and has exactly the three keys."""
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


async def test_unknown_path_404(serve, data_dir: Path) -> None:
    """An unknown path returns 404 with code not_found and the path in details."""
    client = await serve(data_dir)

    response = await client.get("/api/nothing-here")

    error = error_of(response)
    assert response.status_code == 404
    assert error["code"] == "not_found"
    assert error["details"] == {"path": "/api/nothing-here"}


async def test_wrong_method_405(serve, data_dir: Path) -> None:
    """A method the path does not take returns 405 naming the allowed one, and keeps the Allow header."""
    client = await serve(data_dir)

    response = await client.delete("/api/alerts")

    error = error_of(response)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert error["code"] == "method_not_allowed"
    assert error["details"] == {"method": "DELETE", "path": "/api/alerts", "allowed": "GET"}


async def test_query_type_422(serve, data_dir: Path) -> None:
    """A query value of the wrong type returns 422 naming the parameter."""
    client = await serve(data_dir)

    response = await client.get("/api/analytics", params={"from": "yesterday"})

    error = error_of(response)
    assert response.status_code == 422
    assert error["code"] == "invalid_request"
    assert error["details"] == {"field": "query.from"}
    assert str(error["message"]).startswith("invalid query.from: ")


async def test_analytics_window_order_422(serve, data_dir: Path) -> None:
    """A summary window whose start is not before its end names `from` in the shared shape."""
    client = await serve(data_dir)

    response = await client.get("/api/analytics", params={"from": NOW, "to": NOW - 1})

    error = error_of(response)
    assert response.status_code == 422
    assert error["details"] == {"field": "query.from", "value": str(NOW)}


async def test_analytics_window_length_422(serve, data_dir: Path) -> None:
    """A summary window longer than 366 days is rejected before any query runs."""
    client = await serve(data_dir)

    response = await client.get("/api/analytics", params={"from": 0, "to": NOW})

    error = error_of(response)
    assert response.status_code == 422
    assert "366 days" in str(error["message"])


async def test_analytics_time_bounds_422(serve, data_dir: Path) -> None:
    """Negative and non-finite window times are rejected with 422, not a server error."""
    client = await serve(data_dir)

    for value in ("-1", "-3.6e16", "inf", "nan"):
        response = await client.get("/api/analytics", params={"from": value})
        assert response.status_code == 422, value
        assert error_of(response)["details"]["field"] == "query.from"


async def test_undecodable_body_400(serve, data_dir: Path) -> None:
    """A body that is not UTF-8 returns 400 naming the body, not FastAPI's plain detail."""
    client = await serve(data_dir)

    response = await client.post(
        "/api/alerts/ack/alert_1", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
    )

    error = error_of(response)
    assert response.status_code == 400
    assert error["code"] == "invalid_request"
    assert error["details"] == {"field": "body"}


async def test_store_gone_503(serve, data_dir: Path) -> None:
    """A route whose store vanished after the token check returns 503 with code store_unavailable."""
    client = await serve(data_dir)
    assert (await client.get("/api/metrics")).status_code == 200

    # The guard keeps the token table for a second, so the next request reaches the route.
    (data_dir / DB_FILENAME).unlink()
    response = await client.get("/api/metrics")

    error = error_of(response)
    assert response.status_code == 503
    assert error["code"] == "store_unavailable"
    assert "store not found" in str(error["message"])


def test_openapi_errors_use_error_body() -> None:
    """Every declared 4xx and 5xx response refers to ErrorBody, except the readiness probe's 503."""
    schema = build_openapi()
    undeclared = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue
                reference = response["content"]["application/json"]["schema"].get("$ref")
                if reference != "#/components/schemas/ErrorBody":
                    undeclared.append(f"{method.upper()} {path} {status}: {reference}")

    assert undeclared == []
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_openapi_file_current() -> None:
    """docs/openapi.json equals the schema the code generates, which `make openapi` writes."""
    committed = (REPOSITORY / DEFAULT_PATH).read_text(encoding="utf-8")

    assert committed == render_openapi(), "docs/openapi.json is out of date: run `make openapi` and commit it"



async def test_malformed_json_400(serve, data_dir: Path) -> None:
    """A body that is not JSON returns the same 400 as one that cannot be decoded, not a 422."""
    client = await serve(data_dir)

    response = await client.post("/api/alerts/ack/alert_1", content=b"{bad", headers={"Content-Type": "application/json"})

    error = error_of(response)
    assert response.status_code == 400
    assert error["code"] == "invalid_request"
    assert error["details"] == {"field": "body"}

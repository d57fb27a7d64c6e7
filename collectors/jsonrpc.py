"""A small JSON-RPC client over httpx for blockchain nodes: batches, single calls, error shapes.

The Ethereum and Bitcoin Core readers call `JsonRpcClient.exchange` once per cycle
with every method they need. The client sends them as one batch when the node
accepts batches and falls back to one call after another when it does not. It returns
one `RpcReply` per call, or raises an `RpcExchangeError` subclass when the exchange
as a whole failed.

Response shapes it reads:

- JSON-RPC 2.0 (`{"jsonrpc": "2.0", "id": 1, "result": ...}` or `"error": {...}`) and
  Bitcoin Core's legacy 1.0 form (`{"result": null, "error": {...}, "id": 1}`). A
  JSON-RPC body is read whatever the HTTP status, because Bitcoin Core sends its
  errors with HTTP 500 (and 404 for an unknown method).
- A single error object in reply to a batch means the node rejects batches; so does
  an HTTP 4xx other than 401, 403 and 429 without a JSON-RPC body.
- HTTP 401 and 403 are authentication failures. The client asks its credentials to
  refresh once after a 401 and repeats the request, because Bitcoin Core writes a new
  cookie file whenever it restarts.
- HTTP 429, 503 and a plain-text body such as Bitcoin Core's `Work queue depth
  exceeded` mean the node is overloaded.

Invariants:

- At most one request to the node is in flight: calls are sent one after another,
  and the connection pool has one connection. The connection is closed at the
  end of each exchange, so the single calls of one exchange share it and nothing
  stays open between cycles.
- Nothing here logs a URL or a credential; the caller logs with the node's name.
- A node that rejected a batch gets single calls until `BATCH_RETRY_PERIOD` has
  passed, then one batch is tried again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from collectors.rpc_credentials import BasicCredentials, RpcCredentials

__all__ = [
    "BATCH_RETRY_PERIOD",
    "JsonRpcClient",
    "RpcAuthFailed",
    "RpcCall",
    "RpcError",
    "RpcExchange",
    "RpcExchangeError",
    "RpcHttpError",
    "RpcInvalidResponse",
    "RpcOverloaded",
    "RpcReply",
    "RpcUnreachable",
]

logger = logging.getLogger(__name__)

BATCH_RETRY_PERIOD = 3600.0
"""Seconds after a rejected batch before the client tries a batch again."""

METHOD_NOT_FOUND = -32601
"""JSON-RPC error code of a method that does not exist or is disabled."""

IN_WARMUP = -28
"""Bitcoin Core's error code while it loads the block index or verifies blocks at start-up."""

_BODY_PREVIEW = 120
_UNAVAILABLE_WORDS = ("does not exist", "not available", "not found", "not supported", "disabled")
_OVERLOAD_STATUSES = frozenset({429, 503})
_OVERLOAD_TEXTS = ("work queue depth exceeded", "too many requests", "overloaded")

JsonRpcVersion = Literal["1.0", "2.0"]


@dataclass(frozen=True, slots=True)
class RpcCall:
    """One method call of an exchange."""

    method: str
    """Method name, for example `eth_blockNumber`."""
    params: tuple[object, ...] = ()
    """Positional parameters."""


@dataclass(frozen=True, slots=True)
class RpcError:
    """The error object of one response."""

    code: int | None
    """JSON-RPC error code; None when the node sent no integer code."""
    message: str
    """The node's message, cut to a readable length."""

    @property
    def method_unavailable(self) -> bool:
        """Whether the error reports that the method does not exist or is disabled on this node.

        Besides the standard -32601, some nodes report a disabled module with another
        code and a message such as `The method txpool_status does not exist/is not available`.
        """
        lowered = self.message.lower()
        return self.code == METHOD_NOT_FOUND or any(word in lowered for word in _UNAVAILABLE_WORDS)

    @property
    def warming_up(self) -> bool:
        """Whether this is Bitcoin Core's start-up error (-28, `Loading block index…`)."""
        return self.code == IN_WARMUP

    def __str__(self) -> str:
        return f"error {self.code}: {self.message}" if self.code is not None else f"error: {self.message}"


@dataclass(frozen=True, slots=True)
class RpcReply:
    """The response to one call: a result, or an error object."""

    method: str
    """The method that was called."""
    result: object = None
    """The `result` member; may be None (JSON null) when the node returned null."""
    error: RpcError | None = None
    """The error object, or None when the call succeeded."""


@dataclass(frozen=True, slots=True)
class RpcExchange:
    """All replies of one exchange, in call order, and how they were fetched."""

    replies: tuple[RpcReply, ...]
    """One reply per call, in the order of the calls."""
    latency_ms: float
    """Round trip of the first request of the exchange (the batch, or the first single call)."""
    batched: bool
    """Whether the replies came from one batch request."""

    def reply(self, method: str) -> RpcReply | None:
        """Return the reply to the first call of `method`, or None when it was not called."""
        return next((reply for reply in self.replies if reply.method == method), None)


class RpcExchangeError(Exception):
    """Raised when an exchange failed as a whole, so no call has a response."""


class RpcUnreachable(RpcExchangeError):
    """Raised when the node cannot be connected to, or did not respond within the timeout."""


class RpcAuthFailed(RpcExchangeError):
    """Raised on HTTP 401 or 403, after one credentials refresh for a 401."""


class RpcOverloaded(RpcExchangeError):
    """Raised on HTTP 429 or 503, or a plain-text overload reply such as `Work queue depth exceeded`."""


class RpcHttpError(RpcExchangeError):
    """Raised on any other HTTP error status whose body is not a JSON-RPC response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status code."""


class RpcInvalidResponse(RpcExchangeError):
    """Raised when a successful HTTP response is not JSON-RPC (an HTML page, malformed JSON)."""


class JsonRpcClient:
    """Calls methods on one node's JSON-RPC endpoint."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout: float,
        version: JsonRpcVersion = "2.0",
        credentials: RpcCredentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare the client; the HTTP connection opens with the first exchange.

        Args:
            url: The endpoint; it may contain an API key, so it is never logged.
            name: The node's name, used in log lines instead of the URL.
            timeout: Seconds each HTTP request may take (connect, write, read).
            version: `jsonrpc` member of requests: 2.0 for Ethereum, 1.0 for Bitcoin
                Core, whose legacy mode every version supports.
            credentials: Basic-auth credentials, or None for an open endpoint.
            transport: httpx transport, for tests; None uses the network.
        """
        self._url = url
        self._name = name
        self._timeout = timeout
        self._version = version
        self._credentials = credentials
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tls: ssl.SSLContext | None = None
        self._next_id = 1
        self._batch_retry_at: float | None = None

    @property
    def batch_rejected(self) -> bool:
        """Whether the node rejected the latest batch, so calls currently go one by one."""
        return self._batch_retry_at is not None

    async def exchange(self, calls: Sequence[RpcCall], now: float) -> RpcExchange:
        """Send `calls` and return one reply per call, in order.

        Args:
            calls: The methods to call; more than one is sent as a batch when the
                node accepts batches.
            now: UTC epoch seconds of the cycle, which decides when a rejected batch
                is tried again.

        Raises:
            RpcUnreachable: connection refused, reset or timed out.
            RpcAuthFailed: HTTP 401 or 403.
            RpcOverloaded: HTTP 429 or 503, or a plain-text overload reply.
            RpcHttpError: another HTTP error without a JSON-RPC body.
            RpcInvalidResponse: a body that is not a JSON-RPC response.
            collectors.rpc_credentials.CredentialsError: the credentials cannot be read.
        """
        try:
            if len(calls) > 1 and self._batch_allowed(now):
                batch = await self._try_batch(calls, now)
                if batch is not None:
                    return batch
            return await self._one_by_one(calls)
        finally:
            # One connection per exchange: closing it here leaves nothing open between
            # cycles, or when the event loop ends without closing the collectors.
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection; a later exchange opens a new one. `exchange` calls it at its end."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _batch_allowed(self, now: float) -> bool:
        if self._batch_retry_at is None:
            return True
        if now >= self._batch_retry_at:
            self._batch_retry_at = None
            return True
        return False

    async def _try_batch(self, calls: Sequence[RpcCall], now: float) -> RpcExchange | None:
        """Send `calls` as one batch; return None when the node rejected the batch."""
        ids = [self._take_id() for _ in calls]
        body = [self._request(call, request_id) for call, request_id in zip(calls, ids)]
        response, latency_ms = await self._post(body)
        decoded = _json_body(response)
        if isinstance(decoded, list):
            return RpcExchange(tuple(_batch_replies(calls, ids, decoded)), latency_ms, batched=True)
        if response.status_code in _OVERLOAD_STATUSES:
            _raise_for_status(response)
        if isinstance(decoded, dict) or _rejects_batch(response):
            self._batch_retry_at = now + BATCH_RETRY_PERIOD
            logger.info(
                "batch rejected, using single calls node=%s status=%d retry_in_s=%g",
                self._name, response.status_code, BATCH_RETRY_PERIOD,
            )
            return None
        _raise_for_status(response)
        raise RpcInvalidResponse(f"expected a JSON array in reply to a batch, got {_preview(response)}")

    async def _one_by_one(self, calls: Sequence[RpcCall]) -> RpcExchange:
        replies = []
        first_latency: float | None = None
        for call in calls:
            request_id = self._take_id()
            response, latency_ms = await self._post(self._request(call, request_id))
            first_latency = latency_ms if first_latency is None else first_latency
            replies.append(_single_reply(call, response))
        return RpcExchange(tuple(replies), first_latency or 0.0, batched=False)

    async def _post(self, body: object) -> tuple[httpx.Response, float]:
        """Send one request, refreshing the credentials once after a 401; return it and its round trip."""
        credentials = await self._auth()
        response, latency_ms = await self._send(body, credentials)
        if response.status_code == 401 and self._credentials is not None:
            credentials = await self._credentials.get(refresh=True)
            response, latency_ms = await self._send(body, credentials)
        if response.status_code in (401, 403):
            raise RpcAuthFailed(
                f"HTTP {response.status_code}: the node rejected the credentials; "
                "check auth.user and auth.password_env, or auth.cookie_file"
            )
        return response, latency_ms

    async def _send(self, body: object, credentials: BasicCredentials | None) -> tuple[httpx.Response, float]:
        client = await self._http()
        auth = httpx.BasicAuth(credentials.user, credentials.password) if credentials else None
        began = time.perf_counter()
        try:
            response = await client.post(self._url, content=json.dumps(body), auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException as err:
            raise RpcUnreachable(f"timed out after {self._timeout:g}s ({type(err).__name__})") from err
        except httpx.TransportError as err:
            raise RpcUnreachable(f"{type(err).__name__}: {_transport_reason(err)}") from err
        return response, (time.perf_counter() - began) * 1000.0

    async def _auth(self) -> BasicCredentials | None:
        if self._credentials is None:
            return None
        return await self._credentials.get()

    async def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._tls is None:
                # Loading the CA bundle reads files, so it runs in a thread, once per client.
                self._tls = await asyncio.to_thread(httpx.create_ssl_context)
            self._client = httpx.AsyncClient(
                verify=self._tls,
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                headers={"content-type": "application/json", "accept": "application/json"},
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    def _request(self, call: RpcCall, request_id: int) -> dict[str, object]:
        return {"jsonrpc": self._version, "id": request_id, "method": call.method, "params": list(call.params)}

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id


def _batch_replies(calls: Sequence[RpcCall], ids: Sequence[int], decoded: list[object]) -> list[RpcReply]:
    """Match batch responses to calls by id; a call without a response gets an error reply."""
    by_id = {item.get("id"): item for item in decoded if isinstance(item, dict)}
    replies = []
    for call, request_id in zip(calls, ids):
        item = by_id.get(request_id)
        if item is None:
            replies.append(RpcReply(call.method, error=RpcError(None, "the batch response has no entry for this call")))
        else:
            replies.append(_reply_from(call, item))
    return replies


def _single_reply(call: RpcCall, response: httpx.Response) -> RpcReply:
    decoded = _json_body(response)
    if isinstance(decoded, dict) and ("result" in decoded or "error" in decoded):
        return _reply_from(call, decoded)
    _raise_for_status(response)
    raise RpcInvalidResponse(f"expected a JSON-RPC response to {call.method}, got {_preview(response)}")


def _reply_from(call: RpcCall, item: dict[str, object]) -> RpcReply:
    error = item.get("error")
    if error is not None:
        return RpcReply(call.method, error=_error_from(error))
    if "result" not in item:
        return RpcReply(call.method, error=RpcError(None, "the response has neither result nor error"))
    return RpcReply(call.method, result=item["result"])


def _error_from(error: object) -> RpcError:
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return RpcError(
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            _cut(str(message) if message is not None else json.dumps(error)),
        )
    return RpcError(None, _cut(json.dumps(error, default=str)))


def _json_body(response: httpx.Response) -> object:
    """Return the decoded JSON body, or None when the body is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _rejects_batch(response: httpx.Response) -> bool:
    """Return whether a non-JSON reply to a batch rejects batches rather than reports a node failure."""
    status = response.status_code
    return 400 <= status < 500 and status not in _OVERLOAD_STATUSES


def _raise_for_status(response: httpx.Response) -> None:
    """Raise the exchange error that an HTTP reply without a JSON-RPC body stands for."""
    status = response.status_code
    text = response.text.lower()
    if status in _OVERLOAD_STATUSES or any(words in text for words in _OVERLOAD_TEXTS):
        raise RpcOverloaded(f"HTTP {status}: the node is overloaded ({_preview(response)})")
    if status >= 400:
        raise RpcHttpError(status, f"HTTP {status}: {_preview(response)}")


def _preview(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if not text:
        return "an empty body"
    return json.dumps(_cut(text, _BODY_PREVIEW))


def _cut(text: str, length: int = 200) -> str:
    return text if len(text) <= length else text[:length] + "…"


def _transport_reason(err: httpx.TransportError) -> str:
    # httpx wraps the OS error. Its text ("[Errno 111] Connection refused") is more useful
    # than the class name, and it never contains the URL.
    cause = err.__cause__ or err.__context__
    return str(cause or err) or type(err).__name__

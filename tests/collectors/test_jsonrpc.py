"""The JSON-RPC client against a local server replaying node responses and error shapes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from collectors.jsonrpc import (
    BATCH_RETRY_PERIOD,
    JsonRpcClient,
    RpcAuthFailed,
    RpcCall,
    RpcHttpError,
    RpcInvalidResponse,
    RpcOverloaded,
    RpcUnreachable,
)
from collectors.rpc_credentials import CredentialsError, RpcCredentials
from tests.collectors.rpc_replay import Fixed, HttpReply, JsonRpcNode, ReplayServer, error, replay, result

__all__ = ["replay"]

NOW = 1_750_000_000.0
CALLS = [RpcCall("eth_blockNumber"), RpcCall("net_peerCount")]
ANSWERS = {"eth_blockNumber": result("0x10"), "net_peerCount": result("0x3")}


def client_for(server: ReplayServer, path: str = "/", **options: object) -> JsonRpcClient:
    """Return a client for `path` on the replay server with a short timeout."""
    options.setdefault("timeout", 2.0)
    return JsonRpcClient(server.url(path), name="test", **options)  # type: ignore[arg-type]


async def test_batch_accepted(replay: ReplayServer) -> None:
    """Several calls go out as one batch, and replies come back in call order."""
    node = JsonRpcNode(dict(ANSWERS))
    replay.routes["/"] = node

    exchange = await client_for(replay).exchange(CALLS, NOW)

    assert exchange.batched is True
    assert [reply.result for reply in exchange.replies] == ["0x10", "0x3"]
    assert len(replay.requests) == 1


@pytest.mark.parametrize("rejection", ["reject_object", "reject_http"])
async def test_batch_rejected_falls_back(replay: ReplayServer, rejection: str) -> None:
    """A node that rejects batches gets single calls, and the client remembers it."""
    node = JsonRpcNode(dict(ANSWERS), batch=rejection)  # type: ignore[arg-type]
    replay.routes["/"] = node
    client = client_for(replay)

    first = await client.exchange(CALLS, NOW)
    second = await client.exchange(CALLS, NOW + 15)

    assert [reply.result for reply in first.replies] == ["0x10", "0x3"]
    assert second.batched is False
    assert node.batches == 1
    assert client.batch_rejected is True


async def test_batch_retried_after_period(replay: ReplayServer) -> None:
    """After `BATCH_RETRY_PERIOD` one batch is tried again."""
    node = JsonRpcNode(dict(ANSWERS), batch="reject_object")
    replay.routes["/"] = node
    client = client_for(replay)

    await client.exchange(CALLS, NOW)
    await client.exchange(CALLS, NOW + BATCH_RETRY_PERIOD)

    assert node.batches == 2


async def test_batch_missing_answer(replay: ReplayServer) -> None:
    """A call missing from the batch response gets an error reply; the others keep theirs."""
    def answer_first_only(path: str, headers: dict[str, str], body: bytes) -> HttpReply:
        return HttpReply(200, b'[{"jsonrpc": "2.0", "id": 1, "result": "0x10"}]')

    replay.routes["/"] = answer_first_only
    exchange = await client_for(replay).exchange(CALLS, NOW)

    assert exchange.replies[0].result == "0x10"
    assert exchange.replies[1].error is not None


async def test_error_without_result(replay: ReplayServer) -> None:
    """HTTP 200 with an error object and no result is an error reply, not an exception."""
    replay.routes["/"] = JsonRpcNode({"eth_blockNumber": {"error": {"code": -32000, "message": "header not found"}}})

    exchange = await client_for(replay).exchange([RpcCall("eth_blockNumber")], NOW)

    assert exchange.replies[0].error is not None
    assert exchange.replies[0].error.code == -32000


async def test_method_not_found(replay: ReplayServer) -> None:
    """-32601 marks the method as unavailable."""
    replay.routes["/"] = JsonRpcNode({"net_peerCount": error(-32601, "the method net_peerCount does not exist")})

    exchange = await client_for(replay).exchange([RpcCall("net_peerCount")], NOW)

    assert exchange.replies[0].error is not None
    assert exchange.replies[0].error.method_unavailable is True


async def test_disabled_module_other_code(replay: ReplayServer) -> None:
    """A disabled module reported with another code but an unmistakable message is unavailable too."""
    replay.routes["/"] = JsonRpcNode(
        {"txpool_status": error(-32700, "The method txpool_status does not exist/is not available")}
    )

    exchange = await client_for(replay).exchange([RpcCall("txpool_status")], NOW)

    assert exchange.replies[0].error is not None
    assert exchange.replies[0].error.method_unavailable is True


async def test_bitcoin_warmup_http_500(replay: ReplayServer) -> None:
    """Bitcoin Core's -28 comes with HTTP 500 and a JSON body; it is read as an error reply."""
    replay.routes["/"] = JsonRpcNode(
        {"getblockchaininfo": error(-28, "Loading block index…")}, style="bitcoin"
    )

    exchange = await client_for(replay, version="1.0").exchange([RpcCall("getblockchaininfo")], NOW)

    assert exchange.replies[0].error is not None
    assert exchange.replies[0].error.warming_up is True


async def test_bitcoin_unknown_method_http_404(replay: ReplayServer) -> None:
    """Bitcoin Core's HTTP 404 with a -32601 body is a method error, not a wrong URL."""
    replay.routes["/"] = JsonRpcNode({}, style="bitcoin")

    exchange = await client_for(replay, version="1.0").exchange([RpcCall("getmempoolinfo")], NOW)

    assert exchange.replies[0].error is not None
    assert exchange.replies[0].error.method_unavailable is True


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (HttpReply(503, b"Work queue depth exceeded", "text/plain"), RpcOverloaded),
        (HttpReply(500, b"Work queue depth exceeded", "text/plain"), RpcOverloaded),
        (HttpReply(429, b"Too Many Requests", "text/plain"), RpcOverloaded),
        (HttpReply(502, b"<html>Bad Gateway</html>", "text/html"), RpcHttpError),
        (HttpReply(404, b"not found", "text/plain"), RpcHttpError),
        (HttpReply(200, b"<html>hello</html>", "text/html"), RpcInvalidResponse),
        (HttpReply(200, b"[1, 2", "application/json"), RpcInvalidResponse),
        (HttpReply(403, b"Forbidden", "text/plain"), RpcAuthFailed),
    ],
)
async def test_http_failures_classified(replay: ReplayServer, reply: HttpReply, expected: type[Exception]) -> None:
    """Plain-text and HTML replies raise the exchange error they stand for."""
    replay.routes["/"] = Fixed(reply)

    with pytest.raises(expected):
        await client_for(replay).exchange([RpcCall("getblockchaininfo")], NOW)


async def test_overload_reply_to_batch(replay: ReplayServer) -> None:
    """A 503 in reply to a batch is an overload, not a batch rejection."""
    replay.routes["/"] = Fixed(HttpReply(503, b"Work queue depth exceeded", "text/plain"))
    client = client_for(replay)

    with pytest.raises(RpcOverloaded):
        await client.exchange(CALLS, NOW)
    assert client.batch_rejected is False


async def test_cookie_reread_after_401(replay: ReplayServer, tmp_path: Path) -> None:
    """After a 401 the cookie file is read again and the request repeated once."""
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:old")
    node = JsonRpcNode({"getblockcount": result(5)}, style="bitcoin", password="new")
    replay.routes["/"] = node
    client = client_for(replay, version="1.0", credentials=RpcCredentials(cookie_file=cookie))

    with pytest.raises(RpcAuthFailed):
        await client.exchange([RpcCall("getblockcount")], NOW)
    cookie.write_text("__cookie__:new")
    exchange = await client.exchange([RpcCall("getblockcount")], NOW + 15)

    assert exchange.replies[0].result == 5


async def test_401_tries_twice_only(replay: ReplayServer, tmp_path: Path) -> None:
    """A rejected password is sent, refreshed once, and then reported: two requests in all."""
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:wrong")
    replay.routes["/"] = JsonRpcNode({}, style="bitcoin", password="right")
    client = client_for(replay, version="1.0", credentials=RpcCredentials(cookie_file=cookie))

    with pytest.raises(RpcAuthFailed):
        await client.exchange([RpcCall("getblockcount")], NOW)
    assert len(replay.requests) == 2


async def test_password_from_environment(replay: ReplayServer) -> None:
    """user + password_env sends the variable's value as the basic-auth password."""
    replay.routes["/"] = JsonRpcNode({"getblockcount": result(7)}, style="bitcoin", password="s3cret")
    credentials = RpcCredentials(user="rpc", password_env="BTC_PASS", environ={"BTC_PASS": "s3cret"})

    exchange = await client_for(replay, credentials=credentials).exchange([RpcCall("getblockcount")], NOW)

    assert exchange.replies[0].result == 7


async def test_password_environment_unset(replay: ReplayServer) -> None:
    """An unset password variable raises CredentialsError naming the variable."""
    credentials = RpcCredentials(user="rpc", password_env="BTC_PASS", environ={})

    with pytest.raises(CredentialsError, match="BTC_PASS"):
        await client_for(replay, credentials=credentials).exchange([RpcCall("getblockcount")], NOW)


async def test_connection_refused() -> None:
    """A port without a listener raises RpcUnreachable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = JsonRpcClient(f"http://127.0.0.1:{port}/", name="test", timeout=1.0)

    with pytest.raises(RpcUnreachable):
        await client.exchange(CALLS, NOW)


async def test_read_timeout(replay: ReplayServer) -> None:
    """A node slower than the timeout raises RpcUnreachable."""
    replay.routes["/"] = JsonRpcNode(dict(ANSWERS), delay=0.6)

    with pytest.raises(RpcUnreachable, match="timed out"):
        await client_for(replay, timeout=0.2).exchange(CALLS, NOW)


async def test_one_request_in_flight(replay: ReplayServer) -> None:
    """Single calls go one after another, so the server never serves two at once."""
    replay.routes["/"] = JsonRpcNode(dict(ANSWERS), batch="reject_object", delay=0.05)

    await client_for(replay).exchange(CALLS * 3, NOW)

    assert replay.max_in_flight == 1

"""ChatClient against a scripted JSON-RPC stub: request shape, error mapping, and the
reconnect logic of `events()` with an injected sleep and jitter (no real waiting)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rpcchat.client import (
    CURSOR_AHEAD, INTERNAL_ERROR, UNAUTHORIZED, ChatClient, Event, ReconnectPolicy,
    ResponseError, RpcCallError,
)
from rpcchat.transport.client import ConnectError, ConnectionLost
from stub_http import Handler, StubConnection, StubRequest, StubServer, free_port, rpc_reply

StartStub = Callable[..., Awaitable[StubServer]]
DROP = b"<drop the connection>"
Script = Callable[[StubRequest], bytes]


def rpc_stub(script: Script) -> Handler:
    """A handler answering each request with `script(request)`, or dropping the connection."""

    async def handler(conn: StubConnection) -> None:
        while (request := await conn.read_request()) is not None:
            reply = script(request)
            if reply is DROP:
                conn.writer.transport.abort()
                return
            await conn.respond(reply, headers=("Content-Type: application/json",))

    return handler


def error(code: int, message: str = "failed", data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return body


class FakeSleep:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def event(seq: int) -> dict[str, Any]:
    return {"seq": seq, "type": "message", "ts": 1.0, "data": {"text": f"m{seq}"}}


async def test_call_sends_a_json_rpc_request_with_the_token(stub: StartStub) -> None:
    server = await stub(rpc_stub(lambda request: rpc_reply(request, {"ok": True})))
    async with ChatClient(server.url, token="tok-123") as client:
        assert await client.call("status", {"a": 1}) == {"ok": True}
        assert await client.call("rpc.discover") == {"ok": True}
    first, second = (request.json() for request in server.requests)
    assert first == {"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"a": 1}}
    assert second == {"jsonrpc": "2.0", "id": 2, "method": "rpc.discover"}
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/rpc")
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["content-type"] == "application/json"


async def test_connect_keeps_the_token_and_disconnect_drops_it(stub: StartStub) -> None:
    def script(request: StubRequest) -> bytes:
        method = request.json()["method"]
        if method == "connect":
            return rpc_reply(request, {"token": "t1", "user": "Alice", "cursor": 0,
                                       "history": [], "unread": 0, "server_time": 1.0})
        return rpc_reply(request, {"ok": True, "server_time": 1.0})

    server = await stub(rpc_stub(script))
    async with ChatClient(server.url) as client:
        result = await client.connect("alice", "pw", history=5)
        assert (client.token, client.user, result["token"]) == ("t1", "Alice", "t1")
        await client.disconnect()
        assert client.token is None
    connect, disconnect = server.requests
    assert "authorization" not in connect.headers
    assert connect.json()["params"] == {"name": "alice", "password": "pw", "history": 5}
    assert disconnect.headers["authorization"] == "Bearer t1"


async def test_error_reply_becomes_rpc_call_error(stub: StartStub) -> None:
    data = {"retry_after": 12.0, "resets_at": 99.0}
    server = await stub(rpc_stub(
        lambda request: rpc_reply(request, error=error(-32005, "Rate limited", data))))
    async with ChatClient(server.url, token="t") as client:
        with pytest.raises(RpcCallError) as caught:
            await client.send("hi")
    assert (caught.value.code, caught.value.message, caught.value.data) == (
        -32005, "Rate limited", data)
    assert "-32005" in str(caught.value)


async def test_send_generates_a_client_msg_id_and_omits_unset_params(stub: StartStub) -> None:
    server = await stub(rpc_stub(lambda request: rpc_reply(request, {"message": {}})))
    async with ChatClient(server.url, token="t") as client:
        await client.send("one")
        await client.send("two", to="bob", client_msg_id="mine")
        await client.send("three", chat="g1", delay=5)
    params = [request.json()["params"] for request in server.requests]
    assert set(params[0]) == {"text", "client_msg_id"}
    assert len(params[0]["client_msg_id"]) >= 16
    assert params[1] == {"text": "two", "to": "bob", "client_msg_id": "mine"}
    assert params[2]["chat"] == "g1" and params[2]["delay"] == 5
    assert params[0]["client_msg_id"] != params[2]["client_msg_id"]


async def test_file_put_sends_base64(stub: StartStub) -> None:
    server = await stub(rpc_stub(lambda request: rpc_reply(request, {"offset": 3})))
    async with ChatClient(server.url, token="t") as client:
        await client.file_put("u1", 0, b"\x00\xffa")
    expected = {"upload_id": "u1", "offset": 0, "data": "AP9h"}
    assert server.requests[0].json()["params"] == expected


@pytest.mark.parametrize("status, body, reason", [
    ("404 Not Found", b"no such path", "HTTP 404"),
    ("200 OK", b"<html>", "not JSON"),
    ("200 OK", b"[1, 2]", "not a JSON-RPC 2.0 response"),
    ("200 OK", b'{"jsonrpc": "2.0", "id": 77, "result": 1}', "request id 77"),
    ("200 OK", b'{"jsonrpc": "2.0", "id": 1, "result": 5}', "expected an object"),
    ("200 OK", b"[" * 100_000, "nested too deeply"),
    ("200 OK", b'{"jsonrpc": "2.0", "id": true, "result": {}}', "request id True"),
    ("200 OK", b'{"jsonrpc": "2.0", "id": 1, "error": {"code": true, "message": "x"}}',
     "malformed error object"),
])
async def test_unusable_replies_raise_response_error(
        stub: StartStub, status: str, body: bytes, reason: str) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.respond(body, status)

    server = await stub(handler)
    async with ChatClient(server.url) as client:
        with pytest.raises(ResponseError, match=reason):
            await client.status()


@pytest.mark.parametrize("method, result, field", [
    ("connect", {"user": "alice"}, "token"),
    ("connect", {"token": "t2", "user": None}, "user"),
    ("poll", {"next": 1}, "events"),
    ("poll", {"events": {}, "next": 1}, "events"),
    ("poll", {"events": [], "next": "1"}, "next"),
    ("poll", {"events": [], "next": True}, "next"),
])
async def test_results_lacking_what_the_client_reads_raise_response_error(
        stub: StartStub, method: str, result: dict[str, Any], field: str) -> None:
    server = await stub(rpc_stub(lambda request: rpc_reply(request, result)))
    async with ChatClient(server.url, token="t1") as client:
        with pytest.raises(ResponseError, match=f"{method}: the result's '{field}'"):
            if method == "connect":
                await client.connect("alice", "pw")
            else:
                await client.poll(timeout=0)
        assert client.token == "t1"


async def test_poll_http_deadline_outlasts_the_long_poll(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        request = await conn.read_request()
        assert request is not None
        await asyncio.sleep(0.3)  # longer than the client's default timeout below
        await conn.respond(rpc_reply(request, {"events": [], "next": 0, "more": False,
                                               "unread": 0}))

    server = await stub(handler)
    async with ChatClient(server.url, token="t", timeout=0.1) as client:
        result = await client.poll(since=0, timeout=0.2)
    assert result["events"] == []
    assert server.requests[0].json()["params"] == {"since": 0, "timeout": 0.2}


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = ReconnectPolicy(initial=1, maximum=8, factor=2)
    assert [policy.delay(attempt, 0.0) for attempt in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [policy.delay(attempt, 1.0) for attempt in range(5)] == [1, 2, 4, 8, 8]
    assert policy.delay(10_000, 0.5) == 6  # no overflow for a long outage


async def collect(client: ChatClient, count: int, **kwargs: Any) -> list[Event]:
    events: list[Event] = []
    async for item in client.events(**kwargs):
        events.append(item)
        if len(events) == count:
            break
    return events


async def test_events_follow_next_and_back_off_on_connection_errors(stub: StartStub) -> None:
    replies: list[dict[str, Any] | bytes] = [
        {"events": [event(1), event(2)], "next": 2},
        DROP, DROP, DROP,  # each drop costs a retry on a fresh connection too
        {"events": [], "next": 2},
        {"events": [event(3)], "next": 3},
    ]
    sinces: list[Any] = []

    def script(request: StubRequest) -> bytes:
        sinces.append(request.json()["params"].get("since"))
        reply = replies.pop(0)
        if reply is DROP:
            return DROP
        assert isinstance(reply, dict)
        return rpc_reply(request, {**reply, "more": False, "unread": 0})

    server = await stub(rpc_stub(script))
    sleep = FakeSleep()
    async with ChatClient(server.url, token="t", sleep=sleep, random_fraction=lambda: 0.5,
                          reconnect=ReconnectPolicy(initial=1, maximum=30)) as client:
        events = await collect(client, 3, timeout=0)
    assert [item["seq"] for item in events] == [1, 2, 3]
    assert sinces == [None, 2, 2, 2, 2, 2]
    # events() sees two failures: the reused connection dropped and so did the one resend
    # on a fresh connection; then a fresh connection dropped. Backoff: 1 s, then 2 s, each
    # half fixed and half jitter (0.5 here).
    assert sleep.delays == [0.75, 1.5]


async def test_events_pause_when_polls_keep_ending_early(
        stub: StartStub, caplog: pytest.LogCaptureFixture) -> None:
    """Another poller with the same token ends our polls at once: no tight loop."""
    replies = [[], [], [], [], [event(1)]]

    def script(request: StubRequest) -> bytes:
        return rpc_reply(request, {"events": replies.pop(0), "next": 1, "more": False,
                                   "unread": 0})

    server = await stub(rpc_stub(script))
    sleep = FakeSleep()
    async with ChatClient(server.url, token="t", sleep=sleep,
                          random_fraction=lambda: 0.5) as client:
        events = await collect(client, 1, timeout=5)
    assert [item["seq"] for item in events] == [1]
    assert sleep.delays == [0.375, 0.75, 0.75, 0.75]
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "same token" in warnings[0].getMessage()


async def test_events_reconnect_while_the_server_is_down(stub: StartStub) -> None:
    port = free_port()

    def script(request: StubRequest) -> bytes:
        return rpc_reply(request, {"events": [event(7)], "next": 7, "more": False,
                                   "unread": 0})

    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 3:  # the server comes back after three failed attempts
            await stub(rpc_stub(script), port)

    async with ChatClient(f"http://127.0.0.1:{port}", token="t", sleep=sleep,
                          random_fraction=lambda: 0.0,
                          reconnect=ReconnectPolicy(initial=1, maximum=3)) as client:
        events = await collect(client, 1, timeout=1)
    assert events[0]["seq"] == 7
    assert delays == [0.5, 1.0, 1.5]


async def test_events_restart_from_the_cursor_when_ahead(stub: StartStub) -> None:
    sinces: list[Any] = []

    def script(request: StubRequest) -> bytes:
        since = request.json()["params"].get("since")
        sinces.append(since)
        if since == 500:
            return rpc_reply(request, error=error(CURSOR_AHEAD, "ahead", {"head": 9}))
        return rpc_reply(request, {"events": [event(9)], "next": 9, "more": False,
                                   "unread": 0})

    server = await stub(rpc_stub(script))
    sleep = FakeSleep()
    async with ChatClient(server.url, token="t", sleep=sleep) as client:
        events = await collect(client, 1, since=500)
    assert [item["seq"] for item in events] == [9]
    assert sinces == [500, None]
    assert sleep.delays == []


async def test_events_stop_on_unauthorized(stub: StartStub) -> None:
    server = await stub(rpc_stub(
        lambda request: rpc_reply(request, error=error(UNAUTHORIZED, "Unauthorized"))))
    async with ChatClient(server.url, token="revoked", sleep=FakeSleep()) as client:
        with pytest.raises(RpcCallError) as caught:
            await collect(client, 1)
    assert caught.value.code == UNAUTHORIZED


async def test_events_retry_internal_errors_with_backoff(stub: StartStub) -> None:
    replies = [error(INTERNAL_ERROR, "Internal error"), None]

    def script(request: StubRequest) -> bytes:
        fault = replies.pop(0)
        if fault is not None:
            return rpc_reply(request, error=fault)
        return rpc_reply(request, {"events": [event(1)], "next": 1, "more": False,
                                   "unread": 0})

    server = await stub(rpc_stub(script))
    sleep = FakeSleep()
    async with ChatClient(server.url, token="t", sleep=sleep,
                          random_fraction=lambda: 0.0) as client:
        assert [item["seq"] for item in await collect(client, 1)] == [1]
    assert sleep.delays == [0.25]


async def test_events_retry_a_malformed_poll_result_with_backoff(stub: StartStub) -> None:
    replies: list[dict[str, Any]] = [{"next": 1}, {"events": [event(1)], "next": 1}]

    def script(request: StubRequest) -> bytes:
        return rpc_reply(request, {**replies.pop(0), "more": False, "unread": 0})

    server = await stub(rpc_stub(script))
    sleep = FakeSleep()
    async with ChatClient(server.url, token="t", sleep=sleep,
                          random_fraction=lambda: 0.0) as client:
        assert [item["seq"] for item in await collect(client, 1)] == [1]
    assert sleep.delays == [0.25]


async def test_send_is_retried_with_the_same_client_msg_id(stub: StartStub) -> None:
    """A kept-alive connection dying under a send: the one resend carries the same id."""

    async def handler(conn: StubConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if conn.index == 1 and len(conn.stub.requests) == 2:
                conn.writer.transport.abort()
                return
            await conn.respond(rpc_reply(request, {"message": {"id": 1}}))

    server = await stub(handler)
    async with ChatClient(server.url, token="t") as client:
        await client.status()
        await client.send("only once")
    first, second = (request.json() for request in server.requests[1:])
    assert first["params"]["client_msg_id"] == second["params"]["client_msg_id"]
    assert server.connections == 2


async def test_connect_is_not_retried_on_a_dead_connection(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if len(conn.stub.requests) == 2:
                conn.writer.transport.abort()
                return
            await conn.respond(rpc_reply(request, {"server": {}}))

    server = await stub(handler)
    async with ChatClient(server.url) as client:
        await client.status()
        with pytest.raises(ConnectionLost):
            await client.connect("alice", "pw")


async def test_server_down_raises_connect_error() -> None:
    async with ChatClient(f"http://127.0.0.1:{free_port()}", connect_timeout=1) as client:
        with pytest.raises(ConnectError):
            await client.status()


def test_event_typed_dict_matches_contract() -> None:
    sample: Event = json.loads('{"seq": 1, "type": "message", "ts": 2.0, "data": {}}')
    assert sample["seq"] == 1

"""Every error the core methods (connect, disconnect, status, send, poll, history) can
answer, with its error.data, through HTTP; after each one the same keep-alive connection
and the server go on working."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from integration_helpers import PASSWORD, RawConnection, Users
from rpc_testing import CHEAP_HASHER, ServerFactory
from rpcchat.app import ChatServer

MAX_TEXT = 10
DM = "dm:alice:bob"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    params: Any
    code: int
    bad_field: str | None = None   # -32602: the expected error.data.field
    data: dict[str, Any] = field(default_factory=dict)  # other codes: expected error.data
    token: str = "carol"           # carol (valid), none, bogus, revoked, basic


def invalid(name: str, method: str, params: Any, bad_field: str) -> Case:
    return Case(name, method, params, -32602, bad_field=bad_field)


CASES = [
    # -32001
    Case("poll without a token", "poll", {}, -32001, token="none"),
    Case("send without a token", "send", {"text": "hi"}, -32001, token="none"),
    Case("disconnect without a token", "disconnect", {}, -32001, token="none"),
    Case("history with an unknown token", "history", {}, -32001, token="bogus"),
    Case("status with an unknown token", "status", {}, -32001, token="bogus"),
    Case("poll with a revoked token", "poll", {"timeout": 0}, -32001, token="revoked"),
    Case("send with a revoked token", "send", {"text": "hi"}, -32001, token="revoked"),
    Case("disconnect twice", "disconnect", {}, -32001, token="revoked"),
    Case("not a bearer token", "poll", {}, -32001, token="basic"),
    Case("wrong password", "connect", {"name": "alice", "password": "wrong"}, -32001),
    Case("wrong password, other case", "connect", {"name": "ALICE", "password": "x"}, -32001),
    # -32002
    Case("history of someone else's direct chat", "history", {"chat": DM}, -32002),
    Case("send into someone else's direct chat", "send", {"chat": DM, "text": "hi"}, -32002),
    # -32003
    Case("history of an unknown chat", "history", {"chat": "nope"}, -32003),
    Case("send to an unknown chat", "send", {"chat": "nope", "text": "hi"}, -32003),
    Case("send to an unknown user", "send", {"to": "ghost", "text": "hi"}, -32003),
    Case("send to a direct chat with nobody", "send", {"chat": "dm:alice:ghost", "text": "hi"},
         -32003),
    # -32007
    Case("text over --max-text", "send", {"text": "x" * (MAX_TEXT + 1)}, -32007,
         data={"limit": MAX_TEXT}),
    Case("private text over --max-text", "send", {"to": "alice", "text": "é" * (MAX_TEXT + 1)},
         -32007, data={"limit": MAX_TEXT}),
    # -32601
    Case("unknown method", "nosuch", {}, -32601),
    Case("reserved rpc. name", "rpc.nosuch", {}, -32601),
    # -32602: connect
    invalid("name too long", "connect", {"name": "a" * 33, "password": PASSWORD}, "name"),
    invalid("name empty", "connect", {"name": "", "password": PASSWORD}, "name"),
    invalid("name with a space", "connect", {"name": "a b", "password": PASSWORD}, "name"),
    invalid("name with a colon", "connect", {"name": "a:b", "password": PASSWORD}, "name"),
    invalid("name with a slash", "connect", {"name": "a/b", "password": PASSWORD}, "name"),
    invalid("name not a string", "connect", {"name": 5, "password": PASSWORD}, "name"),
    invalid("name missing", "connect", {"password": PASSWORD}, "name"),
    invalid("password missing", "connect", {"name": "dave"}, "password"),
    invalid("password empty", "connect", {"name": "dave", "password": ""}, "password"),
    invalid("history below 0", "connect", {"name": "dave", "password": "p", "history": -1},
            "history"),
    invalid("history over 200", "connect", {"name": "dave", "password": "p", "history": 201},
            "history"),
    invalid("connect unknown param", "connect", {"name": "dave", "password": "p", "x": 1}, "x"),
    # -32602: send
    invalid("text missing", "send", {}, "text"),
    invalid("text empty", "send", {"text": ""}, "text"),
    invalid("text blank", "send", {"text": "   "}, "text"),
    invalid("text not a string", "send", {"text": 5}, "text"),
    invalid("text with a lone surrogate", "send", {"text": "\ud800"}, "text"),
    invalid("both to and chat", "send", {"text": "hi", "to": "bob", "chat": "general"}, "to"),
    invalid("to yourself", "send", {"text": "hi", "to": "Carol"}, "to"),
    invalid("client_msg_id empty", "send", {"text": "hi", "client_msg_id": ""},
            "client_msg_id"),
    invalid("client_msg_id too long", "send", {"text": "hi", "client_msg_id": "k" * 65},
            "client_msg_id"),
    invalid("send unknown param", "send", {"text": "hi", "colour": "red"}, "colour"),
    # -32602: history
    invalid("history limit 0", "history", {"limit": 0}, "limit"),
    invalid("history limit 201", "history", {"limit": 201}, "limit"),
    invalid("history limit not an integer", "history", {"limit": 2.5}, "limit"),
    invalid("history before 0", "history", {"before": 0}, "before"),
    invalid("history chat not a string", "history", {"chat": 1}, "chat"),
    invalid("history unknown param", "history", {"after": 3}, "after"),
    # -32602: poll
    invalid("poll timeout 61", "poll", {"timeout": 61}, "timeout"),
    invalid("poll timeout negative", "poll", {"timeout": -0.5}, "timeout"),
    invalid("poll timeout a string", "poll", {"timeout": "1"}, "timeout"),
    invalid("poll limit 0", "poll", {"limit": 0}, "limit"),
    invalid("poll limit 501", "poll", {"limit": 501}, "limit"),
    invalid("poll since negative", "poll", {"since": -1}, "since"),
    invalid("poll since a float", "poll", {"since": 1.5}, "since"),
    invalid("poll since a boolean", "poll", {"since": True}, "since"),
    invalid("poll unknown param", "poll", {"wait": False}, "wait"),
    # -32602: status, disconnect
    invalid("status unknown param", "status", {"verbose": True}, "verbose"),
    invalid("disconnect unknown param", "disconnect", {"everywhere": True}, "everywhere"),
]


@dataclass
class World:
    server: ChatServer
    tokens: dict[str, str | None]


@pytest.fixture
async def world(running_server: ServerFactory, users: Users) -> World:
    """alice and bob share a direct chat; carol is a third user; a revoked token of dave."""
    server = await running_server(password_hasher=CHEAP_HASHER, max_text=MAX_TEXT)
    alice, _bob, carol, dave = await users(server, "alice", "bob", "carol", "dave")
    await alice.call("send", to="bob", text="private")
    revoked = dave.token
    await dave.call("disconnect")
    return World(server, {"carol": carol.token, "none": None, "bogus": "not-a-token",
                          "revoked": revoked, "basic": None})


async def call(connection: RawConnection, method: str, params: Any,
               token: str | None, request_id: Any = 7,
               authorization: str | None = None) -> dict[str, Any]:
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
    if authorization is not None:
        reply = await connection.request("POST", "/rpc", json.dumps(request).encode(),
                                         {"Authorization": authorization})
    else:
        reply = await connection.rpc(request, token)
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == "application/json"
    decoded: dict[str, Any] = reply.json()
    assert decoded["jsonrpc"] == "2.0" and decoded["id"] == request_id
    return decoded


async def assert_still_serving(connection: RawConnection, world: World) -> None:
    """The next request on the same connection works, and so does a new connection."""
    after = await call(connection, "status", {}, world.tokens["carol"], request_id="next")
    assert after["result"]["me"]["name"] == "carol"
    fresh = await RawConnection.open(world.server.port)
    try:
        assert (await fresh.request("GET", "/health")).status == 200
    finally:
        await fresh.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_error_code_and_data(world: World, case: Case) -> None:
    connection = await RawConnection.open(world.server.port)
    try:
        basic = "Basic Y2Fyb2w6c2VjcmV0" if case.token == "basic" else None
        reply = await call(connection, case.method, case.params, world.tokens[case.token],
                           authorization=basic)
        assert "result" not in reply, reply
        error = reply["error"]
        assert error["code"] == case.code, error
        assert isinstance(error["message"], str) and error["message"]
        if case.bad_field is not None:
            assert error["data"]["field"] == case.bad_field, error
            assert isinstance(error["data"]["reason"], str) and error["data"]["reason"]
        for key, value in case.data.items():
            assert error["data"][key] == value, error
        await assert_still_serving(connection, world)
    finally:
        await connection.close()


async def test_cursor_ahead_reports_the_head(world: World) -> None:
    connection = await RawConnection.open(world.server.port)
    try:
        carol = world.tokens["carol"]
        head = world.server.service.head
        at_head = await call(connection, "poll", {"since": head, "timeout": 0}, carol)
        assert at_head["result"]["events"] == [] and at_head["result"]["next"] == head
        for since in (head + 1, head + 1000, 2**62):
            ahead = await call(connection, "poll", {"since": since, "timeout": 0}, carol)
            assert ahead["error"]["code"] == -32008
            assert ahead["error"]["data"] == {"head": head}
        await assert_still_serving(connection, world)
    finally:
        await connection.close()


async def test_refused_calls_change_nothing(world: World, users: Users) -> None:
    """A failed send leaves no message, a failed connect no account or session."""
    (bob,) = await users(world.server, "bob")
    before = await bob.call("history", chat=DM)
    connection = await RawConnection.open(world.server.port)
    try:
        for case in CASES:
            await call(connection, case.method, case.params, world.tokens[case.token])
    finally:
        await connection.close()
    assert (await bob.call("history", chat=DM))["messages"] == before["messages"]
    assert (await bob.call("history"))["messages"] == []
    status = await bob.call("status")
    assert status["server"]["users"] == 4  # alice, bob, carol, dave: no "dave" twin etc.


# The id is echoed when it could be read from the request, else null (JSON-RPC 2.0, 5).
@pytest.mark.parametrize(("body", "code", "request_id"), [
    (b"{not json", -32700, None),
    (b'{"jsonrpc": "2.0", "method": "status", "id": 1', -32700, None),
    (b"\xff\xfe\x00", -32700, None),
    (b'{"jsonrpc": "2.0", "method": "status", "id": NaN}', -32700, None),
    (b"[" * 5000 + b"]" * 5000, -32700, None),
    (b"", -32700, None),
    (b"[]", -32600, None),
    (b"1", -32600, None),
    (b'"status"', -32600, None),
    (b'{"jsonrpc": "2.0"}', -32600, None),
    (b'{"jsonrpc": "2.0", "method": "status", "id": {"a": 1}}', -32600, None),
    (b'{"jsonrpc": "1.0", "method": "status", "id": 1}', -32600, 1),
    (b'{"method": "status", "id": 1}', -32600, 1),
    (b'{"jsonrpc": "2.0", "method": 5, "id": 1}', -32600, 1),
    (b'{"jsonrpc": "2.0", "method": "status", "params": "x", "id": 1}', -32600, 1),
])
async def test_protocol_errors_over_http(world: World, body: bytes, code: int,
                                         request_id: int | None) -> None:
    connection = await RawConnection.open(world.server.port)
    try:
        reply = await connection.request("POST", "/rpc", body)
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        decoded = reply.json()
        assert decoded["jsonrpc"] == "2.0" and "result" not in decoded, decoded
        assert decoded["id"] == request_id and decoded["error"]["code"] == code, decoded
        await assert_still_serving(connection, world)
    finally:
        await connection.close()


async def test_invalid_entries_of_a_batch_fail_alone(world: World) -> None:
    connection = await RawConnection.open(world.server.port)
    try:
        batch = [1, {"jsonrpc": "2.0", "method": "status", "id": "ok"},
                 {"jsonrpc": "2.0", "method": "poll", "params": {"limit": 0}, "id": "bad"}]
        reply = await connection.rpc(batch, world.tokens["carol"])
        first, second, third = reply.json()
        assert first["error"]["code"] == -32600 and first["id"] is None
        assert second["id"] == "ok" and second["result"]["me"]["name"] == "carol"
        assert third["id"] == "bad" and third["error"]["data"]["field"] == "limit"
        await assert_still_serving(connection, world)
    finally:
        await connection.close()


async def test_a_batch_after_disconnect_refuses_the_rest(world: World, users: Users) -> None:
    """The token applies to every entry of a batch: once revoked inside it, later entries
    fail with -32001 and do nothing."""
    (erin,) = await users(world.server, "erin")
    batch = [{"jsonrpc": "2.0", "method": "disconnect", "id": 1},
             {"jsonrpc": "2.0", "method": "send", "params": {"text": "ghost"}, "id": 2},
             {"jsonrpc": "2.0", "method": "poll", "params": {"timeout": 0}, "id": 3}]
    answers = json.loads((await erin.post(batch)).body)
    assert answers[0]["result"]["ok"] is True
    assert [answer["error"]["code"] for answer in answers[1:]] == [-32001, -32001]
    (reader,) = await users(world.server, "reader")
    assert (await reader.call("history"))["messages"] == []

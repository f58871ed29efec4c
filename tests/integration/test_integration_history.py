"""History on connect and the `history` method, through HTTP to a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration_helpers import MESSAGE_FIELDS, PASSWORD, ServerProcess, Users
from rpc_testing import CHEAP_HASHER, ClientFactory, RpcClient, ServerFactory
from rpcchat.app import ChatServer


async def send_numbered(client: RpcClient, count: int, chat: str | None = None) -> list[int]:
    """Send m01..mNN; return the message ids."""
    extra = {} if chat is None else {"chat": chat}
    ids = []
    for number in range(1, count + 1):
        result = await client.call("send", text=f"m{number:02d}", **extra)
        ids.append(result["message"]["id"])
    return ids


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [message["text"] for message in messages]


def expected(first: int, last: int) -> list[str]:
    return [f"m{number:02d}" for number in range(first, last + 1)]


async def test_connect_returns_the_newest_20_of_26_oldest_first(
    running_server: ServerFactory, users: Users, rpc_client: ClientFactory
) -> None:
    # Production defaults: --history 20, production password hashing.
    server = await running_server(rate_limit=0)
    (alice,) = await users(server, "alice")
    ids = await send_numbered(alice, 26)

    bob = await rpc_client(server)
    reply = await bob.connect("bob")

    history = reply["history"]
    assert texts(history) == expected(7, 26)
    assert [message["id"] for message in history] == ids[6:]
    for message in history:
        assert set(message) == MESSAGE_FIELDS
        assert message["chat"] == "general" and message["from"] == "alice"
        assert message["parent"] is None and message["file"] is None
        assert isinstance(message["ts"], float)
    # A returning user gets the same view.
    again = await (await rpc_client(server)).connect("alice")
    assert texts(again["history"]) == expected(7, 26)


async def test_history_flag_sets_how_many_connect_returns(
    running_server: ServerFactory, users: Users, rpc_client: ClientFactory
) -> None:
    server = await running_server(history=5, password_hasher=CHEAP_HASHER, rate_limit=0)
    (alice,) = await users(server, "alice")
    await send_numbered(alice, 8)
    reply = await (await rpc_client(server)).connect("bob", PASSWORD)
    assert texts(reply["history"]) == expected(4, 8)


async def test_serve_flags_history_and_max_text_reach_the_methods(
    server_process: Callable[..., ServerProcess], users: Users, rpc_client: ClientFactory
) -> None:
    process = server_process("--history", "3", "--max-text", "12")
    await process.start()
    (alice,) = await users(process.url, "alice")
    await send_numbered(alice, 5)
    reply = await (await rpc_client(process.url)).connect("bob", PASSWORD)
    assert texts(reply["history"]) == expected(3, 5)
    await alice.call("send", text="x" * 12)
    error = await alice.error("send", {"text": "x" * 13})
    assert error["code"] == -32007 and error["data"]["limit"] == 12


async def test_history_flag_zero_returns_no_history(
    running_server: ServerFactory, users: Users
) -> None:
    server = await running_server(history=0, password_hasher=CHEAP_HASHER)
    (alice,) = await users(server, "alice")
    await send_numbered(alice, 3)
    assert (await alice.connect("alice", PASSWORD))["history"] == []


@pytest.mark.parametrize(("asked", "first"), [(0, None), (1, 26), (3, 24), (26, 1), (200, 1)])
async def test_connect_history_param_overrides_the_flag(
    server: ChatServer, users: Users, asked: int, first: int | None
) -> None:
    (alice,) = await users(server, "alice")
    await send_numbered(alice, 26)
    reply = await alice.connect("alice", PASSWORD, history=asked)
    assert texts(reply["history"]) == ([] if first is None else expected(first, 26))


@pytest.mark.parametrize("asked", [-1, 201, 1.5, "3", True])
async def test_connect_history_param_out_of_bounds(
    server: ChatServer, rpc_client: ClientFactory, asked: object
) -> None:
    client = await rpc_client(server)
    error = await client.error("connect", {"name": "alice", "password": PASSWORD,
                                           "history": asked})
    assert error["code"] == -32602
    assert error["data"]["field"] == "history" and error["data"]["reason"]
    # Nothing was created by the refused call: the account starts with this password.
    await client.connect("alice", "another password")


async def test_history_method_pages_backwards_with_before(
    server: ChatServer, users: Users
) -> None:
    (alice,) = await users(server, "alice")
    ids = await send_numbered(alice, 26)

    newest = await alice.call("history", limit=10)
    assert texts(newest["messages"]) == expected(17, 26) and newest["more"] is True
    older = await alice.call("history", limit=10, before=newest["messages"][0]["id"])
    assert texts(older["messages"]) == expected(7, 16) and older["more"] is True
    oldest = await alice.call("history", limit=10, before=older["messages"][0]["id"])
    assert texts(oldest["messages"]) == expected(1, 6) and oldest["more"] is False
    everything = await alice.call("history", chat="general", limit=200)
    assert [message["id"] for message in everything["messages"]] == ids
    assert everything["more"] is False
    default = await alice.call("history")
    assert texts(default["messages"]) == expected(1, 26)  # default limit 50


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"limit": "5"}, "limit"),
    ({"before": 0}, "before"), ({"before": -3}, "before"), ({"chat": 5}, "chat"),
])
async def test_history_bad_params(
    server: ChatServer, users: Users, params: dict[str, Any], field: str
) -> None:
    (alice,) = await users(server, "alice")
    error = await alice.error("history", params)
    assert error["code"] == -32602
    assert error["data"]["field"] == field and error["data"]["reason"]


async def test_history_of_a_direct_chat_for_both_members(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    sent = await alice.call("send", to="bob", text="psst")
    chat_id = sent["message"]["chat"]
    assert chat_id == "dm:alice:bob"
    await bob.call("send", chat=chat_id, text="hi back")
    for member in (alice, bob):
        history = await member.call("history", chat=chat_id)
        assert texts(history["messages"]) == ["psst", "hi back"]
    # A direct message is not in general's history.
    assert texts((await alice.call("history"))["messages"]) == []

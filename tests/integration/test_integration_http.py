"""The HTTP face of the full application: routes, verbs, notifications, batches and the
OpenRPC document, through real sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from integration_helpers import RawConnection, Users, texts_of
from rpcchat.app import ChatServer
from rpcchat.jsonrpc.registry import Registry
from rpcchat.methods import register_all

META_SCHEMA_PATH = Path(__file__).parent.parent / "jsonrpc" / "openrpc_meta_schema.json"
CORE_METHODS = {"connect", "disconnect", "status", "send", "poll", "history", "rpc.discover"}


async def open_connection(server: ChatServer) -> RawConnection:
    return await RawConnection.open(server.port)


async def test_health(server: ChatServer) -> None:
    connection = await open_connection(server)
    try:
        reply = await connection.request("GET", "/health")
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        assert reply.json() == {"status": "ok"}
        # Kept alive: a second request on the same connection.
        assert (await connection.request("GET", "/health")).json() == {"status": "ok"}
    finally:
        await connection.close()


async def test_wrong_verb_and_unknown_path(server: ChatServer) -> None:
    connection = await open_connection(server)
    try:
        get_rpc = await connection.request("GET", "/rpc")
        assert get_rpc.status == 405
        assert [verb.strip() for verb in get_rpc.headers["allow"].split(",")] == ["POST"]
        post_health = await connection.request("POST", "/health", b"{}")
        assert post_health.status == 405 and "GET" in post_health.headers["allow"]
    finally:
        await connection.close()
    connection = await open_connection(server)
    try:
        for path in ("/", "/rpc/", "/nope", "/RPC"):
            assert (await connection.request("GET", path)).status == 404, path
    finally:
        await connection.close()
    connection = await open_connection(server)
    try:
        missing = await connection.request("POST", "/api", b'{"jsonrpc": "2.0"}')
        assert missing.status == 404
    finally:
        await connection.close()


async def test_any_content_type_is_accepted(server: ChatServer, users: Users) -> None:
    (alice,) = await users(server, "alice")
    assert alice.token is not None
    connection = await open_connection(server)
    try:
        body = json.dumps({"jsonrpc": "2.0", "method": "send", "params": {"text": "curl"},
                           "id": 1}).encode()
        for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
            headers = {"Authorization": f"Bearer {alice.token}"}
            if content_type is not None:
                headers["Content-Type"] = content_type
            reply = await connection.request("POST", "/rpc", body, headers)
            assert reply.status == 200 and reply.json()["result"]["message"]["text"] == "curl"
    finally:
        await connection.close()


async def test_notifications_get_204_and_still_run(server: ChatServer, users: Users) -> None:
    (alice,) = await users(server, "alice")
    connection = await open_connection(server)
    try:
        note = {"jsonrpc": "2.0", "method": "send", "params": {"text": "quietly"}}
        reply = await connection.rpc(note, alice.token)
        assert reply.status == 204 and reply.body == b""
        failing = {"jsonrpc": "2.0", "method": "send", "params": {"text": ""}}
        assert (await connection.rpc(failing, alice.token)).status == 204
        unknown = {"jsonrpc": "2.0", "method": "nosuch"}
        assert (await connection.rpc(unknown, alice.token)).status == 204

        batch = [{"jsonrpc": "2.0", "method": "send", "params": {"text": f"n{number}"}}
                 for number in range(3)]
        reply = await connection.rpc(batch, alice.token)
        assert reply.status == 204 and reply.body == b""
        # The connection is still usable, and the notifications did their work in order.
        history = await connection.rpc({"jsonrpc": "2.0", "method": "history", "id": 1},
                                       alice.token)
        texts = [message["text"] for message in history.json()["result"]["messages"]]
        assert texts == ["quietly", "n0", "n1", "n2"]
    finally:
        await connection.close()


async def test_batch_mixing_send_history_and_poll_runs_in_order(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    head = (await bob.call("poll", timeout=0))["next"]
    batch: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "method": "send", "params": {"text": "first"}, "id": 1},
        {"jsonrpc": "2.0", "method": "history", "params": {"limit": 5}, "id": 2},
        {"jsonrpc": "2.0", "method": "send", "params": {"text": "ignored reply"}},
        {"jsonrpc": "2.0", "method": "send", "params": {"to": "bob", "text": "second"},
         "id": "three"},
        {"jsonrpc": "2.0", "method": "history", "params": {"limit": 5}, "id": None},
        {"jsonrpc": "2.0", "method": "poll", "params": {"since": head}, "id": 5},
        {"jsonrpc": "2.0", "method": "send", "params": {"text": ""}, "id": 6},
    ]
    reply = await alice.post(batch)
    assert reply.status == 200
    answers = json.loads(reply.body)
    assert [answer["id"] for answer in answers] == [1, 2, "three", None, 5, 6]
    first, early, second, late, polled, refused = answers
    assert first["result"]["message"]["text"] == "first"
    assert [m["text"] for m in early["result"]["messages"]] == ["first"]
    assert second["result"]["message"]["chat"] == "dm:alice:bob"
    assert [m["text"] for m in late["result"]["messages"]] == ["first", "ignored reply"]
    assert texts_of(polled["result"]["events"]) == ["first", "ignored reply", "second"]
    assert refused["error"]["code"] == -32602
    assert texts_of((await bob.call("poll", since=head, timeout=0))["events"]) == [
        "first", "ignored reply", "second"]


async def test_batch_over_100_entries_runs_nothing(server: ChatServer, users: Users) -> None:
    (alice,) = await users(server, "alice")
    batch = [{"jsonrpc": "2.0", "method": "send", "params": {"text": f"t{n}"}, "id": n}
             for n in range(101)]
    reply = json.loads((await alice.post(batch)).body)
    answers = reply if isinstance(reply, list) else [reply]
    assert [answer["error"]["code"] for answer in answers] == [-32600]
    assert (await alice.call("history"))["messages"] == []
    full = json.loads((await alice.post(batch[:100])).body)
    assert len(full) == 100 and all("result" in answer for answer in full)


async def test_discover_validates_and_lists_every_registered_method(
    server: ChatServer, users: Users
) -> None:
    (alice,) = await users(server, "alice")
    document = await alice.call("rpc.discover")
    anonymous = await alice.response("rpc.discover", token=None)
    assert anonymous["result"] == document  # no token needed, same document

    meta_schema = json.loads(META_SCHEMA_PATH.read_text())
    errors = [error.message for error in
              jsonschema.Draft7Validator(meta_schema).iter_errors(document)]
    assert errors == []
    for method in document["methods"]:
        for descriptor in [*method["params"], method["result"]]:
            jsonschema.Draft7Validator.check_schema(descriptor["schema"])

    registry = Registry()
    register_all(registry, server.service, server.config)
    registered = {spec.name for spec in registry}
    listed = [method["name"] for method in document["methods"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == registered | {"rpc.discover"}
    assert CORE_METHODS <= set(listed)


async def test_every_core_result_carries_server_time(server: ChatServer, users: Users) -> None:
    alice, bob = await users(server, "alice", "bob")
    results = [
        await alice.connect("alice"),
        await alice.call("status"),
        await alice.call("send", text="hi"),
        await alice.call("poll", timeout=0),
        await alice.call("history"),
        await bob.call("disconnect"),
    ]
    for result in results:
        assert isinstance(result["server_time"], float)
    assert results[1]["server"]["users"] == 2
    assert results[1]["server"]["online"] >= 1 and results[1]["server"]["uptime"] >= 0

"""Concurrency abuse: a crowd of connections that send half a request head and vanish with a
reset while valid requests go on; many polls of one token at once (each newer one ends the
older); clients that park a poll and then close or reset their socket."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from random import Random
from typing import Any

import pytest

from robustness_http import (
    FUZZ_LIMITS, check_responses, exchange, health_ok, post_rpc, reset_on_close,
)
from robustness_rpc import CALL_TIMEOUT, PASSWORD, World, response_problems
from rpc_testing import ClientFactory, RpcClient
from rpcchat.app import ChatServer

SEED = 4_040
VANISHING = 200
VALID_EVERY = 5                     # one valid request per this many vanishing connections
PARALLEL_POLLS = 20
CONDITION_DEADLINE = 5.0
VALID_REQUEST = post_rpc(extra=b"Connection: close\r\n")


async def until(condition: Callable[[], bool], what: str,
                deadline: float = CONDITION_DEADLINE) -> None:
    """A short loop on a server counter the server exposes no event for."""
    give_up = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"not reached within {deadline} s: {what}")
        await asyncio.sleep(0.002)


async def valid_status_call(server: ChatServer) -> list[str]:
    """Problems with one complete request made during the storm (empty: answered 200)."""
    result = await exchange(server.port, [VALID_REQUEST], half_close=False, bound=5.0)
    check = check_responses(result.received, reset=result.reset)
    problems = list(check.problems)
    statuses = [response.status for response in check.responses]
    if statuses != [200]:
        problems.append(f"valid request answered {statuses}: {result.received[:200]!r}")
    elif "result" not in json.loads(check.responses[0].body):
        problems.append(f"valid request failed: {check.responses[0].body[:200]!r}")
    return problems


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_half_head(server: ChatServer, rng: Random) -> Stream:
    """A connection that sent a strict prefix of a request head and nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head_end = VALID_REQUEST.index(b"\r\n\r\n")
    writer.write(VALID_REQUEST[:rng.randint(1, head_end + 2)])
    await writer.drain()
    return reader, writer


async def test_two_hundred_half_heads_reset_amid_valid_requests(
        fuzz_server: ChatServer) -> None:
    rng = Random(SEED)
    openers = [open_half_head(fuzz_server, rng) for _ in range(VANISHING)]
    valid_before = [valid_status_call(fuzz_server) for _ in range(VANISHING // VALID_EVERY)]
    opening = asyncio.gather(*openers)
    checked = await asyncio.gather(*valid_before)
    writers = [writer for _, writer in await opening]
    problems = [problem for result in checked for problem in result]

    async def vanish(writer: asyncio.StreamWriter) -> list[str]:
        await asyncio.sleep(0)
        reset_on_close(writer)
        return []

    rng.shuffle(writers)
    storm = [vanish(writer) for writer in writers]
    during = [valid_status_call(fuzz_server) for _ in range(VANISHING // VALID_EVERY)]
    mixed = storm + during
    rng.shuffle(mixed)
    for result in await asyncio.gather(*mixed):
        problems.extend(result)
    assert not problems, problems[:10]
    await until(lambda: fuzz_server.http.connections == 0, "every connection closed")
    assert await health_ok(fuzz_server.port) is None


async def test_silent_half_heads_are_refused_at_the_header_deadline(
        fuzz_server: ChatServer) -> None:
    """Connections that stop mid-head (and stay open) are answered 408 or closed once the
    head deadline passes, all of them, while a valid request is served at once."""
    rng = Random(SEED + 1)
    streams = await asyncio.gather(*(open_half_head(fuzz_server, rng) for _ in range(50)))
    assert not await valid_status_call(fuzz_server)
    bound = FUZZ_LIMITS.header_timeout + 2.0

    async def outcome(stream: Stream) -> list[int]:
        reader, writer = stream
        received = await asyncio.wait_for(reader.read(), bound)
        writer.transport.abort()
        check = check_responses(received, reset=False)
        assert not check.problems, check.problems
        return [response.status for response in check.responses]

    statuses = await asyncio.gather(*(outcome(stream) for stream in streams))
    assert all(status in ([], [408]) for status in statuses), statuses
    await until(lambda: fuzz_server.http.connections == 0, "every connection closed")


async def poll_head(client: RpcClient) -> int:
    """The newest seq the client can see, acknowledged: a poll without `since` parks."""
    result = await client.call("poll", timeout=0, limit=500)
    while result["more"]:
        result = await client.call("poll", since=result["next"], timeout=0, limit=500)
    head: int = result["next"]
    await client.call("poll", since=head, timeout=0)   # acknowledges: the cursor is the head
    return head


async def test_parallel_polls_of_one_token_release_each_other(
        world: World, rpc_client: ClientFactory) -> None:
    server = world.server
    since = await poll_head(world.alice)
    clients = [await rpc_client(server, world.alice.token, timeout=CALL_TIMEOUT)
               for _ in range(PARALLEL_POLLS)]
    started = time.monotonic()
    polls = [asyncio.create_task(client.call("poll", since=since, timeout=30))
             for client in clients]
    # Each poll that arrives ends the one parked before it: all but the newest return.
    await until(lambda: sum(task.done() for task in polls) >= PARALLEL_POLLS - 1
                and server.service.parked_polls <= 1, "all but one poll released")
    await world.alice.call("poll", since=since, timeout=0)     # ends the last one
    results = await asyncio.wait_for(asyncio.gather(*polls), CONDITION_DEADLINE)
    assert time.monotonic() - started < CONDITION_DEADLINE
    assert all(result["events"] == [] and result["next"] == since for result in results), \
        results
    assert server.service.parked_polls == 0


async def test_many_polls_of_one_token_in_one_batch_do_not_wait(world: World) -> None:
    since = await poll_head(world.alice)
    batch = [{"jsonrpc": "2.0", "method": "poll", "params": {"since": since, "timeout": 60},
              "id": number} for number in range(100)]
    started = time.monotonic()
    reply = await world.alice.post(batch)
    assert time.monotonic() - started < 2.0
    answers = json.loads(reply.body)
    assert len(answers) == 100 and all(answer["result"]["events"] == [] for answer in answers)
    assert world.server.service.parked_polls == 0


def poll_request(token: str, timeout: float = 30) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "method": "poll", "params": {"timeout": timeout},
                       "id": 1}).encode()
    return post_rpc(body, b"Authorization: Bearer %s\r\n" % token.encode())


def close_fin(writer: asyncio.StreamWriter) -> None:
    writer.close()


def close_half(writer: asyncio.StreamWriter) -> None:
    writer.write_eof()


@pytest.mark.parametrize("vanish", [close_fin, reset_on_close, close_half],
                         ids=["fin", "reset", "half-close"])
async def test_poll_of_a_vanished_client_is_released(
        world: World, vanish: Callable[[asyncio.StreamWriter], None]) -> None:
    server = world.server
    await poll_head(world.alice)          # nothing unread: the poll below parks
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(poll_request(world.alice.token or ""))
    await writer.drain()
    await until(lambda: server.service.parked_polls == 1, "the poll parked")
    vanish(writer)
    await until(lambda: server.service.parked_polls == 0, "the parked poll released")
    writer.transport.abort()
    sent = await world.alice.call("send", text="still here", chat=world.group)
    assert sent["message"]["text"] == "still here"
    result = await world.alice.call("poll", timeout=1)
    assert any(event["type"] == "message" for event in result["events"])


async def test_crowd_of_parked_polls_all_released_when_clients_reset(
        world: World, rpc_client: ClientFactory) -> None:
    """Fifty tokens (one user logged in fifty times) each park a poll, then every socket is
    reset: no poll stays parked, and the user's next poll works."""
    server = world.server
    tokens: list[Any] = []
    for _ in range(50):
        login = await rpc_client(server)
        tokens.append((await login.connect("alice", PASSWORD))["token"])
    await poll_head(world.alice)
    writers = []
    for token in tokens:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(poll_request(token))
        writers.append(writer)
    await until(lambda: server.service.parked_polls == len(tokens), "every poll parked")
    for writer in writers:
        reset_on_close(writer)
    await until(lambda: server.service.parked_polls == 0, "every parked poll released")
    assert (await world.alice.call("poll", timeout=0))["events"] == []
    assert await health_ok(server.port) is None


def codes(answers: list[dict[str, Any]]) -> list[int | None]:
    """Each answer's error code, None for a result; a -32603 or an off-contract answer fails
    at once."""
    found: list[int | None] = []
    for answer in answers:
        assert not response_problems(answer, answer.get("id")), answer
        found.append((answer.get("error") or {}).get("code"))
    return found


async def twenty_at_once(clients: list[RpcClient], method: str,
                         params: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(client.response(method, params(number))
                                       for number, client in enumerate(clients))))


async def test_identical_writes_at_once_take_effect_once(
        world: World, rpc_client: ClientFactory) -> None:
    """The same write from twenty connections at the same moment: exactly one takes effect,
    the others get the contract's answer for a repeat."""
    server, token = world.server, world.alice.token
    clients = [await rpc_client(server, token, timeout=CALL_TIMEOUT) for _ in range(20)]
    anonymous = [await rpc_client(server, timeout=CALL_TIMEOUT) for _ in range(20)]

    logins = await twenty_at_once(anonymous, "connect", lambda number: {
        "name": ["Zed", "ZED", "zed", "zEd"][number % 4], "password": f"pass-{number}"})
    assert sorted(codes(logins), key=str) == [-32001] * 19 + [None]

    sends = await twenty_at_once(clients, "send", lambda _: {
        "text": "once", "chat": world.group, "client_msg_id": "same-send"})
    assert codes(sends) == [None] * 20
    assert len({answer["result"]["message"]["id"] for answer in sends}) == 1
    history = await world.alice.call("history", chat=world.group, limit=200)
    assert [message["text"] for message in history["messages"]].count("once") == 1

    cancels = await twenty_at_once(clients, "scheduled.cancel",
                                   lambda _: {"id": world.scheduled_id})
    assert sorted(codes(cancels), key=str) == [-32004] * 19 + [None]

    puts = await twenty_at_once(clients, "file.put", lambda number: {
        "upload_id": world.upload_id, "offset": 0, "data": "aGVsbG8="})
    assert sorted(codes(puts), key=str) == [-32004] * 19 + [None]
    assert all(answer["error"]["data"] == {"offset": 5} for answer in puts if "error" in answer)

    invites = await twenty_at_once(clients, "chat.invite",
                                   lambda _: {"chat": world.group, "user": "carol"})
    assert sorted(codes(invites), key=str) == [-32004] * 19 + [None]
    assert await health_ok(server.port) is None


async def test_client_that_never_reads_is_dropped(
        fuzz_server: ChatServer, rpc_client: ClientFactory) -> None:
    """Two hundred pipelined requests for 400 KB answers from a client with a tiny receive
    buffer that reads nothing: the server keeps serving others and drops that client once
    `write_timeout` passes, instead of buffering every answer."""
    alice = await rpc_client(fuzz_server, timeout=CALL_TIMEOUT)
    await alice.connect("alice", PASSWORD)
    for number in range(100):
        await alice.call("send", text=f"{number} " + "x" * 4000)
    body = json.dumps({"jsonrpc": "2.0", "method": "history", "params": {"limit": 200},
                       "id": 1}).encode()
    request = post_rpc(body, b"Authorization: Bearer %s\r\n" % (alice.token or "").encode())
    await alice.close()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", fuzz_server.port))
    _, writer = await asyncio.open_connection(sock=sock)
    writer.write(request * 200)
    await writer.drain()
    await until(lambda: fuzz_server.http.connections == 1, "only the stalled client is left")
    assert await health_ok(fuzz_server.port) is None
    await until(lambda: fuzz_server.http.connections == 0, "the stalled client dropped",
                deadline=FUZZ_LIMITS.write_timeout + 2.0)
    writer.transport.abort()
    assert await health_ok(fuzz_server.port) is None

"""The server as its own process, killed with SIGKILL right after answering: nothing it
answered is lost, tokens stay valid, seqs are never reused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from integration_helpers import AwayScenario, ServerProcess, Users, texts_of
from rpc_testing import ClientFactory, RpcClient, RpcFailure
from rpcchat.transport.client import HttpClientError


async def test_an_answered_send_survives_sigkill(
    server_process: Callable[..., ServerProcess], users: Users, rpc_client: ClientFactory
) -> None:
    process = server_process()
    await process.start()
    alice, bob, carol = await users(process.url, "alice", "bob", "carol")
    await carol.call("disconnect")
    cursor = (await bob.call("poll", timeout=0))["next"]
    await bob.call("poll", since=cursor, timeout=0)  # acknowledged: the read marker is here

    sent = await alice.call("send", text="last words")
    await process.kill()  # at once: no flush, no shutdown of any kind
    await process.start()

    alice_again = await rpc_client(process.url, alice.token)
    bob_again = await rpc_client(process.url, bob.token)
    history = await bob_again.call("history")
    assert history["messages"][-1] == sent["message"]
    from_cursor = await bob_again.call("poll", timeout=0)  # no since: from the read cursor
    assert texts_of(from_cursor["events"]) == ["last words"]
    assert from_cursor["events"][0]["data"] == sent["message"]
    assert from_cursor["unread"] == 1

    carol_again = await rpc_client(process.url, carol.token)
    assert (await carol_again.error("status"))["code"] == -32001  # revoked stays revoked

    after = await alice_again.call("send", text="after the crash")
    assert after["message"]["id"] > sent["message"]["id"]
    newer = await bob_again.call("poll", since=from_cursor["next"], timeout=5)
    assert texts_of(newer["events"]) == ["after the crash"]
    assert newer["events"][0]["seq"] > from_cursor["events"][0]["seq"]


async def test_unread_and_acknowledgements_survive_sigkill(
    server_process: Callable[..., ServerProcess], users: Users, rpc_client: ClientFactory
) -> None:
    process = server_process()
    await process.start()
    alice, bob = await users(process.url, "alice", "bob")
    scenario = AwayScenario()
    await scenario.while_away(alice, bob)  # ends with bob's acknowledgement answered
    await process.kill()
    await process.start()

    url = process.url
    await scenario.check_return(await rpc_client(url, scenario.alice_token),
                                await rpc_client(url),
                                await rpc_client(url, scenario.bob_token))


async def test_a_retry_after_sigkill_returns_the_first_message(
    server_process: Callable[..., ServerProcess], users: Users, rpc_client: ClientFactory
) -> None:
    process = server_process()
    await process.start()
    alice, bob = await users(process.url, "alice", "bob")
    first = await alice.call("send", to="bob", text="exactly once", client_msg_id="k-1")
    await process.kill()
    await process.start()

    alice_again = await rpc_client(process.url, alice.token)
    retry = await alice_again.call("send", to="bob", text="exactly once", client_msg_id="k-1")
    assert retry["message"] == first["message"]
    history = await alice_again.call("history", chat="dm:alice:bob")
    assert [message["id"] for message in history["messages"]] == [first["message"]["id"]]


async def test_every_answered_send_of_a_burst_survives_sigkill(
    server_process: Callable[..., ServerProcess], users: Users, rpc_client: ClientFactory
) -> None:
    process = server_process()
    await process.start()
    senders = await users(process.url, "ann", "ben", "cat", "dan")
    answered: list[dict[str, Any]] = []
    enough = asyncio.Event()

    async def keep_sending(client: RpcClient) -> None:
        for number in range(1000):
            try:
                reply = await client.call("send", text=f"{client.user}:{number}")
            except (HttpClientError, RpcFailure):
                return  # the server is gone: this one was not answered
            answered.append(reply["message"])
            if len(answered) >= 40:
                enough.set()

    bursts = [asyncio.create_task(keep_sending(client)) for client in senders]
    await enough.wait()
    await process.kill()  # sends are in flight right now
    await asyncio.gather(*bursts)
    await process.start()

    reader = await rpc_client(process.url, senders[0].token)
    history = (await reader.call("history", limit=200))["messages"]
    stored = {message["id"]: message for message in history}
    for message in answered:
        assert stored.get(message["id"]) == message
    ids = [message["id"] for message in history]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    events = (await reader.call("poll", since=0, timeout=0, limit=500))["events"]
    seqs = [event["seq"] for event in events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    after = await reader.call("send", text="after")
    assert after["message"]["id"] > max(ids)

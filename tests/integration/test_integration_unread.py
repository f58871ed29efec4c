"""Unread messages (general and private) reach a user who comes back: after a reconnect,
after a graceful restart of the server, with `unread` counted right."""

from __future__ import annotations

from integration_helpers import AwayScenario, Users
from rpc_testing import CHEAP_HASHER, ClientFactory, ServerFactory, server_url
from rpcchat.app import ChatServer


async def test_reconnect_gets_every_unread_message_once_in_order(
    server: ChatServer, users: Users, rpc_client: ClientFactory
) -> None:
    alice, bob = await users(server, "alice", "bob")
    scenario = AwayScenario()
    await scenario.while_away(alice, bob)
    await scenario.check_return(alice, await rpc_client(server), bob)


async def test_unread_survives_a_graceful_restart(
    running_server: ServerFactory, users: Users, rpc_client: ClientFactory
) -> None:
    first = await running_server(password_hasher=CHEAP_HASHER, rate_limit=0)
    alice, bob = await users(first, "alice", "bob")
    scenario = AwayScenario()
    await scenario.while_away(alice, bob)
    await first.close()

    second = await running_server(data_dir=first.config.data_dir,
                                  password_hasher=CHEAP_HASHER, rate_limit=0)
    url = server_url(second)
    await scenario.check_return(await rpc_client(url, scenario.alice_token),
                                await rpc_client(url),
                                await rpc_client(url, scenario.bob_token))


async def test_unread_counts_only_others_messages(
    server: ChatServer, users: Users
) -> None:
    alice, bob = await users(server, "alice", "bob")
    start = (await bob.call("poll", timeout=0))["next"]
    await bob.call("poll", since=start, timeout=0)
    await bob.call("send", text="from bob")
    await bob.call("send", to="alice", text="bob to alice")
    assert (await bob.call("status"))["me"]["chats"][0]["unread"] == 0
    await alice.call("send", text="from alice")
    await alice.call("send", to="bob", text="alice to bob")
    result = await bob.call("poll", since=start, timeout=0)
    assert result["unread"] == 2
    assert (await bob.connect("bob"))["unread"] == 2

"""A graceful restart on the same data dir changes nothing a user can observe."""

from __future__ import annotations

import asyncio
import time


from integration_helpers import PASSWORD, Users, wait_parked
from rpc_testing import CHEAP_HASHER, ClientFactory, ServerFactory, server_url


async def test_history_on_connect_and_tokens_after_a_restart(
    running_server: ServerFactory, users: Users, rpc_client: ClientFactory
) -> None:
    first = await running_server(password_hasher=CHEAP_HASHER, rate_limit=0)
    alice, bob, carol = await users(first, "alice", "bob", "carol")
    sent = [(await alice.call("send", text=f"m{number:02d}"))["message"]
            for number in range(1, 27)]
    await alice.call("send", to="bob", text="private")
    assert (await carol.call("disconnect"))["ok"] is True
    before = await bob.call("status")
    await first.close()

    second = await running_server(data_dir=first.config.data_dir,
                                  password_hasher=CHEAP_HASHER, rate_limit=0)
    url = server_url(second)
    bob_again = await rpc_client(url, bob.token)
    after = await bob_again.call("status")
    assert after["me"] == before["me"]
    newcomer = await rpc_client(url)
    reply = await newcomer.connect("dave", PASSWORD)
    assert reply["history"] == sent[6:]  # the newest 20, oldest first, unchanged
    carol_again = await rpc_client(url, carol.token)
    assert (await carol_again.error("status"))["code"] == -32001  # revoked stays revoked
    assert (await carol_again.error("poll", {"timeout": 0}))["code"] == -32001
    # The account itself is fine: carol logs in again with her password only.
    assert (await carol_again.error("connect", {"name": "carol", "password": "x"}))[
        "code"] == -32001
    await carol_again.connect("carol", PASSWORD)
    dm = await bob_again.call("history", chat="dm:alice:bob")
    assert [message["text"] for message in dm["messages"]] == ["private"]


async def test_graceful_close_answers_a_parked_poll_at_once(
    running_server: ServerFactory, users: Users
) -> None:
    server = await running_server(password_hasher=CHEAP_HASHER)
    (alice,) = await users(server, "alice")
    head = (await alice.call("poll", timeout=0))["next"]
    waiting = asyncio.create_task(alice.call("poll", since=head, timeout=30))
    await wait_parked(server, 1)
    started = time.monotonic()
    await server.close()
    closing_took = time.monotonic() - started
    answer = (await asyncio.gather(waiting, return_exceptions=True))[0]
    assert closing_took < 0.3
    assert not isinstance(answer, BaseException), answer
    assert answer["events"] == []

"""The rate limit (--rate-limit per --rate-period): messages in general per user."""

from __future__ import annotations

import base64
import hashlib

from features_helpers import FeatureChat
from rpc_testing import RATE_LIMITED, RpcClient, error_of

START = 1_700_000_000.0
PERIOD_END = 1_700_002_800.0  # periods of 3600 s are aligned to the epoch


async def send_n(client: RpcClient, count: int, **params: object) -> None:
    for number in range(count):
        await client.call("send", text=f"message {number}", **params)


async def test_over_the_limit_is_refused_with_retry_after(chat: FeatureChat) -> None:
    await chat.start(rate_limit=3, rate_period=3600)
    alice, = await chat.users("alice")
    await send_n(alice, 3)
    error = await error_of(alice, "send", text="one too many")
    assert error["code"] == RATE_LIMITED
    assert error["data"] == {"retry_after": PERIOD_END - START, "resets_at": PERIOD_END}
    rate = (await alice.call("status"))["me"]["rate"]
    assert rate == {"limit": 3, "remaining": 0, "resets_at": PERIOD_END}


async def test_status_counts_down(chat: FeatureChat) -> None:
    await chat.start(rate_limit=3, rate_period=3600)
    alice, bob = await chat.users("alice", "bob")
    assert (await alice.call("status"))["me"]["rate"]["remaining"] == 3
    await send_n(alice, 2)
    assert (await alice.call("status"))["me"]["rate"]["remaining"] == 1
    assert (await bob.call("status"))["me"]["rate"]["remaining"] == 3  # per user


async def test_the_count_resets_at_the_end_of_the_period(chat: FeatureChat) -> None:
    await chat.start(rate_limit=2, rate_period=3600)
    alice, = await chat.users("alice")
    await send_n(alice, 2)
    chat.clock.advance(PERIOD_END - START - 1)
    assert (await error_of(alice, "send", text="x"))["code"] == RATE_LIMITED
    chat.clock.advance(1)
    await alice.call("send", text="new period")
    rate = (await alice.call("status"))["me"]["rate"]
    assert rate == {"limit": 2, "remaining": 1, "resets_at": PERIOD_END + 3600}


async def test_comments_in_general_count(chat: FeatureChat) -> None:
    await chat.start(rate_limit=2, rate_period=3600)
    alice, bob = await chat.users("alice", "bob")
    parent = (await bob.call("send", text="parent"))["message"]
    await alice.call("comment", message_id=parent["id"], text="one")
    await alice.call("send", text="two")
    error = await error_of(alice, "comment", message_id=parent["id"], text="three")
    assert error["code"] == RATE_LIMITED


async def test_direct_and_group_chats_are_not_limited(chat: FeatureChat) -> None:
    await chat.start(rate_limit=1, rate_period=3600)
    alice, bob = await chat.users("alice", "bob")
    await alice.call("send", text="general")
    await send_n(alice, 5, to="bob")
    group = (await alice.call("chat.create", name="team", members=["bob"]))["chat"]
    await send_n(alice, 5, chat=group["id"])
    direct = (await alice.call("send", text="dm", to="bob"))["message"]
    await alice.call("comment", message_id=direct["id"], text="comment in a dm")
    assert (await error_of(alice, "send", text="general again"))["code"] == RATE_LIMITED


async def test_a_retry_is_not_counted_again(chat: FeatureChat) -> None:
    await chat.start(rate_limit=2, rate_period=3600)
    alice, = await chat.users("alice")
    first = (await alice.call("send", text="x", client_msg_id="retry-me"))["message"]
    again = (await alice.call("send", text="x", client_msg_id="retry-me"))["message"]
    assert again == first
    assert (await alice.call("status"))["me"]["rate"]["remaining"] == 1
    await alice.call("send", text="second")
    # Even at the limit, a retry of a message that was sent returns it.
    assert (await alice.call("send", text="x", client_msg_id="retry-me"))["message"] == first


async def test_the_count_survives_a_restart(chat: FeatureChat) -> None:
    await chat.start(rate_limit=2, rate_period=3600)
    alice, = await chat.users("alice")
    await send_n(alice, 2)
    await chat.restart()
    alice = await chat.reconnect(alice)
    assert (await alice.call("status"))["me"]["rate"]["remaining"] == 0
    assert (await error_of(alice, "send", text="x"))["code"] == RATE_LIMITED
    chat.clock.advance(PERIOD_END - START)
    await chat.restart()
    alice = await chat.reconnect(alice)
    await alice.call("send", text="next period")


async def test_zero_turns_the_limit_off(chat: FeatureChat) -> None:
    await chat.start(rate_limit=0)
    alice, = await chat.users("alice")
    await send_n(alice, 30)
    assert (await alice.call("status"))["me"]["rate"] == {
        "limit": 0, "remaining": None, "resets_at": None}


async def test_file_messages_in_general_count(chat: FeatureChat) -> None:
    await chat.start(rate_limit=1, rate_period=3600)
    alice, = await chat.users("alice")
    await alice.call("send", text="the only one")
    data = b"hello"
    upload = await alice.call("file.begin", name="a.txt", size=len(data),
                              sha256=hashlib.sha256(data).hexdigest())
    await alice.call("file.put", upload_id=upload["upload_id"], offset=0,
                     data=base64.b64encode(data).decode())
    error = await error_of(alice, "file.finish", upload_id=upload["upload_id"])
    assert error["code"] == RATE_LIMITED

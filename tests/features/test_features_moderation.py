"""report(user, reason?) and bans (--report-threshold, --ban-duration)."""

from __future__ import annotations

import base64

from features_helpers import FeatureChat, events, of_type
from rpc_testing import BANNED, INVALID_PARAMS, NOT_FOUND, error_of

START = 1_700_000_000.0


async def test_a_report_warns_only_the_reported_user(chat: FeatureChat) -> None:
    await chat.start(report_threshold=3)
    alice, bob, carol = await chat.users("alice", "bob", "carol")
    result = await bob.call("report", user="alice", reason="rude")
    assert result == {"user": "alice", "warnings": 1, "banned_until": None,
                      "server_time": START}
    assert of_type(await events(alice), "user.warned") == [{"warnings": 1, "threshold": 3}]
    for other in (bob, carol):  # reporters stay anonymous; others see nothing
        assert of_type(await events(other), "user.warned") == []
    me = (await alice.call("status"))["me"]
    assert me["warnings"] == 1 and me["banned_until"] is None


async def test_each_reporter_counts_once(chat: FeatureChat) -> None:
    await chat.start(report_threshold=3)
    alice, bob = await chat.users("alice", "bob")
    await bob.call("report", user="alice")
    again = await bob.call("report", user="ALICE", reason="still rude")
    assert again["warnings"] == 1 and again["user"] == "alice"
    assert len(of_type(await events(alice), "user.warned")) == 1


async def test_bad_reports(chat: FeatureChat) -> None:
    await chat.start()
    alice, = await chat.users("alice")
    error = await error_of(alice, "report", user="alice")
    assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "user"
    assert (await error_of(alice, "report", user="nobody"))["code"] == NOT_FOUND
    for params, field in (({}, "user"), ({"user": ""}, "user"), ({"user": 7}, "user"),
                          ({"user": "x", "reason": 5}, "reason"),
                          ({"user": "x", "reason": "r" * 1001}, "reason")):
        error = await alice.error("report", params)
        assert error["code"] == INVALID_PARAMS and error["data"]["field"] == field, params


async def test_the_threshold_bans_every_kind_of_message(chat: FeatureChat) -> None:
    await chat.start(report_threshold=2, ban_duration=100)
    alice, bob, carol = await chat.users("alice", "bob", "carol")
    parent = (await bob.call("send", text="hi"))["message"]
    await bob.call("report", user="alice")
    result = await carol.call("report", user="alice")
    until = START + 100
    assert result["warnings"] == 0 and result["banned_until"] == until
    assert of_type(await events(alice), "user.banned") == [{"until": until}]
    assert of_type(await events(carol), "user.banned") == []
    attempts = [("send", {"text": "x"}), ("send", {"text": "x", "to": "bob"}),
                ("comment", {"message_id": parent["id"], "text": "x"}),
                ("send", {"text": "x", "delay": 5})]
    for method, params in attempts:
        error = await alice.error(method, params)
        assert error["code"] == BANNED and error["data"] == {"until": until}, params
    data = b"file"
    upload = await alice.call("file.begin", name="f.txt", size=len(data))
    await alice.call("file.put", upload_id=upload["upload_id"], offset=0,
                     data=base64.b64encode(data).decode())
    error = await error_of(alice, "file.finish", upload_id=upload["upload_id"])
    assert error["code"] == BANNED and error["data"] == {"until": until}
    me = (await alice.call("status"))["me"]
    assert me["warnings"] == 0 and me["banned_until"] == until
    await alice.call("history")  # reading is still allowed
    await alice.call("report", user="bob")  # and so is reporting


async def test_after_the_ban_the_count_starts_again(chat: FeatureChat) -> None:
    await chat.start(report_threshold=2, ban_duration=100)
    alice, bob, carol = await chat.users("alice", "bob", "carol")
    await bob.call("report", user="alice")
    await carol.call("report", user="alice")
    during = await bob.call("report", user="alice")  # while banned: not counted
    assert during["warnings"] == 0 and during["banned_until"] == START + 100
    chat.clock.advance(100)
    await alice.call("send", text="I am back")
    me = (await alice.call("status"))["me"]
    assert me["warnings"] == 0 and me["banned_until"] is None
    again = await bob.call("report", user="alice")  # the same reporter counts again
    assert again["warnings"] == 1 and again["banned_until"] is None
    second_ban = await carol.call("report", user="alice")
    assert second_ban["banned_until"] == START + 200


async def test_warnings_and_bans_survive_a_restart(chat: FeatureChat) -> None:
    await chat.start(report_threshold=3, ban_duration=100)
    alice, bob, carol, dave = await chat.users("alice", "bob", "carol", "dave")
    await bob.call("report", user="alice")
    await carol.call("report", user="alice")
    await chat.restart()
    alice, bob, dave = [await chat.reconnect(c) for c in (alice, bob, dave)]
    assert (await alice.call("status"))["me"]["warnings"] == 2
    assert (await bob.call("report", user="alice"))["warnings"] == 2  # still counted once
    banned = await dave.call("report", user="alice")
    assert banned["banned_until"] == START + 100
    await chat.restart()
    alice = await chat.reconnect(alice)
    assert (await error_of(alice, "send", text="x"))["code"] == BANNED
    assert (await alice.call("status"))["me"]["banned_until"] == START + 100
    chat.clock.advance(100)
    await chat.restart()
    alice = await chat.reconnect(alice)
    await alice.call("send", text="free again")
    assert (await alice.call("status"))["me"]["warnings"] == 0

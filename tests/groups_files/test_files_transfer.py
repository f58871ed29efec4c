"""Files through real sockets: the 5 MiB limit, resuming, access, names, chunk rules,
finishing, expiry of idle uploads and of files with their messages, and restarts."""

from __future__ import annotations

import os
from pathlib import Path

from gf_support import (
    MIB, People, StartServer, b64, begin, download, put_all, sha256, upload,
)
from rpc_testing import (
    CONFLICT, FORBIDDEN, INVALID_PARAMS, NOT_FOUND, TOO_LARGE, error_of, events_since,
)
from rpcchat.clock import ManualClock

LIMIT = 5 * MIB


def stored_files(server_dir: Path) -> set[str]:
    return {entry.name for entry in (server_dir / "files").iterdir()}


async def test_exactly_five_mib_round_trip_and_one_byte_more_refused(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    data = os.urandom(LIMIT)
    message = await upload(alice, data, "big.bin", to="bob")
    assert message["file"]["size"] == LIMIT
    assert message["file"]["sha256"] == sha256(data)
    assert sha256(await download(bob, message["file"]["id"])) == sha256(data)

    error = await error_of(alice, "file.begin", name="huge.bin", size=LIMIT + 1)
    assert error["code"] == TOO_LARGE and error["data"] == {"limit": LIMIT}


async def test_interrupted_upload_resumes_across_a_restart(start_server: StartServer,
                                                           people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    group = (await alice.call("chat.create", name="Drop", members=["bob"]))["chat"]["id"]
    data = os.urandom(3 * MIB + 12345)
    started = await begin(alice, data, "video.mp4", content_type="video/mp4",
                          sha256=sha256(data))
    assert started["offset"] == 0 and started["chunk_size"] == 256 * 1024
    half = await put_all(alice, started, data, stop=len(data) // 2)

    await server.close()  # the interruption
    server = await start_server(data_dir=server.config.data_dir)
    await people.move_to(server)
    alice, bob = people["alice"], people["bob"]
    # A client that lost track starts at 0 and is told where to go on.
    error = await error_of(alice, "file.put", upload_id=started["upload_id"], offset=0,
                           data=b64(data[:100]))
    assert error["code"] == CONFLICT and error["data"] == {"offset": half}
    empty = await error_of(alice, "file.put", upload_id=started["upload_id"], offset=0,
                           data="")
    assert empty["data"] == {"offset": half}
    await put_all(alice, started, data, start=error["data"]["offset"])
    # A retried chunk (its answer lost) is a conflict at the end, not a second copy.
    retry = await error_of(alice, "file.put", upload_id=started["upload_id"],
                           offset=len(data) - 10, data=b64(data[-10:]))
    assert retry["data"] == {"offset": len(data)}
    message = (await alice.call("file.finish", upload_id=started["upload_id"],
                                chat=group))["message"]
    assert message["file"] == {"id": started["upload_id"], "name": "video.mp4",
                               "size": len(data), "content_type": "video/mp4",
                               "sha256": sha256(data)}
    events, _ = await events_since(bob)
    assert [e["data"]["file"] for e in events if e["type"] == "message"] == [message["file"]]

    await server.close()
    server = await start_server(data_dir=server.config.data_dir)
    await people.move_to(server)
    assert sha256(await download(people["bob"], message["file"]["id"])) == sha256(data)
    # A repeated finish (the first answer lost) returns the same message.
    again = await people["alice"].call("file.finish", upload_id=started["upload_id"],
                                       chat=group)
    assert again["message"] == message
    assert (await error_of(people["bob"], "file.finish",
                           upload_id=started["upload_id"]))["code"] == NOT_FOUND


async def test_who_may_read_a_file(start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob, carol = await people.login(server, "alice", "bob", "carol")
    direct = await upload(alice, b"for bob only", "note.txt", to="bob")
    assert await download(bob, direct["file"]["id"]) == b"for bob only"
    assert await download(alice, direct["file"]["id"]) == b"for bob only"
    error = await error_of(carol, "file.get", file_id=direct["file"]["id"])
    assert error["code"] == FORBIDDEN
    assert (await error_of(carol, "file.get", file_id="A" * 24))["code"] == NOT_FOUND
    assert (await error_of(carol, "file.get", file_id="../../etc/passwd"))["code"] \
        == NOT_FOUND
    # An unfinished upload is no file yet, not even for its uploader.
    staged = await begin(alice, b"abc")
    assert (await error_of(alice, "file.get", file_id=staged["upload_id"]))["code"] \
        == NOT_FOUND
    # The uploader keeps access after leaving the chat; the one who left loses it.
    group = (await alice.call("chat.create", name="G", members=["bob"]))["chat"]["id"]
    shared = await upload(bob, b"bob's file", "b.txt", chat=group)
    await bob.call("chat.leave", chat=group)
    assert await download(bob, shared["file"]["id"]) == b"bob's file"
    await alice.call("chat.invite", chat=group, user="carol")
    assert await download(carol, shared["file"]["id"]) == b"bob's file"
    posted = await upload(alice, b"later", "l.txt", chat=group)
    assert (await error_of(bob, "file.get", file_id=posted["file"]["id"]))["code"] \
        == FORBIDDEN


async def test_names_are_only_names_and_content_types_are_checked(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    (alice,) = await people.login(server, "alice")
    data_dir = server.config.data_dir
    expected = {
        "../../etc/passwd": ".._.._etc_passwd",
        "..\\..\\boot.ini": ".._.._boot.ini",
        "a\x00b\nc\x1b[31m.txt": "abc[31m.txt",
        "\u202eexe.txt": "exe.txt",
        "..": "file",
        "\x07": "file",
        "  résumé 📄.pdf  ": "résumé 📄.pdf",
        "x" * 300: "x" * 255,
    }
    for given, shown in expected.items():
        message = await upload(alice, b"data", given)
        assert message["file"]["name"] == shown
        assert await download(alice, message["file"]["id"]) == b"data"
    # Bytes only ever live under data_dir/files, named by server-made ids.
    assert not (data_dir.parent / "etc").exists() and not (data_dir / "etc").exists()
    assert all(len(name) == 24 for name in stored_files(data_dir))

    plain = await upload(alice, b"x", "a.txt")
    assert plain["file"]["content_type"] == "application/octet-stream"
    typed = await begin(alice, b"x", content_type="Text/Plain; charset=utf-8")
    await put_all(alice, typed, b"x")
    message = (await alice.call("file.finish", upload_id=typed["upload_id"]))["message"]
    assert message["file"]["content_type"] == "text/plain; charset=utf-8"
    for bad in ("nonsense", "text/", "/plain", "text/plain; x", "té/xt", "a/b\r\nX: y"):
        error = await error_of(alice, "file.begin", name="a", size=1, content_type=bad)
        assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "content_type"
    for bad_name in ("", 5):
        error = await error_of(alice, "file.begin", name=bad_name, size=1)
        assert error["code"] == INVALID_PARAMS
    error = await error_of(alice, "file.begin", name="a", size=1, sha256="abc")
    assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "sha256"
    assert (await error_of(alice, "file.begin", name="a", size=-1))["code"] == INVALID_PARAMS


async def test_chunk_rules(start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    data = os.urandom(600_000)
    started = await begin(alice, data)
    upload_id, chunk = started["upload_id"], started["chunk_size"]

    error = await error_of(alice, "file.put", upload_id=upload_id, offset=0,
                           data=b64(data[:chunk + 1]))
    assert error["code"] == TOO_LARGE and error["data"] == {"limit": chunk}
    for bad in ("not base64!", "QUJD=", "QU=JD", "QUJD\n"):
        error = await error_of(alice, "file.put", upload_id=upload_id, offset=0, data=bad)
        assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "data", bad
    assert (await error_of(bob, "file.put", upload_id=upload_id, offset=0,
                           data=b64(data[:10])))["code"] == NOT_FOUND
    assert (await error_of(alice, "file.put", upload_id="nope", offset=0,
                           data=b64(data[:10])))["code"] == NOT_FOUND
    error = await error_of(alice, "file.put", upload_id=upload_id, offset=5,
                           data=b64(data[:10]))
    assert error["code"] == CONFLICT and error["data"] == {"offset": 0}
    assert (await error_of(alice, "file.put", upload_id=upload_id, offset=-1,
                           data=""))["code"] == INVALID_PARAMS
    # Nothing of the refused chunks was kept.
    offset = await put_all(alice, started, data, stop=len(data) - 5)
    error = await error_of(alice, "file.put", upload_id=upload_id, offset=offset,
                           data=b64(data[offset:] + b"extra"))
    assert error["code"] == INVALID_PARAMS
    incomplete = await error_of(alice, "file.finish", upload_id=upload_id)
    assert incomplete["code"] == CONFLICT and incomplete["data"] == {"offset": offset}
    await put_all(alice, started, data, start=offset)
    message = (await alice.call("file.finish", upload_id=upload_id))["message"]
    assert await download(bob, message["file"]["id"]) == data

    reply = await bob.call("file.get", file_id=message["file"]["id"], offset=len(data))
    assert (reply["data"], reply["eof"], reply["offset"]) == ("", True, len(data))
    reply = await bob.call("file.get", file_id=message["file"]["id"], offset=10, length=5)
    assert reply["data"] == b64(data[10:15]) and reply["eof"] is False
    assert reply["file"] == message["file"]
    for params in ({"offset": len(data) + 1}, {"length": chunk + 1}, {"length": 0}):
        error = await error_of(bob, "file.get", file_id=message["file"]["id"], **params)
        assert error["code"] == INVALID_PARAMS, params


async def test_finish_rules(start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    data = b"hello file"
    lying = await begin(alice, data, sha256=sha256(b"something else"))
    await put_all(alice, lying, data)
    error = await error_of(alice, "file.finish", upload_id=lying["upload_id"])
    assert error["code"] == INVALID_PARAMS and error["data"]["field"] == "sha256"
    assert sha256(data) in error["data"]["reason"]
    # A mismatching upload is discarded.
    assert (await error_of(alice, "file.put", upload_id=lying["upload_id"], offset=0,
                           data=""))["code"] == NOT_FOUND

    staged = await begin(alice, data)
    await put_all(alice, staged, data)
    for params, code in (({"chat": "g:missing"}, NOT_FOUND), ({"to": "nobody"}, NOT_FOUND),
                         ({"to": "bob", "chat": "general"}, INVALID_PARAMS),
                         ({"text": "x" * 5000}, TOO_LARGE)):
        error = await error_of(alice, "file.finish", upload_id=staged["upload_id"], **params)
        assert error["code"] == code, params
    assert (await error_of(bob, "file.finish", upload_id=staged["upload_id"]))["code"] \
        == NOT_FOUND
    message = (await alice.call("file.finish", upload_id=staged["upload_id"], to="bob",
                                text="caption"))["message"]
    assert message["chat"] == "dm:alice:bob" and message["text"] == "caption"
    assert message["file"]["sha256"] == sha256(data)

    empty = await begin(alice, b"", "empty.txt")
    assert empty["offset"] == 0
    message = (await alice.call("file.finish", upload_id=empty["upload_id"]))["message"]
    assert message["file"]["size"] == 0 and message["text"] == ""
    assert await download(bob, message["file"]["id"]) == b""


async def test_open_uploads_per_user_are_limited(start_server: StartServer,
                                                 people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    for _ in range(16):
        await begin(alice, b"x")
    error = await error_of(alice, "file.begin", name="one more", size=1)
    assert error["code"] == TOO_LARGE and error["data"] == {"limit": 16}
    await begin(bob, b"x")  # others are not affected


async def test_upload_limits_follow_the_server_settings(
        start_server: StartServer, people: People, clock: ManualClock) -> None:
    server = await start_server(max_uploads=2, upload_timeout=60)
    (alice,) = await people.login(server, "alice")
    first = await begin(alice, b"x")
    await begin(alice, b"y")
    error = await error_of(alice, "file.begin", name="third", size=1)
    assert error["code"] == TOO_LARGE and error["data"] == {"limit": 2}
    clock.advance(60)  # both idle for --upload-timeout
    assert (await error_of(alice, "file.put", upload_id=first["upload_id"], offset=0,
                           data=b64(b"x")))["code"] == NOT_FOUND
    await begin(alice, b"z")  # the expired ones no longer count


async def test_idle_uploads_expire_and_their_bytes_go(start_server: StartServer,
                                                      people: People,
                                                      clock: ManualClock) -> None:
    server = await start_server()
    (alice,) = await people.login(server, "alice")
    data_dir = server.config.data_dir
    idle = await begin(alice, b"0123456789")
    busy = await begin(alice, b"0123456789")
    await put_all(alice, idle, b"0123456789", stop=5)
    clock.advance(3000)
    await put_all(alice, busy, b"0123456789", stop=5)
    clock.advance(700)  # idle: 3700 s since its last chunk; busy: 700 s
    # Checked on use even before the sweep ran.
    assert (await error_of(alice, "file.put", upload_id=idle["upload_id"], offset=5,
                           data=b64(b"56789")))["code"] == NOT_FOUND
    assert await server.service.files.expire_uploads() == []  # already gone
    await server.close()
    server = await start_server(data_dir=data_dir)
    await people.move_to(server)
    assert idle["upload_id"] not in stored_files(data_dir)
    assert busy["upload_id"] in stored_files(data_dir)
    clock.advance(3000)
    assert await server.service.files.expire_uploads() == [busy["upload_id"]]
    assert busy["upload_id"] not in stored_files(data_dir)
    assert (await error_of(people["alice"], "file.finish",
                           upload_id=busy["upload_id"]))["code"] == NOT_FOUND


async def test_file_goes_when_its_message_expires(start_server: StartServer, people: People,
                                                  clock: ManualClock) -> None:
    server = await start_server(message_ttl=60)
    alice, bob = await people.login(server, "alice", "bob")
    message = await upload(alice, b"short-lived", "tmp.txt", to="bob")
    file_id = message["file"]["id"]
    assert message["expires_at"] == message["ts"] + 60
    assert await download(bob, file_id) == b"short-lived"
    kept = await upload(alice, b"kept", "k.txt", to="bob")
    clock.advance(61)
    # Gone for everyone at once, even before the expiry pass deleted anything.
    assert (await error_of(bob, "file.get", file_id=file_id))["code"] == NOT_FOUND
    assert (await error_of(alice, "file.get", file_id=file_id))["code"] == NOT_FOUND
    data_dir = server.config.data_dir
    await server.service.rules.run_due()  # the expiry pass the timer runs
    assert file_id not in stored_files(data_dir)
    assert kept["file"]["id"] not in stored_files(data_dir)
    assert (await error_of(bob, "file.get", file_id=kept["file"]["id"]))["code"] == NOT_FOUND


async def test_orphaned_bytes_are_deleted_at_start(start_server: StartServer, people: People,
                                                   clock: ManualClock) -> None:
    server = await start_server(message_ttl=60)
    alice, bob = await people.login(server, "alice", "bob")
    message = await upload(alice, b"bytes", "o.txt", to="bob")
    clock.advance(30)
    live = await upload(alice, b"live", "live.txt", to="bob")
    staged = await begin(alice, b"abc")
    data_dir = server.config.data_dir
    stray = data_dir / "files" / ("Z" * 24)
    await server.close()
    stray.write_bytes(b"left over")
    clock.advance(31)  # the first message expired while the server was down
    server = await start_server(data_dir=data_dir, message_ttl=60)
    await people.move_to(server)
    # Kept: the unfinished upload and the file whose message lives; the rest is gone.
    assert stored_files(data_dir) == {staged["upload_id"], live["file"]["id"]}
    assert message["file"]["id"] not in stored_files(data_dir)
    assert await download(people["bob"], live["file"]["id"]) == b"live"


async def test_file_messages_obey_bans_and_the_rate_limit(start_server: StartServer,
                                                          people: People) -> None:
    server = await start_server(report_threshold=1, rate_limit=2)
    alice, bob, carol = await people.login(server, "alice", "bob", "carol")
    await upload(alice, b"one", "1.txt")
    await alice.call("send", text="two")
    staged = await begin(alice, b"three")
    await put_all(alice, staged, b"three")
    error = await error_of(alice, "file.finish", upload_id=staged["upload_id"])
    assert error["code"] == -32005  # general is rate limited: files count like messages
    # Direct chats are not limited; the same upload is still there to post elsewhere.
    message = (await alice.call("file.finish", upload_id=staged["upload_id"], to="bob"))
    assert message["message"]["chat"] == "dm:alice:bob"

    await bob.call("report", user="carol")
    staged = await begin(carol, b"x")
    await put_all(carol, staged, b"x")
    error = await error_of(carol, "file.finish", upload_id=staged["upload_id"], to="bob")
    assert error["code"] == -32006 and "until" in error["data"]


async def test_parallel_puts_at_one_offset(start_server: StartServer, people: People) -> None:
    import asyncio

    server = await start_server()
    (alice,) = await people.login(server, "alice")
    twin = await people.another_client(server, "alice")
    data = os.urandom(400_000)
    started = await begin(alice, data)
    calls = [client.response("file.put", {"upload_id": started["upload_id"], "offset": 0,
                                          "data": b64(data[:200_000])})
             for client in (alice, twin)]
    replies = await asyncio.gather(*calls)
    outcomes = sorted(("result" in reply, reply.get("error", {}).get("data")) for reply in replies)
    assert outcomes == [(False, {"offset": 200_000}), (True, None)]
    await put_all(alice, started, data, start=200_000)
    message = (await alice.call("file.finish", upload_id=started["upload_id"]))["message"]
    assert await download(alice, message["file"]["id"]) == data


async def test_a_finish_after_the_idle_limit_finds_nothing(start_server: StartServer,
                                                           people: People,
                                                           clock: ManualClock) -> None:
    server = await start_server()
    (alice,) = await people.login(server, "alice")
    staged = await begin(alice, b"abc")
    await put_all(alice, staged, b"abc")
    clock.advance(3600)
    assert (await error_of(alice, "file.finish", upload_id=staged["upload_id"]))["code"] \
        == NOT_FOUND
    await server.close()  # lets the deletion started in the background finish
    assert staged["upload_id"] not in stored_files(server.config.data_dir)


async def test_the_expiry_timer_fires_at_the_nearest_deadline(start_server: StartServer,
                                                              people: People) -> None:
    import asyncio

    from rpcchat.clock import SystemClock

    server = await start_server(clock=SystemClock())
    (alice,) = await people.login(server, "alice")
    files = server.service.files
    files.upload_idle = 0.2
    swept = asyncio.Event()
    original = files.expire_uploads

    async def observed() -> list[str]:
        expired = await original()
        if expired:
            swept.set()
        return expired

    files.expire_uploads = observed  # type: ignore[method-assign]
    staged = await begin(alice, b"abc")
    await asyncio.wait_for(swept.wait(), 5)
    assert staged["upload_id"] not in stored_files(server.config.data_dir)
    assert (await error_of(alice, "file.put", upload_id=staged["upload_id"], offset=0,
                           data=""))["code"] == NOT_FOUND

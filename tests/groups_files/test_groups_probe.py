"""A non-member gets -32002 for everything in a group chat: every chat method, sending,
history, comments, posting a file into it and reading its files; also a pending requester
and a member who left, and all of it again after a restart."""

from __future__ import annotations

from typing import Any

from gf_support import People, StartServer, b64, begin, upload
from rpc_testing import FORBIDDEN, error_of


async def probes(chat_id: str, message_id: int, file_id: str,
                 upload_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("send", {"chat": chat_id, "text": "let me in"}),
        ("history", {"chat": chat_id}),
        ("chat.invite", {"chat": chat_id, "user": "mallory"}),
        ("chat.link", {"chat": chat_id}),
        ("chat.requests", {"chat": chat_id}),
        ("chat.approve", {"chat": chat_id, "user": "mallory"}),
        ("chat.decline", {"chat": chat_id, "user": "mallory"}),
        ("chat.leave", {"chat": chat_id}),
        ("file.finish", {"upload_id": upload_id, "chat": chat_id}),
        ("file.get", {"file_id": file_id}),
        ("file.get", {"file_id": file_id, "offset": 1, "length": 1}),
        ("comment", {"message_id": message_id, "text": "me too"}),
    ]


async def method_names(client: Any) -> set[str]:
    document = await client.call("rpc.discover")
    return {method["name"] for method in document["methods"]}


async def test_outsiders_get_forbidden_for_every_group_method(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob, mallory, peggy = await people.login(server, "alice", "bob", "mallory",
                                                    "peggy")
    group = (await alice.call("chat.create", name="Vault", members=["bob"]))["chat"]["id"]
    message = await upload(alice, b"secret bytes", "plan.txt", chat=group)
    token = (await alice.call("chat.link", chat=group))["token"]
    await peggy.call("chat.join", link=token)  # pending: still an outsider
    await bob.call("chat.leave", chat=group)   # left: an outsider again
    available = await method_names(alice)

    for restarted in (False, True):
        if restarted:
            await server.close()
            server = await start_server(data_dir=server.config.data_dir)
            await people.move_to(server)
        for name in ("mallory", "peggy", "bob"):
            outsider = people[name]
            staged = await begin(outsider, b"x")
            await outsider.call("file.put", upload_id=staged["upload_id"], offset=0,
                                data=b64(b"x"))
            for method, params in await probes(group, message["id"], message["file"]["id"],
                                               staged["upload_id"]):
                if method not in available:
                    continue  # a method of a feature not registered in this build
                error = await error_of(outsider, method, **params)
                assert error["code"] == FORBIDDEN, (name, method, params, error)
            # The refused file.finish left the upload intact: it can still be posted.
            reply = await outsider.call("file.finish", upload_id=staged["upload_id"])
            assert reply["message"]["chat"] == "general"


async def test_members_may_read_and_post_files_but_not_owner_actions(
        start_server: StartServer, people: People) -> None:
    server = await start_server()
    alice, bob = await people.login(server, "alice", "bob")
    group = (await alice.call("chat.create", name="Team", members=["bob"]))["chat"]["id"]
    message = await upload(bob, b"from bob", "note.txt", chat=group, text="see this")
    assert message["chat"] == group and message["text"] == "see this"
    reply = await alice.call("file.get", file_id=message["file"]["id"])
    assert reply["eof"] is True and reply["size"] == 8
    assert (await error_of(bob, "chat.link", chat=group))["code"] == FORBIDDEN

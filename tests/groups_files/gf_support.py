"""Helpers for the group chat and file tests (real sockets throughout)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from rpc_testing import ClientFactory, RpcClient
from rpcchat.app import ChatServer

MIB = 1024 * 1024

StartServer = Callable[..., Awaitable[ChatServer]]
"""The `start_server` fixture: `await start_server(**config)`."""


class People:
    """Logged-in users by name; `move_to` points every client at a restarted server with
    the same token (tokens survive restarts)."""

    def __init__(self, make_client: ClientFactory) -> None:
        self._make = make_client
        self.clients: dict[str, RpcClient] = {}

    async def login(self, server: ChatServer, *names: str) -> list[RpcClient]:
        for name in names:
            client = await self._make(server)
            await client.connect(name)
            self.clients[name] = client
        return [self.clients[name] for name in names]

    async def move_to(self, server: ChatServer) -> None:
        for name, old in list(self.clients.items()):
            client = await self._make(server, old.token)
            client.user = name
            self.clients[name] = client

    async def another_client(self, server: ChatServer, name: str) -> RpcClient:
        """A second client with the same token as `name`'s."""
        client = await self._make(server, self.clients[name].token)
        client.user = name
        return client

    def __getitem__(self, name: str) -> RpcClient:
        return self.clients[name]


def of_chat(events: list[dict[str, Any]], chat_id: str) -> list[dict[str, Any]]:
    return [event for event in events if event["data"].get("chat") == chat_id]


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(type, user) of each event: enough to compare sequences of chat events."""
    return [(event["type"], event["data"].get("user")) for event in events]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def begin(client: RpcClient, data: bytes, name: str = "blob.bin",
                **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = await client.call("file.begin", name=name, size=len(data),
                                               **params)
    return result


async def put_all(client: RpcClient, upload: dict[str, Any], data: bytes,
                  start: int = 0, stop: int | None = None) -> int:
    """Send data[start:stop] in chunk_size pieces; the server's offset at the end."""
    offset = start
    end = len(data) if stop is None else stop
    while offset < end:
        piece = data[offset:min(end, offset + upload["chunk_size"])]
        reply = await client.call("file.put", upload_id=upload["upload_id"], offset=offset,
                                  data=b64(piece))
        offset = reply["offset"]
    return offset


async def upload(client: RpcClient, data: bytes, name: str = "blob.bin",
                 **finish: Any) -> dict[str, Any]:
    """The whole upload; the Message that carries the file."""
    started = await begin(client, data, name, sha256=sha256(data))
    await put_all(client, started, data)
    reply = await client.call("file.finish", upload_id=started["upload_id"], **finish)
    message: dict[str, Any] = reply["message"]
    return message


async def download(client: RpcClient, file_id: str) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while True:
        reply = await client.call("file.get", file_id=file_id, offset=offset)
        assert reply["offset"] == offset
        piece = base64.b64decode(reply["data"])
        parts.append(piece)
        offset += len(piece)
        if reply["eof"]:
            assert offset == reply["size"]
            return b"".join(parts)

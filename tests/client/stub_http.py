"""A scriptable HTTP/1.1 stub server on raw asyncio streams: each test says, per connection,
what the server reads and writes, including the faults a real server would never make."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[["StubConnection"], Awaitable[None]]


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class StubConnection:
    """One accepted connection, handed to the test's handler."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stub: StubServer

    async def read_request(self) -> StubRequest | None:
        """The next request on this connection, or None when the client closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, path, _version = request_line.split(" ")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        request = StubRequest(method, path, headers, body)
        self.stub.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def respond(self, body: bytes = b"", status: str = "200 OK",
                      headers: tuple[str, ...] = ()) -> None:
        head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
        await self.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def close(self) -> None:
        self.writer.close()


@dataclass
class StubServer:
    handler: Handler
    requests: list[StubRequest] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = StubConnection(self.connections, reader, writer, self)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: that is what some tests do on purpose
        finally:
            self.tasks.discard(task)
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


def rpc_reply(request: StubRequest, result: Any = None, error: dict[str, Any] | None = None
              ) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request.json()["id"]}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    return json.dumps(body).encode()


def free_port() -> int:
    """A port nobody listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port

"""Helpers of the transport tests: the test server's routes and limits, and a raw-socket
client that reads responses byte-exactly."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from rpcchat.config import HttpLimits
from rpcchat.transport.messages import Request, Response, Route
from rpcchat.transport.parsing import HttpError
from rpcchat.transport.server import HttpServer

LIMITS = HttpLimits(header_timeout=0.5, body_timeout=0.5, keepalive_timeout=0.5,
                    write_timeout=0.5, shutdown_grace=0.5, max_body=64 * 1024)
BIG_BODY_LIMIT = 5 * 1024 * 1024
HUGE_BODY_LIMIT = 2 * 1024 * 1024 * 1024
BIG_RESPONSE = 32 * 1024 * 1024
READ_TIMEOUT = 3.0


@dataclass
class Reply:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None


class Client:
    """A raw TCP client: send exact bytes, read exact responses, observe EOF and silence."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, *, head_request: bool = False,
                    timeout: float = READ_TIMEOUT) -> Reply:
        return await asyncio.wait_for(self._reply(head_request), timeout)

    async def _reply(self, head_request: bool) -> Reply:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.lower(), value.strip()))
        reply = Reply(int(status), reason, version, headers, b"")
        length = reply.header("content-length")
        if length is not None and not head_request and reply.status >= 200:
            reply.body = await self.reader.readexactly(int(length))
        return reply

    async def read_eof(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Everything until the server closes (fails if it does not within `timeout`)."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def assert_closed(self, timeout: float = READ_TIMEOUT) -> None:
        """The server closed the connection and sends nothing more, even when asked again."""
        try:
            await self.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        except ConnectionError:
            return
        try:
            rest = await self.read_eof(timeout)
        except ConnectionError:
            return
        assert rest == b"", f"unexpected bytes after close: {rest[:200]!r}"

    async def silent_for(self, seconds: float) -> bool:
        """True if nothing at all arrives (and the connection stays open) for `seconds`."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {data!r}")

    def reset(self) -> None:
        """Abort with an RST (SO_LINGER 0)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


@dataclass
class App:
    """Route handlers of the test server, with hooks the tests can observe."""

    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[Request] = field(default_factory=list)

    async def echo(self, request: Request) -> Response:
        return Response(200, request.body, "application/json")

    async def record(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(200, request.body, "application/json")

    async def health(self, request: Request) -> Response:
        return Response(200, json.dumps({"status": "ok"}).encode(), "application/json")

    async def info(self, request: Request) -> Response:
        described = {"method": request.method, "target": request.target, "path": request.path,
                     "query": request.query, "version": request.version,
                     "headers": request.headers, "body": request.body.decode("latin-1"),
                     "peer": request.peer}
        return Response(200, json.dumps(described).encode(), "application/json")

    async def slow(self, request: Request) -> Response:
        self.slow_started.set()
        try:
            await self.slow_release.wait()
        except asyncio.CancelledError:
            self.slow_cancelled.set()
            raise
        return Response(200, b"slow done", "text/plain")

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("handler bug with a secret inside")

    async def refuse(self, request: Request) -> Response:
        raise HttpError(429, "slow down", close=request.query == "close",
                        headers=[("Retry-After", "2")])

    async def bad_header(self, request: Request) -> Response:
        return Response(200, b"x", "text/plain", [("X-Bad", "a\r\nInjected: yes")])

    async def big(self, request: Request) -> Response:
        return Response(200, b"x" * BIG_RESPONSE, "application/octet-stream")

    def routes(self) -> list[Route]:
        post = frozenset({"POST"})
        return [
            Route("/rpc", post, self.echo),
            Route("/record", post, self.record),
            Route("/health", frozenset({"GET"}), self.health),
            Route("/info", frozenset({"GET", "POST", "PUT"}), self.info),
            Route("/slow", post, self.slow),
            Route("/boom", post, self.boom),
            Route("/bad-header", frozenset({"GET", "POST"}), self.bad_header),
            Route("/refuse", post, self.refuse),
            Route("/big", frozenset({"GET"}), self.big),
            Route("/upload", post, self.echo, max_body=BIG_BODY_LIMIT),
            Route("/huge", post, self.echo, max_body=HUGE_BODY_LIMIT),
        ]


ServerFactory = Callable[..., Awaitable[HttpServer]]
Connect = Callable[..., Awaitable[Client]]


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll a condition the server exposes no event for (e.g. its connection count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def post(body: bytes, path: str = "/rpc", extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return (f"POST {path} {version}\r\nHost: test\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)

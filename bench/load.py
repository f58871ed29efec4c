"""A lean keep-alive load generator: C connections, each sending one request at a time.

Run as its own process so it does not share a core with the server under test.
Prints one JSON line: {"requests": n, "seconds": s, "rps": r, "errors": e}.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time


def content_length(head: bytes) -> int:
    """The Content-Length of a response head (without its final blank line); 0 if none.
    The field may be the last line of the head, which has no CRLF of its own."""
    lines = head.lower() + b"\r\n"
    at = lines.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    start = at + len(b"\r\ncontent-length:")
    return int(lines[start:lines.find(b"\r\n", start)])


class KeepAliveClient(asyncio.Protocol):
    """Sends `request` again each time a whole response has arrived."""

    def __init__(self, request: bytes, deadline: float, done: asyncio.Future[None]) -> None:
        self.request = request
        self.deadline = deadline
        self.done = done
        self.buffer = b""
        self.count = 0
        self.errors = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            total = head_end + 4 + content_length(head)
            if len(self.buffer) < total:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self.errors += 1
            self.buffer = self.buffer[total:]
            self.count += 1
            if time.monotonic() >= self.deadline:
                assert self.transport is not None
                self.transport.close()
                return
            assert self.transport is not None
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def build_request(path: str, body: bytes, headers: list[str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: bench", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(args: argparse.Namespace) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    headers = [f"Authorization: Bearer {args.token}"] if args.token else []
    request = build_request(args.path, args.body.encode(), headers)
    start = time.monotonic()
    deadline = start + args.seconds
    clients = []
    for _ in range(args.connections):
        done: asyncio.Future[None] = loop.create_future()
        _, client = await loop.create_connection(
            functools.partial(KeepAliveClient, request, deadline, done), args.host, args.port)
        clients.append(client)
    await asyncio.gather(*(c.done for c in clients))
    elapsed = time.monotonic() - start
    count = sum(c.count for c in clients)
    return {"requests": count, "seconds": elapsed, "rps": count / elapsed,
            "errors": sum(c.errors for c in clients)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/rpc")
    parser.add_argument("--body", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()

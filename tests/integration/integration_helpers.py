"""Helpers for the end-to-end tests: event filters, waiting for parked polls, a raw
keep-alive HTTP connection and the server run as a separate process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import IO, Any

from rpc_testing import RpcClient
from rpcchat.app import ChatServer

PASSWORD = "secret"
PARK_DEADLINE = 5.0
START_DEADLINE = 15.0
MESSAGE_FIELDS = {"id", "chat", "from", "text", "ts", "parent", "file", "client_msg_id",
                  "expires_at"}

Users = Callable[..., Awaitable[list[RpcClient]]]
"""The `users` fixture: `await users(server, "alice", "bob")`, one connected client each."""


def messages_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Message objects carried by the `message` events, in order."""
    return [event["data"] for event in events if event["type"] == "message"]


def texts_of(events: list[dict[str, Any]]) -> list[str]:
    return [message["text"] for message in messages_of(events)]


def seqs_of(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def seq_of_text(events: list[dict[str, Any]], text: str) -> int:
    """The seq of the message event with this text."""
    seq: int = next(event["seq"] for event in events
                    if event["type"] == "message" and event["data"]["text"] == text)
    return seq


async def wait_parked(server: ChatServer, count: int) -> None:
    """Until at least `count` polls wait inside the server (a condition, not a delay)."""
    deadline = time.monotonic() + PARK_DEADLINE
    while server.service.parked_polls < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} polls never parked "
                                 f"(parked: {server.service.parked_polls})")
        await asyncio.sleep(0.001)  # let the server's loop read the request


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawConnection:
    """One TCP connection, requests sent one after another: proves keep-alive survives."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> RawReply:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        return await asyncio.wait_for(self._read_reply(), 10)

    async def rpc(self, payload: Any, token: str | None = None) -> RawReply:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.request("POST", "/rpc", body, headers)

    async def _read_reply(self) -> RawReply:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        assert "transfer-encoding" not in headers, "this helper reads Content-Length bodies"
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length)
        return RawReply(int(status_line.split()[1]), headers, body)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass  # the peer may already have reset it; the socket is released either way


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """`python -m rpcchat serve` in its own process, on a fixed port and data dir."""

    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()  # more `serve` flags
    process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server process is not running"
        return self.process.pid

    async def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rpcchat", "serve", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--log-level", "warning", "--rate-limit", "0",
            *self.extra_args, stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        await self._until_healthy()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        os.kill(self.pid, signal.SIGKILL)
        assert await self._reap() == -signal.SIGKILL

    async def stop(self) -> None:
        """SIGTERM: the graceful shutdown."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self._reap()

    async def _reap(self) -> int:
        assert self.process is not None
        returncode = await asyncio.wait_for(self.process.wait(), 10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return returncode

    async def _until_healthy(self) -> None:
        """Retry GET /health until the new process answers (it has no other signal)."""
        deadline = time.monotonic() + START_DEADLINE
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: "
                                     f"{self.log_path.read_text(errors='replace')}")
            try:
                connection = await RawConnection.open(self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("server did not start listening") from None
                await asyncio.sleep(0.02)
                continue
            try:
                reply = await connection.request("GET", "/health")
            finally:
                await connection.close()
            assert reply.status == 200, reply
            return


@dataclass
class AwayScenario:
    """Bob is away while alice writes to him in general and privately; he acknowledged part
    of it from his first client. Run `while_away`, optionally restart or crash the server,
    then `check_return` with fresh clients for the (possibly new) server."""

    acknowledged: int = 0  # bob's read cursor after his acknowledgement
    bob_token: str = ""
    alice_token: str = ""
    seen_seqs: list[int] = field(default_factory=list)
    last_message_id: int = 0

    async def while_away(self, alice: RpcClient, bob: RpcClient) -> None:
        assert alice.token is not None and bob.token is not None
        self.alice_token, self.bob_token = alice.token, bob.token
        caught_up = await bob.call("poll", timeout=0)
        await bob.call("poll", since=caught_up["next"], timeout=0)  # read everything so far
        await bob.call("send", text="mine")  # his own: delivered to him, never unread
        for text, to in (("g1", None), ("d1", "bob"), ("g2", None), ("d2", "bob"),
                         ("g3", None)):
            params = {"text": text} if to is None else {"text": text, "to": to}
            self.last_message_id = (await alice.call("send", **params))["message"]["id"]

        # From his first client bob reads up to d1 and acknowledges it.
        pending = await bob.call("poll", since=caught_up["next"], timeout=0)
        assert texts_of(pending["events"]) == ["mine", "g1", "d1", "g2", "d2", "g3"]
        assert pending["unread"] == 5
        self.acknowledged = seq_of_text(pending["events"], "d1")
        rest = await bob.call("poll", since=self.acknowledged, timeout=0)
        assert texts_of(rest["events"]) == ["g2", "d2", "g3"]
        assert rest["unread"] == 3
        self.seen_seqs = seqs_of(pending["events"])

    async def check_return(self, alice: RpcClient, bob_again: RpcClient,
                           bob_old: RpcClient) -> None:
        """`bob_again` is not connected yet; `bob_old` carries bob's first token."""
        reply = await bob_again.connect("bob", PASSWORD)
        assert reply["cursor"] == self.acknowledged
        assert reply["unread"] == 3
        assert [message["text"] for message in reply["history"]][-4:] == ["mine", "g1", "g2",
                                                                          "g3"]

        unread = await bob_again.call("poll", timeout=0)  # no since: from the read cursor
        events = unread["events"]
        assert texts_of(events) == ["g2", "d2", "g3"]
        seqs = seqs_of(events)
        assert seqs == sorted(set(seqs)) and seqs[0] > self.acknowledged
        assert seqs == [seq for seq in self.seen_seqs if seq > self.acknowledged]
        assert unread["unread"] == 3  # looking is not acknowledging
        chats = {chat["id"]: chat["unread"]
                 for chat in (await bob_again.call("status"))["me"]["chats"]}
        assert chats == {"general": 2, "dm:alice:bob": 1}

        # The first token still works and shares the cursor.
        assert (await bob_old.call("status"))["me"]["cursor"] == self.acknowledged
        done = await bob_again.call("poll", since=unread["next"], timeout=0)
        assert done["events"] == [] and done["unread"] == 0
        assert (await bob_old.call("status"))["me"]["cursor"] == unread["next"]

        # Seqs and message ids go on from where they were: nothing is reused.
        sent = await alice.call("send", text="after")
        assert sent["message"]["id"] > self.last_message_id
        fresh = await bob_old.call("poll", since=unread["next"], timeout=5)
        assert texts_of(fresh["events"]) == ["after"]
        assert fresh["events"][0]["seq"] > max(self.seen_seqs)

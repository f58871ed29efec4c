"""Shared fixtures: the real rpcchat server in-process on a free port, and JSON-RPC clients
talking to it over real sockets (classes in tests/rpc_testing.py).

    async def test_something(running_server, rpc_client):
        server = await running_server(history=5)        # ServerConfig overrides
        alice = await rpc_client(server)
        await alice.connect("alice")                    # keeps the token for later calls
        reply = await alice.call("send", text="hi")     # the result, or RpcFailure
        error = await alice.error("history", {"chat": "x"})  # the error object
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rpc_testing import TEST_HTTP_LIMITS, ClientFactory, RpcClient, ServerFactory, server_url
from rpcchat.app import ChatServer
from rpcchat.clock import Clock
from rpcchat.config import ServerConfig
from rpcchat.domain.passwords import PasswordHasher


@pytest.fixture
async def running_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """`await running_server(data_dir=None, clock=None, password_hasher=None, **config)`
    starts a ChatServer on 127.0.0.1, port 0, with ServerConfig overrides. The data dir
    defaults to tmp_path/"data"; pass the same one after `await server.close()` to restart.
    password_hasher None means production scrypt (rpc_testing.CHEAP_HASHER for many users).
    Servers still running at the end of the test are closed."""
    started: list[ChatServer] = []

    async def start(data_dir: Path | None = None, clock: Clock | None = None,
                    password_hasher: PasswordHasher | None = None,
                    **overrides: Any) -> ChatServer:
        overrides.setdefault("http", TEST_HTTP_LIMITS)
        config = ServerConfig(host="127.0.0.1", port=0,
                              data_dir=data_dir or tmp_path / "data", **overrides)
        server = ChatServer(config, clock, password_hasher=password_hasher)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()  # closing twice is a no-op


@pytest.fixture
async def rpc_client() -> AsyncIterator[ClientFactory]:
    """`await rpc_client(server_or_url, token=None, timeout=30)`: an RpcClient, closed after
    the test."""
    clients: list[RpcClient] = []

    async def make(target: ChatServer | str, token: str | None = None,
                   timeout: float = 30.0) -> RpcClient:
        url = target if isinstance(target, str) else server_url(target)
        client = RpcClient(url, token, timeout)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()

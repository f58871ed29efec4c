"""Fixtures for the end-to-end tests: the real server on a real socket, users connected
through real HTTP, and the server as a separate process for crash tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from integration_helpers import PASSWORD, ServerProcess, Users
from rpc_testing import CHEAP_HASHER, ClientFactory, RpcClient, ServerFactory
from rpcchat.app import ChatServer


@pytest.fixture
async def server(running_server: ServerFactory) -> ChatServer:
    """A server with a cheap password hash and no rate limit (tests send many messages)."""
    return await running_server(password_hasher=CHEAP_HASHER, rate_limit=0)


@pytest.fixture
def users(rpc_client: ClientFactory) -> Users:
    async def connect_all(target: ChatServer | str, *names: str) -> list[RpcClient]:
        clients = []
        for name in names:
            client = await rpc_client(target)
            await client.connect(name, PASSWORD)
            clients.append(client)
        return clients

    return connect_all


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[Callable[..., ServerProcess]]:
    """`server_process(*serve_flags)`: a ServerProcess on tmp_path/"data" (not started);
    any still running at the end is stopped."""
    made: list[ServerProcess] = []

    def make(*serve_flags: str) -> ServerProcess:
        process = ServerProcess(tmp_path / "data", tmp_path / "server.log",
                                extra_args=serve_flags)
        made.append(process)
        return process

    yield make
    for process in made:
        await process.stop()

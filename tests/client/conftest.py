"""Fixtures for the HTTP client and ChatClient tests: a scriptable raw-socket HTTP stub, and
the real rpcchat server on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from live_rpcchat import LiveServer
from stub_http import Handler, StubServer


@pytest.fixture
async def stub() -> AsyncIterator[Callable[..., Awaitable[StubServer]]]:
    """`await stub(handler, port=0)` starts an HTTP stub whose connections `handler` serves."""
    servers: list[StubServer] = []

    async def start(handler: Handler, port: int = 0) -> StubServer:
        server = StubServer(handler)
        await server.start(port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    server = LiveServer(tmp_path / "data")
    await server.start()
    yield server
    await server.stop()

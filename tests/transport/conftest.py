"""Fixtures for the transport tests: a real HttpServer on 127.0.0.1 with tiny timeouts and
raw-socket clients."""

from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator

import pytest

from rpcchat.config import HttpLimits
from rpcchat.transport.server import HttpServer

from .rawclient import LIMITS, App, Client, Connect, ServerFactory


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
async def make_server(app: App) -> AsyncIterator[ServerFactory]:
    servers: list[HttpServer] = []

    async def make(limits: HttpLimits = LIMITS) -> HttpServer:
        server = HttpServer(app.routes(), limits)
        await server.start("127.0.0.1", 0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: ServerFactory) -> HttpServer:
    return await make_server()


@pytest.fixture
async def connect(server: HttpServer) -> AsyncIterator[Connect]:
    clients: list[Client] = []

    async def open_client(target: HttpServer | None = None, rcvbuf: int | None = None) -> Client:
        port = (target or server).port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024 * 1024)
        client = Client(reader, writer)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()

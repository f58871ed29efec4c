"""Helpers for the feature tests: a restartable server on a ManualClock, users over real
sockets, and a look at what is stored on disk."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpc_testing import CHEAP_HASHER, ClientFactory, RpcClient, ServerFactory, events_since
from rpcchat.app import ChatServer
from rpcchat.clock import Clock, ManualClock
from rpcchat.domain.sqlite_store import DB_FILENAME

PASSWORD = "secret"


@dataclass
class FeatureChat:
    """One server at a time on `data_dir`; `restart()` keeps its settings."""

    running_server: ServerFactory
    rpc_client: ClientFactory
    clock: ManualClock
    data_dir: Path
    server: ChatServer | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    async def start(self, clock: Clock | None = None, **settings: Any) -> ChatServer:
        """Start with ServerConfig overrides (rate limit off unless given)."""
        settings.setdefault("rate_limit", 0)
        self.settings = settings
        self.server = await self.running_server(data_dir=self.data_dir,
                                                clock=clock or self.clock,
                                                password_hasher=CHEAP_HASHER, **settings)
        return self.server

    async def restart(self, **changes: Any) -> ChatServer:
        assert self.server is not None
        await self.server.close()
        return await self.start(**{**self.settings, **changes})

    async def users(self, *names: str) -> list[RpcClient]:
        """One connected client per name (a new client of the same name is another
        session of that user)."""
        clients = []
        for name in names:
            client = await self.rpc_client(self.live())
            await client.connect(name, PASSWORD)
            clients.append(client)
        return clients

    async def reconnect(self, client: RpcClient) -> RpcClient:
        """A new client for the current server with the same token (after a restart)."""
        fresh = await self.rpc_client(self.live(), client.token)
        fresh.user = client.user
        return fresh

    def live(self) -> ChatServer:
        assert self.server is not None, "start the server first"
        return self.server

    async def run_due(self) -> None:
        """Deliver what is due and delete what expired, as the timers would now."""
        await self.live().service.rules.run_due()

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Query the database file directly (what is on disk), once the running server's
        store holds every write acknowledged so far (writes reach SQLite from its journal
        in the background)."""
        if self.server is not None:
            await self.server.service._store.read_job(lambda conn: None)
        conn = sqlite3.connect(self.data_dir / DB_FILENAME)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


async def events(client: RpcClient, since: int = 0) -> list[dict[str, Any]]:
    """Every event the client's user sees after `since`, without waiting."""
    found, _ = await events_since(client, since)
    return found


def of_type(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in found if event["type"] == kind]


def texts(found: list[dict[str, Any]]) -> list[str]:
    return [message["text"] for message in of_type(found, "message")]


async def history_texts(client: RpcClient, chat: str = "general") -> list[str]:
    result = await client.call("history", chat=chat, limit=200)
    return [message["text"] for message in result["messages"]]

"""The real rpcchat server, started in-process on a free port with a temporary data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rpc_testing import CHEAP_HASHER, TEST_HTTP_LIMITS
from rpcchat.app import ChatServer
from rpcchat.config import ServerConfig


@dataclass
class LiveServer:
    """The real rpcchat server, restartable on the same port and data directory."""

    data_dir: Path
    port: int = 0
    server: ChatServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = ServerConfig(host="127.0.0.1", port=self.port, data_dir=self.data_dir,
                              rate_limit=0, log_level="warning", http=TEST_HTTP_LIMITS)
        self.server = ChatServer(config, password_hasher=CHEAP_HASHER)
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

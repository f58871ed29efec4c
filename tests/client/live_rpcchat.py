"""The real rpcchat server, started in-process on a free port with a temporary data dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LiveServer:
    """The real rpcchat server, restartable on the same port and data directory."""

    data_dir: Path
    port: int = 0
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from rpcchat.app import ChatServer
        from rpcchat.config import HttpLimits, ServerConfig

        config = ServerConfig(host="127.0.0.1", port=self.port, data_dir=self.data_dir,
                              rate_limit=0, log_level="warning",
                              http=HttpLimits(keepalive_timeout=5.0, shutdown_grace=0.5))
        self.server = ChatServer(config)
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


def server_available() -> bool:
    try:
        import rpcchat.app  # noqa: F401
    except ImportError:
        return False
    return True

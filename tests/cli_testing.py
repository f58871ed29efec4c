"""The real server on a background thread (the CLI runs its own event loops), and `rpcchat`
invoked in-process as one user at a time (each user has its own session file).

Importable from any test module as `cli_testing` (like `rpc_testing`).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from cli.main import main
from rpcchat.app import ChatServer
from rpcchat.config import ServerConfig
from rpcchat.domain.passwords import PasswordHasher

START_TIMEOUT = 10.0


@dataclass
class ThreadedServer:
    """`ChatServer` on its own event loop in a daemon thread, with ServerConfig `overrides`.

    `start()` raises what kept the server from starting; also usable as a context manager.
    """

    data_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    password_hasher: PasswordHasher | None = None  # None: production scrypt
    port: int = 0
    error: BaseException | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),),
                                        name="rpcchat-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the test server did not start")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)

    def __enter__(self) -> ThreadedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        try:
            config = ServerConfig(host="127.0.0.1", port=0, data_dir=self.data_dir,
                                  **self.overrides)
            server = ChatServer(config, password_hasher=self.password_hasher)
            await server.start()
        except BaseException as exc:  # handed to the test thread, which raises it
            self.error = exc
            self._ready.set()
            return
        self.port = server.port
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()


@dataclass
class CliUser:
    """`rpcchat ...` as one user of `server_url` (its own session and upload state files)."""

    name: str
    config_dir: Path
    server_url: str
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def session_file(self) -> Path:
        return self.config_dir / "session.json"

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"RPCCHAT_CONFIG": str(self.session_file), "RPCCHAT_SERVER": self.server_url,
               "RPCCHAT_DEBUG": ""}
        return self.runner.invoke(main, list(args), input=input, env=env,
                                  catch_exceptions=False)

    def login(self) -> None:
        result = self("login", self.name, "--password-stdin", input="secret\n")
        assert result.exit_code == 0, result.output

"""The real server on a background thread (the CLI runs its own event loops), and `rpcchat`
invoked in-process as one user at a time (each user has its own session file)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import main
from rpc_testing import CHEAP_HASHER, TEST_HTTP_LIMITS
from rpcchat.app import ChatServer
from rpcchat.config import ServerConfig

START_TIMEOUT = 10.0


@dataclass
class BackgroundServer:
    data_dir: Path
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
                                        name="rpcchat-gf-server", daemon=True)
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

    async def _serve(self) -> None:
        try:
            config = ServerConfig(host="127.0.0.1", port=0, data_dir=self.data_dir,
                                  rate_limit=0, http=TEST_HTTP_LIMITS)
            server = ChatServer(config, password_hasher=CHEAP_HASHER)
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
    """`rpcchat ...` as one logged-in user (its own session and upload state files)."""

    name: str
    config_dir: Path
    server: BackgroundServer
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def session_file(self) -> Path:
        return self.config_dir / "session.json"

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"RPCCHAT_CONFIG": str(self.session_file), "RPCCHAT_SERVER": self.server.url,
               "RPCCHAT_DEBUG": ""}
        return self.runner.invoke(main, list(args), input=input, env=env,
                                  catch_exceptions=False)

    def login(self) -> None:
        result = self("login", self.name, "--password-stdin", input="secret\n")
        assert result.exit_code == 0, result.output

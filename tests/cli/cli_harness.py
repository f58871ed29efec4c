"""Helpers for the command-line tests: the real server on a background thread (the CLI runs
its own event loops), and a CliRunner wrapper."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import main

START_TIMEOUT = 10.0


@dataclass
class ThreadServer:
    """`ChatServer` on its own event loop in a daemon thread."""

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

    async def _serve(self) -> None:
        from rpcchat.app import ChatServer
        from rpcchat.config import HttpLimits, ServerConfig

        try:
            config = ServerConfig(host="127.0.0.1", port=0, data_dir=self.data_dir,
                                  rate_limit=0, log_level="warning",
                                  http=HttpLimits(shutdown_grace=0.5))
            server = ChatServer(config)
            await server.start()
        except BaseException as exc:  # reported to the test thread, which raises it
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
class Cli:
    """Runs `rpcchat ...` in-process with the test's session file."""

    session_file: Path
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(main, list(args), input=input, env=env or None,
                                  catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]

"""Fixtures for the group chat and file tests: a real server on a ManualClock (restartable on
the same data dir), and named users whose clients follow the server across restarts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_testing import CliUser, ThreadedServer
from gf_support import People, StartServer
from rpc_testing import CHEAP_HASHER, TEST_HTTP_LIMITS, ClientFactory, ServerFactory
from rpcchat.app import ChatServer
from rpcchat.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def start_server(running_server: ServerFactory, clock: ManualClock) -> StartServer:
    """`await start_server(**config)`: the real server with a cheap password hash, the test's
    ManualClock and the rate limit off; pass data_dir=old.config.data_dir to restart."""

    async def start(**overrides: Any) -> ChatServer:
        overrides.setdefault("clock", clock)
        overrides.setdefault("password_hasher", CHEAP_HASHER)
        overrides.setdefault("rate_limit", 0)
        return await running_server(**overrides)

    return start


@pytest.fixture
def people(rpc_client: ClientFactory) -> People:
    return People(rpc_client)


@pytest.fixture(scope="module")
def background_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    running = ThreadedServer(tmp_path_factory.mktemp("gf-server") / "data",
                             {"rate_limit": 0, "http": TEST_HTTP_LIMITS}, CHEAP_HASHER)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def cli_user(background_server: ThreadedServer, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Callable[[str], CliUser]:
    """`cli_user(name)`: a logged-in user of the background server, driven through the CLI."""
    monkeypatch.delenv("RPCCHAT_CONFIG", raising=False)
    made: dict[str, CliUser] = {}

    def make(name: str) -> CliUser:
        if name not in made:
            user = CliUser(name, tmp_path / "config" / name, background_server.url)
            user.login()
            made[name] = user
        return made[name]

    return make

"""The command line: comment, send --at/--in, scheduled list|cancel, report, status."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.extras import parse_duration, parse_when
from cli.main import main
from rpc_testing import CHEAP_HASHER, TEST_HTTP_LIMITS
from rpcchat.app import ChatServer
from rpcchat.config import ServerConfig


class ServerThread:
    """The real server on its own loop (the CLI runs its own event loops)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),),
                                        daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "the server did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        config = ServerConfig(port=0, data_dir=self.data_dir, rate_limit=5,
                              http=TEST_HTTP_LIMITS)
        server = ChatServer(config, password_hasher=CHEAP_HASHER)
        await server.start()
        self.port = server.port
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ServerThread(tmp_path_factory.mktemp("cli") / "data") as server:
        yield f"http://127.0.0.1:{server.port}"


class Cli:
    def __init__(self, config_dir: Path, server_url: str) -> None:
        self.env = {"RPCCHAT_CONFIG": str(config_dir / "session.json"),
                    "RPCCHAT_SERVER": server_url}
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(main, list(args), input=input, env=self.env,
                                  catch_exceptions=False)

    def login(self, name: str) -> None:
        result = self("login", name, "--password-stdin", input="secret\n")
        assert result.exit_code == 0, result.output


@pytest.fixture
def alice(tmp_path: Path, server_url: str) -> Cli:
    cli = Cli(tmp_path / "alice", server_url)
    cli.login("alice")
    return cli


@pytest.fixture
def bob(tmp_path: Path, server_url: str) -> Cli:
    cli = Cli(tmp_path / "bob", server_url)
    cli.login("bob")
    return cli


def test_comment_prints_the_comment(alice: Cli) -> None:
    sent = alice("send", "a question", "--json")
    parent = json.loads(sent.stdout)["message"]["id"]
    result = alice("comment", str(parent), "an answer")
    assert result.exit_code == 0, result.output
    assert "an answer" in result.stdout and "↳" in result.stdout
    as_json = json.loads(alice("comment", str(parent), "again", "--json").stdout)
    assert as_json["message"]["parent"] == parent
    missing = alice("comment", "999999", "nobody there")
    assert missing.exit_code == 1 and "no such message" in missing.stderr


def test_send_in_then_list_and_cancel(alice: Cli) -> None:
    result = alice("send", "see you", "--in", "1h30m", "--json")
    assert result.exit_code == 0, result.output
    scheduled = json.loads(result.stdout)["scheduled"]
    assert scheduled["status"] == "pending"
    listed = alice("scheduled", "list")
    assert scheduled["id"] in listed.stdout and "see you" in listed.stdout
    cancelled = alice("scheduled", "cancel", scheduled["id"])
    assert cancelled.exit_code == 0 and "(cancelled)" in cancelled.stdout
    again = alice("scheduled", "cancel", scheduled["id"])
    assert again.exit_code == 1 and "already cancelled" in again.stderr
    assert "(no scheduled messages)" in alice("scheduled", "list").stdout


def test_send_at_future_and_past(alice: Cli) -> None:
    tomorrow = datetime.fromtimestamp(time.time() + 86400).strftime("%Y-%m-%d %H:%M")
    future = alice("send", "tomorrow", "--at", tomorrow)
    assert future.exit_code == 0, future.output
    assert "(pending)" in future.stdout and "tomorrow" in future.stdout
    too_far = alice("send", "too far", "--at", str(time.time() + 3700 * 86400))
    assert too_far.exit_code == 1 and "invalid at: must be at most" in too_far.stderr
    past = alice("send", "too late", "--at", "2001-01-01 00:00")
    assert past.exit_code == 1 and "invalid at: must be in the future" in past.stderr
    both = alice("send", "x", "--at", "2099-01-01", "--in", "5m")
    assert both.exit_code == 2 and "one of --at, --in and --delay" in both.output
    bad = alice("send", "x", "--in", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_report_and_status(alice: Cli, bob: Cli) -> None:
    result = alice("report", "bob", "--reason", "spam")
    assert result.exit_code == 0, result.output
    assert "Reported bob: 1 warning(s)" in result.stdout
    status = bob("status")
    assert "reports  1 warning(s)" in status.stdout
    assert "messages left in general" in status.stdout
    itself = alice("report", "alice")
    assert itself.exit_code == 1 and "invalid user" in itself.stderr


def test_duration_and_time_parsing() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration("1.5h") == 5400
    for bad in ("", "0", "5x", "m", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    now = datetime(2030, 6, 1, 12, 0).timestamp()
    assert parse_when("1900000000", now) == 1_900_000_000
    assert parse_when("2030-06-01 13:00", now) == datetime(2030, 6, 1, 13, 0).timestamp()
    assert parse_when("13:00", now) == datetime(2030, 6, 1, 13, 0).timestamp()
    assert parse_when("11:00", now) == datetime(2030, 6, 2, 11, 0).timestamp()  # tomorrow
    with pytest.raises(ValueError):
        parse_when("next week", now)

"""Fixtures for the command-line tests: an isolated session file, a CliRunner wrapper, and the
real rpcchat server running on a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from cli_harness import Cli, one_error_line
from cli_testing import ThreadedServer
from rpcchat.config import HttpLimits


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    # Production password hashing: these tests log in only a few times.
    running = ThreadedServer(tmp_path_factory.mktemp("server") / "data",
                             {"rate_limit": 0, "log_level": "warning",
                              "http": HttpLimits(shutdown_grace=0.5)})
    running.start()
    yield running
    running.stop()


@pytest.fixture
def session_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's session is kept (directories not created yet)."""
    path = tmp_path / "config" / "rpcchat" / "session.json"
    monkeypatch.setenv("RPCCHAT_CONFIG", str(path))
    monkeypatch.delenv("RPCCHAT_SERVER", raising=False)
    monkeypatch.delenv("RPCCHAT_DEBUG", raising=False)
    return path


@pytest.fixture
def cli(session_file: Path) -> Cli:
    return Cli(session_file)


@pytest.fixture
def error_line() -> Callable[[Result], str]:
    return one_error_line

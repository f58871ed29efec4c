"""Fixtures for the command-line tests: an isolated session file, a CliRunner wrapper, and the
real rpcchat server running on a background thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from cli_harness import Cli, ThreadServer, one_error_line


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    try:
        import rpcchat.app  # noqa: F401
    except ImportError:
        pytest.skip("depends on the rpcchat server (rpcchat.app is not importable yet)")
    running = ThreadServer(tmp_path_factory.mktemp("server") / "data")
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

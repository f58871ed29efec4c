"""`rpcchat serve`: every contract flag parses, reads RPCCHAT_<FLAG>, and bad values are refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import rpcchat.app
from cli.main import main
from rpcchat.config import ServerConfig
from rpcchat.domain.sqlite_store import lock_directory


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[ServerConfig]:
    """Runs `serve` without serving: the config it would serve with is captured."""
    configs: list[ServerConfig] = []

    async def fake_run(config: ServerConfig) -> None:
        configs.append(config)

    monkeypatch.setattr(rpcchat.app, "run_until_signalled", fake_run)
    monkeypatch.setattr("cli.serve.configure_logging", lambda *args: None)
    return configs


def serve(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["serve", *args], env=env or {})


def test_defaults_are_the_contract_defaults(captured: list[ServerConfig]) -> None:
    result = serve()
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert (config.host, config.port, config.data_dir) == ("127.0.0.1", 8000,
                                                           Path("./rpcchat-data"))
    assert (config.history, config.message_ttl, config.rate_limit, config.rate_period) == (
        20, 3600.0, 20, 3600.0)
    assert (config.report_threshold, config.ban_duration, config.max_file_size,
            config.max_text, config.log_level) == (3, 14400.0, 5242880, 4096, "info")
    assert (config.upload_timeout, config.max_uploads) == (3600.0, 16)


def test_every_flag_is_taken(captured: list[ServerConfig], tmp_path: Path) -> None:
    result = serve("--host", "0.0.0.0", "--port", "9001", "--data-dir", str(tmp_path),
                   "--history", "5", "--message-ttl", "0.5", "--rate-limit", "0",
                   "--rate-period", "2.5", "--report-threshold", "7", "--ban-duration", "1.5",
                   "--max-file-size", "1000", "--max-text", "10", "--log-level", "DEBUG",
                   "--max-body", "4096", "--keepalive-timeout", "3", "--header-timeout", "2",
                   "--body-timeout", "4", "--max-connections", "50",
                   "--upload-timeout", "90.5", "--max-uploads", "3")
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert (config.host, config.port, config.data_dir, config.history) == (
        "0.0.0.0", 9001, tmp_path, 5)
    assert (config.message_ttl, config.rate_limit, config.rate_period) == (0.5, 0, 2.5)
    assert (config.report_threshold, config.ban_duration) == (7, 1.5)
    assert (config.max_file_size, config.max_text, config.log_level) == (1000, 10, "debug")
    assert (config.http.max_body, config.http.keepalive_timeout, config.http.header_timeout,
            config.http.body_timeout, config.http.max_connections) == (4096, 3.0, 2.0, 4.0, 50)
    assert (config.upload_timeout, config.max_uploads) == (90.5, 3)


def test_environment_variables_are_read(captured: list[ServerConfig]) -> None:
    result = serve(env={"RPCCHAT_PORT": "9100", "RPCCHAT_MESSAGE_TTL": "0",
                        "RPCCHAT_RATE_LIMIT": "3", "RPCCHAT_DATA_DIR": "/tmp/elsewhere",
                        "RPCCHAT_LOG_LEVEL": "warning"})
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert (config.port, config.message_ttl, config.rate_limit) == (9100, 0.0, 3)
    assert (config.data_dir, config.log_level) == (Path("/tmp/elsewhere"), "warning")


def test_a_flag_wins_over_its_environment_variable(captured: list[ServerConfig]) -> None:
    result = serve("--port", "9200", env={"RPCCHAT_PORT": "9100"})
    assert result.exit_code == 0, result.output
    assert captured[0].port == 9200


@pytest.mark.parametrize("args, env", [
    (["--port", "70000"], {}),
    (["--port", "eighty"], {}),
    (["--history", "-1"], {}),
    (["--message-ttl", "-1"], {}),
    (["--rate-limit", "-5"], {}),
    (["--rate-period", "0"], {}),
    (["--report-threshold", "0"], {}),
    (["--ban-duration", "0"], {}),
    (["--max-file-size", "0"], {}),
    (["--max-text", "0"], {}),
    (["--upload-timeout", "0"], {}),
    (["--upload-timeout", "inf"], {}),
    (["--max-uploads", "0"], {}),
    ([], {"RPCCHAT_MAX_UPLOADS": "many"}),
    (["--log-level", "loud"], {}),
    (["--message-ttl", "nan"], {}),
    (["--message-ttl", "inf"], {}),
    (["--ban-duration", "inf"], {}),
    (["--rate-period", "nan"], {}),
    ([], {"RPCCHAT_PORT": "-1"}),
    ([], {"RPCCHAT_RATE_PERIOD": "soon"}),
])
def test_bad_values_are_refused_with_one_clear_error(
        captured: list[ServerConfig], args: list[str], env: dict[str, str]) -> None:
    result = serve(*args, env=env)
    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert "Traceback" not in result.output
    assert captured == []


@pytest.fixture
def quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cli.serve.configure_logging", lambda *args: None)


def test_a_taken_port_is_one_clear_error(quiet_logging: None, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
    # Nothing was left open: the data directory can be used at once.
    lock = lock_directory(tmp_path / "data")
    assert lock is not None
    os.close(lock)


def test_a_data_directory_in_use_is_one_clear_error(quiet_logging: None,
                                                    tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lock = lock_directory(data_dir)  # as a running server holds it
    try:
        result = serve("--port", "0", "--data-dir", str(data_dir))
    finally:
        assert lock is not None
        os.close(lock)
    assert result.exit_code == 1
    assert "in use by another rpcchat server" in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1


def test_a_log_file_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    log_file = blocker / "rpcchat.log"
    result = serve("--port", "0", "--data-dir", str(tmp_path / "data"),
                   "--log-file", str(log_file))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot open the log file {log_file}: ")
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "data").exists()  # refused before the server started

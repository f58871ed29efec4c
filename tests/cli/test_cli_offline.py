"""CLI behaviour that needs no server: the session file, formatting, and clean errors."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cli.output import ChatNames, format_event, format_message, format_status, format_thread
from cli.session import Session, SessionError, config_path, load_session, save_session
from cli_harness import Cli

ErrorLine = Callable[[Result], str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- session file ---------------------------------------------------------------------------

def test_session_round_trip_with_private_modes(session_file: Path) -> None:
    assert load_session() is None
    written = save_session(Session("http://127.0.0.1:8000", "alice", "secret-token"))
    assert written == session_file
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(session_file.parent.parent.stat().st_mode) == 0o700
    assert json.loads(session_file.read_text()) == {
        "server": "http://127.0.0.1:8000", "user": "alice", "token": "secret-token"}
    assert load_session() == Session("http://127.0.0.1:8000", "alice", "secret-token")
    assert [path.name for path in session_file.parent.iterdir()] == ["session.json"]


def test_rewrite_tightens_a_loose_mode(session_file: Path) -> None:
    save_session(Session("http://a", "alice", "t1"))
    session_file.chmod(0o644)
    save_session(Session("http://a", "alice", "t2"))
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RPCCHAT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "rpcchat" / "session.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_path() == tmp_path / "home" / ".config" / "rpcchat" / "session.json"


CORRUPT_SESSIONS = [b"{not json", b"[1]", b'{"server": 5}', b'{"server": "http://a", "token": 7}',
                    b'\xff\xfe{"server": "http://a"}', b'{"server": "ftp://a"}',
                    b'{"server": "http://a:99999"}']


@pytest.mark.parametrize("content", CORRUPT_SESSIONS)
def test_corrupt_session_file(session_file: Path, content: bytes) -> None:
    session_file.parent.mkdir(parents=True)
    session_file.write_bytes(content)
    with pytest.raises(SessionError, match="log in again"):
        load_session()


def test_corrupt_session_file_is_one_clean_line(cli: Cli, session_file: Path,
                                                error_line: ErrorLine) -> None:
    session_file.parent.mkdir(parents=True)
    session_file.write_text("{oops")
    result = cli("send", "hi")
    assert result.exit_code == 1
    assert "not valid JSON" in error_line(result)


@pytest.mark.parametrize("content, problem", [
    (b'\xff{"server": "http://a"}', "not valid JSON"),
    (b'{"server": "ftp://a", "user": "alice", "token": "t"}', "invalid server URL")])
def test_undecodable_session_file_is_one_clean_line(
        cli: Cli, session_file: Path, error_line: ErrorLine, content: bytes,
        problem: str) -> None:
    session_file.parent.mkdir(parents=True)
    session_file.write_bytes(content)
    for command in (["send", "hi"], ["status", "--server", "http://127.0.0.1:1"]):
        result = cli(*command)
        assert result.exit_code == 1
        assert problem in error_line(result) and str(session_file) in error_line(result)


# --- errors without a server ----------------------------------------------------------------

def test_not_logged_in(cli: Cli, error_line: ErrorLine) -> None:
    result = cli("send", "hi")
    assert result.exit_code == 1
    assert "not logged in" in error_line(result)


def test_server_down_is_one_line(cli: Cli, error_line: ErrorLine) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("login", "alice", "--password-stdin", "--server", url, input="pw\n")
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("Error: cannot connect to") and "refused" in line
    result = cli("status", RPCCHAT_SERVER=url)
    assert result.exit_code == 1
    assert "cannot connect" in error_line(result)


def test_https_server_is_refused(cli: Cli) -> None:
    result = cli("status", "--server", "https://chat.example.org")
    assert result.exit_code == 2
    assert "https is not supported" in result.stderr
    assert "Traceback" not in result.output


def test_to_and_chat_together_is_a_usage_error(cli: Cli) -> None:
    result = cli("send", "hi", "--to", "bob", "--chat", "general")
    assert result.exit_code == 2
    assert "either --to or --chat" in result.stderr


@pytest.mark.parametrize("params, reason", [("{bad", "not valid JSON"),
                                            ("[1, 2]", "must be a JSON object")])
def test_call_with_bad_params_is_a_usage_error(cli: Cli, params: str, reason: str) -> None:
    result = cli("call", "status", params)
    assert result.exit_code == 2
    assert reason in result.stderr


def test_empty_password_on_stdin(cli: Cli) -> None:
    result = cli("login", "alice", "--password-stdin", input="\n")
    assert result.exit_code == 2
    assert "no password" in result.stderr


def test_every_client_command_has_help(cli: Cli) -> None:
    for command in ("login", "logout", "send", "history", "status", "listen", "call", "chat"):
        result = cli(command, "--help")
        assert result.exit_code == 0, command
        assert "--server" in result.stdout


# --- formatting -----------------------------------------------------------------------------

def message(id_: int, text: str, *, parent: int | None = None, chat: str = "general",
            sender: str = "alice") -> dict[str, object]:
    return {"id": id_, "chat": chat, "from": sender, "text": text, "ts": 1_700_000_000.0,
            "parent": parent, "file": None, "client_msg_id": None, "expires_at": None}


def test_message_line_and_chat_labels() -> None:
    names = ChatNames("alice", {"g-1": "team"})
    line = format_message(message(1, "hello"), names)
    assert line.endswith("] #general alice: hello") and line.startswith("[")
    assert "@bob " in format_message(message(2, "psst", chat="dm:alice:bob"), names)
    assert "@alice " in format_message(message(2, "hi", chat="dm:alice:bob", sender="bob"),
                                       ChatNames("bob"))
    assert "#team " in format_message(message(3, "x", chat="g-1"), names)
    assert "#g-2 " in format_message(message(3, "x", chat="g-2"), names)


def test_comments_are_shown_under_their_parent() -> None:
    names = ChatNames("alice")
    lines = format_thread([message(1, "root"), message(2, "other"),
                           message(3, "reply", parent=1, sender="bob"),
                           message(4, "orphan", parent=99)], names)
    texts = [line.split(": ", 1)[1] for line in lines]
    assert texts == ["root", "reply", "other", "orphan (on #99)"]
    assert "↳" in lines[1] and "↳" not in lines[0]


def test_event_lines() -> None:
    names = ChatNames("alice")
    comment = {"seq": 1, "type": "message", "ts": 1.0, "data": message(5, "yes", parent=4)}
    assert "(on #4)" in format_event(comment, names)
    joined = {"seq": 2, "type": "chat.joined", "ts": 1.0,
              "data": {"chat": "general", "user": "bob"}}
    assert format_event(joined, names).endswith("#general bob joined")
    unknown = {"seq": 3, "type": "something.new", "ts": 1.0, "data": {"a": 1}}
    assert format_event(unknown, names).endswith('something.new: {"a": 1}')


def test_status_lines_without_login() -> None:
    lines = format_status({"server": {"version": "1", "uptime": 3725, "users": 2,
                                      "online": 1}}, "http://x", ChatNames(None))
    assert "up 1h02m" in lines[0] and "2 users" in lines[0]
    assert lines[1].endswith("(not logged in)")


@pytest.mark.parametrize("content", [b"{oops", b'{"server": "ftp://a"}'])
def test_login_is_not_blocked_by_a_corrupt_session(cli: Cli, session_file: Path,
                                                   error_line: ErrorLine,
                                                   content: bytes) -> None:
    session_file.parent.mkdir(parents=True)
    session_file.write_bytes(content)
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("login", "alice", "--password-stdin", "--server", url, input="pw\n")
    assert result.exit_code == 1
    assert "cannot connect" in error_line(result)  # it got as far as trying to log in

"""The command line against the real server: login, send, history, status, call, logout,
listen and chat (the long-running ones in a subprocess, as a user runs them)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from cli_harness import Cli
from cli_testing import ThreadedServer
from rpcchat.client import UNAUTHORIZED, ChatClient, RpcCallError

ErrorLine = Callable[[Result], str]
PASSWORD = "correct horse"
LINE_TIMEOUT = 10.0
_names = itertools.count(1)


def unique(name: str) -> str:
    """User names are server-wide; each test gets its own."""
    return f"{name}{next(_names)}"


def login(cli: Cli, server: ThreadedServer, name: str, **env: str) -> Result:
    result = cli("login", name, "--password-stdin", "--server", server.url,
                 input=PASSWORD + "\n", **env)
    assert result.exit_code == 0, result.output
    return result


def other_user(cli: Cli, server: ThreadedServer, tmp_path: Path, name: str) -> dict[str, str]:
    """Logs `name` in with a session file of its own; returns the env selecting it."""
    env = {"RPCCHAT_CONFIG": str(tmp_path / f"{name}.json")}
    login(cli, server, name, **env)
    return env


def test_login_stores_a_private_session(cli: Cli, server: ThreadedServer) -> None:
    alice = unique("alice")
    result = login(cli, server, alice)
    assert f"Logged in as {alice} on {server.url}" in result.stdout
    session = json.loads(cli.session_file.read_text())
    assert session["server"] == server.url and session["user"] == alice
    assert session["token"] and session["token"] not in result.output
    assert stat.S_IMODE(cli.session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.session_file.parent.stat().st_mode) == 0o700


def test_login_with_prompted_password(cli: Cli, server: ThreadedServer) -> None:
    alice = unique("alice")
    result = cli("login", alice, "--server", server.url, input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert cli("status").exit_code == 0


def test_relogin_revokes_the_previous_token(cli: Cli, server: ThreadedServer) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    old_token = json.loads(cli.session_file.read_text())["token"]
    login(cli, server, alice)
    assert json.loads(cli.session_file.read_text())["token"] != old_token
    assert token_is_revoked(server, old_token)


def test_wrong_password_is_one_line(cli: Cli, server: ThreadedServer,
                                    error_line: ErrorLine) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    result = cli("login", alice, "--password-stdin", "--server", server.url, input="nope\n")
    assert result.exit_code == 1
    assert error_line(result).startswith("Error: login failed")


def test_send_history_status(cli: Cli, server: ThreadedServer, tmp_path: Path) -> None:
    alice, bob = unique("alice"), unique("bob")
    other_user(cli, server, tmp_path, bob)
    login(cli, server, alice)

    sent = cli("send", "hello from the cli")
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip().endswith(f"#general {alice}: hello from the cli")

    direct = cli("send", "just for you", "--to", bob, "--json")
    assert direct.exit_code == 0, direct.output
    dm_chat = json.loads(direct.stdout)["message"]["chat"]
    assert dm_chat.startswith("dm:")

    general = cli("history", "--limit", "50")
    assert general.exit_code == 0, general.output
    assert f"{alice}: hello from the cli" in general.stdout
    assert "just for you" not in general.stdout

    private = cli("history", "--chat", dm_chat, "--json")
    texts = [item["text"] for item in json.loads(private.stdout)["messages"]]
    assert texts == ["just for you"]

    status = cli("status")
    assert status.exit_code == 0, status.output
    assert f"user     {alice}" in status.stdout
    assert f"@{bob}" in status.stdout
    assert json.loads(cli("status", "--json").stdout)["me"]["name"] == alice


def test_send_later(cli: Cli, server: ThreadedServer) -> None:
    login(cli, server, unique("alice"))
    result = cli("send", "see you tomorrow", "--delay", "3600")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("scheduled ") and "(pending)" in result.stdout
    assert "see you tomorrow" in result.stdout


def test_history_shows_comments_under_their_parent(cli: Cli, server: ThreadedServer) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    parent = json.loads(cli("send", "parent text", "--json").stdout)["message"]["id"]
    cli("send", "unrelated")
    comment = cli("call", "comment", json.dumps({"message_id": parent, "text": "a comment"}))
    assert comment.exit_code == 0, comment.output
    lines = cli("history").stdout.splitlines()
    at = next(index for index, line in enumerate(lines) if "parent text" in line)
    assert "↳" in lines[at + 1] and "a comment" in lines[at + 1]


def test_call_prints_json_and_reports_errors(cli: Cli, server: ThreadedServer,
                                             error_line: ErrorLine) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    status = cli("call", "status")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["me"]["name"] == alice
    sent = cli("call", "send", "-", input='{"text": "from stdin"}')
    assert json.loads(sent.stdout)["message"]["text"] == "from stdin"
    missing = cli("call", "no.such.method")
    assert missing.exit_code == 1
    assert "-32601" in error_line(missing)
    bad = cli("call", "send", '{"text": 5}')
    assert bad.exit_code == 1
    assert "text" in error_line(bad)


def test_logout_revokes_and_forgets(cli: Cli, server: ThreadedServer,
                                    error_line: ErrorLine) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    token = json.loads(cli.session_file.read_text())["token"]
    result = cli("logout")
    assert result.exit_code == 0, result.output
    assert json.loads(cli.session_file.read_text())["token"] is None
    assert token_is_revoked(server, token)
    after = cli("send", "hi")
    assert after.exit_code == 1
    assert "not logged in" in error_line(after)


def test_revoked_session_is_one_line(cli: Cli, server: ThreadedServer,
                                     error_line: ErrorLine) -> None:
    alice = unique("alice")
    login(cli, server, alice)
    token = json.loads(cli.session_file.read_text())["token"]
    asyncio.run(revoke(server, token))
    result = cli("send", "hi")
    assert result.exit_code == 1
    assert "rpcchat login" in error_line(result)


def test_other_server_needs_its_own_login(cli: Cli, server: ThreadedServer,
                                          error_line: ErrorLine) -> None:
    login(cli, server, unique("alice"))
    result = cli("send", "hi", "--server", "http://127.0.0.1:1")
    assert result.exit_code == 1
    assert "not logged in to http://127.0.0.1:1" in error_line(result)


def test_chat_sends_lines_and_commands(cli: Cli, server: ThreadedServer, tmp_path: Path) -> None:
    alice, bob = unique("alice"), unique("bob")
    other_user(cli, server, tmp_path, bob)
    login(cli, server, alice)
    script = "\n".join(["hello everyone", "/help", f"/to {bob}", "hi bob", "//slash text",
                        "/bogus", "/history", "/chat no-such-chat", "lost words", "/general",
                        "/quit", "never sent"]) + "\n"
    result = cli("chat", input=script)
    assert result.exit_code == 0, result.output
    assert "/to USER" in result.stdout  # the help text
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr  # one line per failure, and the session went on
    assert "unknown command /bogus" in errors[0]
    assert errors[1].startswith("error: ")
    general = [item["text"] for item in history(cli, "general")]
    assert "hello everyone" in general and "never sent" not in general
    sent = json.loads(cli("send", "more", "--to", bob, "--json").stdout)["message"]
    assert [item["text"] for item in history(cli, sent["chat"])] == [
        "hi bob", "/slash text", "more"]


# --- long-running commands in a subprocess --------------------------------------------------

class Process:
    """`python -m rpcchat ...` with stdout lines readable with a timeout."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "rpcchat", *args], env={**os.environ, **env},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool]) -> str:
        while True:
            try:
                line = self.lines.get(timeout=LINE_TIMEOUT)
            except queue.Empty:
                raise AssertionError("no matching line in time") from None
            if predicate(line):
                return line

    def interrupt(self) -> tuple[int, str]:
        self.popen.send_signal(signal.SIGINT)
        _, stderr = self.popen.communicate(timeout=LINE_TIMEOUT)
        return self.popen.returncode, stderr

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


@pytest.fixture
def processes() -> Iterator[Callable[[list[str], dict[str, str]], Process]]:
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str]) -> Process:
        started.append(Process(args, env))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def test_listen_json_receives_a_message(cli: Cli, server: ThreadedServer, tmp_path: Path,
                                        processes: Callable[..., Process]) -> None:
    alice, bob = unique("alice"), unique("bob")
    bob_env = other_user(cli, server, tmp_path, bob)
    login(cli, server, alice)
    listener = processes(["listen", "--json"], {"RPCCHAT_CONFIG": str(cli.session_file)})
    assert cli("send", "are you there?", **bob_env).exit_code == 0
    line = listener.wait_for(lambda text: "are you there?" in text)
    event = json.loads(line)
    assert event["type"] == "message" and event["data"]["from"] == bob
    code, stderr = listener.interrupt()
    assert code == 0 and "Traceback" not in stderr and stderr.strip() == ""


def test_listen_human_and_chat_show_incoming_messages(
        cli: Cli, server: ThreadedServer, tmp_path: Path,
        processes: Callable[..., Process]) -> None:
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    bob_env = other_user(cli, server, tmp_path, bob)
    carol_env = other_user(cli, server, tmp_path, carol)  # one token per client
    login(cli, server, alice)
    listener = processes(["listen"], {"RPCCHAT_CONFIG": str(cli.session_file)})
    chat = processes(["chat"], carol_env)
    chat.wait_for(lambda text: text.startswith("Logged in as"))
    assert cli("send", "good morning", **bob_env).exit_code == 0
    line = listener.wait_for(lambda text: "good morning" in text)
    assert line.endswith(f"#general {bob}: good morning") and line.startswith("[")
    chat.wait_for(lambda text: text.endswith(f"{bob}: good morning"))
    assert chat.popen.stdin is not None
    chat.popen.stdin.write("/quit\n")
    chat.popen.stdin.flush()
    assert chat.popen.wait(LINE_TIMEOUT) == 0
    code, stderr = listener.interrupt()
    assert code == 0 and stderr.strip() == ""


# --- helpers talking to the server directly -------------------------------------------------

def history(cli: Cli, chat: str) -> list[dict[str, object]]:
    result = cli("history", "--chat", chat, "--json")
    assert result.exit_code == 0, result.output
    messages: list[dict[str, object]] = json.loads(result.stdout)["messages"]
    return messages


async def revoke(server: ThreadedServer, token: str) -> None:
    async with ChatClient(server.url, token) as client:
        await client.disconnect()


def token_is_revoked(server: ThreadedServer, token: str) -> bool:
    async def check() -> bool:
        async with ChatClient(server.url, token) as client:
            try:
                await client.poll(timeout=0)
            except RpcCallError as exc:
                return exc.code == UNAUTHORIZED
        return False

    return asyncio.run(check())

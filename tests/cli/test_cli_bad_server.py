"""The command line against a server that answers well-formed JSON-RPC with results of the
wrong shape, or refuses an upload without ever making progress: one error line and exit
code 1, never a traceback or a hang."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from cli.session import Session, save_session
from cli_harness import Cli

ErrorLine = Callable[[Result], str]
POLL_INTERVAL = 0.01  # how soon the fake server notices it is shut down
# The JSON-RPC members (`result` or `error`) a fake server answers a call with.
Answer = Callable[[str, dict[str, Any]], dict[str, Any]]


class FakeServer(ThreadingHTTPServer):
    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.answer = answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def do_POST(self) -> None:
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        members = self.server.answer(call["method"], call.get("params") or {})
        body = json.dumps({"jsonrpc": "2.0", "id": call["id"], **members}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests look at the command line's output only."""


@pytest.fixture
def fake_server(cli: Cli) -> Iterator[Callable[[Answer], str]]:
    """`fake_server(answer)` serves `answer` and logs the test's session in to it."""
    servers: list[FakeServer] = []

    def start(answer: Answer) -> str:
        server = FakeServer(answer)
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,),
                         daemon=True).start()
        save_session(Session(server.url, "alice", "token"))
        return server.url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# Commands that print something the result must hold (history and status print an empty
# result as "no messages" and "not logged in").
NEEDING_MEMBERS = [
    ["login", "alice", "--password-stdin"], ["send", "hi"], ["send", "hi", "--delay", "60"],
    ["comment", "1", "yes"], ["scheduled", "list"], ["scheduled", "cancel", "s1"],
    ["report", "bob"], ["group", "create", "team"], ["group", "invite", "g:1", "bob"],
    ["group", "link", "g:1"], ["group", "join", "abc"], ["group", "requests", "g:1"],
    ["group", "approve", "g:1", "bob"], ["file", "get", "f1"],
]
WRONG_TYPES = {"message": "x", "scheduled": 3, "messages": "x", "server": "x", "me": "x",
               "chat": "x", "requests": [1], "status": "x", "size": "x", "file": "x"}
CASES = ([pytest.param(command, {}, id=f"{' '.join(command)}-empty")
          for command in NEEDING_MEMBERS]
         + [pytest.param(command, WRONG_TYPES, id=f"{' '.join(command)}-wrong-types")
            for command in [*NEEDING_MEMBERS, ["history"], ["status"]]])


@pytest.mark.parametrize("command, result", CASES)
def test_a_result_of_the_wrong_shape_is_one_line(
        cli: Cli, fake_server: Callable[[Answer], str], error_line: ErrorLine,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str],
        result: dict[str, Any]) -> None:
    monkeypatch.chdir(tmp_path)  # `file get` would save here
    fake_server(lambda method, params: {"result": result})
    outcome = cli(*command, input="secret\n")
    assert outcome.exit_code == 1, outcome.output
    assert error_line(outcome).startswith("Error: ")


def test_a_garbled_error_is_still_one_line(cli: Cli, fake_server: Callable[[Answer], str],
                                           error_line: ErrorLine) -> None:
    fake_server(lambda method, params: {"error": {
        "code": -32005, "message": "Rate limited", "data": {"retry_after": "soon"}}})
    outcome = cli("send", "hi")
    assert outcome.exit_code == 1
    assert error_line(outcome) == "Error: Rate limited (code -32005)"


def test_an_upload_the_server_never_takes_ends_with_one_line(
        cli: Cli, fake_server: Callable[[Answer], str], tmp_path: Path) -> None:
    """A server that answers every chunk with "expected offset 0" would have the upload
    resent from the start for ever."""
    puts: list[int] = []

    def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "file.begin":
            return {"result": {"upload_id": "u1", "chunk_size": 4, "offset": 0}}
        puts.append(params["offset"])
        if len(puts) > 50:
            return {"error": {"code": -32003, "message": "Not found"}}  # ends a runaway loop
        return {"error": {"code": -32004, "message": "Conflict", "data": {"offset": 0}}}

    fake_server(answer)
    path = tmp_path / "notes.txt"
    path.write_bytes(b"0123456789")
    outcome = cli("file", "send", str(path))
    assert outcome.exit_code == 1
    assert "Traceback" not in outcome.output
    # The progress bar's label comes first on stderr.
    assert "refuses the upload at offset 0" in outcome.stderr.strip().splitlines()[-1]
    assert len(puts) < 5, puts

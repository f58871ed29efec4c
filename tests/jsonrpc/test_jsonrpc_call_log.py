"""The per-call log line: a method name a client made up is logged escaped and cut."""

from __future__ import annotations

import json
import logging

import pytest

from rpcchat.app import log_calls
from rpcchat.jsonrpc.dispatcher import Dispatcher


async def logged_line(dispatcher: Dispatcher, method: str,
                      caplog: pytest.LogCaptureFixture) -> str:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1}).encode()
    result = await dispatcher.dispatch(body, None)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rpcchat.app"):
        log_calls(result, "127.0.0.1:5000")
    (line,) = [record.getMessage() for record in caplog.records]
    return line


async def test_known_method_names_are_logged_as_they_are(
        dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    line = await logged_line(dispatcher, "get_data", caplog)
    assert line.startswith("rpc get_data user=- ok ")
    assert (await logged_line(dispatcher, "no.such_method", caplog)).startswith(
        "rpc no.such_method user=- error -32601 ")


async def test_a_made_up_method_name_cannot_forge_a_log_line(
        dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    forged = "x user=admin ok 1.0ms peer=10.0.0.1\nrpc connect user=admin ok\x1b[2K"
    line = await logged_line(dispatcher, forged, caplog)
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("rpc 'x user=admin ok 1.0ms peer=10.0.0.1\\nrpc connect user=admin ")
    assert line.endswith("peer=127.0.0.1:5000") and " user=- error -32601 " in line


async def test_a_long_method_name_is_cut(dispatcher: Dispatcher,
                                         caplog: pytest.LogCaptureFixture) -> None:
    line = await logged_line(dispatcher, "a" * 100_000, caplog)
    assert line.startswith("rpc '" + "a" * 64 + "'... user=- error -32601 ")
    assert len(line) < 200

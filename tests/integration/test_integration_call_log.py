"""One info line per call: method, user, outcome, duration; never a password or token."""

from __future__ import annotations

import logging
import re

import pytest
from rpc_testing import CHEAP_HASHER, ClientFactory, ServerFactory


async def test_each_call_is_logged_with_its_user_and_outcome(
        running_server: ServerFactory, rpc_client: ClientFactory,
        caplog: pytest.LogCaptureFixture) -> None:
    server = await running_server(password_hasher=CHEAP_HASHER)
    alice = await rpc_client(server)
    stranger = await rpc_client(server)
    with caplog.at_level(logging.INFO, logger="rpcchat.app"):
        await alice.connect("Alice", "correct horse battery")
        await alice.call("send", text="hello")
        await stranger.response("send", {"text": "no token"})
        await stranger.response("connect", {"name": "alice", "password": "wrong password"})
    lines = [record.getMessage() for record in caplog.records
             if record.name == "rpcchat.app" and record.getMessage().startswith("rpc ")]
    shapes = [re.sub(r" [0-9.]+ms peer=\S+$", "", line) for line in lines]
    assert shapes == [
        "rpc connect user=Alice ok",   # the account's own spelling, once it is known
        "rpc send user=Alice ok",
        "rpc send user=- error -32001",
        "rpc connect user=- error -32001",  # a failed login names nobody
    ]
    assert all(re.search(r" [0-9.]+ms peer=127\.0\.0\.1:\d+$", line) for line in lines)
    assert alice.token is not None and alice.token not in caplog.text
    assert "horse" not in caplog.text and "wrong password" not in caplog.text

"""A request's bearer token is resolved once, however many calls the request carries."""

from __future__ import annotations

import json

import pytest

from integration_helpers import Users
from rpcchat.app import ChatServer
from rpcchat.domain.service import ChatService, Session


async def test_a_batch_resolves_its_token_once(
    server: ChatServer, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    (alice,) = await users(server, "alice")
    lookups: list[object] = []
    real = ChatService.authenticate

    def counting(service: ChatService, token: object) -> Session:
        lookups.append(token)
        return real(service, token)

    monkeypatch.setattr(ChatService, "authenticate", counting)
    batch = [{"jsonrpc": "2.0", "id": n, "method": method, "params": params}
             for n, (method, params) in enumerate([("send", {"text": "one"}),
                                                   ("history", {"limit": 1}),
                                                   ("status", {})])]
    reply = await alice.post(batch)
    assert reply.status == 200
    assert [answer.get("error") for answer in json.loads(reply.body)] == [None, None, None]
    assert len(lookups) == 1

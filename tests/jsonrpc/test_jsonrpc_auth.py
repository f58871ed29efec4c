"""Bearer authentication: required / optional / none, resolved once per dispatch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpcchat.clock import ManualClock
from rpcchat.jsonrpc.context import CallContext, Principal
from rpcchat.jsonrpc.dispatcher import Dispatcher
from rpcchat.jsonrpc.registry import Auth, Registry, rpc_method


class WhoAmI:
    def __init__(self) -> None:
        self.contexts: list[CallContext] = []

    @rpc_method("private")
    async def private(self, ctx: CallContext) -> dict[str, Any]:
        self.contexts.append(ctx)
        return {"user": ctx.user, "session": ctx.session_id}

    @rpc_method("maybe", auth=Auth.OPTIONAL)
    async def maybe(self, ctx: CallContext) -> dict[str, Any]:
        self.contexts.append(ctx)
        return {"user": None if ctx.principal is None else ctx.user}

    @rpc_method("maybe_strict", auth=Auth.OPTIONAL)
    async def maybe_strict(self, ctx: CallContext) -> dict[str, Any]:
        return {"user": ctx.user}   # Unauthorized when anonymous

    @rpc_method("public", auth=Auth.NONE)
    async def public(self, ctx: CallContext) -> dict[str, Any]:
        self.contexts.append(ctx)
        return {"principal": ctx.principal is not None, "token": ctx.token}

    @rpc_method("logout")
    async def logout(self, ctx: CallContext) -> dict[str, Any]:
        return {"token_seen": ctx.token}


class FailingAuthenticator:
    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, token: str) -> Principal:
        self.calls += 1
        raise RuntimeError("database is down")


@pytest.fixture
def who() -> WhoAmI:
    return WhoAmI()


@pytest.fixture
def auth_dispatcher(who: WhoAmI, authenticator: Any, clock: ManualClock) -> Dispatcher:
    registry = Registry()
    registry.add(who)
    return Dispatcher(registry, authenticator, clock)


def request(method: str, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "id": request_id}


async def ask(dispatcher: Dispatcher, message: Any, authorization: str | None) -> Any:
    result = await dispatcher.dispatch(json.dumps(message).encode(), authorization)
    assert result.body is not None
    return json.loads(result.body)


def code(reply: Any) -> int | None:
    return reply["error"]["code"] if "error" in reply else None


@pytest.mark.parametrize("header", [
    "Bearer tok-alice", "bearer tok-alice", "BEARER   tok-alice  ", "  Bearer\ttok-alice",
])
async def test_required_with_a_good_token(auth_dispatcher: Dispatcher, header: str) -> None:
    reply = await ask(auth_dispatcher, request("private"), header)
    assert reply["result"]["user"] == "alice"
    assert reply["result"]["session"] == "session-of-alice"


@pytest.mark.parametrize("header", [
    None, "", "   ", "Bearer", "Bearer ", "Bearer nope", "Basic dG9rLWFsaWNl", "tok-alice",
    "Token tok-alice",
])
async def test_required_without_a_good_token(auth_dispatcher: Dispatcher, who: WhoAmI,
                                             header: str | None) -> None:
    reply = await ask(auth_dispatcher, request("private"), header)
    assert code(reply) == -32001
    assert who.contexts == []


async def test_optional_without_header_is_anonymous(auth_dispatcher: Dispatcher) -> None:
    assert (await ask(auth_dispatcher, request("maybe"), None))["result"]["user"] is None
    assert code(await ask(auth_dispatcher, request("maybe_strict"), None)) == -32001


async def test_optional_with_a_token(auth_dispatcher: Dispatcher) -> None:
    assert (await ask(auth_dispatcher, request("maybe"), "Bearer tok-bob"))["result"][
        "user"] == "bob"


@pytest.mark.parametrize("header", ["Bearer nope", "Basic xyz"])
async def test_optional_with_a_bad_token_is_unauthorized(auth_dispatcher: Dispatcher,
                                                         header: str) -> None:
    assert code(await ask(auth_dispatcher, request("maybe"), header)) == -32001


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic xyz", "Bearer tok-alice"])
async def test_none_ignores_the_header(auth_dispatcher: Dispatcher, authenticator: Any,
                                       header: str | None) -> None:
    reply = await ask(auth_dispatcher, request("public"), header)
    assert reply["result"] == {"principal": False, "token": None, "server_time": 1.7e9}
    assert authenticator.calls == []


async def test_token_reaches_the_handler(auth_dispatcher: Dispatcher) -> None:
    reply = await ask(auth_dispatcher, request("logout"), "Bearer tok-alice")
    assert reply["result"]["token_seen"] == "tok-alice"


async def test_token_is_not_in_the_context_repr(auth_dispatcher: Dispatcher, who: WhoAmI,
                                                ) -> None:
    await ask(auth_dispatcher, request("private"), "Bearer tok-alice")
    assert "tok-alice" not in repr(who.contexts[0])


async def test_authenticated_once_per_batch(auth_dispatcher: Dispatcher,
                                            authenticator: Any) -> None:
    batch = [request("private", 1), request("maybe", 2), request("public", 3),
             request("private", 4)]
    reply = await ask(auth_dispatcher, batch, "Bearer tok-alice")
    assert [item.get("result", {}).get("user") for item in reply] == [
        "alice", "alice", None, "alice"]
    assert authenticator.calls == ["tok-alice"]


async def test_bad_token_in_a_batch_fails_only_the_calls_that_need_it(
        auth_dispatcher: Dispatcher, authenticator: Any) -> None:
    batch = [request("private", 1), request("public", 2), request("maybe", 3)]
    reply = await ask(auth_dispatcher, batch, "Bearer nope")
    assert [code(item) for item in reply] == [-32001, None, -32001]
    assert authenticator.calls == ["nope"]


async def test_not_authenticated_when_no_call_needs_it(auth_dispatcher: Dispatcher,
                                                       authenticator: Any) -> None:
    await ask(auth_dispatcher, [request("public", 1), request("nope", 2)], "Bearer tok-alice")
    assert authenticator.calls == []


async def test_authenticator_fault_is_internal_error_once(who: WhoAmI,
                                                          clock: ManualClock) -> None:
    registry = Registry()
    registry.add(who)
    failing = FailingAuthenticator()
    dispatcher = Dispatcher(registry, failing, clock)
    reply = await ask(dispatcher, [request("private", 1), request("maybe", 2)], "Bearer x")
    assert [code(item) for item in reply] == [-32603, -32603]
    assert failing.calls == 1


async def test_unauthorized_call_record_has_no_user(auth_dispatcher: Dispatcher) -> None:
    result = await auth_dispatcher.dispatch(json.dumps(request("private")).encode(), None)
    assert [(c.method, c.user, c.outcome) for c in result.calls] == [
        ("private", None, "error -32001")]

"""Fixtures for the JSON-RPC core: the specification's example methods, a fake
authenticator and a dispatcher wired to a manual clock (no sockets, no sleeping)."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import pytest

from rpcchat.clock import ManualClock
from rpcchat.errors import Unauthorized
from rpcchat.jsonrpc.context import CallContext, Principal
from rpcchat.jsonrpc.dispatcher import DispatchResult, Dispatcher
from rpcchat.jsonrpc.registry import Auth, Registry, rpc_method

GOOD_TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}

Send = Callable[..., Awaitable[Any]]


class FakeAuthenticator:
    """Knows two tokens; counts how often it was asked."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def authenticate(self, token: str) -> Principal:
        self.calls.append(token)
        user = GOOD_TOKENS.get(token)
        if user is None:
            raise Unauthorized("unknown token")
        return Principal(user=user, session_id=f"session-of-{user}")


class SpecExampleMethods:
    """The methods used by the examples of the JSON-RPC 2.0 specification."""

    def __init__(self) -> None:
        self.notified: list[tuple[str, Any]] = []

    @rpc_method("subtract", auth=Auth.NONE)
    async def subtract(self, ctx: CallContext, minuend: int, subtrahend: int) -> int:
        return minuend - subtrahend

    @rpc_method("sum", auth=Auth.NONE)
    async def sum(self, ctx: CallContext, a: int, b: int, c: int) -> int:
        return a + b + c

    @rpc_method("update", auth=Auth.NONE)
    async def update(self, ctx: CallContext, a: int, b: int, c: int, d: int, e: int) -> None:
        self.notified.append(("update", [a, b, c, d, e]))

    @rpc_method("notify_hello", auth=Auth.NONE)
    async def notify_hello(self, ctx: CallContext, value: int) -> None:
        self.notified.append(("notify_hello", value))

    @rpc_method("notify_sum", auth=Auth.NONE)
    async def notify_sum(self, ctx: CallContext, a: int, b: int, c: int) -> None:
        self.notified.append(("notify_sum", a + b + c))

    @rpc_method("get_data", auth=Auth.NONE)
    async def get_data(self, ctx: CallContext) -> list[Any]:
        return ["hello", 5]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def authenticator() -> FakeAuthenticator:
    return FakeAuthenticator()


@pytest.fixture
def spec_methods() -> SpecExampleMethods:
    return SpecExampleMethods()


@pytest.fixture
def registry(spec_methods: SpecExampleMethods) -> Registry:
    registry = Registry()
    registry.add(spec_methods)
    return registry


@pytest.fixture
def dispatcher(registry: Registry, authenticator: FakeAuthenticator,
               clock: ManualClock) -> Dispatcher:
    return Dispatcher(registry, authenticator, clock)


def as_body(message: Any) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode("utf-8")
    return json.dumps(message).encode("utf-8")


@pytest.fixture
def send(dispatcher: Dispatcher) -> Send:
    """send(message, authorization=None) -> parsed response, or None for no response."""

    async def send(message: Any, authorization: str | None = None) -> Any:
        result = await dispatcher.dispatch(as_body(message), authorization)
        return None if result.body is None else json.loads(result.body)

    return send


@pytest.fixture
def send_raw(dispatcher: Dispatcher) -> Callable[..., Awaitable[DispatchResult]]:
    async def send_raw(message: Any, authorization: str | None = None) -> DispatchResult:
        return await dispatcher.dispatch(as_body(message), authorization)

    return send_raw


def without_message(response: Any) -> Any:
    """A response with error.message dropped (its wording is free)."""
    if isinstance(response, list):
        return [without_message(item) for item in response]
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        error = {k: v for k, v in response["error"].items() if k != "message"}
        return {**response, "error": error}
    return response


@pytest.fixture
def strip_message() -> Callable[[Any], Any]:
    return without_message

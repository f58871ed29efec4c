"""A small JSON-RPC test client over real sockets and the server settings tests share.

Importable from any test module as `rpc_testing` (tests/ is on sys.path for pytest; run mypy
with MYPYPATH=tests). The fixtures that hand these out live in tests/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from rpcchat.app import ChatServer
from rpcchat.config import HttpLimits
from rpcchat.domain.passwords import ScryptHasher
from rpcchat.transport.client import HttpClient, HttpResponse

# Small enough that a few hundred accounts cost nothing; production keeps scrypt's defaults.
CHEAP_HASHER = ScryptHasher(n=2, r=1, p=1)
# Short shutdown grace so closing a server with a parked poll does not stall a test.
TEST_HTTP_LIMITS = HttpLimits(keepalive_timeout=5.0, shutdown_grace=0.5)

_DEFAULT = object()

# The contract's error codes (API.md), written out here rather than taken from the code
# under test.
INVALID_PARAMS = -32602
FORBIDDEN = -32002
NOT_FOUND = -32003
CONFLICT = -32004
RATE_LIMITED = -32005
BANNED = -32006
TOO_LARGE = -32007


class RpcFailure(Exception):
    """The server answered a call with a JSON-RPC error object."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('message')} (code {error.get('code')})")
        self.error = error
        self.code: int = error.get("code", 0)
        self.data: Any = error.get("data")


class RpcClient:
    """JSON-RPC 2.0 over `POST /rpc` with one keep-alive HTTP client. `token` (set by
    `connect`) is sent as `Authorization: Bearer` unless a call overrides it."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.http = HttpClient(url, timeout=timeout)
        self.token = token
        self.user: str | None = None
        self._next_id = 0

    async def post(self, payload: Any, *, token: Any = _DEFAULT,
                   path: str = "/rpc") -> HttpResponse:
        """POST raw bytes/str as they are, anything else JSON-encoded."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        bearer = self.token if token is _DEFAULT else token
        headers = [("Authorization", f"Bearer {bearer}")] if bearer is not None else []
        return await self.http.request("POST", path, body, headers)

    async def get(self, path: str) -> HttpResponse:
        return await self.http.request("GET", path)

    async def response(self, method: str, params: dict[str, Any] | None = None, *,
                       token: Any = _DEFAULT) -> dict[str, Any]:
        """The whole response object of one call (checked to match its request)."""
        self._next_id += 1
        request_id = self._next_id  # calls may run concurrently
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        reply = await self.post(request, token=token)
        assert reply.status == 200, (reply.status, reply.body)
        assert reply.header("content-type") == "application/json"
        decoded: dict[str, Any] = json.loads(reply.body)
        assert decoded.get("jsonrpc") == "2.0" and decoded.get("id") == request_id
        assert ("result" in decoded) != ("error" in decoded), decoded
        return decoded

    async def call(self, method: str, **params: Any) -> Any:
        """The call's result; a JSON-RPC error raises RpcFailure."""
        decoded = await self.response(method, params)
        if "error" in decoded:
            raise RpcFailure(decoded["error"])
        return decoded["result"]

    async def error(self, method: str, params: dict[str, Any] | None = None, *,
                    token: Any = _DEFAULT) -> dict[str, Any]:
        """The error object of a call that must fail."""
        decoded = await self.response(method, params, token=token)
        assert "error" in decoded, f"{method} was expected to fail: {decoded}"
        error: dict[str, Any] = decoded["error"]
        return error

    async def connect(self, name: str, password: str = "secret", **params: Any) -> Any:
        """`connect`, remembering the token for the next calls."""
        result = await self.call("connect", name=name, password=password, **params)
        self.token = result["token"]
        self.user = result["user"]
        return result

    async def close(self) -> None:
        await self.http.close()


ServerFactory = Callable[..., Awaitable[ChatServer]]
"""The `running_server` fixture: `await running_server(**config_overrides)`."""
ClientFactory = Callable[..., Awaitable[RpcClient]]
"""The `rpc_client` fixture: `await rpc_client(server_or_url, token=None)`."""


def server_url(server: ChatServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def events_since(client: RpcClient, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Every event the user sees after `since`, without waiting; and the next position."""
    found: list[dict[str, Any]] = []
    while True:
        reply = await client.call("poll", since=since, timeout=0, limit=500)
        found += reply["events"]
        since = reply["next"]
        if not reply["more"]:
            return found, since


async def error_of(client: RpcClient, method: str, **params: Any) -> dict[str, Any]:
    """The error object of a call that must fail."""
    return await client.error(method, params)

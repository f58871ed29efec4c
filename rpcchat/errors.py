"""Errors a call can end with, each carrying its JSON-RPC code and `error.data`.

The domain raises these; the JSON-RPC layer turns them into error objects. One place
for every code of the wire contract (../shared/API.md).
"""

from __future__ import annotations

from typing import Any


class RpcError(Exception):
    """An error with a JSON-RPC code, a short message and optional `data`."""

    code: int = -32603
    message: str = "Internal error"

    def __init__(self, message: str | None = None, data: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        self.data = data

    def to_error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = -32700
    message = "Parse error"


class InvalidRequest(RpcError):
    code = -32600
    message = "Invalid Request"


class MethodNotFound(RpcError):
    code = -32601
    message = "Method not found"


class InvalidParams(RpcError):
    code = -32602
    message = "Invalid params"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"Invalid params: {field}: {reason}", {"field": field, "reason": reason})


class InternalError(RpcError):
    code = -32603
    message = "Internal error"


class Unauthorized(RpcError):
    code = -32001
    message = "Unauthorized"


class Forbidden(RpcError):
    code = -32002
    message = "Forbidden"


class NotFound(RpcError):
    code = -32003
    message = "Not found"


class Conflict(RpcError):
    code = -32004
    message = "Conflict"


class RateLimited(RpcError):
    code = -32005
    message = "Rate limited"

    def __init__(self, retry_after: float, resets_at: float) -> None:
        super().__init__(
            f"Rate limited: retry after {retry_after:.0f} s",
            {"retry_after": retry_after, "resets_at": resets_at},
        )


class Banned(RpcError):
    code = -32006
    message = "Banned"

    def __init__(self, until: float) -> None:
        super().__init__("Banned", {"until": until})


class TooLarge(RpcError):
    code = -32007
    message = "Too large"

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"Too large: {what} over {limit}", {"limit": limit})


class CursorAhead(RpcError):
    code = -32008
    message = "Cursor ahead of the server"

    def __init__(self, head: int) -> None:
        super().__init__(f"Cursor ahead of the server (head is {head})", {"head": head})

"""What the HTTP server hands to a route handler and what the handler gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from rpcchat.transport.parsing import first_header


@dataclass(slots=True)
class Request:
    """One complete HTTP request: head fields plus the whole (de-chunked) body."""

    method: str
    target: str                      # raw request-target, as sent
    path: str                        # target without the query (and without scheme/authority)
    query: str
    version: str                     # "HTTP/1.1" or "HTTP/1.0"
    headers: list[tuple[str, str]]   # names lower-cased, in the order received
    body: bytes
    peer: str                        # "ip:port", for logs

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)   # extra headers


# A handler answers with a Response. Raising parsing.HttpError answers that status instead
# (closing the connection if the error says so); any other exception is a 500, logged.
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """An exact path, the methods it answers and the handler that answers them."""

    path: str
    methods: frozenset[str]       # e.g. {"POST"}; HEAD is allowed automatically for GET routes
    handler: Handler
    max_body: int | None = None   # None -> HttpLimits.max_body

"""A small HTTP/1.1 client on asyncio streams: keep-alive pool, Content-Length and chunked
responses, per-request timeouts, one transparent retry on a connection found dead.

Only `http://` URLs: rpcchat speaks plain HTTP (put a TLS proxy in front if needed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rpcchat.config import HttpLimits
from rpcchat.transport.parsing import (
    ChunkedDecoder, Framing, HttpError, ResponseHead, first_header, is_field_value, is_token,
    parse_response_head,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 80
MAX_LINE_BYTES = 16 * 1024            # one chunk-size or trailer line
MAX_HEAD_BYTES = 64 * 1024            # status line and all header lines together
MAX_HEADER_COUNT = 200
MAX_BODY_BYTES = 64 * 1024 * 1024     # guards memory against a runaway server
CLIENT_LIMITS = HttpLimits(max_header_bytes=MAX_HEAD_BYTES, max_header_count=MAX_HEADER_COUNT)
MAX_IDLE_CONNECTIONS = 4
CLOSE_WAIT_SECONDS = 1.0

# Methods RFC 9110 §9.2.2 calls idempotent: repeating them has the same effect as once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Framing is this client's job; a caller setting these would desynchronise the connection.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


class HttpClientError(Exception):
    """Base of every error this client raises."""


class InvalidUrl(HttpClientError, ValueError):
    """The base URL is not a usable `http://host[:port][/prefix]` URL."""


class InvalidRequest(HttpClientError, ValueError):
    """The caller asked for a request that cannot be sent safely (bad method, path, header)."""


class ConnectError(HttpClientError):
    """No connection could be made (refused, unknown host, connect timeout)."""


class RequestTimeout(HttpClientError, TimeoutError):
    """The complete response did not arrive within the request's timeout."""


class ConnectionLost(HttpClientError):
    """The connection closed or broke before the complete response arrived."""


class ProtocolError(HttpClientError):
    """The server's response breaks HTTP/1.1 framing rules."""


class _StaleConnection(Exception):
    """A reused connection turned out dead before any byte of the response arrived."""


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


@dataclass(frozen=True)
class Origin:
    """Where requests go: host, port and an optional path prefix of the base URL."""

    host: str
    port: int
    path_prefix: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_header}{self.path_prefix}"

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        try:
            parts = urlsplit(base_url)
            port = parts.port
        except ValueError as exc:
            raise InvalidUrl(f"invalid server URL {base_url!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme == "https":
            raise InvalidUrl(f"https is not supported ({base_url}): rpcchat speaks plain "
                             "http://; use a TLS-terminating proxy for encryption")
        if scheme != "http":
            raise InvalidUrl(f"invalid server URL {base_url!r}: expected http://HOST[:PORT]")
        if not parts.hostname:
            raise InvalidUrl(f"invalid server URL {base_url!r}: no host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise InvalidUrl(f"invalid server URL {base_url!r}: only http://HOST[:PORT][/PATH]")
        return cls(parts.hostname, port or DEFAULT_PORT, parts.path.rstrip("/"))


@dataclass(eq=False)  # identity semantics: connections live in a set
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    responses: int = 0
    idle_since: float = field(default_factory=time.monotonic)

    def looks_alive(self, idle_timeout: float) -> bool:
        """False if the server already closed it, or it idled long enough to be at risk."""
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        return time.monotonic() - self.idle_since < idle_timeout

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_WAIT_SECONDS)
        except (OSError, TimeoutError) as exc:
            # Closing is best effort: the socket is released either way.
            log.debug("closing connection: %r", exc)


class _ResponseReader:
    """Reads one response off a connection, remembering whether any byte of it arrived.

    The parsing rules themselves live in `rpcchat.transport.parsing`, shared with the server.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.received_any = False

    async def head(self, method: str) -> ResponseHead:
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.received_any = self.received_any or bool(exc.partial)
            if exc.partial and not b"HTTP/".startswith(exc.partial[:5]):
                raise ProtocolError(f"not an HTTP response: {first_line(exc.partial)!r}"
                                    ) from None
            raise self._closed() from None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"response head larger than {MAX_HEAD_BYTES} bytes") from None
        self.received_any = True
        try:
            return parse_response_head(raw, method, CLIENT_LIMITS)
        except HttpError as exc:
            raise ProtocolError(f"{exc.reason} (status line {first_line(raw)!r})") from None

    async def body(self, head: ResponseHead) -> bytes:
        if head.framing is Framing.NONE:
            return b""
        if head.framing is Framing.LENGTH:
            return await self.exactly(head.content_length)
        if head.framing is Framing.CHUNKED:
            return await self.chunked()
        return await self.until_close()

    async def exactly(self, size: int) -> bytes:
        if size > MAX_BODY_BYTES:
            raise ProtocolError(f"response body of {size} bytes is over {MAX_BODY_BYTES}")
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise ConnectionLost("connection closed in the middle of the response body") from None

    async def chunked(self) -> bytes:
        decoder = ChunkedDecoder(MAX_BODY_BYTES, max_line=MAX_LINE_BYTES,
                                 max_trailer_bytes=MAX_HEAD_BYTES)
        parts: list[bytes] = []
        try:
            while not decoder.done:
                wanted = decoder.wanted()
                # Read exactly what the decoder needs, so nothing of a next response is eaten.
                data = await (self.reader.readuntil(b"\n") if wanted is None
                              else self.reader.read(wanted))
                if not data:
                    raise ConnectionLost("connection closed in the middle of a chunked body")
                parts.append(decoder.feed(data))
        except asyncio.IncompleteReadError:
            raise ConnectionLost("connection closed in the middle of a chunked body") from None
        except asyncio.LimitOverrunError:
            raise ProtocolError("chunk size or trailer line too long") from None
        except HttpError as exc:
            raise ProtocolError(f"invalid chunked body: {exc.reason}") from None
        return b"".join(parts)

    async def until_close(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while chunk := await self.reader.read(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ProtocolError(f"response body larger than {MAX_BODY_BYTES} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _closed(self) -> Exception:
        if self.received_any:
            return ConnectionLost("connection closed in the middle of the response")
        return _StaleConnection("connection closed before any response arrived")


def first_line(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0][:80].decode("latin-1")


def check_header(name: str, value: str) -> None:
    if not is_token(name):
        raise InvalidRequest(f"invalid header name {name!r}")
    if not is_field_value(value):
        raise InvalidRequest(f"invalid characters in the value of header {name}")
    if name.lower() in RESERVED_HEADERS:
        raise InvalidRequest(f"header {name} is set by the client itself")


def build_request(origin: Origin, method: str, path: str, body: bytes,
                  headers: Sequence[tuple[str, str]]) -> bytes:
    if not is_token(method):
        raise InvalidRequest(f"invalid method {method!r}")
    if not path.startswith("/") or any(char.isspace() or ord(char) < 32 for char in path):
        raise InvalidRequest(f"invalid path {path!r}: must start with / and hold no whitespace")
    lines = [f"{method} {origin.path_prefix}{path} HTTP/1.1", f"Host: {origin.host_header}"]
    for name, value in headers:
        check_header(name, value)
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidRequest("request headers must be latin-1 text") from None
    return head + body


class HttpClient:
    """HTTP/1.1 client for one origin. Concurrent requests each get their own connection;
    finished ones go back to a small pool of idle kept-alive connections."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, connect_timeout: float = 5.0,
                 idle_timeout: float = 10.0) -> None:
        self.origin = Origin.parse(base_url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # Idle connections older than this are not reused: the server may be closing them.
        self.idle_timeout = idle_timeout
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    @property
    def base_url(self) -> str:
        return self.origin.url

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = (), timeout: float | None = None,
                      *, idempotent: bool | None = None) -> HttpResponse:
        """Send one request and read its whole response.

        `idempotent` says whether the request may be sent twice; by default it is derived
        from the method (or an `Idempotency-Key` header). Only such requests are retried,
        once, when a reused connection turns out dead before any of the response arrived.
        """
        if self._closed:
            raise HttpClientError("the HTTP client is closed")
        method = method.upper()
        payload = build_request(self.origin, method, path, body, headers)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or any(
                name.lower() == "idempotency-key" for name, _ in headers)
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit) as deadline:
                return await self._send(method, payload, idempotent)
        except TimeoutError:
            if deadline.expired():
                raise RequestTimeout(
                    f"{method} {path}: no complete response from {self.base_url} "
                    f"within {limit:g} s") from None
            raise

    async def close(self) -> None:
        """Close every connection; requests still running fail with ConnectionLost."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in self._busy:
            conn.abort()
        await asyncio.gather(*(conn.close() for conn in idle))

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, method: str, payload: bytes, idempotent: bool) -> HttpResponse:
        conn = await self._acquire()
        try:
            return await self._exchange(conn, method, payload)
        except _StaleConnection as exc:
            if self._closed:        # close() aborted it: fail as documented, never reconnect
                raise ConnectionLost(f"{self.base_url}: the HTTP client was closed") from exc
            if not idempotent:
                raise ConnectionLost(
                    f"{self.base_url}: the connection closed before any response arrived; "
                    "not retried because the request may not be repeated") from exc
            log.debug("kept-alive connection to %s was dead; retrying once", self.base_url)
        # A fresh connection never raises _StaleConnection: its failures are final.
        return await self._exchange(await self._open(), method, payload)

    async def _exchange(self, conn: _Connection, method: str, payload: bytes) -> HttpResponse:
        """Write the request, read the response; the connection is pooled or closed after."""
        self._busy.add(conn)
        keep = finished = False
        try:
            response, keep = await self._roundtrip(conn, method, payload)
            finished = True
            return response
        finally:
            self._busy.discard(conn)
            self._release(conn, keep, finished)

    async def _roundtrip(self, conn: _Connection, method: str,
                         payload: bytes) -> tuple[HttpResponse, bool]:
        reader = _ResponseReader(conn.reader)
        try:
            conn.writer.write(payload)
            await conn.writer.drain()
            head = await reader.head(method)
            while 100 <= head.status < 200:  # interim responses (e.g. 100 Continue)
                if head.status == 101:
                    raise ProtocolError("unexpected 101 Switching Protocols")
                head = await reader.head(method)
            body = await reader.body(head)
        except _StaleConnection:
            if conn.responses == 0:
                raise ConnectionLost(f"{self.base_url}: the server closed the connection "
                                     "without a response") from None
            raise
        except OSError as exc:  # reset, broken pipe
            if not reader.received_any and conn.responses > 0:
                raise _StaleConnection(str(exc)) from exc
            raise ConnectionLost(f"{self.base_url}: connection broken: {exc}") from exc
        conn.responses += 1
        keep = head.keep_alive
        return HttpResponse(head.status, head.headers, body, head.reason), keep

    async def _acquire(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the likeliest to be alive
            if conn.looks_alive(self.idle_timeout):
                return conn
            conn.abort()
        return await self._open()

    def _release(self, conn: _Connection, keep: bool, finished: bool) -> None:
        if not finished:
            conn.abort()  # failed or cancelled mid-exchange: its state is unknown
        elif not keep or self._closed or len(self._idle) >= MAX_IDLE_CONNECTIONS:
            conn.writer.close()
        else:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)

    async def _open(self) -> _Connection:
        host, port = self.origin.host, self.origin.port
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD_BYTES)
        except TimeoutError:
            raise ConnectError(f"cannot connect to {self.base_url}: no answer within "
                               f"{self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.base_url}: {describe_os_error(exc)}"
                               ) from exc
        return _Connection(reader, writer)


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return exc.strerror or str(exc)

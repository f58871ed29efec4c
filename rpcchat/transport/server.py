"""The HTTP/1.1 server: asyncio streams, one task per connection, a thin loop around the pure
parser of `rpcchat.transport.parsing`.

Rules implemented here (RFC 9112 unless noted; the syntax rules live in `parsing`):
- §9.3 persistence: keep-alive by default for HTTP/1.1, close for HTTP/1.0 without
  `Connection: keep-alive`; pipelined requests are answered one at a time, in order
  (§9.3.2), and never read past the end of the current request.
- §9.6 tear-down: `Connection: close` on the last response; after an answer whose request
  body was not (fully) read, a lingering close (FIN, then read and discard for a bounded time)
  so that the client reads the answer before the socket goes away.
- §6.3 message body length: a framing fault, an incomplete body or a timeout ends the
  connection; 413 is decided from Content-Length (or the chunk sizes so far) before any body
  byte is read, and a body is never preallocated from its announced length.
- RFC 9110 §10.1.1 / §15.2: `100 Continue` only to HTTP/1.1 clients that asked, and only once
  the request passed every check that could refuse it (404, 405, 413).
- RFC 9110 §15.5.6 405 with `Allow`; §15.5.9 408 for a head or body too slow; §6.6.1 `Date`
  on every response. HEAD is served by GET routes, without the body; `OPTIONS *` gets 204
  with the union of the routes' methods in `Allow`.
- First bytes that cannot start a request-line (binary garbage, a TLS hello) get 400 at
  once rather than at the header deadline.

A handler exception is a 500 (logged with its traceback, never sent) and the connection goes
on; a handler may also raise `HttpError` to answer that status.

Timeouts (HttpLimits): the whole request head must arrive within `header_timeout` of its first
byte; the whole body within `body_timeout`; an idle kept-alive connection is closed silently
after `keepalive_timeout` (a fresh connection gets `header_timeout` to send its first byte);
a client that does not read its response within `write_timeout` is dropped. They are enforced
by one lazily re-armed timer per connection, so the per-request cost is an attribute store.

A client that closes its side (FIN or RST) while its request is being handled is gone: the
handler is cancelled (handlers accept CancelledError), and a request whose client already
closed is not handled. Pipelined bytes still unread do not count as a close.

Connection cap (`max_connections`): a connection past the cap waits, unread, for a free slot
for up to `header_timeout`, then gets `503` and is closed. Waiting absorbs short bursts;
the bound keeps a flood from parking sockets forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Sequence

from rpcchat.clock import Clock, SystemClock
from rpcchat.config import HttpLimits
from rpcchat.transport.messages import Request, Response, Route
from rpcchat.transport.parsing import (
    REASONS, ChunkedDecoder, Framing, HttpError, RequestHead, classify_oversized_head,
    format_response, parse_request_head, request_prefix_ok,
)

log = logging.getLogger(__name__)

# Lingering close: after answering early, keep reading (and discarding) what the client still
# sends for at most this long / this much, so our FIN-ed answer is not wiped out by an RST.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
# Only wait for the transport to drain when this much is still queued (one write per
# response; the kernel usually takes it all at once).
WRITE_HIGH_WATER = 64 * 1024
TEXT_PLAIN = "text/plain; charset=utf-8"
# How long shutdown waits for cancelled connection tasks to unwind.
ABORT_WAIT = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_END = b"\r\n\r\n"
_NEVER = math.inf
_INTERNAL_ERROR = Response(500, b"500 Internal Server Error\n", "text/plain; charset=utf-8")

# What a connection is doing; decides what its deadline means when it passes.
_QUEUED, _IDLE, _HEAD, _BODY, _HANDLER, _WRITE, _LINGER, _CLOSED = range(8)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    route: Route
    allowed: frozenset[str]
    allow_header: str
    max_body: int


class HttpServer:
    """Serves `routes` (exact paths) over HTTP/1.1 on asyncio streams."""

    def __init__(self, routes: Sequence[Route], limits: HttpLimits,
                 clock: Clock | None = None) -> None:
        self.limits = limits
        self.clock: Clock = clock or SystemClock()
        self._endpoints: dict[str, _Endpoint] = {}
        for route in routes:
            if route.path in self._endpoints:
                raise ValueError(f"two routes for {route.path}")
            allowed = set(route.methods)
            if "GET" in allowed:
                allowed.add("HEAD")
            max_body = limits.max_body if route.max_body is None else route.max_body
            self._endpoints[route.path] = _Endpoint(
                route, frozenset(allowed), ", ".join(sorted(allowed)), max_body)
        every = {"OPTIONS"}
        for endpoint in self._endpoints.values():
            every |= endpoint.allowed
        self._allow_any = ", ".join(sorted(every))
        # The StreamReader limit: a whole head (request-line, fields, a leading CRLF) fits.
        self.head_limit = limits.max_request_line + limits.max_header_bytes + 8
        # Timer period of the lazy deadline: never longer than any timeout it enforces.
        self.tick = min(limits.header_timeout, limits.body_timeout, limits.keepalive_timeout,
                        limits.write_timeout)
        self.closing = False
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(limits.max_connections)
        self._open: set[_Connection] = set()

    @property
    def connections(self) -> int:
        """Connections currently open (served or waiting for a slot)."""
        return len(self._open)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Protocol(self, loop), host, port, reuse_address=True, backlog=1024)

    async def close(self) -> None:
        """Stop accepting; let requests in progress finish within `shutdown_grace`; then close
        every connection."""
        if self._server is None:
            return
        self.closing = True
        self._server.close()
        for conn in list(self._open):
            conn.close_if_idle()
        tasks = [conn.task for conn in self._open if conn.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.limits.shutdown_grace)
            for conn in list(self._open):
                conn.abort()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=ABORT_WAIT)
                if stuck:
                    log.warning("%d connection task(s) ignored cancellation at shutdown",
                                len(stuck))
        await self._server.wait_closed()
        self._server = None

    # ---- used by connections

    def endpoint(self, head: RequestHead) -> _Endpoint | None:
        """The endpoint for this request; None for `OPTIONS *`. Raises 404/405/413."""
        endpoint = self._endpoints.get(head.path)
        if endpoint is None:
            if head.path == "*":
                return None
            raise HttpError(404, "no such path", close=_unread_body_or_closing(head))
        if head.method not in endpoint.allowed:
            raise HttpError(405, "method not allowed", close=_unread_body_or_closing(head),
                            headers=[("Allow", endpoint.allow_header)])
        if head.framing is Framing.LENGTH and head.content_length > endpoint.max_body:
            raise HttpError(413, "request body too large")
        return endpoint

    def options_response(self) -> Response:
        return Response(204, headers=[("Allow", self._allow_any)])

    def register(self, conn: _Connection) -> None:
        self._open.add(conn)

    def unregister(self, conn: _Connection) -> None:
        self._open.discard(conn)

    async def admit(self) -> bool:
        """Take a connection slot; False when none freed up in time (answer 503)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        try:
            await asyncio.wait_for(self._slots.acquire(), self.limits.header_timeout)
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        self._slots.release()


class _Protocol(asyncio.StreamReaderProtocol):
    """StreamReaderProtocol that also tells its connection when bytes or EOF arrive: the
    first byte of a request starts its header deadline, and EOF during a handler cancels it."""

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        reader = asyncio.StreamReader(limit=server.head_limit, loop=loop)
        self._conn = _Connection(server, reader, loop)
        super().__init__(reader, self._conn.run, loop=loop)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        conn.received += len(data)
        if conn.phase == _IDLE:
            conn.head_started(data)
        conn.reader.feed_data(data)

    def eof_received(self) -> bool | None:
        keep_open = super().eof_received()
        self._conn.peer_closed(lost=False)
        return keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._conn.peer_closed(lost=True)


class _Connection:
    """One client connection: its task's request loop and its deadline."""

    def __init__(self, server: HttpServer, reader: asyncio.StreamReader,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.loop = loop
        self.writer: asyncio.StreamWriter | None = None
        self.transport: asyncio.WriteTransport | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = "?"
        self.phase = _QUEUED
        self.received = 0          # bytes that arrived from the client
        self.consumed = 0          # bytes the request loop has taken from the reader
        self.eof = False
        self.peer_gone = False     # closed while a request was in progress
        self.admitted = False
        self.deadline = _NEVER
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = _NEVER
        server.register(self)

    # ---- deadline: one timer, re-armed only when it fires early

    def arm(self, phase: int, seconds: float) -> None:
        self.phase = phase
        now = self.loop.time()
        self.deadline = now + seconds
        if self.deadline < self.timer_at:
            self._schedule(min(self.deadline, now + self.server.tick))

    def _schedule(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self._on_timer)
        self.timer_at = when

    def _on_timer(self) -> None:
        self.timer, self.timer_at = None, _NEVER
        if self.deadline == _NEVER:
            return
        now = self.loop.time()
        if now < self.deadline:
            self._schedule(min(self.deadline, now + self.server.tick))
            return
        self.deadline = _NEVER
        self._expire()

    def _expire(self) -> None:
        assert self.transport is not None
        phase = self.phase
        if phase == _IDLE:
            log.debug("%s: idle timeout, closing", self.peer)
            self._close_transport()
        elif phase == _HEAD:
            self.reader.set_exception(HttpError(408, "request head not received in time"))
        elif phase == _BODY:
            self.reader.set_exception(HttpError(408, "request body not received in time"))
        elif phase == _WRITE:
            log.info("%s: client does not read its response, dropping it", self.peer)
            self.transport.abort()
        elif phase == _LINGER:
            self._close_transport()

    def _close_transport(self) -> None:
        """Close once the queued bytes are sent. close() alone waits for them forever (and
        stops reading, so the request loop never sees EOF) when the client does not read:
        past `write_timeout` the connection is aborted."""
        assert self.transport is not None
        if self.transport.get_write_buffer_size():
            self.loop.call_later(self.limits.write_timeout, self.transport.abort)
        self.transport.close()

    # ---- events from the protocol

    def head_started(self, first_bytes: bytes) -> None:
        self.arm(_HEAD, self.limits.header_timeout)
        if not request_prefix_ok(first_bytes):
            # Set before the bytes are fed, so a reader waiting for the head raises now.
            self.reader.set_exception(HttpError(400, "not an HTTP/1.x request"))

    def peer_closed(self, lost: bool) -> None:
        self.eof = True
        if self.phase == _HANDLER and (lost or self.received == self.consumed):
            self.peer_gone = True
            if self.task is not None:
                self.task.cancel()

    def close_if_idle(self) -> None:
        """Server shutdown: a connection waiting for its next request is closed now."""
        if self.phase in (_IDLE, _QUEUED) and self.received == self.consumed:
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Server shutdown, grace over: stop whatever this connection is doing."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    # ---- the task

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.task = asyncio.current_task()
        self.writer = writer
        self.transport = writer.transport
        self.peer = _format_peer(writer.get_extra_info("peername"))
        try:
            self.admitted = await self.server.admit()
            if self.admitted:
                await self._serve()
            else:
                await self._fail(HttpError(503, "too many connections",
                                           headers=[("Retry-After", "1")]))
        except asyncio.CancelledError:
            # Only this server cancels a connection task (client gone, shutdown). The task
            # ends normally: on Python 3.11 the streams callback of a cancelled connection
            # task reports a spurious error.
            log.debug("%s: connection cancelled (client gone: %s)", self.peer, self.peer_gone)
        except (OSError, asyncio.IncompleteReadError) as exc:
            # The client vanished (reset, EOF mid-message, broken pipe): its own business.
            log.debug("%s: connection ended: %r", self.peer, exc)
        except Exception:
            log.exception("%s: unexpected error on the connection", self.peer)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.phase = _CLOSED
        self.deadline = _NEVER
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self._close_transport()
        if self.admitted:
            self.server.release()
            self.admitted = False
        self.server.unregister(self)

    async def _serve(self) -> None:
        """The request loop. The common case (a complete head, a Content-Length body that
        already arrived, a small response) runs inline without helper coroutines: this loop
        is the per-request cost of every call."""
        server, limits, reader = self.server, self.limits, self.reader
        assert self.transport is not None
        transport = self.transport
        idle_timeout = limits.header_timeout     # a fresh connection: the first byte comes soon
        while True:
            if self.received > self.consumed:
                self.arm(_HEAD, limits.header_timeout)    # pipelined bytes already here
            elif server.closing:
                return                                    # shutting down: no new request
            else:
                self.arm(_IDLE, idle_timeout)
            idle_timeout = limits.keepalive_timeout
            head_request = must_close = False
            try:
                try:
                    raw = await reader.readuntil(_HEAD_END)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.debug("%s: connection closed inside a request head", self.peer)
                    return
                except asyncio.LimitOverrunError:
                    prefix = await reader.read(server.head_limit + 1)
                    raise classify_oversized_head(prefix, limits) from None
                self.consumed += len(raw)
                head = parse_request_head(raw, limits)
                head_request = head.method == "HEAD"
                endpoint = server.endpoint(head)
            except HttpError as err:
                if await self._fail(err, head_request):
                    continue
                return

            if endpoint is None:
                response = server.options_response()
            else:
                if head.framing is Framing.NONE:
                    body = b""
                elif (head.framing is Framing.LENGTH and not head.expect_continue
                      and self.received - self.consumed >= head.content_length):
                    body = await reader.readexactly(head.content_length)   # already here
                    self.consumed += len(body)
                else:
                    try:
                        body = await self._read_body(head, endpoint.max_body)
                    except HttpError as err:
                        await self._fail(err)
                        return
                if self.eof and self.received == self.consumed:
                    log.debug("%s: client closed before its request was handled", self.peer)
                    return
                request = Request(head.method, head.target, head.path, head.query,
                                  head.version, head.headers, body, self.peer)
                self.phase, self.deadline = _HANDLER, _NEVER
                try:
                    response = await endpoint.route.handler(request)
                except asyncio.CancelledError:
                    raise
                except HttpError as err:             # a handler may refuse at the HTTP level
                    log.info("%s: HTTP %d from the handler of %s: %s", self.peer, err.status,
                             head.path, err.reason)
                    response = _error_response(err)
                    must_close = err.close
                except Exception:
                    log.exception("%s: handler of %s %s failed", self.peer, head.method,
                                  head.path)
                    response = _INTERNAL_ERROR

            keep = head.keep_alive and not server.closing and not must_close
            transport.write(self._response_bytes(head, response, keep))
            if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                await self._drain()
            if not keep:
                # The request was read to its end: linger only if more bytes came after it.
                await self._linger_close(only_if_unread=True)
                return

    async def _read_body(self, head: RequestHead, max_body: int) -> bytes:
        """The body when it has not fully arrived yet, or is chunked, or 100-continue."""
        assert self.transport is not None
        if head.expect_continue:
            self.transport.write(_CONTINUE)
        self.arm(_BODY, self.limits.body_timeout)
        if head.framing is Framing.LENGTH:
            body = await self.reader.readexactly(head.content_length)
            self.consumed += len(body)
            return body
        return await self._read_chunked(max_body)

    async def _read_chunked(self, max_body: int) -> bytes:
        reader = self.reader
        decoder = ChunkedDecoder(max_body)
        parts: list[bytes] = []
        while not decoder.done:
            wanted = decoder.wanted()
            if wanted is None:
                try:
                    data = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    raise HttpError(400, "chunk line too long") from None
            else:
                data = await reader.read(wanted)
                if not data:
                    raise asyncio.IncompleteReadError(b"", wanted)
            self.consumed += len(data)
            chunk = decoder.feed(data)
            if chunk:
                parts.append(chunk)
        return b"".join(parts)

    def _response_bytes(self, head: RequestHead, response: Response, keep: bool) -> bytes:
        keep_alive_header = keep and head.version == "HTTP/1.0"
        include_body = head.method != "HEAD"
        now = self.server.clock.time()
        try:
            return format_response(
                response.status, response.body, response.content_type, response.headers,
                now=now, close=not keep, keep_alive_header=keep_alive_header,
                include_body=include_body)
        except (ValueError, TypeError, AttributeError):
            log.exception("%s: handler of %s %s returned an invalid response",
                          self.peer, head.method, head.path)
            error = _INTERNAL_ERROR
            return format_response(error.status, error.body, error.content_type, now=now,
                                   close=not keep, keep_alive_header=keep_alive_header,
                                   include_body=include_body)

    async def _drain(self) -> None:
        """Wait until the client took enough of the response (bounded by write_timeout)."""
        assert self.writer is not None
        self.arm(_WRITE, self.limits.write_timeout)
        try:
            await self.writer.drain()
        except HttpError as exc:
            # StreamWriter.drain re-raises the reader's failure (a timeout being answered
            # right now); the answer is queued and the connection closes after it.
            log.debug("%s: drain after a read failure: %r", self.peer, exc)

    async def _fail(self, err: HttpError, head_request: bool = False) -> bool:
        """Answer a protocol fault; True when the connection can go on."""
        log.info("%s: HTTP %d %s: %s", self.peer, err.status,
                 REASONS.get(err.status, ""), err.reason)
        keep = not err.close and not self.server.closing
        error = _error_response(err)
        assert self.transport is not None
        self.transport.write(format_response(error.status, error.body, error.content_type,
                                             error.headers, now=self.server.clock.time(),
                                             close=not keep, include_body=not head_request))
        if self.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            await self._drain()
        if keep:
            return True
        await self._linger_close()
        return False

    async def _linger_close(self, only_if_unread: bool = False) -> None:
        """FIN after the answer, then read and discard until the client closes (bounded), so
        that closing does not reset the connection before the client read the answer.

        After an early answer the client may still be sending the body it announced, so we
        always linger then; `only_if_unread` skips it when nothing unread has arrived."""
        assert self.writer is not None and self.transport is not None
        if self.transport.is_closing():
            return
        try:
            self.writer.write_eof()
        except OSError as exc:
            log.debug("%s: cannot half-close: %r", self.peer, exc)
            return
        if only_if_unread and self.received == self.consumed:
            return
        self.arm(_LINGER, LINGER_SECONDS)
        discarded = 0
        while discarded < LINGER_MAX_BYTES:
            try:
                chunk = await self.reader.read(65536)
            except (HttpError, ConnectionError) as exc:
                # The reader already failed (e.g. after a 408): nothing more to drain.
                log.debug("%s: lingering close ends: %r", self.peer, exc)
                return
            if not chunk:
                return
            discarded += len(chunk)


def _error_response(err: HttpError) -> Response:
    body = f"{err.status} {REASONS.get(err.status, '')}: {err.reason}\n".encode()
    return Response(err.status, body, TEXT_PLAIN, err.headers)


def _unread_body_or_closing(head: RequestHead) -> bool:
    """Whether a refused request must close the connection: its body was not read, or the
    client does not keep the connection alive (HTTP/1.0 refusals always close)."""
    return head.framing is not Framing.NONE or head.version != "HTTP/1.1" \
        or not head.keep_alive


def _format_peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername)

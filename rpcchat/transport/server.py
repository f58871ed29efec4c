"""The HTTP/1.1 server: an asyncio Protocol per connection that buffers what arrives, one task
per connection running a thin request loop over that buffer, around the pure parser of
`rpcchat.transport.parsing`. No stream reader/writer pair sits in between: a request that
already arrived is taken from the buffer without waiting, and a parked connection costs only
its transport, this object and its task. While the task waits for a request, data_received
answers complete plain requests itself, running the handler on the task's behalf (see
`_Connection` and `eager`): most requests cost no task wake-up at all.

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
import contextvars
import logging
import math
from dataclasses import dataclass
from typing import Awaitable, Sequence

from rpcchat.clock import Clock, SystemClock
from rpcchat.config import HttpLimits
from rpcchat.transport import eager
from rpcchat.transport.messages import Handler, Request, Response, Route
from rpcchat.transport.parsing import (
    REASONS, ChunkedDecoder, Framing, HttpError, RequestHead, classify_oversized_head,
    format_response, parse_request_head, request_prefix_ok,
)

log = logging.getLogger(__name__)

# Lingering close: after answering early, keep reading (and discarding) what the client still
# sends for at most this long / this much, so our FIN-ed answer is not wiped out by an RST.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
TEXT_PLAIN = "text/plain; charset=utf-8"
# How long shutdown waits for cancelled connection tasks to unwind.
ABORT_WAIT = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_END = b"\r\n\r\n"
_NEVER = math.inf
_INTERNAL_ERROR = Response(500, b"500 Internal Server Error\n", "text/plain; charset=utf-8")

# What a connection is doing; decides what its deadline means when it passes.
_QUEUED, _IDLE, _HEAD, _BODY, _HANDLER, _WRITE, _LINGER, _CLOSED = range(8)


@dataclass(slots=True)
class _Begun:
    """A request whose handler data_received started and the connection task finishes."""

    head: RequestHead
    pending: eager.Pending


@dataclass(frozen=True, slots=True)
class _Endpoint:
    route: Route
    allowed: frozenset[str]
    allow_header: str
    max_body: int


class HttpServer:
    """Serves `routes` (exact paths) over HTTP/1.1 on asyncio."""

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
        # A whole head (request-line, fields, a leading CRLF) starts its empty line within
        # this many bytes; a chunk line must end within it too.
        self.head_limit = limits.max_request_line + limits.max_header_bytes + 8
        # A connection stops reading while this much is buffered and not asked for.
        self.pause_reading_at = 2 * self.head_limit
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
            lambda: _Connection(self, loop), host, port, reuse_address=True, backlog=1024)

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


class _Overrun(Exception):
    """More than the head limit arrived without the separator being read for."""


class _Connection(asyncio.Protocol):
    """One client connection. The protocol callbacks append what arrives to `buffer`; the
    connection's task runs the request loop over that buffer.

    The buffer is read in place (no stream reader in between): a request whose bytes already
    arrived is taken without waiting, and a failure of the reading side (a deadline, a first
    byte that cannot start a request, a reset) is kept in `failure` and raised by the next
    read, so the request loop meets it where it waits.

    While the task waits for its next request, data_received answers complete plain requests
    itself (`_answer_buffered`): the handler's first step runs right there, on behalf of the
    task (see `eager`), and most handlers finish in it. Only a handler that has to wait is
    handed to the task (`handover`), and anything out of the ordinary is left to it."""

    __slots__ = (
        "server", "limits", "loop", "transport", "task", "context", "peer", "buffer", "scanned",
        "waiter", "waiting_for_head", "handover", "last_waited", "answer_scheduled", "failure",
        "eof", "lost", "reading_paused", "writing_paused", "drain_waiter", "phase", "peer_gone",
        "admitted", "deadline", "timer", "timer_at",
    )

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.context = contextvars.copy_context()           # the task's, for eager steps too
        self.peer = "?"
        self.buffer = bytearray()     # received, not yet taken by the request loop
        self.scanned = 0              # where the search for a separator resumes
        self.waiter: asyncio.Future[None] | None = None     # the task waits for bytes
        self.waiting_for_head = False                       # ... for its next request's head
        self.handover: _Begun | None = None                 # begun here, for the task
        self.last_waited = False      # the last handler begun here had to wait
        self.answer_scheduled = False
        self.failure: BaseException | None = None           # raised by every later read
        self.eof = False              # the client closed its side (or the connection is gone)
        self.lost = False             # the connection is gone
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.phase = _QUEUED
        self.peer_gone = False        # closed while a request was in progress
        self.admitted = False
        self.deadline = _NEVER
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = _NEVER

    # ---- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = _format_peer(transport.get_extra_info("peername"))
        self.server.register(self)
        self.task = self.loop.create_task(self._run(), context=self.context)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if len(buffer) > self.server.pause_reading_at and not self.reading_paused:
            # Resumed when the request loop needs more bytes than are buffered.
            assert self.transport is not None
            self.transport.pause_reading()
            self.reading_paused = True
        if not self.waiting_for_head:
            self._wake_reader()
        elif not self.last_waited:
            self._answer_or_wake()
        elif not self.answer_scheduled:
            # The last handler here had to wait (a durable write, a parked poll): start this
            # one after the other arrivals of this turn of the loop, so that requests waiting
            # on shared work (the store's group commit) start together and share it.
            self.answer_scheduled = True
            self.loop.call_soon(self._answer_later)

    def _answer_later(self) -> None:
        self.answer_scheduled = False
        if self.waiting_for_head:
            self._answer_or_wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        self._peer_closed(lost=False)
        return True               # keep our side open: the answer in progress still goes out

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        if exc is not None and self.failure is None:
            self.failure = exc
        self._wake_reader()
        self._wake_drainer()
        self._peer_closed(lost=True)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drainer()
        if self.phase == _WRITE and self.waiting_for_head:
            self._answer_or_wake()          # the client took an answer given in data_received

    def _peer_closed(self, lost: bool) -> None:
        if self.phase == _HANDLER and (lost or not self.buffer):
            self.peer_gone = True
            if self.task is not None:
                self.task.cancel()

    # ---- answering in data_received

    def _answer_or_wake(self) -> None:
        """The task waits for its next request: answer what is buffered here, or wake it."""
        if self._answer_buffered():
            if self.phase == _IDLE or self.phase == _WRITE:
                self._head_begins()
            self._wake_reader()
        elif not self.writing_paused:
            self._keep_reading()            # the rest of a head is still to come

    def _head_begins(self) -> bool:
        """The first bytes of a request are buffered: start its header deadline. False, and
        the reads fail with 400, when they cannot start a request-line: binary garbage or a
        TLS hello is refused at once rather than at the deadline."""
        self.arm(_HEAD, self.limits.header_timeout)
        if request_prefix_ok(self.buffer):
            return True
        self._fail_reads(HttpError(400, "not an HTTP/1.x request"))
        return False

    def _answer_buffered(self) -> bool:
        """Answer the complete plain requests in the buffer, each handler's first step run
        here on behalf of the task. True when the task must take over: a request that is not
        plain (a fault, a body still to come, chunked, 100-continue, a connection to close)
        or a handler that has to wait. False when nothing is left for it: the buffer is empty
        or holds the start of a head, or an answer waits for the client to read it."""
        buffer = self.buffer
        if self.writing_paused:
            return False                    # resume_writing comes back here
        if (self.handover is not None or self.failure is not None or self.server.closing
                or not eager.available(self.loop)):
            return True
        assert self.transport is not None and self.task is not None
        while buffer:
            try:
                head_end = self._find(_HEAD_END)
            except _Overrun:
                return True
            if head_end < 0:             # a head is arriving
                return self.phase != _HEAD and not self._head_begins()
            plain = self._take_plain_request(head_end)
            if plain is None:
                return True
            head, handler, request = plain
            self.phase, self.deadline = _HANDLER, _NEVER
            response = eager.start(handler(request), self.loop, self.task, self.context)
            self.last_waited = isinstance(response, eager.Pending)
            if isinstance(response, eager.Pending):
                self.handover = _Begun(head, response)
                return True
            self.transport.write(self._response_bytes(head, response, True))
            if self.writing_paused:
                self.arm(_WRITE, self.limits.write_timeout)
                return False
        self.arm(_IDLE, self.limits.keepalive_timeout)
        return False

    def _take_plain_request(self, head_end: int
                            ) -> tuple[RequestHead, Handler, Request] | None:
        """The buffered request whose head ends at `head_end`, taken from the buffer, if it
        is plain: a valid head for a route, keep-alive, and no body or a Content-Length body
        that is all here. Otherwise None, and nothing is taken: the task reads it again."""
        buffer = self.buffer
        try:
            head = parse_request_head(bytes(buffer[:head_end]), self.limits)
            endpoint = self.server.endpoint(head)
        except HttpError:
            return None
        end = head_end + head.content_length
        if (endpoint is None or not head.keep_alive or head.expect_continue
                or head.framing is Framing.CHUNKED or len(buffer) < end):
            return None
        body = bytes(buffer[head_end:end])
        del buffer[:end]
        self.scanned = 0
        request = Request(head.method, head.target, head.path, head.query, head.version,
                          head.headers, body, self.peer)
        return head, endpoint.route.handler, request

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
            self.transport.close()
        elif phase == _HEAD:
            self._fail_reads(HttpError(408, "request head not received in time"))
        elif phase == _BODY:
            self._fail_reads(HttpError(408, "request body not received in time"))
        elif phase == _WRITE:
            log.info("%s: client does not read its response, dropping it", self.peer)
            self.transport.abort()
        elif phase == _LINGER:
            self.transport.close()

    # ---- used by the server

    def close_if_idle(self) -> None:
        """Server shutdown: a connection waiting for its next request is closed now."""
        if self.phase in (_IDLE, _QUEUED) and not self.buffer and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Server shutdown, grace over: stop whatever this connection is doing."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    # ---- reading from the buffer

    def _fail_reads(self, failure: BaseException) -> None:
        if self.failure is None:
            self.failure = failure
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            # From now on the task reads the buffer: nothing more is answered in the callbacks
            # until it waits for a head again.
            self.waiter, self.waiting_for_head = None, False
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drainer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _more_bytes(self) -> asyncio.Future[None]:
        """A future the next arrival (or EOF, or a read failure) resolves."""
        self._keep_reading()
        waiter = self.waiter = self.loop.create_future()
        return waiter

    def _keep_reading(self) -> None:
        if self.reading_paused:
            assert self.transport is not None
            self.reading_paused = False
            self.transport.resume_reading()

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        self.scanned = 0
        return data

    def _find(self, separator: bytes) -> int:
        """Where the buffered bytes through `separator` end, -1 if it has not arrived yet.
        Raises _Overrun when it does not start within the head limit."""
        buffer = self.buffer
        limit = self.server.head_limit
        found = buffer.find(separator, self.scanned)
        if found < 0:
            # Resume the search where the separator could still start: a slow client
            # costs linear time, not quadratic.
            self.scanned = max(0, len(buffer) + 1 - len(separator))
            if self.scanned > limit:
                raise _Overrun()
            return -1
        if found > limit:
            raise _Overrun()
        return found + len(separator)

    def _take_through(self, separator: bytes) -> bytes | None:
        """The buffered bytes through `separator`, or None if it has not arrived yet. Raises
        _Overrun when it does not start within the head limit."""
        end = self._find(separator)
        return None if end < 0 else self._take(end)

    def _buffered_head(self) -> bytes | None:
        """The next request head through its empty line if it is all here, else None.
        Raises the HttpError of an oversized head."""
        try:
            return self._take_through(_HEAD_END)
        except _Overrun:
            prefix = self._take(self.server.head_limit + 1)
            raise classify_oversized_head(prefix, self.limits) from None

    async def _read_head(self) -> bytes | None:
        """The next request head through its empty line; None when the client closed
        instead, or when data_received began the next request itself (`handover`). Raises
        the read failure, or the HttpError of an oversized head."""
        while self.handover is None:
            if self.failure is not None:
                raise self.failure
            head = self._buffered_head() if self.buffer else None
            if head is not None:
                return head
            if self.eof:
                if self.buffer.strip():
                    log.debug("%s: connection closed inside a request head", self.peer)
                return None
            self.waiting_for_head = True
            try:
                await self._more_bytes()
            except asyncio.CancelledError as cancelled:
                await self._cancel_handover(cancelled)
                raise
            finally:
                self.waiting_for_head = False
        return None

    def _take_over(self) -> tuple[RequestHead, Awaitable[Response]]:
        """The request data_received began: its head, and its handler to finish."""
        begun, self.handover = self.handover, None
        assert begun is not None
        return begun.head, eager.finish(begun.pending)

    async def _cancel_handover(self, cancelled: asyncio.CancelledError) -> None:
        """The task was cancelled just as data_received handed it a waiting handler: the
        handler gets the cancellation where it waits, as it would have in the task."""
        begun, self.handover = self.handover, None
        if begun is not None and begun.pending.coroutine is not None:
            await eager.finish(begun.pending, cancelled)

    async def _read_line(self) -> bytes:
        """Bytes through the next LF (a chunk-size or trailer line)."""
        while True:
            if self.failure is not None:
                raise self.failure
            try:
                line = self._take_through(b"\n")
            except _Overrun:
                raise HttpError(400, "chunk line too long") from None
            if line is not None:
                return line
            if self.eof:
                raise asyncio.IncompleteReadError(bytes(self.buffer), None)
            await self._more_bytes()

    async def _read_exactly(self, count: int) -> bytes:
        while True:
            if self.failure is not None:
                raise self.failure
            if len(self.buffer) >= count:
                return self._take(count)
            if self.eof:
                raise asyncio.IncompleteReadError(bytes(self.buffer), count)
            await self._more_bytes()

    async def _read_some(self, most: int) -> bytes:
        """Between 1 and `most` bytes; b"" once the client closed and all was read."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self.buffer:
                return self._take(most)
            if self.eof:
                return b""
            await self._more_bytes()

    # ---- the task

    async def _run(self) -> None:
        try:
            self.admitted = await self.server.admit()
            if self.admitted:
                await self._serve()
            else:
                await self._fail(HttpError(503, "too many connections",
                                           headers=[("Retry-After", "1")]))
        except asyncio.CancelledError:
            # Only this server cancels a connection task (client gone, shutdown): the task
            # ends normally.
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
            if self.transport.get_write_buffer_size():
                # close() waits for the buffer to flush: bound that wait too.
                self.loop.call_later(self.limits.write_timeout, self.transport.abort)
            self.transport.close()
        if self.admitted:
            self.server.release()
            self.admitted = False
        self.server.unregister(self)

    async def _serve(self) -> None:
        """The request loop, for all that data_received leaves to the task: handlers that
        wait, requests that are not plain (faults, bodies still to come, chunked bodies,
        100-continue, a connection to close), and every request it cannot answer itself."""
        server, limits, buffer = self.server, self.limits, self.buffer
        assert self.transport is not None
        transport = self.transport
        idle_timeout = limits.header_timeout     # a fresh connection: the first byte comes soon
        while True:
            if buffer:
                self.arm(_HEAD, limits.header_timeout)    # pipelined bytes already here
            elif server.closing:
                return                                    # shutting down: no new request
            else:
                self.arm(_IDLE, idle_timeout)
            idle_timeout = limits.keepalive_timeout
            head_request = must_close = False
            handling: Awaitable[Response] | None = None
            try:
                # Pipelined bytes may hold the whole head already: no need to wait then.
                raw = self._buffered_head() if buffer and self.failure is None else None
                if raw is None:
                    raw = await self._read_head()
                if raw is not None:
                    head = parse_request_head(raw, limits)
                    head_request = head.method == "HEAD"
                    endpoint = server.endpoint(head)
                elif self.handover is None:
                    return                                # the client closed
            except HttpError as err:
                if await self._fail(err, head_request):
                    continue
                return

            if raw is None:
                head, handling = self._take_over()        # begun in data_received
            elif endpoint is None:
                response = server.options_response()
            else:
                if head.framing is Framing.NONE:
                    body = b""
                elif (head.framing is Framing.LENGTH and not head.expect_continue
                      and len(buffer) >= head.content_length):
                    body = self._take(head.content_length)          # already here
                else:
                    try:
                        body = await self._read_body(head, endpoint.max_body)
                    except HttpError as err:
                        await self._fail(err)
                        return
                if self.eof and not buffer:
                    log.debug("%s: client closed before its request was handled", self.peer)
                    return
                handling = endpoint.route.handler(Request(
                    head.method, head.target, head.path, head.query, head.version,
                    head.headers, body, self.peer))
            if handling is not None:
                self.phase, self.deadline = _HANDLER, _NEVER
                try:
                    response = await handling
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
            if self.writing_paused:       # past the transport's high-water mark (64 KiB)
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
            return await self._read_exactly(head.content_length)
        return await self._read_chunked(max_body)

    async def _read_chunked(self, max_body: int) -> bytes:
        decoder = ChunkedDecoder(max_body)
        parts: list[bytes] = []
        while not decoder.done:
            wanted = decoder.wanted()
            if wanted is None:
                data = await self._read_line()
            else:
                data = await self._read_some(wanted)
                if not data:
                    raise asyncio.IncompleteReadError(b"", wanted)
            chunk = decoder.feed(data)
            if chunk:
                parts.append(chunk)
        return b"".join(parts)

    def _response_bytes(self, head: RequestHead, response: Response, keep: bool) -> bytes:
        keep_alive_header = keep and head.version == "HTTP/1.0"
        now = self.server.clock.time()
        try:
            return format_response(
                response.status, response.body, response.content_type, response.headers,
                now=now, close=not keep, keep_alive_header=keep_alive_header,
                include_body=head.method != "HEAD")
        except (ValueError, TypeError, AttributeError):
            log.exception("%s: handler of %s %s returned an invalid response",
                          self.peer, head.method, head.path)
            error = _INTERNAL_ERROR
            return format_response(error.status, error.body, error.content_type, now=now,
                                   close=not keep, keep_alive_header=keep_alive_header)

    async def _drain(self) -> None:
        """Wait until the client took enough of the response (bounded by write_timeout)."""
        self.arm(_WRITE, self.limits.write_timeout)
        while self.writing_paused:
            if self.failure is not None:
                # A read failure (a timeout) is being answered right now: the answer is
                # queued and the connection closes after it.
                log.debug("%s: drain after a read failure: %r", self.peer, self.failure)
                return
            if self.lost:
                raise ConnectionResetError("connection lost while writing")
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter

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
        if self.writing_paused:
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
        assert self.transport is not None
        if self.transport.is_closing():
            return
        try:
            self.transport.write_eof()
        except OSError as exc:
            log.debug("%s: cannot half-close: %r", self.peer, exc)
            return
        if only_if_unread and not self.buffer:
            return
        self.arm(_LINGER, LINGER_SECONDS)
        discarded = 0
        while discarded < LINGER_MAX_BYTES:
            try:
                chunk = await self._read_some(65536)
            except (HttpError, ConnectionError) as exc:
                # The reading side already failed (e.g. after a 408): nothing more to drain.
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

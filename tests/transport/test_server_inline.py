"""Requests answered inside data_received (the handler's first step run on behalf of the
connection task), and everything handed from there to the task."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, AsyncIterator

import pytest

from rpcchat.transport.messages import Request, Response, Route
from rpcchat.transport.server import HttpServer, _Connection

from .rawclient import BIG_RESPONSE, LIMITS, App, Connect, post, wait_until

calls_on_connection: contextvars.ContextVar[int] = contextvars.ContextVar("calls", default=0)


class Observer:
    """A route that reports which task ran it and what its context held, and one that
    waits until released."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.release = asyncio.Event()

    async def observe(self, request: Request) -> Response:
        self.tasks.append(asyncio.current_task())
        calls_on_connection.set(calls_on_connection.get() + 1)
        return Response(200, str(calls_on_connection.get()).encode(), "text/plain")

    async def wait(self, request: Request) -> Response:
        await self.release.wait()
        return Response(200, b"waited", "text/plain")


@pytest.fixture
async def observed() -> AsyncIterator[tuple[HttpServer, Observer]]:
    observer = Observer()
    routes = [Route("/observe", frozenset({"POST"}), observer.observe),
              Route("/wait", frozenset({"POST"}), observer.wait)]
    server = HttpServer(routes, LIMITS)
    await server.start("127.0.0.1", 0)
    yield server, observer
    await server.close()


async def test_quick_handlers_run_as_their_connection_task(
        observed: tuple[HttpServer, Observer], connect: Connect) -> None:
    server, observer = observed
    first, second = await connect(server), await connect(server)
    for client in (first, first, second):
        await client.send(post(b"", path="/observe"))
    replies = [(await first.reply()).body, (await first.reply()).body,
               (await second.reply()).body]
    # As when the task runs the handler itself: the connection's task is current, and its
    # context carries over from one request to the next on that connection only.
    assert replies == [b"1", b"2", b"1"]
    first_task, again, other_task = observer.tasks
    assert first_task is not None and first_task is again and other_task is not first_task


async def test_requests_after_a_handler_that_waited_are_answered_the_same(
        observed: tuple[HttpServer, Observer], connect: Connect) -> None:
    server, observer = observed
    client = await connect(server)
    await client.send(post(b"", path="/wait"))
    assert await client.silent_for(0.05)
    observer.release.set()
    assert (await client.reply()).body == b"waited"
    # Started after the other arrivals of their turn of the loop (the last handler waited),
    # still as the connection's task and in its context.
    for expected in (b"1", b"2"):
        await client.send(post(b"", path="/observe"))
        assert (await client.reply()).body == expected
    first, second = observer.tasks
    assert first is not None and first is second


async def test_a_client_that_takes_a_big_answer_late_is_served_on(connect: Connect) -> None:
    client = await connect()
    await client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n" + post(b"after the big one"))
    big = await client.reply(timeout=10.0)
    assert len(big.body) == BIG_RESPONSE
    assert (await client.reply()).body == b"after the big one"
    await client.send(post(b"and one more"))
    assert (await client.reply()).body == b"and one more"


async def test_a_pipelined_flood_past_the_read_pause_is_answered_in_order(
        connect: Connect) -> None:
    client = await connect()
    count = 3000                      # about 170 KB: reading pauses and resumes
    await client.send(b"".join(post(str(n).encode()) for n in range(count)))
    bodies = [(await client.reply()).body for _ in range(count)]
    assert bodies == [str(n).encode() for n in range(count)]


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4242) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_a_reset_right_after_the_hand_over_cancels_the_handler(app: App) -> None:
    server = HttpServer(app.routes(), LIMITS)
    loop = asyncio.get_running_loop()
    connection = _Connection(server, loop)
    connection.connection_made(FakeTransport())
    await wait_until(lambda: connection.waiting_for_head)

    def request_then_reset() -> None:
        # The /slow handler starts here and waits; the reset comes before the task took it.
        connection.data_received(post(b"{}", path="/slow"))
        assert app.slow_started.is_set() and connection.handover is not None
        connection.connection_lost(ConnectionResetError())

    loop.call_soon(request_then_reset)
    assert connection.task is not None
    await asyncio.wait_for(connection.task, 2.0)
    assert app.slow_cancelled.is_set() and server.connections == 0


async def test_a_handler_that_fails_at_once_is_answered_by_the_task(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/boom") + post(b"next"))
    assert (await client.reply()).status == 500
    assert (await client.reply()).body == b"next"

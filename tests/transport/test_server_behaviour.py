"""The server beyond the black-box list: handlers, cancellation, limits, shutdown, logging."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from rpcchat.clock import ManualClock
from rpcchat.config import HttpLimits
from rpcchat.transport.messages import Request, Response, Route
from rpcchat.transport.parsing import http_date
from rpcchat.transport.server import HttpServer

from .rawclient import LIMITS, App, Connect, ServerFactory, post, wait_until


async def test_request_fields_reach_the_handler(connect: Connect) -> None:
    client = await connect()
    await client.send(b"PUT /info?a=1&b=2 HTTP/1.1\r\nHost: t\r\nX-Mixed-Case: Value  \r\n"
                      b"Content-Length: 4\r\n\r\nbody")
    described = json.loads((await client.reply()).body)
    assert described["method"] == "PUT" and described["version"] == "HTTP/1.1"
    assert (described["target"], described["path"], described["query"]) == (
        "/info?a=1&b=2", "/info", "a=1&b=2")
    assert ["x-mixed-case", "Value"] in described["headers"]
    assert described["body"] == "body"
    host, _, port = described["peer"].rpartition(":")
    assert host == "127.0.0.1" and port.isdigit()


async def test_request_header_lookup_is_case_insensitive() -> None:
    request = Request("GET", "/", "/", "", "HTTP/1.1",
                      [("authorization", "Bearer a"), ("authorization", "Bearer b")], b"", "p")
    assert request.header("Authorization") == "Bearer a"
    assert request.header("missing") is None


async def test_absolute_form_target_routes_by_path(connect: Connect) -> None:
    client = await connect()
    await client.send(b"GET http://example.com/health HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert (await client.reply()).status == 200


async def test_head_on_a_get_route(connect: Connect) -> None:
    client = await connect()
    await client.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply(head_request=True)
    assert reply.status == 200 and reply.header("content-length") == "16"
    await client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply()
    assert reply.body == b'{"status": "ok"}'       # nothing of the HEAD body was sent


async def test_options_asterisk(connect: Connect) -> None:
    client = await connect()
    await client.send(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply()
    assert reply.status == 204 and reply.header("content-length") is None
    assert reply.header("allow") == "GET, HEAD, OPTIONS, POST, PUT"


async def test_unknown_path_keeps_the_connection_without_body(connect: Connect) -> None:
    client = await connect()
    await client.send(b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.reply()).status == 404
    await client.send(post(b"still here"))
    assert (await client.reply()).body == b"still here"


async def test_unknown_path_with_body_closes(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"hello", path="/nowhere"))
    reply = await client.reply()
    assert reply.status == 404 and reply.header("connection") == "close"
    await client.assert_closed()


async def test_handler_exception_is_500_and_connection_survives(
        connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    client = await connect()
    with caplog.at_level(logging.ERROR, logger="rpcchat.transport.server"):
        await client.send(post(b"{}", path="/boom"))
        reply = await client.reply()
    assert reply.status == 500 and b"secret" not in reply.body
    assert any("handler of POST /boom failed" in r.getMessage() and r.exc_info
               for r in caplog.records)
    await client.send(post(b"next"))
    assert (await client.reply()).body == b"next"


async def test_handler_may_answer_an_http_error(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/refuse"))
    reply = await client.reply()
    assert reply.status == 429 and reply.header("retry-after") == "2"
    assert reply.header("connection") is None
    await client.send(post(b"next"))
    assert (await client.reply()).body == b"next"


@pytest.mark.parametrize("request_bytes", [
    post(b"{}", path="/refuse?close"),
    post(b"{}", path="/refuse", version="HTTP/1.0"),
])
async def test_handler_http_error_that_closes(connect: Connect, request_bytes: bytes) -> None:
    client = await connect()
    await client.send(request_bytes)
    reply = await client.reply()
    assert reply.status == 429 and reply.header("connection") == "close"
    assert await client.read_eof(timeout=1.0) == b""


async def test_invalid_response_header_is_500(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/bad-header"))
    raw = await client.reader.readuntil(b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 ") and b"Injected" not in raw


async def test_invalid_response_to_head_is_500_without_body(connect: Connect) -> None:
    client = await connect()
    await client.send(b"HEAD /bad-header HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.reply(head_request=True)).status == 500
    await client.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply()                # no stray 500 body before this answer
    assert (reply.status, reply.body) == (200, b'{"status": "ok"}')


async def test_peer_closing_cancels_a_parked_handler(connect: Connect, app: App,
                                                     server: HttpServer) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/slow"))
    await app.slow_started.wait()
    await client.close()
    await asyncio.wait_for(app.slow_cancelled.wait(), 2.0)
    await wait_until(lambda: server.connections == 0)


async def test_peer_reset_cancels_a_parked_handler(connect: Connect, app: App) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/slow"))
    await app.slow_started.wait()
    client.reset()
    await asyncio.wait_for(app.slow_cancelled.wait(), 2.0)


async def test_pipelined_bytes_do_not_cancel_the_handler(connect: Connect, app: App) -> None:
    client = await connect()
    # The second request is already buffered when the first handler runs: not a close.
    await client.send(post(b"{}", path="/slow") + post(b"second"))
    await app.slow_started.wait()
    assert await client.silent_for(0.1)
    app.slow_release.set()
    assert (await client.reply()).body == b"slow done"
    assert (await client.reply()).body == b"second"
    assert not app.slow_cancelled.is_set()


async def test_slow_handler_is_not_timed_out(connect: Connect, app: App) -> None:
    client = await connect()
    await client.send(post(b"{}", path="/slow"))
    await app.slow_started.wait()
    assert await client.silent_for(0.8)           # longer than every configured timeout
    app.slow_release.set()
    assert (await client.reply()).body == b"slow done"


async def test_client_that_does_not_read_is_dropped(connect: Connect,
                                                    server: HttpServer) -> None:
    client = await connect(rcvbuf=16 * 1024)
    await client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    await wait_until(lambda: server.connections == 1)
    await wait_until(lambda: server.connections == 0, timeout=5.0)


async def test_idle_client_with_unread_responses_is_dropped(connect: Connect,
                                                            server: HttpServer) -> None:
    # Responses still queued when the keep-alive timer fires: close() alone would wait for
    # the client to read them forever, holding the connection (and its slot).
    client = await connect(rcvbuf=4096)
    client.writer.transport.pause_reading()
    await wait_until(lambda: server.connections == 1)
    (conn,) = server._open                  # white-box: a small send buffer fills quickly
    assert conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                       4096)
    batch = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n" * 20
    sent = 0
    for _ in range(500):                      # until the kernel buffers on both sides are full
        await client.send(batch)
        sent += len(batch)
        await wait_until(lambda: conn.consumed == sent)
        await asyncio.sleep(0.05)             # the kernel takes what it can; no event for it
        if conn.transport.get_write_buffer_size():
            break
    assert 0 < conn.transport.get_write_buffer_size() < 64 * 1024
    await wait_until(lambda: server.connections == 0, timeout=3.0)


async def test_date_comes_from_the_injected_clock(app: App) -> None:
    clock = ManualClock(start=784111777.0)
    server = HttpServer(app.routes(), LIMITS, clock)
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(post(b"x"))
        head = await reader.readuntil(b"\r\n\r\n")
        assert f"Date: {http_date(784111777.0)}".encode() in head
        writer.close()
    finally:
        await server.close()


async def test_connection_cap_waits_then_serves(make_server: ServerFactory,
                                                connect: Connect) -> None:
    limited = await make_server(HttpLimits(max_connections=1, header_timeout=2.0,
                                           keepalive_timeout=2.0, body_timeout=0.5,
                                           write_timeout=0.5))
    first = await connect(limited)
    await first.send(post(b"first"))
    assert (await first.reply()).body == b"first"
    second = await connect(limited)
    await second.send(post(b"second"))
    assert await second.silent_for(0.2)           # queued while the first holds the slot
    await first.close()
    assert (await second.reply()).body == b"second"


async def test_connection_cap_503_when_no_slot_frees(make_server: ServerFactory,
                                                     connect: Connect) -> None:
    limited = await make_server(HttpLimits(max_connections=1, header_timeout=0.3,
                                           keepalive_timeout=5.0, body_timeout=0.5,
                                           write_timeout=0.5))
    first = await connect(limited)
    await first.send(post(b"first"))
    assert (await first.reply()).body == b"first"
    second = await connect(limited)
    reply = await second.reply(timeout=2.0)
    assert reply.status == 503 and reply.header("retry-after") == "1"
    await second.assert_closed()
    await first.send(post(b"again"))
    assert (await first.reply()).body == b"again"


async def test_close_lets_in_flight_requests_finish(app: App, connect: Connect) -> None:
    server = HttpServer(app.routes(), HttpLimits(shutdown_grace=3.0, keepalive_timeout=10.0,
                                                 header_timeout=10.0))
    await server.start("127.0.0.1", 0)
    idle = await connect(server)
    await idle.send(post(b"x"))
    await idle.reply()
    busy = await connect(server)
    await busy.send(post(b"{}", path="/slow"))
    await app.slow_started.wait()
    closing = asyncio.create_task(server.close())
    assert await idle.read_eof(timeout=1.0) == b""     # an idle connection goes at once
    app.slow_release.set()
    reply = await busy.reply()
    assert reply.body == b"slow done" and reply.header("connection") == "close"
    await asyncio.wait_for(closing, 2.0)
    assert server.connections == 0


async def test_close_cancels_what_outlives_the_grace(app: App, connect: Connect) -> None:
    server = HttpServer(app.routes(), HttpLimits(shutdown_grace=0.2))
    await server.start("127.0.0.1", 0)
    busy = await connect(server)
    await busy.send(post(b"{}", path="/slow"))
    await app.slow_started.wait()
    await asyncio.wait_for(server.close(), 2.0)
    assert app.slow_cancelled.is_set()
    assert await busy.read_eof(timeout=1.0) == b""
    assert server.connections == 0


async def test_two_routes_for_one_path_are_refused(app: App) -> None:
    route = Route("/x", frozenset({"POST"}), app.echo)
    with pytest.raises(ValueError):
        HttpServer([route, route], LIMITS)


async def test_port_before_start_is_an_error(app: App) -> None:
    with pytest.raises(RuntimeError):
        _ = HttpServer(app.routes(), LIMITS).port


async def test_faults_logged_at_info_with_peer(connect: Connect,
                                               caplog: pytest.LogCaptureFixture) -> None:
    client = await connect()
    with caplog.at_level(logging.DEBUG, logger="rpcchat.transport.server"):
        await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n")
        await client.reply()
        await client.assert_closed()
    faults = [r for r in caplog.records if "HTTP 400" in r.getMessage()]
    assert faults and faults[0].levelno == logging.INFO
    assert "127.0.0.1:" in faults[0].getMessage()


async def test_vanishing_clients_log_no_errors(connect: Connect,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for data in (b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab",
                     b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n", b"POST /rpc HT"):
            client = await connect()
            await client.send(data)
            await asyncio.sleep(0.05)
            client.reset()
        fresh = await connect()
        await fresh.send(post(b"ok"))
        assert (await fresh.reply()).body == b"ok"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_response_helpers_default_fields() -> None:
    response = Response(204)
    assert (response.body, response.content_type, response.headers) == (b"", None, [])

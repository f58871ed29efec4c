"""Black-box checks 1-31 of the HTTP/JSON-RPC rules, over raw sockets against a real server."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc

import pytest

from rpcchat.transport.server import HttpServer

from .rawclient import App, Connect, post


# 1
async def test_valid_post(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b'{"jsonrpc":"2.0","method":"status","id":1}'))
    reply = await client.reply()
    assert reply.status == 200 and reply.version == "HTTP/1.1"
    assert reply.header("content-type") == "application/json"
    assert reply.header("date") and reply.header("server") == "rpcchat"
    assert reply.body == b'{"jsonrpc":"2.0","method":"status","id":1}'
    assert reply.header("connection") is None


# 2
async def test_pipelined_requests_answered_in_order(connect: Connect) -> None:
    client = await connect()
    chunked = (b"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\ntwo\r\n0\r\n\r\n")
    await client.send(post(b"one") + chunked + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
                      + post(b"four"))
    bodies = [(await client.reply()).body for _ in range(4)]
    assert bodies == [b"one", b"two", b'{"status": "ok"}', b"four"]


# 3
async def test_request_byte_by_byte(connect: Connect) -> None:
    client = await connect()
    for byte in post(b'{"a": 1}'):
        await client.send(bytes([byte]))
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b'{"a": 1}')


async def test_request_in_three_writes(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HT")
    await asyncio.sleep(0.2)
    await client.send(b"TP/1.1\r\nHost: t\r\nContent-Len")
    await asyncio.sleep(0.2)
    await client.send(b"gth: 5\r\n\r\nhel")
    await asyncio.sleep(0.2)
    await client.send(b"lo")
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b"hello")


# 4, 5
@pytest.mark.parametrize("lines", [
    ["Content-Length: -1"], ["Content-Length: +5"], ["Content-Length: 0x5"],
    ["Content-Length: 5 5"], ["Content-Length: "], ["Content-Length: 5", "Content-Length: 6"],
    ["Content-Length: 5, 10"],
])
async def test_bad_content_length_then_close(connect: Connect, lines: list[str]) -> None:
    client = await connect()
    extra = "".join(f"{line}\r\n" for line in lines)
    await client.send(f"POST /rpc HTTP/1.1\r\nHost: t\r\n{extra}\r\nhello".encode())
    reply = await client.reply()
    assert reply.status == 400 and reply.header("connection") == "close"
    assert reply.header("date")
    await client.assert_closed()


async def test_identical_content_lengths_merge(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n"
                      b"Content-Length: 5\r\n\r\nhello")
    assert (await client.reply()).body == b"hello"


# 6, 7
async def test_content_length_with_chunked_then_close(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    reply = await client.reply()
    assert reply.status == 400 and reply.header("connection") == "close"
    await client.assert_closed()


async def test_smuggled_request_gets_no_response(connect: Connect) -> None:
    client = await connect()
    smuggled = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" % len(body) + body)
    first = await client.reply()
    assert first.status == 400
    assert await client.read_eof() == b""


# 8
async def test_chunked_with_extensions_and_trailer(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5;ext=1\r\nhello\r\n1;a;b=\"c\"\r\n!\r\n0\r\nX-Checksum: 1\r\n\r\n")
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b"hello!")
    await client.send(post(b"again"))
    assert (await client.reply()).body == b"again"


# 9, 10
@pytest.mark.parametrize("body", [
    b"-1\r\nx\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n",
    b"1" * 30 + b"\r\nhello\r\n0\r\n\r\n", b"5 \r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello!!\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n",
])
async def test_bad_chunks_then_close(connect: Connect, body: bytes) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + body)
    reply = await client.reply()
    assert reply.status == 400 and reply.header("connection") == "close"
    await client.assert_closed()


# 11
@pytest.mark.parametrize("coding, status", [
    ("gzip", 501), ("xchunked", 501), ("identity", 501), ("chunked, gzip", 400),
])
async def test_transfer_codings_then_close(connect: Connect, coding: str, status: int) -> None:
    client = await connect()
    await client.send(f"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {coding}\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n".encode())
    reply = await client.reply()
    assert reply.status == status and reply.header("connection") == "close"
    await client.assert_closed()


# 12
async def test_http10_with_transfer_encoding_closes(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    reply = await client.reply()
    assert reply.status == 400
    await client.assert_closed()


# 13
async def test_post_without_length_has_an_empty_body(connect: Connect, app: App) -> None:
    client = await connect()
    await client.send(b"POST /record HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b"")
    assert app.requests[-1].body == b""


# 14-17
@pytest.mark.parametrize("head", [
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-A: b\r\n  folded\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nHost: a\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-A: a\x07b\r\nContent-Length: 5\r\n\r\nhello",
])
async def test_malformed_header_sections(connect: Connect, head: bytes) -> None:
    client = await connect()
    await client.send(head)
    reply = await client.reply()
    assert reply.status == 400 and reply.header("connection") == "close"
    await client.assert_closed()


# 18
async def test_huge_header_line_is_431_at_once(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 64 * 1024)
    reply = await client.reply(timeout=0.4)          # before the 0.5 s header deadline
    assert reply.status == 431 and reply.header("connection") == "close"
    await client.assert_closed()


async def test_two_hundred_headers_is_431(connect: Connect) -> None:
    client = await connect()
    fields = "".join(f"X-{i}: v\r\n" for i in range(200))
    await client.send(f"POST /rpc HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
    reply = await client.reply()
    assert reply.status == 431
    await client.assert_closed()


# 19
async def test_huge_target_is_414(connect: Connect) -> None:
    client = await connect()
    await client.send(b"GET /" + b"a" * 100 * 1024 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    reply = await client.reply()
    assert reply.status == 414
    await client.assert_closed()


async def test_long_target_accepted(connect: Connect) -> None:
    client = await connect()
    target = "/info?" + "q" * (7900 - len("/info?"))
    await client.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    reply = await client.reply()
    assert reply.status == 200
    assert json.loads(reply.body)["query"] == "q" * (7900 - len("/info?"))


# 20
@pytest.mark.parametrize("version, status", [
    ("HTTP/1.2", 505), ("HTTP/2.0", 505), ("http/1.1", 400), ("HTTP/1", 400), ("HTTP/01.1", 400),
])
async def test_versions(connect: Connect, version: str, status: int) -> None:
    client = await connect()
    await client.send(f"GET /health {version}\r\nHost: t\r\n\r\n".encode())
    assert (await client.reply()).status == status
    await client.assert_closed()


# 21
async def test_unknown_and_overlong_methods_are_501(connect: Connect) -> None:
    client = await connect()
    await client.send(b"BREW /rpc HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.reply()).status == 501
    other = await connect()
    await other.send(b"X" * 10_000 + b" /rpc HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await other.reply()).status == 501


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
async def test_wrong_method_is_405_with_allow(connect: Connect, method: str) -> None:
    client = await connect()
    await client.send(f"{method} /rpc HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    reply = await client.reply(head_request=method == "HEAD")
    assert reply.status == 405 and reply.header("allow") == "POST"
    # No body followed the head, so the connection goes on.
    await client.send(post(b"next"))
    assert (await client.reply()).body == b"next"


async def test_405_with_a_body_closes(connect: Connect) -> None:
    client = await connect()
    await client.send(b"PUT /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
    reply = await client.reply()
    assert reply.status == 405 and reply.header("connection") == "close"
    await client.assert_closed()


# 22
async def test_any_content_type_is_accepted(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"{}", extra="Content-Type: text/plain\r\n"))
    assert (await client.reply()).status == 200


# 23
async def test_too_large_body_refused_while_client_keeps_sending(connect: Connect) -> None:
    client = await connect()
    size = 9 * 1024 * 1024
    await client.send(f"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
                      .encode())
    reply = await client.reply(timeout=1.0)
    assert reply.status == 413 and reply.header("connection") == "close"

    async def keep_sending() -> None:
        try:
            for _ in range(size // 65536):
                await client.send(b"x" * 65536)
        except ConnectionError:
            pass

    sender = asyncio.create_task(keep_sending())
    assert await client.read_eof() == b""
    await sender


async def test_64_mib_announced_is_413_without_the_body(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n")
    reply = await client.reply(timeout=0.4)
    assert reply.status == 413
    assert await client.read_eof(timeout=1.0) == b""


async def test_chunked_body_over_the_limit_is_413(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + b"8000\r\n" + b"a" * 0x8000 + b"\r\n" + b"8001\r\n")
    reply = await client.reply()
    assert reply.status == 413
    await client.assert_closed()


# 24
async def test_expect_continue_accepted(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    interim = await client.reply()
    assert (interim.status, interim.reason) == (100, "Continue")
    await client.send(b"hello")
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b"hello")


async def test_expect_continue_chunked(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    assert (await client.reply()).status == 100
    await client.send(b"2\r\nok\r\n0\r\n\r\n")
    assert (await client.reply()).body == b"ok"


@pytest.mark.parametrize("request_head", [
    b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999\r\nExpect: 100-continue\r\n\r\n",
    b"POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    b"PUT /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
])
async def test_expect_continue_refused_without_100(connect: Connect, request_head: bytes) -> None:
    client = await connect()
    await client.send(request_head)
    reply = await client.reply()
    assert reply.status in (413, 404, 405)
    await client.assert_closed()


async def test_http10_never_gets_100(connect: Connect) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert await client.silent_for(0.2)
    await client.send(b"hello")
    reply = await client.reply()
    assert (reply.status, reply.body) == (200, b"hello")


# 25
async def test_announced_body_never_sent_times_out(connect: Connect) -> None:
    tracemalloc.start()
    try:
        client = await connect()
        await client.send(b"POST /huge HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n"
                          b"only a little")
        reply = await client.reply(timeout=2.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status == 408
    assert peak < 16 * 1024 * 1024          # nothing sized from the announced length
    await client.assert_closed()


# 26
async def test_slowloris_closed_at_total_header_deadline(connect: Connect) -> None:
    client = await connect()
    loop = asyncio.get_running_loop()
    started = loop.time()
    head = b"POST /rpc HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100

    async def trickle() -> None:
        try:
            for byte in head:
                await client.send(bytes([byte]))
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass

    sender = asyncio.create_task(trickle())
    reply = await client.reply(timeout=2.0)
    elapsed = loop.time() - started
    sender.cancel()
    assert reply.status == 408 and reply.header("connection") == "close"
    assert 0.4 < elapsed < 1.0                # header_timeout is 0.5 s for the whole head
    await client.assert_closed()


# 27
async def test_silent_connection_closed_without_a_word(connect: Connect) -> None:
    client = await connect()
    assert await client.read_eof(timeout=2.0) == b""


async def test_idle_keepalive_connection_closed_without_a_word(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"x"))
    assert (await client.reply()).status == 200
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.read_eof(timeout=2.0) == b""
    assert 0.3 < loop.time() - started < 1.5


# 28
async def test_connection_close(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"x", extra="Connection: close\r\n"))
    reply = await client.reply()
    assert reply.status == 200 and reply.header("connection") == "close"
    assert await client.read_eof(timeout=1.0) == b""


async def test_http10_closes_by_default(connect: Connect) -> None:
    client = await connect()
    await client.send(post(b"x", version="HTTP/1.0"))
    reply = await client.reply()
    assert reply.status == 200 and reply.header("connection") == "close"
    assert await client.read_eof(timeout=1.0) == b""


async def test_http10_keep_alive(connect: Connect) -> None:
    client = await connect()
    for body in (b"one", b"two"):
        await client.send(post(body, version="HTTP/1.0", extra="Connection: keep-alive\r\n"))
        reply = await client.reply()
        assert reply.body == body and reply.header("connection") == "keep-alive"


# 29
async def test_reset_mid_body_leaves_server_working(connect: Connect, server: HttpServer) -> None:
    client = await connect()
    await client.send(b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    client.reset()
    await asyncio.sleep(0)
    fresh = await connect()
    await fresh.send(post(b"alive"))
    assert (await fresh.reply()).body == b"alive"


async def test_reset_mid_response_leaves_server_working(connect: Connect,
                                                        server: HttpServer) -> None:
    client = await connect()
    await client.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
    await client.reader.readexactly(1000)
    client.reset()
    fresh = await connect()
    await fresh.send(post(b"alive"))
    assert (await fresh.reply()).body == b"alive"


async def test_eof_mid_head_and_mid_body(connect: Connect) -> None:
    for partial in (b"POST /rpc HTTP/1.1\r\nHo",
                    b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"):
        client = await connect()
        await client.send(partial)
        client.writer.write_eof()
        assert await client.read_eof(timeout=1.0) == b""
    fresh = await connect()
    await fresh.send(post(b"alive"))
    assert (await fresh.reply()).body == b"alive"


# 30
async def test_leading_crlf_accepted(connect: Connect) -> None:
    client = await connect()
    await client.send(b"\r\n" + post(b"x"))
    assert (await client.reply()).status == 200
    await client.send(b"\r\n" + post(b"y"))       # also between kept-alive requests
    assert (await client.reply()).body == b"y"


@pytest.mark.parametrize("garbage", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    bytes(range(256)) * 4,
    b"\x00\x01\x02\x03\r\n\r\n",
])
async def test_binary_garbage_is_400_at_once(connect: Connect, garbage: bytes) -> None:
    client = await connect()
    await client.send(garbage)
    reply = await client.reply(timeout=0.4)           # before the header deadline
    assert reply.status == 400 and reply.header("connection") == "close"
    await client.assert_closed()


# 31
async def test_thousand_keepalive_requests_memory_flat(connect: Connect) -> None:
    client = await connect()
    request = post(b'{"jsonrpc":"2.0","method":"status","id":1}')

    async def round_trips(count: int) -> None:
        for _ in range(count):
            await client.send(request)
            reply = await client.reply()
            assert reply.status == 200

    await round_trips(100)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        await round_trips(1000)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, after - before      # < 64 bytes per request

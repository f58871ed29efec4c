"""HttpClient against a raw-socket stub server: framing, keep-alive, retries, timeouts, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rpcchat.transport import client as http_module
from rpcchat.transport.client import (
    ConnectError, ConnectionLost, HttpClient, HttpClientError, InvalidRequest, InvalidUrl,
    ProtocolError, RequestTimeout,
)
from stub_http import Handler, StubConnection, StubServer, free_port

StartStub = Callable[[Handler], Awaitable[StubServer]]


async def serve_forever(conn: StubConnection, body: bytes = b"ok") -> None:
    """Answer every request on the connection with `body` and Content-Length."""
    while await conn.read_request() is not None:
        await conn.respond(body)


async def test_content_length_response_and_request_format(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        request = await conn.read_request()
        assert request is not None
        await conn.respond(b'{"hello": "world"}', headers=("Content-Type: application/json",))

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        response = await http.request("post", "/rpc", b"[1]", [("X-Test", "yes")])
    assert response.status == 200
    assert response.reason == "OK"
    assert response.body == b'{"hello": "world"}'
    assert response.header("content-type") == "application/json"
    assert response.header("CONTENT-TYPE") == "application/json"
    request = server.requests[0]
    assert (request.method, request.path, request.body) == ("POST", "/rpc", b"[1]")
    assert request.headers["host"] == server.url.removeprefix("http://")
    assert request.headers["content-length"] == "3"
    assert request.headers["x-test"] == "yes"


async def test_keep_alive_reuses_one_connection(stub: StartStub) -> None:
    server = await stub(serve_forever)
    async with HttpClient(server.url) as http:
        for _ in range(3):
            assert (await http.request("GET", "/health")).body == b"ok"
    assert server.connections == 1
    assert len(server.requests) == 3


async def test_base_url_path_prefix_is_kept(stub: StartStub) -> None:
    server = await stub(serve_forever)
    async with HttpClient(server.url + "/chat/") as http:
        await http.request("GET", "/health")
    assert server.requests[0].path == "/chat/health"


async def test_chunked_response_with_extensions_and_trailers(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        while await conn.read_request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5;name=value\r\nhello\r\n"
                            b"1;quoted=\"a b\"\r\n,\r\n"
                            b"6\r\n world\r\n"
                            b"0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        first = await http.request("GET", "/")
        second = await http.request("GET", "/")  # framing kept: the connection is reusable
    assert first.body == second.body == b"hello, world"
    assert server.connections == 1


async def test_chunked_response_split_across_writes(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        for piece in (b"HTTP/1.1 200 OK\r\nTransfer-", b"Encoding: chunked\r\n\r\n3",
                      b"\r\nab", b"c\r", b"\n0\r\n", b"\r\n"):
            await conn.send(piece)
            await asyncio.sleep(0.01)

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        assert (await http.request("GET", "/")).body == b"abc"


async def test_invalid_chunk_size_is_a_protocol_error(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n")

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ProtocolError, match="chunk"):
            await http.request("GET", "/")


async def test_connection_close_is_honoured(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.respond(b"bye", headers=("Connection: close",))
        conn.close()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        assert (await http.request("GET", "/")).body == b"bye"
        assert (await http.request("GET", "/")).body == b"bye"
    assert server.connections == 2


async def test_http10_body_until_close(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        conn.close()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        assert (await http.request("GET", "/")).body == b"all of it"
        assert (await http.request("GET", "/")).body == b"all of it"
    assert server.connections == 2


async def test_no_body_for_head_204_and_interim_100(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # HEAD: no body
        await conn.read_request()
        await conn.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await conn.read_request()
        await conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        await conn.respond(b"final")
        await serve_forever(conn)

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        head = await http.request("HEAD", "/")
        assert (head.status, head.body) == (200, b"")
        no_content = await http.request("POST", "/rpc", b"{}")
        assert (no_content.status, no_content.body) == (204, b"")
        final = await http.request("POST", "/rpc", b"{}")
        assert (final.status, final.body) == (200, b"final")
    assert server.connections == 1


async def test_idle_connection_closed_by_server_is_replaced(stub: StartStub) -> None:
    closed = asyncio.Event()

    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.respond(b"first")
        if conn.index == 1:
            conn.close()  # keep-alive timeout on the server side, with no warning
            closed.set()
            return
        await serve_forever(conn)

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        await http.request("POST", "/rpc", b"{}")
        await closed.wait()
        await asyncio.sleep(0.05)  # let the FIN reach the client's socket
        response = await http.request("POST", "/rpc", b"{}", idempotent=False)
    assert response.body == b"first"
    assert server.connections == 2
    assert len(server.requests) == 2


async def dies_after_first_response(conn: StubConnection) -> None:
    """The race a reused connection can lose: the server read the request, then closed
    (e.g. its keep-alive timer fired) without answering."""
    await conn.read_request()
    await conn.respond(b"first")
    if conn.index == 1:
        await conn.read_request()
        conn.writer.transport.abort()
        return
    await serve_forever(conn, b"retried")


async def test_dead_reused_connection_is_retried_once_when_idempotent(
        stub: StartStub) -> None:
    server = await stub(dies_after_first_response)
    async with HttpClient(server.url) as http:
        await http.request("GET", "/")
        response = await http.request("GET", "/")
    # The first connection is reused, dies before answering, and the retry opens a new one.
    # (The new connection answers its first request with "first".)
    assert response.body == b"first"
    assert server.connections == 2
    assert [request.method for request in server.requests] == ["GET", "GET", "GET"]


async def test_dead_reused_connection_not_retried_when_not_idempotent(
        stub: StartStub) -> None:
    server = await stub(dies_after_first_response)
    async with HttpClient(server.url) as http:
        await http.request("POST", "/rpc", b"{}")
        with pytest.raises(ConnectionLost):
            await http.request("POST", "/rpc", b"{}")
    assert server.connections == 1


async def test_post_marked_idempotent_is_retried(stub: StartStub) -> None:
    server = await stub(dies_after_first_response)
    async with HttpClient(server.url) as http:
        await http.request("POST", "/rpc", b"{}")
        response = await http.request("POST", "/rpc", b"{}", idempotent=True)
    assert response.status == 200
    assert server.connections == 2


async def test_close_fails_a_request_in_flight_instead_of_retrying(stub: StartStub) -> None:
    second_request = asyncio.Event()

    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.respond(b"first")
        if conn.index == 1:
            await conn.read_request()
            second_request.set()
            await asyncio.Event().wait()  # never answers: the client closes first
        await serve_forever(conn, b"retried")

    server = await stub(handler)
    http = HttpClient(server.url)
    await http.request("GET", "/")
    in_flight = asyncio.create_task(http.request("GET", "/"))  # on the kept-alive connection
    await second_request.wait()
    await http.close()
    with pytest.raises(ConnectionLost, match="closed"):
        await in_flight
    assert server.connections == 1


async def test_fresh_connection_closed_without_response_is_not_retried(
        stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        conn.writer.transport.abort()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ConnectionLost):
            await http.request("GET", "/")
    assert server.connections == 1


async def test_connection_closed_mid_body(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        conn.close()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ConnectionLost, match="middle"):
            await http.request("GET", "/")


async def test_timeout(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await asyncio.Event().wait()  # never answers

    server = await stub(handler)
    async with HttpClient(server.url, timeout=5) as http:
        with pytest.raises(RequestTimeout) as caught:
            await http.request("GET", "/slow", timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, HttpClientError)
    assert "0.2 s" in str(caught.value)


async def test_timed_out_connection_is_not_reused(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        request = await conn.read_request()
        while request is not None:
            if request.path == "/slow":
                await asyncio.sleep(0.5)
            await conn.respond(request.path.encode())
            request = await conn.read_request()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(RequestTimeout):
            await http.request("GET", "/slow", timeout=0.1)
        # A late answer to /slow must never be taken for the answer to /fast.
        assert (await http.request("GET", "/fast")).body == b"/fast"
    assert server.connections == 2


async def test_concurrent_requests_use_separate_connections(stub: StartStub) -> None:
    release = asyncio.Event()

    async def handler(conn: StubConnection) -> None:
        request = await conn.read_request()
        while request is not None:
            if request.path == "/poll":
                await release.wait()
            await conn.respond(request.path.encode())
            request = await conn.read_request()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        poll = asyncio.create_task(http.request("POST", "/poll", b"{}"))
        await asyncio.sleep(0.05)
        assert (await http.request("POST", "/send", b"{}")).body == b"/send"
        assert not poll.done()  # the long request did not block the short one
        release.set()
        assert (await poll).body == b"/poll"
        await http.request("GET", "/again")  # back from the pool
    assert server.connections == 2


async def test_malformed_status_line(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 OK 200\r\nContent-Length: 0\r\n\r\n")

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ProtocolError, match="status line"):
            await http.request("GET", "/")


async def test_not_http_at_all(stub: StartStub) -> None:
    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.close()

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ProtocolError, match="not an HTTP response"):
            await http.request("GET", "/")


async def test_bad_header_and_conflicting_lengths(stub: StartStub) -> None:
    responses = [b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n",
                 b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"]

    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.send(responses[conn.index - 1])

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        for _ in responses:
            with pytest.raises(ProtocolError):
                await http.request("GET", "/")


async def test_body_over_the_limit(stub: StartStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_module, "MAX_BODY_BYTES", 10)

    async def handler(conn: StubConnection) -> None:
        await conn.read_request()
        await conn.respond(b"x" * 11)

    server = await stub(handler)
    async with HttpClient(server.url) as http:
        with pytest.raises(ProtocolError, match="over"):
            await http.request("GET", "/")


async def test_connect_refused() -> None:
    async with HttpClient(f"http://127.0.0.1:{free_port()}") as http:
        with pytest.raises(ConnectError, match="refused"):
            await http.request("GET", "/health")


@pytest.mark.parametrize("url, reason", [
    ("https://example.org", "https is not supported"),
    ("ftp://example.org", "expected http"),
    ("http://", "no host"),
    ("http://host:99999", "invalid server URL"),
    ("http://user:pw@host", "only http"),
])
def test_invalid_urls(url: str, reason: str) -> None:
    with pytest.raises(InvalidUrl, match=reason):
        HttpClient(url)


async def test_ipv6_host_header() -> None:
    http = HttpClient("http://[::1]:8123")
    assert http.base_url == "http://[::1]:8123"
    await http.close()


@pytest.mark.parametrize("method, path, headers, reason", [
    ("GET", "/x", [("X-Evil", "a\r\nInjected: yes")], "invalid characters"),
    ("GET", "/x", [("Bad Name", "v")], "invalid header name"),
    ("GET", "/x", [("Content-Length", "5")], "set by the client"),
    ("GET", "/x y", [], "invalid path"),
    ("GET", "relative", [], "invalid path"),
    ("GE T", "/x", [], "invalid method"),
    ("GET", "/x", [("X-Test\n", "v")], "invalid header name"),
    ("GET", "/x", [("X-Test", "a\x01b")], "invalid characters"),
    ("GET\n", "/x", [], "invalid method"),
])
async def test_unsafe_requests_are_refused(method: str, path: str,
                                           headers: list[tuple[str, str]], reason: str) -> None:
    async with HttpClient("http://127.0.0.1:9") as http:
        with pytest.raises(InvalidRequest, match=reason):
            await http.request(method, path, headers=headers)


async def test_closed_client_refuses_requests(stub: StartStub) -> None:
    server = await stub(serve_forever)
    http = HttpClient(server.url)
    await http.request("GET", "/")
    await http.close()
    with pytest.raises(HttpClientError, match="closed"):
        await http.request("GET", "/")

"""Unit tests of the pure HTTP/1.1 parser and formatter: bytes in, data or HttpError out."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from rpcchat.config import HttpLimits
from rpcchat.transport.parsing import (
    CONTENT_LENGTH_CAP, ChunkedDecoder, Framing, HttpError, RequestHead, classify_oversized_head,
    format_response, http_date, parse_request_head, parse_response_head, request_prefix_ok,
)

NOW = 1_700_000_000.0


def head(*lines: str, start: str = "POST /rpc HTTP/1.1") -> bytes:
    return ("\r\n".join((start, *lines)) + "\r\n\r\n").encode("latin-1")


def parse(*lines: str, start: str = "POST /rpc HTTP/1.1") -> RequestHead:
    return parse_request_head(head(*lines, start=start))


def status_of(data: bytes, limits: HttpLimits = HttpLimits()) -> int:
    with pytest.raises(HttpError) as caught:
        parse_request_head(data, limits)
    return caught.value.status


# ---- request-line


def test_simple_post() -> None:
    parsed = parse("Host: example.com", "Content-Length: 5", "X-Thing:  a b  ")
    assert (parsed.method, parsed.target, parsed.path, parsed.query) == ("POST", "/rpc", "/rpc", "")
    assert parsed.version == "HTTP/1.1"
    assert parsed.headers == [("host", "example.com"), ("content-length", "5"),
                              ("x-thing", "a b")]
    assert parsed.keep_alive and parsed.host == "example.com"
    assert (parsed.framing, parsed.content_length) == (Framing.LENGTH, 5)
    assert not parsed.expect_continue


def test_query_and_empty_value() -> None:
    parsed = parse("Host: h", "X-Empty:", "X-Tab:\tv\t", start="GET /a/b?x=1&y=2 HTTP/1.1")
    assert (parsed.path, parsed.query) == ("/a/b", "x=1&y=2")
    assert ("x-empty", "") in parsed.headers and ("x-tab", "v") in parsed.headers
    assert parsed.framing is Framing.NONE


def test_one_leading_crlf_is_ignored() -> None:
    assert parse_request_head(b"\r\n" + head("Host: h")).method == "POST"


def test_two_leading_crlfs_are_not() -> None:
    assert status_of(b"\r\n\r\n" + head("Host: h")) == 400


@pytest.mark.parametrize("start, status", [
    ("FOO /rpc HTTP/1.1", 501),
    ("CONNECT example.com:443 HTTP/1.1", 501),
    ("G\x01T /rpc HTTP/1.1", 400),
    ("GET  /rpc HTTP/1.1", 400),
    ("GET /rpc  HTTP/1.1", 400),
    ("GET /rpc HTTP/1.1 ", 400),
    ("GET /rpc", 400),
    ("GET", 400),
    ("/rpc HTTP/1.1", 400),
    ("GET /r\x7fpc HTTP/1.1", 400),
    ("GET /r\xe9 HTTP/1.1", 400),
    ("GET /rpc#frag HTTP/1.1", 400),
    ("GET rpc HTTP/1.1", 400),
    ("GET * HTTP/1.1", 400),
    ("GET ftp://h/x HTTP/1.1", 400),
    ("GET http:///x HTTP/1.1", 400),
    ("GET /rpc HTTP/1.2", 505),
    ("GET /rpc HTTP/2.0", 505),
    ("GET /rpc HTTP/0.9", 505),
    ("GET /rpc http/1.1", 400),
    ("GET /rpc HTTP/1", 400),
    ("GET /rpc HTTP/01.1", 400),
    ("GET /rpc HTTP/1.10", 400),
    ("GET /rpc HTTPS/1.1", 400),
])
def test_bad_request_lines(start: str, status: int) -> None:
    assert status_of(head("Host: h", start=start)) == status


def test_overlong_method_is_501() -> None:
    assert status_of(head("Host: h", start="X" * 10_000 + " /rpc HTTP/1.1")) == 501
    assert status_of(head("Host: h", start="GETGETGETGETGETGETGETGETGETGETGETGET")) == 501


def test_request_line_limit() -> None:
    limits = HttpLimits(max_request_line=100)
    ok = "GET /" + "a" * 80 + " HTTP/1.1"
    assert parse_request_head(head("Host: h", start=ok), limits).path == "/" + "a" * 80
    assert status_of(head("Host: h", start="GET /" + "a" * 100 + " HTTP/1.1"), limits) == 414


def test_absolute_form_uses_its_authority() -> None:
    parsed = parse("Host: other", start="POST http://example.com:80/rpc?q=1 HTTP/1.1")
    assert (parsed.path, parsed.query, parsed.host) == ("/rpc", "q=1", "example.com:80")
    assert parse("Host: h", start="GET HTTP://h HTTP/1.1").path == "/"


def test_asterisk_form_for_options() -> None:
    parsed = parse("Host: h", start="OPTIONS * HTTP/1.1")
    assert parsed.path == "*"


# ---- versions and persistence


@pytest.mark.parametrize("version, connection, keep_alive", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Keep-Alive, CLOSE", False),
    ("HTTP/1.1", "upgrade", True),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "foo, Keep-Alive", True),
    ("HTTP/1.0", "keep-alive, close", False),
])
def test_keep_alive(version: str, connection: str | None, keep_alive: bool) -> None:
    lines = ["Host: h"] + ([f"Connection: {connection}"] if connection else [])
    assert parse(*lines, start=f"GET / {version}").keep_alive is keep_alive


def test_http10_needs_no_host() -> None:
    parsed = parse(start="GET / HTTP/1.0")
    assert parsed.host is None and parsed.version == "HTTP/1.0"


# ---- Host


@pytest.mark.parametrize("lines", [
    [],
    ["Host: a", "Host: a"],
    ["Host: a", "host: b"],
    ["Host: a b"],
    ["Host: user@host"],
    ["Host: a/b"],
    ["Host: [::1"],
])
def test_bad_host(lines: list[str]) -> None:
    assert status_of(head(*lines)) == 400


@pytest.mark.parametrize("value", ["example.com", "example.com:8080", "127.0.0.1:1",
                                   "[::1]:8000", "xn--bcher-kva.example", ""])
def test_good_host(value: str) -> None:
    assert parse(f"Host: {value}").host == value


# ---- field syntax


@pytest.mark.parametrize("lines, status", [
    (["Host: h", "Content-Length : 5"], 400),
    (["Host: h", "Content-Length\t: 5"], 400),
    (["Host: h", "X-A: b", " folded"], 400),
    (["Host: h", "X-A: b", "\tfolded"], 400),
    ([" Host: h"], 400),
    (["Host: h", "X-A: b\rc"], 400),
    (["Host: h", "X-A: b\r"], 400),
    (["Host: h", "X-A: b\nc"], 400),
    (["Host: h", "X-A: b\x00c"], 400),
    (["Host: h", "X-A: b\x01c"], 400),
    (["Host: h", "X-A: b\x1bc"], 400),
    (["Host: h", "X-A: b\x7fc"], 400),
    (["Host: h", "NoColon"], 400),
    (["Host: h", ": empty-name"], 400),
    (["Host: h", "X(A): b"], 400),
    (["Host: h", "X\x00A: b"], 400),
    (["Host: h", "X-\xe9: b"], 400),
])
def test_bad_fields(lines: list[str], status: int) -> None:
    assert status_of(head(*lines)) == status


def test_bare_lf_line_ending_rejected() -> None:
    assert status_of(b"POST /rpc HTTP/1.1\nHost: h\r\n\r\n") == 400
    assert status_of(b"POST /rpc HTTP/1.1\r\nHost: h\nX: y\r\n\r\n") == 400


def test_obs_text_allowed_in_values() -> None:
    assert parse("Host: h", "X-A: caf\xe9").headers[1] == ("x-a", "caf\xe9")


def test_head_must_end_with_empty_line() -> None:
    assert status_of(b"POST /rpc HTTP/1.1\r\nHost: h\r\n") == 400
    assert status_of(b"POST /rpc HTTP/1.1\r\nHost: h\r\nX: y") == 400
    assert status_of(b"POST /rpc HTTP/1.1") == 400


def test_header_count_and_size_limits() -> None:
    limits = HttpLimits(max_header_count=10, max_header_bytes=1000)
    assert parse_request_head(head("Host: h", *[f"X-{i}: v" for i in range(9)]), limits)
    assert status_of(head("Host: h", *[f"X-{i}: v" for i in range(10)]), limits) == 431
    assert status_of(head("Host: h", "X-Big: " + "v" * 1000), limits) == 431


# ---- Content-Length


@pytest.mark.parametrize("values, length", [
    (["0"], 0), (["5"], 5), (["005"], 5), (["5, 5"], 5), (["5", "5"], 5), (["5,5", "05"], 5),
    (["9" * 40], CONTENT_LENGTH_CAP), (["1" + "0" * 5000], CONTENT_LENGTH_CAP),
])
def test_content_length(values: list[str], length: int) -> None:
    parsed = parse("Host: h", *[f"Content-Length: {v}" for v in values])
    assert parsed.content_length == length
    assert parsed.framing is (Framing.LENGTH if length else Framing.NONE)


@pytest.mark.parametrize("values", [
    ["-1"], ["+5"], ["0x5"], ["5 5"], [""], ["5,"], ["5, 10"], ["5", "6"], ["5.0"], ["\xb2"],
    ["\u0665"], ["1e3"],
])
def test_bad_content_length(values: list[str]) -> None:
    data = "\r\n".join(["POST /rpc HTTP/1.1", "Host: h",
                        *[f"Content-Length: {v}" for v in values]]) + "\r\n\r\n"
    assert status_of(data.encode("utf-8")) == 400


# ---- Transfer-Encoding


@pytest.mark.parametrize("values", [["chunked"], ["Chunked"], ["CHUNKED"], [" chunked "],
                                    [", chunked"]])
def test_chunked(values: list[str]) -> None:
    parsed = parse("Host: h", *[f"Transfer-Encoding: {v}" for v in values])
    assert parsed.framing is Framing.CHUNKED


@pytest.mark.parametrize("values, status", [
    (["gzip"], 501), (["xchunked"], 501), (["identity"], 501), (["gzip, chunked"], 501),
    (["gzip", "chunked"], 501),
    (["chunked, gzip"], 400), (["chunked", "gzip"], 400), (["chunked, chunked"], 400),
    (["chunked", "chunked"], 400), (["chunked;q=1"], 400), ([""], 400), (["chun ked"], 400),
    (["chunked\x0b"], 400),
])
def test_bad_transfer_encoding(values: list[str], status: int) -> None:
    assert status_of(head("Host: h", *[f"Transfer-Encoding: {v}" for v in values])) == status


def test_content_length_with_transfer_encoding() -> None:
    assert status_of(head("Host: h", "Content-Length: 5", "Transfer-Encoding: chunked")) == 400
    assert status_of(head("Host: h", "Transfer-Encoding: chunked", "Content-Length: 5")) == 400


def test_transfer_encoding_in_http10() -> None:
    err = pytest.raises(HttpError, parse_request_head,
                        head("Transfer-Encoding: chunked", start="POST /rpc HTTP/1.0"))
    assert err.value.status == 400 and err.value.close


# ---- Expect


def test_expect_continue() -> None:
    assert parse("Host: h", "Expect: 100-Continue", "Content-Length: 3").expect_continue
    assert not parse("Expect: 100-continue", "Content-Length: 3",
                     start="POST /rpc HTTP/1.0").expect_continue
    assert not parse("Host: h", "Expect: something-else").expect_continue


# ---- oversized heads and garbage


def test_classify_oversized_head() -> None:
    limits = HttpLimits(max_request_line=100, max_header_bytes=100)
    assert classify_oversized_head(b"GET /" + b"a" * 300, limits).status == 414
    assert classify_oversized_head(b"X" * 300, limits).status == 501
    assert classify_oversized_head(b"FOO /" + b"a" * 300, limits).status == 501
    assert classify_oversized_head(b"\x16\x03\x01" + b"a" * 300, limits).status == 400
    assert classify_oversized_head(b"GET / HTTP/1.1\r\nX: " + b"a" * 300, limits).status == 431
    assert classify_oversized_head(b"\r\nGET / HTTP/1.1\r\nX: " + b"a" * 300,
                                   limits).status == 431
    assert classify_oversized_head(b"GET / HTTP/2.0\r\nX: " + b"a" * 300, limits).status == 505


@pytest.mark.parametrize("data, ok", [
    (b"P", True), (b"POST", True), (b"POST /rpc HTTP/1.1\r\n", True), (b"\r", True),
    (b"\r\n", True), (b"\r\nGET / HTTP/1.1", True), (b"\x16\x03\x01\x02\x00", False),
    (b"\x00", False), (b" GET", False), (b"GE\x00T", False), (b"\r\n\r\n", False),
    (b"\n", False),
])
def test_request_prefix(data: bytes, ok: bool) -> None:
    assert request_prefix_ok(data) is ok


# ---- chunked decoding


def decode_all(data: bytes, max_body: int | None = None) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder(max_body)
    return decoder.feed(data), decoder


def test_chunked_decode_with_extensions_and_trailers() -> None:
    data = (b"5;name=value;flag\r\nhello\r\n6 ; q=\"a \\\" b\"\r\n world\r\n"
            b"0\r\nX-Trailer: yes\r\nY: z\r\n\r\nNEXT")
    body, decoder = decode_all(data)
    assert body == b"hello world" and decoder.done and decoder.unused == b"NEXT"
    assert decoder.received == 11


def test_chunked_decode_byte_by_byte_matches() -> None:
    data = b"a\r\n0123456789\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"
    decoder = ChunkedDecoder()
    out = b"".join(decoder.feed(data[i:i + 1]) for i in range(len(data)))
    assert out == b"0123456789" + b"z" * 26 and decoder.done and decoder.unused == b""


def test_chunked_wanted_guides_exact_reads() -> None:
    decoder = ChunkedDecoder()
    assert decoder.wanted() is None
    decoder.feed(b"5\r\n")
    assert decoder.wanted() == 5
    decoder.feed(b"hel")
    assert decoder.wanted() == 2
    decoder.feed(b"lo")
    assert decoder.wanted() == 2
    decoder.feed(b"\r")
    assert decoder.wanted() == 1
    decoder.feed(b"\n")
    assert decoder.wanted() is None
    decoder.feed(b"0\r\n\r\n")
    assert decoder.wanted() == 0 and decoder.done


@pytest.mark.parametrize("data", [
    b"-1\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n", b"F" * 30 + b"\r\n",
    b"5 \r\nhello\r\n", b"\r\n", b"5\nhello\r\n", b"5\r\nhello!!\r\n", b"5\r\nhello\n0\r\n\r\n",
    b"5\r\nhelloXY", b"5;\r\nhello\r\n", b"5;a=\r\n", b"5;a=\"x\r\n", b"5;a b\r\n",
    b"0\r\nBad Trailer\r\n\r\n", b"0\r\n folded\r\n\r\n", b"0\r\nX: \x00\r\n\r\n", b"0\r\n\n",
    b"g\r\n", b"5\r\r\n",
])
def test_bad_chunked(data: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        ChunkedDecoder().feed(data)
    assert caught.value.status == 400


def test_chunked_sixteen_hex_digits_parse() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"000000000000000A\r\n")
    assert decoder.wanted() == 10


def test_chunked_limit_is_checked_from_the_size_line() -> None:
    decoder = ChunkedDecoder(max_body=10)
    decoder.feed(b"6\r\nabcdef\r\n")
    with pytest.raises(HttpError) as caught:
        decoder.feed(b"5\r\n")          # 11 > 10, refused before any data byte
    assert caught.value.status == 413
    with pytest.raises(HttpError) as huge:
        ChunkedDecoder(max_body=10).feed(b"FFFFFFFFFFFFFFFF\r\n")
    assert huge.value.status == 413


def test_chunked_line_and_trailer_limits() -> None:
    with pytest.raises(HttpError) as long_line:
        ChunkedDecoder(max_line=20).feed(b"5;" + b"a" * 30)
    assert long_line.value.status == 400
    with pytest.raises(HttpError) as big_trailer:
        ChunkedDecoder(max_trailer_bytes=20).feed(b"0\r\nX: " + b"a" * 30 + b"\r\n")
    assert big_trailer.value.status == 431


# ---- responses


def test_format_response() -> None:
    data = format_response(200, b"{}", "application/json", [("X-A", "b")], now=NOW)
    head_bytes, body = data.split(b"\r\n\r\n", 1)
    lines = head_bytes.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert f"Date: {http_date(NOW)}" in lines and "Server: rpcchat" in lines
    assert "Content-Length: 2" in lines and "Content-Type: application/json" in lines
    assert "X-A: b" in lines and not any(line.startswith("Connection") for line in lines)
    assert body == b"{}"


def test_format_response_connection_and_head() -> None:
    closing = format_response(400, b"bad", now=NOW, close=True)
    assert b"Connection: close\r\n" in closing and closing.endswith(b"\r\n\r\nbad")
    kept = format_response(200, b"ok", now=NOW, keep_alive_header=True)
    assert b"Connection: keep-alive\r\n" in kept
    head_only = format_response(200, b"ok", now=NOW, include_body=False)
    assert head_only.endswith(b"Content-Length: 2\r\n\r\n")


@pytest.mark.parametrize("status", [100, 204, 304])
def test_no_content_length_without_body(status: int) -> None:
    data = format_response(status, b"ignored", now=NOW)
    assert b"Content-Length" not in data and data.endswith(b"\r\n\r\n")


def test_format_response_rejects_injection() -> None:
    with pytest.raises(ValueError):
        format_response(200, now=NOW, headers=[("X", "a\r\nB: c")])
    with pytest.raises(ValueError):
        format_response(200, now=NOW, headers=[("X Y", "a")])
    with pytest.raises(ValueError):
        format_response(200, now=NOW, content_type="a\nb")
    with pytest.raises(ValueError):
        format_response(42, now=NOW)


def test_http_date() -> None:
    assert http_date(0.0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784111777.9) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert http_date(784111777.1) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_unknown_status_reason() -> None:
    assert format_response(299, now=NOW).startswith(b"HTTP/1.1 299 Unknown\r\n")


# ---- response heads (for clients)


def response(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_parse_response_head_length() -> None:
    parsed = parse_response_head(response("HTTP/1.1 200 OK", "Content-Length: 12",
                                          "Content-Type: application/json"))
    assert (parsed.status, parsed.reason, parsed.version) == (200, "OK", "HTTP/1.1")
    assert (parsed.framing, parsed.content_length, parsed.keep_alive) == (Framing.LENGTH, 12,
                                                                          True)
    assert parsed.header("CONTENT-TYPE") == "application/json"


def test_parse_response_head_framing() -> None:
    assert parse_response_head(response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked",
                                        "Content-Length: 3")).framing is Framing.CHUNKED
    gzip_only = parse_response_head(response("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"))
    assert gzip_only.framing is Framing.UNTIL_CLOSE and not gzip_only.keep_alive
    assert parse_response_head(response("HTTP/1.1 200 OK")).framing is Framing.UNTIL_CLOSE
    assert parse_response_head(response("HTTP/1.1 204 No Content")).framing is Framing.NONE
    assert parse_response_head(response("HTTP/1.1 304 Not Modified",
                                        "Content-Length: 9")).framing is Framing.NONE
    assert parse_response_head(response("HTTP/1.1 100 Continue")).framing is Framing.NONE
    assert parse_response_head(response("HTTP/1.1 200 OK", "Content-Length: 9"),
                               request_method="HEAD").framing is Framing.NONE


def test_parse_response_head_persistence_and_reason() -> None:
    assert not parse_response_head(response("HTTP/1.0 200 OK", "Content-Length: 1")).keep_alive
    assert parse_response_head(response("HTTP/1.0 200 OK", "Content-Length: 1",
                                        "Connection: keep-alive")).keep_alive
    assert not parse_response_head(response("HTTP/1.1 200 OK", "Content-Length: 1",
                                            "Connection: close")).keep_alive
    assert parse_response_head(response("HTTP/1.1 404", "Content-Length: 0")).reason == ""
    assert parse_response_head(response("HTTP/1.1 404 ", "Content-Length: 0")).reason == ""


@pytest.mark.parametrize("data", [
    response("HTTP/2 200 OK"), response("HTTP/1.1 20 OK"), response("ICY 200 OK"),
    response("HTTP/1.1 200 OK", "Content-Length: 1, 2"),
    response("HTTP/1.1 200 OK", "Bad Header: x"), b"HTTP/1.1 200 OK\r\n",
    response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked"),
])
def test_bad_response_heads(data: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        parse_response_head(data)
    assert caught.value.status == 502


# ---- hostile input costs linear time


@pytest.mark.parametrize("value", [
    b" " * 16000 + b"\x01", b"a" + b" " * 16000 + b"\x01", b"a \t" * 5000 + b"\x01",
    b"a " * 8000 + b"\rb",
])
def test_hostile_header_values_parse_fast(value: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: h\r\nX: " + value + b"\r\n\r\n"
    best = min(_seconds_to_fail(lambda: parse_request_head(data)) for _ in range(3))
    assert best < 0.02          # quadratic backtracking took over 0.1 s here


@pytest.mark.parametrize("line", [
    b"5" + b" " * 4000 + b"X\r\n", b"5;a" + b" " * 4000 + b"X\r\n",
    b"5;a=\"" + b"\\\\" * 2000 + b"\r\n",
])
def test_hostile_chunk_lines_parse_fast(line: bytes) -> None:
    best = min(_seconds_to_fail(lambda: ChunkedDecoder().feed(line)) for _ in range(3))
    assert best < 0.02


def _seconds_to_fail(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    with pytest.raises(HttpError):
        action()
    return time.perf_counter() - started

"""Body edge cases of POST /rpc through real sockets: empty and blank bodies, bare JSON
values, nesting at and past the limit, a body of exactly the size limit and one byte over
(Content-Length and chunked), near-limit strings, duplicate keys, byte order marks, bytes
that are not UTF-8 and numbers JSON cannot hold."""

from __future__ import annotations

import json
from typing import Any

import pytest

from robustness_http import ParsedResponse, check_responses, exchange, health_ok
from robustness_rpc import World, error_problems
from rpcchat.app import ChatServer

MAX_BODY = 2 * 1024 * 1024          # HttpLimits.max_body, the default the servers run with
MAX_DEPTH = 64                      # the dispatcher's nesting limit
STATUS = b'{"jsonrpc":"2.0","method":"status","id":1}'
BOUND = 5.0


async def post_raw(server: ChatServer, body: bytes, *, token: str | None = None,
                   chunk_size: int | None = None) -> ParsedResponse:
    """POST /rpc with `Connection: close`, by Content-Length or in chunks of `chunk_size`;
    the one well-formed response (checked) and a server that still answers /health."""
    auth = b"" if token is None else b"Authorization: Bearer %s\r\n" % token.encode()
    if chunk_size is None:
        framing, payload = b"Content-Length: %d\r\n" % len(body), body
    else:
        framing = b"Transfer-Encoding: chunked\r\n"
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk_size]),
                                              body[i:i + chunk_size])
                           for i in range(0, len(body), chunk_size)) + b"0\r\n\r\n"
    head = b"POST /rpc HTTP/1.1\r\nHost: bodies\r\nConnection: close\r\n%s%s\r\n" % (
        auth, framing)
    result = await exchange(server.port, [head + payload], half_close=False, bound=BOUND)
    check = check_responses(result.received, reset=result.reset)
    assert not check.problems, check.problems
    assert result.closed and len(check.responses) == 1, result.received[:300]
    assert await health_ok(server.port) is None
    return check.responses[0]


async def rpc_raw(server: ChatServer, body: bytes | str, token: str | None = None) -> Any:
    """The decoded JSON-RPC answer to a raw body (HTTP 200 application/json)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    response = await post_raw(server, data, token=token)
    assert response.status == 200, (response.status, response.body[:200])
    assert response.headers.get("content-type") == "application/json"
    return json.loads(response.body)


def assert_error(answer: Any, code: int, request_id: Any = None) -> dict[str, Any]:
    assert isinstance(answer, dict), answer
    assert answer.get("jsonrpc") == "2.0" and answer.get("id") == request_id, answer
    error: dict[str, Any] = answer.get("error")  # type: ignore[assignment]
    assert isinstance(error, dict) and error.get("code") == code, answer
    assert not error_problems(error), error_problems(error)
    return error


def call(method: str, params: str) -> str:
    return f'{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}'


def nested_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("body", [b"", b" ", b"\r\n\t ", b" " * 10_000])
async def test_empty_or_blank_body_is_a_parse_error(world: World, body: bytes) -> None:
    assert_error(await rpc_raw(world.server, body), -32700)


async def test_post_without_any_length_is_a_parse_error(world: World) -> None:
    result = await exchange(world.server.port,
                            [b"POST /rpc HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"],
                            half_close=False, bound=BOUND)
    check = check_responses(result.received, reset=result.reset)
    assert not check.problems and len(check.responses) == 1
    response = check.responses[0]
    assert response.status in (200, 411), response
    if response.status == 200:
        assert_error(json.loads(response.body), -32700)


@pytest.mark.parametrize("body", ['"a string"', "5", "-0.5", "true", "false", "null", "[1]",
                                  '"\\ud800"'])
async def test_bare_json_values_are_invalid_requests(world: World, body: str) -> None:
    answer = await rpc_raw(world.server, body)
    if body.startswith("["):
        assert isinstance(answer, list) and len(answer) == 1, answer
        answer = answer[0]
    assert_error(answer, -32600)


async def test_empty_batch_is_one_invalid_request(world: World) -> None:
    assert_error(await rpc_raw(world.server, "[]"), -32600)


@pytest.mark.parametrize("nest", [nested_array, nested_object])
async def test_nesting_up_to_the_limit_is_parsed(world: World, nest: Any) -> None:
    # The request object and "params" are two levels; the value fills the rest exactly.
    answer = await rpc_raw(world.server, call("send", f'{{"text":{nest(MAX_DEPTH - 2)}}}'),
                           world.alice.token)
    error = assert_error(answer, -32602, 1)
    assert error["data"]["field"] == "text"


@pytest.mark.parametrize("nest", [nested_array, nested_object])
async def test_nesting_past_the_limit_is_a_parse_error(world: World, nest: Any) -> None:
    answer = await rpc_raw(world.server, call("send", f'{{"text":{nest(MAX_DEPTH - 1)}}}'),
                           world.alice.token)
    assert_error(answer, -32700)


async def test_batch_nested_to_the_limit_vs_one_more(world: World) -> None:
    at_limit = await rpc_raw(world.server, nested_array(MAX_DEPTH))
    assert isinstance(at_limit, list) and len(at_limit) == 1
    assert_error(at_limit[0], -32600)
    assert_error(await rpc_raw(world.server, nested_array(MAX_DEPTH + 1)), -32700)


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_absurd_nesting_is_a_parse_error(world: World, depth: int) -> None:
    assert_error(await rpc_raw(world.server, nested_array(depth)), -32700)
    assert_error(await rpc_raw(world.server, call("status", nested_object(depth))), -32700)


async def test_brackets_inside_strings_do_not_count_as_nesting(world: World) -> None:
    text = json.dumps("[" * 500 + "{" * 500 + '\\"[')
    answer = await rpc_raw(world.server, call("send", f'{{"text":{text}}}'), world.alice.token)
    assert "result" in answer, answer


async def test_deeply_nested_params_in_a_valid_call(world: World) -> None:
    token = world.alice.token
    members = await rpc_raw(world.server, call("chat.create",
                                               '{"name":"deep","members":[[[["bob"]]]]}'), token)
    error = assert_error(members, -32602, 1)
    assert error["data"]["field"].startswith("members")
    poll = await rpc_raw(world.server, call("poll", f'{{"timeout":{nested_object(40)}}}'), token)
    assert assert_error(poll, -32602, 1)["data"]["field"] == "timeout"


async def test_text_near_the_body_limit_is_too_large(world: World) -> None:
    text = "x" * int(1.9 * 1024 * 1024)
    body = json.dumps({"jsonrpc": "2.0", "method": "send", "params": {"text": text}, "id": 9})
    error = assert_error(await rpc_raw(world.server, body, world.alice.token), -32007, 9)
    assert error["data"]["limit"] == world.server.config.max_text


async def test_other_strings_near_the_body_limit_are_refused(world: World) -> None:
    huge = "\u00e9" * (900 * 1024)     # 1.8 MiB of UTF-8
    for method, param in (("connect", "name"), ("chat.create", "name"), ("report", "user"),
                          ("file.put", "data")):
        params: dict[str, Any] = {param: huge}
        if method == "connect":
            params["password"] = "secret"
        if method == "file.put":
            params.update(upload_id=world.upload_id, offset=0)
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 3},
                          ensure_ascii=False)
        answer = await rpc_raw(world.server, body, world.alice.token)
        assert answer["error"]["code"] in (-32602, -32007), (method, answer)
        assert_error(answer, answer["error"]["code"], 3)


def padded_status(size: int) -> bytes:
    """A valid status call of exactly `size` bytes (trailing whitespace is JSON)."""
    return STATUS + b" " * (size - len(STATUS))


@pytest.mark.parametrize("chunk_size", [None, 64 * 1024])
async def test_body_of_exactly_the_limit_is_served(world: World, chunk_size: int | None) -> None:
    response = await post_raw(world.server, padded_status(MAX_BODY), chunk_size=chunk_size)
    assert response.status == 200, response
    assert "result" in json.loads(response.body)


@pytest.mark.parametrize("chunk_size", [None, 64 * 1024, MAX_BODY + 1])
async def test_one_byte_over_the_limit_is_413(world: World, chunk_size: int | None) -> None:
    response = await post_raw(world.server, padded_status(MAX_BODY + 1), chunk_size=chunk_size)
    assert response.status == 413, response
    assert response.headers.get("connection") == "close"


@pytest.mark.parametrize("body, expected", [
    ('{"jsonrpc":"2.0","method":"nope","method":"status","id":1}', "status"),
    ('{"jsonrpc":"2.0","method":"status","id":1,"id":2}', "id 2"),
    ('{"jsonrpc":"2.0","method":"status","params":{"x":1},"params":{},"id":1}', "status"),
    ('{"jsonrpc":"1.0","jsonrpc":"2.0","method":"status","id":1}', "status"),
])
async def test_duplicate_keys_take_the_last_value(world: World, body: str, expected: str) -> None:
    """RFC 8259 leaves duplicate names to the parser; the server documents the last one
    winning (as Python's json does), never an internal error."""
    answer = await rpc_raw(world.server, body)
    assert "result" in answer, answer
    assert answer["id"] == (2 if expected == "id 2" else 1)
    assert "server" in answer["result"]


async def test_utf8_byte_order_mark_is_ignored(world: World) -> None:
    answer = await rpc_raw(world.server, b"\xef\xbb\xbf" + STATUS)
    assert "result" in answer and answer["id"] == 1
    batch = await rpc_raw(world.server, b"\xef\xbb\xbf[" + STATUS + b"]")
    assert isinstance(batch, list) and "result" in batch[0]


@pytest.mark.parametrize("body", [
    b"{\xef\xbb\xbf" + STATUS[1:],                       # a BOM inside the JSON
    b"\xef\xbb\xbf\xef\xbb\xbf" + STATUS,                # two of them
    b"\xff\xfe" + STATUS.decode().encode("utf-16-le"),   # UTF-16 with its BOM
    STATUS.decode().encode("utf-32"),
    b'{"jsonrpc":"2.0","method":"st\xc0\xafus","id":1}',  # an overlong encoding
    b'{"jsonrpc":"2.0","method":"\xed\xa0\x80","id":1}',  # an encoded surrogate
    b'{"jsonrpc":"2.0","method":"status","id":1}\xff',
    b'{"jsonrpc":"2.0","method":"status","id":NaN}',
    b'{"jsonrpc":"2.0","method":"status","id":-Infinity}',
    b'{"jsonrpc":"2.0","method":"status","id":1e400}',
    b'{"jsonrpc":"2.0","method":"status","id":' + b"9" * 5000 + b"}",
    b'{"jsonrpc":"2.0","method":"status","id":1}{"jsonrpc":"2.0"}',
    b'{"jsonrpc":"2.0","method":"status","id":1',
    b"\x00" * 64,
])
async def test_bytes_that_are_not_json_are_parse_errors(world: World, body: bytes) -> None:
    assert_error(await rpc_raw(world.server, body), -32700)


@pytest.mark.parametrize("request_id", [2**70, -(2**70), 1e308, 5e-324, -0.0, "\ud800",
                                        "x" * 10_000, "", "\u0000"])
async def test_odd_ids_are_echoed(world: World, request_id: Any) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "status", "id": request_id})
    answer = await rpc_raw(world.server, body)
    assert "result" in answer and answer["id"] == request_id, answer

"""The JSON-RPC envelope: go-ethereum's extra cases (reference 1.3), Python json traps
(reference 2.2) and black-box items 32-39 of Part 3 that belong to the dispatcher."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, TypedDict

import pytest

from rpcchat.clock import ManualClock
from rpcchat.errors import NotFound, RpcError
from rpcchat.jsonrpc.context import CallContext
from rpcchat.jsonrpc.dispatcher import Dispatcher, nesting_exceeds
from rpcchat.jsonrpc.registry import Auth, Registry, rpc_method


class Stamped(TypedDict):
    value: int


class ToolMethods:
    """Methods that misbehave on purpose, plus state to check batch ordering."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.contexts: list[CallContext] = []
        self.shared_result: dict[str, Any] = {"value": 1}
        self.cancel_entered = asyncio.Event()

    @rpc_method("echo", auth=Auth.NONE)
    async def echo(self, ctx: CallContext, value: Any = None) -> Any:
        return value

    @rpc_method("boom", auth=Auth.OPTIONAL)
    async def boom(self, ctx: CallContext) -> Stamped:
        raise KeyError("secret internal detail")

    @rpc_method("not_found", auth=Auth.NONE)
    async def not_found(self, ctx: CallContext) -> Stamped:
        raise NotFound("no such chat", {"chat": "x"})

    @rpc_method("bad_result", auth=Auth.NONE)
    async def bad_result(self, ctx: CallContext) -> Any:
        return {"when": object()}

    @rpc_method("nan_result", auth=Auth.NONE)
    async def nan_result(self, ctx: CallContext) -> Any:
        return {"x": float("nan")}

    @rpc_method("bad_error_data", auth=Auth.NONE)
    async def bad_error_data(self, ctx: CallContext) -> Any:
        raise RpcError("odd", {"x": object()})

    @rpc_method("stamped", auth=Auth.NONE)
    async def stamped(self, ctx: CallContext) -> Stamped:
        return self.shared_result  # type: ignore[return-value]

    @rpc_method("append", auth=Auth.NONE)
    async def append(self, ctx: CallContext, item: str) -> Stamped:
        self.contexts.append(ctx)
        await asyncio.sleep(0)  # yield: order must still hold
        self.log.append(item)
        return {"value": len(self.log)}

    @rpc_method("read", auth=Auth.NONE)
    async def read(self, ctx: CallContext) -> list[str]:
        return list(self.log)

    @rpc_method("hang", auth=Auth.NONE)
    async def hang(self, ctx: CallContext) -> Stamped:
        self.cancel_entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
def tools() -> ToolMethods:
    return ToolMethods()


@pytest.fixture
def tool_dispatcher(registry: Registry, tools: ToolMethods, authenticator: Any,
                    clock: ManualClock) -> Dispatcher:
    registry.add(tools)
    return Dispatcher(registry, authenticator, clock)


async def ask(dispatcher: Dispatcher, message: Any, authorization: str | None = None) -> Any:
    body = message if isinstance(message, bytes) else (
        message.encode() if isinstance(message, str) else json.dumps(message).encode())
    result = await dispatcher.dispatch(body, authorization)
    return None if result.body is None else json.loads(result.body)


def error_of(reply: Any) -> tuple[int, Any]:
    assert set(reply) == {"jsonrpc", "error", "id"}, reply
    assert reply["jsonrpc"] == "2.0"
    assert isinstance(reply["error"]["message"], str)
    return reply["error"]["code"], reply["id"]


# -- parse errors (-32700, id null) ---------------------------------------------------

@pytest.mark.parametrize("body", [
    b'{"jsonrpc":"2.0","method":"get_data","id":1,"x":"\xff"}',
    b'{"jsonrpc":"2.0","method":"get_data","id":"\xed\xa0\x80"}',   # UTF-8 encoded surrogate
    b'{"jsonrpc":"2.0","method":"get_data","id":1,"x":"\xc3"}',     # truncated sequence
    b'{"jsonrpc":"2.0","method":"echo","params":[NaN],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","params":[Infinity],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","params":[-Infinity],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","params":[1e400],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","id":NaN}',
    b'{"jsonrpc":"2.0","method":"echo","params":[' + b"9" * 5000 + b'],"id":1}',
    b"",
    b"   \r\n ",
    b"'f",
    b'{"jsonrpc":"2.0","method":"echo","id":1} trailing',
    b"\xef\xbb\xbf\xef\xbb\xbf{}",   # only one BOM is tolerated
])
async def test_parse_errors(tool_dispatcher: Dispatcher, body: bytes) -> None:
    assert error_of(await ask(tool_dispatcher, body)) == (-32700, None)


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
async def test_absurd_nesting_is_a_parse_error_and_cheap(tool_dispatcher: Dispatcher,
                                                         opener: str, closer: str) -> None:
    body = (opener * 100_000 + closer * 100_000).encode()
    started = time.perf_counter()
    assert error_of(await ask(tool_dispatcher, body)) == (-32700, None)
    assert error_of(await ask(tool_dispatcher, body[: len(body) // 2])) == (-32700, None)
    assert time.perf_counter() - started < 1.0
    # ... and the dispatcher still works afterwards.
    assert (await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": 1})
            )["result"] == ["hello", 5]


def nested_request(depth: int) -> bytes:
    """A request whose JSON nesting is exactly `depth` (the request object counts as 1)."""
    value = "[" * (depth - 2) + "]" * (depth - 2)
    return ('{"jsonrpc":"2.0","method":"echo","id":1,"params":{"value":%s}}' % value).encode()


async def test_nesting_limit_is_exact(tool_dispatcher: Dispatcher) -> None:
    assert "result" in await ask(tool_dispatcher, nested_request(64))
    assert error_of(await ask(tool_dispatcher, nested_request(65))) == (-32700, None)


def test_nesting_check_ignores_brackets_inside_strings() -> None:
    deep_looking = '{"a":"' + "[" * 500 + '\\"' + "{" * 500 + '"}'
    assert not nesting_exceeds(deep_looking, 64)
    assert nesting_exceeds("[" * 65 + "]" * 65, 64)
    assert not nesting_exceeds("[" * 64 + "]" * 64, 64)
    assert not nesting_exceeds("[]" * 10_000, 64)
    assert nesting_exceeds("[" * 10_000, 64)
    assert not nesting_exceeds("]" * 10_000, 64)   # invalid, left to the decoder
    # An unterminated string hides the rest: the decoder will reject the text anyway.
    assert not nesting_exceeds('["' + "[" * 100, 64)
    deep = "[" * 65 + "]" * 65
    # An escaped backslash ends the string before the brackets; an escaped quote does not.
    assert nesting_exceeds('["a\\\\",' + deep + "]", 65)
    assert not nesting_exceeds('["a\\\\",' + deep + "]", 66)
    assert not nesting_exceeds('["a\\"' + deep + '"]', 64)
    assert not nesting_exceeds('["a\\\\\\"' + deep + '"]', 64)
    assert nesting_exceeds('["a\\\\\\\\",' + deep + "]", 64)


def test_nesting_check_stays_linear_on_hostile_strings() -> None:
    hostile = "[" * 70 + '"' + '\\"' * 500_000        # one unterminated string of escapes
    started = time.perf_counter()
    nesting_exceeds(hostile, 64)
    nesting_exceeds("[" * 70 + '"a' * 500_000, 64)   # many strings
    nesting_exceeds("[" * 70 + "[]" * 500_000, 64)    # many brackets
    nesting_exceeds(("[" * 64 + "]" * 64) * 8_000, 64)  # many deep groups
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("body", [
    b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}',
    b'  {"jsonrpc":"2.0","method":"echo","params":[1],"id":1}',
    b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}\r\n ',
    b'\t{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}\n',
])
async def test_whitespace_around_the_document_is_allowed(tool_dispatcher: Dispatcher,
                                                         body: bytes) -> None:
    assert (await ask(tool_dispatcher, body))["id"] == 1


@pytest.mark.parametrize("body, message", [
    (b'{"jsonrpc":"2.0","id":1} x', "Parse error: Extra data at line 1 column 26"),
    (b'{"jsonrpc":"2.0","id":1}\n}', "Parse error: Extra data at line 2 column 1"),
    (b'[1] [2]', "Parse error: Extra data at line 1 column 5"),
    (b'{"jsonrpc":', "Parse error: Expecting value at line 1 column 12"),
    (b'{"a" 1}', "Parse error: Expecting ':' delimiter at line 1 column 6"),
    (b'', "Parse error: Expecting value at line 1 column 1"),
    (b'  x', "Parse error: Expecting value at line 1 column 3"),
])
async def test_parse_error_messages_say_where(tool_dispatcher: Dispatcher, body: bytes,
                                              message: str) -> None:
    reply = await ask(tool_dispatcher, body)
    assert reply["error"] == {"code": -32700, "message": message}


async def test_utf8_bom_is_ignored(tool_dispatcher: Dispatcher) -> None:
    body = b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"get_data","id":7}'
    assert await ask(tool_dispatcher, body) == {"jsonrpc": "2.0", "result": ["hello", 5],
                                                "id": 7}


async def test_huge_but_parseable_integer_is_invalid_params(tool_dispatcher: Dispatcher,
                                                            ) -> None:
    body = ('{"jsonrpc":"2.0","method":"subtract","params":[%s,1],"id":1}' % ("9" * 4000))
    reply = await ask(tool_dispatcher, body)
    assert error_of(reply) == (-32602, 1)
    assert reply["error"]["data"]["field"] == "minuend"


# -- invalid requests (-32600) --------------------------------------------------------

@pytest.mark.parametrize("bad_id", [True, False, {}, [], {"a": 1}, [1]])
async def test_bad_id_is_invalid_request_with_null_id(tool_dispatcher: Dispatcher,
                                                      bad_id: Any) -> None:
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": bad_id})
    assert error_of(reply) == (-32600, None)


@pytest.mark.parametrize("good_id", [None, 0, -5, 1.5, "", "abc", "é\U0001F600", 2**70])
async def test_ids_are_echoed(tool_dispatcher: Dispatcher, good_id: Any) -> None:
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": good_id})
    assert reply == {"jsonrpc": "2.0", "result": ["hello", 5], "id": good_id}


async def test_lone_surrogate_id_is_echoed_as_an_escape(tool_dispatcher: Dispatcher) -> None:
    result = await tool_dispatcher.dispatch(
        b'{"jsonrpc":"2.0","method":"get_data","id":"\\ud800x"}', None)
    assert result.body is not None
    assert b'"id":"\\ud800x"' in result.body
    assert result.body.isascii()


@pytest.mark.parametrize("envelope", [
    {"jsonrpc": "2.1", "method": "get_data", "id": 3},
    {"jsonrpc": 2.0, "method": "get_data", "id": 3},
    {"jsonrpc": 2, "method": "get_data", "id": 3},
    {"jsonrpc": None, "method": "get_data", "id": 3},
    {"method": "get_data", "id": 3},
    {"id": 3},
    {"jsonrpc": "2.0", "id": 3},
    {"jsonrpc": "2.0", "method": 1, "id": 3},
    {"jsonrpc": "2.0", "method": None, "id": 3},
    {"jsonrpc": "2.0", "method": ["get_data"], "id": 3},
    {"jsonrpc": "2.0", "method": "get_data", "params": "bar", "id": 3},
    {"jsonrpc": "2.0", "method": "get_data", "params": 5, "id": 3},
    {"jsonrpc": "2.0", "method": "get_data", "params": True, "id": 3},
])
async def test_invalid_envelope_echoes_the_detected_id(tool_dispatcher: Dispatcher,
                                                       envelope: dict[str, Any]) -> None:
    assert error_of(await ask(tool_dispatcher, envelope)) == (-32600, 3)


@pytest.mark.parametrize("message", ["1", '"x"', "null", "true", "2.5"])
async def test_non_object_request(tool_dispatcher: Dispatcher, message: str) -> None:
    assert error_of(await ask(tool_dispatcher, message)) == (-32600, None)


async def test_invalid_request_without_id_is_still_answered(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.1", "method": "get_data"})
    assert error_of(reply) == (-32600, None)


async def test_params_null_is_treated_as_absent(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher,
                      {"jsonrpc": "2.0", "method": "get_data", "params": None, "id": 1})
    assert reply["result"] == ["hello", 5]


async def test_extra_request_members_are_ignored(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher,
                      {"jsonrpc": "2.0", "method": "get_data", "id": 1, "extra": [1]})
    assert reply["result"] == ["hello", 5]


async def test_id_null_is_a_call_not_a_notification(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "foobar", "id": None})
    assert error_of(reply) == (-32601, None)


async def test_unknown_rpc_names_are_not_found(tool_dispatcher: Dispatcher) -> None:
    for name in ("rpc.foo", "rpc.", "rpc.discover.x", "RPC.DISCOVER"):
        reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": name, "id": 1})
        assert error_of(reply) == (-32601, 1)


# -- batches --------------------------------------------------------------------------

async def test_batch_of_null(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher, "[null]")
    assert isinstance(reply, list) and len(reply) == 1
    assert error_of(reply[0]) == (-32600, None)


async def test_empty_batch_is_one_error_object(tool_dispatcher: Dispatcher) -> None:
    assert error_of(await ask(tool_dispatcher, "[]")) == (-32600, None)


async def test_batch_over_the_limit_runs_nothing(tool_dispatcher: Dispatcher,
                                                 tools: ToolMethods) -> None:
    batch = [{"jsonrpc": "2.0", "method": "append", "params": ["x"], "id": i}
             for i in range(101)]
    reply = await ask(tool_dispatcher, batch)
    assert isinstance(reply, list) and len(reply) == 1
    assert error_of(reply[0]) == (-32600, None)
    assert reply[0]["error"]["message"] == "batch too large"
    assert tools.log == []


async def test_batch_at_the_limit_runs_everything(tool_dispatcher: Dispatcher) -> None:
    batch = [{"jsonrpc": "2.0", "method": "append", "params": [str(i)], "id": i}
             for i in range(100)]
    reply = await ask(tool_dispatcher, batch)
    assert [item["id"] for item in reply] == list(range(100))


async def test_batch_runs_in_order_and_answers_in_order(tool_dispatcher: Dispatcher,
                                                        tools: ToolMethods) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "append", "params": {"item": "a"}, "id": "1"},
        {"jsonrpc": "2.0", "method": "append", "params": {"item": "b"}},
        {"jsonrpc": "2.0", "method": "read", "id": "2"},
        {"jsonrpc": "2.0", "method": "append", "params": {"item": "c"}, "id": "3"},
    ]
    reply = await ask(tool_dispatcher, batch)
    assert [item["id"] for item in reply] == ["1", "2", "3"]
    assert reply[1]["result"] == ["a", "b"]
    assert tools.log == ["a", "b", "c"]
    assert all(ctx.in_batch for ctx in tools.contexts)


async def test_single_call_is_not_in_batch(tool_dispatcher: Dispatcher,
                                           tools: ToolMethods) -> None:
    await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "append", "params": ["a"], "id": 1})
    assert tools.contexts[0].in_batch is False


async def test_mixed_batch_keeps_results_and_reports_each_bad_entry(
        tool_dispatcher: Dispatcher) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "get_data", "id": 1},
        None,
        {"jsonrpc": "2.0", "method": "nope", "id": 2},
        {"jsonrpc": "2.0", "method": "nope"},
        {"jsonrpc": "2.0", "method": "subtract", "params": ["x", 1], "id": 3},
    ]
    reply = await ask(tool_dispatcher, batch)
    assert reply[0]["result"] == ["hello", 5]
    assert [error_of(item) for item in reply[1:]] == [(-32600, None), (-32601, 2), (-32602, 3)]


# -- faults in handlers ---------------------------------------------------------------

async def test_handler_exception_is_internal_error_and_logged(
        tool_dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="rpcchat.jsonrpc.dispatcher"):
        result = await tool_dispatcher.dispatch(
            b'{"jsonrpc":"2.0","method":"boom","id":1}', "Bearer tok-alice")
    assert result.body is not None
    reply = json.loads(result.body)
    assert reply == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"},
                     "id": 1}
    assert b"secret" not in result.body and b"KeyError" not in result.body
    record = caplog.records[-1]
    assert "boom" in record.getMessage() and "alice" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "tok-alice" not in caplog.text
    # The same dispatcher keeps serving.
    assert (await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": 2})
            )["result"] == ["hello", 5]


async def test_handler_exception_in_a_notification_is_logged_not_answered(
        tool_dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="rpcchat.jsonrpc.dispatcher"):
        result = await tool_dispatcher.dispatch(b'{"jsonrpc":"2.0","method":"boom"}', None)
    assert result.body is None
    assert [call.outcome for call in result.calls] == ["error -32603"]
    assert any(record.exc_info for record in caplog.records)


async def test_rpc_error_carries_code_and_data(tool_dispatcher: Dispatcher) -> None:
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "not_found", "id": 1})
    assert reply["error"] == {"code": -32003, "message": "no such chat", "data": {"chat": "x"}}


@pytest.mark.parametrize("method", ["bad_result", "nan_result", "bad_error_data"])
async def test_unencodable_answer_becomes_internal_error_for_that_call_only(
        tool_dispatcher: Dispatcher, method: str) -> None:
    batch = [{"jsonrpc": "2.0", "method": method, "id": 1},
             {"jsonrpc": "2.0", "method": "get_data", "id": 2}]
    reply = await ask(tool_dispatcher, batch)
    assert error_of(reply[0]) == (-32603, 1)
    assert reply[1]["result"] == ["hello", 5]


async def test_cancellation_propagates(tool_dispatcher: Dispatcher, tools: ToolMethods) -> None:
    task = asyncio.create_task(
        tool_dispatcher.dispatch(b'{"jsonrpc":"2.0","method":"hang","id":1}', None))
    await tools.cancel_entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- results --------------------------------------------------------------------------

async def test_server_time_is_added_to_dict_results(tool_dispatcher: Dispatcher,
                                                    tools: ToolMethods,
                                                    clock: ManualClock) -> None:
    clock.advance(12.5)
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "stamped", "id": 1})
    assert reply["result"] == {"value": 1, "server_time": clock.time()}
    assert tools.shared_result == {"value": 1}   # the handler's object is left alone
    reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": 1})
    assert reply["result"] == ["hello", 5]


async def test_response_is_compact_ascii(tool_dispatcher: Dispatcher) -> None:
    result = await tool_dispatcher.dispatch(
        '{"jsonrpc":"2.0","method":"echo","params":{"value":"héllo ☃"},"id":1}'.encode(), None)
    assert result.body == b'{"jsonrpc":"2.0","result":"h\\u00e9llo \\u2603","id":1}'


async def test_call_records(tool_dispatcher: Dispatcher) -> None:
    batch = [{"jsonrpc": "2.0", "method": "get_data", "id": 1},
             {"jsonrpc": "2.0", "method": "boom", "id": 2},
             {"jsonrpc": "2.0", "method": "nope", "id": 3},
             7]
    result = await tool_dispatcher.dispatch(json.dumps(batch).encode(), "Bearer tok-bob")
    assert [(c.method, c.user, c.outcome) for c in result.calls] == [
        ("get_data", None, "ok"),
        ("boom", "bob", "error -32603"),
        ("nope", None, "error -32601"),
        (None, None, "error -32600"),
    ]
    assert all(call.duration_ms >= 0 for call in result.calls)
    parse_failure = await tool_dispatcher.dispatch(b"{", None)
    assert [(c.method, c.outcome) for c in parse_failure.calls] == [(None, "error -32700")]


async def test_calls_are_not_recorded_when_nobody_logs_them(tool_dispatcher: Dispatcher) -> None:
    body = json.dumps([{"jsonrpc": "2.0", "method": "get_data", "id": 1},
                       {"jsonrpc": "2.0", "method": "nope", "id": 2}]).encode()
    recorded = await tool_dispatcher.dispatch(body, None)
    unrecorded = await tool_dispatcher.dispatch(body, None, record=False)
    assert unrecorded.body == recorded.body and len(recorded.calls) == 2
    assert unrecorded.calls == []
    assert (await tool_dispatcher.dispatch(b"{", None, record=False)).calls == []


async def test_a_fault_of_the_dispatcher_itself_is_still_answered(
        tool_dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken_parse(body: bytes) -> Any:
        raise MemoryError("simulated")

    monkeypatch.setattr(tool_dispatcher, "_parse", broken_parse)
    with caplog.at_level(logging.ERROR, logger="rpcchat.jsonrpc.dispatcher"):
        reply = await ask(tool_dispatcher, {"jsonrpc": "2.0", "method": "get_data", "id": 1})
    assert error_of(reply) == (-32603, None)
    assert any(record.exc_info for record in caplog.records)


async def test_limits_are_configurable(registry: Registry, authenticator: Any,
                                       clock: ManualClock) -> None:
    small = Dispatcher(registry, authenticator, clock, max_batch=2, max_depth=4)
    call = {"jsonrpc": "2.0", "method": "get_data", "id": 1}
    assert len(await ask(small, [call, call])) == 2
    assert (await ask(small, [call, call, call]))[0]["error"]["code"] == -32600
    nested = {"jsonrpc": "2.0", "method": "subtract", "id": 1, "params": [[[1]], 1]}
    assert error_of(await ask(small, [nested, nested, nested, nested, nested])) == (-32700, None)
    with pytest.raises(ValueError):
        Dispatcher(registry, authenticator, clock, max_batch=0)

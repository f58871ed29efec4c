"""Every example of the JSON-RPC 2.0 specification (reference section 1.2), verbatim.

Replies are compared as parsed JSON with error messages ignored; batch replies without
regard to order.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

Strip = Callable[[Any], Any]

# (name, sent, expected reply or None) exactly as written in the specification.
SPEC_EXAMPLES: list[tuple[str, str, str | None]] = [
    ("positional 1",
     '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     '{"jsonrpc": "2.0", "result": 19, "id": 1}'),
    ("positional 2",
     '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     '{"jsonrpc": "2.0", "result": -19, "id": 2}'),
    ("named 1",
     '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, '
     '"id": 3}',
     '{"jsonrpc": "2.0", "result": 19, "id": 3}'),
    ("named 2",
     '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, '
     '"id": 4}',
     '{"jsonrpc": "2.0", "result": 19, "id": 4}'),
    ("notification 1",
     '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}',
     None),
    ("notification 2",
     '{"jsonrpc": "2.0", "method": "foobar"}',
     None),
    ("non-existent method",
     '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     '{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}'),
    ("invalid JSON",
     '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}'),
    ("invalid Request object",
     '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}'),
    ("batch, invalid JSON",
     '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
     '  {"jsonrpc": "2.0", "method"\n]',
     '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}'),
    ("empty Array",
     '[]',
     '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}'),
    ("invalid Batch, not empty",
     '[1]',
     '[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, '
     '"id": null}]'),
    ("invalid Batch",
     '[1,2,3]',
     '[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},'
     ' {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},'
     ' {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]'
     ),
    ("Batch",
     '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
     ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},'
     ' {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},'
     ' {"foo": "boo"},'
     ' {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},'
     ' {"jsonrpc": "2.0", "method": "get_data", "id": "9"}]',
     '[{"jsonrpc": "2.0", "result": 7, "id": "1"},'
     ' {"jsonrpc": "2.0", "result": 19, "id": "2"},'
     ' {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},'
     ' {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},'
     ' {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]'),
    ("Batch, all notifications",
     '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
     ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
     None),
]


def _order_free(reply: Any) -> Any:
    if isinstance(reply, list):
        return sorted((json.dumps(item, sort_keys=True) for item in reply))
    return reply


@pytest.mark.parametrize("name, sent, expected", SPEC_EXAMPLES,
                         ids=[example[0] for example in SPEC_EXAMPLES])
async def test_spec_example(send: Any, strip_message: Strip, name: str, sent: str,
                            expected: str | None) -> None:
    reply = await send(sent)
    if expected is None:
        assert reply is None
        return
    want = strip_message(json.loads(expected))
    got = strip_message(reply)
    assert isinstance(got, list) == isinstance(want, list)
    assert _order_free(got) == _order_free(want)


async def test_notifications_run_but_answer_nothing(send: Any,
                                                    spec_methods: Any) -> None:
    batch = ('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
             ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]')
    assert await send(batch) is None
    assert await send('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}') is None
    assert spec_methods.notified == [
        ("notify_sum", 7), ("notify_hello", 7), ("update", [1, 2, 3, 4, 5]),
    ]


async def test_all_notification_batch_gives_no_body_not_empty_array(send_raw: Any) -> None:
    result = await send_raw('[{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]')
    assert result.body is None
    assert [call.outcome for call in result.calls] == ["ok"]

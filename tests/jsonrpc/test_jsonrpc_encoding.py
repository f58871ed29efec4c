"""Response encoding: compact ASCII JSON, server_time stamping, objects encoded once."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rpcchat.jsonrpc.encoding import EncodedOnce, ResponseEncoder


def event(seq: int, text: str = "hi") -> EncodedOnce:
    return EncodedOnce(seq=seq, type="message", ts=1.5, data={"text": text, "n": None})


def plain(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def test_encoding_is_compact_ascii_and_refuses_nan() -> None:
    encoder = ResponseEncoder()
    assert encoder.encode({"a": ["é", 1.5, None]}) == '{"a":["\\u00e9",1.5,null]}'
    with pytest.raises(ValueError):
        encoder.encode({"x": math.nan})
    with pytest.raises(TypeError):
        encoder.encode({"x": object()})


def test_server_time_is_set_on_a_copy() -> None:
    result = {"value": 1, "server_time": 0.0}
    text = ResponseEncoder().success(result, 7, server_time=12.5)
    assert json.loads(text) == {"jsonrpc": "2.0", "result": {"value": 1, "server_time": 12.5},
                                "id": 7}
    assert result == {"value": 1, "server_time": 0.0}
    assert json.loads(ResponseEncoder().success([1], 1, server_time=3.0))["result"] == [1]


def test_shared_objects_are_spliced_and_encoded_once() -> None:
    encoder = ResponseEncoder()
    shared = [event(1), event(2, "two")]
    result = {"events": shared, "next": 2, "more": False}
    expected = plain({"jsonrpc": "2.0", "result": {**result, "server_time": 9.0}, "id": "a"})
    assert encoder.success(result, "a", server_time=9.0) == expected
    assert shared[0].text == plain(dict(shared[0]))
    # A later answer reuses the text; the object still compares like the dict it is.
    shared[0].text = '{"reused":true}'
    again = json.loads(encoder.success({"events": shared}, 1))
    assert again["result"]["events"][0] == {"reused": True}
    assert shared[1] == {"seq": 2, "type": "message", "ts": 1.5,
                         "data": {"text": "two", "n": None}}


def test_several_lists_and_plain_items_among_shared_ones() -> None:
    result = {"a": [event(1), {"plain": 1}], "b": [], "c": [event(3)], "d": [{"x": 1}]}
    text = ResponseEncoder().success(result, None)
    assert json.loads(text)["result"] == json.loads(plain(result))


def test_a_value_that_spells_the_slot_marker_is_still_encoded_right() -> None:
    sneaky = "\x00encoded-once\x00"
    result = {"events": [event(1)], "note": sneaky}
    text = ResponseEncoder().success(result, 1)
    assert json.loads(text)["result"] == json.loads(plain(result))


def test_an_unencodable_shared_object_raises() -> None:
    broken = EncodedOnce(x=object())
    with pytest.raises(TypeError):
        ResponseEncoder().success({"events": [broken]}, 1)


@pytest.mark.parametrize("request_id", [1, 0, -7, 2**63, "x", "\u00e9\u2028\"\\", "", None,
                                        1.5, -0.0, 1e300])
@pytest.mark.parametrize("result", [{"a": [1, "b"]}, {}, {"server_time": 1}, [1], "s", None,
                                    {"message": {"ts": 1.25, "text": "\u00fc"}}])
def test_responses_match_the_plain_encoding(request_id: Any, result: Any) -> None:
    encoder = ResponseEncoder()
    for stamp in (None, 1700000000.123456):
        expected_result = {**result, "server_time": stamp} \
            if isinstance(result, dict) and stamp is not None else result
        expected = plain({"jsonrpc": "2.0", "result": expected_result, "id": request_id})
        assert encoder.success(result, request_id, stamp) == expected


def test_encoded_once_starts_without_text() -> None:
    shared = event(1)
    assert shared.text is None
    ResponseEncoder().success({"events": [shared]}, 1)
    assert shared.text == plain(dict(shared))

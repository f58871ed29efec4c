"""Parameter validation compiled from annotations: types, constraints, binding."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest

from rpcchat.clock import ManualClock
from rpcchat.jsonrpc.constraints import Doc, Length, Pattern, Range
from rpcchat.jsonrpc.context import CallContext
from rpcchat.jsonrpc.dispatcher import Dispatcher
from rpcchat.jsonrpc.registry import Auth, Registry, rpc_method


class Filter(TypedDict):
    name: str
    tags: NotRequired[list[str]]


class ParamMethods:
    max_text = 10

    def __init__(self) -> None:
        self.config = SimpleNamespace(max_items=3)

    @rpc_method("types", auth=Auth.NONE)
    async def types(self, ctx: CallContext, s: str | None = None, i: int | None = None,
                    f: float | None = None, b: bool | None = None,
                    items: list[int] | None = None, meta: dict[str, Any] | None = None,
                    kind: Literal["a", "b", 3] | None = None, anything: Any = None,
                    filt: Filter | None = None, either: int | str | None = None,
                    ) -> dict[str, Any]:
        got = {"s": s, "i": i, "f": f, "b": b, "items": items, "meta": meta, "kind": kind,
               "anything": anything, "filt": filt, "either": either}
        return {"got": {k: v for k, v in got.items() if v is not None},
                "f_is_float": isinstance(f, float)}

    @rpc_method("limits", auth=Auth.NONE)
    async def limits(
        self, ctx: CallContext,
        text: Annotated[str, Length(1, "max_text", too_large="text"), Doc("the text")],
        count: Annotated[int, Range(ge=1, le=5)] = 1,
        delay: Annotated[float, Range(gt=0)] | None = None,
        ratio: Annotated[float, Range(gt=0, lt=1)] = 0.5,
        name: Annotated[str, Pattern(r"[a-z]{1,8}")] = "x",
        tags: Annotated[list[str], Length(max="config.max_items")] | None = None,
    ) -> dict[str, Any]:
        return {"text": text, "count": count}

    @rpc_method("keywords", auth=Auth.NONE)
    async def keywords(self, ctx: CallContext, from_: str, *, limit: int = 5) -> dict[str, Any]:
        return {"from": from_, "limit": limit}


@pytest.fixture
def param_dispatcher(authenticator: Any, clock: ManualClock) -> Dispatcher:
    registry = Registry()
    registry.add(ParamMethods())
    return Dispatcher(registry, authenticator, clock)


async def call(dispatcher: Dispatcher, method: str, params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
    result = await dispatcher.dispatch(body.encode(), None)
    assert result.body is not None
    return json.loads(result.body)


async def call_raw(dispatcher: Dispatcher, method: str, params_json: str) -> Any:
    body = '{"jsonrpc":"2.0","method":"%s","params":%s,"id":1}' % (method, params_json)
    result = await dispatcher.dispatch(body.encode(), None)
    assert result.body is not None
    return json.loads(result.body)


def invalid(reply: Any) -> tuple[str, str]:
    """(field, reason) of a -32602 reply."""
    assert "error" in reply, reply
    assert reply["error"]["code"] == -32602, reply
    data = reply["error"]["data"]
    assert set(data) == {"field", "reason"}
    assert isinstance(data["reason"], str) and data["reason"]
    return data["field"], data["reason"]


async def got(dispatcher: Dispatcher, params: Any) -> dict[str, Any]:
    reply = await call(dispatcher, "types", params)
    assert "result" in reply, reply
    return reply["result"]["got"]  # type: ignore[no-any-return]


# -- types ----------------------------------------------------------------------------

async def test_accepted_values(param_dispatcher: Dispatcher) -> None:
    params = {"s": "hé", "i": -3, "b": False, "items": [1, 2], "meta": {"k": [1, {"x": None}]},
              "kind": 3, "anything": [True, 1.5, "z"], "filt": {"name": "n", "tags": ["t"]},
              "either": "word"}
    assert await got(param_dispatcher, params) == params


async def test_float_accepts_integers_as_floats(param_dispatcher: Dispatcher) -> None:
    reply = await call(param_dispatcher, "types", {"f": 2})
    assert reply["result"]["got"] == {"f": 2.0}
    assert reply["result"]["f_is_float"] is True


@pytest.mark.parametrize("field, value", [
    ("s", 5), ("s", ["a"]), ("s", {}),
    ("i", True), ("i", False), ("i", 1.5), ("i", 2.0), ("i", "1"), ("i", 2**63), ("i", -2**63 - 1),
    ("f", True), ("f", "1.0"), ("f", [1.0]),
    ("b", 1), ("b", 0), ("b", "true"),
    ("items", {"a": 1}), ("items", "abc"), ("items", [1, "2"]), ("items", [1, True]),
    ("meta", [1]), ("meta", "x"),
    ("kind", "c"), ("kind", True), ("kind", "3"), ("kind", 3.0),
    ("filt", {"tags": []}), ("filt", {"name": 1}), ("filt", {"name": "n", "x": 1}),
    ("filt", {"name": "n", "tags": ["a", 2]}),
    ("either", 1.5), ("either", [1]),
])
async def test_wrong_values_are_invalid_params(param_dispatcher: Dispatcher, field: str,
                                               value: Any) -> None:
    reply = await call(param_dispatcher, "types", {field: value})
    got_field, _ = invalid(reply)
    assert got_field.startswith(field)


async def test_int_bounds_are_64_bit(param_dispatcher: Dispatcher) -> None:
    assert await got(param_dispatcher, {"i": 2**63 - 1}) == {"i": 2**63 - 1}
    assert await got(param_dispatcher, {"i": -2**63}) == {"i": -2**63}


async def test_nested_field_paths(param_dispatcher: Dispatcher) -> None:
    assert invalid(await call(param_dispatcher, "types", {"items": [1, 2, "x"]}))[0] == "items[2]"
    assert invalid(await call(param_dispatcher, "types", {"filt": {"tags": []}})) == (
        "filt.name", "required")
    assert invalid(await call(param_dispatcher, "types", {"filt": {"name": "n", "zz": 1}})) == (
        "filt.zz", "unknown field")
    assert invalid(await call(param_dispatcher, "types",
                              {"filt": {"name": "n", "tags": ["a", 2]}}))[0] == "filt.tags[1]"


async def test_bool_as_int_reason_names_the_type(param_dispatcher: Dispatcher) -> None:
    assert invalid(await call(param_dispatcher, "types", {"i": True})) == (
        "i", "expected an integer, got boolean")


@pytest.mark.parametrize("params_json, field", [
    ('{"s": "a\\ud800b"}', "s"),
    ('{"s": "\\udfff"}', "s"),
    ('{"anything": ["ok", {"k": "\\ud800"}]}', "anything[1].k"),
    ('{"anything": {"\\ud800": 1}}', "anything.\ud800"),
    ('{"meta": {"\\udc00": 1}}', "meta.\udc00"),
    ('{"filt": {"name": "\\ud800"}}', "filt.name"),
])
async def test_lone_surrogates_are_refused(param_dispatcher: Dispatcher, params_json: str,
                                           field: str) -> None:
    got_field, reason = invalid(await call_raw(param_dispatcher, "types", params_json))
    assert got_field == field
    assert "surrogate" in reason


async def test_surrogate_pairs_are_fine(param_dispatcher: Dispatcher) -> None:
    reply = await call_raw(param_dispatcher, "types", '{"s": "\\ud83d\\ude00"}')
    assert reply["result"]["got"] == {"s": "\U0001F600"}


# -- binding --------------------------------------------------------------------------

async def test_missing_required(param_dispatcher: Dispatcher) -> None:
    assert invalid(await call(param_dispatcher, "limits", {})) == ("text", "required")
    assert invalid(await call(param_dispatcher, "limits", [])) == ("text", "required")
    assert invalid(await call(param_dispatcher, "limits", {"count": 2})) == ("text", "required")


async def test_faults_are_reported_in_declaration_order(param_dispatcher: Dispatcher) -> None:
    # Whatever order the keys come in, the first faulty param as declared is reported:
    # text, then count, then the others.
    assert invalid(await call(param_dispatcher, "limits", {"count": 9, "text": 5}))[0] == "text"
    assert invalid(await call(param_dispatcher, "limits",
                              {"name": "!", "count": 9, "text": "a"}))[0] == "count"
    assert invalid(await call(param_dispatcher, "limits", {"name": "!", "count": 9})) == (
        "text", "required")
    # An invalid param declared before a missing required one wins, and the other way round.
    assert invalid(await call(param_dispatcher, "types", {"i": "x"}))[0] == "i"
    assert invalid(await call(param_dispatcher, "limits", {"count": 0})) == ("text", "required")
    reply = await call(param_dispatcher, "limits", {"count": 2, "text": "a", "ratio": 2.0})
    assert invalid(reply)[0] == "ratio"
    # An unknown name is reported before any value is looked at.
    assert invalid(await call(param_dispatcher, "limits", {"count": 0, "zzz": 1})) == (
        "zzz", "unknown parameter")


async def test_valid_params_in_any_key_order_bind_the_same(param_dispatcher: Dispatcher) -> None:
    forward = await call(param_dispatcher, "limits", {"text": "hey", "count": 3, "name": "ab"})
    backward = await call(param_dispatcher, "limits", {"name": "ab", "count": 3, "text": "hey"})
    assert forward == backward
    assert forward["result"]["count"] == 3


async def test_null_positional_param(param_dispatcher: Dispatcher) -> None:
    assert invalid(await call(param_dispatcher, "limits", [None])) == (
        "text", "expected a string, got null")


async def test_unknown_param_name(param_dispatcher: Dispatcher) -> None:
    assert invalid(await call(param_dispatcher, "limits", {"text": "a", "bogus": 1})) == (
        "bogus", "unknown parameter")


async def test_positional_params_follow_declared_order(param_dispatcher: Dispatcher) -> None:
    reply = await call(param_dispatcher, "limits", ["hey", 4])
    assert reply["result"] == {"text": "hey", "count": 4, "server_time": 1_700_000_000.0}
    field, _ = invalid(await call(param_dispatcher, "limits", ["hey", 9]))
    assert field == "count"
    field, _ = invalid(await call(param_dispatcher, "limits", ["a", 1, 1, 0.5, "x", [], 0]))
    assert field == "params"


async def test_explicit_null_only_where_the_type_allows_it(param_dispatcher: Dispatcher) -> None:
    assert "result" in await call(param_dispatcher, "limits", {"text": "a", "delay": None})
    assert invalid(await call(param_dispatcher, "limits", {"text": "a", "count": None}))[0] == (
        "count")


async def test_keyword_named_params_and_keyword_only(param_dispatcher: Dispatcher) -> None:
    reply = await call(param_dispatcher, "keywords", {"from": "bob", "limit": 2})
    assert reply["result"]["from"] == "bob" and reply["result"]["limit"] == 2
    assert invalid(await call(param_dispatcher, "keywords", {"from_": "bob"}))[0] == "from_"
    assert (await call(param_dispatcher, "keywords", ["ann"]))["result"]["limit"] == 5


# -- constraints ----------------------------------------------------------------------

@pytest.mark.parametrize("params, field", [
    ({"text": ""}, "text"),
    ({"text": "a", "count": 0}, "count"),
    ({"text": "a", "count": 6}, "count"),
    ({"text": "a", "delay": 0}, "delay"),
    ({"text": "a", "delay": -1.5}, "delay"),
    ({"text": "a", "ratio": 0}, "ratio"),
    ({"text": "a", "ratio": 1}, "ratio"),
    ({"text": "a", "name": "ABC"}, "name"),
    ({"text": "a", "name": "abc\n"}, "name"),
    ({"text": "a", "name": "abcdefghi"}, "name"),
    ({"text": "a", "name": ""}, "name"),
    ({"text": "a", "tags": ["1", "2", "3", "4"]}, "tags"),
])
async def test_constraint_violations(param_dispatcher: Dispatcher, params: dict[str, Any],
                                     field: str) -> None:
    assert invalid(await call(param_dispatcher, "limits", params))[0] == field


@pytest.mark.parametrize("params", [
    {"text": "a" * 10},
    {"text": "é" * 10},                 # characters, not bytes
    {"text": "\U0001F600" * 10},
    {"text": "a", "count": 1}, {"text": "a", "count": 5},
    {"text": "a", "delay": 0.001}, {"text": "a", "delay": 3},
    {"text": "a", "ratio": 0.999},
    {"text": "a", "name": "abcdefgh"},
    {"text": "a", "tags": ["1", "2", "3"]}, {"text": "a", "tags": []},
])
async def test_constraint_boundaries_accepted(param_dispatcher: Dispatcher,
                                              params: dict[str, Any]) -> None:
    reply = await call(param_dispatcher, "limits", params)
    assert "result" in reply, reply


async def test_text_over_the_configured_limit_is_too_large(param_dispatcher: Dispatcher) -> None:
    reply = await call(param_dispatcher, "limits", {"text": "a" * 11})
    assert reply["error"]["code"] == -32007
    assert reply["error"]["data"] == {"limit": 10}


async def test_array_size_is_checked_before_its_items(param_dispatcher: Dispatcher) -> None:
    # A list far over its limit is refused for its size, without validating every item.
    reply = await call(param_dispatcher, "limits", {"text": "a", "tags": [1, 2, 3, 4]})
    assert invalid(reply) == ("tags", "must have at most 3 items")
    reply = await call(param_dispatcher, "limits", {"text": "a", "tags": ["1", 2]})
    assert invalid(reply)[0] == "tags[1]"


class _NoTokens:
    async def authenticate(self, token: str) -> Any:
        raise AssertionError("no method here needs a token")


class _Words:
    @rpc_method("words", auth=Auth.NONE)
    async def words(self, ctx: CallContext, name: Annotated[str, Length(1, 1)] = "x",
                    tags: Annotated[list[str], Length(2, 3)] | None = None) -> dict[str, int]:
        return {}


async def test_length_reasons_read_as_sentences() -> None:
    registry = Registry()
    registry.add(_Words())
    dispatcher = Dispatcher(registry, _NoTokens(), ManualClock())

    async def reason(params: dict[str, object]) -> str:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "words", "params": params})
        answer = json.loads((await dispatcher.dispatch(body.encode(), None)).body or b"")
        return str(answer["error"]["data"]["reason"])

    assert await reason({"name": ""}) == "must not be empty"
    assert await reason({"name": "ab"}) == "must have at most 1 character"
    assert await reason({"tags": ["a"]}) == "must have at least 2 items"
    assert await reason({"tags": ["a", "b", "c", "d"]}) == "must have at most 3 items"

"""Registration: what a handler may declare, and mistakes caught before serving."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypedDict

import pytest

from rpcchat.clock import ManualClock
from rpcchat.errors import Conflict, NotFound, RpcError
from rpcchat.jsonrpc.constraints import Length, Range
from rpcchat.jsonrpc.context import CallContext
from rpcchat.jsonrpc.dispatcher import Dispatcher
from rpcchat.jsonrpc.registry import Auth, Example, Registry, rpc_method


class Note(TypedDict):
    text: str


class Notes:
    """Its text limit comes from configuration, read when the object is registered."""

    def __init__(self, max_text: int) -> None:
        self.max_text = max_text

    @rpc_method("note", auth=Auth.NONE)
    async def note(self, ctx: CallContext,
                   text: Annotated[str, Length(1, "max_text", too_large="text")]) -> Note:
        return {"text": text}


class SameCode(RpcError):
    code = NotFound.code


class Unknown:
    pass


async def test_limit_is_read_from_the_handler_object(clock: ManualClock,
                                                     authenticator: Any) -> None:
    for limit in (3, 5):
        registry = Registry()
        registry.add(Notes(max_text=limit))
        dispatcher = Dispatcher(registry, authenticator, clock)
        for size, code in ((limit, None), (limit + 1, -32007)):
            body = json.dumps({"jsonrpc": "2.0", "method": "note", "id": 1,
                               "params": {"text": "x" * size}}).encode()
            result = await dispatcher.dispatch(body, None)
            assert result.body is not None
            reply = json.loads(result.body)
            assert reply.get("error", {}).get("code") == code
            if code:
                assert reply["error"]["data"] == {"limit": limit}
        spec = registry.get("note")
        assert spec is not None and spec.params[0].schema["maxLength"] == limit


def test_reserved_names_are_refused() -> None:
    class Sneaky:
        @rpc_method("rpc.discover", auth=Auth.NONE)
        async def discover(self, ctx: CallContext) -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError, match="reserved"):
        Registry().add(Sneaky())


def test_duplicate_names_are_refused_and_nothing_is_half_registered() -> None:
    class Second:
        @rpc_method("fresh", auth=Auth.NONE)
        async def fresh(self, ctx: CallContext) -> dict[str, Any]:
            return {}

        @rpc_method("note", auth=Auth.NONE)
        async def note(self, ctx: CallContext) -> dict[str, Any]:
            return {}

    registry = Registry()
    registry.add(Notes(10))
    with pytest.raises(ValueError, match="twice"):
        registry.add(Second())
    assert registry.get("fresh") is None
    assert [spec.name for spec in registry.methods()] == ["rpc.discover", "note"]


def test_sync_handlers_are_refused() -> None:
    with pytest.raises(TypeError, match="async"):
        class Sync:
            @rpc_method("sync")  # type: ignore[type-var]
            def sync(self, ctx: CallContext) -> dict[str, Any]:
                return {}


def test_ctx_must_come_first() -> None:
    class NoCtx:
        @rpc_method("x")
        async def x(self, text: str) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="ctx"):
        Registry().add(NoCtx())


def test_params_need_annotations() -> None:
    class Bare:
        @rpc_method("x")
        async def x(self, ctx: CallContext, text) -> dict[str, Any]:  # type: ignore[no-untyped-def]
            return {}

    with pytest.raises(TypeError, match="annotation"):
        Registry().add(Bare())


def test_var_args_are_refused() -> None:
    class Star:
        @rpc_method("x")
        async def x(self, ctx: CallContext, *args: int) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="named"):
        Registry().add(Star())


@pytest.mark.parametrize("bad", ["set[int]", "Unknown", "dict[int, str]", "tuple[int, int]"])
def test_unsupported_annotations_are_refused(bad: str) -> None:
    namespace: dict[str, Any] = {}
    exec(  # a handler whose annotation is chosen by the test
        "async def x(self, ctx: CallContext, value: %s) -> dict[str, Any]:\n"
        "    return {}\n" % bad, globals(), namespace)
    handler_class = type("Odd", (), {"x": rpc_method("x")(namespace["x"])})
    with pytest.raises(TypeError, match="annotation|keys"):
        Registry().add(handler_class())


def test_constraints_must_fit_the_type() -> None:
    class Misplaced:
        @rpc_method("x")
        async def x(self, ctx: CallContext, text: Annotated[str, Range(ge=1)]) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="Range"):
        Registry().add(Misplaced())


class MissingBound:
    @rpc_method("x")
    async def x(self, ctx: CallContext,
                text: Annotated[str, Length(max="missing")]) -> dict[str, Any]:
        return {}


class TextBound:
    name = "not a number"

    @rpc_method("x")
    async def x(self, ctx: CallContext,
                text: Annotated[str, Length(max="name")]) -> dict[str, Any]:
        return {}


class NestedMissingBound:
    @rpc_method("x")
    async def x(self, ctx: CallContext,
                text: Annotated[str, Length(max="config.missing")]) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("handler_class", [MissingBound, TextBound, NestedMissingBound])
def test_named_bounds_must_exist_and_be_numbers(handler_class: type) -> None:
    with pytest.raises(TypeError, match="attribute"):
        Registry().add(handler_class())


def test_unresolvable_annotations_are_reported() -> None:
    class Ghost:
        @rpc_method("x")
        async def x(self, ctx: CallContext,
                    value: NoSuchType,  # type: ignore[name-defined]  # noqa: F821
                    ) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="resolve"):
        Registry().add(Ghost())


def test_required_params_must_come_first() -> None:
    class Order:
        @rpc_method("x")
        async def x(self, ctx: CallContext, a: int = 1, *, b: int) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="follows"):
        Registry().add(Order())


def test_examples_are_checked() -> None:
    class Wrong:
        @rpc_method("x", examples=[Example("bad", {"count": "three"}, {})])
        async def x(self, ctx: CallContext, count: int) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="example"):
        Registry().add(Wrong())


def test_declared_errors_need_distinct_codes() -> None:
    class Clash:
        @rpc_method("x", errors=[NotFound, SameCode])
        async def x(self, ctx: CallContext) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="share a code"):
        Registry().add(Clash())


def test_object_without_methods_is_refused() -> None:
    with pytest.raises(TypeError, match="no @rpc_method"):
        Registry().add(object())


def test_errors_include_implied_ones_once() -> None:
    class Listed:
        @rpc_method("x", errors=[Conflict, NotFound])
        async def x(self, ctx: CallContext, text: Annotated[str, Length(max=3, too_large="t")],
                    ) -> dict[str, Any]:
            return {}

    registry = Registry()
    registry.add(Listed())
    spec = registry.get("x")
    assert spec is not None
    assert [error.code for error in spec.errors] == [-32001, -32003, -32004, -32007, -32602]


def test_subclass_overrides_are_registered_once() -> None:
    class Base:
        @rpc_method("x", auth=Auth.NONE)
        async def x(self, ctx: CallContext) -> dict[str, Any]:
            return {"from": "base"}

    class Child(Base):
        @rpc_method("x", auth=Auth.NONE, summary="child")
        async def x(self, ctx: CallContext) -> dict[str, Any]:
            return {"from": "child"}

    registry = Registry()
    registry.add(Child())
    spec = registry.get("x")
    assert spec is not None and spec.summary == "child"


def test_every_registry_serves_discovery() -> None:
    registry = Registry()
    spec = registry.get("rpc.discover")
    assert spec is not None and spec.auth is Auth.NONE
    assert registry.get("nope") is None
    assert len(registry) == 1

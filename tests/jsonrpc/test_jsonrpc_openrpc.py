"""rpc.discover: an OpenRPC 1.2.6 document derived from the method declarations.

The document is validated against tests/jsonrpc/openrpc_meta_schema.json, an abbreviated
offline copy of the OpenRPC meta-schema (see its $comment), and every embedded schema
against the JSON Schema draft-07 meta-schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import jsonschema  # type: ignore[import-untyped]
import pytest

import rpcchat
from rpcchat.clock import ManualClock
from rpcchat.errors import Forbidden, NotFound
from rpcchat.jsonrpc.constraints import Doc, Length, Pattern, Range
from rpcchat.jsonrpc.context import CallContext
from rpcchat.jsonrpc.dispatcher import Dispatcher
from rpcchat.jsonrpc.registry import Auth, Example, Registry, rpc_method

META_SCHEMA = json.loads((Path(__file__).parent / "openrpc_meta_schema.json").read_text())


class Message(TypedDict):
    id: int
    chat: str
    text: str
    parent: int | None


class SendResult(TypedDict):
    message: NotRequired[Message]
    scheduled: NotRequired[dict[str, Any]]


class HistoryResult(TypedDict):
    messages: list[Message]
    more: bool


class ChatMethods:
    max_text = 4096

    @rpc_method(
        "send",
        summary="Send a message",
        errors=[Forbidden, NotFound],
        examples=[Example("hello", {"text": "hi", "chat": "general"},
                          {"message": {"id": 1, "chat": "general", "text": "hi",
                                       "parent": None}})],
    )
    async def send(
        self, ctx: CallContext,
        text: Annotated[str, Length(1, "max_text", too_large="text"), Doc("message text")],
        to: Annotated[str, Pattern(r"[\w.-]{1,32}")] | None = None,
        chat: str | None = None,
        delay: Annotated[float, Range(gt=0)] | None = None,
    ) -> SendResult:
        return {"message": {"id": 1, "chat": chat or "general", "text": text, "parent": None}}

    @rpc_method("history", summary="Messages of a chat, oldest first")
    async def history(self, ctx: CallContext, chat: str = "general",
                      limit: Annotated[int, Range(ge=1, le=200)] = 50,
                      order: Literal["asc", "desc"] = "asc") -> HistoryResult:
        return {"messages": [], "more": False}

    @rpc_method("status", auth=Auth.OPTIONAL)
    async def status(self, ctx: CallContext) -> dict[str, Any]:
        return {}


@pytest.fixture
def discovery_registry(spec_methods: Any) -> Registry:
    registry = Registry()
    registry.add(ChatMethods())
    registry.add(spec_methods)
    return registry


@pytest.fixture
def discovery_dispatcher(discovery_registry: Registry, authenticator: Any,
                         clock: ManualClock) -> Dispatcher:
    return Dispatcher(discovery_registry, authenticator, clock)


async def discover(dispatcher: Dispatcher, authorization: str | None = None) -> Any:
    result = await dispatcher.dispatch(
        b'{"jsonrpc":"2.0","method":"rpc.discover","id":1}', authorization)
    assert result.body is not None
    reply = json.loads(result.body)
    assert "result" in reply, reply
    return reply["result"]


@pytest.fixture
async def document(discovery_dispatcher: Dispatcher) -> Any:
    return await discover(discovery_dispatcher)


def methods_by_name(document: Any) -> dict[str, Any]:
    return {method["name"]: method for method in document["methods"]}


def test_document_validates_against_the_meta_schema(document: Any) -> None:
    errors = [error.message for error in jsonschema.Draft7Validator(META_SCHEMA)
              .iter_errors(document)]
    assert errors == []


def test_meta_schema_catches_broken_documents(document: Any) -> None:
    validator = jsonschema.Draft7Validator(META_SCHEMA)
    broken = json.loads(json.dumps(document))
    del broken["methods"][0]["result"]
    broken["server_time"] = 1
    assert len(list(validator.iter_errors(broken))) == 2


def test_every_embedded_schema_is_draft_07(document: Any) -> None:
    for method in document["methods"]:
        for descriptor in [*method["params"], method["result"]]:
            jsonschema.Draft7Validator.check_schema(descriptor["schema"])


def test_info_and_version(document: Any) -> None:
    assert document["openrpc"] == "1.2.6"
    assert document["info"]["title"] == "rpcchat"
    assert document["info"]["version"] == rpcchat.__version__
    assert "server_time" not in document


def test_every_registered_method_is_listed_once(document: Any,
                                                discovery_registry: Registry) -> None:
    names = [method["name"] for method in document["methods"]]
    assert len(names) == len(set(names))
    assert set(names) == {spec.name for spec in discovery_registry.methods()}
    assert "rpc.discover" in names


def test_params_are_unique_required_first_with_unique_error_codes(document: Any) -> None:
    for method in document["methods"]:
        names = [param["name"] for param in method["params"]]
        assert len(names) == len(set(names)), method["name"]
        flags = [param["required"] for param in method["params"]]
        assert flags == sorted(flags, reverse=True), method["name"]
        codes = [error["code"] for error in method.get("errors", [])]
        assert len(codes) == len(set(codes)), method["name"]
        assert method["paramStructure"] == "by-name"


def test_schemas_carry_types_and_constraints(document: Any) -> None:
    send = methods_by_name(document)["send"]
    params = {param["name"]: param for param in send["params"]}
    assert params["text"]["required"] is True
    assert params["text"]["description"] == "message text"
    assert params["text"]["schema"] == {"type": "string", "minLength": 1, "maxLength": 4096,
                                        "description": "message text"}
    assert params["to"]["required"] is False
    assert params["to"]["schema"]["pattern"] == "^(?:[\\w.-]{1,32})$"
    assert params["to"]["schema"]["type"] == ["string", "null"]
    assert params["delay"]["schema"]["exclusiveMinimum"] == 0
    history = {param["name"]: param for param in methods_by_name(document)["history"]["params"]}
    assert history["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200,
                                          "default": 50}
    assert history["order"]["schema"] == {"type": "string", "enum": ["asc", "desc"],
                                          "default": "asc"}


def test_result_schema_comes_from_the_typeddict(document: Any) -> None:
    methods = methods_by_name(document)
    send = methods["send"]["result"]["schema"]
    assert send["type"] == "object"
    assert set(send["properties"]) == {"message", "scheduled", "server_time"}
    assert send["required"] == ["server_time"]
    message = send["properties"]["message"]
    assert message["title"] == "Message"
    assert message["required"] == ["id", "chat", "text", "parent"]
    assert message["properties"]["parent"] == {"type": ["integer", "null"]}
    history = methods["history"]["result"]["schema"]
    assert history["required"] == ["messages", "more", "server_time"]
    assert history["properties"]["messages"]["items"]["title"] == "Message"
    assert methods["status"]["result"]["schema"]["properties"]["server_time"] == {
        "type": "number", "description": "the server's clock, Unix seconds"}
    assert methods["get_data"]["result"]["schema"] == {"type": "array"}
    assert methods["rpc.discover"]["result"]["schema"] == {
        "$ref": "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"}


def test_errors_and_auth_are_described(document: Any) -> None:
    methods = methods_by_name(document)
    assert methods["send"]["errors"] == [
        {"code": -32001, "message": "Unauthorized"},
        {"code": -32002, "message": "Forbidden"},
        {"code": -32003, "message": "Not found"},
        {"code": -32007, "message": "Too large"},
        {"code": -32602, "message": "Invalid params"},
    ]
    assert methods["send"]["x-authentication"] == "required"
    assert methods["status"]["x-authentication"] == "optional"
    assert methods["rpc.discover"]["x-authentication"] == "none"
    assert "errors" not in methods["rpc.discover"]


async def test_examples_are_listed_and_replay(document: Any,
                                              discovery_dispatcher: Dispatcher) -> None:
    send = methods_by_name(document)["send"]
    (example,) = send["examples"]
    assert example["name"] == "hello"
    params = {param["name"]: param["value"] for param in example["params"]}
    body = json.dumps({"jsonrpc": "2.0", "method": "send", "params": params, "id": 1})
    result = await discovery_dispatcher.dispatch(body.encode(), "Bearer tok-alice")
    assert result.body is not None
    reply = json.loads(result.body)["result"]
    reply.pop("server_time")
    assert reply == example["result"]["value"]


async def test_discovery_needs_no_token_and_ignores_a_bad_one(
        discovery_dispatcher: Dispatcher, authenticator: Any) -> None:
    assert (await discover(discovery_dispatcher, "Bearer nope"))["openrpc"] == "1.2.6"
    assert authenticator.calls == []


async def test_document_follows_later_registrations(discovery_registry: Registry,
                                                    discovery_dispatcher: Dispatcher) -> None:
    class Late:
        @rpc_method("late", auth=Auth.NONE)
        async def late(self, ctx: CallContext) -> dict[str, Any]:
            return {}

    before = await discover(discovery_dispatcher)
    discovery_registry.add(Late())
    after = await discover(discovery_dispatcher)
    assert "late" not in methods_by_name(before)
    assert "late" in methods_by_name(after)

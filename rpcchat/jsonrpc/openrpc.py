"""`rpc.discover`: an OpenRPC 1.2.6 document built from the same declarations the
dispatcher validates with, so the description can never drift from the behaviour."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rpcchat.jsonrpc.context import CallContext
from rpcchat.jsonrpc.spec import Auth, Example, MethodSpec, ParamSpec, rpc_method

OPENRPC_VERSION = "1.2.6"
META_SCHEMA_URL = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"
_JSON_SCALARS = (type(None), bool, int, float, str)


def build_document(methods: Sequence[MethodSpec], *, title: str, version: str) -> dict[str, Any]:
    """The OpenRPC document describing `methods` (in the order given)."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "JSON-RPC 2.0 over HTTP: POST /rpc. Methods that need a token take "
                           "it as `Authorization: Bearer <token>` (see x-authentication).",
        },
        "methods": [method_object(spec) for spec in methods],
    }


def method_object(spec: MethodSpec) -> dict[str, Any]:
    method: dict[str, Any] = {"name": spec.name}
    if spec.summary:
        method["summary"] = spec.summary
    if spec.description:
        method["description"] = spec.description
    method["paramStructure"] = "by-name"
    method["params"] = [content_descriptor(param) for param in spec.params]
    method["result"] = {"name": "result", "schema": spec.result_schema}
    if spec.errors:
        method["errors"] = [{"code": error.code, "message": error.message}
                            for error in spec.errors]
    if spec.examples:
        method["examples"] = [example_pairing(example) for example in spec.examples]
    method["x-authentication"] = spec.auth.value
    return method


def content_descriptor(param: ParamSpec) -> dict[str, Any]:
    schema = dict(param.schema)
    if not param.required and isinstance(param.default, _JSON_SCALARS):
        schema["default"] = param.default
    descriptor: dict[str, Any] = {"name": param.name, "required": param.required}
    if "description" in schema:
        descriptor["description"] = schema["description"]
    descriptor["schema"] = schema
    return descriptor


def example_pairing(example: Example) -> dict[str, Any]:
    pairing: dict[str, Any] = {"name": example.name}
    if example.summary:
        pairing["summary"] = example.summary
    if example.description:
        pairing["description"] = example.description
    pairing["params"] = [{"name": name, "value": value} for name, value in example.params.items()]
    pairing["result"] = {"name": "result", "value": example.result}
    return pairing


class OpenRpcDiscovery:
    """The built-in `rpc.discover` method; every Registry registers one."""

    def __init__(self, methods: Callable[[], Sequence[MethodSpec]], title: str,
                 version: str) -> None:
        self._methods = methods
        self._title = title
        self._version = version
        # Methods are only ever added, so the count tells whether the cache is current.
        self._cached: tuple[int, dict[str, Any]] | None = None

    def document(self) -> dict[str, Any]:
        methods = self._methods()
        if self._cached is None or self._cached[0] != len(methods):
            document = build_document(methods, title=self._title, version=self._version)
            self._cached = (len(methods), document)
        return self._cached[1]

    @rpc_method(
        "rpc.discover",
        auth=Auth.NONE,
        summary="Describe this service as an OpenRPC document",
        stamp_server_time=False,
        result_schema={"$ref": META_SCHEMA_URL},
    )
    async def discover(self, ctx: CallContext) -> dict[str, Any]:
        return self.document()

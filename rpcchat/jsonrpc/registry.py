"""The method table: handler objects in, compiled MethodSpecs out.

A handler class groups the methods of one area; each method is an
`async def name(self, ctx: CallContext, <params>) -> <TypedDict>` marked with @rpc_method.
Parameters are validated from their annotations (see validation.py and constraints.py);
everything is compiled once, in `Registry.add`, so a call does no introspection.

A trailing underscore lets a parameter carry a Python keyword as its wire name
(`from_` is sent as "from").
"""

from __future__ import annotations

import inspect
import keyword
import typing
from typing import Any, Iterator

import rpcchat
from rpcchat.errors import InvalidParams, RpcError, Unauthorized
from rpcchat.jsonrpc.openrpc import OpenRpcDiscovery
from rpcchat.jsonrpc.spec import (
    DECLARATION_ATTRIBUTE,
    Auth,
    Example,
    MethodDeclaration,
    MethodSpec,
    ParamSpec,
    rpc_method,
)
from rpcchat.jsonrpc.validation import TypeCompiler

__all__ = ["Auth", "Example", "MethodSpec", "ParamSpec", "Registry", "rpc_method"]

RESERVED_PREFIX = "rpc."
_UNSUPPORTED_KINDS = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.VAR_KEYWORD,
)


class Registry:
    """All methods the dispatcher can call. Every registry serves `rpc.discover`."""

    def __init__(self, *, title: str = "rpcchat", version: str = rpcchat.__version__) -> None:
        self._methods: dict[str, MethodSpec] = {}
        self._insert(OpenRpcDiscovery(self.methods, title, version), builtin=True)

    def add(self, handler_object: object) -> None:
        """Register every @rpc_method of `handler_object`.

        Raises TypeError for a handler that cannot be compiled and ValueError for a name
        that is reserved or taken; on error nothing of this object is registered.
        """
        self._insert(handler_object, builtin=False)

    def get(self, name: str) -> MethodSpec | None:
        return self._methods.get(name)

    def methods(self) -> list[MethodSpec]:
        """Registered methods in registration order (rpc.discover first)."""
        return list(self._methods.values())

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self.methods())

    def __len__(self) -> int:
        return len(self._methods)

    def _insert(self, handler_object: object, *, builtin: bool) -> None:
        specs = [
            compile_method(handler_object, attribute, declaration)
            for attribute, declaration in declared_methods(type(handler_object))
        ]
        if not specs:
            raise TypeError(f"{type(handler_object).__name__} has no @rpc_method methods")
        seen: set[str] = set()
        for spec in specs:
            if not spec.name:
                raise ValueError("a method name must not be empty")
            if spec.name.startswith(RESERVED_PREFIX) and not builtin:
                raise ValueError(f"method name {spec.name!r}: names starting 'rpc.' are reserved")
            if spec.name in self._methods or spec.name in seen:
                raise ValueError(f"method {spec.name!r} is registered twice")
            seen.add(spec.name)
        for spec in specs:
            self._methods[spec.name] = spec


def declared_methods(cls: type) -> Iterator[tuple[str, MethodDeclaration]]:
    """(attribute, declaration) of each decorated method, subclass overrides first."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attribute, value in vars(klass).items():
            if attribute in seen:
                continue
            seen.add(attribute)
            declaration = getattr(value, DECLARATION_ATTRIBUTE, None)
            if isinstance(declaration, MethodDeclaration):
                yield attribute, declaration


def compile_method(owner: object, attribute: str, declaration: MethodDeclaration) -> MethodSpec:
    """Build the MethodSpec of one decorated method of `owner`."""
    where = f"method {declaration.name!r} ({type(owner).__name__}.{attribute})"
    handler = getattr(owner, attribute)
    function = getattr(handler, "__func__", handler)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as exc:
        raise TypeError(f"{where}: cannot resolve annotations: {exc}") from exc
    parameters = list(inspect.signature(handler).parameters.values())
    if not parameters or parameters[0].name != "ctx":
        raise TypeError(f"{where}: the first parameter after self must be `ctx: CallContext`")
    implied: set[type[RpcError]] = set()
    params = tuple(_compile_param(owner, where, hints, param, implied)
                   for param in parameters[1:])
    _check_order(where, params)
    if params:
        implied.add(InvalidParams)
    if declaration.auth is not Auth.NONE:
        implied.add(Unauthorized)
    spec = MethodSpec(
        name=declaration.name,
        auth=declaration.auth,
        summary=declaration.summary,
        description=declaration.description,
        handler=handler,
        params=params,
        result_schema=_result_schema(owner, where, declaration, hints),
        errors=_unique_errors(where, declaration.errors, implied),
        examples=declaration.examples,
        stamp_server_time=declaration.stamp_server_time,
    )
    _check_examples(where, spec)
    return spec


def _compile_param(owner: object, where: str, hints: dict[str, Any],
                   param: inspect.Parameter, implied: set[type[RpcError]]) -> ParamSpec:
    where = f"{where}, parameter {param.name!r}"
    if param.kind in _UNSUPPORTED_KINDS:
        raise TypeError(f"{where}: only named parameters can carry JSON-RPC params")
    if param.name not in hints:
        raise TypeError(f"{where}: needs a type annotation")
    compiler = TypeCompiler(owner, where)
    compiled = compiler.compile(hints[param.name])
    implied.update(compiler.raises)
    required = param.default is inspect.Parameter.empty
    return ParamSpec(
        name=_wire_name(param.name),
        python_name=param.name,
        required=required,
        default=None if required else param.default,
        validate=compiled.validate,
        schema=compiled.schema,
    )


def _wire_name(python_name: str) -> str:
    stripped = python_name[:-1]
    if python_name.endswith("_") and keyword.iskeyword(stripped):
        return stripped
    return python_name


def _check_order(where: str, params: tuple[ParamSpec, ...]) -> None:
    """Required params come first: OpenRPC asks for it and positional params rely on it."""
    optional_seen = False
    for param in params:
        if param.required and optional_seen:
            raise TypeError(f"{where}: required parameter {param.name!r} follows optional ones")
        optional_seen = optional_seen or not param.required


def _result_schema(owner: object, where: str, declaration: MethodDeclaration,
                   hints: dict[str, Any]) -> dict[str, Any]:
    if declaration.result_schema is not None:
        return dict(declaration.result_schema)
    annotation = hints.get("return", Any)
    if annotation is Any:
        schema: dict[str, Any] = {"type": "object"}
    else:
        schema = TypeCompiler(owner, f"{where}, result", closed_objects=False) \
            .compile(annotation).schema
    if declaration.stamp_server_time and schema.get("type") == "object":
        schema = _with_server_time(schema)
    return schema


def _with_server_time(schema: dict[str, Any]) -> dict[str, Any]:
    """The dispatcher adds `server_time` to every object result: say so in the schema."""
    properties = dict(schema.get("properties", {}))
    properties["server_time"] = {
        "type": "number", "description": "the server's clock, Unix seconds",
    }
    required = [name for name in schema.get("required", []) if name != "server_time"]
    return {**schema, "properties": properties, "required": [*required, "server_time"]}


def _unique_errors(where: str, declared: tuple[type[RpcError], ...],
                   implied: set[type[RpcError]]) -> tuple[type[RpcError], ...]:
    by_code: dict[int, type[RpcError]] = {}
    for error in declared:
        if not (isinstance(error, type) and issubclass(error, RpcError)):
            raise TypeError(f"{where}: errors must be RpcError classes, got {error!r}")
        known = by_code.setdefault(error.code, error)
        if known is not error:
            raise TypeError(f"{where}: {known.__name__} and {error.__name__} share a code")
    for error in implied:
        by_code.setdefault(error.code, error)
    return tuple(by_code[code] for code in sorted(by_code, reverse=True))


def _check_examples(where: str, spec: MethodSpec) -> None:
    """An example that would not pass validation is a bug in the declaration."""
    for example in spec.examples:
        try:
            spec.bind(dict(example.params))
        except RpcError as exc:
            raise TypeError(f"{where}: example {example.name!r} has bad params: {exc}") from exc

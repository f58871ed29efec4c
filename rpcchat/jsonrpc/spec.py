"""What a JSON-RPC method is: its declaration (the decorator) and its compiled form."""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

from rpcchat.errors import InvalidParams, RpcError
from rpcchat.jsonrpc.validation import Validator

DECLARATION_ATTRIBUTE = "__rpc_method__"

Handler = Callable[..., Awaitable[Any]]
HandlerT = TypeVar("HandlerT", bound=Handler)


class Auth(enum.Enum):
    """What a method needs from the Authorization header."""

    REQUIRED = "required"  # a valid Bearer token, else -32001
    OPTIONAL = "optional"  # no header: anonymous; a header with a bad token: -32001
    NONE = "none"          # the header is ignored


@dataclass(frozen=True)
class Example:
    """An example call for the OpenRPC document; its params are checked at registration."""

    name: str
    params: Mapping[str, Any]
    result: Any
    summary: str = ""
    description: str = ""


@dataclass(frozen=True)
class MethodDeclaration:
    """What @rpc_method attaches to a handler function."""

    name: str
    auth: Auth
    summary: str
    description: str
    errors: tuple[type[RpcError], ...]
    examples: tuple[Example, ...]
    stamp_server_time: bool
    result_schema: Mapping[str, Any] | None


def rpc_method(
    name: str,
    *,
    auth: Auth = Auth.REQUIRED,
    summary: str = "",
    description: str = "",
    errors: Sequence[type[RpcError]] = (),
    examples: Sequence[Example] = (),
    stamp_server_time: bool = True,
    result_schema: Mapping[str, Any] | None = None,
) -> Callable[[HandlerT], HandlerT]:
    """Mark an `async def method(self, ctx: CallContext, <params>)` as the JSON-RPC `name`.

    `errors` lists the error classes the method may answer with (for the OpenRPC document;
    -32602 and -32001 are added where they apply). `stamp_server_time=False` keeps the
    dispatcher from adding `server_time` (only for results with a fixed shape, such as the
    OpenRPC document). `result_schema` overrides the schema derived from the return type.
    """
    declaration = MethodDeclaration(
        name=name,
        auth=auth,
        summary=summary,
        description=description,
        errors=tuple(errors),
        examples=tuple(examples),
        stamp_server_time=stamp_server_time,
        result_schema=result_schema,
    )

    def decorate(function: HandlerT) -> HandlerT:
        # Kept in a variable: the TypeGuard would otherwise narrow away HandlerT.
        is_async = inspect.iscoroutinefunction(function)
        if not is_async:
            raise TypeError(f"@rpc_method({name!r}) needs an async def, got {function!r}")
        setattr(function, DECLARATION_ATTRIBUTE, declaration)
        return function

    return decorate


@dataclass(frozen=True)
class ParamSpec:
    """One JSON-RPC parameter, compiled from a handler's signature."""

    name: str            # as sent on the wire
    python_name: str     # the handler's keyword (differs for keywords, e.g. `from_`)
    required: bool
    default: Any         # the Python default when not required
    validate: Validator
    schema: dict[str, Any]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: everything the dispatcher and rpc.discover need, precomputed."""

    name: str
    auth: Auth
    summary: str
    description: str
    handler: Handler                      # bound method: handler(ctx, **kwargs)
    params: tuple[ParamSpec, ...]
    result_schema: dict[str, Any]
    errors: tuple[type[RpcError], ...]   # declared plus implied, unique codes
    examples: tuple[Example, ...]
    stamp_server_time: bool
    _required: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # wire name -> (keyword, validator): what binding a param needs, one lookup away.
    _binders: dict[str, tuple[str, Validator]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_required", tuple(param.name for param in self.params if param.required)
        )
        object.__setattr__(self, "_binders", {
            param.name: (param.python_name, param.validate) for param in self.params})

    def bind(self, params: Any) -> dict[str, Any]:
        """Validate JSON-RPC params (object, array or None) into handler keyword arguments.

        Raises InvalidParams (or another RpcError a constraint declares, e.g. TooLarge).
        """
        if not params:
            if self._required:
                raise InvalidParams(self._required[0], "required")
            return {}
        if type(params) is not dict:
            return self._bind_by_position(params)
        binders = self._binders
        for key in params:
            if key not in binders:
                raise InvalidParams(key, "unknown parameter")
        kwargs: dict[str, Any] = {}
        try:
            for key, value in params.items():
                keyword, validate = binders[key]
                kwargs[keyword] = validate(value, key)
        except RpcError:
            # Report the first fault in declaration order, as the walk below finds it
            # (validators have no side effects: running one twice changes nothing).
            return self._bind_in_order(params)
        for name in self._required:
            if name not in params:
                # Every given param is valid, so this is the first fault in that order.
                raise InvalidParams(name, "required")
        return kwargs

    def _bind_in_order(self, params: dict[str, Any]) -> dict[str, Any]:
        """Bind walking the declared params in order: the first fault in that order is the
        one reported."""
        kwargs: dict[str, Any] = {}
        for param in self.params:
            if param.name in params:
                kwargs[param.python_name] = param.validate(params[param.name], param.name)
            elif param.required:
                raise InvalidParams(param.name, "required")
        return kwargs

    def _bind_by_position(self, params: list[Any]) -> dict[str, Any]:
        if len(params) > len(self.params):
            raise InvalidParams(
                "params",
                f"expected at most {len(self.params)} positional parameters, got {len(params)}",
            )
        kwargs: dict[str, Any] = {}
        for param, value in zip(self.params, params):
            kwargs[param.python_name] = param.validate(value, param.name)
        for param in self.params[len(params):]:
            if param.required:
                raise InvalidParams(param.name, "required")
        return kwargs

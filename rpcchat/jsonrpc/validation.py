"""Compile type annotations into fast validators and JSON Schemas (draft-07).

Done once per method, when its handler object is added to the Registry; a call then runs
plain closures, never `inspect` or `typing` introspection.

Supported: str, int, float, bool, None, Any, X | None, unions, Literal[...], list[T],
dict[str, T], TypedDict (Required/NotRequired honoured), and Annotated[T, Range | Length |
Pattern | Doc]. Rules that a JSON decoder alone would let through:
- int means a JSON integer within 64 bits: booleans and floats (even 2.0) are refused;
- float accepts integers (converted to float) but never booleans;
- a str must be valid Unicode: a lone surrogate (JSON allows "\\ud800") is refused, since
  it cannot be stored or sent as UTF-8.
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NotRequired, Required, Union

from rpcchat.errors import InvalidParams, RpcError, TooLarge
from rpcchat.jsonrpc.constraints import Doc, Length, Pattern, Range, resolve_bound

# validate(value, field_path) -> the value to hand to the handler; raises InvalidParams.
Validator = Callable[[Any, str], Any]
# check(value, field_path) -> None; raises when the constraint is not met.
Check = Callable[[Any, str], None]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_NONE_TYPE = type(None)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def has_lone_surrogate(text: str) -> bool:
    return not text.isascii() and _LONE_SURROGATE.search(text) is not None


def _wrong_type(field: str, expected: str, value: Any) -> InvalidParams:
    return InvalidParams(field, f"expected {expected}, got {json_type_name(value)}")


def _surrogate_error(field: str) -> InvalidParams:
    return InvalidParams(field, "contains a lone surrogate (not valid Unicode)")


def check_json_strings(value: Any, field: str) -> None:
    """Refuse lone surrogates anywhere inside a free-form (Any) value."""
    kind = type(value)
    if kind is str:
        if has_lone_surrogate(value):
            raise _surrogate_error(field)
    elif kind is list:
        for index, item in enumerate(value):
            check_json_strings(item, f"{field}[{index}]")
    elif kind is dict:
        for key, item in value.items():
            if has_lone_surrogate(key):
                raise _surrogate_error(f"{field}.{key}")
            check_json_strings(item, f"{field}.{key}")


@dataclass(frozen=True)
class CompiledType:
    validate: Validator
    schema: dict[str, Any]
    # What the JSON value is ("string", "integer", "number", "boolean", "null", "array",
    # "object", "any", "literal", "union"): decides which constraints may apply.
    kind: str


def _validate_any(value: Any, field: str) -> Any:
    check_json_strings(value, field)
    return value


def _validate_str(value: Any, field: str) -> Any:
    if type(value) is not str:
        raise _wrong_type(field, "a string", value)
    # has_lone_surrogate, inline: every string param of every call passes here.
    if not value.isascii() and _LONE_SURROGATE.search(value) is not None:
        raise _surrogate_error(field)
    return value


def _validate_int(value: Any, field: str) -> Any:
    if type(value) is not int:
        raise _wrong_type(field, "an integer", value)
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidParams(field, "integer out of range (must fit in 64 bits)")
    return value


def _validate_float(value: Any, field: str) -> Any:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise InvalidParams(field, "must be a finite number")
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidParams(field, "number out of range") from None
    raise _wrong_type(field, "a number", value)


def _validate_bool(value: Any, field: str) -> Any:
    if type(value) is not bool:
        raise _wrong_type(field, "a boolean", value)
    return value


def _validate_null(value: Any, field: str) -> Any:
    if value is not None:
        raise _wrong_type(field, "null", value)
    return None


_SCALARS: dict[Any, CompiledType] = {
    str: CompiledType(_validate_str, {"type": "string"}, "string"),
    int: CompiledType(_validate_int, {"type": "integer"}, "integer"),
    float: CompiledType(_validate_float, {"type": "number"}, "number"),
    bool: CompiledType(_validate_bool, {"type": "boolean"}, "boolean"),
    _NONE_TYPE: CompiledType(_validate_null, {"type": "null"}, "null"),
    None: CompiledType(_validate_null, {"type": "null"}, "null"),
}


@dataclass
class TypeCompiler:
    """Compiles the annotations of one method.

    `owner` is the handler object (named bounds are read from it); `where` names the
    method for registration errors; `closed_objects` says whether TypedDict schemas forbid
    extra keys (true for params, which refuse unknown keys; false for results, which may
    grow fields).
    """

    owner: object
    where: str
    closed_objects: bool = True
    # Errors other than InvalidParams that validation may raise (for the OpenRPC errors).
    raises: set[type[RpcError]] = field(default_factory=set)
    _typeddicts_in_progress: set[int] = field(default_factory=set)

    def compile(self, annotation: Any) -> CompiledType:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return self._annotated(annotation)
        if origin is Required or origin is NotRequired:
            return self.compile(typing.get_args(annotation)[0])
        if origin is Union or origin is types.UnionType:
            return self._union(typing.get_args(annotation))
        if origin is Literal:
            return self._literal(typing.get_args(annotation))
        if annotation is Any:
            return CompiledType(_validate_any, {}, "any")
        if (annotation is None or isinstance(annotation, type)) and annotation in _SCALARS:
            return _SCALARS[annotation]
        if annotation is list or origin is list:
            return self._list(annotation)
        if annotation is dict or origin is dict:
            return self._dict(annotation)
        if typing.is_typeddict(annotation):
            return self._typeddict(annotation)
        raise TypeError(f"{self.where}: unsupported annotation {annotation!r}")

    # -- containers -------------------------------------------------------------------

    def _list(self, annotation: Any) -> CompiledType:
        args = typing.get_args(annotation)
        item = self.compile(args[0] if args else Any)
        validate_item = item.validate

        def validate(value: Any, field: str) -> Any:
            if type(value) is not list:
                raise _wrong_type(field, "an array", value)
            return [validate_item(entry, f"{field}[{index}]") for index, entry in enumerate(value)]

        schema: dict[str, Any] = {"type": "array"}
        if item.schema:
            schema["items"] = item.schema
        return CompiledType(validate, schema, "array")

    def _dict(self, annotation: Any) -> CompiledType:
        args = typing.get_args(annotation)
        key_type, value_type = args if args else (str, Any)
        if key_type is not str:
            raise TypeError(f"{self.where}: object keys are strings, not {key_type!r}")
        entry = self.compile(value_type)
        validate_entry = entry.validate

        def validate(value: Any, field: str) -> Any:
            if type(value) is not dict:
                raise _wrong_type(field, "an object", value)
            checked = {}
            for key, item in value.items():
                if has_lone_surrogate(key):
                    raise _surrogate_error(f"{field}.{key}")
                checked[key] = validate_entry(item, f"{field}.{key}")
            return checked

        schema: dict[str, Any] = {"type": "object"}
        if entry.schema:
            schema["additionalProperties"] = entry.schema
        return CompiledType(validate, schema, "object")

    def _typeddict(self, annotation: Any) -> CompiledType:
        if id(annotation) in self._typeddicts_in_progress:
            raise TypeError(f"{self.where}: recursive TypedDict {annotation.__name__}")
        self._typeddicts_in_progress.add(id(annotation))
        try:
            hints = typing.get_type_hints(annotation, include_extras=True)
            fields = {name: self.compile(hint) for name, hint in hints.items()}
        finally:
            self._typeddicts_in_progress.discard(id(annotation))
        required = [name for name, hint in hints.items()
                    if _is_required_key(name, hint, annotation.__required_keys__)]
        validators = {name: compiled.validate for name, compiled in fields.items()}

        def validate(value: Any, field: str) -> Any:
            if type(value) is not dict:
                raise _wrong_type(field, "an object", value)
            for key in value:
                if key not in validators:
                    raise InvalidParams(f"{field}.{key}", "unknown field")
            for key in required:
                if key not in value:
                    raise InvalidParams(f"{field}.{key}", "required")
            return {key: validators[key](item, f"{field}.{key}") for key, item in value.items()}

        schema: dict[str, Any] = {
            "title": annotation.__name__,
            "type": "object",
            "properties": {name: compiled.schema for name, compiled in fields.items()},
        }
        if required:
            schema["required"] = required
        if self.closed_objects:
            schema["additionalProperties"] = False
        return CompiledType(validate, schema, "object")

    # -- choices ----------------------------------------------------------------------

    def _union(self, members: tuple[Any, ...]) -> CompiledType:
        nullable = _NONE_TYPE in members
        choices = [self.compile(member) for member in members if member is not _NONE_TYPE]
        if nullable and len(choices) == 1:
            return self._nullable(choices[0])
        expected = " or ".join(_kind_phrase(choice.kind) for choice in choices)
        if nullable:
            expected += " or null"
        choice_validators = [choice.validate for choice in choices]

        def validate(value: Any, field: str) -> Any:
            if value is None and nullable:
                return None
            for choice_validate in choice_validators:
                try:
                    return choice_validate(value, field)
                except InvalidParams:
                    continue
            raise _wrong_type(field, expected, value)

        alternatives = [choice.schema for choice in choices]
        if nullable:
            alternatives.append({"type": "null"})
        return CompiledType(validate, {"anyOf": alternatives}, "union")

    @staticmethod
    def _nullable(inner: CompiledType) -> CompiledType:
        validate_inner = inner.validate

        def validate(value: Any, field: str) -> Any:
            if value is None:
                return None
            return validate_inner(value, field)

        schema = dict(inner.schema)
        if isinstance(schema.get("type"), str) and "enum" not in schema:
            schema["type"] = [schema["type"], "null"]
        else:
            schema = {"anyOf": [inner.schema, {"type": "null"}]}
        return CompiledType(validate, schema, "union")

    def _literal(self, values: tuple[Any, ...]) -> CompiledType:
        for literal in values:
            if literal is not None and not isinstance(literal, (str, int, bool)):
                raise TypeError(f"{self.where}: Literal values must be JSON scalars")
        # Exact type match, so Literal[1] does not accept true and Literal[True] not 1.
        allowed = [(type(literal), literal) for literal in values]
        shown = ", ".join(repr(literal) for literal in values)

        def validate(value: Any, field: str) -> Any:
            for literal_type, literal in allowed:
                if type(value) is literal_type and value == literal:
                    return value
            raise InvalidParams(field, f"must be one of {shown}")

        schema: dict[str, Any] = {"enum": list(values)}
        kinds = {json_type_name(literal) for literal in values}
        if len(kinds) == 1:
            schema = {"type": kinds.pop(), **schema}
        return CompiledType(validate, schema, "literal")

    # -- constraints ------------------------------------------------------------------

    def _annotated(self, annotation: Any) -> CompiledType:
        base, *metadata = typing.get_args(annotation)
        compiled = self.compile(base)
        schema = dict(compiled.schema)
        checks: list[Check] = []
        size_checks: list[Check] = []
        for meta in metadata:
            if isinstance(meta, Range):
                checks.append(self._range(meta, compiled.kind, schema))
            elif isinstance(meta, Length):
                check = self._length(meta, compiled.kind, schema)
                # An array's size is known before its items are validated: one far over its
                # limit is refused at once, not after validating every item.
                (size_checks if compiled.kind == "array" else checks).append(check)
            elif isinstance(meta, Pattern):
                checks.append(self._pattern(meta, compiled.kind, schema))
            elif isinstance(meta, Doc):
                schema["description"] = meta.text
            # Other Annotated metadata belongs to other tools: left alone on purpose.
        validate_base = compiled.validate
        if size_checks:
            validate_base = _size_first(size_checks, validate_base)
        if not checks:
            return CompiledType(validate_base, schema, compiled.kind)
        if len(checks) == 1:
            only_check = checks[0]

            def validate_once(value: Any, field: str) -> Any:
                value = validate_base(value, field)
                only_check(value, field)
                return value

            return CompiledType(validate_once, schema, compiled.kind)

        def validate(value: Any, field: str) -> Any:
            value = validate_base(value, field)
            for check in checks:
                check(value, field)
            return value

        return CompiledType(validate, schema, compiled.kind)

    def _require_kind(self, constraint: object, kind: str, allowed: tuple[str, ...]) -> None:
        if kind not in allowed:
            raise TypeError(
                f"{self.where}: {type(constraint).__name__} applies to {' or '.join(allowed)}"
                f" values, not {kind} (put the constraint inside the Optional)"
            )

    def _range(self, rule: Range, kind: str, schema: dict[str, Any]) -> Check:
        self._require_kind(rule, kind, ("integer", "number"))
        ge = resolve_bound(rule.ge, self.owner, self.where)
        le = resolve_bound(rule.le, self.owner, self.where)
        gt = resolve_bound(rule.gt, self.owner, self.where)
        lt = resolve_bound(rule.lt, self.owner, self.where)
        for keyword, bound in (("minimum", ge), ("maximum", le),
                               ("exclusiveMinimum", gt), ("exclusiveMaximum", lt)):
            if bound is not None:
                schema[keyword] = bound

        def check(value: Any, field: str) -> None:
            if ge is not None and value < ge:
                raise InvalidParams(field, f"must be >= {ge}")
            if le is not None and value > le:
                raise InvalidParams(field, f"must be <= {le}")
            if gt is not None and value <= gt:
                raise InvalidParams(field, f"must be > {gt}")
            if lt is not None and value >= lt:
                raise InvalidParams(field, f"must be < {lt}")

        return check

    def _length(self, rule: Length, kind: str, schema: dict[str, Any]) -> Check:
        self._require_kind(rule, kind, ("string", "array"))
        low = _whole_number(resolve_bound(rule.min, self.owner, self.where), self.where)
        high = _whole_number(resolve_bound(rule.max, self.owner, self.where), self.where)
        low = low or 0
        unit = "character" if kind == "string" else "item"
        if low:
            schema["minLength" if kind == "string" else "minItems"] = low
        if high is not None:
            schema["maxLength" if kind == "string" else "maxItems"] = high
        too_large = rule.too_large
        if too_large is not None:
            self.raises.add(TooLarge)

        def check(value: Any, field: str) -> None:
            size = len(value)
            if size < low:
                at_least = _count(low, unit)
                reason = "must not be empty" if low == 1 else f"must have at least {at_least}"
                raise InvalidParams(field, reason)
            if high is not None and size > high:
                if too_large is not None:
                    raise TooLarge(too_large, high)
                raise InvalidParams(field, f"must have at most {_count(high, unit)}")

        return check

    def _pattern(self, rule: Pattern, kind: str, schema: dict[str, Any]) -> Check:
        self._require_kind(rule, kind, ("string",))
        schema["pattern"] = f"^(?:{rule.regex})$"
        fullmatch = rule.compiled.fullmatch
        regex = rule.regex

        def check(value: Any, field: str) -> None:
            if fullmatch(value) is None:
                raise InvalidParams(field, f"must match the pattern {regex}")

        return check


def _size_first(size_checks: list[Check], validate_items: Validator) -> Validator:
    """`validate_items`, preceded by the size checks when the value is an array."""

    def validate(value: Any, field: str) -> Any:
        if type(value) is list:
            for check in size_checks:
                check(value, field)
        return validate_items(value, field)

    return validate


def _is_required_key(name: str, hint: Any, required_keys: frozenset[str]) -> bool:
    """Whether a TypedDict key is required.

    Explicit Required/NotRequired wins: with `from __future__ import annotations` Python
    3.11 cannot see them when it builds `__required_keys__`, but the resolved hints can.
    """
    origin = typing.get_origin(hint)
    if origin is Required:
        return True
    if origin is NotRequired:
        return False
    return name in required_keys


def _whole_number(bound: int | float | None, where: str) -> int | None:
    if bound is None or isinstance(bound, int):
        return bound
    if bound.is_integer():
        return int(bound)
    raise TypeError(f"{where}: a Length bound must be a whole number, got {bound!r}")


def _kind_phrase(kind: str) -> str:
    return {
        "string": "a string", "integer": "an integer", "number": "a number",
        "boolean": "a boolean", "null": "null", "array": "an array", "object": "an object",
    }.get(kind, f"a {kind} value")


def _count(number: int, unit: str) -> str:
    """"1 character", "2 characters": error reasons read as sentences."""
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"

"""Constraints placed on parameter types with `typing.Annotated`.

    text: Annotated[str, Length(1, "max_text", too_large="text")]
    limit: Annotated[int, Range(ge=1, le=200)] = 50
    name: Annotated[str, Pattern(r"[\\w.-]{1,32}"), Doc("the user name")]

A bound may be a number or a string. A string names an attribute of the handler object
(dotted paths allowed, e.g. "config.max_text"); it is read once, when the handler object is
added to the Registry, so a limit can come from runtime configuration. Validation and the
OpenRPC schema both use the resolved value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

# A number, or the dotted name of a numeric attribute of the handler object.
Bound = Union[int, float, str, None]


@dataclass(frozen=True)
class Range:
    """Numeric bounds: ge (>=), le (<=), gt (>), lt (<)."""

    ge: Bound = None
    le: Bound = None
    gt: Bound = None
    lt: Bound = None


@dataclass(frozen=True)
class Length:
    """Length bounds: characters of a str, items of a list.

    When `too_large` is set (it names the thing, e.g. "text"), going over `max` is the
    contract's -32007 TooLarge with `{"limit": max}` instead of -32602.
    """

    min: Bound = 0
    max: Bound = None
    too_large: str | None = None


@dataclass(frozen=True)
class Pattern:
    """The WHOLE string must match `regex` (Python re.fullmatch).

    The OpenRPC schema carries it anchored as `^(?:regex)$`, which means the same thing to
    a JSON Schema (ECMA-262) validator for the common subset of regex syntax.
    """

    regex: str
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.regex))


@dataclass(frozen=True)
class Doc:
    """A human description of a parameter or field, shown in the OpenRPC document."""

    text: str


def resolve_bound(bound: Bound, owner: object, what: str) -> int | float | None:
    """Turn a declared bound into a number, reading named ones from the handler object.

    Raises TypeError (at registration) when the attribute is missing or not a number.
    """
    if bound is None or isinstance(bound, (int, float)) and not isinstance(bound, bool):
        return bound
    if not isinstance(bound, str):
        raise TypeError(f"{what}: bound must be a number or an attribute name, got {bound!r}")
    value: object = owner
    for part in bound.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise TypeError(
                f"{what}: {type(owner).__name__} has no attribute {bound!r} for a limit"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}: attribute {bound!r} must be a number, got {value!r}")
    return value

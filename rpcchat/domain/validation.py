"""Checks for every parameter the domain accepts.

Each failure raises an RpcError subclass whose `data.field` is the contract's parameter
name, so a client can tell exactly which value was wrong.
"""

from __future__ import annotations

import math
import unicodedata

from rpcchat.errors import InvalidParams, TooLarge

NAME_MAX = 32
PASSWORD_MAX = 1024
CLIENT_MSG_ID_MAX = 64
CHAT_ID_MAX = 200
HISTORY_MAX = 200
HISTORY_LIMIT_MAX = 200
POLL_TIMEOUT_MAX = 60.0
POLL_LIMIT_MAX = 500
ID_MAX = 2**63 - 1  # ids are SQLite INTEGERs: a larger one cannot even be looked up

_NAME_PUNCTUATION = frozenset("_-.")


def require_str(value: object, field: str) -> str:
    """A string that can be stored as UTF-8 (JSON allows lone surrogates; SQLite does not)."""
    if not isinstance(value, str):
        raise InvalidParams(field, "must be a string")
    if value.isascii():
        return value  # ASCII is always valid UTF-8: no need to encode it to find out
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParams(field, "must be valid Unicode text") from None
    return value


def require_int(value: object, field: str, minimum: int, maximum: int | None = None) -> int:
    # bool is a subclass of int in Python but `true` is not a number on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(field, "must be an integer")
    if value < minimum:
        raise InvalidParams(field, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidParams(field, f"must be at most {maximum}")
    return value


def require_number(value: object, field: str, minimum: float, maximum: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidParams(field, "must be a number")
    number = float(value)
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise InvalidParams(field, f"must be between {minimum:g} and {maximum:g}")
    return number


def require_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(field, "must be true or false")
    return value


def user_name(value: object, field: str = "name") -> str:
    """A user name in NFC: 1-32 letters (any script), digits, `_`, `-`, `.`.

    Combining marks are accepted right after a letter, because many scripts (Devanagari,
    Thai, ...) cannot write a letter without one.
    """
    name = unicodedata.normalize("NFC", require_str(value, field))
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidParams(field, f"must be 1 to {NAME_MAX} characters")
    after_letter = False
    for char in name:
        if char.isalpha():
            after_letter = True
        elif after_letter and unicodedata.category(char).startswith("M"):
            continue
        elif char.isdecimal() or char in _NAME_PUNCTUATION:
            after_letter = False
        else:
            raise InvalidParams(field, "may contain only letters, digits, '_', '-' and '.'")
    return name


def name_key(name: str) -> str:
    """The uniqueness key of a user name: names equal regardless of case share one key."""
    return unicodedata.normalize("NFC", name.casefold())


def password(value: object) -> str:
    """A password of 1-1024 characters, in NFC so that every client's input form matches."""
    text = unicodedata.normalize("NFC", require_str(value, "password"))
    if not 1 <= len(text) <= PASSWORD_MAX:
        raise InvalidParams("password", f"must be 1 to {PASSWORD_MAX} characters")
    return text


def message_text(value: object, max_text: int) -> str:
    text = require_str(value, "text")
    if not text.strip():
        raise InvalidParams("text", "must not be empty")
    if len(text) > max_text:
        raise TooLarge("text", max_text)
    return text


def client_msg_id(value: object) -> str | None:
    if value is None:
        return None
    text = require_str(value, "client_msg_id")
    if not 1 <= len(text) <= CLIENT_MSG_ID_MAX:
        raise InvalidParams("client_msg_id", f"must be 1 to {CLIENT_MSG_ID_MAX} characters")
    return text


def chat_id(value: object, field: str = "chat") -> str:
    text = require_str(value, field)
    if not 1 <= len(text) <= CHAT_ID_MAX:
        raise InvalidParams(field, f"must be 1 to {CHAT_ID_MAX} characters")
    return text

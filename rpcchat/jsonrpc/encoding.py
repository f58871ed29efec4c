"""JSON text of responses: compact, ASCII only, NaN and Infinity refused, and objects shared by
many answers encoded once.

`EncodedOnce` marks an object that many responses carry unchanged (an event that every
parked poll returns): its text is made on first use and spliced into every later answer.
The splice works on the shapes results have: an `EncodedOnce` directly inside a list that is
a value of the result object (`{"events": [...]}`); anywhere else it is encoded like any dict.
"""

from __future__ import annotations

import json
from json import encoder as _stdlib_encoder
from typing import Any, Callable

__all__ = ["EncodedOnce", "ResponseEncoder"]

# Stands for an EncodedOnce while the rest of an answer is encoded. ASCII output escapes it
# as below; if a value of the answer happens to spell that too, the counts disagree and the
# answer is encoded again without splicing.
_SLOT = "\x00encoded-once\x00"
_SLOT_TEXT = '"\\u0000encoded-once\\u0000"'


class EncodedOnce(dict[str, Any]):
    """A JSON object shared by many responses: encoded on first use, that text reused.

    Never change one after it was first answered with: later answers would not show it."""

    # A class default instead of __slots__ and an __init__: one is made per published
    # event, and dict's own constructor is several times cheaper than a Python __init__.
    text: str | None = None


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_ascii_encoder() -> Callable[[Any], str]:
    """json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode,
    without building its C encoder again on every call (a third of the cost of a small
    answer). Falls back to the plain method where the C encoder is missing."""
    plain = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode
    make = getattr(_stdlib_encoder, "c_make_encoder", None)
    if make is None:
        return plain
    try:
        # No circular-reference markers (a shared table would outlive a failed call); a
        # cycle ends in RecursionError, which callers treat like any unencodable value.
        encode_chunks = make(None, _refuse, _stdlib_encoder.encode_basestring_ascii, None,
                             ":", ",", False, False, False)
    except TypeError:        # another signature in another Python version
        return plain

    def encode(value: Any) -> str:
        return "".join(encode_chunks(value, 0))

    return encode


class ResponseEncoder:
    """Encodes JSON-RPC responses. Raises what json raises for values it cannot encode
    (TypeError, ValueError, OverflowError, RecursionError)."""

    def __init__(self) -> None:
        self.encode = _compact_ascii_encoder()

    def success(self, result: Any, request_id: Any, server_time: float | None = None) -> str:
        """The text of a success response. With `server_time`, a dict result carries it (set
        or replaced) in a copy: the handler's object is left alone."""
        if isinstance(result, dict):
            shared = self._shared_lists(result)
            if server_time is not None or shared:
                # Our own copy: stamped, and with the shared lists swapped for slots.
                result = {**result, "server_time": server_time} if server_time is not None \
                    else dict(result)
            if shared:
                spliced = self._spliced(result, shared, request_id)
                if spliced is not None:
                    return spliced
        # The envelope is written around the encoded result: encoding it as one more dict
        # would cost more than the whole result of a small answer.
        id_text = int.__repr__(request_id) if type(request_id) is int \
            else self.encode(request_id)
        return f'{{"jsonrpc":"2.0","result":{self.encode(result)},"id":{id_text}}}'

    def _shared_lists(self, result: dict[str, Any]) -> list[tuple[str, list[Any], str]]:
        """(key, list, text) of each value of `result` that is a list of EncodedOnce objects,
        the text made of their encoded-once texts."""
        found: list[tuple[str, list[Any], str]] = []
        for key, value in result.items():
            if type(value) is list and value and type(value[0]) is EncodedOnce:
                if len(value) == 1:
                    text = f"[{self._text_of(value[0])}]"
                else:
                    text = f"[{','.join([self._text_of(item) for item in value])}]"
                found.append((key, value, text))
        return found

    def _text_of(self, item: Any) -> str:
        if type(item) is not EncodedOnce:
            return self.encode(item)
        if item.text is None:
            item.text = self.encode(item)
        return item.text

    def _spliced(self, result: dict[str, Any], shared: list[tuple[str, list[Any], str]],
                 request_id: Any) -> str | None:
        """The response with the lists in `shared` spliced in as text. `result` is our own
        copy: the lists are swapped for slots, and swapped back (and None returned) when a
        value of the result spells the slot marker itself."""
        for key, _, _ in shared:
            result[key] = _SLOT
        text = self.encode({"jsonrpc": "2.0", "result": result, "id": request_id})
        if len(shared) == 1:                # the usual case: one list (events, messages)
            before, slot, after = text.partition(_SLOT_TEXT)
            if slot and _SLOT_TEXT not in after:
                return f"{before}{shared[0][2]}{after}"
        else:
            pieces = text.split(_SLOT_TEXT)
            if len(pieces) == len(shared) + 1:
                out = [pieces[0]]
                for (_, _, list_text), piece in zip(shared, pieces[1:]):
                    out.append(list_text)
                    out.append(piece)
                return "".join(out)
        for key, value, _ in shared:
            result[key] = value
        return None

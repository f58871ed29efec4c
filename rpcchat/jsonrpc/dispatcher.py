"""JSON-RPC 2.0 over bytes: body and Authorization header in, response bytes out.

Transport-agnostic; the HTTP layer answers 204 when `DispatchResult.body` is None.

Decisions where the specification leaves room:
- `"params": null` is treated like absent params (as go-ethereum does); any other
  non-structured params (string, number, boolean) is -32600.
- A leading UTF-8 byte order mark is ignored (RFC 8259 section 8.1 allows it); any other
  invalid UTF-8 is -32700.
- NaN, Infinity, -Infinity and numbers that overflow a float (1e400) are -32700; so are
  integers longer than Python's 4300-digit limit and nesting deeper than `max_depth`
  (checked before decoding, so no RecursionError and no deep structure ever reaches a
  handler).
- A batch over `max_batch` entries runs nothing and is answered like go-ethereum: an array
  holding one -32600 "batch too large" error with id null.
- Batch entries run one after another, in order (a later call may rely on an earlier one);
  responses keep that order.
- Responses are ASCII JSON (non-ASCII escaped), so a lone surrogate echoed in an id cannot
  break the encoding; a result that cannot be encoded becomes -32603 for that call only.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from time import perf_counter
from typing import Any, Callable

from rpcchat.clock import Clock
from rpcchat.errors import (
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
    Unauthorized,
)
from rpcchat.jsonrpc.context import Authenticator, CallContext, Principal
from rpcchat.jsonrpc.encoding import ResponseEncoder
from rpcchat.jsonrpc.registry import Registry
from rpcchat.jsonrpc.spec import Auth

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 100
DEFAULT_MAX_DEPTH = 64
_ID_TYPES = (str, int, float)
_STRUCTURE_OPENERS = ("{", "[")
_JSON_WHITESPACE = " \t\n\r"
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


@dataclass(slots=True)
class CallRecord:
    """One call of a dispatch, for the per-request log line (never params or tokens)."""

    method: str | None   # None when the request was not even a valid call
    user: str | None     # None when the call carried no (valid) token
    outcome: str         # "ok" or "error <code>"
    duration_ms: float


@dataclass(slots=True)
class DispatchResult:
    body: bytes | None   # None: nothing to send back (HTTP 204)
    calls: list[CallRecord]


class Dispatcher:
    def __init__(self, registry: Registry, authenticator: Authenticator, clock: Clock,
                 max_batch: int = DEFAULT_MAX_BATCH,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if max_batch < 1 or max_depth < 2:
            raise ValueError("max_batch must be >= 1 and max_depth >= 2")
        self._registry = registry
        self._authenticator = authenticator
        self._clock = clock
        self._max_batch = max_batch
        self._max_depth = max_depth
        decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
        self._decode_any = decoder.decode
        # The scanner JSONDecoder.__init__ builds (typeshed does not declare the attribute).
        self._scan: Callable[[str, int], tuple[Any, int]] = getattr(decoder, "scan_once")
        self._encoder = ResponseEncoder()
        self._encode = self._encoder.encode

    async def dispatch(self, body: bytes, authorization: str | None, *,
                       record: bool = True) -> DispatchResult:
        """Answer one HTTP body. Never raises, except asyncio.CancelledError.

        With `record=False` the calls are neither timed nor listed in `calls`: for callers
        that would not log them."""
        calls: list[CallRecord] = []
        recorder = calls if record else None
        started = perf_counter() if record else 0.0
        try:
            try:
                message = self._parse(body)
            except ParseError as error:
                if recorder is not None:
                    recorder.append(CallRecord(None, None, _outcome(error), _ms_since(started)))
                return DispatchResult(self._error_response(error, None).encode("ascii"), calls)
            credentials = _Credentials(authorization, self._authenticator)
            if type(message) is list:
                answer = await self._batch(message, credentials, recorder)
            else:
                # A call may wait long (a parked poll): this frame lets go of the decoded
                # request as soon as the call holds what it needs.
                call = self._call(message, credentials, False, recorder)
                del message
                text = await call
                answer = None if text is None else text.encode("ascii")
        except Exception:
            # A fault of the dispatcher itself; handler faults are caught per call.
            logger.exception("JSON-RPC dispatch failed")
            answer = self._error_response(InternalError(), None).encode("ascii")
        return DispatchResult(answer, calls)

    def _parse(self, body: bytes) -> Any:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Parse error: invalid UTF-8 at byte {exc.start}") from None
        if text.startswith("\ufeff"):
            text = text[1:]
        # The bracket count is nesting_exceeds' own first test, done here to spare the call.
        if (text.count("[") + text.count("{") > self._max_depth
                and nesting_exceeds(text, self._max_depth)):
            raise ParseError(f"Parse error: nested deeper than {self._max_depth} levels")
        try:
            return self._decode(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"Parse error: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from None
        except _RefusedNumber as exc:
            raise ParseError(f"Parse error: {exc}") from None
        except ValueError:
            # int() refuses integers over sys.get_int_max_str_digits() digits.
            raise ParseError("Parse error: number too long") from None
        except RecursionError:
            raise ParseError("Parse error: nested too deeply") from None

    def _decode(self, text: str) -> Any:
        """json.JSONDecoder.decode, without its two Python-level calls for the usual body: an
        object or array right at the start. Anything else goes the standard way."""
        if text[:1] not in _STRUCTURE_OPENERS:
            return self._decode_any(text)
        try:
            value, end = self._scan(text, 0)
        except StopIteration:
            return self._decode_any(text)
        if end != len(text):
            rest = text[end:].lstrip(_JSON_WHITESPACE)
            if rest:
                raise json.JSONDecodeError("Extra data", text, len(text) - len(rest))
        return value

    async def _batch(self, batch: list[Any], credentials: _Credentials,
                     calls: list[CallRecord] | None) -> bytes | None:
        if not batch or len(batch) > self._max_batch:
            if calls is not None:
                calls.append(CallRecord(None, None, f"error {InvalidRequest.code}", 0.0))
            if not batch:
                error = InvalidRequest("Invalid Request: empty batch")
                return self._error_response(error, None).encode("ascii")
            error = InvalidRequest("batch too large", {"limit": self._max_batch})
            return f"[{self._error_response(error, None)}]".encode("ascii")
        responses = []
        for request in batch:
            text = await self._call(request, credentials, True, calls)
            if text is not None:
                responses.append(text)
        if not responses:
            return None
        return f"[{','.join(responses)}]".encode("ascii")

    async def _call(self, request: Any, credentials: _Credentials, in_batch: bool,
                    calls: list[CallRecord] | None) -> str | None:
        """Run one request object; returns its encoded response, None for a notification.
        Appends its CallRecord to `calls` unless that is None."""
        started = perf_counter() if calls is not None else 0.0
        try:
            request_id, is_notification, method, params = _envelope(request)
        except _RejectedRequest as rejected:
            if calls is not None:
                calls.append(CallRecord(None, None, f"error {rejected.error.code}",
                                        _ms_since(started)))
            return self._error_response(rejected.error, rejected.request_id)
        del request     # see dispatch: a waiting call holds only what it uses
        user: str | None = None
        result: Any = None
        error: RpcError | None = None
        stamp_server_time = False
        try:
            spec = self._registry.get(method)
            if spec is None:
                raise MethodNotFound()
            stamp_server_time = spec.stamp_server_time
            if credentials.pending and spec.auth is not Auth.NONE:
                await credentials.authenticate()
            principal, token = credentials.for_method(spec.auth)
            if principal is not None:
                user = principal.user
            ctx = CallContext(principal, token, in_batch)
            running = spec.handler(ctx, **spec.bind(params))
            del params
            result = await running
            if ctx.acting_as is not None:
                user = ctx.acting_as
        except RpcError as exc:
            error = exc
        except Exception:
            logger.exception("internal error in method %s (user %s)", method, user)
            error = InternalError()
        text: str | None = None
        if is_notification:
            pass
        elif error is None:
            try:
                # server_time is added here, in one place, to every dict result.
                text = self._encoder.success(
                    result, request_id, self._clock.time() if stamp_server_time else None)
            except _ENCODE_ERRORS:
                logger.exception("result of method %s (user %s) is not JSON", method, user)
                error = InternalError()
        if error is not None and not is_notification:
            text = self._error_response(error, request_id)
        if calls is not None:
            calls.append(CallRecord(method, user, _outcome(error), _ms_since(started)))
        return text

    def _error_response(self, error: RpcError, request_id: Any) -> str:
        try:
            return self._encode(
                {"jsonrpc": "2.0", "error": error.to_error_object(), "id": request_id}
            )
        except _ENCODE_ERRORS:
            logger.exception("error data of %s is not JSON", type(error).__name__)
            fallback = InternalError().to_error_object()
            return self._encode({"jsonrpc": "2.0", "error": fallback, "id": request_id})


def _ms_since(started: float) -> float:
    # Durations use the performance counter directly: the injected Clock is for timers and
    # for the time users see.
    return (perf_counter() - started) * 1000.0


class _Credentials:
    """The Authorization header of one dispatch, authenticated at most once and only when a
    method needs it."""

    __slots__ = ("_header", "_authenticator", "pending", "_principal", "_token", "_error")

    def __init__(self, header: str | None, authenticator: Authenticator) -> None:
        self._header = header
        self._authenticator = authenticator
        # No header: nothing to authenticate (anonymous).
        self.pending = header is not None
        self._principal: Principal | None = None
        self._token: str | None = None
        self._error: RpcError | None = None

    def for_method(self, auth: Auth) -> tuple[Principal | None, str | None]:
        """(principal, token) for a method with this auth, once authenticated if it needs
        it; raises Unauthorized."""
        if auth is Auth.NONE:
            return None, None
        if self._error is not None:
            raise self._error
        if self._principal is None and auth is Auth.REQUIRED:
            raise Unauthorized("Unauthorized: send Authorization: Bearer <token>")
        return self._principal, self._token

    async def authenticate(self) -> None:
        self.pending = False
        header = (self._header or "").strip()
        if not header:
            return
        parts = header.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            self._error = Unauthorized("Unauthorized: Authorization must be 'Bearer <token>'")
            return
        token = parts[1].strip()
        try:
            self._principal = await self._authenticator.authenticate(token)
        except RpcError as exc:
            self._error = exc
            return
        except Exception:
            logger.exception("authenticating a bearer token failed")
            self._error = InternalError()
            return
        self._token = token


class _RejectedRequest(Exception):
    """A request object that is not a valid JSON-RPC 2.0 request (-32600)."""

    def __init__(self, reason: str, request_id: Any = None) -> None:
        super().__init__(reason)
        self.error = InvalidRequest(f"Invalid Request: {reason}")
        self.request_id = request_id


def _envelope(request: Any) -> tuple[Any, bool, str, Any]:
    """(id, is_notification, method, params) of a request object; raises _RejectedRequest.

    The id is checked first so that later faults can still be answered with it.
    """
    if type(request) is not dict:
        raise _RejectedRequest("a request must be an object")
    is_notification = "id" not in request
    request_id = request.get("id")
    if request_id is not None and type(request_id) not in _ID_TYPES:
        raise _RejectedRequest("id must be a string, a number or null")
    if request.get("jsonrpc") != "2.0":
        raise _RejectedRequest('jsonrpc must be exactly "2.0"', request_id)
    method = request.get("method")
    if type(method) is not str:
        raise _RejectedRequest("method must be a string", request_id)
    params = request.get("params")
    if params is not None and type(params) is not dict and type(params) is not list:
        raise _RejectedRequest("params must be an object or an array", request_id)
    return request_id, is_notification, method, params


def _outcome(error: RpcError | None) -> str:
    return "ok" if error is None else f"error {error.code}"


class _RefusedNumber(ValueError):
    """A JSON number Python would accept but JSON (or a float) cannot represent."""


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _RefusedNumber(f"number {literal[:40]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    raise _RefusedNumber(f"{name} is not JSON")


# After escapes are gone: a JSON string, or an unterminated one running to the end.
_STRING = re.compile(r'"[^"]*(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit` (cheap, before decoding).

    Only texts with more than `limit` brackets are examined, in time linear in their size
    and without Python-level loops: escaped backslashes and quotes are dropped, then
    strings, then everything but brackets; the deepest point is the maximum running sum
    of +1 per opener and -1 per closer. Unbalanced text is invalid JSON; the decoder
    reports it.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    if "\\" in text:
        # Pairs of backslashes first, left to right as a JSON reader pairs them; what
        # remains of a run escapes the next character, and only an escaped quote matters.
        text = text.replace("\\\\", "").replace('\\"', "")
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    deepest = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)
    return deepest > limit

"""Async Python client for rpcchat: one typed method per JSON-RPC method of the contract,
and `events()`, a long-poll iterator that survives server restarts.

    async with ChatClient("http://127.0.0.1:8000") as chat:
        await chat.connect("alice", "s3cret")
        await chat.send("hello")
        async for event in chat.events():
            print(event)
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

from rpcchat import wire_types as wire
from rpcchat.transport.client import HttpClient, HttpClientError
from rpcchat.wire_types import (  # noqa: F401 - re-exported: they type the results
    Chat as Chat, ChatSummary as ChatSummary, Event as Event, File as File,
    JoinRequest as JoinRequest, Me as Me, Message as Message, Rate as Rate,
    Scheduled as Scheduled, ServerInfo as ServerInfo,
)

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8000"
RPC_PATH = "/rpc"
DEFAULT_POLL_TIMEOUT = 30.0
# A poll legitimately waits `timeout` seconds; the HTTP deadline must outlast it.
POLL_HTTP_MARGIN = 10.0
EARLY_RETURNS_BEFORE_WARNING = 3

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
FORBIDDEN = -32002
NOT_FOUND = -32003
CONFLICT = -32004
RATE_LIMITED = -32005
BANNED = -32006
TOO_LARGE = -32007
CURSOR_AHEAD = -32008


class RpcCallError(Exception):
    """The server answered the call with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class ResponseError(Exception):
    """The server's reply is not a usable JSON-RPC response (HTTP error status, not JSON...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- result shapes (the contract's objects; servers may add fields) -------------------------

class _ServerTime(TypedDict):
    server_time: float  # the server stamps every result object with its clock


class ConnectResult(wire.ConnectResult, _ServerTime):
    pass


class OkResult(wire.OkResult, _ServerTime):
    pass


class StatusResult(wire.StatusResult, _ServerTime):
    pass


class SendResult(_ServerTime):
    message: NotRequired[Message]
    scheduled: NotRequired[Scheduled]


class MessageResult(wire.MessageResult, _ServerTime):
    pass


class PollResult(wire.PollResult, _ServerTime):
    pass


class HistoryResult(wire.HistoryResult, _ServerTime):
    pass


class ScheduledListResult(_ServerTime):
    scheduled: list[Scheduled]


class ScheduledResult(_ServerTime):
    scheduled: Scheduled


class ReportResult(_ServerTime):
    user: str
    warnings: int
    banned_until: float | None


class FileBeginResult(wire.BeginResult, _ServerTime):
    pass


class FilePutResult(wire.PutResult, _ServerTime):
    pass


class FileChunk(wire.GetResult, _ServerTime):
    """`data` is base64, as on the wire; `decode_file_data` turns it into bytes."""


class ChatResult(wire.ChatResult, _ServerTime):
    pass


class LinkResult(wire.LinkResult, _ServerTime):
    pass


class JoinResult(wire.JoinResult, _ServerTime):
    pass


class RequestsResult(wire.RequestsResult, _ServerTime):
    pass


def decode_file_data(chunk: FileChunk) -> bytes:
    return base64.b64decode(chunk["data"], validate=True)


# --- reconnection -------------------------------------------------------------------------

@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff with jitter between long-poll attempts that failed."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, jitter: float) -> float:
        """Delay before retry number `attempt` (0-based); `jitter` is uniform in [0, 1).

        Half the delay is fixed and half random ("equal jitter"), so clients that lost the
        same server do not all come back at the same instant, yet never retry at once.
        """
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return ceiling / 2 + ceiling / 2 * jitter


def drop_none(**params: Any) -> dict[str, Any]:
    """Params with the unset (None) ones left out, so the server applies its defaults."""
    return {name: value for name, value in params.items() if value is not None}


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


class ChatClient:
    """A client of one rpcchat server. Not thread-safe; use it from one event loop."""

    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *,
                 timeout: float = 30.0, connect_timeout: float = 5.0,
                 reconnect: ReconnectPolicy = ReconnectPolicy(),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 random_fraction: Callable[[], float] = random.random) -> None:
        self.http = HttpClient(server, timeout=timeout, connect_timeout=connect_timeout)
        self.server = self.http.base_url
        self.token = token
        self.user: str | None = None
        self.reconnect = reconnect
        self._sleep = sleep
        self._random = random_fraction
        self._ids = itertools.count(1)

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    # --- raw calls ---------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   idempotent: bool = False, timeout: float | None = None) -> Any:
        """Call `method` and return its `result`; raises RpcCallError for an error reply.

        `idempotent` allows one transparent resend when a kept-alive connection turns out
        dead before the server answered; only set it for calls safe to repeat.
        """
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        body = json.dumps(request, ensure_ascii=False, allow_nan=False).encode()
        headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
        if self.token is not None:
            headers.append(("Authorization", f"Bearer {self.token}"))
        response = await self.http.request("POST", RPC_PATH, body, headers, timeout,
                                           idempotent=idempotent)
        if response.status != 200:
            raise ResponseError(f"{method}: HTTP {response.status} {response.reason} from "
                                f"{self.server}{describe_body(response.body)}", response.status)
        return parse_reply(method, request_id, response.body)

    async def _call_object(self, method: str, params: dict[str, Any] | None = None, *,
                           idempotent: bool = False, timeout: float | None = None) -> Any:
        result = await self.call(method, params, idempotent=idempotent, timeout=timeout)
        if not isinstance(result, dict):
            raise ResponseError(f"{method}: expected an object as result, got {result!r:.80}")
        return result

    # --- session -----------------------------------------------------------------------

    async def connect(self, name: str, password: str,
                      history: int | None = None) -> ConnectResult:
        """Log in (creating the account on first use); keeps the returned token."""
        params = drop_none(name=name, password=password, history=history)
        result = cast(ConnectResult, await self._call_object("connect", params))
        require_field("connect", result, "token", str)
        require_field("connect", result, "user", str)
        self.token = result["token"]
        self.user = result["user"]
        return result

    async def disconnect(self) -> OkResult:
        """Revoke this client's token."""
        result = cast(OkResult, await self._call_object("disconnect"))
        self.token = None
        return result

    async def status(self) -> StatusResult:
        return cast(StatusResult, await self._call_object("status", idempotent=True))

    async def discover(self) -> dict[str, Any]:
        """The OpenRPC document describing every method."""
        return cast(dict[str, Any], await self._call_object("rpc.discover", idempotent=True))

    # --- messages ----------------------------------------------------------------------

    async def send(self, text: str, *, to: str | None = None, chat: str | None = None,
                   at: float | None = None, delay: float | None = None,
                   client_msg_id: str | None = None) -> SendResult:
        """Send to general, a user (`to`) or a chat; `at`/`delay` schedule it.

        A `client_msg_id` is generated when not given, which makes a resend after a lost
        response safe: the server returns the first result instead of a second message.
        """
        params = drop_none(text=text, to=to, chat=chat, at=at, delay=delay,
                           client_msg_id=client_msg_id or new_client_msg_id())
        return cast(SendResult, await self._call_object("send", params, idempotent=True))

    async def comment(self, message_id: int, text: str, *,
                      client_msg_id: str | None = None) -> MessageResult:
        params = drop_none(message_id=message_id, text=text,
                           client_msg_id=client_msg_id or new_client_msg_id())
        return cast(MessageResult, await self._call_object("comment", params, idempotent=True))

    async def poll(self, *, since: int | None = None, timeout: float | None = None,
                   limit: int | None = None) -> PollResult:
        """Events after `since` (default: the user's read cursor), waiting up to `timeout`."""
        wait = DEFAULT_POLL_TIMEOUT if timeout is None else timeout
        params = drop_none(since=since, timeout=timeout, limit=limit)
        result = await self._call_object("poll", params, idempotent=True,
                                         timeout=max(wait, 0) + POLL_HTTP_MARGIN)
        # events() reads both: a reply without them is unusable, like one that is not JSON.
        require_field("poll", result, "events", list)
        require_field("poll", result, "next", int)
        return cast(PollResult, result)

    async def history(self, *, chat: str | None = None, before: int | None = None,
                      limit: int | None = None) -> HistoryResult:
        params = drop_none(chat=chat, before=before, limit=limit)
        return cast(HistoryResult, await self._call_object("history", params, idempotent=True))

    async def scheduled_list(self) -> ScheduledListResult:
        result = await self._call_object("scheduled.list", idempotent=True)
        return cast(ScheduledListResult, result)

    async def scheduled_cancel(self, scheduled_id: str) -> ScheduledResult:
        result = await self._call_object("scheduled.cancel", {"id": scheduled_id})
        return cast(ScheduledResult, result)

    async def report(self, user: str, reason: str | None = None) -> ReportResult:
        # Safe to repeat: each reporter counts once per reported user.
        params = drop_none(user=user, reason=reason)
        return cast(ReportResult, await self._call_object("report", params, idempotent=True))

    # --- files -------------------------------------------------------------------------

    async def file_begin(self, name: str, size: int, *, content_type: str | None = None,
                         sha256: str | None = None) -> FileBeginResult:
        params = drop_none(name=name, size=size, content_type=content_type, sha256=sha256)
        return cast(FileBeginResult, await self._call_object("file.begin", params))

    async def file_put(self, upload_id: str, offset: int, data: bytes) -> FilePutResult:
        """Upload the chunk `data` (raw bytes; sent base64-encoded) at `offset`."""
        params = {"upload_id": upload_id, "offset": offset,
                  "data": base64.b64encode(data).decode("ascii")}
        return cast(FilePutResult, await self._call_object("file.put", params))

    async def file_finish(self, upload_id: str, *, to: str | None = None,
                          chat: str | None = None, text: str | None = None) -> MessageResult:
        params = drop_none(upload_id=upload_id, to=to, chat=chat, text=text)
        return cast(MessageResult, await self._call_object("file.finish", params))

    async def file_get(self, file_id: str, *, offset: int | None = None,
                       length: int | None = None) -> FileChunk:
        params = drop_none(file_id=file_id, offset=offset, length=length)
        return cast(FileChunk, await self._call_object("file.get", params, idempotent=True))

    # --- chats -------------------------------------------------------------------------

    async def chat_create(self, name: str, members: list[str] | None = None) -> ChatResult:
        params = drop_none(name=name, members=members)
        return cast(ChatResult, await self._call_object("chat.create", params))

    async def chat_invite(self, chat: str, user: str) -> ChatResult:
        params = {"chat": chat, "user": user}
        return cast(ChatResult, await self._call_object("chat.invite", params))

    async def chat_link(self, chat: str, reset: bool = False) -> LinkResult:
        params: dict[str, Any] = {"chat": chat}
        if reset:
            params["reset"] = True
        return cast(LinkResult, await self._call_object("chat.link", params))

    async def chat_join(self, link: str) -> JoinResult:
        return cast(JoinResult, await self._call_object("chat.join", {"link": link}))

    async def chat_requests(self, chat: str) -> RequestsResult:
        result = await self._call_object("chat.requests", {"chat": chat}, idempotent=True)
        return cast(RequestsResult, result)

    async def chat_approve(self, chat: str, user: str) -> ChatResult:
        params = {"chat": chat, "user": user}
        return cast(ChatResult, await self._call_object("chat.approve", params))

    async def chat_decline(self, chat: str, user: str) -> OkResult:
        params = {"chat": chat, "user": user}
        return cast(OkResult, await self._call_object("chat.decline", params))

    async def chat_leave(self, chat: str) -> OkResult:
        return cast(OkResult, await self._call_object("chat.leave", {"chat": chat}))

    # --- the event stream ----------------------------------------------------------------

    async def events(self, *, since: int | None = None,
                     timeout: float = DEFAULT_POLL_TIMEOUT) -> AsyncGenerator[Event, None]:
        """Every event from `since` on (default: the read cursor), long-polling forever.

        Connection failures and server-side faults are retried with exponential backoff
        and jitter; a cursor ahead of the server (-32008, e.g. after a restore) restarts
        from the read cursor; an invalid token (-32001) and other errors are raised.
        """
        state = _StreamState(since)
        while True:
            batch = await self._next_batch(state, timeout)
            if batch is None:
                continue
            for event in batch["events"]:
                yield event
            state.since = batch["next"]

    async def _next_batch(self, state: _StreamState, timeout: float) -> PollResult | None:
        """One poll of `events()`; None when it failed and was dealt with (retry it)."""
        started = time.monotonic()
        try:
            batch = await self.poll(since=state.since, timeout=timeout)
        except (HttpClientError, ResponseError, RpcCallError) as exc:
            if isinstance(exc, RpcCallError) and exc.code == CURSOR_AHEAD:
                log.warning("cursor %s is ahead of the server; restarting from the read cursor",
                            state.since)
                state.since = None
                return None
            if isinstance(exc, RpcCallError) and exc.code != INTERNAL_ERROR:
                raise
            delay = self.reconnect.delay(state.failures, self._random())
            state.failures += 1
            log.warning("poll failed (%s); retrying in %.1f s", exc, delay)
            await self._sleep(delay)
            return None
        if state.failures:
            log.info("poll works again after %d failure(s)", state.failures)
        state.failures = 0
        ended_early = time.monotonic() - started < timeout / 2
        if batch["events"] or not ended_early:
            state.early_returns = 0
        else:
            await self._pause_after_early_return(state)
        return batch

    async def _pause_after_early_return(self, state: _StreamState) -> None:
        """An empty poll that ended long before its timeout was most likely ended by a newer
        poll with the same token (the server keeps one per token). Two pollers sharing a
        token would end each other's polls in a tight loop; pausing lets both make progress
        at a bounded cost in latency."""
        state.early_returns += 1
        delay = self.reconnect.delay(min(state.early_returns - 1, 1), self._random())
        if state.early_returns == EARLY_RETURNS_BEFORE_WARNING:
            log.warning("polls keep ending at once without events: is another client polling "
                        "with the same token? Each client should connect for its own token")
        log.debug("poll ended early without events; polling again in %.1f s", delay)
        await self._sleep(delay)


@dataclass
class _StreamState:
    """Where an `events()` stream is, and how its recent polls went."""

    since: int | None
    failures: int = 0
    early_returns: int = 0


def describe_body(body: bytes, limit: int = 200) -> str:
    """A short, printable excerpt of an unexpected body for an error message."""
    text = body[:limit].decode("utf-8", "replace").strip()
    return f": {' '.join(text.split())}" if text else ""


def require_field(method: str, result: Mapping[str, object], name: str, kind: type) -> None:
    """Raise ResponseError unless the result's `name` is a `kind` (a boolean is no int)."""
    value = result.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ResponseError(f"{method}: the result's {name!r} is not {kind.__name__}: "
                            f"{value!r:.80}")


def parse_reply(method: str, request_id: int, body: bytes) -> Any:
    """The `result` of a JSON-RPC response to request `request_id`, or RpcCallError."""
    try:
        reply = json.loads(body)
    except ValueError as exc:
        raise ResponseError(f"{method}: the reply is not JSON ({exc})") from None
    except RecursionError:
        raise ResponseError(f"{method}: the reply is nested too deeply") from None
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        raise ResponseError(f"{method}: the reply is not a JSON-RPC 2.0 response")
    error = reply.get("error")
    if error is not None:
        if not isinstance(error, dict) or type(error.get("code")) is not int:
            raise ResponseError(f"{method}: malformed error object in the reply")
        raise RpcCallError(error["code"], str(error.get("message", "")), error.get("data"))
    # true == 1 in Python: a boolean id must not pass for request 1.
    if reply.get("id") != request_id or isinstance(reply.get("id"), bool):
        raise ResponseError(f"{method}: the reply answers request id {reply.get('id')!r}, "
                            f"not {request_id}")
    if "result" not in reply:
        raise ResponseError(f"{method}: the reply has neither result nor error")
    return reply["result"]

"""`ChatService`: accounts, sessions, chats, messages, events and long-poll.

Every rule of the chat lives here; RPC handlers only pass parameters in and results out.
Results are plain dicts shaped exactly like the contract's results (see API.md); the
JSON-RPC layer adds `server_time` to each.

How state flows:
- Reads on the hot paths (authenticate, poll, unread, membership checks) use in-memory
  indexes loaded at start; SQLite is touched only for history, old events and retries.
- A write allocates its ids and seqs on the loop, updates the indexes that guard
  uniqueness (names, chats, memberships) at once, and queues its changes to the Store.
  Only after the commit are its events published (event window, unread counts, wake-ups)
  and the call answered, so nobody ever sees a seq that a crash could take back.
  Effects of commits are applied in submission order, so events are published in seq order.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar, Union

from rpcchat import __version__
from rpcchat.clock import Clock
from rpcchat.config import ServerConfig
from rpcchat.domain import validation
from rpcchat.domain.chatcore import ChatCore, direct_chat_id, direct_partner
from rpcchat.domain.files import FileService
from rpcchat.domain.groups import GroupChats
from rpcchat.domain.passwords import PasswordHasher, ScryptHasher
from rpcchat.domain.feed import EventFeed
from rpcchat.domain.presence import Presence
from rpcchat.domain.polling import WakeReason
from rpcchat.domain.comments import check_alive
from rpcchat.domain.feature_records import ExpiredMessage, ParentRow
from rpcchat.domain.lifetime import ExpiryHook, alive, message_expiry
from rpcchat.domain.message_rules import Attach, MessageRules
from rpcchat.domain.records import (
    EVENT_CHAT_JOINED,
    EVENT_MESSAGE,
    GENERAL,
    KIND_DIRECT,
    KIND_GENERAL,
    AdvanceCursor,
    Change,
    EventRecord,
    JoinChat,
    NewChat,
    NewEvent,
    NewMessage,
    NewSession,
    NewUser,
    RememberClientMsgId,
    RevokeSession,
    Snapshot,
    Wire,
)
from rpcchat.domain.state import ChatState, EventWindow, UserState, WindowEntry
from rpcchat.domain.store import Store
from rpcchat.domain.wire import event_wire, message_wire
from rpcchat.domain.writes import WritePipeline, consume_outcome, read_store
from rpcchat.errors import (
    CursorAhead,
    Forbidden,
    InternalError,
    InvalidParams,
    NotFound,
    Unauthorized,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_EVENT_WINDOW = 10_000
ONLINE_WINDOW = 60.0
CLIENT_MSG_CACHE = 50_000
DEFAULT_POLL_TIMEOUT = 30.0
DEFAULT_POLL_LIMIT = 100
DEFAULT_HISTORY_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated client: returned by `authenticate`, passed back to the service."""

    user: str
    session_id: int
    user_id: int


Actor = Union[Session, str]
"""Who acts: a Session, or a user name."""


@dataclass(slots=True, eq=False)
class _SessionState:
    session: Session
    token_hash: str
    user: UserState
    poll_generation: int = 0  # bumped by every poll; an older poll seeing a newer one stops


@dataclass(slots=True)
class _Opening:
    """A chat being opened by the same write as a message."""

    changes: list[Change]
    events: list[EventRecord]
    rollback: Callable[[], None]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ChatService:
    """The chat domain. `await start()` before use, `await close()` at the end.

    All methods validate their parameters and raise `rpcchat.errors.RpcError` subclasses.
    `authenticate` is synchronous (the hot path of every request); everything else is async.
    """

    def __init__(
        self,
        store: Store,
        config: ServerConfig,
        clock: Clock,
        *,
        password_hasher: PasswordHasher | None = None,
        event_window: int = DEFAULT_EVENT_WINDOW,
        online_window: float = ONLINE_WINDOW,
        hash_threads: int = 2,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._hasher: PasswordHasher = password_hasher or ScryptHasher()
        self._hash_threads = hash_threads
        self._hash_pool: ThreadPoolExecutor | None = None
        self._window_size = event_window
        self._presence = Presence(online_window)
        self._history_cache_size = max(validation.HISTORY_MAX, config.history)

        self._users_by_id: dict[int, UserState] = {}
        self._users_by_key: dict[str, UserState] = {}
        self._chats: dict[str, ChatState] = {}
        self._sessions_by_hash: dict[str, _SessionState] = {}
        self._sessions_by_id: dict[int, _SessionState] = {}
        self._pending_signups: dict[str, asyncio.Future[None]] = {}
        self._pending_client_msgs: dict[tuple[int, str], asyncio.Future[Wire | None]] = {}
        self._client_msgs: OrderedDict[tuple[int, str], Wire] = OrderedDict()
        self._general_recent: deque[Wire] = deque(maxlen=self._history_cache_size)
        self._feed = EventFeed(self._users_by_id, self._chats,
                               EventWindow(event_window, 0, []), 0)
        self._writes = WritePipeline(store)

        self._last_seq = 0  # newest allocated seq
        self._last_message_id = 0
        self._last_user_id = 0
        self._last_session_id = 0
        self._started_at = 0.0
        self._running = False
        self._draining = False  # shutting down: polls answer at once instead of waiting
        self._was_started = False
        core = ChatCore(
            clock=clock, config=config, store=store, writes=self._writes,
            users_by_id=self._users_by_id, users_by_key=self._users_by_key, chats=self._chats,
            actor=self._actor, member_chat=self._member_chat, chat_wire=self._chat_wire,
            next_seq=self._next_seq, feed=lambda: self._feed,
            post_message=self._prepare_message, ensure_running=self._ensure_running)
        self.groups = GroupChats(core)
        self.files = FileService(core, upload_idle=config.upload_timeout,
                                 max_open_uploads=config.max_uploads)
        self.rules = MessageRules(core, post=self._prepare_message, send_once=self._send_once,
                                  forget_messages=self._forget_expired_messages)
        self.rules.add_expiry_hook(self._delete_expired_files)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._was_started:
            raise RuntimeError("ChatService can be started once")
        self._was_started = True
        snapshot = await self._store.open(
            window=self._window_size, recent_general=self._history_cache_size
        )
        self._hash_pool = ThreadPoolExecutor(
            max_workers=self._hash_threads, thread_name_prefix="rpcchat-password"
        )
        try:
            self._load(snapshot)
            extras = await read_store(self._store.group_file_state(self._clock.time()),
                                      "loading group chats and uploads")
            self.groups.load(extras)
            await self.files.load(extras)
            await self.rules.load()
            self._running = True
            self._started_at = self._clock.monotonic()
            if GENERAL not in self._chats:
                await self._create_general()
            await self.rules.start()
        except BaseException:
            logger.exception("chat service failed to start")
            self._running = False
            self._hash_pool.shutdown(wait=False, cancel_futures=True)
            await self.rules.close()
            await self.files.close()
            await self._store.close()
            raise
        logger.info("chat service started: %d users, %d chats, head seq %d",
                    len(self._users_by_id), len(self._chats), self._feed.head)

    def stop_waiting(self) -> None:
        """Answer every parked poll now and let no new poll wait (the server is stopping),
        so clients get `events: []` instead of a dropped connection."""
        self._draining = True
        self._feed.hub.release_all(WakeReason.CLOSED)

    async def close(self) -> None:
        """Release every parked poll, commit what is queued, stop the storage threads."""
        if not self._running:
            return
        self._running = False
        self._feed.hub.release_all(WakeReason.CLOSED)
        try:
            await self.rules.close()
            await self.files.close()
            await self._store.close()
        finally:
            if self._hash_pool is not None:
                self._hash_pool.shutdown(wait=False, cancel_futures=True)
        logger.info("chat service closed at head seq %d", self._feed.head)

    def _load(self, snapshot: Snapshot) -> None:
        for row in snapshot.users:
            user = UserState(row.user_id, row.name, row.name_key, row.password_hash,
                             row.created_at, row.cursor)
            self._users_by_id[user.user_id] = user
            self._users_by_key[user.name_key] = user
            self._last_user_id = max(self._last_user_id, user.user_id)
        for chat_row in snapshot.chats:
            self._chats[chat_row.chat_id] = ChatState(
                chat_row.chat_id, chat_row.kind, chat_row.name, chat_row.owner_id,
                chat_row.created_at)
        for member in snapshot.memberships:
            self._users_by_id[member.user_id].memberships.setdefault(member.chat_id, []).append(
                (member.joined_seq, member.left_seq))
            if member.left_seq is None:
                self._chats[member.chat_id].members[member.user_id] = None
        for session_row in snapshot.sessions:
            owner = self._users_by_id[session_row.user_id]
            self._register_session(_SessionState(
                Session(owner.name, session_row.session_id, owner.user_id),
                session_row.token_hash, owner))
        self._last_session_id = snapshot.last_session_id
        self._feed = EventFeed(
            self._users_by_id, self._chats,
            EventWindow(self._window_size, snapshot.window_floor, [
                WindowEntry(event.seq, event.chat_id, event.target_id, event_wire(event),
                            event.expires_at)
                for event in snapshot.recent_events
            ]),
            snapshot.last_seq,
        )
        for mark in snapshot.message_marks:
            self._feed.unread.add(mark.chat_id, mark.sender_id, mark.seq)
        self._general_recent.extend(snapshot.recent_general)
        self._last_seq = snapshot.last_seq
        self._last_message_id = snapshot.last_message_id

    async def _create_general(self) -> None:
        now = self._clock.time()
        self._chats[GENERAL] = ChatState(GENERAL, KIND_GENERAL, GENERAL, None, now)
        await self._writes.commit([NewChat(GENERAL, KIND_GENERAL, GENERAL, None, now)],
                                  "creating the general chat")

    def _ensure_running(self) -> None:
        if not self._running:
            raise InternalError("the chat service is not running")

    # --- accounts and sessions -------------------------------------------------------

    async def connect(self, name: object, password: object, history: object = None) -> Wire:
        """Log in, creating the account on first use. Result: {token, user, cursor,
        history: [Message] (newest N of general, oldest first), unread}."""
        self._ensure_running()
        display = validation.user_name(name, "name")
        secret = validation.password(password)
        count = self._config.history if history is None else validation.require_int(
            history, "history", 0, self._history_cache_size)
        key = validation.name_key(display)
        user, created = await self._login_or_create(display, key, secret)
        token = secrets.token_urlsafe(32)
        session = await self._open_session(user, token)
        self._presence.touch(user.user_id, self._clock.monotonic())
        logger.info("connect: user=%s session=%d %s", user.name, session.session_id,
                    "created the account" if created else "logged in")
        return {
            "token": token,
            "user": user.name,
            "cursor": user.cursor,
            "history": self._recent_general(count),
            "unread": self._feed.unread.unread(user),
        }

    def authenticate(self, token: object) -> Session:
        """The session of a bearer token, from memory. Unauthorized if unknown or revoked."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("missing token")
        try:
            digest = _token_hash(token)
        except UnicodeEncodeError:
            raise Unauthorized("unknown token") from None
        state = self._sessions_by_hash.get(digest)
        if state is None:
            raise Unauthorized("unknown or revoked token")
        self._presence.touch(state.user.user_id, self._clock.monotonic())
        return state.session

    async def disconnect(self, session: Session) -> Wire:
        """Revoke the session's token (durably) and end its waiting poll. Result: {ok}."""
        self._ensure_running()
        state = self._live_session(session)
        del self._sessions_by_id[session.session_id]
        del self._sessions_by_hash[state.token_hash]
        state.poll_generation += 1
        self._feed.hub.release_session(session.session_id, WakeReason.CLOSED)
        await self._writes.commit([RevokeSession(session.session_id, self._clock.time())],
                                  "revoking a session")
        logger.info("disconnect: user=%s session=%d", session.user, session.session_id)
        return {"ok": True}

    async def _login_or_create(
        self, display: str, key: str, secret: str
    ) -> tuple[UserState, bool]:
        while True:
            user = self._users_by_key.get(key)
            if user is not None:
                if not await self._in_hash_pool(self._hasher.verify, secret, user.password_hash):
                    logger.info("connect refused: wrong password for user=%s", user.name)
                    raise Unauthorized("wrong password")
                return user, False
            pending = self._pending_signups.get(key)
            if pending is None:
                return await self._sign_up(display, key, secret), True
            # The same name is being created right now: wait, then log in against it.
            await asyncio.shield(pending)

    async def _sign_up(self, display: str, key: str, secret: str) -> UserState:
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_signups[key] = marker
        try:
            password_hash = await self._in_hash_pool(self._hasher.hash, secret)
            user, applied = self._create_user(display, key, password_hash)
            await self._writes.wait(applied, "creating an account")
            return user
        finally:
            del self._pending_signups[key]
            marker.set_result(None)

    def _create_user(
        self, display: str, key: str, password_hash: str
    ) -> tuple[UserState, asyncio.Future[None]]:
        now = self._clock.time()
        self._last_user_id += 1
        seq = self._next_seq()
        # The cursor sits just below the join, so the first poll shows the join itself.
        user = UserState(self._last_user_id, display, key, password_hash, now, seq - 1)
        user.memberships[GENERAL] = [(seq, None)]
        general = self._chats[GENERAL]
        self._users_by_id[user.user_id] = user
        self._users_by_key[key] = user
        general.members[user.user_id] = None
        joined = EventRecord(seq, EVENT_CHAT_JOINED, now, {"chat": GENERAL, "user": display},
                             chat_id=GENERAL, actor_id=user.user_id)

        def forget() -> None:
            self._users_by_id.pop(user.user_id, None)
            if self._users_by_key.get(key) is user:
                del self._users_by_key[key]
            general.members.pop(user.user_id, None)

        applied = self._writes.submit(
            [NewUser(user.user_id, display, key, password_hash, now, user.cursor),
             JoinChat(GENERAL, user.user_id, seq), NewEvent(joined)],
            on_commit=lambda: self._feed.publish([joined]),
            on_failure=forget,
        )
        return user, applied

    async def _open_session(self, user: UserState, token: str) -> Session:
        self._last_session_id += 1
        state = _SessionState(Session(user.name, self._last_session_id, user.user_id),
                              _token_hash(token), user)
        await self._writes.commit(
            [NewSession(state.session.session_id, user.user_id, state.token_hash,
                        self._clock.time())],
            "opening a session",
            on_commit=lambda: self._register_session(state),
        )
        return state.session

    def _register_session(self, state: _SessionState) -> None:
        self._sessions_by_hash[state.token_hash] = state
        self._sessions_by_id[state.session.session_id] = state

    def live_session(self, session: Session) -> Session:
        """`session` itself while it is valid; Unauthorized once it was revoked."""
        return self._live_session(session).session

    def _live_session(self, session: Session) -> _SessionState:
        state = self._sessions_by_id.get(session.session_id)
        if state is None or state.session.user_id != session.user_id:
            raise Unauthorized("the session was revoked")
        return state

    def _actor(self, actor: Actor) -> UserState:
        user: UserState | None = None
        if isinstance(actor, Session):
            user = self._users_by_id.get(actor.user_id)
        elif isinstance(actor, str):
            user = self._users_by_key.get(validation.name_key(actor))
        if user is None:
            raise Unauthorized("unknown user")
        return user

    async def _in_hash_pool(self, fn: Callable[..., T], *args: Any) -> T:
        # scrypt takes tens of milliseconds of CPU: keep it off the event loop.
        return await asyncio.get_running_loop().run_in_executor(self._hash_pool, fn, *args)

    def _recent_general(self, count: int) -> list[Wire]:
        if count <= 0:
            return []
        now = self._clock.time()
        newest_first = list(islice(
            (message for message in reversed(self._general_recent)
             if message["expires_at"] is None or message["expires_at"] > now), count))
        newest_first.reverse()
        return newest_first

    # --- messages --------------------------------------------------------------------

    async def send(
        self,
        user: Actor,
        text: object,
        to: object = None,
        chat: object = None,
        client_msg_id: object = None,
        at: object = None,
        delay: object = None,
    ) -> Wire:
        """Post a message to `general`, to a user (`to`: opens or reuses the direct chat)
        or to a chat id (`chat`). Result: {message: Message}. With `at` (a
        future time) or `delay` (seconds) it is scheduled instead: {scheduled}."""
        self._ensure_running()
        me = self._actor(user)
        body = validation.message_text(text, self._config.max_text)
        request_id = None if client_msg_id is None else validation.client_msg_id(client_msg_id)
        if to is not None and chat is not None:
            raise InvalidParams("to", "give either to or chat, not both")
        recipient = None if to is None else validation.user_name(to, "to")
        chat_ref = GENERAL if chat is None else validation.chat_id(chat)
        if at is not None or delay is not None:
            deliver_at = self.rules.delivery_time(at, delay, self._clock.time())
            if deliver_at is not None:
                return await self.rules.schedule(me, body, recipient, chat_ref, request_id,
                                                 deliver_at)
        if request_id is None:
            wire, applied = self._prepare_message(me, body, recipient, chat_ref, None)
            await self._writes.wait(applied, "sending a message")
        else:
            wire = await self._send_once(me, body, recipient, chat_ref, request_id)
        return {"message": wire}

    async def history(
        self,
        user: Actor,
        chat: object = GENERAL,
        before: object = None,
        limit: object = DEFAULT_HISTORY_LIMIT,
    ) -> Wire:
        """Messages of a chat the user is in, oldest first: {messages, more}.
        `before` is a message id (exclusive); `more` says whether older ones exist."""
        self._ensure_running()
        me = self._actor(user)
        chat_ref = validation.chat_id(chat)
        before_id = None if before is None else validation.require_int(
            before, "before", 1, validation.ID_MAX)
        count = validation.require_int(limit, "limit", 1, validation.HISTORY_LIMIT_MAX)
        target = self._member_chat(me, chat_ref)
        messages, more = await read_store(
            self._store.message_history(target.chat_id, before_id, count), "reading history")
        # Expired rows are deleted in batches; until then they are hidden here.
        now = self._clock.time()
        return {"messages": alive(messages, now), "more": more}

    async def _send_once(
        self, me: UserState, body: str, recipient: str | None, chat_ref: str, request_id: str,
        *, parent: ParentRow | None = None,
    ) -> Wire:
        """`send` with a client_msg_id: a retry returns the first Message, never a second."""
        key = (me.user_id, request_id)
        while True:
            known = self._client_msgs.get(key)
            if known is not None:
                return known
            pending = self._pending_client_msgs.get(key)
            if pending is None:
                break
            first = await asyncio.shield(pending)
            if first is not None:
                return first
            # The first attempt ended without a message; this one tries on its own.
        marker: asyncio.Future[Wire | None] = asyncio.get_running_loop().create_future()
        marker.add_done_callback(consume_outcome)
        self._pending_client_msgs[key] = marker
        handed_over = False
        try:
            stored = await read_store(self._store.find_client_message(me.user_id, request_id),
                                      "looking up a client_msg_id")
            if stored is not None:
                self._remember_client_msg(key, stored)
                self._end_pending_client_msg(key, stored)
                return stored
            wire, applied = self._prepare_message(me, body, recipient, chat_ref, request_id,
                                                  parent=parent)
            handed_over = True
            applied.add_done_callback(lambda done: self._end_pending_client_msg(
                key, wire if not done.cancelled() and done.exception() is None else None))
            await self._writes.wait(applied, "sending a message")
            return wire
        finally:
            if not handed_over:
                self._end_pending_client_msg(key, None)

    def _end_pending_client_msg(self, key: tuple[int, str], result: Wire | None) -> None:
        marker = self._pending_client_msgs.pop(key, None)
        if marker is not None and not marker.done():
            marker.set_result(result)

    def _remember_client_msg(self, key: tuple[int, str], wire: Wire) -> None:
        self._client_msgs[key] = wire
        if len(self._client_msgs) > CLIENT_MSG_CACHE:
            self._client_msgs.popitem(last=False)  # older ones are found in the store

    async def _forget_expired_messages(self, expired: Sequence[ExpiredMessage]) -> None:
        """Drop deleted (expired) messages from the caches: client_msg_id results, and the
        newest messages of general, refilled from the store when it was full."""
        for message in expired:
            if message.client_msg_id is not None:
                self._client_msgs.pop((message.sender_id, message.client_msg_id), None)
        gone = {message.message_id for message in expired if message.chat_id == GENERAL}
        kept = [wire for wire in self._general_recent if wire["id"] not in gone]
        if len(kept) == len(self._general_recent):
            return
        # Not full means it held every stored message of general: nothing older to load.
        was_full = len(self._general_recent) == self._general_recent.maxlen
        self._general_recent.clear()
        self._general_recent.extend(kept)
        if not was_full:
            return
        oldest = kept[0]["id"] if kept else None
        older, _ = await read_store(
            self._store.message_history(GENERAL, oldest, self._history_cache_size - len(kept)),
            "refilling recent messages")
        # Messages published meanwhile went to the right end; add only older ones.
        front = self._general_recent[0]["id"] if self._general_recent else None
        for wire in reversed(alive(older, self._clock.time())):
            if len(self._general_recent) >= self._history_cache_size:
                break
            if front is None or wire["id"] < front:
                self._general_recent.appendleft(wire)
                front = wire["id"]

    async def _delete_expired_files(self, expired: Sequence[ExpiredMessage]) -> None:
        await self.files.delete_files(
            message.file_id for message in expired if message.file_id is not None)

    def add_expiry_hook(self, hook: ExpiryHook) -> None:
        """Call `hook` with the messages deleted at the end of their lifetime."""
        self.rules.add_expiry_hook(hook)

    def _prepare_message(
        self,
        me: UserState,
        body: str,
        recipient: str | None,
        chat_ref: str,
        request_id: str | None,
        *,
        file: Wire | None = None,
        parent: ParentRow | None = None,
        attach: Attach | None = None,
    ) -> tuple[Wire, asyncio.Future[None]]:
        """Check, allocate and queue a message; no await, so seqs are queued in order.
        `file` is the File object a file message carries (file.finish); `parent` the
        message a comment is on; `attach` adds changes and events to the same write.
        Every message passes here: bans, the rate limit and the lifetime apply to all."""
        now = self._clock.time()
        self.rules.admit(me, now)
        opening: _Opening | None = None
        if recipient is not None:
            chat, opening = self._direct_chat(me, recipient)
        else:
            chat = self._member_chat(me, chat_ref)
        if parent is not None:
            check_alive(parent, now)
        chat_id = chat.chat_id
        counted = self.rules.count(me, chat_id, now)
        self._last_message_id += 1
        message_id = self._last_message_id
        seq = self._next_seq()
        if parent is None:
            expires_at = message_expiry(now, self._config.message_ttl)
            parent_id = None
        else:
            expires_at = message_expiry(now, self._config.message_ttl, parent.expires_at,
                                        has_parent=True)
            parent_id = parent.message_id
        wire = message_wire(message_id=message_id, chat_id=chat_id, sender=me.name,
                            text=body, ts=now, parent_id=parent_id, file=file,
                            client_msg_id=request_id, expires_at=expires_at)
        event = EventRecord(seq, EVENT_MESSAGE, now, wire, chat_id, None, me.user_id,
                            expires_at)
        stored = NewMessage(message_id, chat_id, me.user_id, body, now, seq, parent_id,
                            None if file is None else file["id"], file, request_id, expires_at)
        changes: list[Change]
        if opening is None:
            changes = [stored, NewEvent(event)]
            events = [event]
        else:
            changes = [*opening.changes, stored, NewEvent(event)]
            events = [*opening.events, event]
        if request_id is not None:
            changes.append(RememberClientMsgId(me.user_id, request_id, message_id, now))
        if counted is not None:
            changes.append(counted)
        if attach is not None:
            attached_changes, attached_events = attach(wire)
            changes += attached_changes
            events += attached_events

        def publish() -> None:
            self._feed.publish(events)
            if chat_id == GENERAL:
                self._general_recent.append(wire)
            if request_id is not None:
                self._remember_client_msg((me.user_id, request_id), wire)
            self.rules.committed(expires_at)

        def undo() -> None:
            if opening is not None:
                opening.rollback()
            if counted is not None:
                self.rules.uncount(counted)

        applied = self._writes.submit(changes, on_commit=publish, on_failure=undo)
        # Debug, not info: every call already gets its info line (app.py); a second line
        # per message took about a third of the service's time per send.
        logger.debug("send: user=%s chat=%s message=%d", me.name, chat_id, message_id)
        return wire, applied

    # --- chats -----------------------------------------------------------------------

    def _find_chat(self, chat_ref: str) -> ChatState | None:
        chat = self._chats.get(chat_ref)
        if chat is None and chat_ref.startswith("dm:"):
            # Accept a direct chat id with names in any case or order.
            names = chat_ref[3:].split(":")
            users = [self._users_by_key.get(validation.name_key(name)) for name in names]
            if len(users) == 2 and users[0] is not None and users[1] is not None:
                chat = self._chats.get(direct_chat_id(users[0].name, users[1].name))
        return chat

    def _member_chat(self, me: UserState, chat_ref: str) -> ChatState:
        chat = self._find_chat(chat_ref)
        if chat is None:
            raise NotFound(f"no such chat: {chat_ref}")
        if not me.is_member(chat.chat_id):
            raise Forbidden(f"not a member of chat {chat.chat_id}")
        return chat

    def _direct_chat(self, me: UserState, recipient: str) -> tuple[ChatState, _Opening | None]:
        other, chat_id = direct_partner(self._users_by_key, me, recipient)
        chat = self._chats.get(chat_id)
        if chat is None:
            return self._open_direct(me, other, chat_id)
        if not me.is_member(chat_id):
            raise Forbidden(f"not a member of chat {chat_id}")
        return chat, None

    def _open_direct(
        self, me: UserState, other: UserState, chat_id: str
    ) -> tuple[ChatState, _Opening]:
        now = self._clock.time()
        chat = ChatState(chat_id, KIND_DIRECT, chat_id, None, now)
        first, second = self._next_seq(), self._next_seq()
        events = [
            EventRecord(seq, EVENT_CHAT_JOINED, now, {"chat": chat_id, "user": member.name},
                        chat_id=chat_id, actor_id=me.user_id)
            for seq, member in ((first, me), (second, other))
        ]
        # Both join at the first event, so each sees both chat.joined events.
        self._chats[chat_id] = chat
        for member in (me, other):
            member.memberships[chat_id] = [(first, None)]
            chat.members[member.user_id] = None

        def forget() -> None:
            if self._chats.get(chat_id) is chat:
                del self._chats[chat_id]
            for member in (me, other):
                member.memberships.pop(chat_id, None)

        changes: list[Change] = [
            NewChat(chat_id, KIND_DIRECT, chat_id, None, now),
            JoinChat(chat_id, me.user_id, first),
            JoinChat(chat_id, other.user_id, first),
            *(NewEvent(event) for event in events),
        ]
        logger.info("direct chat opened: chat=%s by user=%s", chat_id, me.name)
        return chat, _Opening(changes, events, forget)

    def _chat_wire(self, chat: ChatState, viewer: UserState) -> Wire:
        members = sorted((self._users_by_id[user_id] for user_id in chat.members),
                         key=lambda member: member.name_key)
        name = chat.name
        if chat.kind == KIND_DIRECT:
            # A direct chat is named after the other person, as messengers show it.
            name = next((member.name for member in members if member is not viewer),
                        viewer.name)
        owner = self._users_by_id.get(chat.owner_id) if chat.owner_id is not None else None
        return {
            "id": chat.chat_id,
            "kind": chat.kind,
            "name": name,
            "owner": owner.name if owner else None,
            "members": [member.name for member in members],
            "unread": self._feed.unread.unread_in_chat(viewer, chat.chat_id),
        }

    # --- status ----------------------------------------------------------------------

    async def status(self, session: Session | None = None) -> Wire:
        """{server: {version, uptime, users, online}, me?: {...}}.
        `online` counts distinct users with a waiting poll or a request in the last
        `online_window` seconds."""
        self._ensure_running()
        now = self._clock.monotonic()
        online = self._presence.recent(now) | self._feed.hub.parked_users.keys()
        result: Wire = {
            "server": {
                "version": __version__,
                "uptime": max(0.0, now - self._started_at),
                "users": len(self._users_by_id),
                "online": len(online),
            },
        }
        if session is not None:
            result["me"] = self._me(self._live_session(session).user)
        return result

    def _me(self, user: UserState) -> Wire:
        chats = sorted((chat_id for chat_id in user.current_chats()), key=user.joined_seq)
        return {
            "name": user.name,
            "chats": [self._chat_wire(self._chats[chat_id], user) for chat_id in chats],
            **self.rules.standing(user.user_id),
            "cursor": user.cursor,
        }

    # --- events and poll -------------------------------------------------------------

    @property
    def head(self) -> int:
        """The newest published seq."""
        return self._feed.head

    @property
    def parked_polls(self) -> int:
        """How many polls are waiting right now."""
        return len(self._feed.hub)

    async def poll(
        self,
        session: Session,
        since: object = None,
        timeout: object = DEFAULT_POLL_TIMEOUT,
        limit: object = DEFAULT_POLL_LIMIT,
        wait: object = True,
    ) -> Wire:
        """Events the user sees with seq > since (default: the user's cursor), waiting up to
        `timeout` s for one. Result: {events, next, more, unread}.
        `since` acknowledges: the user's cursor becomes max(cursor, since)."""
        self._ensure_running()
        state = self._live_session(session)
        position = None if since is None else validation.require_int(since, "since", 0)
        seconds = validation.require_number(timeout, "timeout", 0, validation.POLL_TIMEOUT_MAX)
        count = validation.require_int(limit, "limit", 1, validation.POLL_LIMIT_MAX)
        may_wait = validation.require_bool(wait, "wait")
        user = state.user
        self._presence.touch(user.user_id, self._clock.monotonic())
        state.poll_generation += 1
        generation = state.poll_generation
        self._feed.hub.release_session(session.session_id, WakeReason.SUPERSEDED)
        if position is None:
            position = user.cursor
        else:
            if position > self._feed.head:
                raise CursorAhead(self._feed.head)
            await self._acknowledge(user, position)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            events, next_position, more = await self._collect(user, position, count)
            if events or not may_wait:
                return self._poll_result(user, events, next_position, more)
            remaining = deadline - loop.time()
            if (remaining <= 0 or state.poll_generation != generation
                    or self._sessions_by_id.get(session.session_id) is not state
                    or not self._running or self._draining):
                return self._poll_result(user, [], next_position, False)
            reason = await self._park(state, remaining)
            position = next_position
            if reason is not WakeReason.EVENT:
                logger.debug("poll of session=%d ended: %s", session.session_id, reason.value)
                return self._poll_result(user, [], position, False)

    def _poll_result(self, user: UserState, events: list[Wire], next_position: int,
                     more: bool) -> Wire:
        return {
            "events": events,
            "next": next_position,
            "more": more,
            "unread": self._feed.unread.unread(user),
        }

    async def _acknowledge(self, user: UserState, since: int) -> None:
        if since <= user.cursor:
            return
        user.cursor = since
        await self._writes.commit([AdvanceCursor(user.user_id, since)], "saving a read cursor")

    async def _park(self, state: _SessionState, timeout: float) -> WakeReason:
        waiter = self._feed.hub.park(state.session.session_id, state.user.user_id, timeout)
        try:
            return await waiter.future
        finally:
            # Also on cancellation (the client went away): forget the waiter and its timer.
            self._feed.hub.discard(waiter)

    async def _collect(
        self, user: UserState, position: int, limit: int
    ) -> tuple[list[Wire], int, bool]:
        """(events, next, more) for seq > position. From memory when the window covers
        `position`; older parts come from the store. `next` is the head when nothing
        visible is left, so the client skips seqs it cannot see."""
        found: list[Wire] = []
        now = self._clock.time()
        while position < self._feed.window.floor:
            upto = self._feed.head
            older, more = await read_store(
                self._store.visible_events(user.user_id, user.memberships, position, upto,
                                           limit - len(found)),
                "reading events")
            # Expired events are deleted in batches; until then they are skipped here.
            found += [event_wire(event) for event in older
                      if event.expires_at is None or event.expires_at > now]
            if more:
                if len(found) >= limit:
                    # Nothing read (the limit was filled before the window moved past
                    # `position`): resume where this page ended.
                    return found, older[-1].seq if older else position, True
                position = older[-1].seq
                continue
            position = upto
        newer, next_position, more = self._feed.collect(user, position, limit - len(found),
                                                        now)
        return found + newer, next_position, more

    # --- writes ----------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

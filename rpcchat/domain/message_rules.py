"""The rules around messages: lifetime, the rate limit, comments, scheduled messages,
reports and bans, on top of the chat service's core (see chatcore.py).

The service calls `admit` and `count` from its one message-creation path (the path of
`send`, `comment`, file messages and scheduled deliveries), so a ban, the rate limit and
the lifetime apply to every message whatever made it. Everything here is stored, so a
restart changes nothing a user can see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from rpcchat.domain import validation
from rpcchat.domain.chatcore import ChatCore, direct_partner
from rpcchat.domain.comments import load_parent
from rpcchat.domain.feature_records import (
    SCHEDULED_CANCELLED,
    SCHEDULED_PENDING,
    SCHEDULED_SENT,
    ExpiredMessage,
    ExpiryBatch,
    ParentRow,
    RateCountSaved,
    ScheduledFinished,
    ScheduledSaved,
)
from rpcchat.domain.feature_store import load_feature_state
from rpcchat.domain.lifetime import ExpiryHook, MessageLifetime, message_expiry
from rpcchat.domain.moderation import REASON_MAX, Moderation
from rpcchat.domain.rate import RateCounter
from rpcchat.domain.records import GENERAL, Change, EventRecord, NewEvent, Wire
from rpcchat.domain.scheduler import (
    EVENT_SCHEDULED_CANCELLED,
    EVENT_SCHEDULED_CREATED,
    EVENT_SCHEDULED_SENT,
    REASON_BANNED,
    REASON_CHAT_GONE,
    REASON_NOT_MEMBER,
    REASON_RATE_LIMITED,
    ScheduledItem,
    Scheduler,
    delivery_time,
    scheduled_id,
)
from rpcchat.domain.state import UserState
from rpcchat.domain.writes import read_store
from rpcchat.errors import (
    Banned,
    Conflict,
    Forbidden,
    InvalidParams,
    NotFound,
    RateLimited,
    RpcError,
)

if TYPE_CHECKING:
    from rpcchat.domain.service import Actor

logger = logging.getLogger(__name__)

Attach = Callable[[Wire], tuple[list[Change], list[EventRecord]]]
"""Called with a new Message before it is queued: more changes and events for the same
write (a scheduled delivery marks its Scheduled sent atomically with the message)."""


class PostMessage(Protocol):
    """The service's message-creation path with what comments and deliveries need."""

    def __call__(self, me: UserState, body: str, recipient: str | None, chat_ref: str,
                 request_id: str | None, *, file: Wire | None = None,
                 parent: ParentRow | None = None, attach: Attach | None = None,
                 ) -> tuple[Wire, asyncio.Future[None]]: ...


class SendOnce(Protocol):
    """The service's idempotent path for a message with a client_msg_id."""

    async def __call__(self, me: UserState, body: str, recipient: str | None, chat_ref: str,
                       request_id: str, *, parent: ParentRow | None = None) -> Wire: ...


class MessageRules:
    def __init__(self, core: ChatCore, *, post: PostMessage, send_once: SendOnce,
                 forget_messages: Callable[[Sequence[ExpiredMessage]], Awaitable[None]]
                 ) -> None:
        """`forget_messages` drops expired messages from the service's own caches."""
        self._core = core
        self._post = post
        self._send_once = send_once
        self._forget_messages = forget_messages
        config = core.config
        self.rate = RateCounter(config.rate_limit, config.rate_period)
        self.moderation = Moderation(config.report_threshold, config.ban_duration)
        self.scheduler = Scheduler(core.clock, self._deliver)
        self.lifetime = MessageLifetime(core.store, core.clock, self._forget_expired)
        # Writes of deliveries made by `run_due` (which waits for them); None otherwise.
        self._deliveries: list[asyncio.Future[None]] | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        state = await read_store(self._core.store.read_job(load_feature_state),
                                 "loading rate counts, bans and scheduled messages")
        self.rate.load(state.rate_counts)
        self.moderation.load(state.standings)
        self.scheduler.load(state.scheduled)

    async def start(self) -> None:
        """Once the service runs: delete what expired while the server was down, deliver
        what fell due meanwhile (in order), and arm both timers."""
        await self.run_due()

    async def close(self) -> None:
        self.scheduler.close()
        await self.lifetime.close()

    async def run_due(self) -> None:
        """Deliver due scheduled messages and delete expired data, now, and wait until both
        are stored. The timers do this on their own; tests call it after moving a
        ManualClock."""
        deliveries: list[asyncio.Future[None]] = []
        self._deliveries = deliveries
        try:
            self.scheduler.run_due()
        finally:
            self._deliveries = None
        for applied in deliveries:
            try:
                await asyncio.shield(applied)
            except Exception:
                logger.warning("a scheduled delivery failed to store; it stays pending")
        await self.lifetime.run_due()

    def add_expiry_hook(self, hook: ExpiryHook) -> None:
        self.lifetime.add_hook(hook)

    # --- the message-creation path -----------------------------------------------------

    def admit(self, me: UserState, now: float) -> None:
        """Banned when the user may not post now (any chat, any kind of message)."""
        self.moderation.check_can_post(me.user_id, now)

    def count(self, me: UserState, chat_id: str, now: float) -> RateCountSaved | None:
        """RateLimited when over the limit in `general`; else counts the message there and
        returns the change that stores the count (direct and group chats are not limited)."""
        if chat_id != GENERAL or not self.rate.enabled:
            return None
        self.rate.check(me.user_id, now)
        return self.rate.record(me.user_id, now)

    def uncount(self, saved: RateCountSaved) -> None:
        self.rate.undo(saved)

    def committed(self, expires_at: float | None) -> None:
        """Something that expires at `expires_at` was stored: the expiry timer must know."""
        self.lifetime.arm(expires_at)

    def standing(self, user_id: int) -> Wire:
        """warnings, banned_until and rate of `status.me`."""
        now = self._core.clock.time()
        return {
            "warnings": self.moderation.warnings(user_id, now),
            "banned_until": self.moderation.banned_until(user_id, now),
            "rate": self.rate.status(user_id, now),
        }

    # --- comments --------------------------------------------------------------------

    async def comment(self, actor: Actor, message_id: object, text: object,
                      client_msg_id: object = None) -> Wire:
        """A message whose parent is `message_id`, in the parent's chat. Result:
        {message}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        parent_id = validation.require_int(message_id, "message_id", 1, validation.ID_MAX)
        body = validation.message_text(text, core.config.max_text)
        request_id = validation.client_msg_id(client_msg_id)
        parent = await load_parent(core.store, parent_id, core.clock.time())
        core.member_chat(me, parent.chat_id)  # Forbidden for non-members, before anything
        if request_id is None:
            wire, applied = self._post(me, body, None, parent.chat_id, None, parent=parent)
            await core.writes.wait(applied, "posting a comment")
        else:
            wire = await self._send_once(me, body, None, parent.chat_id, request_id,
                                         parent=parent)
        return {"message": wire}

    # --- scheduled messages ----------------------------------------------------------

    @staticmethod
    def delivery_time(at: object, delay: object, now: float) -> float | None:
        return delivery_time(at, delay, now)

    async def schedule(self, me: UserState, body: str, recipient: str | None, chat_ref: str,
                       request_id: str | None, deliver_at: float) -> Wire:
        """`send` with `at`/`delay`: a pending Scheduled. Result: {scheduled}."""
        core = self._core
        if request_id is not None:
            known = await self._scheduled_before(me, request_id)
            if known is not None:
                return {"scheduled": known.wire()}
        now = core.clock.time()
        self.moderation.check_can_post(me.user_id, now)
        chat_id, to_user_id = self._destination(me, recipient, chat_ref)
        item = self.scheduler.create(me.user_id, chat_id, to_user_id, body, deliver_at, now,
                                     request_id)
        created = item.wire()
        event = EventRecord(core.next_seq(), EVENT_SCHEDULED_CREATED, now, created,
                            target_id=me.user_id,
                            expires_at=message_expiry(deliver_at, core.config.message_ttl))
        changes: list[Change] = [
            ScheduledSaved(item.scheduled_id, item.number, me.user_id, chat_id, to_user_id,
                           body, deliver_at, now, request_id),
            NewEvent(event),
        ]

        def publish() -> None:
            core.feed().publish([event])
            self.scheduler.queue(item)
            self.committed(event.expires_at)

        item.stored = core.writes.submit(changes, on_commit=publish,
                                         on_failure=lambda: self.scheduler.discard(item))
        await core.writes.wait(item.stored, "scheduling a message")
        logger.info("scheduled: user=%s chat=%s id=%s at %.3f", me.name, chat_id,
                    item.scheduled_id, deliver_at)
        return {"scheduled": created}

    async def _scheduled_before(self, me: UserState, request_id: str) -> ScheduledItem | None:
        """The scheduled message a retry with this client_msg_id already made, if any."""
        known = self.scheduler.by_client_msg(me.user_id, request_id)
        if known is None:
            return None
        if known.stored is not None and not known.stored.done():
            try:
                await asyncio.shield(known.stored)
            except RpcError:
                return None  # the first attempt failed and was forgotten: this one tries
        return known

    def _destination(self, me: UserState, recipient: str | None,
                     chat_ref: str) -> tuple[str, int | None]:
        """(chat id, recipient id) of a scheduled message; checked now and at delivery.
        A direct chat is only opened when the message is delivered."""
        core = self._core
        if recipient is None:
            return core.member_chat(me, chat_ref).chat_id, None
        other, chat_id = direct_partner(core.users_by_key, me, recipient)
        if chat_id in core.chats and not me.is_member(chat_id):
            raise Forbidden(f"not a member of chat {chat_id}")
        return chat_id, other.user_id

    async def scheduled_list(self, actor: Actor) -> Wire:
        """The caller's pending scheduled messages, soonest first."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        return {"scheduled": [item.wire() for item in self.scheduler.pending_of(me.user_id)]}

    async def scheduled_cancel(self, actor: Actor, item_id: object) -> Wire:
        """Cancel one of the caller's pending scheduled messages. Someone else's id is
        NotFound, as an unknown one (ids are random; existence is not revealed)."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        item = self.scheduler.get(scheduled_id(item_id))
        if item is None or item.user_id != me.user_id:
            raise NotFound("no such scheduled message")
        if item.status != SCHEDULED_PENDING:
            raise Conflict(f"the scheduled message was already {item.status}",
                           {"status": item.status, "message_id": item.message_id})
        cancelled, applied = self._cancel(item, core.clock.time(), None)
        await core.writes.wait(applied, "cancelling a scheduled message")
        logger.info("scheduled message cancelled: user=%s id=%s", me.name, item.scheduled_id)
        return {"scheduled": cancelled}

    def _cancel(self, item: ScheduledItem, now: float,
                reason: str | None) -> tuple[Wire, asyncio.Future[None]]:
        core = self._core
        expires_at = message_expiry(now, core.config.message_ttl)
        self.scheduler.finish(item, SCHEDULED_CANCELLED, reason=reason, expires_at=expires_at)
        cancelled = item.wire()
        event = EventRecord(core.next_seq(), EVENT_SCHEDULED_CANCELLED, now, cancelled,
                            target_id=item.user_id, expires_at=expires_at)

        def publish() -> None:
            core.feed().publish([event])
            self.committed(expires_at)

        try:
            applied = core.writes.submit(
                [ScheduledFinished(item.scheduled_id, SCHEDULED_CANCELLED, None, reason, now,
                                   expires_at), NewEvent(event)],
                on_commit=publish, on_failure=lambda: self.scheduler.reopen(item))
        except RpcError:
            self.scheduler.reopen(item)
            raise
        return cancelled, applied

    def _deliver(self, item: ScheduledItem, now: float) -> None:
        """Post a due scheduled message as a normal message (new id, ts = now), checking
        again that its sender may post there; if not, cancel it with the reason."""
        core = self._core
        sender = core.users_by_id[item.user_id]
        recipient = (core.users_by_id[item.to_user_id].name
                     if item.to_user_id is not None else None)

        def mark_sent(message: Wire) -> tuple[list[Change], list[EventRecord]]:
            expires_at = message["expires_at"]
            self.scheduler.finish(item, SCHEDULED_SENT, message_id=message["id"],
                                  expires_at=expires_at)
            event = EventRecord(core.next_seq(), EVENT_SCHEDULED_SENT, now, item.wire(),
                                target_id=item.user_id, expires_at=expires_at)
            return ([ScheduledFinished(item.scheduled_id, SCHEDULED_SENT, message["id"], None,
                                       now, expires_at)], [event])

        try:
            _, applied = self._post(sender, item.text, recipient, item.chat_id, None,
                                    attach=mark_sent)
        except (Banned, RateLimited, Forbidden, NotFound) as refused:
            reason = _refusal_reason(refused)
            logger.info("scheduled message %s of user=%s not delivered: %s",
                        item.scheduled_id, sender.name, reason)
            _, applied = self._cancel(item, now, reason)
        else:
            logger.info("scheduled message %s of user=%s delivered: chat=%s", item.scheduled_id,
                        sender.name, item.chat_id)
            applied.add_done_callback(lambda done: self._delivery_stored(item, done))
        if self._deliveries is not None:
            self._deliveries.append(applied)

    def _delivery_stored(self, item: ScheduledItem, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            logger.error("scheduled message %s could not be stored as sent; retrying",
                         item.scheduled_id)
            self.scheduler.reopen(item)

    # --- reports and bans ------------------------------------------------------------

    async def report(self, actor: Actor, user: object, reason: object = None) -> Wire:
        """Report `user`. Result: {user, warnings, banned_until}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        name = validation.user_name(user, "user")
        note = _report_reason(reason)
        other = core.users_by_key.get(validation.name_key(name))
        if other is None:
            raise NotFound(f"no such user: {name}")
        if other is me:
            raise InvalidParams("user", "you cannot report yourself")
        now = core.clock.time()
        outcome = self.moderation.report(me.user_id, other.user_id, note, now)
        if outcome.changes:
            changes: list[Change] = list(outcome.changes)
            events: list[EventRecord] = []
            if outcome.event is not None:
                kind, data = outcome.event
                events.append(EventRecord(core.next_seq(), kind, now, data,
                                          target_id=other.user_id))
                changes += [NewEvent(event) for event in events]
            applied = core.writes.submit(
                changes, on_commit=lambda: core.feed().publish(events),
                on_failure=lambda: self.moderation.undo(other.user_id, me.user_id, outcome))
            await core.writes.wait(applied, "filing a report")
        return {"user": other.name, "warnings": outcome.warnings,
                "banned_until": outcome.banned_until}

    # --- expiry ----------------------------------------------------------------------

    async def _forget_expired(self, batch: ExpiryBatch) -> None:
        by_chat: dict[str, dict[int, set[int]]] = {}
        for message in batch.messages:
            by_chat.setdefault(message.chat_id, {}).setdefault(message.sender_id, set()).add(
                message.seq)
        unread = self._core.feed().unread
        for chat_id, by_sender in by_chat.items():
            unread.forget(chat_id, by_sender)
        self.scheduler.drop(batch.scheduled_ids)
        if batch.messages:
            await self._forget_messages(batch.messages)


def _refusal_reason(error: RpcError) -> str:
    if isinstance(error, Banned):
        return REASON_BANNED
    if isinstance(error, RateLimited):
        return REASON_RATE_LIMITED
    if isinstance(error, Forbidden):
        return REASON_NOT_MEMBER
    return REASON_CHAT_GONE


def _report_reason(value: object) -> str | None:
    if value is None:
        return None
    text = validation.require_str(value, "reason")
    if len(text) > REASON_MAX:
        raise InvalidParams("reason", f"must be at most {REASON_MAX} characters")
    return text or None

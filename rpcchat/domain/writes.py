"""The write path between the service and its Store.

A write is queued to the store at once (no await between allocating its seqs and
queueing it, so the store receives writes in seq order). When its commit is reported,
its in-memory effect runs; effects run strictly in submission order, whatever order
commits are reported in, so events are always published in seq order. The future a
caller awaits resolves only after the effect ran: when a call returns, its result is both
durable and visible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from rpcchat.domain.records import Change
from rpcchat.domain.store import Store
from rpcchat.errors import InternalError, RpcError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Effect = Callable[[], None]


class _CommitOrder:
    """Runs post-commit effects in submission order."""

    def __init__(self) -> None:
        self._issued = 0
        self._next = 0
        self._ready: dict[int, tuple[Effect | None, asyncio.Future[None] | None]] = {}

    def ticket(self) -> int:
        self._issued += 1
        return self._issued - 1

    def idle(self) -> bool:
        """No earlier write is still waiting for its commit."""
        return self._next == self._issued

    def done(
        self, ticket: int, effect: Effect | None, applied: asyncio.Future[None] | None
    ) -> None:
        """Ticket `ticket` is settled; run its effect (and resolve `applied`) in turn."""
        if ticket == self._next and not self._ready:  # the usual case: its turn already
            self._next += 1
            _run(effect, applied)
            return
        self._ready[ticket] = (effect, applied)
        while self._next in self._ready:
            effect, applied = self._ready.pop(self._next)
            self._next += 1
            _run(effect, applied)


def _run(effect: Effect | None, applied: asyncio.Future[None] | None) -> None:
    try:
        if effect is not None:
            effect()
    except Exception as exc:
        logger.exception("applying a committed change in memory failed")
        _fail(applied, InternalError("applying a change failed"), exc)
    else:
        if applied is not None and not applied.done():
            applied.set_result(None)


def _fail(future: asyncio.Future[None] | None, error: Exception, cause: BaseException) -> None:
    if future is not None and not future.done():
        error.__cause__ = cause
        future.add_done_callback(consume_outcome)  # nobody may be waiting any more
        future.set_exception(error)


def consume_outcome(future: asyncio.Future[Any]) -> None:
    # A caller that went away never awaits its write; the error is logged already.
    if not future.cancelled():
        future.exception()


class WritePipeline:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._order = _CommitOrder()

    def submit(
        self,
        changes: Sequence[Change],
        on_commit: Effect | None = None,
        on_failure: Effect | None = None,
    ) -> asyncio.Future[None]:
        """Queue a write; the future resolves after the commit and after `on_commit` ran.
        On failure `on_failure` undoes whatever the caller changed in memory up front."""
        try:
            stored = self._store.submit(changes)
        except Exception as exc:
            if on_failure is not None:
                on_failure()
            logger.error("storage refused a write: %r", exc)
            raise InternalError("storage is unavailable") from exc
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if stored.done() and not stored.cancelled() and stored.exception() is None \
                and self._order.idle():
            # Acknowledged at once (journaled) with nothing earlier pending: apply now.
            self._order.done(self._order.ticket(), on_commit, applied)
            return applied
        ticket = self._order.ticket()

        def settle(done: asyncio.Future[None]) -> None:
            error = (asyncio.CancelledError("storage write was cancelled") if done.cancelled()
                     else done.exception())
            if error is None:
                self._order.done(ticket, on_commit, applied)
                return
            logger.error("write failed: %r", error)
            if on_failure is not None:
                try:
                    on_failure()
                except Exception:
                    logger.exception("undoing a failed write in memory failed")
            _fail(applied, InternalError("storage failure"), error)
            self._order.done(ticket, None, None)

        if stored.done():  # acknowledged at once (journaled): no round through the loop
            settle(stored)
        else:
            stored.add_done_callback(settle)
        return applied

    async def wait(self, applied: asyncio.Future[None], what: str) -> None:
        # shield: a caller that goes away must not stop a write that is already queued.
        try:
            if applied.done():
                applied.result()  # done already: no shield, no suspension
                return
            await asyncio.shield(applied)
        except RpcError as exc:
            logger.error("storage failed while %s", what)
            raise InternalError(f"storage failed while {what}") from exc

    async def commit(
        self, changes: Sequence[Change], what: str, on_commit: Effect | None = None
    ) -> None:
        await self.wait(self.submit(changes, on_commit), what)


async def read_store(reading: Awaitable[T], what: str) -> T:
    """Await a store read; a storage failure becomes InternalError (logged here)."""
    try:
        return await reading
    except RpcError:
        raise
    except Exception as exc:
        logger.exception("storage failed while %s", what)
        raise InternalError(f"storage failed while {what}") from exc

"""Running the first step of a coroutine at once, on behalf of a task that is waiting for
something else, and letting that task finish the coroutine if it has to wait: what Python
3.12's eager tasks do, applied to one long-lived task.

The server uses it to answer a request inside the protocol callback that received it: most
handlers answer without waiting, and then the request costs no task wake-up and no extra
turn of the event loop. The first step runs with the connection task as the current task and
in that task's context, so a handler cannot tell it apart from running in the task itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Coroutine
from typing import Any, Awaitable, Callable, Generator, TypeVar

__all__ = ["Pending", "available", "finish", "start"]

T = TypeVar("T")

# Private asyncio hooks (stable since 3.7; 3.12's eager tasks use them too). Without them
# nothing runs eagerly and every coroutine is simply awaited by its task.
_enter_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_enter_task", None)
_leave_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    asyncio.tasks, "_leave_task", None)


def available(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a first step can run now: the hooks exist and no task is running (we are in
    a plain loop callback, such as a protocol's data_received)."""
    return _enter_task is not None and asyncio.current_task(loop) is None


class Pending:
    """A first step that did not give a result: the coroutine suspended on `waiting_on` (a
    future, or None for a bare yield), or the exception it raised, or an awaitable that is
    not a coroutine and so has no first step. The task takes it over with `finish`."""

    __slots__ = ("coroutine", "waiting_on", "error", "unstarted")

    def __init__(self, coroutine: Coroutine[Any, Any, Any] | None = None,
                 waiting_on: Any = None, error: BaseException | None = None,
                 unstarted: Awaitable[Any] | None = None) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on
        self.error = error
        self.unstarted = unstarted


def start(awaitable: Awaitable[Any], loop: asyncio.AbstractEventLoop,
          task: asyncio.Task[Any], context: contextvars.Context) -> Any:
    """Run the first step of `awaitable` now, as `task` and in `context` (the task's own).
    Returns its result when that step finished it, else a Pending. Call only when
    `available(loop)`."""
    assert _enter_task is not None and _leave_task is not None
    if type(awaitable) is not types.CoroutineType and not isinstance(awaitable, Coroutine):
        return Pending(unstarted=awaitable)
    coroutine: Coroutine[Any, Any, Any] = awaitable
    _enter_task(loop, task)
    try:
        waiting_on = context.run(coroutine.send, None)
    except StopIteration as done:
        return done.value
    except BaseException as exc:       # the coroutine's own failure, for the task to handle
        return Pending(error=exc)
    finally:
        _leave_task(loop, task)
    return Pending(coroutine, waiting_on)


def finish(pending: Pending, thrown: BaseException | None = None) -> Awaitable[Any]:
    """An awaitable that gives what the started awaitable gives, its result or exception,
    waiting inside the awaiting task for what it still waits on. `thrown` (a cancellation
    that reached the task before it took the coroutine over) is raised in the coroutine
    where it waits."""
    if pending.error is not None:
        return _raise(pending.error)
    if pending.unstarted is not None:
        return pending.unstarted
    assert pending.coroutine is not None
    if thrown is not None and isinstance(pending.waiting_on, asyncio.Future):
        pending.waiting_on.cancel()    # as Task.cancel does with what its coroutine awaits
    return _resume(pending.coroutine, pending.waiting_on, thrown)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], waiting_on: Any,
            thrown: BaseException | None) -> Generator[Any, Any, T]:
    # The task first waits on what the first step yielded; then `yield from` hands it the
    # coroutine itself. Until then, what the task throws in (its cancellation) is passed on.
    while True:
        if thrown is not None:
            try:
                waiting_on = coroutine.throw(thrown)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            thrown = None
        try:
            yield waiting_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:
            thrown = exc
            continue
        return (yield from coroutine)  # type: ignore[no-any-return]


async def _raise(error: BaseException) -> Any:
    raise error

"""rpcchat.transport.eager: a coroutine's first step run at once on behalf of a waiting task,
the rest finished by that task."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Awaitable, Callable

import pytest

from rpcchat.transport import eager

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


class Host:
    """A task parked on a future, and a way to run first steps on its behalf from a plain
    loop callback (as data_received does)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.context = contextvars.copy_context()
        self.wake: asyncio.Future[Awaitable[Any] | None] = loop.create_future()
        self.task = loop.create_task(self._main(), context=self.context)
        self.outcome: asyncio.Future[Any] = loop.create_future()

    async def _main(self) -> None:
        awaitable = await self.wake
        if awaitable is None:
            return
        try:
            self.outcome.set_result(await awaitable)
        except BaseException as exc:
            self.outcome.set_exception(exc)
            raise

    async def start(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Run make()'s first step from a loop callback; returns what `eager.start` gave."""
        started: asyncio.Future[Any] = self.loop.create_future()

        def callback() -> None:
            assert eager.available(self.loop)
            started.set_result(eager.start(make(), self.loop, self.task, self.context))

        self.loop.call_soon(callback)
        return await started

    def hand_over(self, pending: eager.Pending) -> None:
        self.wake.set_result(eager.finish(pending))


async def test_a_coroutine_that_does_not_wait_finishes_in_its_first_step() -> None:
    host = Host()

    async def quick() -> tuple[bool, str]:
        seen.set("set by quick")
        return asyncio.current_task() is host.task, seen.get()

    assert await host.start(quick) == (True, "set by quick")
    # The first step ran in the task's own context.
    assert host.context.run(seen.get) == "set by quick"
    host.wake.set_result(None)
    await host.task


async def test_a_coroutine_that_waits_is_finished_by_the_task() -> None:
    host = Host()
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow() -> str:
        before = asyncio.current_task()
        value = await gate
        assert asyncio.current_task() is before is host.task
        return f"got {value}"

    pending = await host.start(slow)
    assert isinstance(pending, eager.Pending)
    host.hand_over(pending)
    await asyncio.sleep(0)
    assert not host.outcome.done()
    gate.set_result("it")
    assert await host.outcome == "got it"


async def test_an_exception_of_the_first_step_is_raised_by_finish() -> None:
    host = Host()

    async def broken() -> None:
        raise KeyError("boom")

    pending = await host.start(broken)
    assert isinstance(pending, eager.Pending) and isinstance(pending.error, KeyError)
    host.hand_over(pending)
    with pytest.raises(KeyError):
        await host.outcome


async def test_cancelling_the_task_reaches_the_coroutine_where_it_waits() -> None:
    host = Host()
    cleaned_up = asyncio.Event()

    async def parked() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            cleaned_up.set()
            raise

    pending = await host.start(parked)
    host.hand_over(pending)
    await asyncio.sleep(0)
    host.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await host.task
    assert cleaned_up.is_set()
    assert isinstance(host.outcome.exception(), asyncio.CancelledError)


async def test_a_cancellation_before_the_take_over_is_thrown_in_first() -> None:
    loop = asyncio.get_running_loop()
    task = loop.create_task(asyncio.sleep(10))
    waited_on: asyncio.Future[None] = loop.create_future()
    log: list[str] = []

    async def parked() -> str:
        try:
            await waited_on
        except asyncio.CancelledError:
            log.append("cancelled")
            return "cleaned up"
        return "not reached"

    context = contextvars.copy_context()
    started: asyncio.Future[Any] = loop.create_future()
    loop.call_soon(lambda: started.set_result(eager.start(parked(), loop, task, context)))
    pending = await started
    result = await eager.finish(pending, asyncio.CancelledError())
    assert (result, log, waited_on.cancelled()) == ("cleaned up", ["cancelled"], True)
    task.cancel()


async def test_an_awaitable_that_is_not_a_coroutine_is_kept_whole() -> None:
    host = Host()
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    pending = await host.start(lambda: future)
    assert isinstance(pending, eager.Pending) and pending.unstarted is future
    host.hand_over(pending)
    future.set_result("done")
    assert await host.outcome == "done"


async def test_not_available_inside_a_task() -> None:
    assert not eager.available(asyncio.get_running_loop())

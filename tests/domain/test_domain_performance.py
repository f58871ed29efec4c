"""Fan-out, memory per parked poll, send throughput and how long the loop is blocked.

Bounds are generous so slow CI stays green; the printed numbers are the measurements
(run with `-s` to see them).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from domain_helpers import OpenService, texts, until_parked

from rpcchat.domain import ChatService, Session


async def _sessions(service: ChatService, count: int) -> list[Session]:
    results = await asyncio.gather(
        *(service.connect(f"user{n}", "secret") for n in range(count)))
    return [service.authenticate(result["token"]) for result in results]


class LoopLag:
    """Largest gap between ticks of a 1 ms heartbeat: how long the loop was blocked."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
async def crowd(open_service: OpenService) -> AsyncIterator[tuple[ChatService, list[Session]]]:
    service = await open_service()
    yield service, await _sessions(service, 2000)


async def test_fan_out_to_2000_parked_polls(
    crowd: tuple[ChatService, list[Session]],
) -> None:
    service, sessions = crowd
    sender = sessions[0]
    since = service.head
    # Everyone acknowledges first, so parking itself needs no write.
    await asyncio.gather(*(service.poll(s, since=since, wait=False) for s in sessions))
    waiting = [asyncio.create_task(service.poll(s, since=since, timeout=30))
               for s in sessions]
    await until_parked(service, len(sessions))
    started = time.perf_counter()
    await service.send(sender, "to everyone")
    results = await asyncio.gather(*waiting)
    elapsed = time.perf_counter() - started
    print(f"\nfan-out: {len(sessions)} parked polls answered in {elapsed * 1000:.1f} ms")
    assert all(texts(r["events"]) == ["to everyone"] for r in results)
    assert elapsed < 2.0


async def test_memory_per_parked_poll(crowd: tuple[ChatService, list[Session]]) -> None:
    service, sessions = crowd
    since = service.head
    await asyncio.gather(*(service.poll(s, since=since, wait=False) for s in sessions))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    waiting = [asyncio.create_task(service.poll(s, since=since, timeout=30))
               for s in sessions]
    await until_parked(service, len(sessions))
    gc.collect()
    per_poll = (tracemalloc.get_traced_memory()[0] - before) / len(sessions)
    tracemalloc.stop()
    print(f"\nmemory: {per_poll:.0f} bytes per parked poll (domain side, task included)")
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert service.parked_polls == 0
    assert per_poll < 12 * 1024


async def test_send_throughput_uses_group_commit(open_service: OpenService) -> None:
    service = await open_service()
    sender = (await _sessions(service, 1))[0]
    store = service._store
    before = store.stats()  # type: ignore[attr-defined]
    count = 2000
    with LoopLag() as lag:
        started = time.perf_counter()
        await asyncio.gather(*(service.send(sender, f"m{n}") for n in range(count)))
        elapsed = time.perf_counter() - started
    after = store.stats()  # type: ignore[attr-defined]
    transactions = after["transactions"] - before["transactions"]
    print(f"\nsend: {count} concurrent sends in {elapsed * 1000:.0f} ms "
          f"({count / elapsed:.0f}/s), {transactions} transactions, "
          f"worst loop stall {lag.worst * 1000:.1f} ms")
    assert transactions < count / 4  # writes were grouped
    assert len((await service.history(sender, limit=200))["messages"]) == 200


async def test_storage_never_blocks_the_loop(open_service: OpenService) -> None:
    """Time spent inside Store.submit (on the loop) for many writes: a journal append and
    a queue put each."""
    service = await open_service()
    sender = (await _sessions(service, 1))[0]
    store = service._store
    original = store.submit
    spent: list[float] = []

    def timed_submit(changes: object) -> object:
        started = time.perf_counter()
        try:
            return original(changes)  # type: ignore[arg-type]
        finally:
            spent.append(time.perf_counter() - started)

    store.submit = timed_submit  # type: ignore[method-assign,assignment]
    await asyncio.gather(*(service.send(sender, f"m{n}") for n in range(1000)))
    store.submit = original  # type: ignore[method-assign]
    worst, total = max(spent), sum(spent)
    print(f"\nstore.submit on the loop: worst {worst * 1e6:.0f} us, "
          f"total {total * 1000:.1f} ms for {len(spent)} writes")
    assert worst < 0.05

"""The write pipeline: a write the store acknowledges at once completes in the same loop
turn (a journaled send needs no round through the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from rpcchat.domain.records import Change, NewChat
from rpcchat.domain.writes import WritePipeline
from rpcchat.errors import InternalError


class InstantStore:
    """Acknowledges every write at once, as the journaled SqliteStore does."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.written: list[Sequence[Change]] = []

    def submit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is None:
            self.written.append(changes)
            future.set_result(None)
        else:
            future.set_exception(self.error)
        return future


CHANGE = [NewChat("c", "group", "c", None, 0.0)]


async def test_an_acknowledged_write_completes_without_a_loop_turn() -> None:
    store = InstantStore()
    pipeline = WritePipeline(store)  # type: ignore[arg-type]
    effects: list[str] = []
    turned: list[bool] = []
    asyncio.get_running_loop().call_soon(turned.append, True)
    await pipeline.commit(CHANGE, "testing", on_commit=lambda: effects.append("applied"))
    assert effects == ["applied"] and store.written == [CHANGE]
    assert turned == []  # the loop did not run in between
    await asyncio.sleep(0)
    assert turned == [True]


async def test_a_failed_write_is_undone_and_reported() -> None:
    pipeline = WritePipeline(InstantStore(OSError("disk full")))  # type: ignore[arg-type]
    undone: list[bool] = []
    applied = pipeline.submit(CHANGE, on_commit=lambda: undone.append(False),
                              on_failure=lambda: undone.append(True))
    with pytest.raises(InternalError):
        await pipeline.wait(applied, "testing")
    assert undone == [True]

"""Helpers shared by the domain tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from rpcchat.domain import ChatService, ScryptHasher, Session

# Cheap enough for tests; production keeps ScryptHasher's defaults.
CHEAP_HASHER = ScryptHasher(n=2, r=1, p=1)

OpenService = Callable[..., Awaitable[ChatService]]
"""`open_service(**config)`: start a ChatService on the test's data dir."""


async def login(service: ChatService, name: str, password: str = "secret") -> Session:
    result = await service.connect(name, password)
    return service.authenticate(result["token"])


def texts(events: list[dict[str, Any]]) -> list[str]:
    """The texts of the `message` events, in order."""
    return [event["data"]["text"] for event in events if event["type"] == "message"]


async def until_parked(service: ChatService, count: int, within: float = 5.0) -> None:
    """Yield to the loop until `count` polls are waiting (a condition, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while service.parked_polls < count:
        if loop.time() > deadline:
            raise AssertionError(f"{service.parked_polls} polls parked, expected {count}")
        await asyncio.sleep(0)

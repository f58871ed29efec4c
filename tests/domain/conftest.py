"""Fixtures for the chat domain: a real SQLite store in tmp_path, a manual clock and a
password hasher cheap enough for tests (production keeps ScryptHasher's defaults)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rpcchat.clock import ManualClock
from rpcchat.config import ServerConfig
from domain_helpers import CHEAP_HASHER, OpenService

from rpcchat.domain import ChatService, SqliteStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def open_service(data_dir: Path, clock: ManualClock) -> AsyncIterator[OpenService]:
    """Start a ChatService on `data_dir`; call again (after closing) to reopen it."""
    started: list[ChatService] = []

    async def opener(*, event_window: int = 10_000, **config: Any) -> ChatService:
        # These tests are about other rules; the rate limit has its own (tests/features).
        config.setdefault("rate_limit", 0)
        settings = ServerConfig(data_dir=data_dir, **config)
        service = ChatService(SqliteStore(data_dir), settings, clock,
                              password_hasher=CHEAP_HASHER, event_window=event_window)
        await service.start()
        started.append(service)
        return service

    yield opener
    for service in started:
        await service.close()


@pytest.fixture
async def service(open_service: OpenService) -> ChatService:
    return await open_service()

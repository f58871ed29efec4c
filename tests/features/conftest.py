"""Fixtures for message lifetime, the rate limit, comments, scheduled messages, reports and
bans: the real server on a real socket, on a ManualClock that tests move by hand, with a
restart on the same data dir.

    async def test_x(chat: FeatureChat) -> None:
        server = await chat.start(message_ttl=10)
        alice, bob = await chat.users("alice", "bob")
        chat.clock.advance(11)
        await chat.run_due()            # what the timers would do at this time
        server = await chat.restart()   # same data dir, same settings
"""

from __future__ import annotations

from pathlib import Path

import pytest

from features_helpers import FeatureChat
from rpc_testing import ClientFactory, ServerFactory
from rpcchat.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    # A period boundary of the rate limit tests (3600 s) falls 2800 s after this start.
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def chat(running_server: ServerFactory, rpc_client: ClientFactory, clock: ManualClock,
         tmp_path: Path) -> FeatureChat:
    return FeatureChat(running_server, rpc_client, clock, tmp_path / "data")

"""Fixtures of the robustness tests: the real server with short HTTP timeouts (so a request
the server waits for cannot stall a test), a populated chat world for the JSON-RPC fuzzer,
and a guard that fails any test during which the server logged an error (a traceback in the
log means a bug escaped, even when the client saw a clean answer)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from robustness_http import FUZZ_LIMITS
from robustness_rpc import RPC_LIMITS, World, build_world
from rpc_testing import CHEAP_HASHER, ClientFactory, ServerFactory
from rpcchat.app import ChatServer


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger="rpcchat")
    yield
    errors = [f"{record.name}: {record.getMessage()}" for record in caplog.records
              if record.levelno >= logging.ERROR and record.name.startswith("rpcchat")]
    assert not errors, "the server logged errors:\n" + "\n".join(errors[:20])


@pytest.fixture
async def fuzz_server(running_server: ServerFactory) -> ChatServer:
    """A server for raw HTTP fuzzing: every timeout 0.5 s."""
    return await running_server(password_hasher=CHEAP_HASHER, rate_limit=0, http=FUZZ_LIMITS)


@pytest.fixture
async def rpc_server(running_server: ServerFactory) -> ChatServer:
    """A server for JSON-RPC fuzzing: short head/body timeouts, keep-alive long enough that a
    client's pooled connection is never closed under it, no rate limit."""
    return await running_server(password_hasher=CHEAP_HASHER, rate_limit=0, http=RPC_LIMITS)


@pytest.fixture
async def world(rpc_server: ChatServer, rpc_client: ClientFactory) -> World:
    """alice (owner of a group with bob), bob and carol, with a message, a pending scheduled
    message, an open upload, a posted file and a join link to fuzz against."""
    return await build_world(rpc_server, rpc_client)

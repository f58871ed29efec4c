"""The application: HTTP routes, the JSON-RPC dispatcher and the chat service, wired together."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sqlite3

from rpcchat.clock import Clock, SystemClock
from rpcchat.config import ServerConfig
from rpcchat.domain.passwords import PasswordHasher
from rpcchat.domain.service import ChatService
from rpcchat.domain.sqlite_store import SqliteStore, StoreUnavailable
from rpcchat.jsonrpc.dispatcher import DispatchResult, Dispatcher
from rpcchat.jsonrpc.registry import Registry
from rpcchat.methods import register_all
from rpcchat.methods.auth import ServiceAuthenticator
from rpcchat.transport.messages import Request, Response, Route
from rpcchat.transport.server import HttpServer

log = logging.getLogger(__name__)

JSON = "application/json"
HEALTH_BODY = json.dumps({"status": "ok"}).encode()
# A method name logged as it is; any other name (one a client made up) is logged quoted,
# escaped and cut, so that it can neither forge nor flood log lines.
PLAIN_METHOD_NAME = re.compile(r"[\w.-]{1,64}")
LOGGED_NAME_CHARS = 64


class StartupError(Exception):
    """The server could not start; the message says why, for the person starting it."""


class ChatServer:
    """One running rpcchat: storage, chat service, dispatcher and HTTP server."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None, *,
                 password_hasher: PasswordHasher | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        # password_hasher: None keeps the production scrypt cost; tests pass a cheap one.
        self.service = ChatService(SqliteStore(config.data_dir), config, self.clock,
                                   password_hasher=password_hasher)
        registry = Registry()
        register_all(registry, self.service, config)
        self.dispatcher = Dispatcher(registry, ServiceAuthenticator(self.service), self.clock)
        routes = [
            Route("/rpc", frozenset({"POST"}), self.handle_rpc, config.http.max_body),
            Route("/health", frozenset({"GET"}), self.handle_health),
        ]
        self.http = HttpServer(routes, config.http, self.clock)

    @property
    def port(self) -> int:
        return self.http.port

    async def start(self) -> None:
        """Open storage and listen. StartupError says why when either is impossible (the
        data directory in use, the port taken, ...); nothing is left running then."""
        try:
            await self.service.start()
        except (OSError, StoreUnavailable, sqlite3.Error) as exc:
            raise StartupError(f"cannot open the data directory {self.config.data_dir}: "
                               f"{exc}") from exc
        try:
            await self.http.start(self.config.host, self.config.port)
        except BaseException as exc:
            await self.service.close()
            if isinstance(exc, OSError):
                raise StartupError(f"cannot listen on {self.config.host}:{self.config.port}: "
                                   f"{exc.strerror or exc}") from exc
            raise
        log.info("listening on http://%s:%d (data in %s)",
                 self.config.host, self.port, self.config.data_dir)

    async def close(self) -> None:
        """Answer parked polls, stop accepting, let in-flight requests finish (bounded),
        then flush storage."""
        self.service.stop_waiting()
        await self.http.close()
        await self.service.close()
        log.info("stopped")

    async def handle_rpc(self, request: Request) -> Response:
        logging_calls = log.isEnabledFor(logging.INFO)
        peer = request.peer
        dispatching = self.dispatcher.dispatch(request.body, request.header("authorization"),
                                               record=logging_calls)
        del request         # a call may wait long (a parked poll): keep only what is used
        result = await dispatching
        if logging_calls:
            log_calls(result, peer)
        if result.body is None:
            return Response(204)
        return Response(200, result.body, JSON)

    async def handle_health(self, request: Request) -> Response:
        return Response(200, HEALTH_BODY, JSON)


def log_calls(result: DispatchResult, peer: str) -> None:
    """One info line per call: method, user, outcome, duration."""
    if not log.isEnabledFor(logging.INFO):
        return
    for call in result.calls:
        log.info("rpc %s user=%s %s %.1fms peer=%s", loggable_method(call.method),
                 call.user or "-", call.outcome, call.duration_ms, peer)


def loggable_method(name: str | None) -> str:
    if name is None or PLAIN_METHOD_NAME.fullmatch(name):
        return str(name)
    cut = "..." if len(name) > LOGGED_NAME_CHARS else ""
    return ascii(name[:LOGGED_NAME_CHARS]) + cut


async def run_until_signalled(config: ServerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    server = ChatServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: shutting down")
    await server.close()

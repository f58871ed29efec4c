"""What every client command shares: the `--server` option, the session lookup, `run`,
which runs a coroutine, and `OneLineErrors`, the command group that turns every failure of
a command into one line on stderr and exit code 1."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.output import date_time
from cli.session import Session, SessionError, load_session, save_session
from rpcchat.client import (
    BANNED, DEFAULT_SERVER, INVALID_PARAMS, RATE_LIMITED, UNAUTHORIZED, ChatClient, RpcCallError,
    ResponseError,
)
from rpcchat.transport.client import HttpClientError, InvalidUrl, Origin

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "RPCCHAT_DEBUG"
SERVER_ENV = "RPCCHAT_SERVER"


def server_option(command: F) -> F:
    return click.option(
        "--server", envvar=SERVER_ENV, default=None, metavar="URL", show_envvar=True,
        help=f"Server URL [default: the one logged in to, else {DEFAULT_SERVER}]",
    )(command)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of human-readable text.")


@dataclass(frozen=True)
class Target:
    """The server a command talks to, and the session (token) for it if there is one."""

    server: str
    session: Session | None

    @property
    def token(self) -> str | None:
        return self.session.token if self.session else None

    @property
    def user(self) -> str | None:
        return self.session.user if self.session else None

    def client(self) -> ChatClient:
        return ChatClient(self.server, self.token)


def normalise_server(url: str) -> str:
    try:
        return Origin.parse(url).url
    except InvalidUrl as exc:
        raise click.BadParameter(str(exc), param_hint="--server") from None


def resolve_target(server: str | None, *, ignore_broken_session: bool = False) -> Target:
    """`--server` if given, else the logged-in server, else the default; with its session.

    `ignore_broken_session` lets `login` replace an unreadable session file.
    """
    try:
        session = load_session()
    except SessionError as exc:
        if not ignore_broken_session:
            raise click.ClickException(str(exc)) from None
        session = None
    if server is None:
        server = session.server if session else DEFAULT_SERVER
    server = normalise_server(server)
    if session is not None and normalise_server(session.server) != server:
        session = None
    return Target(server, session)


def store_session(session: Session) -> Path:
    try:
        return save_session(session)
    except SessionError as exc:
        raise click.ClickException(str(exc)) from None


def require_login(server: str | None) -> Target:
    target = resolve_target(server)
    if target.token is None:
        raise click.ClickException(f"not logged in to {target.server}; run 'rpcchat login NAME'"
                                   + ("" if server is None else f" --server {target.server}"))
    return target


def call_server(server: str | None, action: Callable[[ChatClient], Awaitable[T]]) -> T:
    """Run one client call against the logged-in server."""
    return call_with(require_login(server), action)


def call_with(target: Target, action: Callable[[ChatClient], Awaitable[T]]) -> T:
    """Run one client call against `target` (with its token, if it has one)."""

    async def body() -> T:
        async with target.client() as client:
            return await action(client)

    return run(body())


def describe_rpc_error(exc: RpcCallError) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    if exc.code == UNAUTHORIZED:
        return f"{exc.message}: the session is not valid; run 'rpcchat login NAME'"
    if exc.code == RATE_LIMITED and isinstance(data.get("retry_after"), (int, float)):
        return f"{exc.message}; try again in {data['retry_after']:.0f} s"
    if exc.code == BANNED and "until" in data:
        return f"banned until {date_time(data['until'])}"
    if exc.code == INVALID_PARAMS and "field" in data:
        return f"invalid {data['field']}: {data.get('reason')}"
    return f"{exc.message} (code {exc.code})"


def run(main: Coroutine[Any, Any, T], *, interrupt_ok: bool = False) -> T:
    """Run `main` (its failures reach `OneLineErrors`, which prints them as one line).

    Ctrl-C ends `interrupt_ok` commands (listeners) quietly with exit code 0.
    """
    configure_logging()
    try:
        return asyncio.run(main)
    except KeyboardInterrupt:
        if interrupt_ok:
            raise click.exceptions.Exit(0) from None
        raise


class OneLineErrors(click.Group):
    """A command group whose commands fail with one line on stderr and exit code 1, never a
    traceback, wherever the failure happens: in a call to the server, or in printing an
    answer the server shaped wrongly."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click reports these itself
        except RpcCallError as exc:
            raise click.ClickException(describe_rpc_error(exc)) from None
        except (HttpClientError, ResponseError, SessionError) as exc:
            raise click.ClickException(one_line(str(exc))) from None
        except BrokenPipeError:
            # The reader of our output went away (`rpcchat listen | head -1`): stop quietly.
            silence_stdout()
            raise click.exceptions.Exit(0) from None
        except OSError as exc:
            raise click.ClickException(one_line(describe_os_error(exc))) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            logging.getLogger(__name__).debug("unexpected error", exc_info=True)
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {one_line(str(exc))} "
                f"(set {DEBUG_ENV}=1 for the traceback)") from None


def describe_os_error(exc: OSError) -> str:
    """`Permission denied: /path`: the reason, and the file when there is one."""
    reason = exc.strerror or str(exc)
    return reason if exc.filename is None else f"{reason}: {exc.filename}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError) as exc:  # stdout is not a real file (e.g. under a test runner)
        logging.getLogger(__name__).debug("cannot silence stdout: %r", exc)
    finally:
        os.close(devnull)


class ClickEchoHandler(logging.Handler):
    """Log lines to the *current* stderr, `rpcchat: message`, as one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"rpcchat: {record.getMessage()}", err=True)
        except Exception:  # noqa: BLE001 - logging must never raise; stdlib reports it
            self.handleError(record)


CLIENT_LOGGERS = ("rpcchat.client", "rpcchat.transport.client", "cli")


def configure_logging() -> None:
    """Warnings of the client (e.g. reconnect attempts) go to stderr, once configured."""
    level = logging.DEBUG if os.environ.get(DEBUG_ENV) else logging.WARNING
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, ClickEchoHandler) for handler in logger.handlers):
            logger.addHandler(ClickEchoHandler(level))
        if os.environ.get(DEBUG_ENV):
            logger.setLevel(level)

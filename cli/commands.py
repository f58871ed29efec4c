"""Client commands: login, logout, send, history, status, listen, call."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from cli.output import ChatNames, format_event, format_message, format_scheduled, \
    format_status, format_thread, to_json
from cli.runner import Target, call_with, json_option, require_login, resolve_target, run, \
    server_option, store_session
from cli.extras import at_option, in_option
from cli.serve import POSITIVE_FLOAT
from cli.session import Session
from rpcchat.client import UNAUTHORIZED, ChatClient, ResponseError, RpcCallError
from rpcchat.transport.client import HttpClientError

log = logging.getLogger(__name__)


def read_password_from_stdin() -> str:
    line = sys.stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise click.UsageError("--password-stdin: no password on standard input")
    return password


@click.command()
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts).")
@server_option
def login(name: str, password_stdin: bool, server: str | None) -> None:
    """Log in as NAME (the first login creates the account) and keep the session."""
    target = resolve_target(server, ignore_broken_session=True)
    password = (read_password_from_stdin() if password_stdin
                else click.prompt("Password", hide_input=True))
    result = run(login_async(target, name, password))
    path = store_session(Session(target.server, result["user"], result["token"]))
    if target.token is not None:
        run(revoke_previous(target))
    click.echo(f"Logged in as {result['user']} on {target.server} "
               f"({result['unread']} unread); session saved in {path}")


async def login_async(target: Target, name: str, password: str) -> dict[str, Any]:
    async with ChatClient(target.server) as client:
        try:
            return dict(await client.connect(name, password))
        except RpcCallError as exc:
            if exc.code == UNAUTHORIZED:
                raise click.ClickException(f"login failed: {exc.message}") from None
            raise


async def revoke_previous(target: Target) -> None:
    """The new session replaced the stored token, which must not stay valid. Best effort:
    the login itself has succeeded either way."""
    async with target.client() as previous:
        try:
            await previous.disconnect()
        except RpcCallError as exc:
            log.debug("previous token already invalid: %s", exc)
        except (HttpClientError, ResponseError) as exc:
            log.warning("could not revoke the previous token: %s", exc)


@click.command()
@server_option
def logout(server: str | None) -> None:
    """Revoke the session's token on the server and forget it."""
    target = require_login(server)
    run(logout_async(target))
    store_session(Session(target.server, target.user, None))
    click.echo(f"Logged out {target.user} from {target.server}")


async def logout_async(target: Target) -> None:
    async with target.client() as client:
        try:
            await client.disconnect()
        except RpcCallError as exc:
            if exc.code != UNAUTHORIZED:
                raise
            log.debug("token was already revoked: %s", exc)


@click.command()
@click.argument("text")
@click.option("--to", "to", metavar="USER", help="Send a direct message to USER.")
@click.option("--chat", metavar="ID", help="Send to this chat (default: general).")
@click.option("--delay", type=POSITIVE_FLOAT, metavar="SECONDS",
              help="Deliver later, after SECONDS.")
@at_option
@in_option
@json_option
@server_option
def send(text: str, to: str | None, chat: str | None, delay: float | None, at: float | None,
         in_: float | None, as_json: bool, server: str | None) -> None:
    """Send TEXT to general, to a user (--to) or to a chat (--chat)."""
    if to is not None and chat is not None:
        raise click.UsageError("use either --to or --chat, not both")
    if sum(option is not None for option in (delay, at, in_)) > 1:
        raise click.UsageError("use one of --at, --in and --delay")
    delay = in_ if in_ is not None else delay
    target = require_login(server)
    result = call_with(target, lambda client: client.send(text, to=to, chat=chat, at=at,
                                                          delay=delay))
    names = ChatNames(target.user)
    if as_json:
        click.echo(to_json(result))
    elif "scheduled" in result:
        click.echo(format_scheduled(result["scheduled"], names))
    else:
        click.echo(format_message(result["message"], names))


@click.command()
@click.option("--chat", metavar="ID", help="Chat id (default: general).")
@click.option("--limit", type=click.IntRange(1, 200), help="How many messages (default 50).")
@click.option("--before", type=int, metavar="ID", help="Only messages older than this id.")
@json_option
@server_option
def history(chat: str | None, limit: int | None, before: int | None, as_json: bool,
            server: str | None) -> None:
    """Show a chat's messages, oldest first, comments under their message."""
    target = require_login(server)

    async def body() -> tuple[dict[str, Any], ChatNames]:
        async with target.client() as client:
            result = dict(await client.history(chat=chat, before=before, limit=limit))
            names = ChatNames(target.user)
            if not as_json:
                await learn_chat_names(client, names)
            return result, names

    result, names = run(body())
    if as_json:
        click.echo(to_json(result))
        return
    messages = result.get("messages") or []
    click.echo(f"{names.label(chat or 'general')}")
    for line in format_thread(messages, names):
        click.echo(line)
    if not messages:
        click.echo("(no messages)")
    if result.get("more") and messages:
        click.echo(f"(older messages: rpcchat history --before {messages[0]['id']}"
                   + (f" --chat {chat})" if chat else ")"))


@click.command()
@json_option
@server_option
def status(as_json: bool, server: str | None) -> None:
    """Show the server's state and, when logged in, yours."""
    target = resolve_target(server)
    result = call_with(target, lambda client: client.status())
    if as_json:
        click.echo(to_json(result))
        return
    for line in format_status(result, target.server, ChatNames(target.user)):
        click.echo(line)


@click.command()
@json_option
@server_option
def listen(as_json: bool, server: str | None) -> None:
    """Print events as they arrive (survives server restarts). Ctrl-C stops."""
    target = require_login(server)
    run(listen_async(target, as_json), interrupt_ok=True)


async def listen_async(target: Target, as_json: bool) -> None:
    async with target.client() as client:
        names = ChatNames(target.user)
        if not as_json:
            await learn_chat_names(client, names)
        async for event in client.events():
            if as_json:
                click.echo(to_json(event))
                continue
            if event["type"] == "chat.joined" and event["data"].get("user") == target.user:
                await learn_chat_names(client, names)
            click.echo(format_event(event, names))


async def learn_chat_names(client: ChatClient, names: ChatNames) -> None:
    """Best effort: without names, group chats show by id; the listener must go on."""
    try:
        status_result = await client.status()
    except (HttpClientError, ResponseError) as exc:
        log.warning("cannot load chat names: %s", exc)
        return
    names.learn(status_result.get("me", {}).get("chats", []))


@click.command()
@click.argument("method")
@click.argument("params", required=False, metavar="[JSON]")
@server_option
def call(method: str, params: str | None, server: str | None) -> None:
    """Call METHOD with JSON params (an object; '-' reads it from stdin); print the result."""
    parsed = parse_params(params)
    target = resolve_target(server)
    click.echo(to_json(call_with(target, lambda client: client.call(method, parsed)),
                       pretty=True))


def parse_params(params: str | None) -> dict[str, Any] | None:
    if params is None:
        return None
    text = sys.stdin.read() if params == "-" else params
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="JSON") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("params must be a JSON object, e.g. '{\"text\": \"hi\"}'",
                                 param_hint="JSON")
    return parsed


CLIENT_COMMANDS = (login, logout, send, history, status, listen, call)

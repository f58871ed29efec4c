"""`rpcchat chat`: an interactive session. Incoming events print while you type; each line
you type is sent to the current target, or is a /command.

Standard input is read by a daemon thread (it works for terminals, pipes and files alike,
and a blocked read never delays exit); lines reach the event loop through a queue.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import TextIO

import click

from cli.commands import learn_chat_names
from cli.output import ChatNames, format_event, format_scheduled, format_thread
from cli.runner import Target, describe_rpc_error, one_line, require_login, run, server_option
from rpcchat.client import ChatClient, ResponseError, RpcCallError
from rpcchat.transport.client import HttpClientError

log = logging.getLogger(__name__)

GENERAL = "general"
HISTORY_LINES = 20
HELP = """\
Type a line to send it to the current chat. Commands:
  /to USER     talk to USER directly
  /chat ID     talk in the chat ID
  /general     talk in general
  /history     show recent messages of the current chat
  /quit        leave (Ctrl-D works too)
  /help        this text
Start a message with // to send a text beginning with /."""


@dataclass
class Destination:
    """Where plain lines go: a user (`to`) or a chat id."""

    to: str | None = None
    chat: str = GENERAL

    def label(self, names: ChatNames) -> str:
        return f"@{self.to}" if self.to else names.label(self.chat)


def start_line_reader(stream: TextIO, loop: asyncio.AbstractEventLoop,
                      lines: asyncio.Queue[str | None]) -> None:
    """Feed `stream`'s lines into `lines`; None marks the end of input."""

    def pump() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            return  # the event loop is closed: the session is over, nobody is listening
        except (OSError, ValueError) as exc:
            log.warning("cannot read standard input: %s", exc)
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=pump, name="rpcchat-stdin", daemon=True).start()


class InteractiveChat:
    def __init__(self, target: Target, client: ChatClient) -> None:
        self.target = target
        self.client = client
        self.names = ChatNames(target.user)
        self.destination = Destination()

    async def run(self) -> None:
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        start_line_reader(sys.stdin, asyncio.get_running_loop(), lines)
        await learn_chat_names(self.client, self.names)
        say(f"Logged in as {self.target.user} on {self.target.server}. "
            f"Talking in {self.destination.label(self.names)}; /help lists commands.")
        listener = asyncio.create_task(self.print_events())
        typing = asyncio.create_task(self.handle_lines(lines))
        done, _ = await asyncio.wait({listener, typing}, return_when=asyncio.FIRST_COMPLETED)
        for task in (listener, typing):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        for task in done:
            task.result()  # the listener stops only on an error (e.g. the token was revoked)

    async def print_events(self) -> None:
        async for event in self.client.events():
            if event["type"] == "chat.joined" and event["data"].get("user") == self.target.user:
                await learn_chat_names(self.client, self.names)
            say(format_event(event, self.names))

    async def handle_lines(self, lines: asyncio.Queue[str | None]) -> None:
        while (line := await lines.get()) is not None:
            if line.strip() in ("/quit", "/exit"):
                return
            try:
                await self.handle(line)
            except RpcCallError as exc:
                complain(describe_rpc_error(exc))
            except (HttpClientError, ResponseError) as exc:
                complain(one_line(str(exc)))

    async def handle(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith("//"):
            await self.send(line[1:])
            return
        if not line.startswith("/"):
            await self.send(line)
            return
        command, _, argument = line[1:].strip().partition(" ")
        await self.command(command.lower(), argument.strip())

    async def command(self, command: str, argument: str) -> None:
        if command == "help":
            say(HELP)
        elif command == "general":
            self.switch(Destination())
        elif command in ("to", "chat") and not argument:
            complain(f"/{command} needs an argument, e.g. /{command} "
                     + ("bob" if command == "to" else "ID"))
        elif command == "to":
            self.switch(Destination(to=argument.lstrip("@"), chat=self.direct_chat_id(argument)))
        elif command == "chat":
            self.switch(Destination(chat=argument.lstrip("#")))
        elif command == "history":
            await self.show_history()
        else:
            complain(f"unknown command /{command}; /help lists the commands")

    def switch(self, destination: Destination) -> None:
        self.destination = destination
        say(f"Now talking in {destination.label(self.names)}")

    def direct_chat_id(self, user: str) -> str:
        """The id of the 1-to-1 chat with `user`; `send` learns the server's exact id."""
        name = user.lstrip("@")
        return "dm:" + ":".join(sorted([self.target.user or "", name]))

    async def send(self, text: str) -> None:
        where = self.destination
        result = await self.client.send(text, to=where.to,
                                        chat=None if where.to or where.chat == GENERAL
                                        else where.chat)
        if "message" in result:
            where.chat = result["message"]["chat"]  # the server's id for a direct chat
        if "scheduled" in result:
            say(format_scheduled(result["scheduled"], self.names))

    async def show_history(self) -> None:
        result = await self.client.history(chat=self.destination.chat, limit=HISTORY_LINES)
        say(f"-- last messages in {self.destination.label(self.names)} --")
        for line in format_thread(list(result["messages"]), self.names):
            say(line)


def say(text: str) -> None:
    click.echo(text)


def complain(text: str) -> None:
    click.echo(f"error: {text}", err=True)


@click.command("chat")
@server_option
def chat(server: str | None) -> None:
    """Interactive chat: type to send, see messages as they arrive (/help inside)."""
    target = require_login(server)
    run(chat_async(target), interrupt_ok=True)


async def chat_async(target: Target) -> None:
    async with target.client() as client:
        await InteractiveChat(target, client).run()

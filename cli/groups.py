"""`rpcchat group ...`: create a group chat, invite, share its join link, join with a link,
list, approve and decline join requests, leave."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import click

from cli.output import date_time, to_json
from cli.runner import call_server, json_option, server_option

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def describe_chat(chat: Mapping[str, Any]) -> str:
    members = ", ".join(str(member) for member in chat.get("members", []))
    return (f"#{chat.get('name')} (id {chat.get('id')}), owner {chat.get('owner')}; "
            f"members: {members}")


def show(result: Mapping[str, Any], as_json: bool, text: str) -> None:
    click.echo(to_json(result) if as_json else text)


@click.group("group")
def group() -> None:
    """Group chats: create, invite, share a join link, approve requests, leave."""


def group_command(name: str, *arguments: str, options: tuple[Decorator, ...] = ()
                  ) -> Callable[[Callable[..., None]], click.Command]:
    """`rpcchat group NAME ARGUMENTS...` with `options`, then --json and --server."""
    def decorate(function: Callable[..., Any]) -> click.Command:
        # click lists parameters in the reverse of the order they were attached.
        innermost_first: tuple[Decorator, ...] = (server_option, json_option, *reversed(options))
        for decorator in innermost_first:
            function = decorator(function)
        for argument in reversed(arguments):
            function = click.argument(argument)(function)
        return group.command(name)(function)
    return decorate


member_option = click.option("--member", "-m", "members", multiple=True, metavar="USER",
                             help="Add USER at once (repeat for more).")


@group_command("create", "name", options=(member_option,))
def create(name: str, members: tuple[str, ...], as_json: bool, server: str | None) -> None:
    """Create a group chat called NAME; you own it."""
    result = call_server(server, lambda client: client.chat_create(name, list(members) or None))
    show(result, as_json, f"Created {describe_chat(result['chat'])}")


@group_command("invite", "chat", "user")
def invite(chat: str, user: str, as_json: bool, server: str | None) -> None:
    """Add USER to the group chat CHAT (owner only)."""
    result = call_server(server, lambda client: client.chat_invite(chat, user))
    show(result, as_json, f"Added {user}: {describe_chat(result['chat'])}")


reset_option = click.option("--reset", is_flag=True,
                            help="Replace the link; the old one stops working.")


@group_command("link", "chat", options=(reset_option,))
def link(chat: str, reset: bool, as_json: bool, server: str | None) -> None:
    """Print the join link of CHAT (owner only); whoever has it can ask to join."""
    result = call_server(server, lambda client: client.chat_link(chat, reset))
    show(result, as_json, str(result["link"]))


@group_command("join", "link")
def join(link: str, as_json: bool, server: str | None) -> None:
    """Ask to join the chat of LINK (the link or its token); the owner decides."""
    result = call_server(server, lambda client: client.chat_join(link))
    chat = result["chat"]
    label = f"#{chat.get('name')} (id {chat.get('id')})"
    if result["status"] == "member":
        text = f"You are a member of {label}"
    else:
        text = f"Asked to join {label}; waiting for the owner's approval"
    show(result, as_json, text)


@group_command("requests", "chat")
def requests(chat: str, as_json: bool, server: str | None) -> None:
    """List pending join requests of CHAT, oldest first (owner only)."""
    result = call_server(server, lambda client: client.chat_requests(chat))
    lines = [f"{request['user']}  (asked {date_time(request['ts'])})"
             for request in result["requests"]]
    show(result, as_json, "\n".join(lines) or "(no pending requests)")


@group_command("approve", "chat", "user")
def approve(chat: str, user: str, as_json: bool, server: str | None) -> None:
    """Let USER, who asked to join, into CHAT (owner only)."""
    result = call_server(server, lambda client: client.chat_approve(chat, user))
    show(result, as_json, f"Approved {user}: {describe_chat(result['chat'])}")


@group_command("decline", "chat", "user")
def decline(chat: str, user: str, as_json: bool, server: str | None) -> None:
    """Turn down USER's request to join CHAT (owner only)."""
    result = call_server(server, lambda client: client.chat_decline(chat, user))
    show(result, as_json, f"Declined {user}'s request to join {chat}")


@group_command("leave", "chat")
def leave(chat: str, as_json: bool, server: str | None) -> None:
    """Leave the group chat CHAT (an owner hands it to the oldest member)."""
    result = call_server(server, lambda client: client.chat_leave(chat))
    show(result, as_json, f"Left {chat}")

"""Human-readable lines for messages, events and status; JSON for scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

COMMENT_MARK = "  ↳ "


def to_json(value: Any, *, pretty: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2 if pretty else None)


def clock(ts: Any) -> str:
    """`HH:MM:SS` in local time; today's messages are the usual case in a chat."""
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "??:??:??"


def date_time(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)


class ChatNames:
    """Labels for chat ids: `#general`, `@bob` for a direct chat, `#name` for a group."""

    def __init__(self, me: str | None, names: Mapping[str, str] | None = None) -> None:
        self.me = me
        self.names: dict[str, str] = dict(names or {})

    def learn(self, chats: Iterable[Mapping[str, Any]]) -> None:
        for chat in chats:
            if isinstance(chat.get("id"), str) and isinstance(chat.get("name"), str):
                self.names[chat["id"]] = chat["name"]

    def label(self, chat_id: Any) -> str:
        chat = str(chat_id)
        if chat.startswith("dm:"):
            people = chat.split(":")[1:]
            others = [name for name in people if name.lower() != (self.me or "").lower()]
            return "@" + (others[0] if others else people[0])
        name = self.names.get(chat, chat)
        return f"#{name}"


def describe_file(file: Any) -> str:
    if not isinstance(file, Mapping):
        return ""
    return f" [file {file.get('name')} ({file.get('size')} bytes) id {file.get('id')}]"


def format_message(message: Mapping[str, Any], names: ChatNames, *,
                   show_chat: bool = True, under_parent: bool = False) -> str:
    """`[12:03:04] #general alice: hello`. A comment is indented with a mark, and names its
    parent's id unless it is printed right under that parent."""
    chat = f"{names.label(message.get('chat'))} " if show_chat else ""
    line = (f"[{clock(message.get('ts'))}] {chat}{message.get('from')}: "
            f"{message.get('text', '')}{describe_file(message.get('file'))}")
    parent = message.get("parent")
    if parent is None:
        return line
    if under_parent:
        return COMMENT_MARK + line
    return f"{COMMENT_MARK}{line} (on #{parent})"


def format_thread(messages: list[Mapping[str, Any]], names: ChatNames, *,
                  show_chat: bool = False) -> list[str]:
    """Messages oldest first, each followed by its comments (indented) when both are here."""
    present = {message.get("id") for message in messages}
    comments: dict[Any, list[Mapping[str, Any]]] = {}
    for message in messages:
        parent = message.get("parent")
        if parent is not None and parent in present:
            comments.setdefault(parent, []).append(message)
    lines: list[str] = []
    for message in messages:
        parent = message.get("parent")
        if parent is not None and parent in present:
            continue  # printed under its parent
        lines.append(f"{message.get('id'):>6} "
                     + format_message(message, names, show_chat=show_chat))
        for comment in comments.get(message.get("id"), []):
            lines.append(f"{comment.get('id'):>6} "
                         + format_message(comment, names, show_chat=show_chat,
                                          under_parent=True))
    return lines


def format_scheduled(item: Mapping[str, Any], names: ChatNames) -> str:
    return (f"scheduled {item.get('id')} for {date_time(item.get('deliver_at'))} in "
            f"{names.label(item.get('chat'))}: {item.get('text')} ({item.get('status')})")


def format_event(event: Mapping[str, Any], names: ChatNames) -> str:
    kind = event.get("type")
    data = event.get("data")
    if not isinstance(data, Mapping):
        data = {}
    stamp = f"[{clock(event.get('ts'))}]"
    if kind == "message":
        return format_message(data, names)
    chat = names.label(data.get("chat"))
    user = data.get("user")
    simple = {
        "chat.joined": f"{stamp} {chat} {user} joined",
        "chat.left": f"{stamp} {chat} {user} left",
        "chat.join_request": f"{stamp} {chat} {user} asks to join "
                             f"(approve: rpcchat call chat.approve "
                             f"'{to_json({'chat': data.get('chat'), 'user': user})}')",
        "chat.join_declined": f"{stamp} {chat} your request to join was declined",
        "user.warned": f"{stamp} you were reported: {data.get('warnings')} warning(s), "
                       f"banned at {data.get('threshold')}",
        "user.banned": f"{stamp} you are banned until {date_time(data.get('until'))}",
    }
    if kind in simple:
        return simple[str(kind)]
    if isinstance(kind, str) and kind.startswith("scheduled."):
        return f"{stamp} {kind.removeprefix('scheduled.')}: {format_scheduled(data, names)}"
    return f"{stamp} {kind}: {to_json(data)}"


def format_status(result: Mapping[str, Any], server_url: str, names: ChatNames) -> list[str]:
    server = result.get("server") or {}
    lines = [f"server   {server_url}  version {server.get('version')}, up "
             f"{format_duration(server.get('uptime'))}, {server.get('users')} users, "
             f"{server.get('online')} online"]
    me = result.get("me")
    if not isinstance(me, Mapping):
        lines.append("user     (not logged in)")
        return lines
    names.learn(me.get("chats") or [])
    lines.append(f"user     {me.get('name')}  (read cursor {me.get('cursor')})")
    for chat in me.get("chats") or []:
        members = chat.get("members") or []
        lines.append(f"chat     {names.label(chat.get('id')):<20} {chat.get('kind'):<8} "
                     f"{len(members)} member(s), {chat.get('unread')} unread")
    rate = me.get("rate") or {}
    if rate.get("limit"):
        lines.append(f"rate     {rate.get('remaining')}/{rate.get('limit')} messages left in "
                     f"general, resets {date_time(rate.get('resets_at'))}")
    else:
        lines.append("rate     no limit in general")
    banned = me.get("banned_until")
    ban = f", banned until {date_time(banned)}" if banned else ""
    lines.append(f"reports  {me.get('warnings')} warning(s){ban}")
    return lines


def format_duration(seconds: Any) -> str:
    try:
        total = int(float(seconds))
    except (TypeError, ValueError, OverflowError):
        return "?"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

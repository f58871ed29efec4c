"""`rpcchat comment`, `rpcchat scheduled list|cancel`, `rpcchat report`, and the time
options of `rpcchat send` (`--at`, `--in`)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click

from cli.output import ChatNames, date_time, format_message, format_scheduled, to_json
from cli.runner import call_server, call_with, json_option, require_login, server_option

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME_FORMATS = ("%H:%M", "%H:%M:%S")
_DATE_TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M",
                      "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `5m`, `1h30m`, `2d`, `1.5h`; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    total = 0.0
    position = 0
    while position < len(compact):
        part = _DURATION_PART.match(compact, position)
        if part is None or part.end() == position:
            raise ValueError(f"not a duration: {text!r} (examples: 90, 45s, 5m, 1h30m, 2d)")
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if not math.isfinite(total):
        raise ValueError(f"not a duration: {text!r} (too long)")
    if total <= 0:
        raise ValueError("the duration must be more than 0 seconds")
    return total


def parse_when(text: str, now: float | None = None) -> float:
    """Unix seconds of `text`: Unix seconds, `YYYY-MM-DD HH:MM[:SS]` (local time), or
    `HH:MM[:SS]` (today, or tomorrow when that time has passed); ValueError otherwise."""
    moment = time.time() if now is None else now
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"not a time: {text!r} (Unix seconds must be a finite number)")
        return seconds
    for layout in _DATE_TIME_FORMATS:
        try:
            return datetime.strptime(value, layout).timestamp()
        except ValueError:
            continue
    today = datetime.fromtimestamp(moment)
    for layout in _TIME_FORMATS:
        try:
            clock_time = datetime.strptime(value, layout).time()
        except ValueError:
            continue
        candidate = datetime.combine(today.date(), clock_time)
        if candidate.timestamp() <= moment:
            candidate += timedelta(days=1)
        return candidate.timestamp()
    raise ValueError(f"not a time: {text!r} (examples: 17:30, 2030-01-31 09:00, 1900000000)")


class SecondsType(click.ParamType[float]):
    """Seconds written as text that `parse` understands (numbers pass through as they are)."""

    def __init__(self, name: str, parse: Callable[[str], float]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return self.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


at_option = click.option(
    "--at", "at", type=SecondsType("time", parse_when), metavar="TIME",
    help="Deliver at TIME: 17:30 (next time it is 17:30), 2030-01-31 09:00, or Unix seconds.")
in_option = click.option(
    "--in", "in_", type=SecondsType("duration", parse_duration), metavar="DURATION",
    help="Deliver after DURATION: 90, 45s, 5m, 1h30m, 2d.")


@click.command()
@click.argument("message_id", type=click.IntRange(min=1))
@click.argument("text")
@json_option
@server_option
def comment(message_id: int, text: str, as_json: bool, server: str | None) -> None:
    """Comment on message MESSAGE_ID (a comment may answer a comment)."""
    target = require_login(server)
    result = call_with(target, lambda client: client.comment(message_id, text))
    if as_json:
        click.echo(to_json(result))
        return
    click.echo(format_message(result["message"], ChatNames(target.user)))


@click.group()
def scheduled() -> None:
    """Your scheduled messages (schedule one with `rpcchat send --at/--in`)."""


@scheduled.command("list")
@json_option
@server_option
def list_scheduled(as_json: bool, server: str | None) -> None:
    """List your pending scheduled messages, soonest first."""
    target = require_login(server)
    result = call_with(target, lambda client: client.scheduled_list())
    if as_json:
        click.echo(to_json(result))
        return
    names = ChatNames(target.user)
    items = result["scheduled"]
    for item in items:
        click.echo(format_scheduled(item, names))
    if not items:
        click.echo("(no scheduled messages)")


@scheduled.command("cancel")
@click.argument("scheduled_id", metavar="ID")
@json_option
@server_option
def cancel_scheduled(scheduled_id: str, as_json: bool, server: str | None) -> None:
    """Cancel your pending scheduled message ID."""
    target = require_login(server)
    result = call_with(target, lambda client: client.scheduled_cancel(scheduled_id))
    if as_json:
        click.echo(to_json(result))
        return
    click.echo(format_scheduled(result["scheduled"], ChatNames(target.user)))


@click.command()
@click.argument("user")
@click.option("--reason", metavar="TEXT", help="Why (kept on the server; never shown to USER).")
@json_option
@server_option
def report(user: str, reason: str | None, as_json: bool, server: str | None) -> None:
    """Report USER. Enough reports from different users ban USER for a while."""
    result = call_server(server, lambda client: client.report(user, reason))
    if as_json:
        click.echo(to_json(result))
        return
    banned = result.get("banned_until")
    state = (f"banned until {date_time(banned)}" if banned
             else f"{result['warnings']} warning(s)")
    click.echo(f"Reported {result['user']}: {state}")


EXTRA_COMMANDS = (comment, scheduled, report)

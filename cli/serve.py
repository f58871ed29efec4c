"""`rpcchat serve`: every flag of the contract, each also read from `RPCCHAT_<FLAG>`."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from rpcchat.config import HttpLimits, ServerConfig
from rpcchat.logs import LEVELS, configure_logging

DEFAULTS = ServerConfig()
HTTP_DEFAULTS = HttpLimits()


class FiniteSeconds(click.FloatRange):
    """A duration in seconds: a finite number within the range (never nan or inf)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


NON_NEGATIVE_FLOAT = FiniteSeconds(min=0)
POSITIVE_FLOAT = FiniteSeconds(min=0, min_open=True)


F = TypeVar("F", bound=Callable[..., Any])


def _option(flag: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is RPCCHAT_<FLAG> (dashes as underscores)."""
    envvar = "RPCCHAT_" + flag.lstrip("-").replace("-", "_").upper()
    return click.option(flag, envvar=envvar, show_default=True, show_envvar=True, **kwargs)


@click.command()
@_option("--host", default=DEFAULTS.host, help="Address to listen on.")
@_option("--port", default=DEFAULTS.port, type=click.IntRange(0, 65535),
         help="TCP port (0 picks a free one).")
@_option("--data-dir", default=str(DEFAULTS.data_dir),
         type=click.Path(file_okay=False, path_type=Path), help="Where data is kept.")
@_option("--history", default=DEFAULTS.history, type=click.IntRange(0, 200),
         help="Messages of general returned by connect.")
@_option("--message-ttl", default=DEFAULTS.message_ttl, type=NON_NEGATIVE_FLOAT,
         help="Seconds a message lives after delivery (0 = forever).")
@_option("--rate-limit", default=DEFAULTS.rate_limit, type=click.IntRange(min=0),
         help="Messages per user in general per period (0 = off).")
@_option("--rate-period", default=DEFAULTS.rate_period, type=POSITIVE_FLOAT,
         help="Length of a rate-limit period in seconds.")
@_option("--report-threshold", default=DEFAULTS.report_threshold, type=click.IntRange(min=1),
         help="Distinct reports that ban a user.")
@_option("--ban-duration", default=DEFAULTS.ban_duration, type=POSITIVE_FLOAT,
         help="Seconds a ban lasts.")
@_option("--max-file-size", default=DEFAULTS.max_file_size, type=click.IntRange(min=1),
         help="Largest file in bytes.")
@_option("--max-text", default=DEFAULTS.max_text, type=click.IntRange(min=1),
         help="Longest message text in characters.")
@_option("--upload-timeout", default=DEFAULTS.upload_timeout, type=POSITIVE_FLOAT,
         help="Seconds an unfinished upload may stay idle before it expires.")
@_option("--max-uploads", default=DEFAULTS.max_uploads, type=click.IntRange(min=1),
         help="Unfinished uploads a user may have at once.")
@_option("--log-level", default=DEFAULTS.log_level, type=click.Choice(LEVELS, case_sensitive=False),
         help="Logging level.")
@_option("--log-file", default=None, type=click.Path(dir_okay=False, path_type=Path),
         help="Log to this file instead of stderr.")
@_option("--max-body", default=HTTP_DEFAULTS.max_body, type=click.IntRange(min=1),
         help="Largest /rpc request body in bytes (413 past it).")
@_option("--max-connections", default=HTTP_DEFAULTS.max_connections,
         type=click.IntRange(min=1), help="Concurrent connections.")
@_option("--keepalive-timeout", default=HTTP_DEFAULTS.keepalive_timeout, type=POSITIVE_FLOAT,
         help="Idle seconds before a kept-alive connection is closed.")
@_option("--header-timeout", default=HTTP_DEFAULTS.header_timeout, type=POSITIVE_FLOAT,
         help="Seconds a request head may take to arrive (408 past it).")
@_option("--body-timeout", default=HTTP_DEFAULTS.body_timeout, type=POSITIVE_FLOAT,
         help="Seconds a request body may take to arrive (408 past it).")
def serve(**options: Any) -> None:
    """Run the chat server."""
    config = config_from_options(options)
    try:
        configure_logging(config.log_level, config.log_file)
    except OSError as exc:
        raise click.ClickException(
            f"cannot open the log file {config.log_file}: {exc.strerror or exc}") from None
    from rpcchat.app import StartupError, run_until_signalled

    try:
        asyncio.run(run_until_signalled(config))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc


def config_from_options(options: dict[str, Any]) -> ServerConfig:
    http = HttpLimits(
        max_body=options.pop("max_body"),
        max_connections=options.pop("max_connections"),
        keepalive_timeout=options.pop("keepalive_timeout"),
        header_timeout=options.pop("header_timeout"),
        body_timeout=options.pop("body_timeout"),
    )
    options["log_level"] = options["log_level"].lower()
    return ServerConfig(http=http, **options)

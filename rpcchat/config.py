"""Server settings: the `rpcchat serve` flags of the contract, plus transport limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HttpLimits:
    """Limits of the HTTP transport; every one configurable."""

    max_request_line: int = 8 * 1024          # 414 past this
    max_header_bytes: int = 16 * 1024         # 431 past this (all header lines together)
    max_header_count: int = 100               # 431 past this
    max_body: int = 2 * 1024 * 1024           # 413 past this, decided from the headers
    header_timeout: float = 10.0              # whole request head must arrive within (408)
    body_timeout: float = 30.0                # whole body must arrive within (408)
    keepalive_timeout: float = 15.0           # idle time between requests before we close
    max_connections: int = 10_000             # concurrent connections; past it new ones wait
    write_timeout: float = 30.0               # a client that does not read its response
    shutdown_grace: float = 5.0               # in-flight requests may finish within this


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./rpcchat-data")
    history: int = 20
    message_ttl: float = 3600.0
    rate_limit: int = 20
    rate_period: float = 3600.0
    report_threshold: int = 3
    ban_duration: float = 14400.0
    max_file_size: int = 5 * 1024 * 1024
    max_text: int = 4096
    upload_timeout: float = 3600.0  # an unfinished upload idle this long expires
    max_uploads: int = 16           # unfinished uploads per user
    log_level: str = "info"
    log_file: Path | None = None
    http: HttpLimits = field(default_factory=HttpLimits)

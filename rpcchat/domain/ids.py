"""Random ids and tokens handed to users."""

from __future__ import annotations

import secrets


def opaque_id(nbytes: int) -> str:
    """A random URL-safe id of `nbytes` random bytes that never starts with "-", so that a
    command line never takes it for an option (`rpcchat file get <id>`)."""
    while True:
        candidate = secrets.token_urlsafe(nbytes)
        if not candidate.startswith("-"):
            return candidate

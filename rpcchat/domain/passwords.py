"""Password hashing: salted, slow, standard library only.

Hashing is CPU-heavy on purpose; the service runs it on worker threads (hashlib releases
the GIL while it works), never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

_SCHEME = "scrypt"


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str:
        """An encoded, salted hash that carries its own parameters."""

    def verify(self, password: str, encoded: str) -> bool:
        """True when `password` matches `encoded` (compared in constant time)."""


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class ScryptHasher:
    """scrypt with N=2**14, r=8, p=1 by default: the interactive-login cost of the scrypt
    paper, about 16 MiB and tens of milliseconds per hash.

    Each stored hash records its parameters, so a changed default never locks anyone out.
    Tests pass a tiny `n` to stay fast; the default is what production uses.
    """

    n: int = 2**14
    r: int = 8
    p: int = 1
    salt_bytes: int = 16
    key_bytes: int = 32

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two above 1")
        if self.r < 1 or self.p < 1:
            raise ValueError("scrypt r and p must be positive")

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(self.salt_bytes)
        key = _scrypt(password, salt, self.n, self.r, self.p, self.key_bytes)
        return f"{_SCHEME}${self.n}${self.r}${self.p}${_b64encode(salt)}${_b64encode(key)}"

    def verify(self, password: str, encoded: str) -> bool:
        try:
            scheme, n_text, r_text, p_text, salt_text, key_text = encoded.split("$")
            if scheme != _SCHEME:
                raise ValueError(f"unknown scheme {scheme!r}")
            n, r, p = int(n_text), int(r_text), int(p_text)
            salt = base64.b64decode(salt_text, validate=True)
            expected = base64.b64decode(key_text, validate=True)
        except (ValueError, binascii.Error) as exc:
            logger.error("stored password hash is unreadable: %s", exc)
            return False
        actual = _scrypt(password, salt, n, r, p, len(expected))
        return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, key_bytes: int) -> bytes:
    # OpenSSL refuses unless maxmem covers 128*r*(n+2) + 128*r*p bytes; add slack.
    maxmem = 128 * r * (n + 2 + p) + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=key_bytes
    )

"""Who is calling and how: what every handler receives as its `ctx` argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from rpcchat.errors import Unauthorized


@dataclass(slots=True)
class Principal:
    """The caller, resolved from its Bearer token. Made on every authenticated request, so
    not frozen (that would set each field through object.__setattr__); never changed."""

    user: str
    # Opaque id of the token (one per client); never the token itself, so it may be logged.
    session_id: str
    # The authenticator's own record of the caller, handed back to the handlers so they need
    # not resolve the token a second time.
    handle: object = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class CallContext:
    """Per-call facts a handler may need besides its params."""

    principal: Principal | None
    # The raw bearer token, for methods that act on the token itself (disconnect).
    # Kept out of repr() so a logged context can never leak it.
    token: str | None = field(repr=False)
    # Inside a batch a handler must not block (poll answers at once).
    in_batch: bool
    # Who the call turned out to act for, when it carried no token (connect): for the log.
    acting_as: str | None = None

    @property
    def user(self) -> str:
        """The caller's name; raises Unauthorized when the call carries no valid token."""
        if self.principal is None:
            raise Unauthorized("this method needs a Bearer token")
        return self.principal.user

    @property
    def session_id(self) -> str:
        """The caller's token id; raises Unauthorized when the call carries no valid token."""
        if self.principal is None:
            raise Unauthorized("this method needs a Bearer token")
        return self.principal.session_id


class Authenticator(Protocol):
    """Turns a bearer token into a Principal."""

    async def authenticate(self, token: str) -> Principal:
        """Return the token's owner; raise Unauthorized for an unknown or revoked token."""
        ...

"""The login session kept between commands: `{"server", "user", "token"}` in a JSON file.

Location: $RPCCHAT_CONFIG, else $XDG_CONFIG_HOME/rpcchat/session.json, else
~/.config/rpcchat/session.json. The token is a credential, so the file is written 0600
(atomically, via a private temporary file) and a directory created for it is 0700.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rpcchat.transport.client import InvalidUrl, Origin

CONFIG_ENV = "RPCCHAT_CONFIG"
FILE_MODE = 0o600
DIR_MODE = 0o700


class SessionError(Exception):
    """The session file cannot be read or written."""


@dataclass(frozen=True)
class Session:
    server: str
    user: str | None = None
    token: str | None = None


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rpcchat" / "session.json"


def load_session(path: Path | None = None) -> Session | None:
    """The stored session, or None when there is none yet."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included: bytes that are not text at all
        raise SessionError(f"{path} is not valid JSON; delete it and log in again") from None
    if not isinstance(data, dict) or not isinstance(data.get("server"), str):
        raise SessionError(f"{path} is not an rpcchat session file; delete it and log in again")
    user, token = data.get("user"), data.get("token")
    if not isinstance(user, (str, type(None))) or not isinstance(token, (str, type(None))):
        raise SessionError(f"{path} has an invalid user or token; delete it and log in again")
    try:
        Origin.parse(data["server"])
    except InvalidUrl:
        raise SessionError(
            f"{path} has an invalid server URL; delete it and log in again") from None
    return Session(data["server"], user, token)


def save_session(session: Session, path: Path | None = None) -> Path:
    """Write the session atomically with mode 0600; returns where it went."""
    path = path or config_path()
    try:
        make_private_dirs(path.parent)
        write_private_file(path, json.dumps(asdict(session), indent=2) + "\n")
    except OSError as exc:
        raise SessionError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def make_private_dirs(directory: Path) -> None:
    """Create missing directories as 0700 (umask could widen or narrow the mkdir mode)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new_dir in reversed(missing):
        new_dir.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(new_dir, DIR_MODE)


def write_private_file(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), FILE_MODE)  # a leftover temporary may have a wider mode
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

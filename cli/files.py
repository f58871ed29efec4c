"""`rpcchat file send PATH` and `rpcchat file get ID`: transfers with a progress bar that
resume after an interruption and verify sha256.

Upload: the upload id is kept in a small state file next to the session (0600), keyed by
server, user, the file's absolute path, size and sha256; running the same command again
continues from the offset the server reports (its -32004 answer carries it).
Download: bytes go to `<output>.<file id>.part`; running again continues from that file's
size, and only a file whose sha256 matches is renamed to the output path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import click

from cli.output import ChatNames, format_message, to_json
from cli.runner import Target, json_option, require_login, run, server_option
from cli.session import config_path, make_private_dirs, write_private_file
from rpcchat.client import CONFLICT, NOT_FOUND, ChatClient, ResponseError, RpcCallError, \
    decode_file_data
from rpcchat.transport.client import HttpClientError

log = logging.getLogger(__name__)

STATE_FILENAME = "uploads.json"
HASH_BLOCK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Interrupted(click.ClickException):
    """A transfer stopped part-way; the same command resumes it."""


# --- upload state ----------------------------------------------------------------------


@dataclass(frozen=True)
class PendingUpload:
    upload_id: str
    chunk_size: int


@dataclass
class UploadState:
    """Unfinished uploads by key, kept in a JSON file (0600) beside the session file."""

    path: Path
    uploads: dict[str, PendingUpload]

    @classmethod
    def load(cls) -> UploadState:
        path = config_path().parent / STATE_FILENAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable upload state %s: %s", path, exc)
            data = {}
        uploads: dict[str, PendingUpload] = {}
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if (isinstance(value, dict) and isinstance(value.get("upload_id"), str)
                    and isinstance(value.get("chunk_size"), int) and value["chunk_size"] > 0):
                uploads[key] = PendingUpload(value["upload_id"], value["chunk_size"])
        return cls(path, uploads)

    def remember(self, key: str, upload: PendingUpload) -> None:
        self.uploads[key] = upload
        self._save()

    def forget(self, key: str) -> None:
        if self.uploads.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        data = {key: {"upload_id": upload.upload_id, "chunk_size": upload.chunk_size}
                for key, upload in self.uploads.items()}
        make_private_dirs(self.path.parent)
        write_private_file(self.path, json.dumps(data, indent=2) + "\n")


def upload_key(target: Target, path: Path, size: int, digest: str) -> str:
    return "|".join((target.server, target.user or "", str(path.resolve()), str(size), digest))


# --- send ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    path: Path
    name: str
    size: int
    sha256: str
    content_type: str | None


@click.group("file")
def file_group() -> None:
    """Send and fetch files (up to the server's --max-file-size, 5 MiB by default)."""


@file_group.command("send")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "to", metavar="USER", help="Send to USER (direct chat).")
@click.option("--chat", metavar="ID", help="Send to this chat (default: general).")
@click.option("--text", metavar="TEXT", help="A caption for the file.")
@click.option("--name", metavar="NAME", help="Name readers see (default: the file's name).")
@click.option("--content-type", metavar="TYPE/SUBTYPE",
              help="Content type (default: guessed from the name).")
@json_option
@server_option
def send(path: Path, to: str | None, chat: str | None, text: str | None, name: str | None,
         content_type: str | None, as_json: bool, server: str | None) -> None:
    """Upload the file at PATH and post it to general, a user (--to) or a chat (--chat).

    If the upload is interrupted, run the same command again: it continues where the
    server stopped receiving."""
    if to is not None and chat is not None:
        raise click.UsageError("use either --to or --chat, not both")
    target = require_login(server)
    outgoing = Outgoing(path, name or path.name, path.stat().st_size, sha256_of(path),
                        content_type or mimetypes.guess_type(path.name)[0])
    result = run(send_file(target, outgoing, Destination(to, chat, text)))
    if as_json:
        click.echo(to_json(result))
    else:
        click.echo(format_message(result["message"], ChatNames(target.user)))


@dataclass(frozen=True)
class Destination:
    to: str | None
    chat: str | None
    text: str | None


async def send_file(target: Target, outgoing: Outgoing, where: Destination) -> dict[str, Any]:
    state = UploadState.load()
    key = upload_key(target, outgoing.path, outgoing.size, outgoing.sha256)
    async with target.client() as client:
        upload = state.uploads.get(key)
        if upload is not None:
            log.debug("resuming upload %s", upload.upload_id)
            if not await upload_bytes(client, upload, outgoing, resume=True):
                # The server no longer knows it: a previous run finished it, or it expired.
                earlier = await finished_earlier(client, upload.upload_id, where)
                if earlier is not None:
                    state.forget(key)
                    return earlier
                upload = None
        if upload is None:
            begun = await client.file_begin(outgoing.name, outgoing.size,
                                            content_type=outgoing.content_type,
                                            sha256=outgoing.sha256)
            upload = PendingUpload(begun["upload_id"], begun["chunk_size"])
            state.remember(key, upload)
            if not await upload_bytes(client, upload, outgoing):
                raise click.ClickException("the server dropped the upload; try again")
        result: dict[str, Any] = dict(await client.file_finish(
            upload.upload_id, to=where.to, chat=where.chat, text=where.text))
        state.forget(key)
    sent = result["message"].get("file") or {}
    if sent.get("sha256") != outgoing.sha256:
        raise click.ClickException("the server reports a different sha256 for the file")
    return result


async def finished_earlier(client: ChatClient, upload_id: str,
                           where: Destination) -> dict[str, Any] | None:
    """The message of an upload a previous run finished (its answer was lost), if any."""
    try:
        return dict(await client.file_finish(upload_id, to=where.to, chat=where.chat,
                                             text=where.text))
    except RpcCallError as exc:
        if exc.code == NOT_FOUND:
            return None
        raise


async def upload_bytes(client: ChatClient, upload: PendingUpload, outgoing: Outgoing, *,
                       resume: bool = False) -> bool:
    """Send every byte from the server's offset on; False when the server does not know
    the upload (any more)."""
    offset = 0
    with open(outgoing.path, "rb") as source, \
            progress(outgoing.size, "Uploading", outgoing.name) as bar:
        if resume:
            known = await server_position(client, upload)
            if known is None:
                return False
            offset = known
            bar.update(offset)
        while True:
            try:
                offset = await put_from(client, upload, source, offset, bar)
                return True
            except RpcCallError as exc:
                if exc.code == NOT_FOUND:
                    return False
                resume_at = server_offset(exc)  # re-raises anything but an offset conflict
                if resume_at == offset:
                    # It refused a chunk at the very offset it asks for: resending would loop.
                    raise click.ClickException(f"the server refuses the upload at offset "
                                               f"{offset}; try again later") from None
                offset = resume_at
                bar.update(offset - bar.pos)
            except (HttpClientError, ResponseError) as exc:
                raise Interrupted(f"upload interrupted after {offset} of {outgoing.size} bytes "
                                  f"({exc}); run the same command again to resume") from None


async def server_position(client: ChatClient, upload: PendingUpload) -> int | None:
    """Bytes the server has of an upload, or None if it does not know the upload. An empty
    put at 0 asks for it: it succeeds at 0, else the conflict carries the offset."""
    try:
        return (await client.file_put(upload.upload_id, 0, b""))["offset"]
    except RpcCallError as exc:
        if exc.code == NOT_FOUND:
            return None
        return server_offset(exc)


async def put_from(client: ChatClient, upload: PendingUpload, source: BinaryIO, offset: int,
                   bar: Any) -> int:
    """Chunks from `offset` to the end of the file."""
    size: int = bar.length
    while offset < size:
        source.seek(offset)
        chunk = source.read(upload.chunk_size)
        if not chunk:
            raise click.ClickException("the file got shorter while it was being sent")
        result = await client.file_put(upload.upload_id, offset, chunk)
        bar.update(result["offset"] - offset)
        offset = result["offset"]
    return offset


def server_offset(exc: RpcCallError) -> int:
    data = exc.data if isinstance(exc.data, dict) else {}
    if exc.code == CONFLICT and isinstance(data.get("offset"), int):
        return int(data["offset"])
    raise exc


@contextmanager
def progress(total: int, verb: str, name: str) -> Iterator[Any]:
    """A progress bar on stderr (stdout stays clean for --json)."""
    with click.progressbar(length=total, label=f"{verb} {name}", file=sys.stderr,
                           show_eta=True, show_percent=True) as bar:
        yield bar


# --- get -------------------------------------------------------------------------------


def local_name(name: object, file_id: str) -> str:
    """A safe file name in the current directory for a name chosen by someone else: no
    directories, no control characters, no hidden or dot-only names."""
    text = str(name) if isinstance(name, str) else ""
    cleaned = "".join("_" if char in "/\\" else char for char in text if char.isprintable())
    cleaned = cleaned.strip().lstrip(".").strip()
    return cleaned or file_id


@file_group.command("get")
@click.argument("file_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to save (default: the file's name in the current directory).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@server_option
def get(file_id: str, output: Path | None, force: bool, server: str | None) -> None:
    """Download the file ID (as shown in a message), verifying its sha256.

    If the download is interrupted, run the same command again: it continues from the
    partial file."""
    target = require_login(server)
    saved, size = run(get_file(target, file_id, output, force))
    click.echo(f"Saved {size} bytes to {saved}")


async def get_file(target: Target, file_id: str, output: Path | None,
                   force: bool) -> tuple[Path, int]:
    async with target.client() as client:
        first = await client.file_get(file_id, offset=0, length=1)
        reply: dict[str, Any] = dict(first)
        info: dict[str, Any] = reply.get("file") or {}  # the server adds it to the contract
        size = first["size"]
        destination = output or Path(local_name(info.get("name"), file_id))
        if destination.exists() and not force:
            raise click.ClickException(f"{destination} exists; use --force to overwrite it")
        partial = destination.with_name(f"{destination.name}.{file_id}.part")
        await fetch_into(client, file_id, partial, size, destination.name)
    expected = info.get("sha256")
    if isinstance(expected, str) and sha256_of(partial) != expected:
        partial.unlink()
        raise click.ClickException("the downloaded bytes do not match the file's sha256; "
                                   "the partial file was removed, run the command again")
    os.replace(partial, destination)
    return destination, size


async def fetch_into(client: ChatClient, file_id: str, partial: Path, size: int,
                     label: str) -> None:
    """Append the file's bytes to `partial` from its current size on."""
    offset = partial.stat().st_size if partial.exists() else 0
    if offset > size:  # not a prefix of this file: start again
        partial.unlink()
        offset = 0
    with open(partial, "ab") as sink, progress(size, "Downloading", label) as bar:
        bar.update(offset)
        while offset < size:
            try:
                chunk = await client.file_get(file_id, offset=offset)
            except (HttpClientError, ResponseError) as exc:
                raise Interrupted(f"download interrupted after {offset} of {size} bytes "
                                  f"({exc}); run the same command again to resume") from None
            data = decode_file_data(chunk)
            if not data and not chunk["eof"]:
                raise click.ClickException("the server sent an empty chunk before the end")
            sink.write(data)
            sink.flush()
            offset += len(data)
            bar.update(len(data))
            if chunk["eof"]:
                break

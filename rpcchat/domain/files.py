"""Files: chunked, resumable uploads that end in a message carrying the file; downloads.

How a file travels:
- `file.begin` checks the declared size (over `--max-file-size`: -32007 at once) and
  opens an upload: an empty file on disk and a row in the store.
- `file.put` appends one chunk (base64, at most `chunk_size` bytes) at exactly the offset
  the server has; any other offset is -32004 with `{"offset": <the server's>}`, which is how
  an interrupted client learns where to resume (also across a server restart).
- `file.finish` checks that every declared byte arrived, hashes the file on disk (and
  compares with the declared sha256, if any), then posts the message through the service's
  message-creation path, the one `send` uses, so every rule of sending applies. The file
  keeps the id of its upload; a repeated finish returns the message it already made.
- `file.get` reads a range for members of the file's chat and for the uploader, until the
  message expires.
Unfinished uploads expire after `upload_idle` seconds without a chunk: one timer, set for
the nearest deadline, deletes their bytes (`expire_uploads` is also callable directly).
Bytes live under `<data dir>/files/`, never whole in memory, always touched off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from rpcchat.domain.ids import opaque_id
from rpcchat.domain import validation
from rpcchat.domain.blobs import BadChunk, BlobStore, ChunkTooLarge, is_blob_id, \
    max_base64_length
from rpcchat.domain.chatcore import ChatCore
from rpcchat.domain.group_file_records import EndUpload, FileMessage, GroupFileState, \
    NewUpload, UploadProgress, UploadRow
from rpcchat.domain.records import GENERAL, Wire
from rpcchat.domain.state import UserState
from rpcchat.domain.timers import WallTimer
from rpcchat.domain.writes import read_store
from rpcchat.errors import Conflict, Forbidden, InternalError, InvalidParams, NotFound, \
    TooLarge

if TYPE_CHECKING:
    from rpcchat.domain.service import Actor

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHUNK_SIZE = 256 * 1024  # base64 makes it ~350 KB of JSON: far below the body limit
UPLOAD_IDLE_TIMEOUT = 3600.0
MAX_OPEN_UPLOADS = 16  # unfinished uploads per user
FILES_DIR = "files"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
NAME_MAX = 255
NAME_INPUT_MAX = 1024
CONTENT_TYPE_MAX = 255
FILE_MESSAGE_CACHE = 1024
UPLOAD_ID_BYTES = 18  # 144 bits: 24 characters
BUSY_RECHECK = 1.0  # seconds before an overdue upload that was in use is looked at again

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\t\x20-\x7e])*"'
_CONTENT_TYPE = re.compile(
    rf"({_TOKEN})/({_TOKEN})((?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*)[ \t]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Joiners are kept: emoji sequences and several scripts need them.
_KEPT_FORMAT_CHARS = frozenset("\u200c\u200d")


def display_file_name(value: object) -> str:
    """A file name for display only: never used as a path. Control and format characters
    (bidirectional overrides among them) are dropped, slashes and backslashes become `_`,
    and a name of only dots or nothing becomes "file"."""
    raw = validation.require_str(value, "name")
    if not 1 <= len(raw) <= NAME_INPUT_MAX:
        raise InvalidParams("name", f"must be 1 to {NAME_INPUT_MAX} characters")
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", raw):
        category = unicodedata.category(char)
        if char in "/\\":
            kept.append("_")
        elif category in ("Zl", "Zp"):
            kept.append(" ")
        elif category == "Cc" or (category == "Cf" and char not in _KEPT_FORMAT_CHARS):
            continue
        else:
            kept.append(char)
    name = "".join(kept).strip()[:NAME_MAX].strip()
    return name if name.strip(".") else "file"


def parse_content_type(value: object) -> str:
    """`type/subtype` (RFC 9110 tokens, lower-cased) with optional `; name=value`
    parameters; application/octet-stream when not given."""
    if value is None:
        return DEFAULT_CONTENT_TYPE
    text = validation.require_str(value, "content_type").strip()
    match = _CONTENT_TYPE.fullmatch(text) if len(text) <= CONTENT_TYPE_MAX else None
    if match is None:
        raise InvalidParams("content_type", "must look like type/subtype, e.g. image/png")
    parameters = match.group(3).strip()
    return f"{match.group(1).lower()}/{match.group(2).lower()}{parameters}"


def parse_sha256(value: object) -> str | None:
    if value is None:
        return None
    text = validation.require_str(value, "sha256")
    if _SHA256.fullmatch(text) is None:
        raise InvalidParams("sha256", "must be 64 hexadecimal digits")
    return text.lower()


def base64_length(encoded: str) -> int | None:
    """Bytes that padded base64 decodes to, or None when its length cannot be base64."""
    if len(encoded) % 4:
        return None
    padding = len(encoded) - len(encoded.rstrip("="))
    if padding > 2:
        return None
    return len(encoded) // 4 * 3 - padding


@dataclass(slots=True, eq=False)
class Upload:
    upload_id: str
    user_id: int
    name: str
    size: int
    content_type: str
    sha256: str | None
    received: int
    touched_at: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FileService:
    """The file methods. Results are shaped like the contract's;
    the JSON-RPC layer adds server_time."""

    def __init__(self, core: ChatCore, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 upload_idle: float = UPLOAD_IDLE_TIMEOUT,
                 max_open_uploads: int = MAX_OPEN_UPLOADS) -> None:
        if chunk_size < 1 or upload_idle <= 0 or max_open_uploads < 1:
            raise ValueError("chunk_size, upload_idle and max_open_uploads must be positive")
        self._core = core
        self.chunk_size = chunk_size
        self.upload_idle = upload_idle
        self.max_open_uploads = max_open_uploads
        self.blobs = BlobStore(core.config.data_dir / FILES_DIR)
        self._uploads: dict[str, Upload] = {}
        self._open_by_user: dict[int, int] = {}
        self._file_messages: OrderedDict[str, FileMessage] = OrderedDict()
        self._timer = WallTimer(core.clock, self._on_timer)  # nearest upload expiry
        self._tasks: set[asyncio.Task[object]] = set()
        self._running = False

    # --- lifecycle ---------------------------------------------------------------------

    async def load(self, state: GroupFileState) -> None:
        """Open the file directory, resume unfinished uploads, delete orphaned bytes."""
        core = self._core
        await self.blobs.open()
        for row in state.uploads:
            self._add_upload(await self._resumed(row))
        if state.finished_upload_ids:
            core.writes.submit([EndUpload(upload_id) for upload_id in state.finished_upload_ids])
        orphans = set(await self.blobs.ids()) - state.live_file_ids - set(self._uploads)
        await self.blobs.delete(orphans)
        self._running = True
        self._schedule_expiry()
        logger.info("files loaded: %d unfinished uploads, %d files, %d orphaned files deleted",
                    len(self._uploads), len(state.live_file_ids), len(orphans))

    async def _resumed(self, row: UploadRow) -> Upload:
        """The upload as far as both the store and the disk have it."""
        on_disk = await self.blobs.size(row.upload_id)
        if on_disk is None:
            logger.warning("upload %s lost its bytes; it starts again from 0", row.upload_id)
            await self.blobs.create(row.upload_id)
            received = 0
        else:
            received = await self.blobs.truncate(row.upload_id, row.received)
        return Upload(row.upload_id, row.user_id, row.name, row.size, row.content_type,
                      row.sha256, received, row.touched_at)

    async def close(self) -> None:
        self._running = False
        self._timer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.blobs.close()

    # --- uploads -----------------------------------------------------------------------

    async def begin(self, actor: Actor, name: object, size: object,
                    content_type: object = None, sha256: object = None) -> Wire:
        """Open an upload. Result: {upload_id, chunk_size, offset}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        display = display_file_name(name)
        total = validation.require_int(size, "size", 0)
        if total > core.config.max_file_size:
            raise TooLarge("file", core.config.max_file_size)
        kind = parse_content_type(content_type)
        expected = parse_sha256(sha256)
        if self._open_by_user.get(me.user_id, 0) >= self.max_open_uploads:
            raise TooLarge("unfinished uploads", self.max_open_uploads)
        upload_id = self._new_upload_id()
        now = core.clock.time()
        upload = Upload(upload_id, me.user_id, display, total, kind, expected, 0, now)
        self._add_upload(upload)  # counted at once, so parallel begins respect the limit
        try:
            await self._disk(self.blobs.create(upload_id), "creating an upload")
            await core.writes.commit(
                [NewUpload(upload_id, me.user_id, display, total, kind, expected, now)],
                "opening an upload")
        except BaseException:
            self._drop_upload(upload)
            self._spawn(self.blobs.delete([upload_id]))
            raise
        if self._running:  # expires last of all uploads: an earlier armed time is kept
            self._timer.arm(now + self.upload_idle)
        logger.info("upload opened: upload=%s user=%s size=%d", upload_id, me.name, total)
        return self._result(upload_id=upload_id, chunk_size=self.chunk_size, offset=0)

    async def put(self, actor: Actor, upload_id: object, offset: object, data: object) -> Wire:
        """Append a chunk at `offset`, which must be what the server has. Result: {offset}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        upload = self._my_upload(me, upload_id)
        position = validation.require_int(offset, "offset", 0)
        encoded = validation.require_str(data, "data")
        async with upload.lock:
            if self._uploads.get(upload.upload_id) is not upload:
                raise NotFound("no such upload (it was finished or has expired)")
            if position != upload.received:
                raise Conflict(f"upload offset mismatch: the server has {upload.received} bytes",
                               {"offset": upload.received})
            self._check_chunk(upload, encoded)
            written = await self._write(upload, encoded)
            upload.received += written
            upload.touched_at = core.clock.time()
            await core.writes.commit(
                [UploadProgress(upload.upload_id, upload.received, upload.touched_at)],
                "saving upload progress")
        return self._result(offset=upload.received)

    def _check_chunk(self, upload: Upload, encoded: str) -> None:
        if len(encoded) > max_base64_length(self.chunk_size):
            raise TooLarge("chunk", self.chunk_size)
        length = base64_length(encoded)
        if length is None:
            raise InvalidParams("data", "is not valid base64")
        if upload.received + length > upload.size:
            raise InvalidParams("data", f"goes past the declared size of {upload.size} bytes")

    async def _write(self, upload: Upload, encoded: str) -> int:
        try:
            return await self._disk(
                self.blobs.put_base64(upload.upload_id, upload.received, encoded,
                                      self.chunk_size), "writing a chunk")
        except ChunkTooLarge:
            raise TooLarge("chunk", self.chunk_size) from None
        except BadChunk:
            raise InvalidParams("data", "is not valid base64") from None

    async def finish(self, actor: Actor, upload_id: object, to: object = None,
                     chat: object = None, text: object = None) -> Wire:
        """Post the uploaded file as a message to general, a user or a chat, like `send`.
        Result: {message}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        wanted = validation.require_str(upload_id, "upload_id")
        if to is not None and chat is not None:
            raise InvalidParams("to", "give either to or chat, not both")
        recipient = None if to is None else validation.user_name(to, "to")
        chat_ref = GENERAL if chat is None else validation.chat_id(chat)
        body = self._caption(text)
        upload = self._uploads.get(wanted)
        if upload is None or upload.user_id != me.user_id:
            return await self._finished_before(me, wanted)
        self._check_alive(upload)
        async with upload.lock:
            if self._uploads.get(wanted) is not upload:
                return await self._finished_before(me, wanted)
            file = await self._verified_file(upload)
            message, applied = core.post_message(me, body, recipient, chat_ref, None, file=file)
            await core.writes.wait(applied, "posting a file")
            self._drop_upload(upload)
            # Not awaited: the message is durable already; a crash before this commit
            # leaves an upload row that the next start recognises as finished.
            core.writes.submit([EndUpload(upload.upload_id)])
            self._remember_message(message)
        logger.info("file posted: file=%s user=%s chat=%s size=%d", upload.upload_id, me.name,
                    message["chat"], upload.size)
        return self._result(message=message)

    def _caption(self, text: object) -> str:
        if text is None:
            return ""
        caption = validation.require_str(text, "text")
        if len(caption) > self._core.config.max_text:
            raise TooLarge("text", self._core.config.max_text)
        return caption

    async def _finished_before(self, me: UserState, upload_id: str) -> Wire:
        """A repeated finish (its first answer lost) gets the message it made."""
        message = await self._file_message(upload_id) if is_blob_id(upload_id) else None
        if message is None or message["from"] != me.name or self._expired(message):
            raise NotFound("no such upload")
        return self._result(message=message)

    async def _verified_file(self, upload: Upload) -> Wire:
        if upload.received != upload.size:
            raise Conflict(f"upload incomplete: {upload.received} of {upload.size} bytes",
                           {"offset": upload.received})
        size, digest = await self._disk(self.blobs.digest(upload.upload_id), "hashing a file")
        if size != upload.size:
            logger.error("upload %s has %d bytes on disk, expected %d; resuming from there",
                         upload.upload_id, size, upload.size)
            upload.received = await self.blobs.truncate(upload.upload_id, size)
            raise Conflict("upload incomplete", {"offset": upload.received})
        if upload.sha256 is not None and digest != upload.sha256:
            self._discard(upload)
            raise InvalidParams("sha256", f"the uploaded bytes hash to {digest}; "
                                          "the upload was discarded")
        return {"id": upload.upload_id, "name": upload.name, "size": upload.size,
                "content_type": upload.content_type, "sha256": digest}

    # --- downloads ---------------------------------------------------------------------

    async def get(self, actor: Actor, file_id: object, offset: object = 0,
                  length: object = None) -> Wire:
        """Bytes of a file from `offset`. Result: {data (base64), offset (where data
        starts), size, eof, file}."""
        core = self._core
        core.ensure_running()
        me = core.actor(actor)
        wanted = validation.require_str(file_id, "file_id")
        position = validation.require_int(offset, "offset", 0)
        count = self.chunk_size if length is None else validation.require_int(
            length, "length", 1, self.chunk_size)
        message = await self._file_message(wanted) if is_blob_id(wanted) else None
        if message is None or self._expired(message):
            raise NotFound("no such file")
        if message["from"] != me.name and not me.is_member(message["chat"]):
            raise Forbidden("only members of its chat may read this file")
        file: Wire = message["file"]
        size: int = file["size"]
        if position > size:
            raise InvalidParams("offset", f"must be at most {size}, the file's size")
        count = min(count, size - position)
        data = ""
        if count:
            try:
                data = await self.blobs.get_base64(wanted, position, count)
            except FileNotFoundError:
                logger.warning("file %s is referenced but its bytes are gone", wanted)
                raise NotFound("no such file") from None
            except OSError as exc:
                logger.exception("reading file %s failed", wanted)
                raise InternalError("reading the file failed") from exc
        return self._result(data=data, offset=position, size=size,
                            eof=position + count >= size, file=file)

    async def _file_message(self, file_id: str) -> FileMessage | None:
        message = self._file_messages.get(file_id)
        if message is not None:
            self._file_messages.move_to_end(file_id)
            return message
        message = await read_store(self._core.store.find_file(file_id), "finding a file")
        if message is not None:
            self._remember_message(message)
        return message

    def _remember_message(self, message: FileMessage) -> None:
        self._file_messages[message["file"]["id"]] = message
        if len(self._file_messages) > FILE_MESSAGE_CACHE:
            self._file_messages.popitem(last=False)

    def _expired(self, message: FileMessage) -> bool:
        expires_at = message.get("expires_at")
        return expires_at is not None and expires_at <= self._core.clock.time()

    async def delete_files(self, file_ids: Iterable[str]) -> None:
        """Delete the bytes of files whose messages are gone (expired or deleted)."""
        doomed = [file_id for file_id in file_ids if is_blob_id(file_id)]
        for file_id in doomed:
            self._file_messages.pop(file_id, None)
        await self.blobs.delete(doomed)
        if doomed:
            logger.info("deleted the bytes of %d expired file(s)", len(doomed))

    # --- expiry of unfinished uploads --------------------------------------------------

    async def expire_uploads(self) -> list[str]:
        """End every upload idle for `upload_idle` seconds; returns their ids. The timer is
        armed for the remaining uploads even when ending these fails, so one storage
        failure does not stop expiry for good."""
        now = self._core.clock.time()
        overdue = [upload for upload in self._uploads.values()
                   if upload.touched_at + self.upload_idle <= now]
        due = [upload for upload in overdue if not upload.lock.locked()]
        for upload in due:
            self._drop_upload(upload)
        ids = [upload.upload_id for upload in due]
        try:
            if ids:
                await self._core.writes.commit([EndUpload(upload_id) for upload_id in ids],
                                               "ending expired uploads")
                await self.blobs.delete(ids)
                logger.info("%d idle upload(s) expired", len(ids))
        finally:
            # One in use (chunk or finish under way) is looked at again a little later,
            # not at once: an overdue due time would re-fire the timer in a tight loop.
            busy = len(overdue) > len(due)
            self._schedule_expiry(not_before=now + BUSY_RECHECK if busy else 0.0)
        return ids

    def _schedule_expiry(self, not_before: float = 0.0) -> None:
        """Arm the timer for the nearest expiry (none: disarm)."""
        if not self._running or not self._uploads:
            self._timer.cancel()
            return
        due = min(upload.touched_at for upload in self._uploads.values()) + self.upload_idle
        self._timer.rearm(max(due, not_before))

    def _on_timer(self) -> None:
        if self._running:
            self._spawn(self.expire_uploads())

    def _check_alive(self, upload: Upload) -> None:
        # One with a chunk or finish under way is in use, however long ago it was touched.
        if (upload.touched_at + self.upload_idle <= self._core.clock.time()
                and not upload.lock.locked()):
            self._discard(upload)
            raise NotFound("no such upload (it has expired)")

    def _discard(self, upload: Upload) -> None:
        """End an upload now; its row and bytes go in the background."""
        self._drop_upload(upload)
        self._core.writes.submit([EndUpload(upload.upload_id)])
        self._spawn(self.blobs.delete([upload.upload_id]))

    # --- helpers -----------------------------------------------------------------------

    def _my_upload(self, me: UserState, upload_id: object) -> Upload:
        wanted = validation.require_str(upload_id, "upload_id")
        upload = self._uploads.get(wanted)
        if upload is None or upload.user_id != me.user_id:
            raise NotFound("no such upload")
        self._check_alive(upload)
        return upload

    def _add_upload(self, upload: Upload) -> None:
        self._uploads[upload.upload_id] = upload
        self._open_by_user[upload.user_id] = self._open_by_user.get(upload.user_id, 0) + 1

    def _drop_upload(self, upload: Upload) -> None:
        if self._uploads.pop(upload.upload_id, None) is None:
            return
        left = self._open_by_user.get(upload.user_id, 1) - 1
        if left:
            self._open_by_user[upload.user_id] = left
        else:
            self._open_by_user.pop(upload.user_id, None)

    def _new_upload_id(self) -> str:
        while True:
            upload_id = opaque_id(UPLOAD_ID_BYTES)
            if upload_id not in self._uploads:
                return upload_id

    def _spawn(self, work: Awaitable[object]) -> None:
        async def run() -> object:
            return await work

        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background file work failed", exc_info=task.exception())

    async def _disk(self, work: Awaitable[T], what: str) -> T:
        try:
            return await work
        except OSError as exc:
            logger.exception("file storage failed while %s", what)
            raise InternalError(f"file storage failed while {what}") from exc

    def _result(self, **fields: object) -> Wire:
        return dict(fields)

"""file.begin, file.put, file.finish, file.get."""

from __future__ import annotations

from typing import Annotated, cast

from rpcchat.config import ServerConfig
from rpcchat.domain.service import ChatService
from rpcchat.errors import Banned, Conflict, Forbidden, NotFound, RateLimited, TooLarge
from rpcchat.jsonrpc import CallContext, Doc, Length, Pattern, Range, rpc_method
from rpcchat.methods.auth import session_of
from rpcchat.wire_types import BeginResult, GetResult, MessageResult, PutResult

UploadId = Annotated[str, Length(1, 64), Doc("The id file.begin returned")]


class FileMethods:
    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        self.service = service
        self.chunk_size = service.files.chunk_size
        self.max_text = config.max_text

    @rpc_method("file.begin", errors=(TooLarge,),
                summary="Start an upload; size over --max-file-size is refused here")
    async def begin(
        self, ctx: CallContext,
        name: Annotated[str, Length(1, 1024),
                        Doc("File name, shown to readers (cleaned; never used as a path)")],
        size: Annotated[int, Range(ge=0), Doc("Bytes the file has")],
        content_type: Annotated[str, Length(1, 255),
                                Doc("type/subtype; default application/octet-stream")]
        | None = None,
        sha256: Annotated[str, Pattern(r"[0-9a-fA-F]{64}"),
                          Doc("Hex digest that file.finish checks the bytes against")]
        | None = None,
    ) -> BeginResult:
        return cast(BeginResult, await self.service.files.begin(
            session_of(self.service, ctx), name, size, content_type, sha256))

    @rpc_method("file.put", errors=(NotFound, Conflict, TooLarge),
                summary="Append a chunk at offset (which must be the server's offset)")
    async def put(
        self, ctx: CallContext,
        upload_id: UploadId,
        offset: Annotated[int, Range(ge=0), Doc("Where the chunk starts")],
        data: Annotated[str, Doc("The chunk, base64 (at most chunk_size bytes decoded)")],
    ) -> PutResult:
        return cast(PutResult, await self.service.files.put(
            session_of(self.service, ctx), upload_id, offset, data))

    @rpc_method("file.finish",
                errors=(NotFound, Forbidden, Conflict, TooLarge, RateLimited, Banned),
                summary="Check the upload and post it as a message, like send")
    async def finish(
        self, ctx: CallContext,
        upload_id: UploadId,
        to: Annotated[str, Doc("A user: opens or reuses the 1-to-1 chat")] | None = None,
        chat: Annotated[str, Doc("A chat id; general when neither to nor chat")] | None = None,
        text: Annotated[str, Length(0, "max_text", too_large="text"),
                        Doc("Caption")] | None = None,
    ) -> MessageResult:
        return cast(MessageResult, await self.service.files.finish(
            session_of(self.service, ctx), upload_id, to=to, chat=chat, text=text))

    @rpc_method("file.get", errors=(NotFound, Forbidden),
                summary="Read a file's bytes from offset (members of its chat, uploader)")
    async def get(
        self, ctx: CallContext,
        file_id: Annotated[str, Length(1, 64)],
        offset: Annotated[int, Range(ge=0)] = 0,
        length: Annotated[int, Range(ge=1, le="chunk_size"),
                          Doc("Default and maximum: chunk_size")] | None = None,
    ) -> GetResult:
        return cast(GetResult, await self.service.files.get(
            session_of(self.service, ctx), file_id, offset, length))

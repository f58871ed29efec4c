"""The hand-built HTTP/1.1 transport: pure parsing (`parsing`), the asyncio server (`server`)
and the request/response types handlers use (`messages`)."""

from rpcchat.transport.messages import Handler, Request, Response, Route
from rpcchat.transport.parsing import (
    ChunkedDecoder, Framing, HttpError, RequestHead, ResponseHead, format_response,
    parse_request_head, parse_response_head,
)
from rpcchat.transport.server import HttpServer

__all__ = [
    "ChunkedDecoder", "Framing", "Handler", "HttpError", "HttpServer", "Request", "RequestHead",
    "Response", "ResponseHead", "Route", "format_response", "parse_request_head",
    "parse_response_head",
]

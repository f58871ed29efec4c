"""Pure HTTP/1.1 parsing and formatting: bytes in, data or `HttpError` out, no I/O.

Rules implemented (RFC 9112 unless noted):
- §2.2  message parsing: one leading CRLF before the request-line is ignored; a bare CR, a
        bare LF, and whitespace between the start-line and the first field are rejected (400).
- §2.3  HTTP-version: exactly HTTP/1.1 or HTTP/1.0; another well-formed version -> 505,
        anything else (http/1.1, HTTP/1, HTTP/01.1) -> 400.
- §3    request-line `method SP request-target SP HTTP-version` with single spaces; the
        method is a token (RFC 9110 §9), an unknown or overlong one -> 501 (RFC 9110 §15.6.2);
        a request-line over the limit -> 414 (§3 and RFC 9110 §15.5.15).
- §3.2  request-target: origin-form, absolute-form (its authority replaces Host) and
        asterisk-form (OPTIONS only).
- §4    status-line, for `parse_response_head`.
- §5    field lines: `field-name ":" OWS field-value OWS`; no whitespace before the colon
        (§5.1, 400); obs-fold rejected (§5.2, 400); CTLs other than HTAB in a value rejected
        (RFC 9110 §5.5, 400); too many or too large fields -> 431 (RFC 6585 §5).
- §6.1  Transfer-Encoding: chunked must be the final coding and appear once (400); other
        codings are not implemented (501); with Content-Length, or in HTTP/1.0 -> 400, close.
- §6.2  Content-Length: 1*DIGIT; identical repeated or comma-separated values are merged
        (RFC 9110 §8.6), differing ones -> 400; absurd lengths are capped, not overflowed.
- §6.3  message body length for requests (none, Content-Length, chunked) and responses.
- §7.1  chunked coding: chunk-size 1*HEXDIG (at most 16 digits), extensions checked and
        ignored (§7.1.1), trailer fields checked and discarded (§7.1.2), strict CRLF.
- §9.3  persistence: HTTP/1.1 keeps alive unless `Connection: close`; HTTP/1.0 closes
        unless `Connection: keep-alive`.
- RFC 9110 §7.2 Host (missing in HTTP/1.1, repeated or invalid -> 400), §10.1.1 Expect:
  100-continue, §6.6.1 Date on every response, §8.6 no Content-Length on 1xx/204/304.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import Iterable

from rpcchat.config import HttpLimits

__all__ = [
    "ChunkedDecoder", "Framing", "HttpError", "KNOWN_METHODS", "REASONS", "RequestHead",
    "ResponseHead", "classify_oversized_head", "format_response", "http_date", "is_field_value",
    "is_token", "parse_request_head", "parse_response_head", "request_prefix_ok",
]

DEFAULT_LIMITS = HttpLimits()

# Methods this server recognises (RFC 9110 §9 plus PATCH, RFC 5789). Anything else, CONNECT
# included (we are not a proxy), is "not implemented" (501); a recognised method that a route
# does not serve is 405.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"})
MAX_METHOD_LENGTH = 32

REASONS: dict[int, str] = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    417: "Expectation Failed", 422: "Unprocessable Content", 426: "Upgrade Required",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

# Content-Length values longer than this many significant digits are capped at
# CONTENT_LENGTH_CAP: every limit rejects them anyway, and int() of thousands of digits is
# both slow and refused by CPython.
_MAX_LENGTH_DIGITS = 18
CONTENT_LENGTH_CAP: int = 10 ** _MAX_LENGTH_DIGITS

_TCHAR = "!#$%&'*+\\-.^_`|~0-9A-Za-z"
_TOKEN = re.compile(f"[{_TCHAR}]+")
# A field line as decoded from latin-1: a token name, a colon, OWS, a value of HTAB, SP, VCHAR
# and obs-text that starts and ends with a visible character, OWS, CRLF. One C-level findall
# over the whole section keeps the hot path short; `_diagnose_fields` names the exact fault
# only when it fails.
_FIELD_VALUE_CHARS = "\\t \\x21-\\x7e\\x80-\\xff"
_VISIBLE = "\\x21-\\x7e\\x80-\\xff"
# Possessive quantifiers: every run of visible characters and of blanks is taken whole,
# so a hostile line costs linear time (no backtracking between OWS and the value).
_FIELD_LINE = re.compile(
    f"^([{_TCHAR}]++):[ \\t]*+"
    f"((?:[{_VISIBLE}]++(?:[ \\t]++[{_VISIBLE}]++)*+)?)"
    "[ \\t]*+\\r\\n", re.MULTILINE)
_FIELD_VALUE = re.compile(f"[{_FIELD_VALUE_CHARS}]*")
_REQUEST_LINE = re.compile(f"([{_TCHAR}]+) ([\\x21\\x22\\x24-\\x7e]+) (HTTP/1\\.[01])")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
# VCHAR without '#': a fragment is never part of a request-target (RFC 9112 §3.2).
_TARGET = re.compile(r"[\x21\x22\x24-\x7e]+")
_ABSOLUTE_FORM = re.compile(r"(?i:https?)://([^/?]*)([^?]*)(?:\?(.*))?", re.DOTALL)
# RFC 3986 host [":" port]: IP-literal, IPv4address or reg-name (percent-encoding allowed).
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.vV]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_DIGITS = re.compile(r"[0-9]+")
_STATUS_LINE = re.compile(f"HTTP/(1\\.[0-9]) ([0-9]{{3}})(?: ([{_FIELD_VALUE_CHARS}]*))?")
# What the first bytes of a request may look like: an optional leading CRLF, then a method
# (token) followed by SP or by the end of what has arrived so far.
_REQUEST_PREFIX = re.compile(f"(?:\\r(?:\\n|\\Z))?(?:[{_TCHAR}]++(?: |\\Z)|\\Z)".encode())

_SPECIAL_FIELDS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                             "expect"})
# The lower-cased names of the fields clients send most, as sent in either usual spelling:
# looked up instead of lower-cased, each request shares these strings.
_COMMON_NAMES = {spelling: name for name in (
    "host", "content-length", "content-type", "authorization", "connection", "accept",
    "accept-encoding", "user-agent", "transfer-encoding", "expect")
    for spelling in (name, "-".join(part.capitalize() for part in name.split("-")))}


class HttpError(Exception):
    """A protocol fault, carrying the status to answer with.

    `close` says whether the connection must be closed after the answer (the default: after
    a framing fault we no longer know where the next request starts). `headers` are extra
    response headers, e.g. `Allow` on a 405.
    """

    def __init__(self, status: int, reason: str, *, close: bool = True,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.close = close
        self.headers = list(headers)


class Framing(enum.Enum):
    """How the message body is delimited (RFC 9112 §6.3)."""

    NONE = "none"                  # no body at all
    LENGTH = "length"              # exactly `content_length` bytes
    CHUNKED = "chunked"            # chunked transfer coding
    UNTIL_CLOSE = "until-close"    # responses only: the body ends when the connection does


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    framing: Framing
    content_length: int            # 0 unless framing is LENGTH
    expect_continue: bool
    host: str | None


def is_token(text: str) -> bool:
    """Whether `text` is a token (RFC 9110 §5.6.2): a valid method or field name."""
    return _TOKEN.fullmatch(text) is not None


def is_field_value(text: str) -> bool:
    """Whether `text` may be sent as a field value: HTAB, SP, VCHAR and obs-text only."""
    return _FIELD_VALUE.fullmatch(text) is not None


def first_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive) among lower-cased field names."""
    wanted = name.lower()
    for key, value in headers:
        if key == wanted:
            return value
    return None


@dataclass(slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    framing: Framing
    content_length: int            # 0 unless framing is LENGTH
    keep_alive: bool

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


# ---------------------------------------------------------------------------------------------
# Request head


def parse_request_head(data: bytes, limits: HttpLimits = DEFAULT_LIMITS) -> RequestHead:
    """Parse a request head: request-line and field lines, up to and including the empty line.

    Raises HttpError with the status to answer (400, 414, 431, 501 or 505).
    """
    text = data.decode("latin-1")
    start = 2 if text.startswith("\r\n") else 0
    line_end = text.find("\r\n", start)
    if line_end < 0:
        raise HttpError(400, "request head not terminated by CRLF")
    if line_end - start > limits.max_request_line:
        raise _oversized_request_line(text[start:])
    match = _REQUEST_LINE.fullmatch(text, start, line_end)
    if match is None or match.group(1) not in KNOWN_METHODS:
        raise _request_line_error(text[start:line_end])
    method, target, version = match.groups()
    if not text.endswith("\r\n", line_end + 2):
        raise HttpError(400, "request head not terminated by an empty line")

    keep_alive = version == "HTTP/1.1"
    expect_continue = False
    host: str | None = None
    host_seen = False
    length_values: list[str] = []
    coding_values: list[str] = []
    headers: list[tuple[str, str]] = []
    # One pass: lower-case each name and pick out the fields that decide framing.
    for name, value in _field_lines(text, line_end + 2, len(text) - 2, limits):
        name = _COMMON_NAMES.get(name) or name.lower()
        headers.append((name, value))
        if name not in _SPECIAL_FIELDS:
            continue
        if name == "content-length":
            length_values.append(value)
        elif name == "host":
            if host_seen:
                raise HttpError(400, "more than one Host header")
            host_seen = True
            host = value
        elif name == "connection":
            keep_alive = _keep_alive(value, keep_alive)
        elif name == "transfer-encoding":
            coding_values.append(value)
        elif value.lower() == "100-continue":     # expect
            expect_continue = version == "HTTP/1.1"

    if target[0] == "/":                       # origin-form, by far the most common
        path, _, query = target.partition("?")
    else:
        path, query, target_host = _split_target(method, target)
        if target_host is not None:
            host = target_host                 # RFC 9112 §3.2.2: the target's authority wins
    if host is not None and not _HOST.fullmatch(host):
        raise HttpError(400, "invalid Host header")
    if not host_seen and version == "HTTP/1.1":
        raise HttpError(400, "missing Host header")

    if not coding_values and len(length_values) == 1 and length_values[0].isdigit() \
            and length_values[0].isascii() and len(length_values[0]) <= _MAX_LENGTH_DIGITS:
        content_length = int(length_values[0])      # the common case, checked
        framing = Framing.LENGTH if content_length else Framing.NONE
    else:
        framing, content_length = _request_framing(version, length_values, coding_values)
    return RequestHead(method, target, path, query, version, headers, keep_alive, framing,
                       content_length, expect_continue, host)


def _request_line_error(line: str) -> HttpError:
    """The precise fault of a request-line that failed the one-regex check."""
    parts = line.split(" ")
    if len(parts) != 3:
        if parts and len(parts[0]) > MAX_METHOD_LENGTH and _TOKEN.fullmatch(parts[0]):
            return HttpError(501, "method too long")
        return HttpError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        return HttpError(400, "invalid method")
    if method not in KNOWN_METHODS:
        return HttpError(501, "method not implemented")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if _VERSION.fullmatch(version):
            return HttpError(505, "HTTP version not supported")
        return HttpError(400, "malformed HTTP version")
    if not _TARGET.fullmatch(target):
        return HttpError(400, "invalid request target")
    return HttpError(400, "malformed request line")


def _split_target(method: str, target: str) -> tuple[str, str, str | None]:
    """(path, query, authority from an absolute-form target or None) of a target that is
    not in origin-form (the caller splits that common case itself)."""
    if target == "*":
        if method != "OPTIONS":
            raise HttpError(400, "asterisk-form target on a method other than OPTIONS")
        return "*", "", None
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise HttpError(400, "invalid request target")
    authority, path, query = match.group(1), match.group(2), match.group(3) or ""
    if not authority or not _HOST.fullmatch(authority):
        raise HttpError(400, "invalid authority in request target")
    return path or "/", query, authority


def _oversized_request_line(rest: str) -> HttpError:
    """The error for a request-line over the limit: 501 for an overlong method, else 414."""
    head = rest[:MAX_METHOD_LENGTH + 1]
    space = head.find(" ")
    if space < 0:
        if _TOKEN.fullmatch(head):
            return HttpError(501, "method too long")
        return HttpError(400, "malformed request line")
    method = head[:space]
    if not _TOKEN.fullmatch(method):
        return HttpError(400, "invalid method")
    if method not in KNOWN_METHODS:
        return HttpError(501, "method not implemented")
    return HttpError(414, "request-line too long")


def classify_oversized_head(prefix: bytes, limits: HttpLimits = DEFAULT_LIMITS) -> HttpError:
    """The error for a request head that did not end within the size limit.

    `prefix` is what arrived (at least the limit's worth of bytes).
    """
    text = prefix.decode("latin-1")
    start = 2 if text.startswith("\r\n") else 0
    line_end = text.find("\r\n", start)
    if line_end < 0 or line_end - start > limits.max_request_line:
        return _oversized_request_line(text[start:])
    match = _REQUEST_LINE.fullmatch(text, start, line_end)
    if match is None or match.group(1) not in KNOWN_METHODS:
        return _request_line_error(text[start:line_end])
    return HttpError(431, "request header fields too large")


def request_prefix_ok(first_bytes: bytes | bytearray) -> bool:
    """Whether the first bytes received of a request can start a valid request-line.

    Lets the server answer 400 to binary garbage (or TLS) at once instead of waiting for the
    header deadline.
    """
    return _REQUEST_PREFIX.match(first_bytes) is not None


def _keep_alive(connection: str, current: bool) -> bool:
    for option in connection.split(","):
        option = option.strip(" \t").lower()
        if option == "close":
            return False
        if option == "keep-alive":
            current = True
    return current


def _request_framing(version: str, length_values: list[str],
                     coding_values: list[str]) -> tuple[Framing, int]:
    if coding_values:
        if version == "HTTP/1.0":
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if length_values:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        codings = _transfer_codings(coding_values)
        if not codings:
            raise HttpError(400, "empty Transfer-Encoding")
        if "chunked" in codings and (codings[-1] != "chunked" or codings.count("chunked") > 1):
            raise HttpError(400, "chunked must be the final transfer coding, once")
        if codings != ["chunked"]:
            raise HttpError(501, "transfer coding not implemented")
        return Framing.CHUNKED, 0
    if length_values:
        length = _content_length(length_values)
        return (Framing.LENGTH, length) if length else (Framing.NONE, 0)
    return Framing.NONE, 0


def _content_length(values: list[str]) -> int:
    """The one Content-Length that all (comma-separated, repeated) values agree on."""
    if len(values) == 1:
        value = values[0]
        if value.isdigit() and value.isascii() and len(value) <= _MAX_LENGTH_DIGITS:
            return int(value)
    found: str | None = None
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if not _DIGITS.fullmatch(item):
                raise HttpError(400, "invalid Content-Length")
            item = item.lstrip("0") or "0"
            if found is None:
                found = item
            elif item != found:
                raise HttpError(400, "conflicting Content-Length values")
    assert found is not None
    if len(found) > _MAX_LENGTH_DIGITS:
        return CONTENT_LENGTH_CAP
    return int(found)


def _transfer_codings(values: list[str]) -> list[str]:
    """Lower-cased coding names in order; empty list elements are skipped (RFC 9110 §5.6.1)."""
    codings: list[str] = []
    for value in values:
        for item in value.split(","):
            name, _, params = item.partition(";")
            name = name.strip(" \t").lower()
            if not name and not params:
                continue
            if not _TOKEN.fullmatch(name):
                raise HttpError(400, "invalid Transfer-Encoding")
            if name == "chunked" and params.strip(" \t"):
                raise HttpError(400, "chunked takes no parameters")
            codings.append(name)
    return codings


# ---------------------------------------------------------------------------------------------
# Field lines (shared by requests, responses and trailers)


def _parse_fields(text: str, start: int, end: int,
                  limits: HttpLimits) -> list[tuple[str, str]]:
    """Field lines in text[start:end], each ending in CRLF: names lower-cased, values
    stripped of OWS."""
    return [(name.lower(), value) for name, value in _field_lines(text, start, end, limits)]


def _field_lines(text: str, start: int, end: int,
                 limits: HttpLimits) -> list[tuple[str, str]]:
    """Field lines in text[start:end], each ending in CRLF: names as sent, values stripped
    of OWS."""
    if start == end:
        return []
    if end - start > limits.max_header_bytes:
        raise HttpError(431, "request header fields too large")
    if not text.startswith("\r\n", end - 2):
        raise HttpError(400, "header section not terminated by CRLF")
    line_count = text.count("\n", start, end)
    if line_count > limits.max_header_count:
        raise HttpError(431, "too many header fields")
    # Each LF-terminated line holds at most one match, anchored at its start and ending at
    # its CRLF: as many matches as LFs means every line is a valid field line.
    fields = _FIELD_LINE.findall(text, start, end)
    if len(fields) != line_count:
        raise _diagnose_fields(text[start:end - 2].split("\r\n"))
    return fields


def _diagnose_fields(lines: list[str]) -> HttpError:
    """The precise fault in field lines that failed the block check."""
    for line in lines:
        if "\r" in line:
            return HttpError(400, "bare CR in header section")
        if "\n" in line:
            return HttpError(400, "bare LF in header section")
        if line[:1] in (" ", "\t"):
            return HttpError(400, "obs-fold or whitespace before a header field")
        name, colon, value = line.partition(":")
        if not colon:
            return HttpError(400, "header line without a colon")
        if name != name.rstrip(" \t"):
            return HttpError(400, "whitespace between header name and colon")
        if not _TOKEN.fullmatch(name):
            return HttpError(400, "invalid header name")
        if "\x00" in value:
            return HttpError(400, "NUL in header value")
        if not _FIELD_VALUE.fullmatch(value):
            return HttpError(400, "control character in header value")
    return HttpError(400, "malformed header section")


# ---------------------------------------------------------------------------------------------
# Response head (for HTTP clients)


def parse_response_head(data: bytes, request_method: str = "POST",
                        limits: HttpLimits = DEFAULT_LIMITS) -> ResponseHead:
    """Parse a response head (status-line and fields, through the empty line).

    `request_method` matters for framing: a response to HEAD never has a body. Faults raise
    HttpError(502).
    """
    try:
        return _parse_response_head(data, request_method, limits)
    except HttpError as err:
        if err.status == 502:
            raise
        raise HttpError(502, f"invalid response: {err.reason}") from err


def _parse_response_head(data: bytes, request_method: str, limits: HttpLimits) -> ResponseHead:
    text = data.decode("latin-1")
    line_end = text.find("\r\n")
    if line_end < 0 or not text.endswith("\r\n", line_end + 2):
        raise HttpError(502, "response head not terminated by an empty line")
    match = _STATUS_LINE.fullmatch(text, 0, line_end)
    if match is None:
        raise HttpError(502, "malformed status line")
    version = "HTTP/" + match.group(1)
    status = int(match.group(2))
    reason = match.group(3) or ""
    headers = _parse_fields(text, line_end + 2, len(text) - 2, limits)

    keep_alive = version == "HTTP/1.1"
    length_values: list[str] = []
    coding_values: list[str] = []
    for name, value in headers:
        if name == "content-length":
            length_values.append(value)
        elif name == "transfer-encoding":
            coding_values.append(value)
        elif name == "connection":
            keep_alive = _keep_alive(value, keep_alive)

    framing, content_length = Framing.UNTIL_CLOSE, 0
    if request_method == "HEAD" or status < 200 or status in (204, 304):
        framing = Framing.NONE
    elif coding_values:
        codings = _transfer_codings(coding_values)
        if codings and codings[-1] == "chunked":
            if codings.count("chunked") > 1:
                raise HttpError(502, "chunked applied more than once")
            framing = Framing.CHUNKED
    elif length_values:
        content_length = _content_length(length_values)
        framing = Framing.LENGTH if content_length else Framing.NONE
    if framing is Framing.UNTIL_CLOSE:
        keep_alive = False
    return ResponseHead(version, status, reason, headers, framing, content_length, keep_alive)


# ---------------------------------------------------------------------------------------------
# Chunked transfer coding

_BTCHAR = _TCHAR.encode()
_CHUNK_LINE = re.compile(
    b"([0-9A-Fa-f]{1,16})"
    b"(?:[ \\t]*+;[ \\t]*+[" + _BTCHAR + b"]++"
    b"(?:[ \\t]*+=[ \\t]*+(?:[" + _BTCHAR + b"]++"
    b"|\"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*\"))?)*"
    b"\\r\\n")
_TRAILER_LINE = re.compile(b"[" + _BTCHAR + b"]+:[\\t \\x21-\\x7e\\x80-\\xff]*\\r\\n")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Incremental decoder of a chunked body (RFC 9112 §7.1), for requests and responses.

    Feed it bytes as they arrive; `feed` returns the payload bytes they carried. Once `done`,
    bytes fed past the end of the body are kept in `unused` (the start of the next message).
    Faults raise HttpError: 400 for bad syntax, 413 when the payload would exceed `max_body`,
    431 for an oversized trailer section.

    `wanted()` tells a reader how much to read next without over-reading: an exact byte count,
    or None for "one line, through LF".
    """

    def __init__(self, max_body: int | None = None, *, max_line: int = 4096,
                 max_trailer_bytes: int = 16 * 1024) -> None:
        self._max_body = max_body
        self._max_line = max_line
        self._max_trailer_bytes = max_trailer_bytes
        self._state = _SIZE
        self._remaining = 0           # data bytes left in the current chunk
        self._crlf_seen = 0           # bytes of the CRLF after chunk data already checked
        self._line = bytearray()      # a size or trailer line split across feeds
        self._trailer_bytes = 0
        self._received = 0
        self._unused = bytearray()

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def received(self) -> int:
        """Payload bytes decoded so far."""
        return self._received

    @property
    def unused(self) -> bytes:
        """Bytes fed after the end of the body."""
        return bytes(self._unused)

    def wanted(self) -> int | None:
        if self._state == _DATA:
            return self._remaining
        if self._state == _DATA_END:
            return 2 - self._crlf_seen
        if self._state == _DONE:
            return 0
        return None

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                out.append(data[pos:pos + take])
                pos += take
                self._remaining -= take
                self._received += take
                if not self._remaining:
                    self._state, self._crlf_seen = _DATA_END, 0
            elif state == _DATA_END:
                if data[pos] != b"\r\n"[self._crlf_seen]:
                    raise HttpError(400, "chunk data not followed by CRLF")
                pos += 1
                self._crlf_seen += 1
                if self._crlf_seen == 2:
                    self._state = _SIZE
            elif state == _DONE:
                self._unused += data[pos:]
                break
            else:
                pos = self._take_line(data, pos)
        return out[0] if len(out) == 1 else b"".join(out)

    def _take_line(self, data: bytes, pos: int) -> int:
        """Buffer bytes of a size/trailer line; process the line once its LF arrived."""
        newline = data.find(b"\n", pos)
        stop = len(data) if newline < 0 else newline + 1
        self._line += data[pos:stop]
        if len(self._line) > self._max_line:
            raise HttpError(400 if self._state == _SIZE else 431, "chunk line too long")
        if newline >= 0:
            line = bytes(self._line)
            self._line.clear()
            if self._state == _SIZE:
                self._size_line(line)
            else:
                self._trailer_line(line)
        return stop

    def _size_line(self, line: bytes) -> None:
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise HttpError(400, "invalid chunk size line")
        size = int(match.group(1), 16)
        if size == 0:
            self._state = _TRAILER
            return
        if self._max_body is not None and self._received + size > self._max_body:
            raise HttpError(413, "request body too large")
        self._state, self._remaining = _DATA, size

    def _trailer_line(self, line: bytes) -> None:
        if line == b"\r\n":
            self._state = _DONE
            return
        if _TRAILER_LINE.fullmatch(line) is None:
            raise HttpError(400, "invalid trailer field")
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_trailer_bytes:
            raise HttpError(431, "trailer section too large")


# ---------------------------------------------------------------------------------------------
# Responses


class _DateCache:
    """The IMF-fixdate of the current second, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._value = formatdate(second, usegmt=True)
            self._second = second
        return self._value


http_date = _DateCache().get

_STATUS_LINES = {status: f"HTTP/1.1 {status} {reason}\r\n" for status, reason in REASONS.items()}


def _status_line(status: int) -> str:
    if not 100 <= status <= 999:
        raise ValueError(f"invalid status code {status}")
    return f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"


@functools.lru_cache(maxsize=64)
def _content_type_line(content_type: str) -> str:
    """Validated once per distinct value: handlers use a handful of content types."""
    if not is_field_value(content_type):
        raise ValueError("invalid Content-Type value")
    return f"Content-Type: {content_type}\r\n"


def _header_lines(headers: Iterable[tuple[str, str]]) -> str:
    lines = []
    for name, value in headers:
        if not is_token(name) or not is_field_value(value):
            raise ValueError(f"invalid response header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def format_response(status: int, body: bytes = b"", content_type: str | None = None,
                    headers: Iterable[tuple[str, str]] = (), *, now: float,
                    close: bool = False, keep_alive_header: bool = False,
                    include_body: bool = True) -> bytes:
    """The bytes of a whole HTTP/1.1 response.

    Always: status-line, Date (of `now`), `Server: rpcchat`. Content-Length except on 1xx,
    204 and 304 (which never carry a body). `Connection: close` when `close`, else
    `Connection: keep-alive` when `keep_alive_header` (an HTTP/1.0 client that asked for it).
    `include_body=False` answers HEAD: the same head, no body. Raises ValueError for a header
    name or value that would break the framing (a bug in the caller).
    """
    status_line = _STATUS_LINES.get(status) or _status_line(status)
    if status < 200 or status == 204 or status == 304:
        body = b""
        length = ""
    else:
        length = f"Content-Length: {len(body)}\r\n"
    type_line = "" if content_type is None else _content_type_line(content_type)
    extra = _header_lines(headers) if headers else ""
    connection = ("Connection: close\r\n" if close
                  else "Connection: keep-alive\r\n" if keep_alive_header else "")
    head = (f"{status_line}Date: {http_date(now)}\r\nServer: rpcchat\r\n"
            f"{length}{type_line}{extra}{connection}\r\n").encode("latin-1")
    return head + body if include_body and body else head

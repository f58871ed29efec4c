"""Raw-socket HTTP tools of the robustness tests: send exact bytes (whole or in small pieces),
collect everything the server answers until it closes, check each response against the
contract, and the byte mutations the HTTP fuzzer applies to valid requests."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

from rpcchat.config import HttpLimits

# Every wait of the server is short: a head or body that never completes is refused within
# half a second, an idle kept-alive connection is closed after half a second.
FUZZ_LIMITS = HttpLimits(header_timeout=0.5, body_timeout=0.5, keepalive_timeout=0.5,
                         write_timeout=2.0, shutdown_grace=0.5)
# Statuses the contract allows for HTTP-level faults and successes (API.md, Transport).
ALLOWED_STATUSES = frozenset({200, 204, 400, 404, 405, 408, 411, 413, 414, 431, 501, 505})
# Statuses that never carry a body (RFC 9110 §8.6).
BODYLESS_STATUSES = frozenset({100, 204, 304})
HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n"
HEALTH_BODY = b'{"status": "ok"}'

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([0-9]{3}) [\t \x21-\x7e]*")
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([\t \x21-\x7e]*)")
_READ_SIZE = 65536


@dataclass
class ParsedResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """What the server did with one connection's bytes."""

    received: bytes          # every byte the server sent, in order
    closed: bool             # the server closed (EOF or reset) before the bound ran out
    reset: bool              # the connection ended with a reset, not a FIN
    elapsed: float           # seconds from the last byte sent until the close (or the bound)


@dataclass
class ResponseCheck:
    """The responses found in an exchange, and every way they break the contract."""

    responses: list[ParsedResponse] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def reset_on_close(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def exchange(port: int, pieces: list[bytes], *, half_close: bool,
                   bound: float) -> Exchange:
    """Send `pieces` one write each (yielding to the loop in between, so the server sees them
    apart), optionally half-close, then read until the server closes or `bound` runs out."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=_READ_SIZE)
    received = bytearray()
    try:
        await _send_pieces(writer, pieces, half_close)
        started = loop.time()
        closed, reset = await _read_until_close(reader, received, started + bound)
        return Exchange(bytes(received), closed, reset, loop.time() - started)
    finally:
        writer.transport.abort()


async def _send_pieces(writer: asyncio.StreamWriter, pieces: list[bytes],
                       half_close: bool) -> None:
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)   # one loop turn: the in-process server reads this piece
        if half_close and writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # The server answered early and closed (e.g. 400 on garbage): what it sent is
        # still in our receive buffer, or the connection was reset; the reader sees which.
        pass


async def _read_until_close(reader: asyncio.StreamReader, received: bytearray,
                            deadline: float) -> tuple[bool, bool]:
    """(closed, reset) after reading everything until EOF, a reset or the deadline."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False, False
        try:
            chunk = await asyncio.wait_for(reader.read(_READ_SIZE), remaining)
        except TimeoutError:
            return False, False
        except ConnectionError:
            return True, True
        if not chunk:
            return True, False
        received += chunk


def check_responses(data: bytes, *, reset: bool, head_possible: bool = False) -> ResponseCheck:
    """Split `data` into HTTP responses and list every contract violation.

    Each response: an HTTP/1.1 status-line with an allowed status, well-formed header lines,
    Date (except on 100 Continue), Content-Length matching the body (none on 100/204), and no
    response after one that said `Connection: close`. A reset may cut the last response short;
    a clean close may not. `head_possible`: the request bytes may hold a HEAD request, whose
    answer has a Content-Length but no body.
    """
    check = ResponseCheck()
    position = 0
    closing = False
    while position < len(data):
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            if not reset:
                check.problems.append(f"truncated response head: {data[position:][:120]!r}")
            break
        if closing:
            check.problems.append("a response after Connection: close")
        response, problems = _parse_head(data[position:end])
        check.problems.extend(problems)
        position = end + 4
        if response is None:
            break
        position, complete = _take_body(response, data, position, head_possible)
        if not complete:
            if not reset:
                check.problems.append(f"{response.status} body shorter than Content-Length")
            break
        check.responses.append(response)
        closing = closing or response.headers.get("connection", "").lower() == "close"
    return check


def _parse_head(head: bytes) -> tuple[ParsedResponse | None, list[str]]:
    lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        return None, [f"malformed status line {lines[0][:120]!r}"]
    status = int(match.group(1))
    problems = []
    if status != 100 and status not in ALLOWED_STATUSES:
        problems.append(f"status {status} is not allowed")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        field_match = _FIELD_LINE.fullmatch(line)
        if field_match is None:
            problems.append(f"malformed header line {line[:120]!r}")
            continue
        name = field_match.group(1).decode("ascii").lower()
        if name in headers:
            problems.append(f"header {name} sent twice")
        headers[name] = field_match.group(2).decode("latin-1").strip()
    if status != 100 and "date" not in headers:
        problems.append(f"{status} without Date")
    if status in BODYLESS_STATUSES:
        if "content-length" in headers and status != 100:
            problems.append(f"{status} with a Content-Length")
    elif not headers.get("content-length", "").isdigit():
        problems.append(f"{status} without a valid Content-Length")
    return ParsedResponse(status, headers, b""), problems


def _take_body(response: ParsedResponse, data: bytes, position: int,
               head_possible: bool) -> tuple[int, bool]:
    """(position after the body, whether the body arrived whole)."""
    length_text = response.headers.get("content-length", "0")
    length = int(length_text) if length_text.isdigit() else 0
    if response.status in BODYLESS_STATUSES or length == 0:
        return position, True
    if head_possible and (data.startswith(b"HTTP/1.1 ", position) or position == len(data)):
        return position, True        # the answer to a HEAD request: no body follows
    if len(data) - position < length:
        return len(data), False
    response.body = data[position:position + length]
    return position + length, True


async def health_ok(port: int, timeout: float = 3.0) -> str | None:
    """None when a fresh connection's GET /health answers 200 {"status": "ok"}; otherwise
    what went wrong."""
    try:
        result = await asyncio.wait_for(
            exchange(port, [HEALTH_REQUEST], half_close=False, bound=timeout), timeout + 1.0)
    except (OSError, TimeoutError) as exc:
        return f"GET /health failed: {exc!r}"
    check = check_responses(result.received, reset=result.reset)
    if check.problems:
        return f"GET /health answered badly: {check.problems}"
    if len(check.responses) != 1:
        return f"GET /health got {len(check.responses)} responses"
    response = check.responses[0]
    if response.status != 200 or response.body != HEALTH_BODY:
        return f"GET /health answered {response.status} {response.body[:100]!r}"
    return None


# ---------------------------------------------------------------------------------------------
# Valid requests the fuzzer starts from

STATUS_CALL = b'{"jsonrpc":"2.0","method":"status","id":1}'
DISCOVER_CALL = b'{"jsonrpc":"2.0","method":"rpc.discover","id":"d"}'


def post_rpc(body: bytes = STATUS_CALL, extra: bytes = b"") -> bytes:
    return (b"POST /rpc HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


def post_rpc_chunked(body: bytes = STATUS_CALL) -> bytes:
    """The body in two chunks, with chunk extensions and a trailer field."""
    first, second = body[:10], body[10:]
    return (b"POST /rpc HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x;ext=1\r\n%s\r\n%x;name=\"quoted value\";flag\r\n%s\r\n"
            b"0\r\nX-Trailer: done\r\n\r\n" % (len(first), first, len(second), second))


def get_health(version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET /health %s\r\nHost: fuzz\r\nAccept: */*\r\n\r\n" % version


def valid_requests() -> dict[str, bytes]:
    """The seeds of the HTTP fuzzer, by name; each is answered 200 (or 204) as it is."""
    return {
        "post": post_rpc(),
        "post-expect": post_rpc(DISCOVER_CALL, b"Expect: 100-continue\r\n"),
        "chunked": post_rpc_chunked(),
        "health": get_health(),
        "health-1.0": get_health(b"HTTP/1.0"),
        "pipelined-posts": post_rpc() + post_rpc(DISCOVER_CALL),
        "pipelined-mixed": get_health() + post_rpc_chunked() + post_rpc(),
        "head": b"HEAD /health HTTP/1.1\r\nHost: fuzz\r\n\r\n",
        "options": b"OPTIONS * HTTP/1.1\r\nHost: fuzz\r\n\r\n",
        "absolute-form": post_rpc().replace(b"POST /rpc", b"POST http://fuzz/rpc", 1),
        "post-1.0-keep-alive": post_rpc(extra=b"Connection: keep-alive\r\n").replace(
            b"HTTP/1.1", b"HTTP/1.0", 1),
    }


# ---------------------------------------------------------------------------------------------
# Mutations

Mutation = Callable[[bytes, Random], bytes]
_CONTROL_BYTES = [b"\r", b"\n", b"\x00", b"\x7f", b"\xff", b"\r\n", b"\t", b" "]
_HUGE_NUMBERS = [b"9" * 19, b"9" * 40, b"18446744073709551616", b"f" * 17, b"1" * 4400,
                 b"-1", b"+5", b"0x10", b"1e3"]
_NON_ASCII = ["é".encode(), "💥".encode(), b"\xc3", b"\xff\xfe", "ü".encode("latin-1"),
              "\u202e".encode()]
_NUMBER = re.compile(rb"(?<=Content-Length: )[0-9]+|(?<=\r\n)[0-9a-f]+(?=[;\r])")
_METHOD = re.compile(rb"(?:^|(?<=\r\n\r\n)|(?<=}))(GET|POST|HEAD|OPTIONS)(?= )")


def flip_bit(data: bytes, rng: Random) -> bytes:
    if not data:
        return data
    index = rng.randrange(len(data))
    flipped = data[index] ^ (1 << rng.randrange(8))
    return data[:index] + bytes([flipped]) + data[index + 1:]


def insert_byte(data: bytes, rng: Random) -> bytes:
    index = rng.randrange(len(data) + 1)
    return data[:index] + bytes([rng.randrange(256)]) + data[index:]


def delete_byte(data: bytes, rng: Random) -> bytes:
    if not data:
        return data
    index = rng.randrange(len(data))
    return data[:index] + data[index + 1:]


def insert_control(data: bytes, rng: Random) -> bytes:
    index = rng.randrange(len(data) + 1)
    return data[:index] + rng.choice(_CONTROL_BYTES) + data[index:]


def truncate(data: bytes, rng: Random) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def _header_lines(data: bytes) -> list[tuple[int, int]]:
    """(start, end including CRLF) of every header line of the first request head."""
    head_end = data.find(b"\r\n\r\n")
    first_end = data.find(b"\r\n")
    if head_end < 0 or first_end < 0 or first_end == head_end:
        return []
    spans = []
    start = first_end + 2
    while start < head_end + 2:
        end = data.find(b"\r\n", start) + 2
        spans.append((start, end))
        start = end
    return spans


def duplicate_header(data: bytes, rng: Random) -> bytes:
    spans = _header_lines(data)
    if not spans:
        return insert_control(data, rng)
    start, end = rng.choice(spans)
    return data[:end] + data[start:end] + data[end:]


def drop_header(data: bytes, rng: Random) -> bytes:
    spans = _header_lines(data)
    if not spans:
        return delete_byte(data, rng)
    start, end = rng.choice(spans)
    return data[:start] + data[end:]


def nudge_length(data: bytes, rng: Random) -> bytes:
    """Content-Length (or a chunk size) one more or one less than the truth."""
    matches = list(_NUMBER.finditer(data))
    if not matches:
        return flip_bit(data, rng)
    match = rng.choice(matches)
    text = match.group(0)
    is_hex = not data[:match.start()].endswith(b"Content-Length: ")
    if len(text) > 30:
        # Already absurd (an earlier mutation): change its last digit instead of int()-ing
        # thousands of digits.
        new = text[:-1] + (b"0" if text[-1:] != b"0" else b"1")
        return data[:match.start()] + new + data[match.end():]
    value = int(text, 16 if is_hex else 10) + rng.choice([-1, 1])
    new = (b"%x" if is_hex else b"%d") % max(value, 0)
    return data[:match.start()] + new + data[match.end():]


def huge_number(data: bytes, rng: Random) -> bytes:
    """A length, a chunk size or a JSON number replaced by something absurd."""
    matches = list(_NUMBER.finditer(data)) + list(re.finditer(rb'(?<=:)[0-9]+(?=[,}])', data))
    if not matches:
        return insert_control(data, rng)
    match = rng.choice(matches)
    return data[:match.start()] + rng.choice(_HUGE_NUMBERS) + data[match.end():]


def non_ascii_request_line(data: bytes, rng: Random) -> bytes:
    line_end = data.find(b"\r\n")
    if line_end <= 0:
        return insert_byte(data, rng)
    index = rng.randrange(line_end + 1)
    return data[:index] + rng.choice(_NON_ASCII) + data[index:]


def lowercase_method(data: bytes, rng: Random) -> bytes:
    matches = list(_METHOD.finditer(data))
    if not matches:
        return flip_bit(data, rng)
    match = rng.choice(matches)
    return data[:match.start()] + match.group(0).lower() + data[match.end():]


def swap_spaces(data: bytes, rng: Random) -> bytes:
    """A request-line or header space turned into two, a tab, or removed."""
    spaces = [index for index, byte in enumerate(data[:data.find(b"\r\n\r\n") + 1])
              if byte == 0x20]
    if not spaces:
        return insert_control(data, rng)
    index = rng.choice(spaces)
    return data[:index] + rng.choice([b"  ", b"\t", b""]) + data[index + 1:]


MUTATIONS: list[Mutation] = [
    flip_bit, insert_byte, delete_byte, insert_control, truncate, duplicate_header,
    drop_header, nudge_length, huge_number, non_ascii_request_line, lowercase_method,
    swap_spaces,
]


def mutate(data: bytes, rng: Random) -> tuple[bytes, list[str]]:
    """One to three random mutations; returns the bytes and the mutation names."""
    names = []
    for _ in range(rng.randint(1, 3)):
        mutation = rng.choice(MUTATIONS)
        data = mutation(data, rng)
        names.append(mutation.__name__)
    return data, names


def split_randomly(data: bytes, rng: Random, max_pieces: int = 12) -> list[bytes]:
    """`data` cut at random places into at most `max_pieces` writes (often just one)."""
    if len(data) < 2 or rng.random() < 0.4:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1,
                                                      rng.randint(1, max_pieces - 1))))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:])]

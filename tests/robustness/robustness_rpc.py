"""JSON-RPC fuzzing tools: a populated chat world, the bad and the well-typed values the
fuzzer sends, the contract checks every response must pass, and a driver that records every
violation (instead of stopping at the first) so that one run shows all of them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from random import Random
from typing import Any

from rpc_testing import ClientFactory, RpcClient
from rpcchat.app import ChatServer
from rpcchat.config import HttpLimits

RPC_LIMITS = HttpLimits(header_timeout=0.5, body_timeout=0.5, keepalive_timeout=5.0,
                        write_timeout=2.0, shutdown_grace=0.5)
PASSWORD = "secret"
CALL_TIMEOUT = 10.0
INT64_MAX = 2**63 - 1

# Every code of the contract's table (API.md); -32603 is in the table but means a bug.
CONTRACT_CODES = frozenset({-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32003,
                            -32004, -32005, -32006, -32007, -32008})
INTERNAL_ERROR = -32603
# error.data members the contract promises, by code.
DATA_MEMBERS: dict[int, tuple[str, ...]] = {
    -32602: ("field", "reason"), -32005: ("retry_after", "resets_at"), -32006: ("until",),
    -32007: ("limit",), -32008: ("head",),
}

# Values of every JSON type and the awkward corners of each, named for the report.
BAD_VALUES: list[tuple[str, Any]] = [
    ("string", "fuzz"), ("int", 7), ("float", 0.25), ("true", True), ("false", False),
    ("null", None), ("array", [1, "a", None]), ("empty array", []), ("object", {"k": "v"}),
    ("empty object", {}), ("huge int", 2**70), ("huge negative int", -(2**70)),
    ("int64 max + 1", 2**63), ("minus one", -1), ("zero", 0), ("huge float", 1e308),
    ("tiny float", 5e-324), ("empty string", ""), ("10k string", "x" * 10_000),
    ("lone surrogate", "\ud800"), ("emoji", "\U0001f600\U0001f4a5"), ("NUL", "\u0000"),
    ("NUL inside", "ab\u0000cd"), ("RTL marks", "\u202ealice\u200f"), ("spaces", "   "),
    ("array of surrogates", ["\ud800"]), ("surrogate key", {"\udc00": 1}),
    ("nested", [[[[{"a": [[]]}]]]]),
]
# Names that no method takes (or takes with another spelling).
UNKNOWN_PARAMS: list[str] = ["bogus", "", "\ud800", "__class__", "params", "Text", "text ",
                             "jsonrpc", "id", "\u0000"]
# Characters random strings are built from: letters of several scripts, digits, the name
# punctuation, spaces, controls, emoji, combining marks, bidi marks.
_ALPHABET = ("abcXYZ019_-.  \t\n\u00e9\u00df\u0416\u05d0\u0628\u4e2d\u0915\u093f"
             "\u0301\u200f\u202e\ufeff\U0001f600\u0000\u007f:/\\\"'")


@dataclass
class World:
    """The fixtures the fuzzer aims at: real ids, so that well-typed calls reach the domain."""

    server: ChatServer
    alice: RpcClient          # the caller of every fuzzed method
    releaser: RpcClient       # alice's token on its own connection: ends a parked poll
    group: str                # a group alice owns, bob is a member of
    spare_group: str          # a group alice may leave
    message_id: int
    scheduled_id: str
    upload_id: str
    file_id: str
    link: str
    methods: list[dict[str, Any]] = field(default_factory=list)

    async def refresh_token(self) -> None:
        """A fuzzed `disconnect` revoked alice's token: log in again."""
        await self.alice.connect("alice", PASSWORD)
        self.releaser.token = self.alice.token


async def build_world(server: ChatServer, rpc_client: ClientFactory) -> World:
    alice = await rpc_client(server, timeout=CALL_TIMEOUT)
    for name in ("bob", "carol"):
        await (await rpc_client(server)).connect(name, PASSWORD)
    await alice.connect("alice", PASSWORD)
    group = (await alice.call("chat.create", name="fuzz room", members=["bob"]))["chat"]["id"]
    spare = (await alice.call("chat.create", name="spare room"))["chat"]["id"]
    message = (await alice.call("send", text="hello", chat=group))["message"]
    scheduled = (await alice.call("send", text="later", chat=group, delay=3600))["scheduled"]
    link = (await alice.call("chat.link", chat=group))["link"]
    upload_id = (await alice.call("file.begin", name="open.txt", size=5))["upload_id"]
    file_id = await _posted_file(alice, group)
    releaser = await rpc_client(server, alice.token, timeout=CALL_TIMEOUT)
    discovered = await alice.call("rpc.discover")
    return World(server, alice, releaser, group, spare, message["id"], scheduled["id"],
                 upload_id, file_id, link, discovered["methods"])


async def _posted_file(alice: RpcClient, chat: str) -> str:
    data = b"hello"
    upload = await alice.call("file.begin", name="a.txt", size=len(data),
                              sha256=hashlib.sha256(data).hexdigest())
    await alice.call("file.put", upload_id=upload["upload_id"], offset=0, data="aGVsbG8=")
    message = await alice.call("file.finish", upload_id=upload["upload_id"], chat=chat)
    file_id: str = message["message"]["file"]["id"]
    return file_id


def realistic(world: World, method: str, param: str, schema: dict[str, Any]) -> Any:
    """A valid value of `param` that points at something real in the world."""
    by_name: dict[str, Any] = {
        "password": PASSWORD, "history": 3, "text": "hello", "to": "bob",
        "chat": world.spare_group if method == "chat.leave" else world.group,
        "delay": 60.0, "client_msg_id": "cm-1", "message_id": world.message_id,
        "before": world.message_id + 1, "limit": 10, "since": 0, "timeout": 0,
        "id": world.scheduled_id, "reason": "spam", "members": ["bob"], "link": world.link,
        "size": 5, "content_type": "text/plain", "upload_id": world.upload_id, "offset": 0,
        "data": "aGVsbG8=", "file_id": world.file_id, "length": 5,
        "sha256": hashlib.sha256(b"hello").hexdigest(),
    }
    if param == "name":
        return {"connect": "alice", "chat.create": "room"}.get(method, "a.txt")
    if param == "user":
        return "bob" if method == "report" else "carol"
    if param == "at":
        return world.server.clock.time() + 3600
    if param in by_name:
        return by_name[param]
    return schema_default(schema)


def schema_default(schema: dict[str, Any]) -> Any:
    """Some value of the schema's type, for a parameter this module has no table entry for."""
    kind = _types(schema)[0]
    defaults: dict[str, Any] = {"string": "x", "integer": max(int(schema.get("minimum", 1)), 1),
                                "number": 1.0, "boolean": True, "array": [], "object": {},
                                "null": None}
    return defaults.get(kind, None)


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", "string")
    kinds = kind if isinstance(kind, list) else [kind]
    # Non-null types first: the first one is the param's "real" type.
    return sorted(kinds, key=lambda name: name == "null")


def random_text(rng: Random, length: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def well_typed(schema: dict[str, Any], rng: Random, sensible: Any) -> Any:
    """A random value of the schema's JSON type: the sensible one, a boundary, one past a
    boundary, or random."""
    kinds = _types(schema)
    if "null" in kinds and rng.random() < 0.1:
        return None
    kind = rng.choice([name for name in kinds if name != "null"] or ["null"])
    if rng.random() < 0.25 and sensible is not None:
        return sensible
    if kind == "string":
        return _random_string(schema, rng)
    if kind == "integer":
        return _random_integer(schema, rng)
    if kind == "number":
        return _random_number(schema, rng)
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        return [well_typed(items, rng, None) for _ in range(rng.randint(0, 4))]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "object":
        return {random_text(rng, 3): random_text(rng, 3)}
    return None


def _random_string(schema: dict[str, Any], rng: Random) -> str:
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", 300))
    length = rng.choice([low, high, high + 1, max(low - 1, 0), rng.randint(low, min(high, 40))])
    return random_text(rng, length)


def _random_integer(schema: dict[str, Any], rng: Random) -> int:
    low = int(schema.get("minimum", -INT64_MAX - 1))
    high = int(schema.get("maximum", INT64_MAX))
    choice: int = rng.choice([low, high, low - 1, high + 1, INT64_MAX, -INT64_MAX - 1,
                              rng.randint(low, high), rng.randint(low, min(high, low + 100))])
    return choice


def _random_number(schema: dict[str, Any], rng: Random) -> float:
    low = float(schema.get("minimum", schema.get("exclusiveMinimum", -1e12)))
    high = float(schema.get("maximum", 1e12))
    choice: float = rng.choice([low, high, low - 0.5, high + 0.5, 1e-9, rng.uniform(low, high),
                                rng.uniform(low, min(high, low + 5))])
    return choice


def boundary_values(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """The values at and just past each bound of a schema, plus the extremes of its type."""
    kinds = _types(schema)
    values: list[tuple[str, Any]] = []
    if "integer" in kinds or "number" in kinds:
        low, high = schema.get("minimum"), schema.get("maximum")
        for label, bound in (("minimum", low), ("maximum", high)):
            if bound is not None:
                values += [(label, bound), (f"{label} - 1", bound - 1),
                           (f"{label} + 1", bound + 1)]
        values += [("int64 max", INT64_MAX), ("int64 min", -INT64_MAX - 1),
                   ("2**53 + 1", 2**53 + 1)]
    if "number" in kinds:
        values += [("-0.0", -0.0), ("1e-300", 1e-300), ("1e300", 1e300), ("0.1", 0.1),
                   ("minimum + epsilon", float(schema.get("exclusiveMinimum", 0)) + 1e-12)]
    if "string" in kinds:
        low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 5000))
        for length in sorted({low, max(low - 1, 0), 1, high, high + 1}):
            values += [(f"{length} letters", "a" * length), (f"{length} wide", "\u00e9" * length),
                       (f"{length} emoji", "\U0001f600" * length)]
        values += [(f"tricky {text!r}", text) for text in TRICKY_STRINGS]
    if "array" in kinds:
        items = schema.get("items", {})
        most = int(schema.get("maxItems", 50))
        values += [("max items", ["bob"] * most), ("max items + 1", ["bob"] * (most + 1)),
                   ("items past bounds", [value for _, value in boundary_values(items)][:60])]
    return values


# Well-typed strings that name things in surprising ways: case and normalisation variants,
# chat ids of every shape, link forms, path tricks.
TRICKY_STRINGS = [
    "general", "GENERAL", " general", "general\n", "dm:alice:bob", "dm:bob:alice",
    "dm:alice:alice", "dm:alice", "dm::", "dm:alice:bob:carol", "g:", "g:x", "ALICE", "Alice",
    "e\u0301", "\u00e9", "\u01c5", "STRASSE", "stra\u00dfe", "\u0663", "..", "../../etc/passwd",
    "/", "?", "%00", "%2e%2e", "rpcchat:join/", "http://x/join/abc", "join/", "null", "true",
    "0", "-1", "1e999", "' OR 1=1 --", "\"; DROP TABLE users; --", "\u200b", "\ufeff",
]


# ---------------------------------------------------------------------------------------------
# Contract checks


def response_problems(response: Any, request_id: Any) -> list[str]:
    """Every way one JSON-RPC response object breaks JSON-RPC 2.0 or the contract."""
    if not isinstance(response, dict):
        return [f"response is not an object: {str(response)[:100]}"]
    problems = []
    if response.get("jsonrpc") != "2.0":
        problems.append("jsonrpc is not 2.0")
    if response.get("id") != request_id:
        problems.append(f"id {response.get('id')!r} does not echo {request_id!r}")
    if ("result" in response) == ("error" in response):
        problems.append("not exactly one of result and error")
    if "error" in response:
        problems.extend(error_problems(response["error"]))
    return problems


def error_problems(error: Any) -> list[str]:
    if not isinstance(error, dict):
        return ["error is not an object"]
    code = error.get("code")
    if type(code) is not int:
        return [f"error code {code!r} is not an integer"]
    problems = []
    if code == INTERNAL_ERROR:
        problems.append("internal error -32603 (a bug escaped)")
    elif code not in CONTRACT_CODES:
        problems.append(f"error code {code} is not in the contract's table")
    if not isinstance(error.get("message"), str):
        problems.append("error message is not a string")
    wanted = DATA_MEMBERS.get(code, ())
    data = error.get("data")
    if not wanted:
        return problems
    if not (isinstance(data, dict) and all(name in data for name in wanted)):
        problems.append(f"error {code} lacks data {wanted}: {data!r}")
    elif code == -32602 and not all(isinstance(data[name], str) for name in wanted):
        problems.append(f"error -32602 data members are not strings: {data!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# The driver


@dataclass
class Finding:
    method: str
    case: str
    problem: str


@dataclass
class RpcFuzzer:
    """Sends calls as alice, checks every response, and records what breaks the contract."""

    world: World
    findings: list[Finding] = field(default_factory=list)
    calls: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    _next_id: int = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(self, method: str, params: Any, *, notification: bool = False) -> dict[str, Any]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notification:
            request["id"] = self.new_id()
        return request

    async def call(self, method: str, params: Any, case: str) -> dict[str, Any] | None:
        """One call; returns the response object (None when the exchange itself failed)."""
        request = self.request(method, params)
        decoded = await self._exchange(request, method, case, may_park=method == "poll")
        if not isinstance(decoded, dict):
            if decoded is not None:
                self.record(method, case, f"single call answered with {type(decoded).__name__}")
            return None
        self.check(decoded, request["id"], method, case)
        if method == "disconnect" and "result" in decoded:
            await self.world.refresh_token()
        return decoded

    async def batch(self, requests: list[Any], case: str) -> None:
        """One batch; every non-notification entry must get exactly one valid response."""
        expected = [_echoed_id(entry) for entry in requests
                    if not (_is_call(entry) and "id" not in entry)]
        decoded = await self._exchange(requests, "batch", case, may_park=False)
        if decoded is None and not expected:
            return                                     # all notifications: 204
        if not isinstance(decoded, list):
            self.record("batch", case, f"batch answered with {str(decoded)[:100]}")
            return
        if sorted(map(repr, expected)) != sorted(repr(item.get("id")) for item in decoded
                                                 if isinstance(item, dict)):
            self.record("batch", case, f"ids {expected} answered as "
                        f"{[item.get('id') for item in decoded if isinstance(item, dict)]}")
        for item in decoded:
            method = _method_of(requests, item)
            self.check(item, item.get("id") if isinstance(item, dict) else None, method, case)
        if any(_is_call(entry) and entry.get("method") == "disconnect" for entry in requests):
            await self.world.refresh_token()

    def record(self, method: str, case: str, problem: str) -> None:
        self.findings.append(Finding(method, case, problem))

    def check(self, response: Any, request_id: Any, method: str, case: str) -> None:
        self.calls += 1
        for problem in response_problems(response, request_id):
            self.record(method, case, problem)
        error = response.get("error") if isinstance(response, dict) else None
        self.outcomes[str(error.get("code")) if isinstance(error, dict) else "ok"] += 1

    async def _exchange(self, payload: Any, method: str, case: str, *,
                        may_park: bool) -> Any:
        """POST one body; the decoded JSON, or None for 204 or a failure (recorded)."""
        try:
            reply = await self._post(payload, may_park)
        except Exception as exc:   # any transport failure is a finding, not a crash
            self.record(method, case, f"request failed: {exc!r}")
            return None
        if reply.status == 204 and not reply.body:
            return None
        if reply.status != 200 or reply.header("content-type") != "application/json":
            self.record(method, case, f"HTTP {reply.status} {reply.body[:200]!r}")
            return None
        try:
            return json.loads(reply.body)
        except ValueError:
            self.record(method, case, f"response is not JSON: {reply.body[:200]!r}")
            return None

    async def _post(self, payload: Any, may_park: bool) -> Any:
        """POST as alice. A poll that parks is ended by a newer poll of the same token (the
        contract's rule), so a fuzzed poll never waits out its timeout."""
        task = asyncio.create_task(self.world.alice.post(payload))
        if may_park:
            service = self.world.server.service
            while not task.done():
                if service.parked_polls:
                    release = self.request("poll", {"timeout": 0})
                    await self.world.releaser.post(release)
                else:
                    await asyncio.wait({task}, timeout=0.002)
        return await asyncio.wait_for(task, CALL_TIMEOUT)

    def summary(self, limit: int = 25) -> str:
        """The distinct problems, each with its first example, for an assertion message."""
        first: dict[tuple[str, str], Finding] = {}
        counts: Counter[tuple[str, str]] = Counter()
        for finding in self.findings:
            key = (finding.method, finding.problem[:80])
            first.setdefault(key, finding)
            counts[key] += 1
        lines = [f"{len(self.findings)} contract violations in {self.calls} calls:"]
        for key, finding in list(first.items())[:limit]:
            lines.append(f"  {counts[key]}x {finding.method}: {finding.problem} "
                         f"[e.g. {finding.case[:160]}]")
        return "\n".join(lines)


def _is_call(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("jsonrpc") == "2.0" \
        and isinstance(entry.get("method"), str)


def _echoed_id(entry: Any) -> Any:
    """The id an answer to this batch entry carries: the entry's own when it is a valid id."""
    if isinstance(entry, dict) and type(entry.get("id")) in (str, int, float):
        return entry["id"]
    return None


def _method_of(requests: list[Any], response: Any) -> str:
    if isinstance(response, dict) and response.get("id") is not None:
        for entry in requests:
            if isinstance(entry, dict) and entry.get("id") == response.get("id"):
                return str(entry.get("method"))
    return "batch"

"""Fan-out: N users parked in `poll`, one message to general, time until every poll answered.

    .venv/bin/python bench/fanout.py [--users 1000,5000]

For each N it prints p50/p99/max of (poll answer arrived - send issued) and the server's
resident memory per parked poll: (RSS with N polls parked - RSS before the N connections) / N,
so a parked poll's whole cost is counted: socket, connection task, request and waiter.
Targets: all 5000 answered within 150 ms; at most 12 KB per parked poll.

A second line shows the server's side, on the same clock (time.perf_counter is system-wide
on Linux): when the send arrived, when its answer and the first and last poll answer were
handed to the transport. It tells whether the server or the client is the slow side. A third
line gives the server's CPU time (user, system) from the send until every answer arrived.

Accounts are created beforehand in the data directory with a cheap password hash (each stored
hash carries its own parameters, so the real server verifies them as usual); then the server
runs as its own process and the clients run in another.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import content_length  # noqa: E402
from run import free_port, rpc, wait_until_listening  # noqa: E402

from rpcchat.app import ChatServer  # noqa: E402
from rpcchat.clock import SystemClock  # noqa: E402
from rpcchat.config import HttpLimits, ServerConfig  # noqa: E402
from rpcchat.domain import ChatService, ScryptHasher, SqliteStore  # noqa: E402
from rpcchat.transport import Request, Response  # noqa: E402

PASSWORD = "fan-out-password"


async def create_accounts(data_dir: Path, users: int) -> list[str]:
    service = ChatService(SqliteStore(data_dir), ServerConfig(data_dir=data_dir), SystemClock(),
                          password_hasher=ScryptHasher(n=2))
    await service.start()
    try:
        tokens = []
        for i in range(users):
            login = await service.connect(f"user{i}", PASSWORD)
            tokens.append(str(login["token"]))
        return tokens
    finally:
        await service.close()


class StampedServer(ChatServer):
    """The real server, noting when the send arrives and when each answer leaves it."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.send_arrived = 0.0
        self.send_answered = 0.0
        self.poll_answers: list[float] = []

    async def handle_rpc(self, request: Request) -> Response:
        is_send = b'"send"' in request.body
        if is_send:
            self.send_arrived = time.perf_counter()
        response = await super().handle_rpc(request)
        if is_send:
            self.send_answered = time.perf_counter()
        elif self.send_arrived and b'"events":[{' in response.body:
            self.poll_answers.append(time.perf_counter())
        return response


async def serve_stamped(port: int, data_dir: Path, stamps_file: Path) -> None:
    """Serve until SIGTERM, then write the server-side timestamps to `stamps_file`."""
    config = ServerConfig(port=port, data_dir=data_dir, rate_limit=0,
                          http=HttpLimits(max_connections=20000))
    server = StampedServer(config)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    stamps_file.write_text(json.dumps({
        "send_arrived": server.send_arrived, "send_answered": server.send_answered,
        "poll_answers": server.poll_answers}))
    await server.close()


def cpu_ms(pid: int) -> tuple[float, float]:
    """(user, system) CPU milliseconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) * 1000 / ticks, int(fields[12]) * 1000 / ticks


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class OneAnswer(asyncio.Protocol):
    """One connection, one request (sent on connecting, or when `send` is called); notes when
    its answer has fully arrived."""

    def __init__(self, request: bytes, send_at_once: bool = True) -> None:
        self.request = request
        self.send_at_once = send_at_once
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.answered: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.send_at_once:
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.answered.done():
            return
        if len(self.buffer) >= end + 4 + content_length(self.buffer[:end]):
            self.answered.set_result(arrived)


def rpc_request(token: str, method: str, params: dict[str, object]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    return (f"POST /rpc HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def client(port: int, tokens: list[str], since: int) -> None:
    """Runs in its own process: park every poll, wait for 'go', send, time the answers."""
    loop = asyncio.get_running_loop()
    polls = []
    for token in tokens:
        poll = rpc_request(token, "poll", {"since": since, "timeout": 60})
        _, protocol = await loop.create_connection(
            functools.partial(OneAnswer, poll), "127.0.0.1", port)
        polls.append(protocol)
    # Connected beforehand, so that the clock starts when the send leaves.
    _, sender = await loop.create_connection(
        functools.partial(OneAnswer, rpc_request(tokens[0], "send", {"text": "fan-out"}),
                          send_at_once=False), "127.0.0.1", port)
    print("parked", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    started = time.perf_counter()
    sender.send()
    arrivals = await asyncio.gather(*(p.answered for p in polls))
    await sender.answered
    latencies = sorted((a - started) * 1000 for a in arrivals)
    print(json.dumps({
        "started": started,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
    }), flush=True)


def head_seq(port: int, token: str) -> int:
    since = None
    while True:
        params: dict[str, object] = {"timeout": 0, "limit": 500}
        if since is not None:
            params["since"] = since
        answer = rpc(port, "poll", params, token)
        assert isinstance(answer, dict)
        since = int(answer["next"])
        if not answer["more"]:
            return since


def measure(users: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        tokens = asyncio.run(create_accounts(data_dir, users))
        tokens_file = data_dir / "tokens.json"
        tokens_file.write_text(json.dumps(tokens))
        stamps_file = data_dir / "stamps.json"
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), str(data_dir), str(stamps_file)])
        try:
            wait_until_listening(port)
            since = head_seq(port, tokens[0])
            before = rss_kib(server.pid)
            clients = subprocess.Popen(
                [sys.executable, __file__, "--client", str(port), str(tokens_file), str(since)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert clients.stdin is not None and clients.stdout is not None
            assert clients.stdout.readline().strip() == "parked"
            time.sleep(1.0 + users / 2000)   # let the server read and park every poll
            parked = rss_kib(server.pid)
            cpu_before = cpu_ms(server.pid)
            clients.stdin.write("go\n")
            clients.stdin.flush()
            result = json.loads(clients.stdout.readline())
            cpu_after = cpu_ms(server.pid)
            clients.wait(timeout=30)
        finally:
            server.terminate()
            server.wait(timeout=30)
        per_poll = (parked - before) * 1024 / users
        print(f"fan-out N={users:5d}  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f}"
              f" ms  max {result['max_ms']:6.1f} ms   memory per parked poll"
              f" {per_poll / 1024:5.1f} KB")
        print_server_side(json.loads(stamps_file.read_text()), result["started"])
        print(f"  server CPU while answering: user {cpu_after[0] - cpu_before[0]:.0f} ms,"
              f" system {cpu_after[1] - cpu_before[1]:.0f} ms")


def print_server_side(stamps: dict[str, object], started: float) -> None:
    answers = stamps["poll_answers"]
    assert isinstance(answers, list) and answers

    def ms(at: object) -> float:
        assert isinstance(at, float)
        return (at - started) * 1000

    print(f"  server side: send arrived {ms(stamps['send_arrived']):6.1f} ms, answered"
          f" {ms(stamps['send_answered']):6.1f} ms; {len(answers)} poll answers written"
          f" {ms(min(answers)):6.1f} .. {ms(max(answers)):6.1f} ms")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        port, data_dir, stamps_file = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
        asyncio.run(serve_stamped(port, data_dir, stamps_file))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        port, tokens_file, since = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        asyncio.run(client(port, json.loads(Path(tokens_file).read_text()), since))
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1000,5000")
    for users in parser.parse_args().users.split(","):
        measure(int(users))


if __name__ == "__main__":
    main()

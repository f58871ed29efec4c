"""rpcchat benchmarks, always as a ratio against an anchor measured in the same run.

    .venv/bin/python bench/run.py [--rounds 5] [--seconds 3] [--only status,send]

Scenarios:
- status: keep-alive throughput of `status` on rpcchat vs the same JSON-RPC answer on aiohttp.
- send:   durable `send` throughput on rpcchat vs the aiohttp `status` anchor.
- send-framework: durable `send` on rpcchat vs the same dispatcher, chat service and
          storage served by aiohttp (bench/aiohttp_send_anchor.py): the transport's share.
Rounds are A/B interleaved and the median is reported. The load generator is wrk when it is
installed (a C client, so the client is never the bottleneck), else bench/load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
STATUS_BODY = '{"jsonrpc":"2.0","method":"status","id":1}'
SEND_BODY = '{"jsonrpc":"2.0","method":"send","params":{"text":"hello"},"id":1}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def process(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def rpcchat_server(data_dir: str, log_level: str = "warning") -> Iterator[int]:
    port = free_port()
    args = [PYTHON, "-m", "rpcchat", "serve", "--port", str(port), "--data-dir", data_dir,
            "--log-level", log_level, "--rate-limit", "0", "--max-connections", "20000"]
    with process(args, port):
        yield port


@contextmanager
def aiohttp_anchor() -> Iterator[int]:
    port = free_port()
    with process([PYTHON, str(HERE / "aiohttp_anchor.py"), "--port", str(port)], port):
        yield port


def rpc(port: int, method: str, params: dict[str, object], token: str = "") -> object:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
    return post_call(port, body, token)


def post_call(port: int, body: str, token: str = "") -> object:
    """The result of one JSON-RPC call; RuntimeError when it is answered with an error."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/rpc", data=body.encode())
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        answer = json.loads(reply.read())
    if "error" in answer:
        raise RuntimeError(f"{body}: {answer['error']}")
    return answer["result"]


def load(port: int, body: str, seconds: float, connections: int, token: str = "") -> float:
    """Requests per second of one keep-alive load run."""
    if shutil.which("wrk"):
        return _load_with_wrk(port, body, seconds, connections, token)
    args = [PYTHON, str(HERE / "load.py"), "--port", str(port), "--body", body,
            "--seconds", str(seconds), "--connections", str(connections), "--token", token]
    out = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    if out["errors"]:
        raise RuntimeError(f"bench/load.py saw {out['errors']} failed responses: {out}")
    return float(out["rps"])


def _load_with_wrk(port: int, body: str, seconds: float, connections: int, token: str) -> float:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script = (f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
              f'wrk.headers["Content-Type"] = "application/json"\n{auth}')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    # wrk takes whole seconds only ("3s"; "3.0s" is a usage error).
    duration = f"{max(1, round(seconds))}s"
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "-s", handle.name,
             f"http://127.0.0.1:{port}/rpc"], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(handle.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw failed responses:\n{out}")
    line = next(x for x in out.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def interleaved(name: str, ours: int, anchor: int, body: str, args: argparse.Namespace,
                token: str = "", anchor_body: str = STATUS_BODY, anchor_token: str = "") -> None:
    # Both sides must answer the measured call with a result: the load generators see only
    # HTTP statuses, and JSON-RPC errors come with 200 (a rate of errors would mean nothing).
    post_call(ours, body, token)
    post_call(anchor, anchor_body, anchor_token)
    for connections in args.connections:
        ours_rps: list[float] = []
        anchor_rps: list[float] = []
        load(ours, body, 1, connections, token)      # warm-up
        load(anchor, anchor_body, 1, connections, anchor_token)
        for _ in range(args.rounds):
            ours_rps.append(load(ours, body, args.seconds, connections, token))
            anchor_rps.append(load(anchor, anchor_body, args.seconds, connections, anchor_token))
        a, b = statistics.median(ours_rps), statistics.median(anchor_rps)
        print(f"{name:14s} c={connections:<3d} rpcchat {a:9.0f} req/s   aiohttp {b:9.0f} req/s"
              f"   ratio {a / b:5.2f}x")


def bench_status(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data, rpcchat_server(data) as ours, \
            aiohttp_anchor() as anchor:
        interleaved("status", ours, anchor, STATUS_BODY, args)


def bench_send(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data, rpcchat_server(data) as ours, \
            aiohttp_anchor() as anchor:
        login = rpc(ours, "connect", {"name": "bench", "password": "bench-password"})
        assert isinstance(login, dict)
        interleaved("send", ours, anchor, SEND_BODY, args, token=str(login["token"]))


@contextmanager
def aiohttp_send_anchor(data_dir: str) -> Iterator[int]:
    port = free_port()
    args = [PYTHON, str(HERE / "aiohttp_send_anchor.py"), "--port", str(port),
            "--data-dir", data_dir]
    with process(args, port):
        yield port


def bench_send_framework(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as ours_data, tempfile.TemporaryDirectory() as fw_data, \
            rpcchat_server(ours_data) as ours, aiohttp_send_anchor(fw_data) as anchor:
        tokens = []
        for port in (ours, anchor):
            login = rpc(port, "connect", {"name": "bench", "password": "bench-password"})
            assert isinstance(login, dict)
            tokens.append(str(login["token"]))
        interleaved("send-framework", ours, anchor, SEND_BODY, args, token=tokens[0],
                    anchor_body=SEND_BODY, anchor_token=tokens[1])


SCENARIOS = {"status": bench_status, "send": bench_send, "send-framework": bench_send_framework}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 8])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    print(f"load generator: {'wrk' if shutil.which('wrk') else 'bench/load.py'}; "
          f"{args.rounds} interleaved rounds of {args.seconds:g} s, medians")
    for name in args.only.split(","):
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()

"""Files: upload and download of a 5 MiB file through the real server (its own process).

    .venv/bin/python bench/files.py [--size 5242880] [--rounds 5]

Prints the upload and download speed in MB/s (median of the rounds; the client is the
project's own ChatClient, one chunk per request as any client does) and the server's memory:
resident set before the first transfer, the highest resident set sampled every 2 ms during
the transfers, and the kernel's high-water mark (VmHWM) before and after. Bytes stream
through disk in chunks, so the growth stays far below the file size.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, wait_until_listening  # noqa: E402

from rpcchat.client import ChatClient, decode_file_data  # noqa: E402

MB = 1_000_000


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class PeakSampler:
    """Samples a process's VmRSS on a thread until stopped; keeps the highest value."""

    def __init__(self, pid: int, interval: float = 0.002) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = memory_kib(pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory_kib(self.pid, "VmRSS"))
            self._stop.wait(self.interval)


async def upload(client: ChatClient, data: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    begun = await client.file_begin("bench.bin", len(data),
                                    sha256=hashlib.sha256(data).hexdigest())
    offset, chunk = 0, begun["chunk_size"]
    while offset < len(data):
        offset = (await client.file_put(begun["upload_id"], offset,
                                        data[offset:offset + chunk]))["offset"]
    message = await client.file_finish(begun["upload_id"])
    file = message["message"]["file"]
    assert file is not None
    return file["id"], time.perf_counter() - started


async def download(client: ChatClient, file_id: str, expected: str) -> float:
    started = time.perf_counter()
    digest = hashlib.sha256()
    offset = 0
    while True:
        chunk = await client.file_get(file_id, offset=offset)
        data = decode_file_data(chunk)
        digest.update(data)
        offset += len(data)
        if chunk["eof"]:
            break
    elapsed = time.perf_counter() - started
    assert digest.hexdigest() == expected, "downloaded bytes differ"
    return elapsed


async def transfers(port: int, size: int, rounds: int, pid: int) -> None:
    async with ChatClient(f"http://127.0.0.1:{port}") as client:
        await client.connect("bencher", "bench-password")
        rss_before = memory_kib(pid, "VmRSS")
        hwm_before = memory_kib(pid, "VmHWM")
        ups: list[float] = []
        downs: list[float] = []
        with PeakSampler(pid) as sampler:
            for _ in range(rounds):
                data = os.urandom(size)
                file_id, seconds = await upload(client, data)
                ups.append(seconds)
                downs.append(await download(client, file_id, hashlib.sha256(data).hexdigest()))
        hwm_after = memory_kib(pid, "VmHWM")
    print(f"file {size} bytes x {rounds} rounds (chunks of 256 KiB)")
    print(f"  upload    median {size / statistics.median(ups) / MB:7.1f} MB/s"
          f"   (best {size / min(ups) / MB:.1f}, worst {size / max(ups) / MB:.1f})")
    print(f"  download  median {size / statistics.median(downs) / MB:7.1f} MB/s"
          f"   (best {size / min(downs) / MB:.1f}, worst {size / max(downs) / MB:.1f})")
    print(f"  server RSS before {rss_before / 1024:.1f} MiB, peak during "
          f"{sampler.peak / 1024:.1f} MiB: growth {(sampler.peak - rss_before) / 1024:.1f} MiB"
          f" for a {size / 1024 / 1024:.1f} MiB file")
    print(f"  server VmHWM before {hwm_before / 1024:.1f} MiB, after "
          f"{hwm_after / 1024:.1f} MiB: growth {(hwm_after - hwm_before) / 1024:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=5 * 1024 * 1024)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "rpcchat", "serve", "--port", str(port), "--data-dir",
             data_dir, "--log-level", "warning", "--rate-limit", "0",
             "--max-file-size", str(max(args.size, 1))])
        try:
            wait_until_listening(port)
            asyncio.run(transfers(port, args.size, args.rounds, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()

"""The benchmark's response framing: a miscounted body length would make the load generator
count garbage as answers (or stall), and its rates would mean nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# bench/ is a folder of scripts, not a package: load the one module without putting the
# folder on sys.path (its `run` and `files` would shadow other modules).
_SPEC = importlib.util.spec_from_file_location(
    "bench_load", Path(__file__).resolve().parents[2] / "bench" / "load.py")
assert _SPEC is not None and _SPEC.loader is not None
bench_load = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_load)
content_length = bench_load.content_length


@pytest.mark.parametrize("head, length", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 149\r\nContent-Type: application/json", 149),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 149", 149),
    (b"HTTP/1.1 200 OK\r\ncontent-length:7", 7),
    (b"HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT", 0),
    (b"HTTP/1.1 200 OK\r\nX-Content-Length: 5\r\nContent-Length: 12", 12),
])
def test_content_length_wherever_the_field_is(head: bytes, length: int) -> None:
    assert content_length(head) == length

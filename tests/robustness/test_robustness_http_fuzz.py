"""HTTP byte fuzzing through real sockets: valid requests (Content-Length, chunked with
extensions and a trailer, Expect: 100-continue, GET /health, HTTP/1.0, pipelined) are
mutated byte by byte and sent whole or in random small writes.

For every case the server either answers with well-formed HTTP/1.1 responses whose statuses
the contract allows (never 500), each with a Date, or closes the connection, and it does so
within the head/body/keep-alive timeouts; and after every case a fresh connection's
GET /health answers 200."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from random import Random

import pytest

from robustness_http import (
    FUZZ_LIMITS, MUTATIONS, check_responses, exchange, health_ok, mutate, split_randomly,
    valid_requests,
)
from rpcchat.app import ChatServer

SEED = 90_210
RANDOM_CASES = 500          # on top of every single mutation applied to every seed request
CONCURRENCY = 24
# The longest the server may legitimately keep a fuzzed connection open after our last byte:
# a pending head or body (0.5 s), then an idle keep-alive (0.5 s), plus scheduling slack for
# a loop shared by the server and two dozen clients.
BOUND = FUZZ_LIMITS.header_timeout + FUZZ_LIMITS.body_timeout \
    + FUZZ_LIMITS.keepalive_timeout + 1.5


@dataclass
class Case:
    name: str
    data: bytes
    pieces: list[bytes]
    half_close: bool


def single_mutation_cases(rng: Random) -> list[Case]:
    """Every mutation alone on every seed request: each kind of damage is tried at least once
    everywhere."""
    cases = []
    for seed_name, data in valid_requests().items():
        for mutation in MUTATIONS:
            mutated = mutation(data, rng)
            cases.append(Case(f"{seed_name}+{mutation.__name__}", mutated,
                              split_randomly(mutated, rng), rng.random() < 0.5))
    return cases


def random_cases(rng: Random, count: int) -> list[Case]:
    seeds = list(valid_requests().items())
    cases = []
    for number in range(count):
        seed_name, data = rng.choice(seeds)
        mutated, names = mutate(data, rng)
        cases.append(Case(f"#{number} {seed_name}+{'+'.join(names)}", mutated,
                          split_randomly(mutated, rng), rng.random() < 0.5))
    return cases


async def run_case(port: int, case: Case, slots: asyncio.Semaphore) -> list[str]:
    """The contract violations of one case (empty when the server behaved)."""
    async with slots:
        result = await exchange(port, case.pieces, half_close=case.half_close, bound=BOUND)
        problems = []
        if not result.closed:
            problems.append(f"connection still open {BOUND:.1f} s after the last byte")
        check = check_responses(result.received, reset=result.reset,
                                head_possible=b"HEAD" in case.data)
        problems.extend(check.problems)
        health = await health_ok(port)
        if health is not None:
            problems.append(f"after this case: {health}")
        return [f"{case.name} {case.data[:160]!r} "
                f"({len(case.pieces)} writes, half-close {case.half_close}): {problem}"
                for problem in problems]


async def run_cases(server: ChatServer, cases: list[Case]) -> list[str]:
    slots = asyncio.Semaphore(CONCURRENCY)
    results = await asyncio.gather(*(run_case(server.port, case, slots) for case in cases))
    return [problem for problems in results for problem in problems]


async def test_seed_requests_are_answered_200(fuzz_server: ChatServer) -> None:
    """The fuzzer starts from requests the server fully accepts (OPTIONS * is 204)."""
    seeds = valid_requests()
    results = await asyncio.gather(*(exchange(fuzz_server.port, [data], half_close=False,
                                              bound=BOUND) for data in seeds.values()))
    for name, result in zip(seeds, results):
        check = check_responses(result.received, reset=result.reset,
                                head_possible=name == "head")
        assert not check.problems, (name, check.problems)
        statuses = [response.status for response in check.responses if response.status != 100]
        wanted = {204} if name == "options" else {200}
        assert statuses and set(statuses) == wanted, (name, statuses, result.received[:300])
        assert result.closed, name


async def test_every_mutation_on_every_seed_request(fuzz_server: ChatServer) -> None:
    problems = await run_cases(fuzz_server, single_mutation_cases(Random(SEED)))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])


async def test_random_mutation_chains(fuzz_server: ChatServer) -> None:
    problems = await run_cases(fuzz_server, random_cases(Random(SEED + 1), RANDOM_CASES))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])


def request_line_of(length: int) -> bytes:
    """GET /health with a query that makes the request-line exactly `length` bytes."""
    bare = len(b"GET /health? HTTP/1.1")
    return b"GET /health?%s HTTP/1.1" % (b"q" * (length - bare))


def header_section_of(size: int) -> bytes:
    """Host plus one padding field: the field lines (CRLFs included) total `size` bytes."""
    host = b"Host: fuzz\r\n"
    pad = size - len(host) - len(b"X-Pad: \r\n")
    return host + b"X-Pad: %s\r\n" % (b"p" * pad)


def header_count_of(count: int) -> bytes:
    return b"Host: fuzz\r\n" + b"".join(b"X-%d: v\r\n" % number for number in range(count - 1))


HEAD_LIMIT_CASES = {
    "line-at-limit": (request_line_of(FUZZ_LIMITS.max_request_line), b"Host: fuzz\r\n", 200),
    "line-over": (request_line_of(FUZZ_LIMITS.max_request_line + 1), b"Host: fuzz\r\n", 414),
    "fields-at-limit": (b"GET /health HTTP/1.1",
                        header_section_of(FUZZ_LIMITS.max_header_bytes), 200),
    "fields-over": (b"GET /health HTTP/1.1",
                    header_section_of(FUZZ_LIMITS.max_header_bytes + 1), 431),
    "count-at-limit": (b"GET /health HTTP/1.1",
                       header_count_of(FUZZ_LIMITS.max_header_count), 200),
    "count-over": (b"GET /health HTTP/1.1",
                   header_count_of(FUZZ_LIMITS.max_header_count + 1), 431),
}


@pytest.mark.parametrize("case", HEAD_LIMIT_CASES)
async def test_head_limits_exactly_and_one_past(fuzz_server: ChatServer, case: str) -> None:
    request_line, fields, status = HEAD_LIMIT_CASES[case]
    data = request_line + b"\r\n" + fields + b"\r\n"
    result = await exchange(fuzz_server.port, split_randomly(data, Random(len(data))),
                            half_close=False, bound=BOUND)
    check = check_responses(result.received, reset=result.reset)
    assert not check.problems, check.problems
    assert [response.status for response in check.responses] == [status]
    assert await health_ok(fuzz_server.port) is None

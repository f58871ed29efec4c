"""The checks the fuzzers rely on do catch what they claim to: a fuzzer whose oracle accepts
anything would pass against any server."""

from __future__ import annotations

from random import Random

import pytest

from robustness_http import MUTATIONS, check_responses, mutate, split_randomly, valid_requests
from robustness_rpc import error_problems, response_problems

DATE = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
OK = b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Length: 2\r\n\r\n{}"


def test_well_formed_responses_pass() -> None:
    continued = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    closing = (b"HTTP/1.1 400 Bad Request\r\n" + DATE
               + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    check = check_responses(OK + continued + closing, reset=False)
    assert not check.problems
    assert [response.status for response in check.responses] == [200, 100, 200, 400]


@pytest.mark.parametrize("data, problem", [
    (b"HTTP/1.1 500 Internal Server Error\r\n" + DATE + b"Content-Length: 0\r\n\r\n",
     "status 500"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "without Date"),
    (b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Length: 9\r\n\r\n{}", "shorter"),
    (b"HTTP/1.1 200 OK\r\n" + DATE + b"\r\n", "Content-Length"),
    (b"HTTP/1.1 204 No Content\r\n" + DATE + b"Content-Length: 0\r\n\r\n", "204 with"),
    (b"HTTP/1.0 200 OK\r\n" + DATE + b"Content-Length: 0\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\n" + DATE + b"Content-Length: 0\r\nConnection: close\r\n\r\n" + OK,
     "after Connection: close"),
    (b"HTTP/1.1 200 OK\r\n" + DATE, "truncated"),
    (b"HTTP/1.1 200 OK\r\nbad line\r\n" + DATE + b"Content-Length: 0\r\n\r\n", "header line"),
])
def test_broken_responses_are_reported(data: bytes, problem: str) -> None:
    problems = check_responses(data, reset=False).problems
    assert any(problem in found for found in problems), problems


def test_a_reset_may_cut_the_last_response_short() -> None:
    assert not check_responses(OK + OK[:20], reset=True).problems


@pytest.mark.parametrize("error, problem", [
    ({"code": -32603, "message": "Internal error"}, "internal error"),
    ({"code": -32000, "message": "x"}, "not in the contract"),
    ({"code": "-32602", "message": "x"}, "not an integer"),
    ({"code": -32602, "message": "x"}, "lacks data"),
    ({"code": -32602, "message": "x", "data": {"field": "a"}}, "lacks data"),
    ({"code": -32602, "message": "x", "data": {"field": 1, "reason": "r"}}, "not strings"),
    ({"code": -32007, "message": "x", "data": {}}, "lacks data"),
    ({"code": -32001}, "message"),
])
def test_contract_breaking_errors_are_reported(error: dict[str, object], problem: str) -> None:
    problems = error_problems(error)
    assert any(problem in found for found in problems), problems


def test_response_envelope_is_checked() -> None:
    good = {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert not response_problems(good, 3)
    assert response_problems(good, 4)
    assert response_problems({"jsonrpc": "2.0", "id": 3}, 3)
    assert response_problems({**good, "error": {"code": -32001, "message": "x"}}, 3)
    assert not response_problems({"jsonrpc": "2.0", "id": None,
                                  "error": {"code": -32700, "message": "x"}}, None)


def test_mutations_are_deterministic_and_change_the_bytes() -> None:
    data = valid_requests()["pipelined-mixed"]
    first = [mutate(data, Random(seed)) for seed in range(50)]
    assert first == [mutate(data, Random(seed)) for seed in range(50)]
    assert sum(mutated != data for mutated, _ in first) >= 45
    for mutation in MUTATIONS:
        assert any(mutation(data, Random(seed)) != data for seed in range(5)), mutation


def test_random_splits_keep_every_byte() -> None:
    data = valid_requests()["chunked"]
    for seed in range(50):
        assert b"".join(split_randomly(data, Random(seed))) == data

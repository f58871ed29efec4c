"""JSON-RPC fuzzing of every method rpc.discover lists, as a user who owns a group chat:
wrong types, values at and past every bound, missing and unknown params, random well-typed
values, odd Authorization headers, batches mixing all of these, and a restart on whatever
the fuzzing stored.

Whatever comes in, a call must end in a result or in an error of the contract's table
(never -32603, which means a bug escaped), -32602 must name the field and the reason, and
the server must keep answering."""

from __future__ import annotations

import json
from random import Random
from typing import Any

from robustness_http import health_ok
from robustness_rpc import (
    BAD_VALUES, CALL_TIMEOUT, PASSWORD, RPC_LIMITS, UNKNOWN_PARAMS, RpcFuzzer, World,
    boundary_values, realistic, well_typed,
)
from rpc_testing import CHEAP_HASHER, ClientFactory, ServerFactory

SEED = 7_2024
RANDOM_ROUNDS = 30         # well-typed random calls per method
MISSING_ROUNDS = 4         # random subsets of params left out, per method
BATCHES = 60
JUNK_ENTRIES: list[Any] = [1, None, "x", {}, {"foo": "boo"}, [], {"jsonrpc": "2.0", "id": 5}]


def params_of(method: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {param["name"]: param["schema"] for param in method["params"]}


def base_params(world: World, method: dict[str, Any]) -> dict[str, Any]:
    """The required params, with values that point at real things."""
    name = method["name"]
    return {param["name"]: realistic(world, name, param["name"], param["schema"])
            for param in method["params"] if param.get("required")}


def all_params(world: World, method: dict[str, Any]) -> dict[str, Any]:
    name = method["name"]
    return {param["name"]: realistic(world, name, param["name"], param["schema"])
            for param in method["params"]}


def wrong_type_calls(world: World) -> list[tuple[str, dict[str, Any], str]]:
    """(method, params, case) for every param of every method with every bad value."""
    calls = []
    for method in world.methods:
        base = base_params(world, method)
        for param in params_of(method):
            for label, value in BAD_VALUES:
                calls.append((method["name"], {**base, param: value}, f"{param}={label}"))
    return calls


def missing_param_calls(world: World, rng: Random) -> list[tuple[str, dict[str, Any], str]]:
    calls = []
    for method in world.methods:
        full = all_params(world, method)
        for _ in range(MISSING_ROUNDS if full else 1):
            kept = {name: value for name, value in full.items() if rng.random() < 0.5}
            calls.append((method["name"], kept, f"only {sorted(kept)}"))
    return calls


def unknown_param_calls(world: World) -> list[tuple[str, dict[str, Any], str]]:
    calls = []
    for method in world.methods:
        base = base_params(world, method)
        for extra in UNKNOWN_PARAMS:
            calls.append((method["name"], {**base, extra: 1}, f"extra {extra!r}"))
    return calls


def random_calls(world: World, rng: Random) -> list[tuple[str, Any, str]]:
    """Well-typed random values, plus the same by position (a JSON array of params)."""
    calls: list[tuple[str, Any, str]] = []
    for method in world.methods:
        schemas = params_of(method)
        sensible = all_params(world, method)
        for _ in range(RANDOM_ROUNDS):
            params = {name: well_typed(schema, rng, sensible[name])
                      for name, schema in schemas.items() if rng.random() < 0.7}
            calls.append((method["name"], params, f"random {params!r}"))
        positional = [rng.choice(BAD_VALUES)[1] for _ in range(rng.randint(0, len(schemas) + 1))]
        calls.append((method["name"], positional, f"positional {positional!r}"))
    return calls


async def run_all(fuzzer: RpcFuzzer, calls: list[tuple[str, Any, str]]) -> None:
    for method, params, case in calls:
        await fuzzer.call(method, params, case)


async def assert_clean(fuzzer: RpcFuzzer, minimum_calls: int) -> None:
    assert not fuzzer.findings, fuzzer.summary()
    assert fuzzer.calls >= minimum_calls, fuzzer.calls
    assert await health_ok(fuzzer.world.server.port) is None
    status = await fuzzer.call("status", {}, "after the fuzzing")
    assert status is not None and "result" in status, status


async def test_discover_lists_every_method_the_fuzzer_covers(world: World) -> None:
    names = {method["name"] for method in world.methods}
    assert {"connect", "send", "poll", "history", "file.put", "chat.join"} <= names
    assert all(method["params"] is not None for method in world.methods)


async def test_every_param_with_every_wrong_type(world: World) -> None:
    fuzzer = RpcFuzzer(world)
    calls = wrong_type_calls(world)
    await run_all(fuzzer, calls)
    await assert_clean(fuzzer, minimum_calls=len(calls))


async def test_wrong_types_are_invalid_params_naming_the_field(world: World) -> None:
    """A value of a type no schema of the param allows is -32602 about that very param."""
    fuzzer = RpcFuzzer(world)
    mismatches = []
    for method in world.methods:
        base = base_params(world, method)
        for param, schema in params_of(method).items():
            value = [] if "array" not in str(schema.get("type")) else {"k": 1}
            response = await fuzzer.call(method["name"], {**base, param: value}, param)
            error = (response or {}).get("error") or {}
            if error.get("code") != -32602 or (error.get("data") or {}).get("field") != param:
                mismatches.append((method["name"], param, error or response))
    assert not fuzzer.findings, fuzzer.summary()
    assert not mismatches, mismatches[:10]


async def test_every_param_at_and_past_its_bounds(world: World) -> None:
    """Well-typed values at each limit the schema states, one past it, the extremes of the
    type, and strings that name things in surprising ways, with the other params real."""
    fuzzer = RpcFuzzer(world)
    count = 0
    for method in world.methods:
        full = all_params(world, method)
        base = base_params(world, method)
        for param, schema in params_of(method).items():
            for label, value in boundary_values(schema):
                for others in (base, full):
                    await fuzzer.call(method["name"], {**others, param: value},
                                      f"{param}={label}")
                    count += 1
    await assert_clean(fuzzer, minimum_calls=count)


async def test_random_subsets_of_params_missing(world: World) -> None:
    fuzzer = RpcFuzzer(world)
    calls = missing_param_calls(world, Random(SEED))
    await run_all(fuzzer, calls)
    await assert_clean(fuzzer, minimum_calls=len(calls))


async def test_unknown_params_are_invalid_params(world: World) -> None:
    fuzzer = RpcFuzzer(world)
    refused_wrongly = []
    for method, params, case in unknown_param_calls(world):
        response = await fuzzer.call(method, params, case)
        error = (response or {}).get("error") or {}
        if error.get("code") != -32602:
            refused_wrongly.append((method, case, error or response))
    assert not fuzzer.findings, fuzzer.summary()
    assert not refused_wrongly, refused_wrongly[:10]


async def test_random_well_typed_values(world: World) -> None:
    fuzzer = RpcFuzzer(world)
    calls = random_calls(world, Random(SEED + 1))
    await run_all(fuzzer, calls)
    await assert_clean(fuzzer, minimum_calls=len(calls))
    assert fuzzer.outcomes["ok"] > 0, fuzzer.outcomes      # some calls did reach the domain


async def test_batches_mixing_every_kind_of_call(world: World) -> None:
    rng = Random(SEED + 2)
    pool = (wrong_type_calls(world) + missing_param_calls(world, rng)
            + unknown_param_calls(world) + random_calls(world, rng))
    fuzzer = RpcFuzzer(world)
    for number in range(BATCHES):
        entries: list[Any] = []
        for _ in range(rng.randint(1, 30)):
            roll = rng.random()
            if roll < 0.1:
                entries.append(rng.choice(JUNK_ENTRIES))
            else:
                method, params, _ = rng.choice(pool)
                entries.append(fuzzer.request(method, params, notification=roll < 0.25))
        await fuzzer.batch(entries, f"batch {number} of {len(entries)}")
    await fuzzer.batch([fuzzer.request("status", {}) for _ in range(100)], "100 entries")
    await assert_clean(fuzzer, minimum_calls=BATCHES)


def authorization_variants(token: str) -> tuple[list[str], list[str]]:
    """(header values that carry the token, header values that do not)."""
    accepted = [f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"Bearer   {token}  ",
                f"Bearer\t{token}"]
    refused = ["Bearer", "Bearer ", f"Basic {token}", f"Bearer {token} extra",
               f"Bearer {token}x", f"Bearer {token[:-1]}", f"Bearer {token.swapcase()}",
               f"{token}", f"Token {token}", "Bearer " + "a" * 8000, "Bearer \u00e9\u00ff",
               "Bearer \x80", "Bearer ' OR 1=1 --", "Bearer %00", f"Bearer {token},{token}",
               f"Bearer {token}\t{token}"]
    return accepted, refused


async def test_authorization_header_variants(world: World) -> None:
    """Each value either authenticates alice or is -32001, for a method that needs a token
    and for one where it is optional; an absent header is anonymous for the latter."""
    token = world.alice.token or ""
    accepted, refused = authorization_variants(token)
    fuzzer = RpcFuzzer(world)
    wrong = []
    for value in accepted + refused:
        for method in ("scheduled.list", "status"):
            request = fuzzer.request(method, {})
            reply = await world.alice.http.request(
                "POST", "/rpc", json.dumps(request).encode(), [("Authorization", value)])
            answer = json.loads(reply.body)
            fuzzer.check(answer, request["id"], method, f"Authorization: {value[:40]!r}")
            code = (answer.get("error") or {}).get("code")
            if (value in accepted) != (code is None) or code not in (None, -32001):
                wrong.append((method, value[:40], answer))
    anonymous = await world.alice.response("status", {}, token=None)
    assert "me" not in anonymous["result"]
    assert not fuzzer.findings, fuzzer.summary()
    assert not wrong, wrong[:10]


async def test_everything_the_fuzzers_stored_survives_a_restart(
        world: World, running_server: ServerFactory, rpc_client: ClientFactory) -> None:
    """Odd but accepted values (any script, marks, far-future schedules, odd file names) are
    stored; the server restarts on them and every read of them still answers."""
    fuzzer = RpcFuzzer(world)
    rng = Random(SEED + 3)
    await run_all(fuzzer, random_calls(world, rng) + missing_param_calls(world, rng))
    assert not fuzzer.findings, fuzzer.summary()
    config = world.server.config
    await world.server.close()
    server = await running_server(data_dir=config.data_dir, password_hasher=CHEAP_HASHER,
                                  rate_limit=0, http=RPC_LIMITS)
    alice = await rpc_client(server, timeout=CALL_TIMEOUT)
    await alice.connect("alice", PASSWORD)
    world.server, world.alice = server, alice
    world.releaser = await rpc_client(server, alice.token, timeout=CALL_TIMEOUT)
    after = RpcFuzzer(world)
    chats = (await alice.call("status"))["me"]["chats"]
    for chat in chats:
        await after.call("history", {"chat": chat["id"], "limit": 200}, f"history {chat}")
    since = 0
    for _ in range(100):
        answer = await after.call("poll", {"since": since, "limit": 500, "timeout": 0}, "poll")
        if answer is None or "result" not in answer or not answer["result"]["more"]:
            break
        since = answer["result"]["next"]
    for method in ("scheduled.list", "status", "rpc.discover"):
        await after.call(method, {}, "after the restart")
    await after.call("file.get", {"file_id": world.file_id}, "file after the restart")
    assert not after.findings, after.summary()
    assert after.outcomes["ok"] == after.calls, after.outcomes

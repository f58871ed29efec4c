"""Accounts, passwords, tokens and sessions."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import pytest
from domain_helpers import CHEAP_HASHER, OpenService, login

from rpcchat.domain import ChatService, ScryptHasher
from rpcchat.domain.sqlite_store import DB_FILENAME
from rpcchat.errors import InvalidParams, Unauthorized


async def test_first_connect_creates_the_account_and_joins_general(
    service: ChatService,
) -> None:
    result = await service.connect("alice", "secret")
    assert result["user"] == "alice"
    assert result["history"] == []
    assert result["unread"] == 0
    assert isinstance(result["cursor"], int)
    # Exactly the contract's fields; the JSON-RPC layer adds server_time (tests/integration).
    assert set(result) == {"token", "user", "cursor", "history", "unread"}
    session = service.authenticate(result["token"])
    assert session.user == "alice"
    status = await service.status(session)
    assert [chat["id"] for chat in status["me"]["chats"]] == ["general"]
    assert status["me"]["chats"][0]["members"] == ["alice"]
    assert status["server"]["users"] == 1


async def test_first_poll_shows_the_users_own_join(service: ChatService) -> None:
    session = await login(service, "alice")
    result = await service.poll(session, wait=False)
    assert [(e["type"], e["data"]) for e in result["events"]] == [
        ("chat.joined", {"chat": "general", "user": "alice"})
    ]


async def test_login_needs_the_same_password(service: ChatService) -> None:
    await service.connect("alice", "secret")
    again = await service.connect("alice", "secret")
    assert again["user"] == "alice"
    with pytest.raises(Unauthorized):
        await service.connect("alice", "wrong")


async def test_names_are_unique_regardless_of_case_and_keep_first_spelling(
    service: ChatService,
) -> None:
    await service.connect("Alice", "secret")
    result = await service.connect("aLICE", "secret")
    assert result["user"] == "Alice"
    with pytest.raises(Unauthorized):
        await service.connect("ALICE", "other password")
    status = await service.status(None)
    assert status["server"]["users"] == 1


async def test_unicode_names_of_any_script(service: ChatService) -> None:
    for name in ("Ünal", "Жанна", "李雷", "अमित", "o.k_name-1"):
        result = await service.connect(name, "secret")
        assert result["user"] == name
    # Case-insensitive also beyond ASCII.
    assert (await service.connect("жанна", "secret"))["user"] == "Жанна"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must be 1 to 32 characters"),
        ("x" * 33, "must be 1 to 32 characters"),
        ("with space", "may contain only letters, digits, '_', '-' and '.'"),
        ("semi;colon", "may contain only letters, digits, '_', '-' and '.'"),
        ("dm:colon", "may contain only letters, digits, '_', '-' and '.'"),
        ("emoji😀", "may contain only letters, digits, '_', '-' and '.'"),
        (42, "must be a string"),
        (None, "must be a string"),
        ("bad\ud800", "must be valid Unicode text"),
    ],
)
async def test_bad_names_are_invalid_params(
    service: ChatService, name: object, reason: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await service.connect(name, "secret")
    assert caught.value.data == {"field": "name", "reason": reason}


@pytest.mark.parametrize("password", ["", "p" * 1025, 123, None, "\udfff"])
async def test_bad_passwords_are_invalid_params(service: ChatService, password: object) -> None:
    with pytest.raises(InvalidParams) as caught:
        await service.connect("alice", password)
    assert caught.value.data is not None and caught.value.data["field"] == "password"


@pytest.mark.parametrize("history", [-1, 201, "5", 2.5, True])
async def test_bad_history_counts_are_invalid_params(
    service: ChatService, history: object
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await service.connect("alice", "secret", history)
    assert caught.value.data is not None and caught.value.data["field"] == "history"


async def test_each_connect_returns_a_new_strong_token(service: ChatService) -> None:
    tokens = {(await service.connect("alice", "secret"))["token"] for _ in range(5)}
    assert len(tokens) == 5
    assert all(len(token) >= 22 for token in tokens)  # >= 128 bits in URL-safe base64


async def test_authenticate_rejects_unknown_and_revoked_tokens(service: ChatService) -> None:
    result = await service.connect("alice", "secret")
    session = service.authenticate(result["token"])
    for bad in ("", "nope", None, 17, "\ud800"):
        with pytest.raises(Unauthorized):
            service.authenticate(bad)
    assert await service.disconnect(session) == {"ok": True}
    with pytest.raises(Unauthorized):
        service.authenticate(result["token"])
    with pytest.raises(Unauthorized):
        await service.disconnect(session)


async def test_disconnect_revokes_only_that_token(service: ChatService) -> None:
    first = await service.connect("alice", "secret")
    second = await service.connect("alice", "secret")
    await service.disconnect(service.authenticate(first["token"]))
    assert service.authenticate(second["token"]).user == "alice"


async def test_tokens_survive_a_restart_until_disconnect(open_service: OpenService) -> None:
    service = await open_service()
    kept = (await service.connect("alice", "secret"))["token"]
    dropped = (await service.connect("alice", "secret"))["token"]
    await service.disconnect(service.authenticate(dropped))
    await service.close()

    reopened = await open_service()
    assert reopened.authenticate(kept).user == "alice"
    with pytest.raises(Unauthorized):
        reopened.authenticate(dropped)
    # New sessions get fresh ids even though a revoked one is not loaded.
    third = await login(reopened, "alice")
    assert third.session_id == 3
    with pytest.raises(Unauthorized):
        await reopened.connect("alice", "wrong")


async def test_secrets_are_stored_only_as_hashes(
    service: ChatService, data_dir: object
) -> None:
    result = await service.connect("alice", "hunter2-password")
    await service.close()
    conn = sqlite3.connect(f"{data_dir}/{DB_FILENAME}")
    stored_hash = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    token_hashes = [row[0] for row in conn.execute("SELECT token_hash FROM sessions")]
    conn.close()
    assert "hunter2" not in stored_hash and stored_hash.startswith("scrypt$")
    assert token_hashes == [hashlib.sha256(result["token"].encode()).hexdigest()]


async def test_concurrent_first_connects_create_one_account(service: ChatService) -> None:
    results = await asyncio.gather(
        *(service.connect("alice", "secret") for _ in range(10)),
        service.connect("ALICE", "wrong"),
        return_exceptions=True,
    )
    assert [r["user"] for r in results[:10] if isinstance(r, dict)] == ["alice"] * 10
    assert isinstance(results[10], Unauthorized)
    assert (await service.status(None))["server"]["users"] == 1


async def test_passwords_are_compared_after_unicode_normalisation(service: ChatService) -> None:
    await service.connect("alice", "caf\u00e9")  # precomposed é
    await service.connect("alice", "cafe\u0301")  # e + combining acute


def test_scrypt_hasher_round_trip_and_rejects_garbage() -> None:
    hasher = ScryptHasher(n=16, r=1, p=1)
    encoded = hasher.hash("pässword")
    assert hasher.verify("pässword", encoded)
    assert not hasher.verify("password", encoded)
    assert hasher.hash("same") != hasher.hash("same")  # salted
    assert not hasher.verify("x", "not-a-hash")
    assert not hasher.verify("x", "scrypt$16$1$1$!!$!!")
    # A hash carries its parameters: another instance with other defaults verifies it.
    assert CHEAP_HASHER.verify("pässword", encoded)


def test_scrypt_hasher_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError):
        ScryptHasher(n=1000)
    with pytest.raises(ValueError):
        ScryptHasher(r=0)


def test_production_defaults_are_not_weakened() -> None:
    hasher = ScryptHasher()
    assert (hasher.n, hasher.r, hasher.p) == (2**14, 8, 1)
    assert hasher.salt_bytes >= 16

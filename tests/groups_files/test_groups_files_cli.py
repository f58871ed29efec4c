"""`rpcchat group ...` and `rpcchat file send|get` against the real server: group
administration, transfers with sha256 checks, and resuming interrupted transfers."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.files import STATE_FILENAME, local_name
from cli_testing import CliUser
from rpcchat.client import ChatClient
from rpcchat.transport.client import ConnectionLost

UserFactory = Callable[[str], CliUser]
_numbers = itertools.count(1)


def unique(name: str) -> str:
    return f"{name}{os.getpid() % 1000}x{next(_numbers)}"


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_group_commands(cli_user: UserFactory) -> None:
    alice, bob, carol, dave = (cli_user(unique(name)) for name in
                               ("alice", "bob", "carol", "dave"))
    chat = as_json(alice("group", "create", "Team", "-m", bob.name, "--json"))["chat"]
    assert chat["owner"] == alice.name and chat["members"] == sorted([alice.name, bob.name])
    link = alice("group", "link", chat["id"])
    assert link.exit_code == 0 and link.stdout.startswith("rpcchat:join/")
    joined = carol("group", "join", link.stdout.strip())
    assert "waiting for the owner's approval" in joined.stdout
    dave("group", "join", link.stdout.strip())
    listed = alice("group", "requests", chat["id"])
    assert carol.name in listed.stdout and dave.name in listed.stdout
    approved = alice("group", "approve", chat["id"], carol.name)
    assert approved.exit_code == 0 and carol.name in approved.stdout
    assert alice("group", "decline", chat["id"], dave.name).exit_code == 0
    assert "(no pending requests)" in alice("group", "requests", chat["id"]).stdout
    assert "You are a member" in carol("group", "join", link.stdout.strip()).stdout
    assert bob("group", "leave", chat["id"]).exit_code == 0
    fresh = alice("group", "link", chat["id"], "--reset")
    assert fresh.exit_code == 0 and fresh.stdout.startswith("rpcchat:join/")
    assert fresh.stdout != link.stdout
    gone = dave("group", "join", link.stdout.strip())
    assert gone.exit_code == 1 and "code -32003" in gone.stderr
    # Errors are one line on stderr, exit code 1.
    refused = dave("group", "invite", chat["id"], bob.name)
    assert refused.exit_code == 1 and "code -32002" in refused.stderr
    again = alice("group", "invite", chat["id"], carol.name)
    assert again.exit_code == 1 and "code -32004" in again.stderr


def test_file_send_and_get_verify_sha256(cli_user: UserFactory, tmp_path: Path) -> None:
    alice, bob = cli_user(unique("alice")), cli_user(unique("bob"))
    data = random_file(tmp_path / "photo.jpg", 700_000)
    sent = as_json(alice("file", "send", str(tmp_path / "photo.jpg"), "--to", bob.name,
                         "--text", "look", "--json"))["message"]
    assert sent["file"]["name"] == "photo.jpg"
    assert sent["file"]["content_type"] == "image/jpeg"
    assert sent["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sent["text"] == "look"

    target = tmp_path / "downloads" / "copy.jpg"
    target.parent.mkdir()
    fetched = bob("file", "get", sent["file"]["id"], "-o", str(target))
    assert fetched.exit_code == 0, fetched.output
    assert target.read_bytes() == data
    assert list(target.parent.iterdir()) == [target]  # the .part file became the output
    refused = bob("file", "get", sent["file"]["id"], "-o", str(target))
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert bob("file", "get", sent["file"]["id"], "-o", str(target), "--force").exit_code == 0

    outsider = cli_user(unique("carol"))
    denied = outsider("file", "get", sent["file"]["id"], "-o", str(tmp_path / "x"))
    assert denied.exit_code == 1 and "code -32002" in denied.stderr
    too_big = tmp_path / "big.bin"
    random_file(too_big, 5 * 1024 * 1024 + 1)
    over = alice("file", "send", str(too_big))
    assert over.exit_code == 1 and "code -32007" in over.stderr


def test_interrupted_upload_resumes_from_the_server_offset(
        cli_user: UserFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = cli_user(unique("alice"))
    source = tmp_path / "movie.bin"
    data = random_file(source, 1_500_000)
    real_put = ChatClient.file_put
    offsets: list[int] = []

    async def failing_put(self: ChatClient, upload_id: str, offset: int, chunk: bytes) -> Any:
        if len(offsets) == 3:
            raise ConnectionLost("connection reset by the test")
        offsets.append(offset)
        return await real_put(self, upload_id, offset, chunk)

    monkeypatch.setattr(ChatClient, "file_put", failing_put)
    first = alice("file", "send", str(source))
    assert first.exit_code == 1
    assert "run the same command again to resume" in first.stderr
    state = json.loads((alice.config_dir / STATE_FILENAME).read_text())
    assert len(state) == 1
    assert offsets == [0, 262144, 524288]

    monkeypatch.setattr(ChatClient, "file_put", real_put)
    sent_offsets: list[int] = []

    async def counting_put(self: ChatClient, upload_id: str, offset: int, chunk: bytes) -> Any:
        sent_offsets.append(offset)
        return await real_put(self, upload_id, offset, chunk)

    monkeypatch.setattr(ChatClient, "file_put", counting_put)
    second = as_json(alice("file", "send", str(source), "--json"))
    # One empty probe at 0 (answered with the server's offset), then only what was missing.
    assert sent_offsets[0] == 0 and sent_offsets[1] == 3 * 262144
    assert sent_offsets[1:] == list(range(3 * 262144, len(data), 262144))
    assert json.loads((alice.config_dir / STATE_FILENAME).read_text()) == {}
    file_id = second["message"]["file"]["id"]
    assert second["message"]["file"]["sha256"] == hashlib.sha256(data).hexdigest()

    monkeypatch.setattr(ChatClient, "file_put", real_put)
    out = tmp_path / "back.bin"
    assert alice("file", "get", file_id, "-o", str(out)).exit_code == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_interrupted_download_resumes_from_the_partial_file(
        cli_user: UserFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = cli_user(unique("alice"))
    data = random_file(tmp_path / "doc.pdf", 1_000_000)
    file_id = as_json(alice("file", "send", str(tmp_path / "doc.pdf"), "--json")
                      )["message"]["file"]["id"]
    real_get = ChatClient.file_get
    offsets: list[int | None] = []

    async def failing_get(self: ChatClient, wanted: str, *, offset: int | None = None,
                          length: int | None = None) -> Any:
        if len(offsets) == 3:
            raise ConnectionLost("connection reset by the test")
        offsets.append(offset)
        return await real_get(self, wanted, offset=offset, length=length)

    monkeypatch.setattr(ChatClient, "file_get", failing_get)
    target = tmp_path / "out" / "doc.pdf"
    target.parent.mkdir()
    first = alice("file", "get", file_id, "-o", str(target))
    assert first.exit_code == 1 and "run the same command again" in first.stderr
    partial = target.with_name(f"doc.pdf.{file_id}.part")
    assert partial.stat().st_size == 2 * 262144 and not target.exists()

    offsets.clear()
    monkeypatch.setattr(ChatClient, "file_get", lambda *a, **k: record(offsets, real_get, a, k))
    assert alice("file", "get", file_id, "-o", str(target)).exit_code == 0
    assert offsets[1] == 2 * 262144  # after the metadata probe, from the partial size on
    assert target.read_bytes() == data and not partial.exists()

    # Bytes that do not hash right are never saved under the output name.
    partial.write_bytes(b"garbage" * 10)
    bad = alice("file", "get", file_id, "-o", str(tmp_path / "out" / "bad.pdf"))
    assert bad.exit_code == 0  # a different output: its own partial file, so no mix-up
    target.unlink()
    partial.write_bytes(b"garbage" * 10)
    corrupt = alice("file", "get", file_id, "-o", str(target))
    assert corrupt.exit_code == 1 and "sha256" in corrupt.stderr
    assert not partial.exists() and not target.exists()
    assert alice("file", "get", file_id, "-o", str(target)).exit_code == 0
    assert target.read_bytes() == data


async def record(offsets: list[int | None], real_get: Any, args: Any, kwargs: Any) -> Any:
    offsets.append(kwargs.get("offset"))
    return await real_get(*args, **kwargs)


def test_local_names_of_downloads_stay_in_the_directory() -> None:
    assert local_name("../../etc/passwd", "ID") == "_.._etc_passwd"
    assert local_name("..", "ID") == "ID"
    assert local_name(".bashrc", "ID") == "bashrc"
    assert local_name("a\x00b\nc", "ID") == "abc"
    assert local_name(None, "ID") == "ID"
    assert local_name("C:\\Windows\\x.dll", "ID") == "C:_Windows_x.dll"

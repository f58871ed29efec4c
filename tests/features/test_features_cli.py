"""The command line: comment, send --at/--in, scheduled list|cancel, report, status."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from cli.extras import parse_duration, parse_when
from cli_testing import CliUser, ThreadedServer
from rpc_testing import CHEAP_HASHER, TEST_HTTP_LIMITS


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ThreadedServer(tmp_path_factory.mktemp("cli") / "data",
                        {"rate_limit": 5, "http": TEST_HTTP_LIMITS}, CHEAP_HASHER) as server:
        yield server.url


@pytest.fixture
def alice(tmp_path: Path, server_url: str) -> CliUser:
    cli = CliUser("alice", tmp_path / "alice", server_url)
    cli.login()
    return cli


@pytest.fixture
def bob(tmp_path: Path, server_url: str) -> CliUser:
    cli = CliUser("bob", tmp_path / "bob", server_url)
    cli.login()
    return cli


def test_comment_prints_the_comment(alice: CliUser) -> None:
    sent = alice("send", "a question", "--json")
    parent = json.loads(sent.stdout)["message"]["id"]
    result = alice("comment", str(parent), "an answer")
    assert result.exit_code == 0, result.output
    assert "an answer" in result.stdout and "↳" in result.stdout
    as_json = json.loads(alice("comment", str(parent), "again", "--json").stdout)
    assert as_json["message"]["parent"] == parent
    missing = alice("comment", "999999", "nobody there")
    assert missing.exit_code == 1 and "no such message" in missing.stderr


def test_send_in_then_list_and_cancel(alice: CliUser) -> None:
    result = alice("send", "see you", "--in", "1h30m", "--json")
    assert result.exit_code == 0, result.output
    scheduled = json.loads(result.stdout)["scheduled"]
    assert scheduled["status"] == "pending"
    listed = alice("scheduled", "list")
    assert scheduled["id"] in listed.stdout and "see you" in listed.stdout
    cancelled = alice("scheduled", "cancel", scheduled["id"])
    assert cancelled.exit_code == 0 and "(cancelled)" in cancelled.stdout
    again = alice("scheduled", "cancel", scheduled["id"])
    assert again.exit_code == 1 and "already cancelled" in again.stderr
    assert "(no scheduled messages)" in alice("scheduled", "list").stdout


def test_send_at_future_and_past(alice: CliUser) -> None:
    tomorrow = datetime.fromtimestamp(time.time() + 86400).strftime("%Y-%m-%d %H:%M")
    future = alice("send", "tomorrow", "--at", tomorrow)
    assert future.exit_code == 0, future.output
    assert "(pending)" in future.stdout and "tomorrow" in future.stdout
    too_far = alice("send", "too far", "--at", str(time.time() + 3700 * 86400))
    assert too_far.exit_code == 1 and "invalid at: must be at most" in too_far.stderr
    past = alice("send", "too late", "--at", "2001-01-01 00:00")
    assert past.exit_code == 1 and "invalid at: must be in the future" in past.stderr
    both = alice("send", "x", "--at", "2099-01-01", "--in", "5m")
    assert both.exit_code == 2 and "one of --at, --in and --delay" in both.output
    bad = alice("send", "x", "--in", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_report_and_status(alice: CliUser, bob: CliUser) -> None:
    result = alice("report", "bob", "--reason", "spam")
    assert result.exit_code == 0, result.output
    assert "Reported bob: 1 warning(s)" in result.stdout
    status = bob("status")
    assert "reports  1 warning(s)" in status.stdout
    assert "messages left in general" in status.stdout
    itself = alice("report", "alice")
    assert itself.exit_code == 1 and "invalid user" in itself.stderr


def test_duration_and_time_parsing() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration("1.5h") == 5400
    for bad in ("", "0", "5x", "m", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    now = datetime(2030, 6, 1, 12, 0).timestamp()
    assert parse_when("1900000000", now) == 1_900_000_000
    assert parse_when("2030-06-01 13:00", now) == datetime(2030, 6, 1, 13, 0).timestamp()
    assert parse_when("13:00", now) == datetime(2030, 6, 1, 13, 0).timestamp()
    assert parse_when("11:00", now) == datetime(2030, 6, 2, 11, 0).timestamp()  # tomorrow
    with pytest.raises(ValueError):
        parse_when("next week", now)

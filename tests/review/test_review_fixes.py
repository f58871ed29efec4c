"""Regression tests for faults found in review: a scheduled message delivered twice, the
upload-expiry timer stopping after one storage failure (or spinning on a busy upload),
and non-finite times on the command line."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import CliRunner

from cli.extras import parse_duration, parse_when
from cli.main import main
from rpc_testing import ClientFactory, ServerFactory
from rpcchat.clock import ManualClock
from rpcchat.domain.feature_records import SCHEDULED_CANCELLED
from rpcchat.domain.files import BUSY_RECHECK
from rpcchat.domain.scheduler import ScheduledItem, Scheduler
from rpcchat.errors import InternalError

NOW = 1_700_000_000.0


async def test_a_reopened_scheduled_message_still_queued_is_delivered_once() -> None:
    clock = ManualClock(NOW)
    delivered: list[str] = []

    def deliver(item: ScheduledItem, now: float) -> None:
        delivered.append(item.scheduled_id)
        scheduler.finish(item, "sent", message_id=1)

    scheduler = Scheduler(clock, deliver)
    item = scheduler.create(1, "general", None, "hi", NOW + 10, NOW, None)
    scheduler.queue(item)
    # A cancel whose write failed puts it back while its first heap entry is still queued.
    scheduler.finish(item, SCHEDULED_CANCELLED)
    scheduler.reopen(item)
    clock.advance(20)
    scheduler.run_due()
    scheduler.close()
    assert delivered == [item.scheduled_id]


async def test_a_delivery_that_raises_after_reopening_is_retried_once() -> None:
    clock = ManualClock(NOW)
    attempts: list[float] = []

    def deliver(item: ScheduledItem, now: float) -> None:
        attempts.append(now)
        if len(attempts) == 1:
            scheduler.reopen(item)  # e.g. a cancel at delivery whose submit was refused
            raise InternalError("storage is unavailable")
        scheduler.finish(item, "sent", message_id=1)

    scheduler = Scheduler(clock, deliver)
    item = scheduler.create(1, "general", None, "hi", NOW + 1, NOW, None)
    scheduler.queue(item)
    clock.advance(2)
    scheduler.run_due()
    clock.advance(10)
    scheduler.run_due()
    scheduler.close()
    assert len(attempts) == 2


async def _server_with_uploads(running_server: ServerFactory, rpc_client: ClientFactory,
                               clock: ManualClock) -> tuple[Any, Any]:
    server = await running_server(clock=clock)
    alice = await rpc_client(server)
    await alice.connect("alice")
    return server, alice


async def test_upload_expiry_timer_survives_a_storage_failure(
        running_server: ServerFactory, rpc_client: ClientFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(NOW)
    server, alice = await _server_with_uploads(running_server, rpc_client, clock)
    files = server.service.files
    await alice.call("file.begin", name="old.bin", size=3)
    clock.advance(files.upload_idle + 1)
    fresh = await alice.call("file.begin", name="new.bin", size=3)

    async def storage_down(*args: Any, **kwargs: Any) -> None:
        raise InternalError("storage failed while ending expired uploads")

    monkeypatch.setattr(files._core.writes, "commit", storage_down)
    files._on_timer()  # the timer fires; its pass fails
    await asyncio.gather(*files._tasks, return_exceptions=True)
    monkeypatch.undo()
    assert files._timer.due is not None, "upload expiry stopped after one failure"
    assert files._timer.due == NOW + files.upload_idle + 1 + files.upload_idle
    assert fresh["upload_id"] in files._uploads


async def test_an_overdue_upload_in_use_does_not_spin_the_expiry_timer(
        running_server: ServerFactory, rpc_client: ClientFactory) -> None:
    clock = ManualClock(NOW)
    server, alice = await _server_with_uploads(running_server, rpc_client, clock)
    files = server.service.files
    begun = await alice.call("file.begin", name="busy.bin", size=3)
    upload = files._uploads[begun["upload_id"]]
    clock.advance(files.upload_idle + 1)
    async with upload.lock:  # a chunk or finish is under way
        assert await files.expire_uploads() == []
        assert files._timer.due is not None
        assert files._timer.due >= clock.time() + BUSY_RECHECK
    assert await files.expire_uploads() == [begun["upload_id"]]


@pytest.mark.parametrize("text", ["9" * 400, "9" * 400 + "d"])
def test_a_duration_too_long_for_a_float_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999"])
def test_a_non_finite_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_when(text)


@pytest.mark.parametrize("option, value", [("--delay", "nan"), ("--delay", "inf"),
                                           ("--at", "nan"), ("--in", "9" * 400)])
def test_send_refuses_non_finite_times_as_usage_errors(option: str, value: str) -> None:
    result = CliRunner().invoke(main, ["send", "hi", option, value],
                                env={"RPCCHAT_CONFIG": "/nonexistent/session.json"})
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output

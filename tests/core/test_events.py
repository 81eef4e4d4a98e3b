"""The event bus: typed events, bounded subscriptions, listeners that cannot break publishing."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.events import ErrorRaised, Event, EventBus, LogLine, ProcessStateChanged


async def test_subscriber_receives_published_events_in_order() -> None:
    bus = EventBus(clock=lambda: 42.0)
    with bus.subscribe() as sub:
        bus.publish(LogLine(source="ingest", line="one"))
        bus.publish(LogLine(source="ingest", line="two"))
        first = await asyncio.wait_for(sub.get(), 1)
        second = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(first, LogLine) and first.line == "one" and first.at == 42.0
    assert isinstance(second, LogLine) and second.line == "two"


async def test_subscription_filtered_by_kind_only_sees_that_kind() -> None:
    bus = EventBus()
    with bus.subscribe(kinds={"error"}) as sub:
        bus.publish(LogLine(source="x", line="noise"))
        bus.publish(ErrorRaised(source="target youtube", message="key rejected", hint="set it"))
        event = await asyncio.wait_for(sub.get(), 1)
    assert isinstance(event, ErrorRaised) and event.source == "target youtube"
    assert sub.queue.empty()


async def test_a_full_subscriber_loses_its_oldest_events_and_never_blocks_publish() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for n in range(10):
        bus.publish(LogLine(source="x", line=str(n)))
    kept = [sub.queue.get_nowait() for _ in range(3)]
    assert [e.line for e in kept if isinstance(e, LogLine)] == ["7", "8", "9"]
    assert sub.dropped == 7


async def test_closed_subscription_receives_nothing_more() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sub.close()
    bus.publish(LogLine(source="x", line="late"))
    assert sub.queue.empty()


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.add_listener(broken)
    remove = bus.add_listener(seen.append)
    bus.publish(LogLine(source="x", line="hello"))
    remove()
    bus.publish(LogLine(source="x", line="after removal"))
    assert [e.line for e in seen if isinstance(e, LogLine)] == ["hello"]
    assert "listener" in caplog.text


def test_events_serialise_with_their_type() -> None:
    event = ProcessStateChanged(name="ingest", old="starting", new="running", at=1.0)
    assert event.to_dict() == {
        "type": "process.state",
        "at": 1.0,
        "name": "ingest",
        "old": "starting",
        "new": "running",
        "reason": "",
        "pid": None,
        "attempt": 0,
        "retry_in": None,
    }

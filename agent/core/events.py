"""The in-process event bus and the typed events it carries.

The core publishes; the API's WebSocket, the tray, the CLI and tests subscribe. Publishing never
blocks and never fails because of a subscriber: each subscription has a bounded queue, and a
subscriber that does not keep up loses its oldest events (counted in ``dropped``) instead of
slowing the relay.

Publish from the event loop's thread; other threads use :meth:`EventBus.publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``kind`` names the type on the wire (``"process.state"``)."""

    kind: ClassVar[str] = "event"
    at: float = 0.0  # wall-clock seconds (time.time()) when it happened; set by publish

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the event's ``type``."""
        out: dict[str, Any] = {"type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStateChanged(Event):
    """A supervised child moved from one state to another."""

    kind: ClassVar[str] = "process.state"
    name: str
    old: str
    new: str
    reason: str = ""
    pid: int | None = None
    attempt: int = 0  # consecutive failed starts so far
    retry_in: float | None = None  # seconds until the next start, in BACKOFF


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine(Event):
    """A (redacted) line from a child's stderr or from the agent itself."""

    kind: ClassVar[str] = "log"
    source: str
    line: str
    level: str = "info"


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRaised(Event):
    """Something went wrong that a person should see, with what to do about it."""

    kind: ClassVar[str] = "error"
    source: str
    message: str
    hint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestStateChanged(Event):
    """The ingest started listening, began receiving a stream, or the stream ended."""

    kind: ClassVar[str] = "ingest.state"
    state: str
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # codec, width, height, fps, ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStateChanged(Event):
    """A group went live, was armed, stopped, or is waiting for the source."""

    kind: ClassVar[str] = "group.state"
    group: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStateChanged(Event):
    """A target connected, went live, is retrying, failed, or was switched off."""

    kind: ClassVar[str] = "target.state"
    group: str
    target: str
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsUpdated(Event):
    """A group's figures and its targets', at most once per second per group."""

    kind: ClassVar[str] = "stats"
    group: str
    stats: dict[str, Any]
    ingest: dict[str, Any] = field(default_factory=dict)  # the incoming bitrate, while live


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowRequested(Event):
    """Someone asked the agent to show itself (a second ``cascade run``)."""

    kind: ClassVar[str] = "ui.show"
    reason: str = ""


Listener = Callable[[Event], None]


@dataclass(eq=False)
class Subscription:
    """A bounded queue of events for one subscriber. Iterate it with ``async for``."""

    bus: EventBus
    kinds: frozenset[str] | None
    queue: asyncio.Queue[Event]
    dropped: int = field(default=0)

    def wants(self, event: Event) -> bool:
        return self.kinds is None or event.kind in self.kinds

    def offer(self, event: Event) -> None:
        """Queue without blocking; on overflow drop the oldest event."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        """Wait for the next event."""
        return await self.queue.get()

    def close(self) -> None:
        """Stop receiving events."""
        self.bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    """Fan-out of events to queued subscribers and synchronous listeners."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self._subs: list[Subscription] = []
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber and listener; never blocks."""
        if not event.at:
            event = dataclasses.replace(event, at=self._clock())
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the publisher
                log.exception("event listener %r failed", listener)

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from another thread onto the loop that subscribed last."""
        if self._loop is None:
            self.publish(event)
        else:
            self._loop.call_soon_threadsafe(self.publish, event)

    def subscribe(self, kinds: Iterable[str] | None = None, *, maxsize: int = 1000) -> Subscription:
        """A new subscription, optionally only to some event kinds."""
        with contextlib.suppress(RuntimeError):  # subscribing outside a loop is allowed
            self._loop = asyncio.get_running_loop()
        sub = Subscription(
            bus=self,
            kinds=frozenset(kinds) if kinds is not None else None,
            queue=asyncio.Queue(maxsize=maxsize),
        )
        self._subs.append(sub)
        return sub

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` synchronously for every event; returns a remover."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

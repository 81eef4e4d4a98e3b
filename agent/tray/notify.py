"""Desktop notifications from the core's events: what a streamer must not miss, rarely.

A target that fails for good, OBS starting or stopping its stream, and a publisher refused
for a wrong stream key. Each kind of news about one thing is shown at most once per
:data:`QUIET_SECONDS`, and none at all when the ``notifications`` setting is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent.core.events import ErrorRaised, Event, IngestStateChanged, TargetStateChanged

QUIET_SECONDS = 30.0


class Notifier:
    """Turns events into at most one notification per subject per quiet period."""

    def __init__(
        self,
        send: Callable[[str, str], None],
        *,
        enabled: bool = True,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.enabled = enabled
        self._quiet = quiet
        self._clock = clock
        self._last: dict[str, float] = {}

    def on_event(self, event: Event) -> None:
        news = describe(event)
        if news is None or not self.enabled:
            return
        key, title, message = news
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._quiet:
            return
        self._last[key] = now
        self._send(message, title)


def describe(event: Event) -> tuple[str, str, str] | None:
    """(rate-limit key, title, message) for an event worth a notification, else None."""
    if isinstance(event, IngestStateChanged):
        if event.state == "receiving":
            return "ingest", "OBS is streaming", "Cascade is receiving the stream."
        if event.state == "ended":
            return "ingest", "OBS stopped streaming", "Armed groups have ended their outputs."
        return None
    if isinstance(event, TargetStateChanged) and event.state == "failed":
        return (
            f"failed:{event.target}",
            f"{event.target} stopped for good",
            f"{event.reason or 'It cannot be started'}. Fix it, then switch it off and on.",
        )
    if isinstance(event, ErrorRaised) and event.source == "ingest" and "key" in event.message:
        return "wrong-key", "Stream key refused", f"{event.message}. {event.hint}".strip()
    return None

"""The ingest: where OBS's one stream enters Cascade.

One supervised FFmpeg receives the stream (an RTMP or SRT listener, or a pull from an existing
media server) and writes FLV to its stdout, which feeds the source hub. A listener serves one
publisher at a time: when OBS disconnects, the child ends cleanly and the supervisor starts it
again at once, so the port is listening again within a fraction of a second.

FFmpeg's RTMP listener does not refuse a wrong stream key; it only warns ("Unexpected stream
X, expecting Y"). The ingest watches for that warning and drops the publisher before a byte of
its stream reaches the hub.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from agent.core.backoff import BackoffPolicy
from agent.core.events import (
    ErrorRaised,
    Event,
    EventBus,
    IngestStateChanged,
    ProcessStateChanged,
)
from agent.core.model import IngestKind, IngestSettings
from agent.core.redact import REDACTOR, Redactor
from agent.core.supervisor import (
    ChildSpec,
    RestartPolicy,
    StdinMode,
    Supervisor,
    SupervisorConfig,
)
from agent.media.args import ingest_argv
from agent.media.flv_hub import FlvHub

log = logging.getLogger(__name__)

#: Listening again quickly after a publisher leaves is the point; failures still back off.
INGEST_CONFIG = SupervisorConfig(
    backoff=BackoffPolicy(initial=0.5, factor=2.0, cap=10.0, jitter=0.1, reset_after=10.0),
    start_window=0.3,
    stall_timeout=10.0,
    stall_needs_first_progress=True,  # waiting for OBS for hours is not a stall
    stop_timeout=3.0,
    max_start_failures=None,
    restart=RestartPolicy.ALWAYS,
)

WRONG_KEY_MARK = "Unexpected stream"
# FFmpeg echoes the key a refused publisher used; it may be a real key pasted by mistake.
WRONG_KEY_ECHO = r"Unexpected stream (.*?), expecting"


class IngestState(enum.StrEnum):
    """What the ingest is doing, as a person would say it."""

    STOPPED = "stopped"
    LISTENING = "listening"  # waiting for OBS (or connecting, for a pull)
    RECEIVING = "receiving"  # a stream is coming in
    ENDED = "ended"  # the publisher just left; listening again follows at once
    FAILED = "failed"  # cannot listen (port taken, FFmpeg missing); reason says why


class Ingest:
    """Runs the ingest child and feeds what it receives into ``hub``."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        ffmpeg: str,
        bus: EventBus,
        hub: FlvHub,
        redactor: Redactor = REDACTOR,
        config: SupervisorConfig = INGEST_CONFIG,
    ) -> None:
        self.settings = settings
        self.hub = hub
        redactor.add_pattern(WRONG_KEY_ECHO)
        self._bus = bus
        self._ffmpeg = ffmpeg
        self._redactor = redactor
        self._rejected = False  # the current publisher used a wrong key
        self.state = IngestState.STOPPED
        self.reason = ""
        self.sessions = 0  # publish sessions received so far
        self.supervisor = Supervisor(
            ChildSpec(
                name="ingest",
                argv=self._argv,
                # A listener blocked in accept() never reads "q"; SIGINT ends it cleanly.
                stdin=StdinMode.NONE,
                on_stdout=self._on_stdout,
                on_stderr=self._on_stderr,
                on_exit=self._on_exit,
            ),
            bus=bus,
            config=config,
            redactor=redactor,
        )
        self._unlisten = bus.add_listener(self._on_event)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (or pulling)."""
        if self.settings.key:
            self._redactor.add(self.settings.key)
        await self.supervisor.start()

    async def stop(self) -> None:
        """Stop the ingest; a stream being received ends for every output."""
        await self.supervisor.stop()
        self._set(IngestState.STOPPED, "stopped")

    def close(self) -> None:
        """Stop listening to the bus; for an ingest being replaced (stop it first)."""
        self._unlisten()

    def info(self) -> dict[str, Any]:
        """What is known of the stream being received (codec, size, fps, bitrate)."""
        if not self.hub.session_active:
            return {}
        return dict(self.hub.stream_info())

    # -- the child --------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        return ingest_argv(self._ffmpeg, self.settings)

    async def _on_stdout(self, chunk: bytes) -> None:
        if self._rejected:
            return
        was_active = self.hub.session_active
        self.hub.feed(chunk)
        if not was_active and self.hub.session_active:
            self.sessions += 1
            self._set(IngestState.RECEIVING, "a stream is coming in", self.info())

    def _on_stderr(self, line: str) -> None:
        if (
            WRONG_KEY_MARK in line
            and self.settings.kind is IngestKind.RTMP
            and self.settings.key
            and not self._rejected
        ):
            self._rejected = True
            message = "a publisher connected with a wrong stream key and was refused"
            hint = (
                "In OBS → Settings → Stream, use the server and stream key that Cascade shows "
                f"(server {self.settings.obs_url})"
            )
            log.warning("ingest: %s. %s", message, hint)
            self._bus.publish(ErrorRaised(source="ingest", message=message, hint=hint))
            self.supervisor.fail(message)

    def _on_exit(self, returncode: int | None) -> None:
        self._rejected = False
        if self.hub.session_active:
            self.hub.end_session()
            self._set(IngestState.ENDED, "the publisher stopped or disconnected")

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, ProcessStateChanged) or event.name != "ingest":
            return
        if event.new in ("starting", "running") and not self.hub.session_active:
            self._set(IngestState.LISTENING, "waiting for a publisher")
        elif event.new == "fatal" or (event.new == "backoff" and event.reason != "finished"):
            self._set(IngestState.FAILED, event.reason)

    def _set(self, state: IngestState, reason: str, info: dict[str, Any] | None = None) -> None:
        if state is self.state and state is not IngestState.FAILED:
            return
        self.state = state
        self.reason = reason
        self._bus.publish(IngestStateChanged(state=state.value, reason=reason, info=info or {}))

"""A target's push: one supervised FFmpeg reading FLV on stdin, writing ``-c copy`` out.

The push subscribes to its group's hub each time its child starts, so a (re)started target
begins exactly at a keyframe. A subscriber that falls too far behind is cut off by the hub;
the push then fails its child, which the supervisor restarts after a delay, while every other
target carries on untouched.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from agent.core.backoff import BackoffPolicy
from agent.core.egress import TargetStats
from agent.core.events import (
    ErrorRaised,
    Event,
    EventBus,
    ProcessStateChanged,
    TargetStateChanged,
)
from agent.core.model import Target
from agent.core.platforms import resolve_destination
from agent.core.redact import REDACTOR, Redactor
from agent.core.states import ProcessState
from agent.core.supervisor import (
    ChildSpec,
    RestartPolicy,
    StdinMode,
    Supervisor,
    SupervisorConfig,
)
from agent.media.args import Destination, push_argv
from agent.media.exit_reasons import suggestion
from agent.media.flv_hub import FlvHub, HubSubscriber, pump
from agent.media.progress import Progress

log = logging.getLogger(__name__)

KeySource = Callable[[Target], str | None]

PUSH_CONFIG = SupervisorConfig(
    backoff=BackoffPolicy(initial=1.0, factor=2.0, cap=30.0, jitter=0.1, reset_after=30.0),
    start_window=2.0,
    stall_timeout=15.0,
    stall_needs_first_progress=True,
    stop_timeout=5.0,
    max_start_failures=None,  # a platform that is down is retried until it is back
    restart=RestartPolicy.ALWAYS,
)

_STATE_NAMES = {
    ProcessState.STARTING: "connecting",
    ProcessState.RUNNING: "live",
    ProcessState.BACKOFF: "retrying",
    ProcessState.STOPPING: "stopping",
    ProcessState.FATAL: "failed",
}


class FFmpegPush:
    """The FFmpeg implementation of :class:`~agent.core.egress.Egress`."""

    def __init__(
        self,
        target: Target,
        group_id: str,
        *,
        ffmpeg: str,
        hub: FlvHub,
        bus: EventBus,
        keys: KeySource,
        wanted: Callable[[], bool],
        config: SupervisorConfig = PUSH_CONFIG,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.target = target
        self.group_id = group_id
        self.hub = hub
        self._ffmpeg = ffmpeg
        self._bus = bus
        self._keys = keys
        self._wanted = wanted  # the group wants output (started or armed)
        self._redactor = redactor
        self._sub: HubSubscriber | None = None
        self._delivered_before = 0  # hub bytes delivered by earlier subscriptions
        self._dropped_before = 0
        self._destination: Destination | None = None
        self._published = ""
        self._told = ""  # the failure last reported as an error event
        self._last: Progress | None = None
        self._rate: tuple[float | None, float | None] = (None, None)  # kbps, fps right now
        self.supervisor = Supervisor(
            ChildSpec(
                name=f"target:{target.id}",
                argv=self._argv,
                stdin=StdinMode.DATA,
                feed_stdin=self._feed,
                on_progress=self._on_progress,
                restart_if=self._should_run,
            ),
            bus=bus,
            config=config,
            redactor=redactor,
        )
        self._unlisten = bus.add_listener(self._on_event)

    # -- Egress -----------------------------------------------------------------------------

    @property
    def target_id(self) -> str:
        return self.target.id

    @property
    def state(self) -> str:
        if not self.target.enabled:
            return "disabled"
        sup = self.supervisor
        if sup.state is ProcessState.BACKOFF and sup.reason == "finished":
            return "connecting"
        named = _STATE_NAMES.get(sup.state)
        if named is not None:
            return named
        return "waiting" if self._wanted() else "idle"

    async def start(self) -> None:
        await self.supervisor.start()

    async def stop(self) -> None:
        await self.supervisor.stop()
        self.publish_state()

    @property
    def busy(self) -> bool:
        """Its child is running or about to (starting, running, waiting to retry)."""
        return self.supervisor.state.is_active

    def retarget(self, target: Target) -> None:
        """Adopt an edited model of the same target (the destination is resolved anew)."""
        self.target = target
        self._destination = None

    def close(self) -> None:
        """Stop listening to the bus; for a push being removed (stop it first)."""
        self._unlisten()

    def stats(self) -> TargetStats:
        sup = self.supervisor
        progress = sup.last_progress
        live = sup.state is ProcessState.RUNNING and sup.started_at is not None
        uptime = None
        if live and sup.started_at is not None:
            uptime = round(asyncio.get_running_loop().time() - sup.started_at, 1)
        sub = self._sub
        failing = sup.state in (ProcessState.BACKOFF, ProcessState.FATAL)
        return TargetStats(
            id=self.target.id,
            group=self.group_id,
            state=self.state,
            enabled=self.target.enabled,
            destination=self.destination_display(),
            bitrate_kbps=self._rate[0] if live else None,
            fps=self._rate[1] if live else None,
            frames=progress.frame if progress else None,
            dropped_frames=progress.drop_frames if progress else 0,
            duplicated_frames=progress.dup_frames if progress else 0,
            bytes_sent=(progress.total_size or 0) if progress else 0,
            uptime_s=uptime,
            retries=sup.restarts,
            last_error=sup.reason if failing and sup.reason != "finished" else "",
            hub_bytes_delivered=self._delivered_before + (sub.bytes_delivered if sub else 0),
            hub_tags_dropped=self._dropped_before + (sub.tags_dropped if sub else 0),
        )

    # -- helpers for the group --------------------------------------------------------------

    @property
    def subscriber(self) -> HubSubscriber | None:
        """The current hub subscription (None between children)."""
        return self._sub

    def destination_display(self) -> str:
        if self._destination is not None:
            return self._destination.display
        return self.target.url or self.target.platform.value

    def publish_state(self) -> None:
        """Publish a :class:`TargetStateChanged` if the state a person sees changed."""
        state = self.state
        if state == self._published:
            return
        self._published = state
        sup = self.supervisor
        reason = sup.reason if state in ("retrying", "failed") else ""
        self._bus.publish(
            TargetStateChanged(
                group=self.group_id, target=self.target.id, state=state, reason=reason
            )
        )
        if reason and _gist(reason) != self._told:
            # Once per distinct failure (not per retry), with what the person can do.
            self._told = _gist(reason)
            self._bus.publish(
                ErrorRaised(
                    source=f"target:{self.target.id}",
                    message=f"target '{self.target.id}' {reason}",
                    hint=suggestion(reason, self.target.id, permanent=state == "failed"),
                )
            )

    # -- the child --------------------------------------------------------------------------

    def _should_run(self) -> bool:
        return self.target.enabled and self._wanted() and self.hub.session_active

    def _argv(self) -> list[str]:
        key = self._keys(self.target)
        if key:
            self._redactor.add(key)
        self._destination = resolve_destination(self.target, key)
        if self._destination.kind == "file":
            Path(self._destination.url).parent.mkdir(parents=True, exist_ok=True)
        return push_argv(self._ffmpeg, self._destination)

    async def _feed(self, stdin: asyncio.StreamWriter) -> None:
        self._last, self._rate = None, (None, None)  # a new child counts from zero
        sub = self.hub.subscribe(f"target:{self.target.id}")
        sub.on_cut_off = self.supervisor.fail  # the feeder may be stuck in drain()
        self._sub = sub
        joined = time.monotonic()
        try:
            await pump(sub, stdin)
        finally:
            self._sub = None
            self._delivered_before += sub.bytes_delivered
            self._dropped_before += sub.tags_dropped
            if sub.first_keyframe_at is not None:
                log.debug(
                    "target %s: first keyframe %.3f s after joining",
                    self.target.id,
                    sub.first_keyframe_at - joined,
                )

    def _on_progress(self, progress: Progress) -> None:
        """Rates between two progress blocks: what is flowing now, not since the start."""
        last, self._last = self._last, progress
        if progress.frame:
            self._told = ""  # frames flow: a later failure is news again
        if last is None or progress.at <= last.at:
            self._rate = (progress.bitrate_kbps, progress.fps)
            return
        span = progress.at - last.at
        kbps = progress.bitrate_kbps
        if progress.total_size is not None and last.total_size is not None:
            kbps = round((progress.total_size - last.total_size) * 8 / span / 1000, 1)
        fps = progress.fps
        if progress.frame is not None and last.frame is not None:
            fps = round((progress.frame - last.frame) / span, 1)
        self._rate = (kbps, fps)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ProcessStateChanged) and event.name == self.supervisor.name:
            self.publish_state()


_NOISE = re.compile(r"^(?:exited with code -?\d+|was killed by signal \d+): | @ 0x[0-9a-f]+")


def _gist(reason: str) -> str:
    """A failure without what changes from one retry to the next (exit code, addresses)."""
    return _NOISE.sub("", reason)

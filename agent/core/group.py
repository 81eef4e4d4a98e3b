"""An output group at run time: its targets' pushes and, for a re-encode group, its encoder.

A passthrough group has no process of its own: its targets subscribe to the source hub. A
re-encode group runs one supervised FFmpeg (FLV on stdin → encode → FLV on stdout) feeding a
hub of its own, so the encode happens once per group whatever the number of targets.

A group *wants output* when a person started it (until stopped) or when it is armed (a
standing order saved in the profile). Output flows while the group wants it and its hub has a
session: when OBS starts publishing, the group's children start; when OBS stops, end-of-file
travels down the pipes and every child ends its stream cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from agent.core.backoff import BackoffPolicy
from agent.core.events import Event, EventBus, GroupStateChanged, ProcessStateChanged
from agent.core.model import Group, GroupMode, Target
from agent.core.push import PUSH_CONFIG, FFmpegPush, KeySource
from agent.core.redact import REDACTOR, Redactor
from agent.core.states import ProcessState
from agent.core.supervisor import (
    ChildSpec,
    RestartPolicy,
    StdinMode,
    Supervisor,
    SupervisorConfig,
)
from agent.media.args import encoder_argv
from agent.media.flv_hub import FlvHub, pump

log = logging.getLogger(__name__)

ENCODER_CONFIG = SupervisorConfig(
    backoff=BackoffPolicy(initial=1.0, factor=2.0, cap=30.0, jitter=0.1, reset_after=30.0),
    start_window=2.0,
    stall_timeout=15.0,
    stall_needs_first_progress=True,
    stop_timeout=5.0,
    max_start_failures=5,
    restart=RestartPolicy.ALWAYS,
)


class GroupRuntime:
    """Runs one group's encoder (if any) and pushes; never touches another group."""

    def __init__(
        self,
        group: Group,
        *,
        source: FlvHub,
        ffmpeg: str,
        bus: EventBus,
        keys: KeySource,
        push_config: SupervisorConfig = PUSH_CONFIG,
        encoder_config: SupervisorConfig = ENCODER_CONFIG,
        redactor: Redactor = REDACTOR,
        max_lag_bytes: int = 8_000_000,
    ) -> None:
        self.group = group
        self.source = source
        self.live = False  # started by a person; stays on across publisher reconnects
        self._bus = bus
        self._ffmpeg = ffmpeg
        self._keys = keys
        self._push_config = push_config
        self._redactor = redactor
        self._tasks: set[asyncio.Task[None]] = set()
        self._published = ""
        self.encoder: Supervisor | None = None
        if group.mode is GroupMode.REENCODE:
            self.hub = FlvHub(f"group:{group.id}", max_lag_bytes=max_lag_bytes)
            self.encoder = Supervisor(
                ChildSpec(
                    name=f"encoder:{group.id}",
                    argv=lambda: encoder_argv(self._ffmpeg, self.group),
                    stdin=StdinMode.DATA,
                    feed_stdin=self._feed_encoder,
                    on_stdout=self._on_encoded,
                    on_exit=self._on_encoder_exit,
                    restart_if=lambda: self.wants_output and self.source.session_active,
                ),
                bus=bus,
                config=encoder_config,
                redactor=redactor,
            )
        else:
            self.hub = source
        self.pushes: dict[str, FFmpegPush] = {}
        for target in group.targets:
            self.add_push(target)
        self._unlisten = bus.add_listener(self._on_event)

    @property
    def id(self) -> str:
        return self.group.id

    @property
    def busy(self) -> bool:
        """Any child of this group (its encoder, a push) is running or about to."""
        encoding = self.encoder is not None and self.encoder.state.is_active
        return encoding or any(push.busy for push in self.pushes.values())

    @property
    def wants_output(self) -> bool:
        return self.live or self.group.armed

    def add_push(self, target: Target) -> FFmpegPush:
        push = FFmpegPush(
            target,
            self.group.id,
            ffmpeg=self._ffmpeg,
            hub=self.hub,
            bus=self._bus,
            keys=self._keys,
            wanted=lambda: self.wants_output,
            config=self._push_config,
            redactor=self._redactor,
        )
        self.pushes[target.id] = push
        return push

    # -- what people ask for ----------------------------------------------------------------

    async def start(self) -> None:
        """Go live now (or as soon as the source arrives) and stay on until stopped."""
        self.live = True
        await self._follow_source()
        self.publish_state()

    async def stop(self) -> None:
        """End every output of this group cleanly."""
        self.live = False
        self.group.armed = False
        await self._stop_children()
        self.publish_state()

    async def arm(self) -> None:
        """Go live whenever the source is received, end when it ends, until disarmed."""
        self.group.armed = True
        await self._follow_source()
        self.publish_state()

    async def disarm(self) -> None:
        """Withdraw the standing order; a group started by hand stays live."""
        self.group.armed = False
        if not self.live:
            await self._stop_children()
        self.publish_state()

    async def enable(self, target_id: str) -> None:
        """Switch one target on; if the group is live it connects now, nothing else moves."""
        push = self.pushes[target_id]
        push.target.enabled = True
        if self.wants_output and self.hub.session_active:
            await push.start()
        push.publish_state()

    async def disable(self, target_id: str) -> None:
        """Switch one target off; its stream ends cleanly, nothing else moves."""
        push = self.pushes[target_id]
        push.target.enabled = False
        await push.stop()
        push.publish_state()

    async def follow(self, group: Group) -> None:
        """Adopt an edited model of this group whose encoding is unchanged.

        Removed targets end cleanly, added ones start if the group is live and they are
        enabled, a target switched on or off starts or stops, a stopped or failed target sent
        somewhere else starts again; no other target is touched.
        Arming or disarming by an edit acts as :meth:`arm` and :meth:`disarm` do.
        """
        was_armed, self.group = self.group.armed, group
        wanted = {t.id: t for t in group.targets}
        for target_id in [tid for tid in self.pushes if tid not in wanted]:
            gone = self.pushes.pop(target_id)
            await gone.stop()
            gone.close()
        pushes: dict[str, FFmpegPush] = {}
        changed: list[FFmpegPush] = []
        for target in group.targets:
            push = self.pushes.get(target.id)
            if push is None:
                push = self.add_push(target)
                changed.append(push)
            else:
                moved = destination_of(push.target) != destination_of(target)
                if push.target.enabled != target.enabled or (moved and not push.busy):
                    changed.append(push)  # a failed target whose destination was fixed retries
                push.retarget(target)
            pushes[target.id] = push
        self.pushes = pushes
        for push in changed:
            if not push.target.enabled:
                await push.stop()
            elif self.wants_output and self.hub.session_active:
                await push.start()
            push.publish_state()
        if group.armed != was_armed:
            if self.wants_output:
                await self._follow_source()
            else:
                await self._stop_children()
        self.publish_state()

    def close(self) -> None:
        """Stop listening to the bus; for a group being removed (shut it down first)."""
        self._unlisten()
        for push in self.pushes.values():
            push.close()

    async def shutdown(self) -> None:
        """Stop every child for the agent's exit (the profile's arming is left as it is)."""
        self.live = False
        await self._stop_children()
        for task in list(self._tasks):
            task.cancel()

    # -- following the source ---------------------------------------------------------------

    def source_started(self) -> None:
        """The source hub began a session (called from the hub, synchronously)."""
        if self.wants_output:
            self._spawn(self._follow_source())

    async def _follow_source(self) -> None:
        if not self.source.session_active:
            return
        if self.encoder is not None:
            await self.encoder.start()
        else:
            await self._start_pushes()

    async def _start_pushes(self) -> None:
        for push in self.pushes.values():
            if push.target.enabled and self.wants_output and self.hub.session_active:
                await push.start()

    async def _stop_children(self) -> None:
        stops = [push.stop() for push in self.pushes.values()]
        if self.encoder is not None:
            stops.append(self.encoder.stop())
        await asyncio.gather(*stops)

    # -- the encoder's pipes ----------------------------------------------------------------

    async def _feed_encoder(self, stdin: asyncio.StreamWriter) -> None:
        assert self.encoder is not None
        sub = self.source.subscribe(f"encoder:{self.group.id}")
        sub.on_cut_off = self.encoder.fail  # the feeder may be stuck in drain()
        await pump(sub, stdin)

    async def _on_encoded(self, chunk: bytes) -> None:
        was_active = self.hub.session_active
        self.hub.feed(chunk)
        if not was_active and self.hub.session_active:
            await self._start_pushes()

    def _on_encoder_exit(self, returncode: int | None) -> None:
        if self.hub.session_active:
            self.hub.end_session()

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``idle``, ``armed``, ``waiting``, ``starting``, ``live`` or ``degraded``."""
        if not self.wants_output:
            return "idle"
        if not self.source.session_active:
            return "armed" if self.group.armed and not self.live else "waiting"
        enabled = [p for p in self.pushes.values() if p.target.enabled]
        states = {p.state for p in enabled}
        encoder_trouble = self.encoder is not None and self.encoder.state in (
            ProcessState.BACKOFF,
            ProcessState.FATAL,
        )
        if encoder_trouble or states & {"retrying", "failed"}:
            return "degraded"
        if "live" in states:
            return "live"
        return "starting" if enabled else "live"

    def publish_state(self) -> None:
        # A target's "waiting"/"idle" follows the group, not a process: publish it from here.
        for push in self.pushes.values():
            push.publish_state()
        state = self.state
        if state == self._published:
            return
        self._published = state
        reason = ""
        if self.encoder is not None and self.encoder.state in (
            ProcessState.BACKOFF,
            ProcessState.FATAL,
        ):
            reason = f"encoder: {self.encoder.reason}"
        self._bus.publish(GroupStateChanged(group=self.group.id, state=state, reason=reason))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ProcessStateChanged):
            self.publish_state()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> dict[str, Any]:
        """The group's figures and each target's, JSON-ready."""
        targets = [push.stats().to_dict() for push in self.pushes.values()]
        live = [t for t in targets if t["state"] == "live"]
        encoder: dict[str, Any] | None = None
        if self.encoder is not None:
            progress = self.encoder.last_progress
            encoder = {
                "state": self.encoder.state.value,
                "fps": progress.fps if progress else None,
                "speed": progress.speed if progress else None,
                "dropped_frames": progress.drop_frames if progress else 0,
                "last_error": self.encoder.reason
                if self.encoder.state in (ProcessState.BACKOFF, ProcessState.FATAL)
                else "",
            }
        return {
            "id": self.group.id,
            "name": self.group.label,
            "mode": self.group.mode.value,
            "state": self.state,
            "armed": self.group.armed,
            "live": self.live,
            "encoder": encoder,
            "targets": targets,
            "targets_live": len(live),
            "bitrate_kbps": round(sum(t["bitrate_kbps"] or 0 for t in live), 1),
        }


def destination_of(target: Target) -> tuple[object, ...]:
    """Where a target sends: a change needs a new child."""
    return (target.platform, target.url, target.key_ref, target.key, target.backup)

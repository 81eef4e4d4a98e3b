"""The relay: ingest → source hub → groups → targets, and the operations people call.

Every operation here is what the API, the tray and the CLI call; none of them keeps state of
its own. Bad input (an unknown id, a target without a key, an encoder the probe found
unusable) raises a :class:`~agent.errors.CascadeError` before anything changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from agent.core.events import EventBus, StatsUpdated
from agent.core.group import GroupRuntime, destination_of
from agent.core.ingest import Ingest
from agent.core.model import Group, Profile, Target
from agent.core.platforms import resolve_destination
from agent.core.push import PUSH_CONFIG, KeySource
from agent.core.redact import REDACTOR, Redactor
from agent.core.supervisor import SupervisorConfig
from agent.core.validate import validate_group
from agent.errors import CascadeError, ConfigError, Conflict
from agent.media.capabilities import Capabilities
from agent.media.flv_hub import FlvHub

log = logging.getLogger(__name__)

DEFAULT_MAX_LAG_BYTES = 8_000_000  # ~10 s at 6 Mbit/s before a slow output is cut off
STATS_PERIOD = 1.0  # seconds; stats are published at most this often per group


def key_from_target(target: Target) -> str | None:
    """The default key source: the key held in the model (tests and ``cascade demo``)."""
    return target.key


class Relay:
    """Owns the ingest, the source hub and every group of one profile."""

    def __init__(
        self,
        profile: Profile,
        *,
        ffmpeg: str,
        bus: EventBus,
        capabilities: Capabilities | None = None,
        keys: KeySource = key_from_target,
        redactor: Redactor = REDACTOR,
        push_config: SupervisorConfig = PUSH_CONFIG,
        max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
    ) -> None:
        self.profile = profile
        self.bus = bus
        self.capabilities = capabilities
        self._keys = keys
        self.source = FlvHub("source", max_lag_bytes=max_lag_bytes)
        self.source.on_session_start = self._source_started
        self.source.on_session_end = self._source_ended
        self.ingest = Ingest(
            profile.ingest, ffmpeg=ffmpeg, bus=bus, hub=self.source, redactor=redactor
        )
        self._ffmpeg = ffmpeg
        self._redactor = redactor
        self._push_config = push_config
        self._max_lag_bytes = max_lag_bytes
        self.groups: dict[str, GroupRuntime] = {g.id: self._runtime(g) for g in profile.groups}
        self._stats_task: asyncio.Task[None] | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening for OBS; armed groups go live when it publishes."""
        self._started = True
        await self.ingest.start()
        self._stats_task = asyncio.create_task(self._publish_stats(), name="stats")

    async def stop(self) -> None:
        """Stop every target, encoder and the ingest, each cleanly."""
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        await asyncio.gather(*(g.shutdown() for g in self.groups.values()))
        await self.ingest.stop()
        self.ingest.close()
        for group in self.groups.values():
            group.close()
        self._started = False

    # -- following an edited profile --------------------------------------------------------

    def check(self, new: Profile) -> None:
        """Raise :class:`Conflict` if following ``new`` would change something running.

        Allowed live: names, added groups and targets, targets switched on or off, and any
        change to what is not running. Refused live: the ingest while a stream comes in, a
        group's encoding while its encoder or a target runs, a sending target's destination,
        and removing a group or target that is sending.
        """
        if new.ingest != self.profile.ingest and self.source.session_active:
            raise Conflict(
                "a stream is coming in, so its settings cannot change now",
                subject="ingest",
                hint="Stop streaming in OBS, change the ingest, then start streaming again",
            )
        edited = {g.id: g for g in new.groups}
        for group_id, runtime in self.groups.items():
            group = edited.get(group_id)
            if group is None or _encoding(group) != _encoding(runtime.group):
                if runtime.busy:
                    what = "removed" if group is None else "re-encoded differently"
                    raise Conflict(
                        f"it is live, so it cannot be {what} now",
                        subject=f"group '{group_id}'",
                        hint=f"Stop it first (cascade stop {group_id}), then try again",
                    )
                continue
            targets = {t.id: t for t in group.targets}
            for target_id, push in runtime.pushes.items():
                target = targets.get(target_id)
                if not push.busy or (target is not None and not target.enabled):
                    continue
                if target is None or destination_of(target) != destination_of(push.target):
                    what = "removed" if target is None else "sent elsewhere"
                    raise Conflict(
                        f"it is sending, so it cannot be {what} now",
                        subject=f"target '{target_id}'",
                        hint=f"Switch it off first (cascade toggle {target_id}), then try again",
                    )

    async def apply(self, new: Profile) -> None:
        """Follow an edited profile, touching only what changed (see :meth:`check`)."""
        self.check(new)
        old, self.profile = self.profile, new
        if new.ingest != old.ingest:
            self.ingest.settings = new.ingest
            if self._started:
                await self.ingest.stop()
                await self.ingest.start()
        runtimes: dict[str, GroupRuntime] = {}
        retired: list[GroupRuntime] = []
        fresh: list[GroupRuntime] = []
        for group in new.groups:
            runtime = self.groups.get(group.id)
            if runtime is not None and _encoding(group) == _encoding(runtime.group):
                await runtime.follow(group)
            else:
                if runtime is not None:
                    retired.append(runtime)
                live = runtime.live if runtime is not None else False
                runtime = self._runtime(group)
                runtime.live = live
                fresh.append(runtime)
            runtimes[group.id] = runtime
        retired.extend(r for gid, r in self.groups.items() if gid not in runtimes)
        self.groups = runtimes
        for runtime in retired:
            await runtime.shutdown()
            runtime.close()
        for runtime in fresh:
            runtime.publish_state()
            if self._started:
                runtime.source_started()

    # -- operations -------------------------------------------------------------------------

    async def start_group(self, group_id: str) -> None:
        """Start a group: live now if OBS is publishing, else as soon as it does."""
        group = self._group(group_id)
        self._check_startable(group)
        await group.start()

    async def stop_group(self, group_id: str) -> None:
        """Stop a group: its targets end cleanly; it is disarmed too."""
        await self._group(group_id).stop()

    async def toggle_group(self, group_id: str) -> bool:
        """Start a stopped group or stop a running one; returns whether it now wants output."""
        group = self._group(group_id)
        if group.wants_output:
            await group.stop()
            return False
        self._check_startable(group)
        await group.start()
        return True

    async def arm_group(self, group_id: str) -> None:
        """Arm a group: live whenever OBS publishes, ended when it stops."""
        group = self._group(group_id)
        self._check_startable(group)
        await group.arm()

    async def disarm_group(self, group_id: str) -> None:
        await self._group(group_id).disarm()

    async def enable_target(self, target_id: str) -> None:
        """Switch one target on while its group is live, touching no other target."""
        group_model, target = self.profile.target(target_id)
        runtime = self.groups[group_model.id]
        if runtime.wants_output:
            self._check_target(target)
        await runtime.enable(target_id)

    async def disable_target(self, target_id: str) -> None:
        """Switch one target off while its group is live, touching no other target."""
        group_model, _ = self.profile.target(target_id)
        await self.groups[group_model.id].disable(target_id)

    async def toggle_target(self, target_id: str) -> bool:
        """Flip one target; returns whether it is now enabled."""
        _, target = self.profile.target(target_id)
        if target.enabled:
            await self.disable_target(target_id)
            return False
        await self.enable_target(target_id)
        return True

    async def start_all(self) -> None:
        """Start every group (all are checked first; none starts if one cannot)."""
        for group in self.groups.values():
            self._check_startable(group)
        await asyncio.gather(*(g.start() for g in self.groups.values()))

    async def stop_all(self) -> None:
        """Stop every group."""
        await asyncio.gather(*(g.stop() for g in self.groups.values()))

    # -- reading ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Ingest, groups and targets with their states and figures, JSON-ready."""
        groups = [g.stats() for g in self.groups.values()]
        targets = [t for g in groups for t in g["targets"]]
        return {
            "ingest": {
                "kind": self.profile.ingest.kind.value,
                "url": self.profile.ingest.obs_url,
                "state": self.ingest.state.value,
                "reason": self.ingest.reason,
                "stream": self.ingest.info(),
                "bitrate_kbps": self.source.input_bitrate_kbps(),
            },
            "groups": groups,
            "totals": {
                "groups_live": sum(1 for g in groups if g["state"] in ("live", "degraded")),
                "targets": len(targets),
                "targets_live": sum(1 for t in targets if t["state"] == "live"),
                "targets_failing": sum(1 for t in targets if t["state"] in ("retrying", "failed")),
                "bitrate_kbps": round(sum(g["bitrate_kbps"] for g in groups), 1),
            },
        }

    # -- internals --------------------------------------------------------------------------

    def _runtime(self, group: Group) -> GroupRuntime:
        return GroupRuntime(
            group,
            source=self.source,
            ffmpeg=self._ffmpeg,
            bus=self.bus,
            keys=self._keys,
            redactor=self._redactor,
            push_config=self._push_config,
            max_lag_bytes=self._max_lag_bytes,
        )

    def _group(self, group_id: str) -> GroupRuntime:
        self.profile.group(group_id)  # raises UnknownId with the known ids
        return self.groups[group_id]

    def _check_startable(self, group: GroupRuntime) -> None:
        validate_group(group.group, self.capabilities)
        for target in group.group.targets:
            if target.enabled:
                self._check_target(target)

    def _check_target(self, target: Target) -> None:
        try:
            resolve_destination(target, self._keys(target))
        except CascadeError:
            raise  # already says which target and what to do
        except Exception as exc:  # a key store that failed unexpectedly: say which target
            raise ConfigError(
                f"its stream key could not be read: {exc}", subject=f"target '{target.id}'"
            ) from exc

    def _source_started(self) -> None:
        for group in self.groups.values():
            group.source_started()

    def _source_ended(self) -> None:
        for group in self.groups.values():
            group.publish_state()

    async def _publish_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD)
            ingest = {"bitrate_kbps": self.source.input_bitrate_kbps()}
            for group in self.groups.values():
                if group.wants_output or group.hub.session_active:
                    self.bus.publish(
                        StatsUpdated(group=group.id, stats=group.stats(), ingest=ingest)
                    )


def _encoding(group: Group) -> tuple[object, ...]:
    """What a group's encoder does: a change needs a new encoder."""
    return (group.mode, group.video, group.audio)

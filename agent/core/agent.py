"""The agent: the one asyncio core that owns the FFmpeg binary, the supervisors and the bus.

The API, the tray and the CLI are thin clients of this object. Creating it does nothing;
:meth:`Agent.start` finds FFmpeg and probes it, :meth:`Agent.stop` stops every child cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from agent.core.events import ErrorRaised, EventBus
from agent.core.logbook import Logbook
from agent.core.model import Profile
from agent.core.push import KeySource
from agent.core.relay import Relay, key_from_target
from agent.core.settings import Settings, load_settings
from agent.core.supervisor import ChildSpec, Supervisor, SupervisorConfig
from agent.errors import CascadeError, Conflict, FFmpegError
from agent.media.capabilities import Capabilities, probe_capabilities_async
from agent.media.ffmpeg import FFmpegBinary, find_ffmpeg
from agent.paths import cache_dir

log = logging.getLogger(__name__)


class Agent:
    """Cascade's core: everything the agent runs, in one asyncio loop."""

    def __init__(
        self,
        config_dir: Path,
        *,
        settings: Settings | None = None,
        bus: EventBus | None = None,
        profile: Profile | None = None,
        keys: KeySource = key_from_target,
    ) -> None:
        self.config_dir = config_dir
        self.settings = settings or load_settings(config_dir)
        self.bus = bus or EventBus()
        self.profile = profile or Profile()
        self.relay: Relay | None = None
        self._keys = keys
        self.ffmpeg: FFmpegBinary | None = None
        self.ffmpeg_error: FFmpegError | None = None
        self.capabilities: Capabilities | None = None
        self.probe_error: CascadeError | None = None  # why the last probe failed, if it did
        self.supervisors: dict[str, Supervisor] = {}
        # The recent log lines (FFmpeg's and the agent's own) for the dashboard.
        self.logbook = Logbook()
        self.bus.add_listener(self.logbook.on_event)
        self._stop_capture: Callable[[], None] | None = None
        self._probe: asyncio.Task[Capabilities | None] | None = None
        self._probe_lock = asyncio.Lock()
        self._start_begun = False
        self._start_done = asyncio.Event()

    async def start(self) -> None:
        """Find FFmpeg and start probing it in the background.

        A missing FFmpeg does not stop the agent: the error is published and kept, so the
        person can read it (``cascade doctor``, the API) and fix the setting.
        """
        self._start_begun = True
        if self._stop_capture is None:
            self._stop_capture = self.logbook.capture(self.bus)
        try:
            await self._start()
        finally:
            self._start_done.set()

    async def wait_started(self, timeout: float = 30.0) -> None:
        """Wait for a :meth:`start` in progress to finish (at once if none is): the API
        answers before FFmpeg has been found, and an operation then waits for it."""
        if self._start_begun and not self._start_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._start_done.wait(), timeout)

    async def _start(self) -> None:
        try:
            binary = await asyncio.to_thread(find_ffmpeg, self.settings.ffmpeg)
        except FFmpegError as exc:
            self.ffmpeg_error = exc
            log.error("%s", exc)
            self.bus.publish(ErrorRaised(source="ffmpeg", message=exc.what, hint=exc.hint or ""))
            return
        await self._run_with(binary)

    async def _run_with(self, binary: FFmpegBinary) -> None:
        """Probe ``binary`` in the background and start the relay with it."""
        self.ffmpeg = binary
        self.ffmpeg_error = None
        log.info("using FFmpeg %s at %s", self.ffmpeg.version, self.ffmpeg.path)
        self._probe = asyncio.create_task(self.refresh_capabilities(), name="probe")
        self.relay = Relay(
            self.profile,
            ffmpeg=str(self.ffmpeg.path),
            bus=self.bus,
            capabilities=self.capabilities,
            keys=self._keys,
        )
        await self.relay.start()
        log.info("ingest: %s", self.profile.ingest.obs_url)

    async def refresh_capabilities(self, *, refresh: bool = False) -> Capabilities | None:
        """Probe (or read from the cache) what the FFmpeg binary can do."""
        if self.ffmpeg is None:
            return None
        try:
            self.capabilities = await probe_capabilities_async(
                self.ffmpeg, cache_dir=cache_dir(self.config_dir), refresh=refresh
            )
        except CascadeError as exc:
            self.probe_error = exc
            log.error("%s", exc)
            self.bus.publish(ErrorRaised(source="ffmpeg", message=str(exc)))
            return None
        self.probe_error = None
        if self.relay is not None:
            self.relay.capabilities = self.capabilities
        usable = ", ".join(self.capabilities.usable_video_encoders()) or "none"
        log.info("video encoders usable: %s", usable)
        return self.capabilities

    async def probed(self) -> Capabilities | None:
        """The capabilities once the probe in progress (if any) has ended; None if FFmpeg is
        missing or the probe failed (:attr:`probe_error` says why)."""
        await self.wait_started()
        probe = self._probe
        if probe is not None and not probe.done():
            await asyncio.wait({probe})  # never raises: a cancelled probe just ends the wait
        return self.capabilities

    async def reprobe(self) -> Capabilities | None:
        """Probe FFmpeg again, ignoring the cache (a driver was installed, a GPU added).

        One probe at a time; None if there is no FFmpeg or the probe failed
        (:attr:`probe_error`).
        """
        async with self._probe_lock:
            await self.probed()
            if self.ffmpeg is None:
                return None
            self._probe = asyncio.create_task(self.refresh_capabilities(refresh=True), name="probe")
            await asyncio.wait({self._probe})
            return self.capabilities if self.probe_error is None else None

    async def use_ffmpeg(self, binary: FFmpegBinary) -> None:
        """Run ``binary`` from now on (the ffmpeg setting changed): the relay is started
        again with it and it is probed. An agent that had no FFmpeg comes alive this way.

        Refused with :class:`~agent.errors.Conflict` (nothing changed) unless the agent is
        :attr:`idle`; choosing the binary in use changes nothing.
        """
        if self.ffmpeg is not None and binary.cache_key == self.ffmpeg.cache_key:
            return
        if not self.idle:
            raise Conflict(
                "a stream is live or a group is started or armed",
                subject="FFmpeg",
                hint="Stop every group (cascade stop-all) and stop streaming in OBS first",
            )
        async with self._probe_lock:
            if self._probe is not None and not self._probe.done():
                self._probe.cancel()
                await asyncio.wait({self._probe})
            if self.relay is not None:
                await self.relay.stop()
                self.relay = None
            self.capabilities = None
            self.probe_error = None
            await self._run_with(binary)

    async def apply_profile(self, profile: Profile) -> None:
        """Follow an edited version of the running profile, touching only what changed.

        Raises :class:`~agent.errors.Conflict` (nothing changed) when the edit would change
        something that is running; see :meth:`Relay.check`.
        """
        if self.relay is not None:
            await self.relay.apply(profile)
        self.profile = profile

    def check_profile(self, profile: Profile) -> None:
        """Raise :class:`~agent.errors.Conflict` if :meth:`apply_profile` would refuse."""
        if self.relay is not None:
            self.relay.check(profile)

    @property
    def idle(self) -> bool:
        """No stream is coming in and no group wants output."""
        relay = self.relay
        if relay is None:
            return True
        receiving = relay.source.session_active
        return not receiving and not any(g.wants_output for g in relay.groups.values())

    async def switch_profile(self, profile: Profile, keys: KeySource) -> None:
        """Run another profile: the ingest and every group are replaced.

        Refused with :class:`~agent.errors.Conflict` unless the agent is :attr:`idle`, so a
        switch never ends a stream.
        """
        if not self.idle:
            raise Conflict(
                "a stream is live or a group is started or armed",
                subject=f"profile '{self.profile.name}'",
                hint="Stop every group (cascade stop-all) and stop streaming in OBS first",
            )
        self.profile, self._keys = profile, keys
        if self.relay is None:
            return
        await self.relay.stop()
        assert self.ffmpeg is not None
        self.relay = Relay(
            profile,
            ffmpeg=str(self.ffmpeg.path),
            bus=self.bus,
            capabilities=self.capabilities,
            keys=keys,
        )
        await self.relay.start()
        log.info("profile %s; ingest: %s", profile.name, profile.ingest.obs_url)

    def supervise(self, spec: ChildSpec, config: SupervisorConfig | None = None) -> Supervisor:
        """Create (not start) a supervisor for ``spec`` that :meth:`stop` will stop."""
        if spec.name in self.supervisors:
            raise CascadeError(f"a process named '{spec.name}' is already supervised")
        sup = Supervisor(spec, bus=self.bus, config=config)
        self.supervisors[spec.name] = sup
        return sup

    async def stop(self) -> None:
        """Stop every child (all at once, each gracefully) and wait until all are reaped."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
        if self.relay is not None:
            await self.relay.stop()
        await asyncio.gather(
            *(sup.stop() for sup in self.supervisors.values()), return_exceptions=True
        )
        log.info("agent stopped")
        if self._stop_capture is not None:
            self._stop_capture()
            self._stop_capture = None

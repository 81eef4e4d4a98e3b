"""The agent: the one asyncio core that owns the FFmpeg binary, the supervisors and the bus.

The API, the tray and the CLI are thin clients of this object. Creating it does nothing;
:meth:`Agent.start` finds FFmpeg and probes it, :meth:`Agent.stop` stops every child cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from agent.core.events import ErrorRaised, EventBus
from agent.core.model import Profile
from agent.core.push import KeySource
from agent.core.relay import Relay, key_from_target
from agent.core.settings import Settings, load_settings
from agent.core.supervisor import ChildSpec, Supervisor, SupervisorConfig
from agent.errors import CascadeError, FFmpegError
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
        self.supervisors: dict[str, Supervisor] = {}
        self._probe: asyncio.Task[Capabilities | None] | None = None

    async def start(self) -> None:
        """Find FFmpeg and start probing it in the background.

        A missing FFmpeg does not stop the agent: the error is published and kept, so the
        person can read it (``cascade doctor``, the API) and fix the setting.
        """
        try:
            self.ffmpeg = await asyncio.to_thread(find_ffmpeg, self.settings.ffmpeg)
        except FFmpegError as exc:
            self.ffmpeg_error = exc
            log.error("%s", exc)
            self.bus.publish(ErrorRaised(source="ffmpeg", message=exc.what, hint=exc.hint or ""))
            return
        log.info("using FFmpeg %s at %s", self.ffmpeg.version, self.ffmpeg.path)
        self._probe = asyncio.create_task(self.refresh_capabilities(), name="probe")
        self.relay = Relay(
            self.profile, ffmpeg=str(self.ffmpeg.path), bus=self.bus, keys=self._keys
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
            log.error("%s", exc)
            self.bus.publish(ErrorRaised(source="ffmpeg", message=str(exc)))
            return None
        if self.relay is not None:
            self.relay.capabilities = self.capabilities
        usable = ", ".join(self.capabilities.usable_video_encoders()) or "none"
        log.info("video encoders usable: %s", usable)
        return self.capabilities

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

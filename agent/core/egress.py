"""The egress interface: how a target's stream leaves Cascade.

One small interface — FLV tags in (from a hub subscription), connection state, counters and
errors out — so that another implementation can take over some URL schemes later without
touching the hub, the groups or the supervisor. Today every target is an
:class:`~agent.core.push.FFmpegPush`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TargetStats:
    """One target's figures at one moment; ``state`` is what a person reads."""

    id: str
    group: str
    state: str
    enabled: bool
    destination: str  # the URL with the key masked
    bitrate_kbps: float | None = None
    fps: float | None = None
    frames: int | None = None
    dropped_frames: int = 0
    duplicated_frames: int = 0
    bytes_sent: int = 0
    uptime_s: float | None = None
    retries: int = 0
    last_error: str = ""
    hub_bytes_delivered: int = 0
    hub_tags_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Egress(Protocol):
    """A target's way out. Implementations never block the event loop."""

    @property
    def target_id(self) -> str: ...

    @property
    def state(self) -> str:
        """``disabled``, ``idle``, ``waiting``, ``connecting``, ``live``, ``retrying``,
        ``stopping`` or ``failed``."""
        ...

    async def start(self) -> None:
        """Begin sending (the hub's session must be active)."""
        ...

    async def stop(self) -> None:
        """End the stream cleanly and wait until the connection is closed."""
        ...

    def stats(self) -> TargetStats:
        """Current figures."""
        ...

"""The relay's model: a profile holds the ingest, output groups and their targets.

Typed dataclasses the core owns. Durable storage lives elsewhere; this module only says what a
profile *is* and finds things in it. Ids are short slugs a person can type (``main``,
``720p``, ``youtube``), unique across the profile.

Stream keys are secrets: a target's ``key`` never appears in ``repr()`` and is registered with
the redactor before anything could print it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.errors import CascadeError


class UnknownId(CascadeError):
    """Raised when a group or target id does not exist in the profile."""


class IngestKind(enum.StrEnum):
    """How the stream reaches Cascade."""

    RTMP = "rtmp"  # OBS publishes to Cascade's own RTMP listener
    SRT = "srt"  # OBS (or an encoder) sends to Cascade's SRT listener
    PULL = "pull"  # Cascade reads from an existing media server (MediaMTX, SRS, nginx-rtmp)


class GroupMode(enum.StrEnum):
    """What a group does to the source before its targets send it."""

    PASSTHROUGH = "passthrough"  # the source as it is; no process of its own
    REENCODE = "reencode"  # one encoder per group feeding all of the group's targets


class Platform(enum.StrEnum):
    """Where a target sends: a platform preset, a custom server, or a local file."""

    YOUTUBE = "youtube"
    TWITCH = "twitch"
    KICK = "kick"
    FACEBOOK = "facebook"
    CUSTOM = "custom"
    RECORDING = "recording"


@dataclass(slots=True)
class IngestSettings:
    """Where OBS sends its one stream. The default is ``rtmp://127.0.0.1:1935/live``."""

    kind: IngestKind = IngestKind.RTMP
    bind: str = "127.0.0.1"
    port: int = 1935
    app: str = "live"
    key: str = field(default="", repr=False)  # the stream key OBS must use; "" = none asked
    url: str = ""  # the source to read, for a pull ingest
    srt_latency_ms: int = 120

    @property
    def obs_url(self) -> str:
        """The server URL to paste into OBS (without the key)."""
        if self.kind is IngestKind.SRT:
            return f"srt://{_host(self.bind)}:{self.port}"
        if self.kind is IngestKind.PULL:
            return self.url
        return f"rtmp://{_host(self.bind)}:{self.port}/{self.app}"


@dataclass(slots=True)
class VideoSettings:
    """Encoder settings of a re-encode group's video."""

    codec: str = "libx264"
    width: int | None = None  # None with a height: keep the source's aspect ratio
    height: int | None = None
    fps: float | None = None  # None: the source's frame rate
    bitrate_kbps: int = 4500
    keyframe_interval_s: float = 2.0
    preset: str = "veryfast"  # x264 names; mapped per encoder family
    profile: str | None = "high"


@dataclass(slots=True)
class AudioSettings:
    """Audio of a re-encode group: ``copy`` keeps the source's audio untouched."""

    codec: str = "copy"
    bitrate_kbps: int = 160
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(slots=True)
class Target:
    """One destination: a platform ingest, a custom server or a recording file."""

    id: str
    platform: Platform = Platform.CUSTOM
    name: str = ""
    url: str = ""  # empty: the platform preset's primary ingest; a file path for recordings
    key: str | None = field(default=None, repr=False)  # in memory only; never saved
    # Where the key lives, which is what a profile file stores: "keyring" (the OS keyring or
    # the vault, under this profile and target), "${ENV_VAR}" (read when the target starts),
    # or None (no key).
    key_ref: str | None = None
    enabled: bool = True
    backup: bool = False  # use the platform's backup ingest (YouTube)

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(slots=True)
class Group:
    """Targets that send the same stream: the source as is, or one encode of it."""

    id: str
    name: str = ""
    mode: GroupMode = GroupMode.PASSTHROUGH
    video: VideoSettings = field(default_factory=VideoSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    targets: list[Target] = field(default_factory=list)
    armed: bool = False

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(slots=True)
class Profile:
    """Everything one set-up needs: the ingest and the output groups."""

    name: str = "default"
    ingest: IngestSettings = field(default_factory=IngestSettings)
    groups: list[Group] = field(default_factory=list)

    def group(self, group_id: str) -> Group:
        """The group with this id, or :class:`UnknownId` listing the ones that exist."""
        for group in self.groups:
            if group.id == group_id:
                return group
        raise UnknownId(
            f"there is no group '{group_id}'",
            hint=f"Known groups: {_known(g.id for g in self.groups)}",
        )

    def target(self, target_id: str) -> tuple[Group, Target]:
        """The target with this id and its group, or :class:`UnknownId`."""
        for group in self.groups:
            for target in group.targets:
                if target.id == target_id:
                    return group, target
        raise UnknownId(
            f"there is no target '{target_id}'",
            hint=f"Known targets: {_known(t.id for g in self.groups for t in g.targets)}",
        )

    def ids(self) -> set[str]:
        """Every group and target id in use."""
        return {g.id for g in self.groups} | {t.id for g in self.groups for t in g.targets}


def _known(ids: Iterable[str]) -> str:
    names = sorted(ids)
    return ", ".join(names) if names else "none yet"


def _host(bind: str) -> str:
    """The address OBS should use for a bind address (a wildcard bind means this machine)."""
    if bind in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind else bind

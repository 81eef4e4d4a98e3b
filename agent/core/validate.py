"""Validation of a profile before it is saved or started: refuse bad input with a clear message.

Every problem is a :class:`ValidationError` (a :class:`~agent.errors.ConfigError`) that names
the group or target, says what is wrong, what to do, and carries ``field`` — a path such as
``groups[720p].video.codec``, ``targets[youtube].url`` or ``ingest.port`` — so a UI can show
the message next to the field. Validation stops at the first problem.

What validation does *not* check:

- stream keys: a target without its key is valid; the missing key is reported when the target
  starts (:func:`~agent.core.platforms.resolve_destination`);
- encoder usability when ``caps`` is None (FFmpeg not probed yet): the encoder name is then
  not checked at all, and is checked once the probe has run;
- a passthrough group's video and audio settings, which nothing uses.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestKind,
    IngestSettings,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.platforms import check_url, preset_for, resolve_destination
from agent.errors import ConfigError
from agent.media.args import AUDIO_CODECS, X264_PRESETS
from agent.media.capabilities import Capabilities, MediaKind

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
INGEST_APP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The ingest key is the last segment of FFmpeg's listen URL; characters outside this set are
# rewritten by FFmpeg's URL parsing, so the key OBS sends would never match.
INGEST_KEY = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")

MAX_WIDTH, MAX_HEIGHT = 7680, 4320
FPS_RANGE = (1.0, 240.0)
VIDEO_KBPS_RANGE = (100, 100_000)
KEYFRAME_S_RANGE = (0.5, 10.0)
AUDIO_KBPS_RANGE = (32, 512)
SAMPLE_RATES = (32_000, 44_100, 48_000)
OPUS_SAMPLE_RATES = (48_000,)  # libopus refuses 44.1 kHz and 32 kHz
VIDEO_PROFILES = ("baseline", "main", "high")
SRT_LATENCY_MS_RANGE = (1, 10_000)
PULL_SCHEMES = frozenset({"rtmp", "rtmps", "srt"})


# fail(field name, what, hint) -> the error to raise, with the field path filled in
_Fail = Callable[[str, str, str], "ValidationError"]


class ValidationError(ConfigError):
    """Raised when a profile, group, target or ingest setting is invalid.

    ``field`` locates the bad value (``groups[720p].video.codec``) for a UI.
    """

    def __init__(
        self, what: str, *, field: str, subject: str | None = None, hint: str | None = None
    ) -> None:
        self.field = field
        super().__init__(what, subject=subject, hint=hint)


def _shown(value: object) -> str:
    """A value quoted for a message, cut short so a pasted essay stays readable."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _suggest_slug(value: str) -> str | None:
    slug = re.sub(r"[^a-z0-9_-]+", "-", value.strip().lower()).strip("-_")[:32]
    return slug if SLUG.match(slug) else None


def validate_slug(value: object, what: str, *, field: str | None = None) -> str:
    """Return ``value`` if it is a valid id (``main``, ``720p``, ``youtube``), else raise.

    Ids are 1–32 characters: lower-case letters, digits, ``-`` and ``_``, starting with a
    letter or digit — short enough to type into a Stream Deck button. ``what`` names the id
    in the message ("group id"); ``field`` defaults to it.
    """
    if isinstance(value, str) and SLUG.match(value):
        return value
    hint = "Use 1–32 lower-case letters, digits, '-' or '_', e.g. 'main', '720p' or 'youtube'"
    suggestion = _suggest_slug(value) if isinstance(value, str) else None
    if suggestion and suggestion != value:
        hint = f"{hint}; '{suggestion}' would do"
    raise ValidationError(
        f"the {what} '{_shown(value)}' is not a valid id", field=field or what, hint=hint
    )


# --- groups ---------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _range(low: float, high: float, unit: str) -> str:
    return f"from {low:g} to {high:g}{unit}"


def validate_group(group: Group, caps: Capabilities | None) -> None:
    """Check one group: its id, mode, encoder settings (re-encode only) and its targets.

    With ``caps``, the video codec must be a video encoder of this FFmpeg build whose test
    encode succeeded; with ``caps=None`` the encoder is not checked.
    """
    prefix = f"groups[{group.id}]"
    validate_slug(group.id, "group id", field=f"{prefix}.id")
    subject = f"group '{group.id}'"
    try:
        mode = GroupMode(group.mode)
    except ValueError:
        raise ValidationError(
            f"the mode '{_shown(group.mode)}' is not one Cascade knows",
            field=f"{prefix}.mode",
            subject=subject,
            hint="Use 'passthrough' or 'reencode'",
        ) from None
    if mode is GroupMode.REENCODE:
        _validate_video(group.video, caps, f"{prefix}.video", subject)
        _validate_audio(group.audio, caps, f"{prefix}.audio", subject)
    for target in group.targets:
        validate_target(target)


def _validate_video(
    video: VideoSettings, caps: Capabilities | None, prefix: str, subject: str
) -> None:
    def fail(name: str, what: str, hint: str) -> ValidationError:
        return ValidationError(what, field=f"{prefix}.{name}", subject=subject, hint=hint)

    if not isinstance(video.codec, str) or not video.codec:
        raise fail("codec", "no video encoder is set", "Set one, e.g. libx264")
    if caps is not None:
        _check_encoder(video.codec, caps, fail)
    for name, value, limit in (
        ("width", video.width, MAX_WIDTH),
        ("height", video.height, MAX_HEIGHT),
    ):
        if value is None:
            continue
        if not _is_int(value) or not 2 <= value <= limit or value % 2:
            raise fail(
                name,
                f"the {name} {_shown(value)} is not an even number of pixels from 2 to {limit}",
                f"Use an even {name} such as {1280 if name == 'width' else 720}, or leave it "
                "empty to keep the source's",
            )
    if video.fps is not None and (
        not _is_number(video.fps) or not FPS_RANGE[0] <= video.fps <= FPS_RANGE[1]
    ):
        raise fail(
            "fps",
            f"the frame rate {_shown(video.fps)} is out of range",
            f"Use {_range(*FPS_RANGE, ' fps')}, or leave it empty to keep the source's",
        )
    if not _is_int(video.bitrate_kbps) or not (
        VIDEO_KBPS_RANGE[0] <= video.bitrate_kbps <= VIDEO_KBPS_RANGE[1]
    ):
        raise fail(
            "bitrate_kbps",
            f"the video bitrate {_shown(video.bitrate_kbps)} kbps is out of range",
            f"Use a whole number {_range(*VIDEO_KBPS_RANGE, ' kbps')}, e.g. 3000 for 720p30",
        )
    if not _is_number(video.keyframe_interval_s) or not (
        KEYFRAME_S_RANGE[0] <= video.keyframe_interval_s <= KEYFRAME_S_RANGE[1]
    ):
        raise fail(
            "keyframe_interval_s",
            f"the keyframe interval {_shown(video.keyframe_interval_s)} s is out of range",
            f"Use {_range(*KEYFRAME_S_RANGE, ' s')}; most platforms ask for 2",
        )
    if video.preset not in X264_PRESETS:
        raise fail(
            "preset",
            f"the preset '{_shown(video.preset)}' is not one Cascade knows",
            f"Use one of: {', '.join(X264_PRESETS)}",
        )
    if video.profile is not None and video.profile not in VIDEO_PROFILES:
        raise fail(
            "profile",
            f"the profile '{_shown(video.profile)}' is not one Cascade knows",
            f"Use one of: {', '.join(VIDEO_PROFILES)}, or leave it empty",
        )


def _check_encoder(codec: str, caps: Capabilities, fail: _Fail) -> None:
    usable = caps.usable_video_encoders()
    info = caps.encoders.get(codec)
    if info is None or info.kind is not MediaKind.VIDEO:
        raise fail(
            "codec",
            f"unknown encoder '{_shown(codec)}'; usable ones: {', '.join(usable) or 'none'}",
            "Choose one of the usable encoders ('cascade doctor' lists them)",
        )
    status = caps.encoder_status(codec)
    if not status.usable:
        other = f", e.g. {usable[0]}" if usable else ""
        raise fail(
            "codec",
            f"encoder {codec} is not usable here: {status.reason}",
            f"Choose another encoder{other} ('cascade doctor' lists them)",
        )


def _validate_audio(
    audio: AudioSettings, caps: Capabilities | None, prefix: str, subject: str
) -> None:
    def fail(name: str, what: str, hint: str) -> ValidationError:
        return ValidationError(what, field=f"{prefix}.{name}", subject=subject, hint=hint)

    if audio.codec not in AUDIO_CODECS:
        raise fail(
            "codec",
            f"the audio codec '{_shown(audio.codec)}' is not one Cascade supports",
            f"Use one of: {', '.join(AUDIO_CODECS)}",
        )
    if audio.codec == "copy":
        return
    if caps is not None and audio.codec not in caps.encoders:
        raise fail(
            "codec",
            f"the audio encoder {audio.codec} is not in this FFmpeg build",
            "Use aac, or choose another FFmpeg build",
        )
    if not _is_int(audio.bitrate_kbps) or not (
        AUDIO_KBPS_RANGE[0] <= audio.bitrate_kbps <= AUDIO_KBPS_RANGE[1]
    ):
        raise fail(
            "bitrate_kbps",
            f"the audio bitrate {_shown(audio.bitrate_kbps)} kbps is out of range",
            f"Use a whole number {_range(*AUDIO_KBPS_RANGE, ' kbps')}, e.g. 160",
        )
    rates = OPUS_SAMPLE_RATES if audio.codec == "libopus" else SAMPLE_RATES
    if audio.sample_rate is not None and audio.sample_rate not in rates:
        raise fail(
            "sample_rate",
            f"{audio.codec} cannot use the sample rate {_shown(audio.sample_rate)}",
            f"Use {' or '.join(str(rate) for rate in rates)}, or leave it empty",
        )
    if audio.channels is not None and audio.channels not in (1, 2):
        raise fail(
            "channels",
            f"{_shown(audio.channels)} audio channels are not supported",
            "Use 1 (mono) or 2 (stereo), or leave it empty",
        )


# --- targets --------------------------------------------------------------------------------


def validate_target(target: Target) -> None:
    """Check one target: id, platform, and its URL by the rules of its platform preset.

    A missing stream key is not an error here (see the module docstring).
    """
    prefix = f"targets[{target.id}]"
    validate_slug(target.id, "target id", field=f"{prefix}.id")
    subject = f"target '{target.id}'"
    try:
        preset = preset_for(target)
    except ConfigError as exc:
        raise _located(exc, f"{prefix}.platform") from exc
    if target.backup and preset.backup_url is None:
        raise ValidationError(
            f"{preset.title} has no backup ingest",
            field=f"{prefix}.backup",
            subject=subject,
            hint="Turn off its backup setting, or set the backup server's URL as its URL",
        )
    try:
        resolve_destination(target, None, require_key=False)
    except ConfigError as exc:
        raise _located(exc, f"{prefix}.url") from exc


def _located(exc: ConfigError, field: str) -> ValidationError:
    return ValidationError(exc.what, field=field, subject=exc.subject, hint=exc.hint)


# --- the ingest and the whole profile -------------------------------------------------------


def validate_ingest(ingest: IngestSettings) -> None:
    """Check where OBS sends: kind, bind address, port, app and key, latency, or pull URL."""
    subject = "the ingest"

    def fail(name: str, what: str, hint: str) -> ValidationError:
        return ValidationError(what, field=f"ingest.{name}", subject=subject, hint=hint)

    try:
        kind = IngestKind(ingest.kind)
    except ValueError:
        raise fail(
            "kind",
            f"the ingest kind '{_shown(ingest.kind)}' is not one Cascade knows",
            f"Use one of: {', '.join(k.value for k in IngestKind)}",
        ) from None
    if kind is IngestKind.PULL:
        if not ingest.url:
            raise fail(
                "url",
                "no URL to pull from is set",
                "Set the media server's URL, e.g. rtmp://127.0.0.1:1935/live/obs",
            )
        try:
            check_url(ingest.url, PULL_SCHEMES, title="the ingest", subject=subject)
        except ConfigError as exc:
            raise _located(exc, "ingest.url") from exc
        return
    try:
        ipaddress.ip_address(ingest.bind)
    except ValueError:
        raise fail(
            "bind",
            f"the bind address '{_shown(ingest.bind)}' is not an IP address",
            "Use 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface)",
        ) from None
    if not _is_int(ingest.port) or not 1 <= ingest.port <= 65535:
        raise fail(
            "port",
            f"the port {_shown(ingest.port)} is out of range",
            "Use a port from 1 to 65535; OBS's usual RTMP port is 1935",
        )
    if kind is IngestKind.SRT:
        low, high = SRT_LATENCY_MS_RANGE
        if not _is_int(ingest.srt_latency_ms) or not low <= ingest.srt_latency_ms <= high:
            raise fail(
                "srt_latency_ms",
                f"the SRT latency {_shown(ingest.srt_latency_ms)} ms is out of range",
                f"Use {_range(low, high, ' ms')}; 120 suits a local network",
            )
        return
    if not INGEST_APP.match(ingest.app):
        raise fail(
            "app",
            f"the application name '{_shown(ingest.app)}' is not valid",
            "Use letters, digits, '.', '_' or '-' without '/', e.g. 'live'",
        )
    if ingest.key:
        if "/" in ingest.key or not INGEST_KEY.match(ingest.key):
            # Never quote the key: it is a secret.
            raise fail(
                "key",
                "the ingest key may only hold letters, digits, '.', '_', '~' and '-'",
                "Choose another key for OBS (up to 128 characters, no '/')",
            )
        if ingest.key.lower().endswith((".flv", ".mp4", ".f4v", ".mov")):
            raise fail(
                "key",
                "the ingest key ends with a file extension, which FFmpeg strips",
                "Choose a key that does not end with .flv, .mp4, .f4v or .mov",
            )


def _ids(profile: Profile) -> Iterator[tuple[str, str, str]]:
    """Every id in the profile as (id, "group"/"target", field)."""
    for group in profile.groups:
        yield group.id, "group", f"groups[{group.id}].id"
        for target in group.targets:
            yield target.id, "target", f"targets[{target.id}].id"


def validate_profile(profile: Profile, caps: Capabilities | None) -> None:
    """Check a whole profile: the ingest, unique ids, then every group and its targets.

    Ids are unique across groups *and* targets — ``cascade toggle ID`` must name one thing.
    ``caps=None`` skips the encoder checks (see :func:`validate_group`).
    """
    validate_ingest(profile.ingest)
    seen: dict[str, str] = {}
    for item_id, kind, field in _ids(profile):
        first = seen.get(item_id)
        if first is not None:
            raise ValidationError(
                f"the id '{_shown(item_id)}' is already used by a {first}",
                field=field,
                subject=f"{kind} '{_shown(item_id)}'",
                hint=(
                    "Ids must be unique across groups and targets so that "
                    f"'cascade toggle {_shown(item_id)}' names one thing; rename one of them"
                ),
            )
        seen[item_id] = kind
    for group in profile.groups:
        validate_group(group, caps)

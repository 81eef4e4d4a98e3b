"""FFmpeg argument lists for the relay: the ingest, a group's encoder, and one push per target.

Pure functions: they read settings and return ``list[str]`` for ``create_subprocess_exec``;
they start nothing and (except :func:`recording_path`, which looks for a free file name) touch
nothing. Every list begins with :func:`common_argv` — quiet logging plus machine-readable
``-progress`` blocks on stderr once a second, which the supervisor's stall detector reads.

Where bytes flow::

    ingest_argv   OBS ──rtmp/srt──▶ ffmpeg ──FLV on stdout──▶ hub
    encoder_argv  hub ──FLV on stdin──▶ ffmpeg (encode) ──FLV on stdout──▶ group hub
    push_argv     hub ──FLV on stdin──▶ ffmpeg (-c copy) ──▶ rtmp(s) / srt / file

Stream keys never go into an RTMP URL: FFmpeg's URL parser mangles keys holding ``+ / ? & =
%``, spaces or a trailing ``.flv``, so the key travels as its own argv item
(``-rtmp_playpath``). For SRT it goes, percent-encoded, into the ``streamid`` query parameter,
which FFmpeg url-decodes. Log an argv only through :mod:`agent.core.redact`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestKind,
    IngestSettings,
    VideoSettings,
)

#: Where VAAPI encoders find the GPU unless the caller says otherwise.
DEFAULT_VAAPI_DEVICE = "/dev/dri/renderD128"

#: x264's preset names, fastest first; other encoder families get a mapped equivalent.
X264_PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

#: x264 names onto NVENC's p1 (fastest) … p7 (best); p4 is NVENC's own default, like medium.
NVENC_PRESETS: dict[str, str] = {
    "ultrafast": "p1",
    "superfast": "p2",
    "veryfast": "p3",
    "faster": "p3",
    "fast": "p4",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
}

#: Audio codecs a re-encode group may use; ``copy`` keeps the source's audio untouched.
AUDIO_CODECS: tuple[str, ...] = ("copy", "aac", "libopus", "libmp3lame")

#: Recording containers by file extension; the first is the default.
RECORDING_FORMATS: dict[str, list[str]] = {
    ".mkv": ["-f", "matroska"],
    # Fragmented, so a recording cut short by a crash or a kill is still playable.
    ".mp4": ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
}

PULL_RW_TIMEOUT_US = 10_000_000  # a pulled RTMP source that sends nothing for 10 s has failed

_FLV_OUT = ["-f", "flv", "-flvflags", "no_duration_filesize"]
_FLV_STDIN = ["-nostdin", "-f", "flv", "-i", "pipe:0"]


def common_argv(ffmpeg: str) -> list[str]:
    """The head every Cascade FFmpeg child starts with: quiet, progress on stderr each second."""
    return [
        ffmpeg,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-progress",
        "pipe:2",
        "-stats_period",
        "1",
    ]


def _host(address: str) -> str:
    """A host for a URL: IPv6 addresses go in brackets."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _number(value: float) -> str:
    """``30.0`` → ``30``, ``29.97`` → ``29.97``: FFmpeg reads both, people read the short one."""
    return f"{value:g}"


# --- ingest -----------------------------------------------------------------------------------


def ingest_url(ingest: IngestSettings) -> str:
    """The URL the ingest FFmpeg reads: its own listener, or the media server it pulls from.

    For an RTMP listener the key is the URL's last path segment: FFmpeg then logs
    ``Unexpected stream WRONG, expecting KEY`` for a publisher with another key (it does not
    refuse it; the relay watches for that line and drops the publisher).
    """
    if ingest.kind is IngestKind.PULL:
        return ingest.url
    host = _host(ingest.bind)
    if ingest.kind is IngestKind.SRT:
        latency_us = ingest.srt_latency_ms * 1000  # FFmpeg's srt latency is in microseconds
        return f"srt://{host}:{ingest.port}?mode=listener&latency={latency_us}"
    path = f"{ingest.app}/{ingest.key}" if ingest.key else ingest.app
    return f"rtmp://{host}:{ingest.port}/{path}"


def ingest_argv(ffmpeg: str, ingest: IngestSettings) -> list[str]:
    """Receive OBS's one stream (or pull it) and write it, untouched, as FLV to stdout.

    - RTMP: ``-listen 1`` on ``rtmp://bind:port/app/key``. A listener blocked in accept()
      never reads keys, so the supervisor stops it with SIGINT (stdin is /dev/null).
    - SRT: a listener with the configured latency. FFmpeg cannot enforce an SRT streamid, so
      ``ingest.key`` is not used for SRT; keep the port on localhost or firewalled.
    - PULL: read ``ingest.url``; RTMP(S) sources get a 10 s read timeout so a silent server is
      noticed.

    Only video and audio are kept (``-map 0:v? -map 0:a?``): data tracks would upset FLV.
    """
    argv = common_argv(ffmpeg)
    if ingest.kind is IngestKind.RTMP:
        argv += ["-listen", "1"]
    elif ingest.kind is IngestKind.PULL and ingest.url.lower().startswith(("rtmp://", "rtmps://")):
        argv += ["-rw_timeout", str(PULL_RW_TIMEOUT_US)]
    argv += ["-i", ingest_url(ingest)]
    argv += ["-map", "0:v?", "-map", "0:a?", "-c", "copy", *_FLV_OUT, "pipe:1"]
    return argv


# --- encoder ----------------------------------------------------------------------------------

EncoderFamilyName = Literal["x264", "x265", "nvenc", "qsv", "amf", "vaapi", "videotoolbox", "other"]

_SUFFIX_FAMILIES: dict[str, EncoderFamilyName] = {
    "_nvenc": "nvenc",
    "_qsv": "qsv",
    "_amf": "amf",
    "_vaapi": "vaapi",
    "_videotoolbox": "videotoolbox",
}
_HARDWARE_FAMILIES = frozenset(_SUFFIX_FAMILIES.values())


def encoder_family(codec: str) -> EncoderFamilyName:
    """The option dialect an encoder speaks: ``h264_nvenc`` → ``nvenc``, ``libx264`` → ``x264``."""
    if codec == "libx264":
        return "x264"
    if codec == "libx265":
        return "x265"
    for suffix, family in _SUFFIX_FAMILIES.items():
        if codec.endswith(suffix):
            return family
    return "other"


def _is_h264(codec: str) -> bool:
    return codec == "libx264" or codec.startswith("h264_")


def _is_hevc(codec: str) -> bool:
    return codec == "libx265" or codec.startswith("hevc_")


def _preset_index(preset: str) -> int:
    """Position of an x264 preset name; an unknown name counts as ``veryfast``."""
    try:
        return X264_PRESETS.index(preset)
    except ValueError:
        return X264_PRESETS.index("veryfast")


def preset_args(codec: str, preset: str) -> list[str]:
    """The speed/quality options for ``codec`` given an x264 preset name.

    x264/x265 take the name as is; NVENC maps ultrafast…veryslow onto p1…p7 and is tuned for
    low latency; QSV knows veryfast…veryslow (faster names become veryfast); AMF has three
    quality levels; VAAPI has no preset; VideoToolbox is asked for real-time, hardware-only
    encoding instead.
    """
    family = encoder_family(codec)
    index = _preset_index(preset)
    if family in ("x264", "x265"):
        return ["-preset", X264_PRESETS[index]]
    if family == "nvenc":
        return ["-preset", NVENC_PRESETS[X264_PRESETS[index]], "-tune", "ll"]
    if family == "qsv":
        return ["-preset", X264_PRESETS[max(index, X264_PRESETS.index("veryfast"))]]
    if family == "amf":
        quality = "speed" if index <= 2 else "balanced" if index <= 5 else "quality"
        return ["-quality", quality]
    if family == "videotoolbox":
        return ["-realtime", "1", "-allow_sw", "0"]
    return []


def profile_args(codec: str, profile: str | None) -> list[str]:
    """``-profile:v`` where the encoder has that profile: every H.264 encoder; HEVC ``main``.

    AMF and VAAPI call H.264 baseline ``constrained_baseline``. AV1 and other encoders get no
    profile option.
    """
    if not profile:
        return []
    if _is_h264(codec):
        if profile == "baseline" and encoder_family(codec) in ("amf", "vaapi"):
            profile = "constrained_baseline"
        return ["-profile:v", profile]
    if _is_hevc(codec) and profile == "main":
        return ["-profile:v", "main"]
    return []


def video_filters(video: VideoSettings) -> list[str]:
    """The ``-vf`` chain items: frame rate first (cheaper to scale fewer frames), then size.

    With only one side given the other is ``-2``: the source's aspect ratio, rounded to an
    even number as 4:2:0 video needs. VAAPI encoders also need the frames uploaded to the GPU.
    """
    chain: list[str] = []
    if video.fps is not None:
        chain.append(f"fps={_number(video.fps)}")
    if video.width is not None or video.height is not None:
        width = video.width if video.width is not None else -2
        height = video.height if video.height is not None else -2
        chain.append(f"scale={width}:{height}")
    if encoder_family(video.codec) == "vaapi":
        chain += ["format=nv12", "hwupload"]
    return chain


def rate_control_args(video: VideoSettings) -> list[str]:
    """Constant bitrate, as streaming platforms ask: a target, a cap, a two-second buffer."""
    kbps = video.bitrate_kbps
    argv = ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k"]
    family = encoder_family(video.codec)
    if family == "x264":
        argv += ["-x264-params", "nal-hrd=cbr:force-cfr=1"]
    elif family in ("nvenc", "amf"):
        argv += ["-rc", "cbr"]
    elif family == "vaapi":
        argv += ["-rc_mode", "CBR"]
    # QSV picks CBR by itself when -b:v equals -maxrate.
    return argv


def keyframe_args(video: VideoSettings) -> list[str]:
    """A keyframe every ``keyframe_interval_s`` seconds, whatever the encoder.

    ``-force_key_frames`` works by timestamp for every encoder; x264/x265 also get a matching
    fixed GOP with scene-cut keyframes off when the frame rate is known, and NVENC makes the
    forced keyframes IDR frames (platforms cut segments only at IDR frames).
    """
    seconds = video.keyframe_interval_s
    argv = ["-force_key_frames", f"expr:gte(t,n_forced*{_number(seconds)})"]
    family = encoder_family(video.codec)
    if family in ("x264", "x265") and video.fps is not None:
        gop = str(max(1, round(video.fps * seconds)))
        argv += ["-g", gop, "-keyint_min", gop]
        # libx265 ignores -sc_threshold (FFmpeg warns it was unused); it takes x265's own name.
        argv += ["-sc_threshold", "0"] if family == "x264" else ["-x265-params", "scenecut=0"]
    elif family == "nvenc":
        argv += ["-forced-idr", "1"]
    return argv


def video_args(video: VideoSettings) -> list[str]:
    """Every video option of a re-encode: codec, filters, pixel format, preset, profile, rate."""
    argv = ["-c:v", video.codec]
    chain = video_filters(video)
    if chain:
        argv += ["-vf", ",".join(chain)]
    if encoder_family(video.codec) not in _HARDWARE_FAMILIES:
        argv += ["-pix_fmt", "yuv420p"]  # what every platform decodes; 4:4:4 sources exist
    argv += preset_args(video.codec, video.preset)
    argv += profile_args(video.codec, video.profile)
    argv += rate_control_args(video)
    argv += keyframe_args(video)
    return argv


def audio_args(audio: AudioSettings) -> list[str]:
    """``-c:a copy``, or an encode with bitrate and, when set, sample rate and channels."""
    if audio.codec == "copy":
        return ["-c:a", "copy"]
    argv = ["-c:a", audio.codec, "-b:a", f"{audio.bitrate_kbps}k"]
    if audio.sample_rate is not None:
        argv += ["-ar", str(audio.sample_rate)]
    if audio.channels is not None:
        argv += ["-ac", str(audio.channels)]
    return argv


def encoder_argv(
    ffmpeg: str, group: Group, *, vaapi_device: str = DEFAULT_VAAPI_DEVICE
) -> list[str]:
    """Encode a group's stream once: FLV on stdin, the group's settings, FLV on stdout.

    Takes the first video and (if there is one) the first audio track. For a passthrough
    group there is nothing to encode; calling this for one is a programming error.
    """
    if group.mode is not GroupMode.REENCODE:
        raise ValueError(f"group '{group.id}' is {group.mode.value}; it has no encoder")
    argv = common_argv(ffmpeg)
    if encoder_family(group.video.codec) == "vaapi":
        argv += ["-vaapi_device", vaapi_device]  # a global option: before the input
    argv += _FLV_STDIN
    argv += ["-map", "0:v:0", "-map", "0:a:0?"]
    argv += video_args(group.video)
    argv += audio_args(group.audio)
    argv += [*_FLV_OUT, "pipe:1"]
    return argv


# --- push -------------------------------------------------------------------------------------

_SRT_SECRET_PARAMS = ("streamid", "passphrase")


@dataclass(frozen=True)
class Destination:
    """Where one target sends, resolved from its platform preset, URL and stream key.

    - ``rtmp`` (also RTMPS): ``url`` is the server URL *without* the key
      (``rtmps://a.rtmps.youtube.com:443/live2``), ``app`` the part after host[:port]
      (``live2``); ``key`` is sent as ``-rtmp_playpath``. With no key, ``url`` is used as
      given (a custom URL that already ends with its key).
    - ``srt``: ``url`` without the key; the key goes into ``streamid``. ``app`` is None.
    - ``file``: ``url`` is the recording's file path. ``app`` and ``key`` are None.

    ``key`` is a secret: it is left out of ``repr()``; show :attr:`display` instead.
    """

    kind: Literal["rtmp", "srt", "file"]
    url: str
    app: str | None = None
    key: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The URL a person may see, with the key shown as ``[key]``.

        When there is no separate key, the parts of a URL that usually *are* the key (an RTMP
        URL's last path segment after the app, an SRT ``streamid`` or ``passphrase``) are
        masked too: the display errs on the side of hiding.
        """
        if self.kind == "file":
            return self.url
        if self.kind == "srt":
            shown = _mask_srt_query(self.url)
            if self.key:
                shown = _add_query(shown, "streamid=[key]")
            return shown
        if self.key:
            return f"{self.url.rstrip('/')}/[key]"
        head, app = _split_rtmp(self.url)
        if "/" in app:
            return f"{head}/{app.rsplit('/', 1)[0]}/[key]"
        return self.url

    def secrets(self) -> tuple[str, ...]:
        """Every string a redactor should hide for this destination.

        The key, and when it is embedded in the URL instead, the parts :attr:`display` masks.
        """
        found: list[str] = [self.key] if self.key else []
        if self.kind == "rtmp" and not self.key:
            _, app = _split_rtmp(self.url)
            if "/" in app:
                found.append(app.rsplit("/", 1)[1])
        elif self.kind == "srt":
            for name, value in _query_items(self.url):
                if name in _SRT_SECRET_PARAMS and value:
                    found += [value, unquote(value)]
        return tuple(dict.fromkeys(secret for secret in found if secret))

    def push_url(self) -> str:
        """The output URL or path FFmpeg writes to (for SRT with the key in ``streamid``)."""
        if self.kind == "srt" and self.key:
            return _add_query(self.url, f"streamid={quote(self.key, safe='')}")
        return self.url


def _split_rtmp(url: str) -> tuple[str, str]:
    """``rtmp://host:port/a/b`` → (``rtmp://host:port``, ``a/b``)."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)/?(.*)$", url)
    if match is None:
        return url, ""
    return match.group(1), match.group(2).rstrip("/")


def _query_items(url: str) -> list[tuple[str, str]]:
    _, _, query = url.partition("?")
    items: list[tuple[str, str]] = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        items.append((name, value))
    return items


def _mask_srt_query(url: str) -> str:
    base, sep, query = url.partition("?")
    if not sep:
        return url
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        parts.append(f"{name}=[key]" if eq and name in _SRT_SECRET_PARAMS else part)
    return f"{base}?{'&'.join(parts)}"


def _add_query(url: str, item: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{item}"


def push_argv(ffmpeg: str, destination: Destination) -> list[str]:
    """Send the FLV on stdin, copied as is, to one destination.

    - RTMP/RTMPS: FLV to the URL without the key, the key as its own argv item via
      ``-rtmp_app``/``-rtmp_playpath`` (so no character of it is reinterpreted); without a key
      the URL is used as given.
    - SRT: MPEG-TS, the key percent-encoded into ``streamid``.
    - File: Matroska for ``.mkv`` (and anything else), fragmented MP4 for ``.mp4``; ``-n``,
      never overwriting — :func:`recording_path` picks a fresh name.
    """
    argv = [*common_argv(ffmpeg), *_FLV_STDIN, "-map", "0", "-c", "copy"]
    if destination.kind == "rtmp":
        argv += _FLV_OUT
        if destination.key:
            argv += ["-rtmp_app", destination.app or "", "-rtmp_playpath", destination.key]
        return [*argv, destination.url]
    if destination.kind == "srt":
        return [*argv, "-f", "mpegts", destination.push_url()]
    suffix = Path(destination.url).suffix.lower()
    container = RECORDING_FORMATS.get(suffix, RECORDING_FORMATS[".mkv"])
    return [*argv, "-n", *container, destination.url]


# --- recordings -------------------------------------------------------------------------------

RECORDING_NAME = "cascade-%Y%m%d-%H%M%S.mkv"


def recording_path(template: str, now: datetime) -> str:
    """The file a recording target writes to, never an existing one.

    ``template`` is a target's URL for a recording: a file path or a folder. ``~`` is expanded,
    and ``{date}`` (``2026-05-31``) and ``{time}`` (``21-05-09``, no colons so Windows accepts
    it) are filled in from ``now``. A folder — an existing directory, a path ending in a
    separator, or a path with no extension — gets ``cascade-YYYYmmdd-HHMMSS.mkv`` inside it.
    If that file exists, ``-2``, ``-3``, … is added before the extension. Folders are not
    created here; the caller makes the parent directory before starting FFmpeg.
    """
    text = template.replace("{date}", now.strftime("%Y-%m-%d"))
    text = text.replace("{time}", now.strftime("%H-%M-%S"))
    ends_with_separator = text.endswith(("/", os.sep))
    path = Path(os.path.expanduser(text))
    if ends_with_separator or path.is_dir() or not path.suffix:
        path = path / now.strftime(RECORDING_NAME)
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return str(candidate)

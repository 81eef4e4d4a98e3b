"""What a received media file holds: codecs, picture size and duration.

``ffprobe`` is used when it is installed; the FFmpeg bundled with Cascade ships without it, so
the fallback reads the summary ``ffmpeg -i`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import CascadeError


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """The first video and audio stream of a file, and its duration in seconds."""

    video_codec: str | None
    width: int | None
    height: int | None
    audio_codec: str | None
    duration: float | None


def probe_file(path: Path, *, ffmpeg: str, ffprobe: str | None = None) -> MediaInfo:
    """Read ``path`` with ffprobe (found on PATH unless given) or, failing that, ``ffmpeg -i``."""
    if not path.exists() or path.stat().st_size == 0:
        raise CascadeError("nothing was received", subject=str(path))
    ffprobe = ffprobe or shutil.which("ffprobe")
    if ffprobe:
        return _with_ffprobe(path, ffprobe)
    return _with_ffmpeg(path, ffmpeg)


def _with_ffprobe(path: Path, ffprobe: str) -> MediaInfo:
    argv = [ffprobe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CascadeError(f"ffprobe could not read it: {out.stderr.strip()}", subject=str(path))
    data: dict[str, Any] = json.loads(out.stdout)
    empty: dict[str, Any] = {}
    video: dict[str, Any] = next(
        (s for s in data.get("streams", []) if s.get("codec_type") == "video"), empty
    )
    audio: dict[str, Any] = next(
        (s for s in data.get("streams", []) if s.get("codec_type") == "audio"), empty
    )
    duration = data.get("format", {}).get("duration")
    return MediaInfo(
        video_codec=video.get("codec_name"),
        width=video.get("width"),
        height=video.get("height"),
        audio_codec=audio.get("codec_name"),
        duration=float(duration) if duration not in (None, "N/A") else None,
    )


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)")


def parse_ffmpeg_summary(text: str) -> MediaInfo:
    """Parse the input summary ``ffmpeg -i FILE`` prints on stderr."""
    duration = None
    if match := _DURATION.search(text):
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video = _VIDEO.search(text)
    audio = _AUDIO.search(text)
    return MediaInfo(
        video_codec=video.group(1) if video else None,
        width=int(video.group(2)) if video else None,
        height=int(video.group(3)) if video else None,
        audio_codec=audio.group(1) if audio else None,
        duration=duration,
    )


def _with_ffmpeg(path: Path, ffmpeg: str) -> MediaInfo:
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return parse_ffmpeg_summary(out.stderr)

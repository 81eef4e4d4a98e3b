"""Build FLV bytes for the parser and hub tests: hand-made tags and FFmpeg-made files.

The hand-made tags carry only the first body bytes that matter to the parser (frame type,
packet type, FourCC) plus filler; they are not decodable media. Real, decodable FLV comes
from :func:`ffmpeg_flv`, which runs the bundled FFmpeg.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.media.flv import TagKind, flv_header

__all__ = [
    "aac_raw",
    "aac_sequence_header",
    "amf0",
    "avc_frame",
    "avc_sequence_header",
    "decode_errors",
    "ex_audio",
    "ex_video",
    "ffmpeg_flv",
    "flv_header",
    "metadata_tag",
    "split_every",
    "synthetic_stream",
    "tag",
]


def tag(kind: TagKind | int, timestamp: int, body: bytes, *, stream_id: int = 0) -> bytes:
    """One raw tag: 11-byte header, ``body``, PreviousTagSize (with extended timestamp)."""
    header = (
        bytes((int(kind),))
        + len(body).to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes(((timestamp >> 24) & 0xFF,))
        + stream_id.to_bytes(3, "big")
    )
    return header + body + (11 + len(body)).to_bytes(4, "big")


def avc_sequence_header(timestamp: int = 0) -> bytes:
    """A legacy AVC sequence header tag (frame type 1, codec 7, packet type 0)."""
    return tag(TagKind.VIDEO, timestamp, b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1f\xff")


def avc_frame(timestamp: int, *, key: bool, size: int = 64) -> bytes:
    """A legacy AVC NALU tag: keyframe (0x17) or inter frame (0x27), ``size`` filler bytes."""
    first = b"\x17" if key else b"\x27"
    return tag(TagKind.VIDEO, timestamp, first + b"\x01\x00\x00\x00" + b"\xab" * size)


def aac_sequence_header(timestamp: int = 0) -> bytes:
    """An AAC AudioSpecificConfig tag (sound format 10, packet type 0)."""
    return tag(TagKind.AUDIO, timestamp, b"\xaf\x00\x12\x10")


def aac_raw(timestamp: int, size: int = 32) -> bytes:
    """A raw AAC frame tag (sound format 10, packet type 1)."""
    return tag(TagKind.AUDIO, timestamp, b"\xaf\x01" + b"\xcd" * size)


def ex_video(
    timestamp: int, *, frame_type: int, packet_type: int, fourcc: bytes, payload: bytes = b""
) -> bytes:
    """An Enhanced RTMP video tag: IsExHeader | frame type | packet type, then FourCC."""
    first = 0x80 | (frame_type << 4) | packet_type
    return tag(TagKind.VIDEO, timestamp, bytes((first,)) + fourcc + payload)


def ex_audio(timestamp: int, *, packet_type: int, fourcc: bytes, payload: bytes = b"") -> bytes:
    """An Enhanced RTMP audio tag: sound format 9 (ExHeader) | packet type, then FourCC."""
    return tag(TagKind.AUDIO, timestamp, bytes((0x90 | packet_type,)) + fourcc + payload)


def amf0(value: object) -> bytes:
    """Encode a Python value as AMF0 (numbers, booleans, strings, None, dicts, lists)."""
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, int | float):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        data = value.encode()
        return b"\x02" + len(data).to_bytes(2, "big") + data
    if value is None:
        return b"\x05"
    if isinstance(value, Mapping):
        out = b"\x08" + len(value).to_bytes(4, "big")
        for key, item in value.items():
            name = str(key).encode()
            out += len(name).to_bytes(2, "big") + name + amf0(item)
        return out + b"\x00\x00\x09"
    if isinstance(value, list):
        return b"\x0a" + len(value).to_bytes(4, "big") + b"".join(amf0(v) for v in value)
    raise TypeError(f"no AMF0 encoding for {value!r}")


def metadata_tag(properties: Mapping[str, object], *, name: str = "onMetaData") -> bytes:
    """A script tag: the AMF0 string ``name`` followed by ``properties`` as an ECMA array."""
    return tag(TagKind.SCRIPT, 0, amf0(name) + amf0(dict(properties)))


def synthetic_stream(
    seconds: int, *, fps: int = 30, gop: int = 30, frame_size: int = 2000
) -> tuple[bytes, list[bytes]]:
    """An FLV header and its tags: metadata, sequence headers, then video + audio frames.

    Video runs at ``fps`` with a keyframe every ``gop`` frames; one AAC frame follows each
    video frame. Returns (header, tags) so tests can feed and count tags as they like.
    """
    tags = [
        metadata_tag({"width": 1280, "height": 720, "framerate": fps, "videocodecid": 7}),
        avc_sequence_header(),
        aac_sequence_header(),
    ]
    for frame in range(seconds * fps):
        ts = frame * 1000 // fps
        tags.append(avc_frame(ts, key=frame % gop == 0, size=frame_size))
        tags.append(aac_raw(ts))
    return flv_header(), tags


def split_every(data: bytes, size: int) -> Iterable[bytes]:
    """``data`` in pieces of ``size`` bytes (the last one shorter)."""
    return (data[i : i + size] for i in range(0, len(data), size))


def ffmpeg_flv(ffmpeg: str, path: Path, *, seconds: float, video: list[str]) -> Path:
    """Encode ``seconds`` of 320x240 30 fps test pattern + sine into an FLV at ``path``.

    ``video`` is the video codec arguments (``["-c:v", "libx264", "-g", "30"]``); audio is
    AAC. Raises RuntimeError carrying FFmpeg's message if the encode fails.
    """
    argv = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        str(seconds),
        *video,
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "flv",
        str(path),
    ]
    result = subprocess.run(argv, timeout=60, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"FFmpeg could not make {path.name}: {result.stderr.strip()}")
    return path


def decode_errors(ffmpeg: str, path: Path) -> tuple[int, str]:
    """Decode ``path`` fully with FFmpeg; return (exit code, everything it said at -v error)."""
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stderr

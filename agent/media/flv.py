"""Incremental FLV parsing: cut a byte stream into tags and say what each tag is.

The relay moves FLV between FFmpeg processes through pipes; this module is the part of the
byte path that has to understand it. It reads only what fan-out needs — the 11-byte tag header
and the first few bytes of each body — and hands every tag back as one ``bytes`` object that
can be written out unchanged. Nothing is decoded and nothing is rewritten, so Enhanced-RTMP
streams (HEVC, AV1, VP9, Opus, FLAC ... signalled by FourCC) pass through byte for byte.

Layout of the stream (Adobe FLV 10.1, plus the veovera Enhanced RTMP v2 extensions)::

    header     'FLV' | version | flags (4 = audio, 1 = video) | data offset (UI32, 9)
    PTS0       UI32 0
    tag        type (UI8: 8 audio, 9 video, 18 script) | data size (UI24)
               | timestamp (UI24 + UI8 upper bits) | stream id (UI24) | body | PreviousTagSize

Garbage raises :class:`FlvError`; a parser that raised stays failed, because once framing is
lost there is no reliable way back into the stream.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from agent.errors import CascadeError

__all__ = [
    "DEFAULT_MAX_TAG_BYTES",
    "HEADER_SIZE",
    "FlvError",
    "FlvParser",
    "FlvTag",
    "TagKind",
    "flv_header",
    "metadata_codec",
    "read_metadata",
]

#: The FLV file header (9 bytes) plus PreviousTagSize0 (4 bytes).
HEADER_SIZE = 13
_TAG_HEADER_SIZE = 11
_PREV_SIZE = 4

#: Largest tag body a parser accepts by default. The 24-bit size field cannot exceed 16 MiB,
#: so a lower bound is what catches a desynchronised stream: real tags stay far below it
#: (nginx-rtmp refuses messages over 1 MB by default; an 8K intra frame is a few MB).
DEFAULT_MAX_TAG_BYTES = 8 * 1024 * 1024

# type<<24 | size, and ts24<<8 | ts_ext: two unpacks cover the whole 11-byte tag header
# except the stream id, which nothing here needs.
_TAG_HEAD = struct.Struct(">II")
_HEADER_OFFSET = struct.Struct(">I")


class FlvError(CascadeError):
    """Raised when the bytes fed to a :class:`FlvParser` are not FLV (or stop being FLV)."""


class TagKind(enum.IntEnum):
    """The three FLV tag types, valued as on the wire."""

    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


_KINDS = {8: TagKind.AUDIO, 9: TagKind.VIDEO, 18: TagKind.SCRIPT}

# Legacy codec ids. 12 for HEVC is not in Adobe's spec but several servers and older
# FFmpeg forks use it, so it is worth recognising.
_LEGACY_VIDEO = {2: "h263", 3: "screen", 4: "vp6", 5: "vp6a", 6: "screen2", 7: "h264", 12: "hevc"}
_LEGACY_AUDIO = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm",
    4: "nellymoser",
    5: "nellymoser",
    6: "nellymoser",
    7: "pcm_alaw",
    8: "pcm_mulaw",
    10: "aac",
    11: "speex",
    14: "mp3",
}
_VIDEO_FOURCC = {
    b"avc1": "h264",
    b"hvc1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
    b"vp08": "vp8",
    b"vvc1": "vvc",
}
_AUDIO_FOURCC = {
    b"mp4a": "aac",
    b"Opus": "opus",
    b"fLaC": "flac",
    b"ac-3": "ac3",
    b"ec-3": "eac3",
    b".mp3": "mp3",
}

# Legacy codec ids whose next body byte is an AVC-style packet type (0 = sequence header).
_AVC_LIKE = frozenset({7, 12})

# Enhanced RTMP packet types used below.
_EX_SEQUENCE_START = 0
_EX_CODED = frozenset({1, 3})  # CodedFrames, CodedFramesX (composition time 0)
_EX_VIDEO_METADATA = 4  # AMF colorInfo (HDR) for the video track
_EX_MPEG2TS_SEQUENCE_START = 5
_EX_VIDEO_MULTITRACK = 6
_EX_MODEX = 7
_EX_AUDIO_MULTICHANNEL_CONFIG = 4
_EX_AUDIO_MULTITRACK = 5
_FRAME_KEY = 1
_FRAME_COMMAND = 5
_SOUND_EX_HEADER = 9
_SOUND_AAC = 10

_ON_METADATA = b"\x02\x00\x0aonMetaData"
_SET_DATA_FRAME = b"\x02\x00\x0d@setDataFrame"


@dataclass(slots=True, frozen=True)
class FlvTag:
    """One complete FLV tag.

    ``raw`` is the whole tag as it was read, 11-byte header and trailing PreviousTagSize
    included, ready to be written out. ``timestamp`` is the signed 32-bit decode timestamp
    in milliseconds. ``is_keyframe`` is true only for a video tag carrying a coded keyframe
    (a sequence header has frame type 1 too, but is flagged ``is_sequence_header`` instead).
    ``is_sequence_header`` marks decoder configuration: AVC/HEVC sequence headers, Enhanced
    RTMP SequenceStart, AAC AudioSpecificConfig. ``is_codec_extra`` marks the Enhanced RTMP
    side configuration a late decoder also wants: video Metadata (HDR colorInfo) and audio
    MultichannelConfig. ``is_metadata`` marks the ``onMetaData`` script tag. ``codec`` is a
    short name ("h264", "hevc", "av1", "aac", "opus" ...) or "" when it cannot be told.
    """

    kind: TagKind
    timestamp: int
    raw: bytes
    is_keyframe: bool = False
    is_sequence_header: bool = False
    is_metadata: bool = False
    codec: str = ""
    is_codec_extra: bool = False

    @property
    def body(self) -> bytes:
        """The tag body alone (a copy; only for inspection, never on the byte path)."""
        return self.raw[_TAG_HEADER_SIZE:-_PREV_SIZE]


def flv_header(has_audio: bool = True, has_video: bool = True) -> bytes:
    """Return a 13-byte FLV file header (version 1) followed by PreviousTagSize0."""
    flags = (0x04 if has_audio else 0) | (0x01 if has_video else 0)
    return b"FLV\x01" + bytes((flags,)) + b"\x00\x00\x00\x09\x00\x00\x00\x00"


def _skip_modex(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """Skip an Enhanced RTMP ModEx chain starting at ``p``; return (packet type, position).

    Returns packet type -1 when the chain runs past the body, so callers stop guessing.
    """
    packet_type = _EX_MODEX
    while packet_type == _EX_MODEX:
        if p >= end:
            return -1, p
        size = buf[p] + 1
        p += 1
        if size == 256:
            if p + 2 > end:
                return -1, p
            size = ((buf[p] << 8) | buf[p + 1]) + 1
            p += 2
        p += size
        if p >= end:
            return -1, p
        packet_type = buf[p] & 0x0F  # upper 4 bits: the ModEx type, irrelevant here
        p += 1
    return packet_type, p


def _video_flags(buf: bytes, body: int, end: int) -> tuple[bool, bool, bool, str]:
    """Classify a video body: (keyframe, sequence header, codec extra, codec)."""
    if body >= end:
        return False, False, False, ""
    b0 = buf[body]
    if b0 & 0x80:
        # Enhanced RTMP: frame type in bits 4-6, packet type in the low nibble, then FourCC.
        frame_type = (b0 >> 4) & 0x07
        packet_type = b0 & 0x0F
        p = body + 1
        if packet_type == _EX_MODEX:
            packet_type, p = _skip_modex(buf, p, end)
            if packet_type < 0:
                return False, False, False, ""
        if frame_type == _FRAME_COMMAND and packet_type != _EX_VIDEO_METADATA:
            return False, False, False, ""  # a one-byte command, no FourCC follows
        if packet_type == _EX_VIDEO_MULTITRACK and p < end:
            # Every multitrack layout puts a FourCC right after this byte (for
            # ManyTracksManyCodecs it is the first track's), so codec detection still works.
            packet_type = buf[p] & 0x0F
            p += 1
        fourcc = buf[p : p + 4]
        codec = _VIDEO_FOURCC.get(fourcc) or fourcc.decode("latin-1").strip()
        if packet_type in (_EX_SEQUENCE_START, _EX_MPEG2TS_SEQUENCE_START):
            return False, True, False, codec
        if packet_type == _EX_VIDEO_METADATA:
            return False, False, True, codec
        keyframe = frame_type == _FRAME_KEY and packet_type in _EX_CODED
        return keyframe, False, False, codec
    frame_type = b0 >> 4
    codec_id = b0 & 0x0F
    codec = _LEGACY_VIDEO.get(codec_id, "")
    if frame_type == _FRAME_COMMAND:
        return False, False, False, codec
    if codec_id in _AVC_LIKE:
        if body + 1 >= end:
            return False, False, False, codec
        packet_type = buf[body + 1]  # 0 sequence header, 1 NALUs, 2 end of sequence
        if packet_type == 0:
            return False, True, False, codec
        return frame_type == _FRAME_KEY and packet_type == 1, False, False, codec
    return frame_type == _FRAME_KEY, False, False, codec


def _audio_flags(buf: bytes, body: int, end: int) -> tuple[bool, bool, str]:
    """Classify an audio body: (sequence header, codec extra, codec)."""
    if body >= end:
        return False, False, ""
    b0 = buf[body]
    sound_format = b0 >> 4
    if sound_format == _SOUND_AAC:
        return body + 1 < end and buf[body + 1] == 0, False, "aac"
    if sound_format == _SOUND_EX_HEADER:
        packet_type = b0 & 0x0F
        p = body + 1
        if packet_type == _EX_MODEX:
            packet_type, p = _skip_modex(buf, p, end)
            if packet_type < 0:
                return False, False, ""
        if packet_type == _EX_AUDIO_MULTITRACK and p < end:
            packet_type = buf[p] & 0x0F
            p += 1
        fourcc = buf[p : p + 4]
        codec = _AUDIO_FOURCC.get(fourcc) or fourcc.decode("latin-1").strip()
        return (
            packet_type == _EX_SEQUENCE_START,
            packet_type == _EX_AUDIO_MULTICHANNEL_CONFIG,
            codec,
        )
    return False, False, _LEGACY_AUDIO.get(sound_format, "")


class FlvParser:
    """Cut an FLV byte stream into :class:`FlvTag` objects, whatever the chunking.

    Feed it the stream in chunks of any size; each :meth:`feed` returns the tags completed
    by that chunk, and keeps a partial tag for the next call. A tag is copied out of the
    input once (into its ``raw``); a partial tag is held in a ``bytearray`` and only joined
    once it is complete, so a large keyframe arriving in many small reads costs O(size).

    ``source`` names the stream in error messages. PreviousTagSize fields are passed through
    but not checked: some muxers write them wrongly, and the data size alone frames a tag.
    """

    def __init__(
        self, *, source: str = "FLV stream", max_tag_bytes: int = DEFAULT_MAX_TAG_BYTES
    ) -> None:
        self.source = source
        self.max_tag_bytes = max_tag_bytes
        self.header: bytes | None = None
        """The 13 header bytes (header with data offset 9, then PreviousTagSize0), once seen."""
        self.bytes_parsed = 0
        """Bytes consumed so far: header plus every complete tag."""
        self._pending = bytearray()
        # Bytes needed from the start of _pending before parsing can make progress.
        self._need = HEADER_SIZE
        self._failed: str | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[FlvTag]:
        """Consume ``data``; return the tags it completed, in stream order.

        Raises :class:`FlvError` when the stream is not FLV: a bad signature, an unknown tag
        type, reserved bits set, or a tag larger than ``max_tag_bytes``.
        """
        if self._failed is not None:
            raise FlvError(self._failed, subject=self.source, hint=_HINT)
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            buf = bytes(self._pending)
            self._pending = bytearray()
        elif len(data) < self._need:
            self._pending += data
            return []
        else:
            # bytearray or memoryview input would leak into FlvTag.raw otherwise.
            buf = data if type(data) is bytes else bytes(data)

        pos = 0
        if self.header is None:
            pos = self._parse_header(buf)
            if pos < 0:
                self._pending += buf
                return []

        tags: list[FlvTag] = []
        append = tags.append
        n = len(buf)
        unpack = _TAG_HEAD.unpack_from
        kinds = _KINDS
        max_size = self.max_tag_bytes
        need = _TAG_HEADER_SIZE
        while n - pos >= _TAG_HEADER_SIZE:
            type_size, ts_field = unpack(buf, pos)
            type_byte = type_size >> 24
            size = type_size & 0xFFFFFF
            kind = kinds.get(type_byte)
            if kind is None or size > max_size:
                self._fail(type_byte, size, pos)
            end = pos + _TAG_HEADER_SIZE + size + _PREV_SIZE
            if end > n:
                need = end - pos
                break
            # UI24 timestamp plus the extended byte as its upper 8 bits: a signed 32-bit value.
            ts = (ts_field >> 8) | ((ts_field & 0xFF) << 24)
            if ts & 0x80000000:
                ts -= 0x100000000
            body = pos + _TAG_HEADER_SIZE
            body_end = body + size
            if kind is TagKind.VIDEO:
                key, seq, extra, codec = _video_flags(buf, body, body_end)
                append(FlvTag(kind, ts, buf[pos:end], key, seq, False, codec, extra))
            elif kind is TagKind.AUDIO:
                seq, extra, codec = _audio_flags(buf, body, body_end)
                append(FlvTag(kind, ts, buf[pos:end], False, seq, False, codec, extra))
            else:
                meta = buf.startswith(_ON_METADATA, body) or (
                    buf.startswith(_SET_DATA_FRAME, body)
                    and buf.startswith(_ON_METADATA, body + len(_SET_DATA_FRAME))
                )
                append(FlvTag(kind, ts, buf[pos:end], False, False, meta))
            pos = end
        self.bytes_parsed += pos
        if pos < n:
            self._pending = bytearray(memoryview(buf)[pos:])
        self._need = need
        return tags

    def _parse_header(self, buf: bytes) -> int:
        """Parse the file header at the start of ``buf``; return where tags begin, or -1."""
        # feed() only calls this with at least HEADER_SIZE bytes in hand.
        if buf[:3] != b"FLV":
            self._fail_header(buf)
        offset: int = _HEADER_OFFSET.unpack_from(buf, 5)[0]
        if offset < 9 or offset > 1024:
            message = f"FLV header declares a data offset of {offset} bytes (expected 9)"
            self._failed = message
            raise FlvError(message, subject=self.source, hint=_HINT)
        start = offset + _PREV_SIZE
        if len(buf) < start:
            self._need = start
            return -1
        # Normalise to the 13-byte form every subscriber can be handed: extra header bytes
        # (allowed by the spec, never written in practice) carry nothing we pass on.
        self.header = buf[:5] + b"\x00\x00\x00\x09\x00\x00\x00\x00"
        return start

    def _fail_header(self, buf: bytes) -> NoReturn:
        message = f"bad signature {bytes(buf[:3])!r} where an FLV header ('FLV') should start"
        self._failed = message
        raise FlvError(message, subject=self.source, hint=_HINT)

    def _fail(self, type_byte: int, size: int, pos: int) -> NoReturn:
        offset = self.bytes_parsed + pos  # bytes_parsed is still where this buffer starts
        if type_byte & 0xC0 or (type_byte & 0x1F) not in _KINDS:
            what = f"unknown tag type 0x{type_byte:02x} at byte {offset}"
        elif type_byte & 0x20:
            what = f"encrypted (filtered) tag type 0x{type_byte:02x} at byte {offset}"
        else:
            what = (
                f"tag of {size} bytes at byte {offset} exceeds the {self.max_tag_bytes}-byte limit"
            )
        message = f"{what}; the stream is corrupt or out of sync"
        self._failed = message
        raise FlvError(message, subject=self.source, hint=_HINT)


_HINT = "Restart the source; its output must be plain FLV (-f flv) from its first byte"


# --- AMF0 metadata --------------------------------------------------------------------------

AmfValue: TypeAlias = float | bool | str | dict[str, "AmfValue"] | list["AmfValue"] | None

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_MAX_DEPTH = 16  # real metadata nests two levels; deeper means garbage or an attack


class _AmfError(Exception):
    pass


def _amf_string(buf: bytes, p: int) -> tuple[str, int]:
    (length,) = _U16.unpack_from(buf, p)
    p += 2
    if p + length > len(buf):
        raise _AmfError
    return buf[p : p + length].decode("utf-8", "replace"), p + length


def _amf_properties(buf: bytes, p: int, depth: int) -> tuple[dict[str, AmfValue], int]:
    out: dict[str, AmfValue] = {}
    while True:
        key, p = _amf_string(buf, p)
        if not key and p < len(buf) and buf[p] == 9:  # empty name + object-end marker
            return out, p + 1
        value, p = _amf_value(buf, p, depth)
        out[key] = value


def _amf_value(buf: bytes, p: int, depth: int) -> tuple[AmfValue, int]:
    if depth > _MAX_DEPTH or p >= len(buf):
        raise _AmfError
    marker = buf[p]
    p += 1
    if marker == 0:
        return _DOUBLE.unpack_from(buf, p)[0], p + 8
    if marker == 1:
        return buf[p] != 0, p + 1
    if marker == 2:
        return _amf_string(buf, p)
    if marker == 3:
        return _amf_properties(buf, p, depth + 1)
    if marker in (5, 6):
        return None, p
    if marker == 8:
        # The count is advisory (writers get it wrong); the end marker is what counts.
        return _amf_properties(buf, p + 4, depth + 1)
    if marker == 10:
        (count,) = _U32.unpack_from(buf, p)
        p += 4
        if count > len(buf):
            raise _AmfError
        items: list[AmfValue] = []
        for _ in range(count):
            item, p = _amf_value(buf, p, depth + 1)
            items.append(item)
        return items, p
    if marker == 11:
        return _DOUBLE.unpack_from(buf, p)[0], p + 10  # ms since epoch + an unused timezone
    if marker == 12:
        (length,) = _U32.unpack_from(buf, p)
        p += 4
        return buf[p : p + length].decode("utf-8", "replace"), p + length
    raise _AmfError


def read_metadata(tag: FlvTag) -> dict[str, AmfValue]:
    """Return the properties of an ``onMetaData`` script tag, or ``{}`` if it has none.

    Robust by design: anything malformed (truncated, unknown AMF0 type, absurd nesting)
    gives an empty dict, never an exception. Not meant for the byte path.
    """
    if not tag.is_metadata:
        return {}
    body = tag.body
    try:
        name, p = _amf_value(body, 0, 0)
        if name == "@setDataFrame":
            name, p = _amf_value(body, p, 0)
        if name != "onMetaData":
            return {}
        value, _ = _amf_value(body, p, 0)
    except (_AmfError, struct.error, IndexError):
        return {}
    if not isinstance(value, dict):
        return {}
    # NaN and infinities are legal doubles but no use to anyone reading stream info.
    return {k: v for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))}


def metadata_codec(codec_id: AmfValue, kind: TagKind) -> str:
    """Name the codec an ``onMetaData`` ``videocodecid`` / ``audiocodecid`` stands for.

    Legacy streams give the FLV codec id (7 = H.264); FFmpeg writes Enhanced RTMP codecs as
    their FourCC read as a big-endian number (``hvc1`` = 1752589105). Unknown gives "".
    """
    if isinstance(codec_id, bool) or not isinstance(codec_id, float | int):
        return ""
    if not math.isfinite(codec_id) or codec_id < 0 or codec_id >= 2**32:
        return ""
    number = int(codec_id)
    legacy, fourccs = (
        (_LEGACY_VIDEO, _VIDEO_FOURCC) if kind is TagKind.VIDEO else (_LEGACY_AUDIO, _AUDIO_FOURCC)
    )
    if number < 16:
        return legacy.get(number, "")
    return fourccs.get(number.to_bytes(4, "big"), "")

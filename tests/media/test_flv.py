"""The FLV parser: framing across any chunking, tag classification, metadata, garbage."""

from __future__ import annotations

import struct

import pytest

from agent.errors import CascadeError
from agent.media.flv import (
    FlvError,
    FlvParser,
    FlvTag,
    TagKind,
    flv_header,
    metadata_codec,
    read_metadata,
)
from tests.media.flv_samples import (
    aac_raw,
    aac_sequence_header,
    amf0,
    avc_frame,
    avc_sequence_header,
    ex_audio,
    ex_video,
    ffmpeg_flv,
    metadata_tag,
    split_every,
    synthetic_stream,
    tag,
)


def parse_all(data: bytes, *, chunk: int | None = None) -> tuple[FlvParser, list[FlvTag]]:
    parser = FlvParser()
    tags: list[FlvTag] = []
    for piece in split_every(data, chunk or len(data)):
        tags.extend(parser.feed(piece))
    return parser, tags


def one_tag(raw: bytes) -> FlvTag:
    _, tags = parse_all(flv_header() + raw)
    assert len(tags) == 1
    return tags[0]


SMALL_STREAM = (
    flv_header()
    + metadata_tag({"width": 640.0})
    + avc_sequence_header()
    + aac_sequence_header()
    + avc_frame(0, key=True, size=20)
    + aac_raw(0, size=10)
    + avc_frame(33, key=False, size=20)
)


class TestHeader:
    def test_header_is_the_13_bytes_once_they_arrived(self) -> None:
        parser = FlvParser()
        assert parser.feed(flv_header()[:12]) == []
        assert parser.header is None
        assert parser.feed(flv_header()[12:]) == []
        assert parser.header == flv_header()

    def test_flv_header_sets_the_audio_and_video_flags(self) -> None:
        assert flv_header()[:5] == b"FLV\x01\x05"
        assert flv_header(has_audio=False)[4] == 0x01
        assert flv_header(has_video=False)[4] == 0x04
        assert flv_header()[5:] == b"\x00\x00\x00\x09\x00\x00\x00\x00"

    def test_tags_in_the_same_chunk_as_the_header_are_returned(self) -> None:
        parser, tags = parse_all(SMALL_STREAM)
        assert parser.header == flv_header()
        assert [t.kind for t in tags] == [
            TagKind.SCRIPT,
            TagKind.VIDEO,
            TagKind.AUDIO,
            TagKind.VIDEO,
            TagKind.AUDIO,
            TagKind.VIDEO,
        ]

    def test_a_longer_header_is_normalised_to_13_bytes(self) -> None:
        long_header = b"FLV\x01\x05\x00\x00\x00\x0b" + b"\x00\x00" + b"\x00\x00\x00\x00"
        parser, tags = parse_all(long_header + aac_raw(5))
        assert parser.header == flv_header()
        assert [t.timestamp for t in tags] == [5]


class TestChunking:
    @pytest.mark.parametrize("size", [1, 2, 7, 11, 15, 64, 4096])
    def test_any_chunk_size_gives_the_same_tags(self, size: int) -> None:
        _, whole = parse_all(SMALL_STREAM)
        _, pieces = parse_all(SMALL_STREAM, chunk=size)
        assert pieces == whole

    def test_a_split_at_every_byte_boundary_gives_the_same_tags(self) -> None:
        _, whole = parse_all(SMALL_STREAM)
        for cut in range(1, len(SMALL_STREAM)):
            parser = FlvParser()
            tags = parser.feed(SMALL_STREAM[:cut]) + parser.feed(SMALL_STREAM[cut:])
            assert tags == whole, f"split at byte {cut}"

    def test_raw_tags_joined_are_the_stream_after_the_header(self) -> None:
        _, tags = parse_all(SMALL_STREAM, chunk=5)
        assert b"".join(t.raw for t in tags) == SMALL_STREAM[13:]
        assert all(type(t.raw) is bytes for t in tags)

    def test_bytearray_input_still_gives_bytes_raw(self) -> None:
        tags = FlvParser().feed(bytearray(SMALL_STREAM))
        assert all(type(t.raw) is bytes for t in tags)

    def test_bytes_parsed_counts_header_and_complete_tags_only(self) -> None:
        parser = FlvParser()
        parser.feed(SMALL_STREAM[:-3])
        assert parser.bytes_parsed == len(SMALL_STREAM) - len(avc_frame(33, key=False, size=20))
        parser.feed(SMALL_STREAM[-3:])
        assert parser.bytes_parsed == len(SMALL_STREAM)


class TestLegacyVideo:
    def test_avc_keyframe(self) -> None:
        t = one_tag(avc_frame(40, key=True))
        assert (t.kind, t.is_keyframe, t.is_sequence_header, t.codec) == (
            TagKind.VIDEO,
            True,
            False,
            "h264",
        )

    def test_avc_inter_frame_is_not_a_keyframe(self) -> None:
        t = one_tag(avc_frame(40, key=False))
        assert (t.is_keyframe, t.is_sequence_header, t.codec) == (False, False, "h264")

    def test_avc_sequence_header_is_a_sequence_header_not_a_keyframe(self) -> None:
        t = one_tag(avc_sequence_header())
        assert (t.is_keyframe, t.is_sequence_header, t.codec) == (False, True, "h264")

    def test_avc_end_of_sequence_is_neither(self) -> None:
        t = one_tag(tag(TagKind.VIDEO, 90, b"\x17\x02\x00\x00\x00"))
        assert (t.is_keyframe, t.is_sequence_header) == (False, False)

    def test_legacy_hevc_codec_id_12_is_recognised(self) -> None:
        t = one_tag(tag(TagKind.VIDEO, 0, b"\x1c\x01\x00\x00\x00\xaa"))
        assert (t.is_keyframe, t.codec) == (True, "hevc")

    def test_command_frame_is_not_a_keyframe(self) -> None:
        t = one_tag(tag(TagKind.VIDEO, 0, b"\x57\x01"))
        assert not t.is_keyframe


class TestAudio:
    def test_aac_sequence_header(self) -> None:
        t = one_tag(aac_sequence_header())
        assert (t.kind, t.is_sequence_header, t.codec) == (TagKind.AUDIO, True, "aac")

    def test_aac_raw_frame_is_not_a_sequence_header(self) -> None:
        t = one_tag(aac_raw(21))
        assert (t.is_sequence_header, t.is_keyframe, t.codec) == (False, False, "aac")

    def test_mp3(self) -> None:
        assert one_tag(tag(TagKind.AUDIO, 0, b"\x2f\xff\xfb")).codec == "mp3"

    @pytest.mark.parametrize(
        ("fourcc", "codec"),
        [
            pytest.param(b"Opus", "opus", id="opus"),
            pytest.param(b"mp4a", "aac", id="aac"),
            pytest.param(b"fLaC", "flac", id="flac"),
            pytest.param(b"ac-3", "ac3", id="ac3"),
        ],
    )
    def test_enhanced_audio_sequence_start(self, fourcc: bytes, codec: str) -> None:
        t = one_tag(ex_audio(0, packet_type=0, fourcc=fourcc, payload=b"\x01\x02"))
        assert (t.is_sequence_header, t.codec) == (True, codec)

    def test_enhanced_audio_coded_frames_are_not_sequence_headers(self) -> None:
        t = one_tag(ex_audio(20, packet_type=1, fourcc=b"Opus", payload=b"\xf8\xff"))
        assert (t.is_sequence_header, t.is_codec_extra, t.codec) == (False, False, "opus")

    def test_enhanced_audio_multichannel_config_is_codec_extra(self) -> None:
        t = one_tag(ex_audio(0, packet_type=4, fourcc=b"Opus", payload=b"\x01\x02"))
        assert (t.is_sequence_header, t.is_codec_extra) == (False, True)


class TestEnhancedVideo:
    @pytest.mark.parametrize(
        ("fourcc", "codec"),
        [
            pytest.param(b"hvc1", "hevc", id="hevc"),
            pytest.param(b"av01", "av1", id="av1"),
            pytest.param(b"vp09", "vp9", id="vp9"),
            pytest.param(b"avc1", "h264", id="avc"),
        ],
    )
    def test_sequence_start_is_a_sequence_header(self, fourcc: bytes, codec: str) -> None:
        t = one_tag(ex_video(0, frame_type=1, packet_type=0, fourcc=fourcc, payload=b"\x01"))
        assert (t.is_sequence_header, t.is_keyframe, t.codec) == (True, False, codec)

    @pytest.mark.parametrize("fourcc", [b"hvc1", b"av01"])
    def test_coded_frames_x_keyframe_is_a_keyframe(self, fourcc: bytes) -> None:
        t = one_tag(ex_video(0, frame_type=1, packet_type=3, fourcc=fourcc, payload=b"\0" * 9))
        assert (t.is_keyframe, t.is_sequence_header) == (True, False)

    def test_coded_frames_keyframe_is_a_keyframe(self) -> None:
        t = one_tag(ex_video(0, frame_type=1, packet_type=1, fourcc=b"hvc1", payload=b"\0" * 9))
        assert t.is_keyframe

    def test_inter_frame_is_not_a_keyframe(self) -> None:
        t = one_tag(ex_video(0, frame_type=2, packet_type=3, fourcc=b"av01", payload=b"\0" * 9))
        assert (t.is_keyframe, t.codec) == (False, "av1")

    def test_metadata_command_frame_is_codec_extra_not_a_keyframe(self) -> None:
        # What FFmpeg 9 writes for HEVC colour info: frame type 5, packet type 4 (Metadata).
        t = one_tag(ex_video(0, frame_type=5, packet_type=4, fourcc=b"hvc1", payload=b"\x02"))
        assert (t.is_keyframe, t.is_sequence_header, t.is_codec_extra) == (False, False, True)

    def test_keyframe_wrapped_in_modex_is_a_keyframe(self) -> None:
        # ModEx: size-1 = 1 (two data bytes), then [ModExType | real packet type 3].
        modex = b"\x01\x01\xf4\x03"
        t = one_tag(ex_video(0, frame_type=1, packet_type=7, fourcc=b"", payload=modex + b"hvc1"))
        assert (t.is_keyframe, t.codec) == (True, "hevc")

    def test_multitrack_sequence_start_is_a_sequence_header(self) -> None:
        # Multitrack: [OneTrack(0) | inner packet type 0], FourCC, track id.
        body = b"\x00av01\x00\x81"
        t = one_tag(ex_video(0, frame_type=1, packet_type=6, fourcc=b"", payload=body))
        assert (t.is_sequence_header, t.codec) == (True, "av1")


class TestMetadata:
    def test_on_metadata_script_tag_is_metadata(self) -> None:
        t = one_tag(metadata_tag({"width": 1920, "height": 1080}))
        assert (t.kind, t.is_metadata) == (TagKind.SCRIPT, True)
        assert read_metadata(t) == {"width": 1920.0, "height": 1080.0}

    def test_other_script_tags_are_not_metadata(self) -> None:
        t = one_tag(metadata_tag({"name": "cue"}, name="onCuePoint"))
        assert not t.is_metadata
        assert read_metadata(t) == {}

    def test_set_data_frame_wrapper_is_metadata(self) -> None:
        body = amf0("@setDataFrame") + amf0("onMetaData") + amf0({"framerate": 60})
        t = one_tag(tag(TagKind.SCRIPT, 0, body))
        assert t.is_metadata
        assert read_metadata(t) == {"framerate": 60.0}

    def test_every_amf0_type_is_read(self) -> None:
        date = b"\x0b" + struct.pack(">d", 1_700_000_000_000.0) + b"\x00\x00"
        obj = b"\x03" + b"\x00\x01a" + amf0(1) + b"\x00\x00\x09"
        props = (
            b"\x00\x03num" + amf0(2.5)
            + b"\x00\x04flag" + amf0(True)
            + b"\x00\x03str" + amf0("x")
            + b"\x00\x03obj" + obj
            + b"\x00\x04null" + b"\x05"
            + b"\x00\x05undef" + b"\x06"
            + b"\x00\x03arr" + amf0([1, "two"])
            + b"\x00\x04date" + date
        )  # fmt: skip
        body = amf0("onMetaData") + b"\x08\x00\x00\x00\x08" + props + b"\x00\x00\x09"
        meta = read_metadata(one_tag(tag(TagKind.SCRIPT, 0, body)))
        assert meta == {
            "num": 2.5,
            "flag": True,
            "str": "x",
            "obj": {"a": 1.0},
            "null": None,
            "undef": None,
            "arr": [1.0, "two"],
            "date": 1_700_000_000_000.0,
        }

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(amf0("onMetaData") + b"\x08\x00\x00\x00\x01\x00\x05wid", id="truncated"),
            pytest.param(amf0("onMetaData") + b"\x08\x00\x00\x00\x01\x00\x01a\x0f", id="type-15"),
            pytest.param(amf0("onMetaData") + b"\x03" * 200, id="deep-nesting"),
        ],
    )
    def test_malformed_metadata_reads_as_empty(self, body: bytes) -> None:
        t = one_tag(tag(TagKind.SCRIPT, 0, body))
        assert t.is_metadata
        assert read_metadata(t) == {}


class TestMetadataCodec:
    @pytest.mark.parametrize(
        ("value", "kind", "codec"),
        [
            pytest.param(7.0, TagKind.VIDEO, "h264", id="legacy-avc"),
            pytest.param(10.0, TagKind.AUDIO, "aac", id="legacy-aac"),
            pytest.param(float(int.from_bytes(b"hvc1", "big")), TagKind.VIDEO, "hevc", id="hvc1"),
            pytest.param(float(int.from_bytes(b"Opus", "big")), TagKind.AUDIO, "opus", id="opus"),
            pytest.param("avc1", TagKind.VIDEO, "", id="not-a-number"),
            pytest.param(-1.0, TagKind.VIDEO, "", id="negative"),
        ],
    )
    def test_names_legacy_ids_and_fourcc_numbers(
        self, value: float | str, kind: TagKind, codec: str
    ) -> None:
        assert metadata_codec(value, kind) == codec


class TestTimestamps:
    def test_extended_byte_is_the_upper_8_bits(self) -> None:
        assert one_tag(aac_raw(0x12345678)).timestamp == 0x12345678

    def test_24_bit_timestamp_without_extension(self) -> None:
        assert one_tag(aac_raw(0xABCDEF)).timestamp == 0xABCDEF


class TestGarbage:
    def test_bad_signature_is_refused_with_a_clear_message(self) -> None:
        with pytest.raises(FlvError, match=r"bad signature b'GET'.*FLV header") as err:
            FlvParser(source="ingest").feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert str(err.value).startswith("ingest: ")
        assert isinstance(err.value, CascadeError)

    def test_tag_type_with_reserved_bits_is_refused(self) -> None:
        bad = b"\xc9" + tag(TagKind.VIDEO, 0, b"\x17\x01")[1:]
        with pytest.raises(FlvError, match=r"unknown tag type 0xc9 at byte 13"):
            FlvParser().feed(flv_header() + bad)

    def test_unknown_tag_type_is_refused(self) -> None:
        with pytest.raises(FlvError, match=r"unknown tag type 0x07 at byte \d+.*out of sync"):
            FlvParser().feed(flv_header() + aac_raw(0) + tag(7, 0, b"xx"))

    def test_tag_over_the_size_limit_is_refused(self) -> None:
        parser = FlvParser(max_tag_bytes=1000)
        with pytest.raises(FlvError, match=r"tag of 2000 bytes .* exceeds the 1000-byte limit"):
            parser.feed(flv_header() + tag(TagKind.VIDEO, 0, b"\x17" * 2000))

    def test_a_failed_parser_stays_failed(self) -> None:
        parser = FlvParser()
        with pytest.raises(FlvError):
            parser.feed(b"NOT AN FLV STREAM")
        with pytest.raises(FlvError, match="bad signature"):
            parser.feed(SMALL_STREAM)


@pytest.fixture(scope="module")
def h264_tags(
    tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str
) -> tuple[bytes, list[FlvTag]]:
    path = tmp_path_factory.mktemp("flv") / "h264.flv"
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]
    data = ffmpeg_flv(ffmpeg_exe, path, seconds=3, video=video).read_bytes()
    return data, parse_all(data, chunk=65536)[1]


@pytest.fixture(scope="module")
def hevc_tags(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> list[FlvTag]:
    path = tmp_path_factory.mktemp("flv") / "hevc.flv"
    video = ["-c:v", "libx265", "-preset", "ultrafast", "-g", "30"]
    video += ["-x265-params", "log-level=error"]
    data = ffmpeg_flv(ffmpeg_exe, path, seconds=3, video=video).read_bytes()
    return parse_all(data, chunk=4096)[1]


class TestRealFfmpeg:
    def test_h264_clip_has_a_keyframe_every_30_frames(
        self, h264_tags: tuple[bytes, list[FlvTag]]
    ) -> None:
        _, tags = h264_tags
        keyframes = [t.timestamp for t in tags if t.is_keyframe]
        assert len(keyframes) == 3
        assert all(t.codec == "h264" for t in tags if t.kind is TagKind.VIDEO)

    def test_h264_clip_has_one_sequence_header_per_track_and_metadata(
        self, h264_tags: tuple[bytes, list[FlvTag]]
    ) -> None:
        _, tags = h264_tags
        headers = [(t.kind, t.codec) for t in tags if t.is_sequence_header]
        assert headers == [(TagKind.VIDEO, "h264"), (TagKind.AUDIO, "aac")]
        assert [t.kind for t in tags if t.is_metadata] == [TagKind.SCRIPT]
        assert read_metadata(tags[0])["width"] == 320.0

    def test_h264_clip_round_trips_byte_for_byte(
        self, h264_tags: tuple[bytes, list[FlvTag]]
    ) -> None:
        data, tags = h264_tags
        assert data[:13] + b"".join(t.raw for t in tags) == data

    def test_hevc_clip_is_enhanced_rtmp_with_keyframes_and_sequence_start(
        self, hevc_tags: list[FlvTag]
    ) -> None:
        video = [t for t in hevc_tags if t.kind is TagKind.VIDEO]
        assert all(t.raw[11] & 0x80 for t in video), "FFmpeg 9 writes HEVC as Enhanced RTMP"
        assert {t.codec for t in video} == {"hevc"}
        assert sum(t.is_sequence_header for t in video) == 1
        assert sum(t.is_keyframe for t in video) == 3
        first_media = next(t for t in video if not (t.is_sequence_header or t.is_codec_extra))
        assert first_media.is_keyframe


def test_synthetic_stream_parses_to_what_was_built() -> None:
    header, raws = synthetic_stream(1, frame_size=10)
    _, tags = parse_all(header + b"".join(raws), chunk=333)
    assert [t.raw for t in tags] == raws
    assert sum(t.is_keyframe for t in tags) == 1

"""Probing FFmpeg: parsing its listings, real test encodes, and the per-binary JSON cache."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.errors import ProbeError
from agent.media.capabilities import (
    CACHE_FILE,
    NOT_IN_BUILD,
    NOT_TESTED,
    SCHEMA_VERSION,
    TEST_PASSED,
    Capabilities,
    EncoderInfo,
    EncoderTest,
    MediaKind,
    describe,
    encode_test_argv,
    failure_reason,
    parse_encoders,
    parse_muxers,
    parse_protocols,
    probe_capabilities,
    probe_capabilities_async,
)
from agent.media.ffmpeg import FFmpegBinary, RunResult, clear_cache, find_ffmpeg, run_command

# Trimmed from the bundled FFmpeg 9 (`-hide_banner -protocols`).
PROTOCOLS = """\
Supported file protocols:
Input:
  file
  http
  pipe
  rtmp
  rtmps
  srt
  subfile
Output:
  file
  http
  icecast
  pipe
  rtmp
  rtmps
  srt
  tee
"""

# Trimmed from the bundled FFmpeg 9 (`-hide_banner -muxers`): three flag columns.
MUXERS_FFMPEG_9 = """\
Formats:
 D.. = Demuxing supported
 .E. = Muxing supported
 ..d = Is a device
 ---
  E  flv             FLV (Flash Video)
  E  mpegts          MPEG-TS (MPEG-2 Transport Stream)
  E  null            raw null video
  Ed xv              XV (XVideo) output device
"""

# FFmpeg 5.x (Debian 12) style: two flag columns and a "File formats:" title.
MUXERS_FFMPEG_5 = """\
File formats:
 D. = Demuxing supported
 .E = Muxing supported
 --
  E 3g2             3GP2 (3GPP2 file format)
  E flv             FLV (Flash Video)
  E matroska        Matroska
"""

# Trimmed from the bundled FFmpeg 9 (`-hide_banner -encoders`).
ENCODERS = """\
Encoders:
 V..... = Video
 A..... = Audio
 S..... = Subtitle
 .F.... = Frame-level multithreading
 ..S... = Slice-level multithreading
 ...X.. = Codec is experimental
 ....B. = Supports draw_horiz_band
 .....D = Supports direct rendering method 1
 ------
 V....D flv                  FLV / Sorenson Spark / Sorenson H.263 (Flash Video) (codec flv1)
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V..... h264_qsv             H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (Intel Quick Sync Video acceleration) (codec h264)
 V..X.D avui                 Avid Meridien Uncompressed
 A....D aac                  AAC (Advanced Audio Coding)
 A....D libopus              libopus Opus (codec opus)
 S..... srt                  SubRip subtitle (codec subrip)
"""  # noqa: E501

NVENC_STDERR = """\
[h264_nvenc @ 0x56410cf1da80] Cannot load libcuda.so.1
[vost#0:0/h264_nvenc @ 0x56410cf1cf00] [enc:h264_nvenc @ 0x56410cf1d9c0] Error while opening encoder - maybe incorrect parameters such as bit_rate, rate, width or height.
[vf#0:0 @ 0x56410cf38c00] Error sending frames to consumers: Operation not permitted
[vf#0:0 @ 0x56410cf38c00] Task finished with error code: -1 (Operation not permitted)
[vf#0:0 @ 0x56410cf38c00] Terminating thread with return code -1 (Operation not permitted)
[vost#0:0/h264_nvenc @ 0x56410cf1cf00] [enc:h264_nvenc @ 0x56410cf1d9c0] Could not open encoder before EOF
[vost#0:0/h264_nvenc @ 0x56410cf1cf00] Task finished with error code: -22 (Invalid argument)
[vost#0:0/h264_nvenc @ 0x56410cf1cf00] Terminating thread with return code -22 (Invalid argument)
[out#0/null @ 0x56410cf1c340] Nothing was written into output file, because at least one of its streams received no packets.
"""  # noqa: E501

AMF_STDERR = """\
[AMF @ 0x7f12ac004400] DLL libamfrt64.so.1 failed to open
[h264_amf @ 0x55ca99ccae40] Failed to create  hardware device context (AMF) : Unknown error occurred
[vost#0:0/h264_amf @ 0x55ca99cc9f00] [enc:h264_amf @ 0x55ca99cca9c0] Error while opening encoder - maybe incorrect parameters such as bit_rate, rate, width or height.
[out#0/null @ 0x55ca99cc9340] Nothing was written into output file, because at least one of its streams received no packets.
"""  # noqa: E501

VAAPI_STDERR = """\
[VAAPI @ 0x55cee2ac0ec0] No VA display found for device /dev/dri/renderD128.
Device creation failed: -22.
Failed to set value '/dev/dri/renderD128' for option 'vaapi_device': Invalid argument
Error parsing global options: Invalid argument
"""

ONLY_CONSEQUENCES = """\
[vost#0:0 @ 0x1] Error while opening encoder - maybe incorrect parameters
Conversion failed!
"""

no_gpu = pytest.mark.skipif(
    Path("/dev/nvidia0").exists(), reason="this machine has an NVIDIA GPU; NVENC may work"
)
posix_only = pytest.mark.skipif(os.name != "posix", reason="the fake binary is an sh script")


class RecordingRunner:
    """The real runner, counting the FFmpeg commands it runs."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult:
        self.calls.append(list(argv))
        return run_command(argv, timeout)


@pytest.fixture(scope="module")
def bundled() -> FFmpegBinary:
    clear_cache()
    return find_ffmpeg(env={})


@pytest.fixture(scope="module")
def probed(bundled: FFmpegBinary, tmp_path_factory: pytest.TempPathFactory) -> Capabilities:
    return probe_capabilities(bundled, cache_dir=tmp_path_factory.mktemp("caps"))


def small_caps(**changes: object) -> Capabilities:
    """A hand-made record for testing the convenience methods."""
    caps = Capabilities(
        ffmpeg_path=Path("/opt/ffmpeg/bin/ffmpeg"),
        version="7.1",
        cache_key="k1",
        probed_at=1_700_000_000.0,
        probe_seconds=0.4,
        input_protocols=frozenset({"rtmp", "srt", "file"}),
        output_protocols=frozenset({"rtmp", "rtmps", "srt", "file", "icecast"}),
        muxers=frozenset({"flv", "mpegts"}),
        encoders={
            "libx264": EncoderInfo("libx264", MediaKind.VIDEO, "h264", "libx264 H.264"),
            "h264_nvenc": EncoderInfo("h264_nvenc", MediaKind.VIDEO, "h264", "NVENC H.264"),
            "h264_qsv": EncoderInfo("h264_qsv", MediaKind.VIDEO, "h264", "QSV H.264"),
            "aac": EncoderInfo("aac", MediaKind.AUDIO, "aac", "AAC"),
            "mpeg4": EncoderInfo("mpeg4", MediaKind.VIDEO, "mpeg4", "MPEG-4 part 2"),
        },
        tests={
            "libx264": EncoderTest("libx264", True, TEST_PASSED),
            "aac": EncoderTest("aac", True, TEST_PASSED),
            "h264_nvenc": EncoderTest("h264_nvenc", False, "Cannot load libcuda.so.1"),
            "h264_qsv": EncoderTest("h264_qsv", True, TEST_PASSED),
            "h264_videotoolbox": EncoderTest("h264_videotoolbox", False, NOT_IN_BUILD),
        },
    )
    return dataclasses.replace(caps, **changes)  # type: ignore[arg-type]


class TestParsing:
    def test_protocols_are_split_into_input_and_output(self) -> None:
        inputs, outputs = parse_protocols(PROTOCOLS)

        assert inputs == {"file", "http", "pipe", "rtmp", "rtmps", "srt", "subfile"}
        assert outputs == {"file", "http", "icecast", "pipe", "rtmp", "rtmps", "srt", "tee"}

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(MUXERS_FFMPEG_9, {"flv", "mpegts", "null", "xv"}, id="ffmpeg-9"),
            pytest.param(MUXERS_FFMPEG_5, {"3g2", "flv", "matroska"}, id="ffmpeg-5"),
        ],
    )
    def test_muxers_are_read_after_the_legend(self, text: str, expected: set[str]) -> None:
        assert parse_muxers(text) == expected

    def test_encoders_skip_the_legend(self) -> None:
        assert list(parse_encoders(ENCODERS)) == [
            "flv",
            "libx264",
            "h264_nvenc",
            "h264_qsv",
            "avui",
            "aac",
            "libopus",
            "srt",
        ]

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            pytest.param(
                "libx264",
                EncoderInfo(
                    "libx264",
                    MediaKind.VIDEO,
                    "h264",
                    "libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10",
                ),
                id="video-with-codec",
            ),
            pytest.param(
                "flv",
                EncoderInfo(
                    "flv",
                    MediaKind.VIDEO,
                    "flv1",
                    "FLV / Sorenson Spark / Sorenson H.263 (Flash Video)",
                ),
                id="parenthesis-before-codec",
            ),
            pytest.param(
                "aac",
                EncoderInfo("aac", MediaKind.AUDIO, "aac", "AAC (Advanced Audio Coding)"),
                id="audio-without-codec",
            ),
            pytest.param(
                "srt",
                EncoderInfo("srt", MediaKind.SUBTITLE, "subrip", "SubRip subtitle"),
                id="subtitle",
            ),
            pytest.param(
                "avui",
                EncoderInfo("avui", MediaKind.VIDEO, "avui", "Avid Meridien Uncompressed"),
                id="experimental-flag",
            ),
        ],
    )
    def test_encoder_kind_codec_and_description(self, name: str, expected: EncoderInfo) -> None:
        assert parse_encoders(ENCODERS)[name] == expected


class TestFailureReason:
    @pytest.mark.parametrize(
        ("stderr", "expected"),
        [
            pytest.param(NVENC_STDERR, "Cannot load libcuda.so.1", id="nvenc-no-driver"),
            pytest.param(AMF_STDERR, "DLL libamfrt64.so.1 failed to open", id="amf-no-runtime"),
            pytest.param(
                VAAPI_STDERR,
                "No VA display found for device /dev/dri/renderD128.",
                id="vaapi-no-device",
            ),
            pytest.param(ONLY_CONSEQUENCES, "Conversion failed!", id="only-consequences"),
        ],
    )
    def test_the_cause_is_chosen_over_its_consequences(self, stderr: str, expected: str) -> None:
        assert failure_reason(stderr, 255) == expected

    def test_silent_failure_names_the_exit_code(self) -> None:
        assert failure_reason("", 171) == "ffmpeg exited with code 171 and printed nothing"

    def test_killed_process_names_the_signal(self) -> None:
        assert failure_reason("\n", -9) == "ffmpeg was killed by signal 9"

    def test_reason_is_one_bounded_line(self) -> None:
        reason = failure_reason("[x @ 0x1] " + "y" * 500 + "\nsecond line\n", 1)

        assert reason == "y" * 200


class TestTestEncodeCommand:
    def test_vaapi_opens_the_device_before_the_input_and_uploads_the_frame(self) -> None:
        argv = encode_test_argv(
            Path("/usr/bin/ffmpeg"), "h264_vaapi", MediaKind.VIDEO, vaapi_device="/dev/dri/rD"
        )

        assert argv[argv.index("-vaapi_device") + 1] == "/dev/dri/rD"
        assert argv.index("-vaapi_device") < argv.index("-i")
        assert argv[argv.index("-vf") + 1] == "format=nv12,hwupload"
        assert argv[argv.index("-c:v") + 1] == "h264_vaapi"

    def test_other_video_encoders_encode_one_synthetic_frame(self) -> None:
        argv = encode_test_argv(Path("/usr/bin/ffmpeg"), "h264_nvenc", MediaKind.VIDEO)

        assert argv == [
            "/usr/bin/ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=256x144:r=30",
            "-frames:v",
            "1",
            "-c:v",
            "h264_nvenc",
            "-f",
            "framecrc",
            "-",
        ]

    def test_audio_encoders_encode_one_frame_of_silence(self) -> None:
        argv = encode_test_argv(Path("ffmpeg"), "aac", MediaKind.AUDIO)

        assert "anullsrc=r=48000:cl=stereo" in argv
        assert argv[argv.index("-c:a") + 1] == "aac"
        assert "-vf" not in argv


class TestCapabilitiesRecord:
    @pytest.mark.parametrize(
        ("name", "direction", "expected"),
        [
            pytest.param("rtmp", "both", True, id="rtmp-both"),
            pytest.param("rtmps", "both", False, id="rtmps-output-only-is-not-both"),
            pytest.param("rtmps", "output", True, id="rtmps-output"),
            pytest.param("rtmps", "input", False, id="rtmps-input"),
            pytest.param("whip", "output", False, id="absent"),
        ],
    )
    def test_has_protocol_by_direction(self, name: str, direction: str, expected: bool) -> None:
        assert small_caps().has_protocol(name, direction) is expected  # type: ignore[arg-type]

    def test_usable_video_encoders_are_tested_video_encoders_that_passed(self) -> None:
        assert small_caps().usable_video_encoders() == ["libx264", "h264_qsv"]

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            pytest.param("libx264", EncoderTest("libx264", True, TEST_PASSED), id="passed"),
            pytest.param(
                "h264_nvenc",
                EncoderTest("h264_nvenc", False, "Cannot load libcuda.so.1"),
                id="failed",
            ),
            pytest.param("vp9_qsv", EncoderTest("vp9_qsv", False, NOT_IN_BUILD), id="absent"),
            pytest.param("mpeg4", EncoderTest("mpeg4", False, NOT_TESTED), id="untested"),
        ],
    )
    def test_encoder_status(self, name: str, expected: EncoderTest) -> None:
        assert small_caps().encoder_status(name) == expected

    def test_json_round_trip_is_lossless(self) -> None:
        caps = small_caps()

        assert Capabilities.from_json(json.loads(json.dumps(caps.to_json()))) == caps

    def test_describe_lists_binary_protocols_and_every_tested_encoder(self) -> None:
        assert describe(small_caps()) == [
            "FFmpeg 7.1 at /opt/ffmpeg/bin/ffmpeg",
            "protocols: rtmp yes, rtmps no, srt yes",
            "libx264: usable",
            "aac: usable",
            "h264_nvenc: unavailable — Cannot load libcuda.so.1",
            "h264_qsv: usable",
            "h264_videotoolbox: unavailable — not in this FFmpeg build",
        ]


class TestRealProbe:
    def test_streaming_protocols_work_both_ways(self, probed: Capabilities) -> None:
        for name in ("rtmp", "rtmps", "srt"):
            assert probed.has_protocol(name), name

    def test_relay_muxers_are_present(self, probed: Capabilities) -> None:
        assert {"flv", "mpegts", "tee", "null"} <= probed.muxers

    def test_libx264_passes_its_test_encode(self, probed: Capabilities) -> None:
        assert probed.encoder_status("libx264") == EncoderTest("libx264", True, TEST_PASSED)
        assert probed.usable_video_encoders()[0] == "libx264"

    @no_gpu
    def test_nvenc_is_compiled_in_but_unusable_without_a_gpu(self, probed: Capabilities) -> None:
        status = probed.encoder_status("h264_nvenc")

        assert "h264_nvenc" in probed.encoders
        assert status.usable is False
        assert status.reason
        assert status.reason != NOT_IN_BUILD
        assert "h264_nvenc" not in probed.usable_video_encoders()

    @pytest.mark.skipif(sys.platform != "linux", reason="the Linux build has no VideoToolbox")
    def test_videotoolbox_is_reported_as_not_in_the_build(self, probed: Capabilities) -> None:
        assert probed.encoder_status("hevc_videotoolbox").reason == NOT_IN_BUILD

    def test_every_family_is_reported_with_a_one_line_reason(self, probed: Capabilities) -> None:
        for family in ("nvenc", "qsv", "amf", "vaapi"):
            assert f"h264_{family}" in probed.tests
        for test in probed.tests.values():
            assert test.reason
            assert "\n" not in test.reason

    def test_describe_marks_libx264_usable(self, probed: Capabilities) -> None:
        assert "libx264: usable" in describe(probed)


class TestProbeCache:
    def test_probe_writes_a_versioned_cache_keyed_by_binary(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        caps = probe_capabilities(bundled, cache_dir=tmp_path)

        document = json.loads((tmp_path / CACHE_FILE).read_text(encoding="utf-8"))
        assert document["schema"] == SCHEMA_VERSION
        assert list(document["entries"]) == [bundled.cache_key]
        assert document["entries"][bundled.cache_key]["probed_at"] == caps.probed_at

    def test_second_probe_reads_the_cache_without_running_ffmpeg(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        first_runner, second_runner = RecordingRunner(), RecordingRunner()
        first = probe_capabilities(bundled, cache_dir=tmp_path, runner=first_runner)

        second = probe_capabilities(bundled, cache_dir=tmp_path, runner=second_runner)

        assert len(first_runner.calls) > 3
        assert second_runner.calls == []
        assert second == first
        assert second.probed_at == first.probed_at

    def test_refresh_probes_again(self, bundled: FFmpegBinary, tmp_path: Path) -> None:
        first = probe_capabilities(bundled, cache_dir=tmp_path)
        runner = RecordingRunner()

        again = probe_capabilities(bundled, cache_dir=tmp_path, refresh=True, runner=runner)

        assert [call[2] for call in runner.calls[:3]] == ["-protocols", "-muxers", "-encoders"]
        assert again.probed_at > first.probed_at
        assert probe_capabilities(bundled, cache_dir=tmp_path).probed_at == again.probed_at

    @pytest.mark.parametrize(
        "content",
        [
            pytest.param("{not json", id="not-json"),
            pytest.param("[]", id="not-an-object"),
            pytest.param('{"schema": 0, "entries": {}}', id="old-schema"),
            pytest.param('{"schema": 1, "entries": {"KEY": {"version": 5}}}', id="bad-entry"),
        ],
    )
    def test_corrupt_cache_is_ignored_and_rewritten(
        self, bundled: FFmpegBinary, tmp_path: Path, content: str
    ) -> None:
        cache_file = tmp_path / CACHE_FILE
        cache_file.write_text(content.replace("KEY", bundled.cache_key), encoding="utf-8")
        runner = RecordingRunner()

        caps = probe_capabilities(bundled, cache_dir=tmp_path, runner=runner)

        assert runner.calls
        assert caps.encoder_status("libx264").usable
        document = json.loads(cache_file.read_text(encoding="utf-8"))
        assert document["entries"][bundled.cache_key]["probed_at"] == caps.probed_at
        assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILE]  # no temp file left

    @posix_only
    def test_another_binary_is_probed_not_served_from_the_cache(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        probe_capabilities(bundled, cache_dir=tmp_path / "cache")
        link = tmp_path / "ffmpeg"
        link.symlink_to(bundled.path)
        other = find_ffmpeg(str(link))
        runner = RecordingRunner()

        caps = probe_capabilities(other, cache_dir=tmp_path / "cache", runner=runner)

        assert other.cache_key != bundled.cache_key
        assert runner.calls[0][0] == str(link)
        assert caps.ffmpeg_path == link
        entries = json.loads((tmp_path / "cache" / CACHE_FILE).read_text(encoding="utf-8"))
        assert set(entries["entries"]) == {bundled.cache_key, other.cache_key}

    def test_a_rebuilt_binary_at_the_same_path_is_probed_again(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        probe_capabilities(bundled, cache_dir=tmp_path)
        rebuilt = dataclasses.replace(bundled, mtime_ns=bundled.mtime_ns + 1)
        runner = RecordingRunner()

        caps = probe_capabilities(rebuilt, cache_dir=tmp_path, runner=runner)

        assert runner.calls
        assert caps.cache_key == rebuilt.cache_key

    def test_an_unwritable_cache_costs_only_a_reprobe(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        not_a_dir = tmp_path / "cache"
        not_a_dir.write_text("a file where the cache directory should be", encoding="utf-8")

        caps = probe_capabilities(bundled, cache_dir=not_a_dir)

        assert caps.encoder_status("libx264").usable
        assert not_a_dir.read_text(encoding="utf-8").startswith("a file")

    async def test_async_probe_serves_the_same_cache(
        self, bundled: FFmpegBinary, tmp_path: Path
    ) -> None:
        first = await probe_capabilities_async(bundled, cache_dir=tmp_path)
        runner = RecordingRunner()

        second = await probe_capabilities_async(bundled, cache_dir=tmp_path, runner=runner)

        assert runner.calls == []
        assert second.probed_at == first.probed_at


@posix_only
class TestProbeFailure:
    def test_binary_that_cannot_list_encoders_raises_probe_error(self, tmp_path: Path) -> None:
        script = tmp_path / "ffmpeg"
        script.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n", encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        binary = FFmpegBinary(script, "7.1", (7, 1), (), 10, 1)

        with pytest.raises(ProbeError) as caught:
            probe_capabilities(binary, cache_dir=tmp_path / "cache")

        assert caught.value.subject == f"FFmpeg at {script}"
        assert "failed: Segmentation fault" in caught.value.what
        assert not (tmp_path / "cache" / CACHE_FILE).exists()

"""Validation: bad input is refused naming the group or target and the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestKind,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.validate import (
    ValidationError,
    validate_group,
    validate_profile,
    validate_slug,
    validate_target,
)
from agent.errors import ConfigError
from agent.media.capabilities import (
    TEST_PASSED,
    Capabilities,
    EncoderInfo,
    EncoderTest,
    MediaKind,
)


def caps() -> Capabilities:
    """A probe result: libx264 works, NVENC is compiled in but has no driver here."""
    return Capabilities(
        ffmpeg_path=Path("/opt/ffmpeg"),
        version="9.0",
        cache_key="k",
        probed_at=0.0,
        probe_seconds=0.1,
        input_protocols=frozenset({"rtmp", "srt"}),
        output_protocols=frozenset({"rtmp", "rtmps", "srt"}),
        muxers=frozenset({"flv", "mpegts", "matroska", "mp4"}),
        encoders={
            "libx264": EncoderInfo("libx264", MediaKind.VIDEO, "h264", "libx264"),
            "libx265": EncoderInfo("libx265", MediaKind.VIDEO, "hevc", "libx265"),
            "h264_nvenc": EncoderInfo("h264_nvenc", MediaKind.VIDEO, "h264", "NVENC"),
            "aac": EncoderInfo("aac", MediaKind.AUDIO, "aac", "AAC"),
        },
        tests={
            "libx264": EncoderTest("libx264", True, TEST_PASSED),
            "libx265": EncoderTest("libx265", True, TEST_PASSED),
            "aac": EncoderTest("aac", True, TEST_PASSED),
            "h264_nvenc": EncoderTest("h264_nvenc", False, "Cannot load libcuda.so.1"),
        },
    )


def group(**video: Any) -> Group:
    return Group("720p", mode=GroupMode.REENCODE, video=VideoSettings(**video))


def refused(call: Any, *args: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    return caught.value


class TestSlug:
    @pytest.mark.parametrize("value", ["main", "720p", "youtube", "a", "yt_backup-2", "x" * 32])
    def test_short_lower_case_ids_are_accepted(self, value: str) -> None:
        assert validate_slug(value, "group id") == value

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param("", id="empty"),
            pytest.param("Main", id="upper-case"),
            pytest.param("my group", id="space"),
            pytest.param("-main", id="leading-dash"),
            pytest.param("x" * 33, id="too-long"),
            pytest.param("ütube", id="non-ascii"),
        ],
    )
    def test_other_ids_are_refused_with_an_example(self, value: str) -> None:
        error = refused(validate_slug, value, "group id")

        assert error.field == "group id"
        assert "e.g. 'main', '720p' or 'youtube'" in str(error)

    def test_a_near_miss_gets_a_suggestion(self) -> None:
        assert "'my-group' would do" in str(refused(validate_slug, "My Group", "group id"))


class TestGroup:
    def test_unknown_encoder_lists_the_usable_ones(self) -> None:
        error = refused(validate_group, group(codec="x264"), caps())

        assert error.field == "groups[720p].video.codec"
        assert error.subject == "group '720p'"
        assert "unknown encoder 'x264'; usable ones: libx264, libx265" in str(error)

    def test_an_audio_encoder_is_not_a_video_encoder(self) -> None:
        error = refused(validate_group, group(codec="aac"), caps())
        assert "unknown encoder 'aac'" in error.what

    def test_encoder_the_probe_found_unusable_gives_the_reason(self) -> None:
        error = refused(validate_group, group(codec="h264_nvenc"), caps())

        assert error.field == "groups[720p].video.codec"
        assert "encoder h264_nvenc is not usable here: Cannot load libcuda.so.1" in str(error)
        assert "e.g. libx264" in str(error)

    def test_without_a_probe_the_encoder_is_not_checked(self) -> None:
        validate_group(group(codec="h264_nvenc"), None)  # the probe decides later

    @pytest.mark.parametrize(
        ("video", "field"),
        [
            pytest.param({"width": 1279}, "width", id="odd-width"),
            pytest.param({"height": 0}, "height", id="zero-height"),
            pytest.param({"width": 7682}, "width", id="wider-than-8k"),
            pytest.param({"height": 4322}, "height", id="taller-than-8k"),
            pytest.param({"fps": 0.5}, "fps", id="fps-too-low"),
            pytest.param({"fps": 241}, "fps", id="fps-too-high"),
            pytest.param({"bitrate_kbps": 99}, "bitrate_kbps", id="bitrate-too-low"),
            pytest.param({"bitrate_kbps": 100_001}, "bitrate_kbps", id="bitrate-too-high"),
            pytest.param({"keyframe_interval_s": 0.4}, "keyframe_interval_s", id="gop-short"),
            pytest.param({"keyframe_interval_s": 11}, "keyframe_interval_s", id="gop-long"),
            pytest.param({"preset": "turbo"}, "preset", id="unknown-preset"),
            pytest.param({"profile": "high444"}, "profile", id="unknown-profile"),
        ],
    )
    def test_out_of_range_video_settings_name_the_field(
        self, video: dict[str, Any], field: str
    ) -> None:
        error = refused(validate_group, group(**video), caps())

        assert error.field == f"groups[720p].video.{field}"
        assert str(error).startswith("group '720p': ")
        assert error.hint

    @pytest.mark.parametrize(
        ("audio", "field"),
        [
            pytest.param(AudioSettings("mp3"), "codec", id="unknown-codec"),
            pytest.param(AudioSettings("aac", bitrate_kbps=16), "bitrate_kbps", id="low-rate"),
            pytest.param(AudioSettings("aac", sample_rate=22050), "sample_rate", id="22khz"),
            pytest.param(
                AudioSettings("libopus", sample_rate=44100), "sample_rate", id="opus-44khz"
            ),
            pytest.param(AudioSettings("aac", channels=6), "channels", id="surround"),
        ],
    )
    def test_bad_audio_settings_name_the_field(self, audio: AudioSettings, field: str) -> None:
        bad = Group("720p", mode=GroupMode.REENCODE, audio=audio)
        assert refused(validate_group, bad, None).field == f"groups[720p].audio.{field}"

    def test_audio_encoder_missing_from_the_build_is_refused(self) -> None:
        bad = Group("720p", mode=GroupMode.REENCODE, audio=AudioSettings("libopus"))
        assert "not in this FFmpeg build" in str(refused(validate_group, bad, caps()))

    def test_passthrough_ignores_the_unused_encoder_settings(self) -> None:
        unused = Group("main", video=VideoSettings(codec="x264", width=3))
        validate_group(unused, caps())

    def test_group_id_must_be_a_slug(self) -> None:
        assert refused(validate_group, Group("My Group"), None).field == "groups[My Group].id"

    def test_its_targets_are_checked_too(self) -> None:
        bad = Group("main", targets=[Target("c", url="http://h/live")])
        assert refused(validate_group, bad, None).field == "targets[c].url"


class TestTarget:
    def test_a_target_without_its_key_is_valid_until_it_starts(self) -> None:
        validate_target(Target("youtube", Platform.YOUTUBE))

    @pytest.mark.parametrize(
        ("target", "field", "message"),
        [
            pytest.param(Target("c", url="rtmp:///x"), "url", "no host name", id="no-host"),
            pytest.param(Target("c", url="ftp://h/x"), "url", "scheme 'ftp'", id="bad-scheme"),
            pytest.param(
                Target("tw", Platform.TWITCH, backup=True), "backup", "no backup", id="backup"
            ),
            pytest.param(
                Target("x", platform="vimeo"),  # type: ignore[arg-type]
                "platform",
                "platform 'vimeo'",
                id="unknown-platform",
            ),
            pytest.param(Target("YouTube", Platform.YOUTUBE), "id", "not a valid id", id="id"),
        ],
    )
    def test_bad_targets_name_the_target_and_the_field(
        self, target: Target, field: str, message: str
    ) -> None:
        error = refused(validate_target, target)

        assert error.field == f"targets[{target.id}].{field}"
        assert message in str(error)
        assert isinstance(error, ConfigError)


class TestProfile:
    def test_a_target_and_a_group_may_not_share_an_id(self) -> None:
        profile = Profile(groups=[Group("youtube", targets=[Target("youtube", Platform.YOUTUBE)])])
        error = refused(validate_profile, profile, None)

        assert error.field == "targets[youtube].id"
        assert "already used by a group" in str(error)
        assert "cascade toggle youtube" in str(error)

    def test_two_targets_may_not_share_an_id(self) -> None:
        profile = Profile(
            groups=[
                Group("main", targets=[Target("rec", Platform.RECORDING, url="/tmp/")]),
                Group("720p", targets=[Target("rec", Platform.RECORDING, url="/tmp/")]),
            ]
        )
        assert "already used by a target" in str(refused(validate_profile, profile, None))

    @pytest.mark.parametrize(
        ("ingest", "field"),
        [
            pytest.param(IngestSettings(port=0), "port", id="port-zero"),
            pytest.param(IngestSettings(port=65536), "port", id="port-too-high"),
            pytest.param(IngestSettings(bind="localhost"), "bind", id="bind-not-an-ip"),
            pytest.param(IngestSettings(app="live/extra"), "app", id="app-with-slash"),
            pytest.param(IngestSettings(key="a/b"), "key", id="key-with-slash"),
            pytest.param(IngestSettings(key="obs key"), "key", id="key-with-space"),
            pytest.param(IngestSettings(key="obs.flv"), "key", id="key-with-extension"),
            pytest.param(
                IngestSettings(kind=IngestKind.PULL, url="http://media/live"), "url", id="pull-http"
            ),
            pytest.param(IngestSettings(kind=IngestKind.PULL), "url", id="pull-without-url"),
            pytest.param(
                IngestSettings(kind=IngestKind.SRT, srt_latency_ms=0),
                "srt_latency_ms",
                id="srt-zero-latency",
            ),
        ],
    )
    def test_bad_ingest_settings_name_the_field(self, ingest: IngestSettings, field: str) -> None:
        error = refused(validate_profile, Profile(ingest=ingest), None)

        assert error.field == f"ingest.{field}"
        assert error.subject == "the ingest"

    def test_the_ingest_key_is_never_quoted(self) -> None:
        error = refused(validate_profile, Profile(ingest=IngestSettings(key="sk/SECRET")), None)
        assert "sk/SECRET" not in str(error)

    def test_a_complete_profile_passes(self, tmp_path: Path) -> None:
        profile = Profile(
            ingest=IngestSettings(bind="::1", key="obs-123"),
            groups=[
                Group("main", targets=[Target("youtube", Platform.YOUTUBE)]),
                Group(
                    "720p",
                    mode=GroupMode.REENCODE,
                    video=VideoSettings(height=720, fps=30, bitrate_kbps=3000),
                    audio=AudioSettings("aac", sample_rate=48000, channels=2),
                    targets=[
                        Target("twitch", Platform.TWITCH),
                        Target("rec", Platform.RECORDING, url=f"{tmp_path}/"),
                    ],
                ),
            ],
        )
        validate_profile(profile, caps())

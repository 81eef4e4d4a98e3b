"""FFmpeg argument lists: read back flag by flag, plus one real encode through stdin."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestKind,
    IngestSettings,
    VideoSettings,
)
from agent.media.args import (
    Destination,
    common_argv,
    encoder_argv,
    ingest_argv,
    push_argv,
    recording_path,
    video_args,
)

FF = "/opt/ffmpeg"
HEAD = [FF, "-hide_banner", "-nostats", "-loglevel", "warning"]
HEAD += ["-progress", "pipe:2", "-stats_period", "1"]
NOW = datetime(2026, 5, 31, 21, 5, 9)
NASTY_KEY = "ab+c/d?e&f=g%h i.flv"


def reencode(video: VideoSettings | None = None, audio: AudioSettings | None = None) -> Group:
    return Group(
        "720p",
        mode=GroupMode.REENCODE,
        video=video or VideoSettings(),
        audio=audio or AudioSettings(),
    )


def after(argv: list[str], flag: str) -> str:
    """The value that follows ``flag`` (its first occurrence)."""
    return argv[argv.index(flag) + 1]


def pairs(argv: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(argv))


class TestCommonHead:
    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(ingest_argv(FF, IngestSettings()), id="ingest"),
            pytest.param(encoder_argv(FF, reencode()), id="encoder"),
            pytest.param(push_argv(FF, Destination("rtmp", "rtmp://h/live")), id="push"),
        ],
    )
    def test_every_builder_starts_quiet_with_progress_on_stderr(self, argv: list[str]) -> None:
        assert argv[: len(HEAD)] == HEAD
        assert common_argv(FF) == HEAD


class TestIngestArgv:
    def test_rtmp_listens_on_a_url_whose_last_segment_is_the_key(self) -> None:
        argv = ingest_argv(FF, IngestSettings(port=1936, app="live", key="obs123"))

        assert argv[len(HEAD) :] == [
            "-listen",
            "1",
            "-i",
            "rtmp://127.0.0.1:1936/live/obs123",
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-c",
            "copy",
            "-f",
            "flv",
            "-flvflags",
            "no_duration_filesize",
            "pipe:1",
        ]

    def test_rtmp_without_a_key_listens_on_the_app(self) -> None:
        argv = ingest_argv(FF, IngestSettings(app="live", key=""))
        assert after(argv, "-i") == "rtmp://127.0.0.1:1935/live"

    def test_rtmp_listener_keeps_stdin_for_the_q_that_stops_it(self) -> None:
        assert "-nostdin" not in ingest_argv(FF, IngestSettings())

    def test_ipv6_bind_address_goes_in_brackets(self) -> None:
        argv = ingest_argv(FF, IngestSettings(bind="::1", key="k1"))
        assert after(argv, "-i") == "rtmp://[::1]:1935/live/k1"

    def test_srt_listens_with_latency_in_microseconds(self) -> None:
        ingest = IngestSettings(kind=IngestKind.SRT, port=9000, srt_latency_ms=200, key="k1")
        argv = ingest_argv(FF, ingest)

        assert after(argv, "-i") == "srt://127.0.0.1:9000?mode=listener&latency=200000"
        assert "-listen" not in argv

    def test_pulling_rtmp_gives_up_on_a_silent_server_after_ten_seconds(self) -> None:
        ingest = IngestSettings(kind=IngestKind.PULL, url="rtmp://media:1935/live/obs")
        argv = ingest_argv(FF, ingest)

        assert ("-rw_timeout", "10000000") in pairs(argv)
        assert argv.index("-rw_timeout") < argv.index("-i")
        assert after(argv, "-i") == "rtmp://media:1935/live/obs"

    def test_pulling_srt_uses_the_url_as_given(self) -> None:
        url = "srt://media:8890?streamid=read:live/obs"
        argv = ingest_argv(FF, IngestSettings(kind=IngestKind.PULL, url=url))

        assert after(argv, "-i") == url
        assert "-rw_timeout" not in argv


class TestEncoderArgv:
    def test_libx264_720p30_cbr_3000(self) -> None:
        video = VideoSettings(width=1280, height=720, fps=30, bitrate_kbps=3000)
        argv = encoder_argv(FF, reencode(video, AudioSettings("aac", bitrate_kbps=160)))

        assert argv[len(HEAD) :] == [
            "-nostdin",
            "-f",
            "flv",
            "-i",
            "pipe:0",
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
            "-c:v",
            "libx264",
            "-vf",
            "fps=30,scale=1280:720",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-b:v",
            "3000k",
            "-maxrate",
            "3000k",
            "-bufsize",
            "6000k",
            "-x264-params",
            "nal-hrd=cbr:force-cfr=1",
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-f",
            "flv",
            "-flvflags",
            "no_duration_filesize",
            "pipe:1",
        ]

    @pytest.mark.parametrize(
        ("preset", "expected"),
        [
            pytest.param("ultrafast", "p1", id="ultrafast-p1"),
            pytest.param("superfast", "p2", id="superfast-p2"),
            pytest.param("veryfast", "p3", id="veryfast-p3"),
            pytest.param("medium", "p4", id="medium-p4"),
            pytest.param("slow", "p5", id="slow-p5"),
            pytest.param("slower", "p6", id="slower-p6"),
            pytest.param("veryslow", "p7", id="veryslow-p7"),
        ],
    )
    def test_nvenc_maps_x264_presets_onto_p1_to_p7(self, preset: str, expected: str) -> None:
        argv = video_args(VideoSettings(codec="h264_nvenc", preset=preset))

        assert after(argv, "-preset") == expected
        assert after(argv, "-tune") == "ll"

    def test_nvenc_sends_cbr_and_idr_keyframes_without_software_pixel_format(self) -> None:
        argv = video_args(VideoSettings(codec="h264_nvenc"))

        assert {("-rc", "cbr"), ("-forced-idr", "1")} <= pairs(argv)
        assert "-pix_fmt" not in argv

    @pytest.mark.parametrize(
        ("preset", "expected"),
        [
            pytest.param("ultrafast", "veryfast", id="ultrafast-clamped"),
            pytest.param("superfast", "veryfast", id="superfast-clamped"),
            pytest.param("fast", "fast", id="fast-kept"),
            pytest.param("veryslow", "veryslow", id="veryslow-kept"),
        ],
    )
    def test_qsv_knows_veryfast_to_veryslow(self, preset: str, expected: str) -> None:
        argv = video_args(VideoSettings(codec="h264_qsv", preset=preset))
        assert after(argv, "-preset") == expected

    @pytest.mark.parametrize(
        ("preset", "expected"),
        [
            pytest.param("veryfast", "speed", id="veryfast-speed"),
            pytest.param("medium", "balanced", id="medium-balanced"),
            pytest.param("slow", "quality", id="slow-quality"),
        ],
    )
    def test_amf_gets_a_quality_level_instead_of_a_preset(self, preset: str, expected: str) -> None:
        argv = video_args(VideoSettings(codec="h264_amf", preset=preset))

        assert after(argv, "-quality") == expected
        assert "-preset" not in argv

    def test_vaapi_opens_the_device_before_the_input_and_uploads_frames(self) -> None:
        video = VideoSettings(codec="h264_vaapi", height=720, fps=30)
        argv = encoder_argv(FF, reencode(video), vaapi_device="/dev/dri/renderD129")

        assert after(argv, "-vaapi_device") == "/dev/dri/renderD129"
        assert argv.index("-vaapi_device") < argv.index("-i")
        assert after(argv, "-vf") == "fps=30,scale=-2:720,format=nv12,hwupload"
        assert "-preset" not in argv
        assert ("-rc_mode", "CBR") in pairs(argv)

    def test_videotoolbox_asks_for_realtime_hardware_encoding(self) -> None:
        argv = video_args(VideoSettings(codec="h264_videotoolbox"))

        assert {("-realtime", "1"), ("-allow_sw", "0")} <= pairs(argv)
        assert "-preset" not in argv

    @pytest.mark.parametrize(
        ("width", "height", "expected"),
        [
            pytest.param(None, 720, "scale=-2:720", id="height-only"),
            pytest.param(1280, None, "scale=1280:-2", id="width-only"),
            pytest.param(854, 480, "scale=854:480", id="both"),
        ],
    )
    def test_one_sided_scale_keeps_the_aspect_ratio_with_an_even_side(
        self, width: int | None, height: int | None, expected: str
    ) -> None:
        argv = video_args(VideoSettings(width=width, height=height))
        assert after(argv, "-vf") == expected

    def test_source_size_and_rate_mean_no_filter_and_no_fixed_gop(self) -> None:
        argv = video_args(VideoSettings(keyframe_interval_s=2.5))

        assert "-vf" not in argv
        assert "-g" not in argv
        assert after(argv, "-force_key_frames") == "expr:gte(t,n_forced*2.5)"

    def test_libx265_turns_scene_cuts_off_its_own_way(self) -> None:
        argv = video_args(VideoSettings(codec="libx265", fps=60, keyframe_interval_s=2))

        assert {("-g", "120"), ("-keyint_min", "120"), ("-x265-params", "scenecut=0")} <= pairs(
            argv
        )
        assert "-sc_threshold" not in argv

    @pytest.mark.parametrize(
        ("codec", "profile", "expected"),
        [
            pytest.param("libx264", "baseline", ["-profile:v", "baseline"], id="x264-baseline"),
            pytest.param("h264_nvenc", "main", ["-profile:v", "main"], id="nvenc-main"),
            pytest.param(
                "h264_amf", "baseline", ["-profile:v", "constrained_baseline"], id="amf-baseline"
            ),
            pytest.param("libx265", "high", [], id="hevc-has-no-high"),
            pytest.param("hevc_nvenc", "main", ["-profile:v", "main"], id="hevc-main"),
            pytest.param("av1_nvenc", "main", [], id="av1-none"),
            pytest.param("libx264", None, [], id="unset"),
        ],
    )
    def test_profile_is_passed_only_where_the_encoder_has_it(
        self, codec: str, profile: str | None, expected: list[str]
    ) -> None:
        argv = video_args(VideoSettings(codec=codec, profile=profile))
        found = argv[argv.index("-profile:v") :][:2] if "-profile:v" in argv else []
        assert found == expected

    def test_audio_copy_keeps_the_source_audio(self) -> None:
        argv = encoder_argv(FF, reencode(audio=AudioSettings("copy", sample_rate=44100)))

        assert ("-c:a", "copy") in pairs(argv)
        assert "-b:a" not in argv
        assert "-ar" not in argv

    def test_audio_encode_sets_bitrate_rate_and_channels(self) -> None:
        audio = AudioSettings("libopus", bitrate_kbps=128, sample_rate=48000, channels=2)
        argv = encoder_argv(FF, reencode(audio=audio))
        tail = argv[argv.index("-c:a") : argv.index("-c:a") + 8]

        assert tail == ["-c:a", "libopus", "-b:a", "128k", "-ar", "48000", "-ac", "2"]

    def test_a_passthrough_group_has_no_encoder(self) -> None:
        with pytest.raises(ValueError, match="passthrough"):
            encoder_argv(FF, Group("main"))


class TestPushArgv:
    def test_rtmp_key_is_one_untouched_argv_item_and_not_in_the_url(self) -> None:
        destination = Destination("rtmp", "rtmp://127.0.0.1:19351/live", "live", NASTY_KEY)
        argv = push_argv(FF, destination)

        assert argv[len(HEAD) :] == [
            "-nostdin",
            "-f",
            "flv",
            "-i",
            "pipe:0",
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "flv",
            "-flvflags",
            "no_duration_filesize",
            "-rtmp_app",
            "live",
            "-rtmp_playpath",
            NASTY_KEY,
            "rtmp://127.0.0.1:19351/live",
        ]
        assert sum(NASTY_KEY in item for item in argv) == 1

    def test_rtmp_without_a_key_uses_the_url_as_given(self) -> None:
        argv = push_argv(FF, Destination("rtmp", "rtmp://h/live/streamname", "live/streamname"))

        assert argv[-1] == "rtmp://h/live/streamname"
        assert "-rtmp_app" not in argv
        assert "-rtmp_playpath" not in argv

    def test_srt_key_is_percent_encoded_into_streamid(self) -> None:
        destination = Destination("srt", "srt://h:9000?latency=200000", None, NASTY_KEY)
        argv = push_argv(FF, destination)

        assert argv[-3:] == [
            "-f",
            "mpegts",
            "srt://h:9000?latency=200000&streamid=ab%2Bc%2Fd%3Fe%26f%3Dg%25h%20i.flv",
        ]
        assert "-streamid" not in argv

    @pytest.mark.parametrize(
        ("path", "container"),
        [
            pytest.param(
                "/rec/a.mkv",
                ["-f", "matroska"],
                id="mkv-matroska",
            ),
            pytest.param(
                "/rec/a.mp4",
                ["-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
                id="mp4-fragmented",
            ),
        ],
    )
    def test_recording_container_follows_the_extension_and_never_overwrites(
        self, path: str, container: list[str]
    ) -> None:
        argv = push_argv(FF, Destination("file", path))

        assert argv[-len(container) - 2 :] == ["-n", *container, path]
        assert "-y" not in argv


class TestDestination:
    def test_repr_never_shows_the_key(self) -> None:
        destination = Destination("rtmp", "rtmp://h/live", "live", "sk_live_SECRET")
        assert "sk_live_SECRET" not in repr(destination)

    @pytest.mark.parametrize(
        ("destination", "shown"),
        [
            pytest.param(
                Destination("rtmp", "rtmps://a.rtmps.youtube.com:443/live2", "live2", "s3cr3t"),
                "rtmps://a.rtmps.youtube.com:443/live2/[key]",
                id="rtmp-key",
            ),
            pytest.param(
                Destination("rtmp", "rtmp://h/live/s3cr3t", "live/s3cr3t"),
                "rtmp://h/live/[key]",
                id="rtmp-key-in-url",
            ),
            pytest.param(
                Destination("srt", "srt://h:9000?latency=200000", None, "s3cr3t"),
                "srt://h:9000?latency=200000&streamid=[key]",
                id="srt-key",
            ),
            pytest.param(
                Destination("srt", "srt://h:9000?passphrase=s3cr3tpass&streamid=s3cr3t"),
                "srt://h:9000?passphrase=[key]&streamid=[key]",
                id="srt-secrets-in-url",
            ),
            pytest.param(Destination("file", "/rec/a.mkv"), "/rec/a.mkv", id="file"),
        ],
    )
    def test_display_shows_the_url_with_the_key_masked(
        self, destination: Destination, shown: str
    ) -> None:
        assert destination.display == shown
        assert "s3cr3t" not in destination.display

    def test_secrets_lists_what_a_redactor_must_hide(self) -> None:
        destination = Destination("srt", "srt://h:9000?passphrase=pass%20word", None, "k3y")
        assert destination.secrets() == ("k3y", "pass%20word", "pass word")


class TestRecordingPath:
    def test_a_folder_gets_a_timestamped_matroska_file(self, tmp_path: Path) -> None:
        assert recording_path(str(tmp_path), NOW) == str(tmp_path / "cascade-20260531-210509.mkv")

    def test_a_path_without_extension_is_a_folder(self, tmp_path: Path) -> None:
        path = recording_path(str(tmp_path / "streams"), NOW)
        assert path == str(tmp_path / "streams" / "cascade-20260531-210509.mkv")

    def test_date_and_time_placeholders_are_filled_in(self, tmp_path: Path) -> None:
        path = recording_path(str(tmp_path / "{date}" / "show-{time}.mp4"), NOW)
        assert path == str(tmp_path / "2026-05-31" / "show-21-05-09.mp4")

    def test_home_is_expanded(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        assert recording_path("~/show.mkv", NOW) == str(tmp_path / "show.mkv")

    def test_an_existing_file_is_never_reused(self, tmp_path: Path) -> None:
        (tmp_path / "cascade-20260531-210509.mkv").write_bytes(b"earlier")
        (tmp_path / "cascade-20260531-210509-2.mkv").write_bytes(b"earlier")

        path = recording_path(f"{tmp_path}{os.sep}", NOW)

        assert path == str(tmp_path / "cascade-20260531-210509-3.mkv")


class TestRealEncode:
    def test_libx264_720p30_encode_through_pipes_gives_720p_h264_with_2s_keyframes(
        self, ffmpeg_exe: str, flv_clip: Path, tmp_path: Path
    ) -> None:
        video = VideoSettings(width=1280, height=720, fps=30, bitrate_kbps=2000)
        argv = encoder_argv(ffmpeg_exe, reencode(video, AudioSettings("aac", bitrate_kbps=96)))
        out = tmp_path / "out.flv"

        with out.open("wb") as sink:
            done = subprocess.run(
                argv, input=flv_clip.read_bytes(), stdout=sink, stderr=subprocess.PIPE, timeout=60
            )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]

        probe_head = [ffmpeg_exe, "-hide_banner", "-i"]
        probe = subprocess.run(
            [*probe_head, str(out), "-map", "0:v", "-c", "copy", "-f", "framecrc", "-"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert re.search(r"Video: h264 .*1280x720", probe.stderr), probe.stderr
        assert re.search(r"Audio: aac", probe.stderr), probe.stderr
        packets = [line for line in probe.stdout.splitlines() if line and line[0] != "#"]
        keyframes = [line for line in packets if "F=0x" not in line]
        # The 4 s clip at 30 fps: 120 frames, keyframes at 0 s and 2 s only.
        assert (len(packets), len(keyframes)) == (120, 2)

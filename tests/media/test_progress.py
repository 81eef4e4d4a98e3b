"""Tests for agent.media.progress: FFmpeg ``-progress`` blocks into Progress records."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest

from agent.media.progress import Progress, ProgressParser, advanced

# A block as the bundled FFmpeg 9 prints it mid-stream (note the padded bitrate).
FULL_BLOCK = """\
frame=120
fps=30.00
stream_0_0_q=-1.0
bitrate= 5998.3kbits/s
total_size=3000000
out_time_us=4000000
out_time_ms=4000000
out_time=00:00:04.000000
dup_frames=1
drop_frames=2
speed=1.00x
progress=continue
"""

# FFmpeg's opening block, before the first packet reaches the muxer.
OPENING_BLOCK = """\
frame=0
fps=0.00
stream_0_0_q=0.0
bitrate=N/A
total_size=0
out_time_us=N/A
out_time_ms=N/A
out_time=N/A
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
"""


def feed(parser: ProgressParser, text: str, now: float = 0.0) -> list[Progress]:
    """Feed every line of ``text`` at time ``now`` and return the records produced."""
    records = [parser.feed_line(line, now) for line in text.splitlines(keepends=True)]
    return [record for record in records if record is not None]


def only(records: Iterable[Progress]) -> Progress:
    """Return the single record in ``records``."""
    (record,) = records
    return record


def make(**changes: Any) -> Progress:
    """A Progress with nothing known, with ``changes`` applied."""
    blank = Progress(
        frame=None,
        fps=None,
        bitrate_kbps=None,
        total_size=None,
        out_time_us=None,
        dup_frames=0,
        drop_frames=0,
        speed=None,
        ended=False,
        at=0.0,
        bitrate_derived=False,
    )
    return dataclasses.replace(blank, **changes)


class TestFullBlock:
    def test_every_field_is_read(self) -> None:
        record = only(feed(ProgressParser(), FULL_BLOCK, now=12.5))

        assert record == Progress(
            frame=120,
            fps=30.0,
            bitrate_kbps=5998.3,
            total_size=3_000_000,
            out_time_us=4_000_000,
            dup_frames=1,
            drop_frames=2,
            speed=1.0,
            ended=False,
            at=12.5,
            bitrate_derived=False,
        )

    def test_only_the_progress_line_completes_a_block(self) -> None:
        parser = ProgressParser()
        lines = FULL_BLOCK.splitlines()

        results = [parser.feed_line(line, 0.0) for line in lines]

        assert results[:-1] == [None] * (len(lines) - 1)
        assert results[-1] is not None

    def test_lines_with_and_without_line_endings_read_alike(self) -> None:
        with_newline = only(feed(ProgressParser(), FULL_BLOCK))
        crlf = only(feed(ProgressParser(), FULL_BLOCK.replace("\n", "\r\n")))
        parser = ProgressParser()
        bare = [parser.feed_line(line, 0.0) for line in FULL_BLOCK.splitlines()][-1]

        assert with_newline == crlf == bare

    def test_progress_end_marks_the_last_block(self) -> None:
        text = FULL_BLOCK + FULL_BLOCK.replace("progress=continue", "progress=end")

        first, last = feed(ProgressParser(), text)

        assert (first.ended, last.ended) == (False, True)


class TestNotAvailable:
    def test_opening_block_has_unknown_times_and_speed(self) -> None:
        record = only(feed(ProgressParser(), OPENING_BLOCK))

        assert (record.frame, record.total_size) == (0, 0)
        assert record.out_time_us is None
        assert record.speed is None

    def test_tee_block_without_size_or_bitrate(self) -> None:
        text = FULL_BLOCK.replace("bitrate= 5998.3kbits/s", "bitrate=N/A").replace(
            "total_size=3000000", "total_size=N/A"
        )

        record = only(feed(ProgressParser(), text))

        assert (record.bitrate_kbps, record.total_size) == (None, None)
        assert record.bitrate_derived is False
        assert record.out_time_us == 4_000_000


class TestPartialBlocks:
    def test_audio_only_block_has_no_frame_or_fps(self) -> None:
        text = "\n".join(
            line for line in FULL_BLOCK.splitlines() if not line.startswith(("frame=", "fps="))
        )

        record = only(feed(ProgressParser(), text))

        assert (record.frame, record.fps) == (None, None)
        assert record.total_size == 3_000_000

    def test_lone_progress_line_gives_an_empty_record(self) -> None:
        record = only(feed(ProgressParser(), "progress=continue\n", now=3.0))

        assert record == make(at=3.0)

    def test_a_new_block_starts_fresh(self) -> None:
        parser = ProgressParser()
        feed(parser, FULL_BLOCK)

        record = only(feed(parser, "speed=2.00x\nprogress=continue\n"))

        assert record == make(speed=2.0)

    def test_a_key_repeated_in_one_block_keeps_the_last_value(self) -> None:
        record = only(feed(ProgressParser(), "frame=1\nframe=2\nprogress=continue\n"))

        assert record.frame == 2


class TestGarbageValues:
    @pytest.mark.parametrize(
        ("line", "field", "expected"),
        [
            pytest.param("frame=12a", "frame", None, id="frame-letters"),
            pytest.param("frame=-3", "frame", None, id="frame-negative"),
            pytest.param("frame=1_000", "frame", None, id="frame-underscore"),
            pytest.param("fps=nan", "fps", None, id="fps-nan"),
            pytest.param("fps=inf", "fps", None, id="fps-inf"),
            pytest.param("fps=", "fps", None, id="fps-empty"),
            pytest.param("bitrate=fast", "bitrate_kbps", None, id="bitrate-word"),
            pytest.param("bitrate=kbits/s", "bitrate_kbps", None, id="bitrate-only-unit"),
            pytest.param("bitrate=1e999kbits/s", "bitrate_kbps", None, id="bitrate-overflow"),
            pytest.param("total_size=3.5", "total_size", None, id="size-fraction"),
            pytest.param("out_time_us=soon", "out_time_us", None, id="out-time-word"),
            pytest.param("speed=x", "speed", None, id="speed-only-unit"),
            pytest.param("speed=1.0.0x", "speed", None, id="speed-two-dots"),
            pytest.param("dup_frames=many", "dup_frames", 0, id="dup-word"),
            pytest.param("drop_frames=-1", "drop_frames", 0, id="drop-negative"),
        ],
    )
    def test_malformed_value_becomes_unknown(self, line: str, field: str, expected: object) -> None:
        record = only(feed(ProgressParser(), f"{line}\nprogress=continue\n"))

        assert getattr(record, field) == expected

    def test_malformed_value_does_not_spoil_the_rest_of_the_block(self) -> None:
        text = FULL_BLOCK.replace("fps=30.00", "fps=thirty").replace("speed=1.00x", "speed=??")

        record = only(feed(ProgressParser(), text))

        assert (record.fps, record.speed) == (None, None)
        assert (record.frame, record.total_size, record.bitrate_kbps) == (120, 3_000_000, 5998.3)

    @pytest.mark.parametrize(
        ("line", "field", "expected"),
        [
            pytest.param("speed= 0.5x", "speed", 0.5, id="speed-padded"),
            pytest.param("speed=1.05e+03x", "speed", 1050.0, id="speed-exponent"),
            pytest.param("bitrate=  76.3kbits/s", "bitrate_kbps", 76.3, id="bitrate-padded"),
            pytest.param("out_time_us=-23000", "out_time_us", -23000, id="out-time-negative"),
        ],
    )
    def test_values_as_ffmpeg_formats_them(self, line: str, field: str, expected: object) -> None:
        record = only(feed(ProgressParser(), f"{line}\nprogress=continue\n"))

        assert getattr(record, field) == expected

    def test_unknown_keys_are_ignored(self) -> None:
        text = "stream_0_0_q=28.0\nstream_0_0_psnr_y=41.2\nfoo=bar\nprogress=continue\n"

        record = only(feed(ProgressParser(), text))

        assert record == make()

    def test_garbage_lines_never_raise(self) -> None:
        parser = ProgressParser()
        junk = ["", "\n", "=", "==", "\r", "progress", "frame=\x00", "\ufffd=\ufffd", "a" * 10_000]

        results = [parser.feed_line(line, 0.0) for line in junk]

        assert results == [None] * len(junk)


class TestLineClassification:
    @pytest.mark.parametrize(
        "line",
        [
            pytest.param("frame=120", id="frame"),
            pytest.param("bitrate=  76.3kbits/s\n", id="padded-bitrate"),
            pytest.param("speed= 0.5x", id="padded-speed"),
            pytest.param("bitrate=N/A", id="not-available"),
            pytest.param("stream_0_0_q=-1.0", id="per-stream-key"),
            pytest.param("out_time=00:00:04.000000", id="out-time-clock"),
            pytest.param("foo=bar", id="unknown-key"),
            pytest.param("fps=", id="empty-value"),
            pytest.param("progress=end\r\n", id="crlf"),
            pytest.param(
                "frame=   77 fps= 38 q=-1.0 size=      39KiB time=00:00:02.53 "
                "bitrate= 125.8kbits/s speed=1.26x elapsed=0:00:02.00    \rframe=77\n",
                id="after-overwritten-stats-line",
            ),
        ],
    )
    def test_progress_lines_are_recognised(self, line: str) -> None:
        assert ProgressParser.is_progress_line(line) is True

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(
                "[flv @ 0x55] Failed to update header with correct duration.", id="muxer-warning"
            ),
            pytest.param("Input #0, lavfi, from 'testsrc':", id="input-header"),
            pytest.param("  Stream #0:0: Video: wrapped_avframe, rgb24", id="stream-line"),
            pytest.param(
                "frame=  120 fps= 30 q=28.0 size=    2930KiB time=00:00:04.00 "
                "bitrate=5998.3kbits/s speed=1.00x",
                id="human-stats-line",
            ),
            pytest.param(
                "frame=   90 fps= 37 q=-1.0 Lsize=      45KiB time=00:00:03.04 "
                "bitrate= 121.7kbits/s speed=1.25x elapsed=0:00:02.42    \n",
                id="final-human-stats-line",
            ),
            pytest.param("foo=bar baz", id="unknown-key-with-space"),
            pytest.param("Foo=bar", id="uppercase-key"),
            pytest.param(" frame=1", id="leading-space"),
            pytest.param("frame", id="no-equals"),
            pytest.param("", id="empty"),
        ],
    )
    def test_log_lines_are_not_progress(self, line: str) -> None:
        assert ProgressParser.is_progress_line(line) is False

    def test_log_lines_between_progress_lines_are_ignored(self) -> None:
        lines = FULL_BLOCK.splitlines()
        logs = [
            "[flv @ 0x55] Failed to update header with correct duration.",
            "frame=  120 fps= 30 q=28.0 size=    2930KiB time=00:00:04.00 speed=1.00x",
            "  Stream #0:0: Video: h264",
        ]
        mixed = [lines[0], logs[0], *lines[1:5], logs[1], *lines[5:], logs[2]]

        record = only(feed(ProgressParser(), "\n".join(mixed)))

        assert record == only(feed(ProgressParser(), FULL_BLOCK))


class TestDerivedBitrate:
    def test_from_size_and_output_time(self) -> None:
        text = "bitrate=N/A\ntotal_size=500000\nout_time_us=2000000\nprogress=continue\n"

        record = only(feed(ProgressParser(), text))

        assert record.bitrate_kbps == pytest.approx(2000.0)
        assert record.bitrate_derived is True

    def test_from_size_growth_over_wall_time(self) -> None:
        parser = ProgressParser()
        feed(parser, "total_size=100000\nout_time_us=N/A\nprogress=continue\n", now=10.0)

        record = only(feed(parser, "total_size=350000\nprogress=continue\n", now=10.5))

        assert record.bitrate_kbps == pytest.approx(4000.0)
        assert record.bitrate_derived is True

    def test_zero_output_time_falls_back_to_wall_time(self) -> None:
        parser = ProgressParser()
        feed(parser, "total_size=0\nprogress=continue\n", now=1.0)

        record = only(feed(parser, "total_size=125\nout_time_us=0\nprogress=continue\n", now=2.0))

        assert record.bitrate_kbps == pytest.approx(1.0)
        assert record.bitrate_derived is True

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            pytest.param("", "total_size=1000\n", id="no-previous-block"),
            pytest.param("total_size=N/A\n", "total_size=1000\n", id="previous-size-unknown"),
            pytest.param("total_size=1000\n", "total_size=N/A\n", id="current-size-unknown"),
            pytest.param("total_size=2000\n", "total_size=1000\n", id="size-shrank"),
        ],
    )
    def test_none_when_nothing_to_derive_from(self, first: str, second: str) -> None:
        parser = ProgressParser()
        if first:
            feed(parser, first + "progress=continue\n", now=1.0)

        record = only(feed(parser, second + "progress=continue\n", now=2.0))

        assert (record.bitrate_kbps, record.bitrate_derived) == (None, False)

    def test_no_derivation_without_wall_time_passing(self) -> None:
        parser = ProgressParser()
        feed(parser, "total_size=0\nprogress=continue\n", now=1.0)

        record = only(feed(parser, "total_size=100\nprogress=continue\n", now=1.0))

        assert (record.bitrate_kbps, record.bitrate_derived) == (None, False)

    def test_ffmpeg_figure_wins_over_derivation(self) -> None:
        record = only(feed(ProgressParser(), FULL_BLOCK))

        assert (record.bitrate_kbps, record.bitrate_derived) == (5998.3, False)


class TestAdvanced:
    @pytest.mark.parametrize(
        ("prev", "cur", "expected"),
        [
            pytest.param(make(frame=10), make(frame=11), True, id="frame-grew"),
            pytest.param(make(total_size=10), make(total_size=11), True, id="size-grew"),
            pytest.param(make(out_time_us=10), make(out_time_us=11), True, id="time-grew"),
            pytest.param(
                make(frame=10, total_size=5, out_time_us=7),
                make(frame=10, total_size=5, out_time_us=7, fps=30.0, speed=1.0),
                False,
                id="nothing-grew",
            ),
            pytest.param(make(frame=10), make(frame=9), False, id="frame-went-back"),
            pytest.param(make(frame=10), make(frame=None), False, id="frame-became-unknown"),
            pytest.param(make(frame=None), make(frame=1), True, id="frame-became-known"),
            pytest.param(None, make(frame=0, total_size=0), False, id="first-block-empty"),
            pytest.param(None, make(total_size=4096), True, id="first-block-with-bytes"),
            pytest.param(None, make(out_time_us=-23000), False, id="first-block-negative-time"),
        ],
    )
    def test_advanced(self, prev: Progress | None, cur: Progress, expected: bool) -> None:
        assert advanced(prev, cur) is expected


@pytest.mark.slow
class TestRealFFmpeg:
    def test_bundled_ffmpeg_progress_is_parsed(self, tmp_path: Path) -> None:
        argv = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "info",
            "-stats",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=320x240:r=30",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "flv",
            "-progress",
            "pipe:2",
            "-stats_period",
            "0.5",
            str(tmp_path / "out.flv"),
        ]
        parser = ProgressParser()
        records: list[Progress] = []
        log_lines: list[str] = []

        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            assert proc.stderr is not None
            # Split on b"\n" only, as asyncio's readline does, so "\r" stays inside lines.
            for raw in proc.stderr:
                line = raw.decode("utf-8", errors="replace")
                if ProgressParser.is_progress_line(line):
                    record = parser.feed_line(line, time.monotonic())
                    if record is not None:
                        records.append(record)
                else:
                    log_lines.append(line)
        assert proc.returncode == 0, "".join(log_lines[-20:])

        assert any(r.frame is not None and r.frame > 0 for r in records)
        assert records[-1].ended is True
        assert [r.ended for r in records[:-1]] == [False] * (len(records) - 1)
        assert any(advanced(prev, cur) for prev, cur in itertools.pairwise(records))
        # The closing human -stats line ends in "\n", so it reaches the log side as one line.
        assert any(line.startswith("frame=") and " fps=" in line for line in log_lines)

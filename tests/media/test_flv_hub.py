"""The fan-out hub: late joiners start at a keyframe, slow readers are cut off, sessions end."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.errors import CascadeError
from agent.media.flv import FlvError, FlvParser, FlvTag, TagKind, flv_header
from agent.media.flv_hub import FlvHub, HubSubscriber, SubscriberCutOff
from tests.media.flv_samples import (
    aac_raw,
    aac_sequence_header,
    decode_errors,
    ffmpeg_flv,
    metadata_tag,
    split_every,
    synthetic_stream,
    tag,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def drain(sub: HubSubscriber) -> bytes:
    """Everything queued for ``sub`` right now (stops before an EOF, never waits)."""
    chunks = []
    while sub.queued_bytes:
        chunks.append(await sub.read())
    return b"".join(chunks)


async def until_eof(sub: HubSubscriber) -> bytes:
    """Everything ``sub`` receives up to the end of the session."""
    return b"".join([chunk async for chunk in sub])


def tags_of(data: bytes) -> list[FlvTag]:
    parser = FlvParser()
    tags = parser.feed(data)
    assert parser.header is not None, "a subscriber's stream must start with an FLV header"
    return tags


def first_media(tags: list[FlvTag]) -> FlvTag:
    return next(t for t in tags if not (t.is_metadata or t.is_sequence_header or t.is_codec_extra))


def feed_in_chunks(hub: FlvHub, data: bytes, size: int = 4096) -> None:
    for piece in split_every(data, size):
        hub.feed(piece)


@pytest.fixture(scope="module")
def h264_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> bytes:
    """4 s of 320x240 H.264 + AAC with a keyframe every second."""
    path = tmp_path_factory.mktemp("hub") / "h264.flv"
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]
    return ffmpeg_flv(ffmpeg_exe, path, seconds=4, video=video).read_bytes()


@pytest.fixture(scope="module")
def hevc_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> bytes:
    """3 s of 320x240 HEVC (Enhanced RTMP) + AAC with a closed GOP every second.

    Closed GOPs, as live encoders make them: x265's default open GOP starts each GOP with a
    CRA picture whose leading pictures reference the previous GOP, so a stream joined there
    has a few undecodable frames whatever the relay does.
    """
    path = tmp_path_factory.mktemp("hub") / "hevc.flv"
    video = ["-c:v", "libx265", "-preset", "ultrafast", "-g", "30"]
    video += ["-x265-params", "log-level=error:open-gop=0"]
    return ffmpeg_flv(ffmpeg_exe, path, seconds=3, video=video).read_bytes()


@pytest.fixture(params=["h264", "hevc"])
def clip(request: pytest.FixtureRequest) -> bytes:
    data: bytes = request.getfixturevalue(f"{request.param}_clip")
    return data


class TestLateSubscriber:
    async def test_receives_header_metadata_and_sequence_headers_then_a_keyframe(
        self, clip: bytes
    ) -> None:
        hub = FlvHub("main")
        fed = clip[: len(clip) * 3 // 5]
        feed_in_chunks(hub, fed)
        latest_keyframe = [t for t in tags_of(fed) if t.is_keyframe][-1]
        sub = hub.subscribe("late")
        tags = tags_of(await drain(sub))
        config = tags[: tags.index(first_media(tags))]
        assert config[0].is_metadata
        assert sorted(t.kind for t in config if t.is_sequence_header) == [
            TagKind.AUDIO,
            TagKind.VIDEO,
        ]
        start = first_media(tags)
        assert (start.kind, start.is_keyframe) == (TagKind.VIDEO, True)
        assert start.raw == latest_keyframe.raw
        assert start.timestamp > 0
        assert sub.joined_at_keyframe

    async def test_hevc_colour_info_is_replayed_with_the_sequence_start(
        self, hevc_clip: bytes
    ) -> None:
        hub = FlvHub("main")
        feed_in_chunks(hub, hevc_clip[: len(hevc_clip) // 2])
        tags = tags_of(await drain(hub.subscribe("late")))
        extras = [t for t in tags if t.is_codec_extra]
        assert [(t.kind, t.codec) for t in extras] == [(TagKind.VIDEO, "hevc")]

    async def test_waits_for_the_next_keyframe_when_no_gop_is_cached(self) -> None:
        hub = FlvHub("main", gop_cache=False)
        header, raws = synthetic_stream(2, fps=30, gop=30)
        hub.feed(header + b"".join(raws[:41]))  # 3 config tags + 19 frames (38 tags)
        sub = hub.subscribe("late")
        assert sub.queued_bytes == 0 and not sub.live
        hub.feed(b"".join(raws[41:]))
        tags = tags_of(await drain(sub))
        assert first_media(tags).is_keyframe
        assert first_media(tags).timestamp == 1000
        assert sub.tags_skipped == 22  # frames 19..29 with their audio, before frame 30

    async def test_a_gop_longer_than_the_limit_is_not_replayed(self) -> None:
        hub = FlvHub("main", gop_max_ms=500)
        header, raws = synthetic_stream(2, fps=30, gop=30)
        hub.feed(header + b"".join(raws[: 3 + 2 * 20]))  # 20 frames: 0.67 s into the GOP
        sub = hub.subscribe("late")
        assert sub.queued_bytes == 0
        hub.feed(b"".join(raws[3 + 2 * 20 :]))
        assert first_media(tags_of(await drain(sub))).timestamp == 1000

    async def test_audio_only_stream_starts_at_an_audio_frame(self) -> None:
        hub = FlvHub("radio")
        raws = [aac_sequence_header()] + [aac_raw(ts) for ts in range(0, 2000, 21)]
        hub.feed(flv_header(has_video=False) + b"".join(raws))
        sub = hub.subscribe("late")
        tags = tags_of(await drain(sub))
        assert [t.raw for t in tags] == [raws[0], raws[-1]]
        assert not sub.joined_at_keyframe

    async def test_first_keyframe_time_is_when_read_hands_it_over(self) -> None:
        clock = FakeClock(100.0)
        hub = FlvHub("main", clock=clock)
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws))
        sub = hub.subscribe("late")
        assert sub.subscribed_at == 100.0
        assert sub.first_keyframe_at is None
        clock.now = 100.25
        await sub.read()
        assert sub.first_keyframe_at == 100.25


class TestDecodes:
    @pytest.mark.parametrize("join_at", [0.0, 0.55], ids=["from-start", "mid-stream"])
    async def test_what_a_subscriber_receives_decodes_without_errors(
        self, clip: bytes, join_at: float, tmp_path: Path, ffmpeg_exe: str
    ) -> None:
        hub = FlvHub("main")
        split = int(len(clip) * join_at)
        feed_in_chunks(hub, clip[:split])
        sub = hub.subscribe("target")
        feed_in_chunks(hub, clip[split:])
        hub.end_session()
        received = await until_eof(sub)
        assert sub.tags_delivered > 40
        out = tmp_path / "received.flv"
        out.write_bytes(received)
        assert decode_errors(ffmpeg_exe, out) == (0, "")


class TestSlowSubscriber:
    async def test_is_cut_off_while_a_reading_subscriber_gets_every_tag(self) -> None:
        hub = FlvHub("main", max_lag_bytes=200_000)
        header, raws = synthetic_stream(10, frame_size=2000)
        slow = hub.subscribe("slow")
        fast = hub.subscribe("fast")
        received: list[bytes] = []

        async def reader() -> None:
            async for chunk in fast:
                received.append(chunk)

        task = asyncio.create_task(reader())
        hub.feed(header)
        for raw in raws:
            hub.feed(raw)
            await asyncio.sleep(0)
        hub.end_session()
        await task

        assert b"".join(received) == header + b"".join(raws)
        assert fast.tags_delivered == len(raws)
        assert (fast.tags_dropped, fast.bytes_dropped, fast.queued_bytes) == (0, 0, 0)
        assert slow.cut_off_reason is not None
        assert slow.cut_off_reason.startswith("fell 0.2 MB behind the source; cut off")
        assert slow.tags_dropped > 0
        assert hub.subscribers == (fast,)

    async def test_read_after_cut_off_raises_naming_the_subscriber(self) -> None:
        hub = FlvHub("main", max_lag_bytes=50_000)
        slow = hub.subscribe("twitch")
        header, raws = synthetic_stream(2, frame_size=2000)
        for raw in [header, *raws]:
            hub.feed(raw)
        with pytest.raises(SubscriberCutOff, match="output 'twitch' of hub 'main': fell") as err:
            await slow.read()
        assert isinstance(err.value, CascadeError)
        assert (slow.queued_bytes, slow.queued_tags) == (0, 0)

    async def test_a_waiting_reader_is_woken_by_the_cut_off(self) -> None:
        hub = FlvHub("main", max_lag_bytes=10_000)
        header, raws = synthetic_stream(1, frame_size=2000)
        sub = hub.subscribe("slow")
        hub.feed(header + b"".join(raws[:4]))  # starts it: one queued batch
        await sub.read()
        pending = asyncio.create_task(sub.read())
        await asyncio.sleep(0)
        hub.feed(b"".join(raws[4:]))  # one batch far over the limit
        with pytest.raises(SubscriberCutOff):
            await asyncio.wait_for(pending, 1)


class TestBatches:
    async def test_one_feed_is_one_bytes_object_shared_by_every_live_subscriber(self) -> None:
        hub = FlvHub("main")
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws[:10]))
        a, b = hub.subscribe("a"), hub.subscribe("b")
        await drain(a)
        await drain(b)
        hub.feed(b"".join(raws[10:15]))
        batch_a, batch_b = await a.read(), await b.read()
        assert batch_a is batch_b
        assert batch_a == b"".join(raws[10:15])
        assert (a.queued_bytes, a.tags_delivered) == (0, 3 + 7 + 5)  # config + GOP + batch


class TestSessions:
    async def test_end_session_gives_eof_and_the_next_session_starts_with_its_header(
        self,
    ) -> None:
        hub = FlvHub("main")
        sub = hub.subscribe("youtube")
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws))
        hub.end_session()
        assert await until_eof(sub) == header + b"".join(raws)
        assert not hub.session_active
        assert hub.stream_info() == {}

        second = [metadata_tag({"width": 640}), *raws[1:]]
        feed_in_chunks(hub, header + b"".join(second), 1000)
        hub.end_session()
        received = await until_eof(sub)
        assert received.startswith(flv_header())
        assert received == header + b"".join(second)

    async def test_a_subscriber_joining_between_sessions_waits_for_the_next_one(self) -> None:
        hub = FlvHub("main")
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws))
        hub.end_session()
        sub = hub.subscribe("kick")
        assert (sub.queued_bytes, sub.queued_tags, sub.live) == (0, 0, False)
        hub.feed(header + b"".join(raws))
        hub.end_session()
        assert await until_eof(sub) == header + b"".join(raws)

    async def test_garbage_ends_the_session_cleanly_and_raises(self) -> None:
        hub = FlvHub("main")
        sub = hub.subscribe("yt")
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws))
        with pytest.raises(FlvError, match="FLV source of hub 'main': unknown tag type"):
            hub.feed(tag(0x3F, 0, b"garbage"))
        assert not hub.session_active
        assert await until_eof(sub) == header + b"".join(raws)

    async def test_callbacks_fire_once_per_session_and_their_errors_are_contained(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        hub = FlvHub("main")
        events: list[str] = []

        def on_start() -> None:
            events.append("start")
            raise RuntimeError("listener bug")

        hub.on_session_start = on_start
        hub.on_session_end = lambda: events.append("end")
        header, raws = synthetic_stream(1)
        with caplog.at_level(logging.ERROR, logger="agent.media.flv_hub"):
            feed_in_chunks(hub, header + b"".join(raws))
            hub.end_session()
            hub.end_session()
        assert events == ["start", "end"]
        assert "on_session_start callback failed" in caplog.text
        assert hub.tags_in == len(raws)

    async def test_close_is_idempotent_and_reads_as_eof(self) -> None:
        hub = FlvHub("main")
        header, raws = synthetic_stream(1)
        hub.feed(header + b"".join(raws))
        sub = hub.subscribe("file")
        queued = sub.queued_tags
        sub.close()
        sub.close()
        assert hub.subscribers == ()
        assert await sub.read() == b""
        assert (sub.tags_dropped, sub.queued_tags) == (queued, 0)


class TestCounters:
    async def test_every_tag_after_joining_is_delivered_queued_dropped_or_skipped(
        self,
    ) -> None:
        # A 300 ms GOP limit: "early" joins while the GOP is cached (replayed), "late" after
        # the cache was dropped (skips to the next keyframe). "early" reads one batch in
        # three and "late" none, so both fall behind and are cut off on the way.
        hub = FlvHub("main", max_lag_bytes=60_000, gop_max_ms=300)
        header, raws = synthetic_stream(4, frame_size=1500)
        hub.feed(header + b"".join(raws[:20]))
        early = hub.subscribe("early")
        early_joined = hub.tags_in
        hub.feed(b"".join(raws[20:50]))
        late = hub.subscribe("late")
        late_joined = hub.tags_in
        left: dict[str, int] = {}  # hub.tags_in when each was cut off (then forgotten)
        for i, raw in enumerate(raws[50:]):
            hub.feed(raw)
            for sub in (early, late):
                if sub.cut_off_reason and sub.name not in left:
                    left[sub.name] = hub.tags_in
            if i % 3 == 0 and early.queued_bytes:
                await early.read()

        for sub, joined in ((early, early_joined), (late, late_joined)):
            accounted = sub.tags_delivered + sub.queued_tags + sub.tags_dropped + sub.tags_skipped
            assert accounted == left[sub.name] - joined + sub.tags_replayed, sub
            assert sub.cut_off_reason is not None and sub.tags_dropped > 0
        # early: 3 config tags + the 17-tag GOP so far; late: joined after frame 23's video
        # tag, skipped its audio and frames 24-29, got the 3 config tags with frame 30.
        assert (early.tags_skipped, early.tags_replayed) == (0, 20)
        assert (late.tags_skipped, late.tags_replayed) == (13, 3)

    async def test_bytes_delivered_is_what_read_returned(self) -> None:
        hub = FlvHub("main")
        header, raws = synthetic_stream(1)
        sub = hub.subscribe("a")
        feed_in_chunks(hub, header + b"".join(raws), 700)
        queued = sub.queued_bytes
        received = await drain(sub)
        assert sub.bytes_delivered == len(received) == queued
        assert hub.bytes_in == len(header) + sum(map(len, raws))


class TestStreamInfo:
    def test_reads_size_frame_rate_and_codecs_from_ffmpeg_metadata(self, h264_clip: bytes) -> None:
        hub = FlvHub("main")
        feed_in_chunks(hub, h264_clip[:20_000])
        info = hub.stream_info()
        assert (info["width"], info["height"], info["fps"]) == (320, 240, 30.0)
        assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
        assert info["audio_sample_rate"] == 48_000
        assert info["encoder"].startswith("Lavf")
        assert (hub.video_codec, hub.audio_codec) == ("h264", "aac")

    def test_hevc_codec_comes_from_the_enhanced_rtmp_tags(self, hevc_clip: bytes) -> None:
        hub = FlvHub("main")
        feed_in_chunks(hub, hevc_clip)
        assert hub.stream_info()["video_codec"] == "hevc"

    def test_input_bitrate_is_measured_over_a_sliding_window(self) -> None:
        clock = FakeClock()
        hub = FlvHub("main", clock=clock)
        hub.feed(flv_header())
        for _ in range(40):  # 100 kB every 0.25 s for 10 s: 3200 kbit/s
            clock.now += 0.25
            hub.feed(aac_raw(0, size=100_000 - 17))
        assert hub.input_bitrate_kbps() == pytest.approx(3200, rel=0.1)
        assert hub.stream_info()["input_bitrate_kbps"] == pytest.approx(3200, rel=0.1)

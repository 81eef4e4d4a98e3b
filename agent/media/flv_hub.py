"""The in-process fan-out hub: one FLV source, many subscribers, nobody waits for anybody.

The ingest (or a re-encode group's FFmpeg) writes FLV into :meth:`FlvHub.feed`; every target
reads it back from its own :class:`HubSubscriber`. The hub keeps what a latecomer needs to
start decoding at once — the FLV header, ``onMetaData``, the codec sequence headers and the
latest GOP — so a target switched on mid-stream starts exactly at a keyframe without waiting
for the next one.

Cost model, because this is the relay's hot path: :meth:`FlvHub.feed` parses each tag's
header and first body bytes only, and everything one ``feed`` produced reaches every live
subscriber as ONE shared ``bytes`` object (one queue item each, no copy per subscriber).

Back-pressure is never passed upstream: each subscriber has a queue bounded in bytes
(``max_lag_bytes``); one that falls further behind is cut off — its queue is dropped, its
next :meth:`HubSubscriber.read` raises :class:`SubscriberCutOff` — and the others carry on.

Sessions: a session starts with the first ``feed`` (an FLV header) and ends with
:meth:`FlvHub.end_session` (OBS stopped publishing). Ending a session hands every subscriber
an EOF (``b""``) and clears the caches; subscribers that stay subscribed start again at the
first keyframe of the next session, from its header. Errors::

    CascadeError
    ├── FlvError            (agent.media.flv) the source is not FLV; the session is ended
    └── SubscriberCutOff    a subscriber fell more than max_lag_bytes behind

The hub is not thread-safe: call it from the event loop thread that runs the readers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TypedDict

from agent.errors import CascadeError
from agent.media.flv import FlvError, FlvParser, FlvTag, TagKind, metadata_codec, read_metadata

__all__ = ["FlvHub", "HubSubscriber", "StreamInfo", "SubscriberCutOff"]

log = logging.getLogger(__name__)

#: A cached GOP longer than this (by tag timestamps) is dropped until the next keyframe:
#: a latecomer would otherwise start far in the past.
DEFAULT_GOP_MAX_MS = 10_000
#: Window of the measured input bitrate.
RATE_WINDOW_S = 5.0
_RATE_BUCKET_S = 0.5

_EOF = b""


class SubscriberCutOff(CascadeError):
    """Raised by :meth:`HubSubscriber.read` once the hub has cut that subscriber off.

    It fell more than ``max_lag_bytes`` behind the source; the hub dropped what was queued
    for it and forgot it. Subscribe again to resume from the latest keyframe.
    """


class StreamInfo(TypedDict, total=False):
    """What :meth:`FlvHub.stream_info` knows; a key is absent when it is not known."""

    video_codec: str
    audio_codec: str
    width: int
    height: int
    fps: float
    video_bitrate_kbps: float
    audio_bitrate_kbps: float
    audio_sample_rate: int
    encoder: str
    input_bitrate_kbps: float


class _RateMeter:
    """Bytes per second over a sliding window, in half-second buckets (cheap per feed)."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._buckets: deque[tuple[float, int]] = deque()
        self._bucket_start = 0.0
        self._bucket_bytes = 0

    def add(self, now: float, nbytes: int) -> None:
        if now - self._bucket_start >= _RATE_BUCKET_S:
            if self._bucket_bytes:
                self._buckets.append((self._bucket_start, self._bucket_bytes))
            self._bucket_start = now
            self._bucket_bytes = 0
            horizon = now - self._window
            while self._buckets and self._buckets[0][0] < horizon:
                self._buckets.popleft()
        self._bucket_bytes += nbytes

    def rate(self, now: float) -> float:
        horizon = now - self._window
        total = self._bucket_bytes
        first = self._bucket_start
        for start, nbytes in self._buckets:
            if start >= horizon:
                total += nbytes
                first = min(first, start)
        span = max(now - first, _RATE_BUCKET_S)
        return total / span if total else 0.0

    def reset(self) -> None:
        self._buckets.clear()
        self._bucket_start = 0.0
        self._bucket_bytes = 0


class HubSubscriber:
    """One reader of a :class:`FlvHub`: a byte-bounded queue of FLV batches.

    Read with ``await sub.read()`` or ``async for chunk in sub``. Each session's stream is a
    valid FLV from its header on and starts at a keyframe; it ends with ``b""`` (EOF), after
    which the same subscriber receives the next session. Counters (all cumulative):

    - ``bytes_delivered`` / ``tags_delivered``: handed out by :meth:`read` — what really left
      the hub. The header is counted in bytes but is not a tag.
    - ``queued_bytes`` / ``queued_tags``: enqueued, not yet read.
    - ``bytes_dropped`` / ``tags_dropped``: enqueued but discarded unread — when cut off, or
      when closed with data still queued.
    - ``tags_skipped``: fed while this subscriber waited for its start point (no cached GOP
      on joining, or between sessions); none of their bytes were queued for it.
    - ``tags_replayed``: tags handed over at the start that were fed before the start point —
      the cached metadata / sequence headers and the cached GOP.

    So for every tag fed after joining:
    ``tags_delivered + queued_tags + tags_dropped == fed_after_joining - tags_skipped
    + tags_replayed``.
    """

    def __init__(self, hub: FlvHub, name: str, now: float) -> None:
        self.name = name
        self.hub_name = hub.name
        self.subscribed_at = now
        """``clock()`` when it subscribed."""
        self.bytes_delivered = 0
        self.tags_delivered = 0
        self.bytes_dropped = 0
        self.tags_dropped = 0
        self.tags_skipped = 0
        self.tags_replayed = 0
        self.queued_bytes = 0
        self.queued_tags = 0
        self.joined_at_keyframe = False
        """True once its stream started at a video keyframe (False while waiting, or when it
        started on an audio frame of an audio-only stream)."""
        self.first_keyframe_at: float | None = None
        """``clock()`` when :meth:`read` handed over the batch holding its first keyframe."""
        self.cut_off_reason: str | None = None
        self.on_cut_off: Callable[[str], None] | None = None
        """Called (synchronously, from the hub) when this subscriber is cut off."""
        self.closed = False
        self._hub: FlvHub | None = hub
        self._clock = hub.clock
        self._queue: deque[tuple[bytes, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # Live: receiving this session's tags. Not live: waiting for a start point.
        self._live = False
        self._first_batch_pending = False

    # --- reader side ------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """True while it receives the current session; False while waiting for a start."""
        return self._live

    async def read(self) -> bytes:
        """Return the next batch of FLV bytes; ``b""`` at the end of a session or after close.

        Raises :class:`SubscriberCutOff` if the hub cut this subscriber off.
        """
        while True:
            if self.cut_off_reason is not None:
                raise SubscriberCutOff(
                    self.cut_off_reason,
                    subject=f"output '{self.name}' of hub '{self.hub_name}'",
                    hint="Subscribe again to resume from the latest keyframe",
                )
            if self._queue:
                data, ntags = self._queue.popleft()
                size = len(data)
                self.queued_bytes -= size
                self.queued_tags -= ntags
                self.bytes_delivered += size
                self.tags_delivered += ntags
                if self._first_batch_pending and size:
                    # The first batch after a start always begins with the start keyframe.
                    self._first_batch_pending = False
                    self.first_keyframe_at = self._clock()
                return data
            if self.closed:
                return _EOF
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> HubSubscriber:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    def close(self) -> None:
        """Unsubscribe; anything still queued is dropped. Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        if self._hub is not None:
            self._hub._forget(self)
        self._drop_queue()
        self._wake()

    # --- hub side ---------------------------------------------------------------------------

    def _enqueue(self, data: bytes, ntags: int) -> None:
        self._queue.append((data, ntags))
        self.queued_bytes += len(data)
        self.queued_tags += ntags
        self._wake()

    def _start(self, data: bytes, ntags: int, replayed: int, at_video_keyframe: bool) -> None:
        """Begin a session for this subscriber with ``data`` (header, config, first tags)."""
        if self.first_keyframe_at is None and not self._first_batch_pending:
            self.joined_at_keyframe = at_video_keyframe
            self._first_batch_pending = True
        self._live = True
        self.tags_replayed += replayed
        self._enqueue(data, ntags)

    def _end_session(self) -> None:
        self._live = False
        self._enqueue(_EOF, 0)

    def _cut_off(self, reason: str) -> None:
        self.cut_off_reason = reason
        self._hub = None
        self._live = False
        self._drop_queue()
        self._wake()
        if self.on_cut_off is not None:
            # A reader blocked writing to a stuck output never calls read() again: tell it.
            try:
                self.on_cut_off(reason)
            except Exception:
                log.exception("cut-off callback of %r failed", self.name)

    def _drop_queue(self) -> None:
        self.bytes_dropped += self.queued_bytes
        self.tags_dropped += self.queued_tags
        self.queued_bytes = 0
        self.queued_tags = 0
        self._queue.clear()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        state = "cut off" if self.cut_off_reason else "closed" if self.closed else "live"
        if state == "live" and not self._live:
            state = "waiting"
        return f"<HubSubscriber {self.name!r} of {self.hub_name!r} {state}>"


class FlvHub:
    """Fan one FLV source out to many :class:`HubSubscriber` objects.

    ``max_lag_bytes`` bounds each subscriber's queue; a subscriber that exceeds it is cut
    off. The GOP cache (``gop_cache``) is held to half of that, so a latecomer starting with
    the whole cached GOP still has room to fall behind a little, and to ``gop_max_ms`` of
    stream time. ``clock`` is ``time.monotonic`` unless a test supplies its own.

    Hub-level counters: ``bytes_in`` / ``tags_in`` count everything fed (all sessions);
    ``session_started_at`` and ``last_keyframe_at`` are ``clock()`` values or ``None``.
    ``on_session_start`` / ``on_session_end`` are called synchronously from :meth:`feed` /
    :meth:`end_session`; an exception from them is logged and does not stop the stream.
    """

    def __init__(
        self,
        name: str,
        *,
        max_lag_bytes: int = 8_000_000,
        gop_cache: bool = True,
        gop_max_ms: int = DEFAULT_GOP_MAX_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.max_lag_bytes = max_lag_bytes
        self.gop_cache = gop_cache
        self.gop_max_ms = gop_max_ms
        self.clock = clock
        self.on_session_start: Callable[[], None] | None = None
        self.on_session_end: Callable[[], None] | None = None
        self.bytes_in = 0
        self.tags_in = 0
        self.session_active = False
        self.session_started_at: float | None = None
        self.last_keyframe_at: float | None = None
        self.video_codec = ""
        self.audio_codec = ""
        self._subs: list[HubSubscriber] = []
        self._rate = _RateMeter(RATE_WINDOW_S)
        self._parser: FlvParser | None = None
        self._clear_session()

    def _clear_session(self) -> None:
        # Decoder set-up a latecomer needs, each the raw bytes of the latest such tag.
        self._header: bytes | None = None
        self._metadata: FlvTag | None = None
        self._video_config: bytes | None = None
        self._video_extra: bytes | None = None
        self._audio_config: bytes | None = None
        self._audio_extra: bytes | None = None
        # Video announced by the header or seen in a tag: only video keyframes start then.
        self._has_video = False
        # The GOP cache: raw tags from the latest start point on, plus the set-up (header and
        # config tags) as it stood at that start point, so a replay decodes exactly as live.
        self._gop: list[bytes] | None = None
        self._gop_bytes = 0
        self._gop_start_ts = 0
        self._gop_init = b""
        self._gop_init_tags = 0
        self._gop_at_video_keyframe = False
        self._parsed_metadata: tuple[FlvTag, StreamInfo] | None = None

    # --- the source side --------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the source's FLV; never blocks, never awaits.

        The first chunk after :meth:`end_session` (or ever) must begin with an FLV header.
        Raises :class:`~agent.media.flv.FlvError` on garbage, after ending the session so
        every subscriber sees a clean EOF.
        """
        if not chunk:
            return
        if not self.session_active:
            self._begin_session()
        parser = self._parser
        assert parser is not None  # set by _begin_session
        now = self.clock()
        self.bytes_in += len(chunk)
        self._rate.add(now, len(chunk))
        try:
            tags = parser.feed(chunk)
        except FlvError:
            self.end_session()
            raise
        if self._header is None and parser.header is not None:
            self._header = parser.header
            # Trust the header's "has video" flag (FFmpeg sets it from the real streams):
            # otherwise audio arriving before the first video tag would count as a start.
            if parser.header[4] & 0x01:
                self._has_video = True
        if not tags:
            return
        self.tags_in += len(tags)

        start_at = -1  # index of the first start point in this chunk
        start_init = b""
        start_init_tags = 0
        start_is_video = False
        gop = self._gop
        for i, tag in enumerate(tags):
            kind = tag.kind
            is_start = False
            if kind is TagKind.VIDEO:
                if not self._has_video:
                    self._has_video = True
                    gop = None  # a cache started on audio does not start at a keyframe
                if tag.is_keyframe:
                    is_start = True
                    self.last_keyframe_at = now
                elif tag.is_sequence_header:
                    self._video_config = tag.raw
                elif tag.is_codec_extra:
                    self._video_extra = tag.raw
                if tag.codec:
                    self.video_codec = tag.codec
            elif kind is TagKind.AUDIO:
                if tag.is_sequence_header:
                    self._audio_config = tag.raw
                elif tag.is_codec_extra:
                    self._audio_extra = tag.raw
                elif not self._has_video:
                    is_start = True  # audio-only: any audio frame decodes on its own
                if tag.codec:
                    self.audio_codec = tag.codec
            elif tag.is_metadata:
                self._metadata = tag

            if is_start:
                init, init_tags = self._init_snapshot()
                if start_at < 0:
                    start_at = i
                    start_init = init
                    start_init_tags = init_tags
                    start_is_video = kind is TagKind.VIDEO
                if self.gop_cache:
                    gop = [tag.raw]
                    self._gop_bytes = len(tag.raw)
                    self._gop_start_ts = tag.timestamp
                    self._gop_init = init
                    self._gop_init_tags = init_tags
                    self._gop_at_video_keyframe = kind is TagKind.VIDEO
            elif gop is not None:
                gop.append(tag.raw)
                self._gop_bytes += len(tag.raw)
            if gop is not None and (
                self._gop_bytes > self.max_lag_bytes // 2
                or tag.timestamp - self._gop_start_ts > self.gop_max_ms
            ):
                gop = None  # too long to replay; latecomers wait for the next keyframe
        self._gop = gop
        if self._subs:
            self._deliver(tags, start_at, start_init, start_init_tags, start_is_video)

    def _deliver(
        self, tags: list[FlvTag], start_at: int, init: bytes, init_tags: int, is_video: bool
    ) -> None:
        ntags = len(tags)
        live_batch: bytes | None = None
        start_batch: bytes | None = None
        limit = self.max_lag_bytes
        cut: list[HubSubscriber] = []
        for sub in self._subs:
            if sub._live:
                if live_batch is None:
                    live_batch = tags[0].raw if ntags == 1 else b"".join([t.raw for t in tags])
                sub._enqueue(live_batch, ntags)
                if sub.queued_bytes > limit:
                    cut.append(sub)
            elif start_at >= 0:
                if start_batch is None:
                    start_batch = b"".join([init, *(t.raw for t in tags[start_at:])])
                sub.tags_skipped += start_at
                sub._start(start_batch, init_tags + ntags - start_at, init_tags, is_video)
                if sub.queued_bytes > limit:
                    cut.append(sub)
            else:
                sub.tags_skipped += ntags
        for sub in cut:
            self._cut_off(sub)

    def end_session(self) -> None:
        """The source ended: give every subscriber EOF, clear the caches. Idempotent."""
        if not self.session_active:
            return
        self.session_active = False
        self._parser = None
        self._clear_session()
        self.video_codec = ""
        self.audio_codec = ""
        self._rate.reset()
        for sub in self._subs:
            sub._end_session()
        self._notify(self.on_session_end, "on_session_end")

    def _begin_session(self) -> None:
        self.session_active = True
        self.session_started_at = self.clock()
        self.last_keyframe_at = None
        self._parser = FlvParser(source=f"FLV source of hub '{self.name}'")
        self._notify(self.on_session_start, "on_session_start")

    def _notify(self, callback: Callable[[], None] | None, what: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            # A listener's bug must not stop the bytes that every output depends on.
            log.exception("hub %r: %s callback failed", self.name, what)

    def _init_snapshot(self) -> tuple[bytes, int]:
        """The header and current config tags as one bytes object, and how many tags."""
        parts = [self._header or b""]
        meta = self._metadata
        if meta is not None:
            parts.append(meta.raw)
        for raw in (self._video_config, self._video_extra, self._audio_config, self._audio_extra):
            if raw is not None:
                parts.append(raw)
        return b"".join(parts), len(parts) - 1

    # --- the subscriber side ----------------------------------------------------------------

    def subscribe(self, name: str) -> HubSubscriber:
        """Add a subscriber; it starts at the cached GOP now, or at the next keyframe.

        With a cached GOP its queue immediately holds the header, metadata, sequence headers
        and the GOP from its keyframe on; otherwise it skips tags until the next start point.
        """
        sub = HubSubscriber(self, name, self.clock())
        self._subs.append(sub)
        if self.session_active and self._gop is not None:
            data = b"".join([self._gop_init, *self._gop])
            ntags = self._gop_init_tags + len(self._gop)
            sub._start(data, ntags, ntags, self._gop_at_video_keyframe)
            if sub.queued_bytes > self.max_lag_bytes:
                self._cut_off(sub)
        return sub

    @property
    def subscribers(self) -> tuple[HubSubscriber, ...]:
        """The current subscribers (cut-off and closed ones are gone)."""
        return tuple(self._subs)

    def _cut_off(self, sub: HubSubscriber) -> None:
        mb = sub.queued_bytes / 1_000_000
        reason = f"fell {mb:.1f} MB behind the source; cut off to protect the other outputs"
        log.warning("hub %r: output %r %s", self.name, sub.name, reason)
        self._forget(sub)
        sub._cut_off(reason)

    def _forget(self, sub: HubSubscriber) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    # --- information ------------------------------------------------------------------------

    def input_bitrate_kbps(self) -> float:
        """Input bitrate measured over the last few seconds (kbit/s; 0 when idle)."""
        return self._rate.rate(self.clock()) * 8 / 1000

    def stream_info(self) -> StreamInfo:
        """Codecs, size, frame rate and bitrates of the current session, as far as known.

        Codecs come from the tags themselves, falling back to ``onMetaData``; size, frame rate
        and nominal bitrates from ``onMetaData`` (absent keys when it lacks them or is
        malformed); ``input_bitrate_kbps`` is measured.
        """
        info: StreamInfo = {}
        meta = self._metadata
        if meta is not None:
            cached = self._parsed_metadata
            if cached is None or cached[0] is not meta:
                cached = (meta, _info_from_metadata(meta))
                self._parsed_metadata = cached
            info.update(cached[1])
        if self.video_codec:
            info["video_codec"] = self.video_codec
        if self.audio_codec:
            info["audio_codec"] = self.audio_codec
        if self.session_active:
            info["input_bitrate_kbps"] = round(self.input_bitrate_kbps(), 1)
        return info

    def __repr__(self) -> str:
        state = "live" if self.session_active else "idle"
        return f"<FlvHub {self.name!r} {state}, {len(self._subs)} subscribers>"


def _info_from_metadata(tag: FlvTag) -> StreamInfo:
    props = read_metadata(tag)
    info: StreamInfo = {}

    def number(key: str) -> float | None:
        value = props.get(key)
        if isinstance(value, float) and value > 0:
            return value
        return None

    if (width := number("width")) is not None:
        info["width"] = int(width)
    if (height := number("height")) is not None:
        info["height"] = int(height)
    if (fps := number("framerate")) is not None:
        info["fps"] = round(fps, 3)
    # FFmpeg writes 0 for a rate it does not know (CRF encodes, stream copies): absent then.
    if (vrate := number("videodatarate")) is not None:
        info["video_bitrate_kbps"] = round(vrate, 1)
    if (arate := number("audiodatarate")) is not None:
        info["audio_bitrate_kbps"] = round(arate, 1)
    if (sample_rate := number("audiosamplerate")) is not None:
        info["audio_sample_rate"] = int(sample_rate)
    if codec := metadata_codec(props.get("videocodecid"), TagKind.VIDEO):
        info["video_codec"] = codec
    if codec := metadata_codec(props.get("audiocodecid"), TagKind.AUDIO):
        info["audio_codec"] = codec
    encoder = props.get("encoder")
    if isinstance(encoder, str) and encoder:
        info["encoder"] = encoder
    return info


async def pump(sub: HubSubscriber, writer: asyncio.StreamWriter) -> None:
    """Copy a subscription into a child's stdin until its session ends, then close it (EOF).

    A cut-off ends the copy quietly: whoever owns the subscription learns of it through
    ``on_cut_off``, even while this coroutine is stuck in ``drain()``. The subscription is
    always closed.
    """
    try:
        while chunk := await sub.read():
            writer.write(chunk)
            await writer.drain()
        writer.close()  # the session is over: EOF lets FFmpeg finish its output cleanly
    except SubscriberCutOff:
        pass
    finally:
        sub.close()

"""Fault injection and evidence for the reliability suite.

- :class:`FaultProxy`: a TCP proxy in front of a real RTMP server (a
  :class:`~tests.streams.FakePlatform`) that refuses, resets, stalls or vanishes on demand,
  and keeps the first bytes each client sent (to find a stream key in the RTMP ``publish``).
- :class:`TinyDisk`: a small tmpfs mounted for the test, so a recording really meets
  ``ENOSPC`` ("No space left on device"); mounting needs root, as ``.ci/run`` has.
- :class:`RelayRig`: one in-process :class:`~agent.core.relay.Relay` with its fake
  platforms, proxies, a publisher factory and every event it published.
- :func:`received`: what ffprobe reads in a received stream — packets, keyframe at the
  start, the largest hole between video timestamps, the duration — as one record that
  assertions and the reliability report both use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from agent.core.backoff import BackoffPolicy
from agent.core.events import Event, EventBus
from agent.core.model import Group, IngestSettings, Profile, Target
from agent.core.push import PUSH_CONFIG
from agent.core.relay import Relay
from agent.media.flv import FlvParser, TagKind
from tests.streams import (
    FakePlatform,
    Publisher,
    free_port,
    probe,
    stream,
    video_packets,
    wait_listening,
)
from tests.streams import max_gap as largest_gap

#: Pushes retry quickly here (0.5 s doubling to 4 s, no jitter) so a recovery fits a short
#: test; the shape of the policy is the product's.
FAST_PUSH = dataclasses.replace(
    PUSH_CONFIG,
    backoff=BackoffPolicy(initial=0.5, factor=2.0, cap=4.0, jitter=0.0, reset_after=30),
    stall_timeout=6.0,
)
INGEST_KEY = "obs-reliability-key"
#: The largest hole allowed between two video timestamps of a stream that "carried on
#: untouched": a 30 fps stream has 0.033 s between frames; a lost GOP would be 1 s.
NO_GAP_S = 0.1


# -- what arrived -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """ffprobe's view of one received stream (a platform session or a recording)."""

    path: str
    packets: int
    starts_at_keyframe: bool
    max_gap_s: float
    first_s: float
    last_s: float
    width: int | None
    height: int | None
    codec: str | None

    @property
    def seconds(self) -> float:
        return self.last_s - self.first_s

    def summary(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "seconds": round(self.seconds, 2),
            "max_gap_s": round(self.max_gap_s, 3),
            "starts_at_keyframe": self.starts_at_keyframe,
        }


def received(path: Path) -> Received:
    """Read a received stream with ffprobe (an empty or unreadable one has 0 packets)."""
    try:
        packets = video_packets(path)
        info = probe(path)
    except subprocess.CalledProcessError:
        packets, info = [], {"streams": []}
    video = next((s for s in info["streams"] if s.get("codec_type") == "video"), None)
    times = [pts for pts, _ in packets]
    return Received(
        path=str(path),
        packets=len(packets),
        starts_at_keyframe=bool(packets) and packets[0][1],
        max_gap_s=largest_gap(packets),
        first_s=min(times, default=0.0),
        last_s=max(times, default=0.0),
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        codec=video.get("codec_name") if video else None,
    )


def received_flv(path: Path) -> Received:
    """Like :func:`received`, read with Cascade's own FLV parser: for codecs Debian's
    ffprobe cannot read from FLV (HEVC as Enhanced RTMP, which FFmpeg 6.1 and later write)."""
    tags = FlvParser(source=str(path)).feed(path.read_bytes())
    frames = [
        t for t in tags
        if t.kind is TagKind.VIDEO and not t.is_sequence_header and not t.is_codec_extra
    ]  # fmt: skip
    packets = [(t.timestamp / 1000, t.is_keyframe) for t in frames]
    times = [pts for pts, _ in packets]
    return Received(
        path=str(path),
        packets=len(packets),
        starts_at_keyframe=bool(packets) and packets[0][1],
        max_gap_s=largest_gap(packets),
        first_s=min(times, default=0.0),
        last_s=max(times, default=0.0),
        width=None,
        height=None,
        codec=frames[0].codec if frames else None,
    )


def frame_sizes(path: Path) -> list[tuple[int, int]]:
    """(width, height) of every decoded video frame, in order (for size changes)."""
    from tests.streams import require_ffprobe

    out = subprocess.run(
        [require_ffprobe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=width,height", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    sizes = []
    for line in out.stdout.splitlines():
        parts = [p for p in line.split(",") if p]
        if len(parts) == 2:
            sizes.append((int(parts[0]), int(parts[1])))
    return sizes


# -- a proxy that misbehaves --------------------------------------------------------------------


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stalled: bool = False


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_port``, with faults on demand.

    Faults act like the network or the server would:

    - :meth:`refuse` stops listening (a connect is refused); :meth:`listen` undoes it;
    - :meth:`reset` resets every open connection (RST both ways), still listening;
    - :meth:`stall_next` makes the next connections hang: accepted, never read (the sender's
      writes block once the kernel buffers are full), never passed on; later ones flow;
    - :meth:`vanish` is the server dying: it stops listening and every connection ends.

    The listening socket's receive buffer is small, so a stalled reader pushes back at once.
    """

    RCVBUF = 16384
    KEEP = 8192  # bytes of each client's stream kept for :attr:`sent`

    def __init__(self, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.port = port if port is not None else free_port()
        self.connections = 0
        self.sent: list[bytes] = []  # the first KEEP bytes each client sent, per connection
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._stall = 0
        self._closed = asyncio.Event()

    def url(self, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}"

    async def listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._serve, sock=sock)
        await wait_listening(self.port)

    async def refuse(self) -> None:
        """Stop listening: a new connection is refused; open ones carry on."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def reset(self) -> None:
        """Reset every open connection, both sides (SO_LINGER 0, then close: a TCP RST)."""
        for link in list(self._links):
            _abort(link.client, rst=True)
            if link.upstream is not None:
                _abort(link.upstream, rst=True)

    def stall_next(self, count: int = 1) -> None:
        """The next ``count`` connections are accepted and never read."""
        self._stall = count

    async def vanish(self) -> None:
        """The server dies: nothing listens any more and every connection ends."""
        await self.refuse()
        for link in list(self._links):
            _abort(link.client, rst=False)
            if link.upstream is not None:
                _abort(link.upstream, rst=False)

    async def close(self) -> None:
        self._closed.set()
        await self.refuse()
        links = list(self._links)
        for link in links:
            _abort(link.client, rst=False)
            if link.upstream is not None:
                _abort(link.upstream, rst=False)
        tasks = [t for link in links for t in link.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = len(self.sent)
        self.sent.append(b"")
        link = _Link(client=writer)
        if self._stall > 0:
            self._stall -= 1
            link.stalled = True
            cast(asyncio.Transport, writer.transport).pause_reading()
            await self._closed.wait()
            _abort(writer, rst=False)
            return
        self._links.add(link)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                _abort(writer, rst=True)  # no server behind: the client sees its connection drop
                return
            link.upstream = up_writer
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, index)),
                asyncio.create_task(self._pump(up_reader, writer, None)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            _abort(writer, rst=False)
            _abort(up_writer, rst=False)
        finally:
            self._links.discard(link)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int | None
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if index is not None and len(self.sent[index]) < self.KEEP:
                    self.sent[index] = (self.sent[index] + data)[: self.KEEP]
                writer.write(data)
                await writer.drain()


def _abort(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    if writer.is_closing():
        return
    if rst:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- a disk that fills up -----------------------------------------------------------------------


class TinyDiskUnavailable(RuntimeError):
    """The small filesystem could not be mounted; the message says why and what to do."""


class TinyDisk:
    """A tmpfs of ``size`` bytes mounted on a fresh folder: real ``ENOSPC`` when it is full.

    ``fill(n)`` writes a filler file so that only ``n`` bytes stay free; ``free()`` deletes it.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.path = Path(tempfile.mkdtemp(prefix="cascade-tinydisk-"))
        self._mounted = False

    def __enter__(self) -> TinyDisk:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0777", "tmpfs", str(self.path)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if result.returncode != 0:
            self.path.rmdir()
            raise TinyDiskUnavailable(
                "the disk-full case mounts a small tmpfs, which needs root (.ci/run runs as "
                f"root): mount said {result.stderr.strip() or result.returncode}"
            )
        self._mounted = True
        return self

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def fill(self, leave_free: int) -> None:
        """Take all but ``leave_free`` bytes with a filler file."""
        stat = os.statvfs(self.path)
        free = stat.f_bavail * stat.f_frsize
        with open(self.filler, "ab") as fh:
            fh.write(b"\0" * max(0, free - leave_free))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)
            self._mounted = False
        with contextlib.suppress(OSError):
            self.path.rmdir()


# -- an in-process relay with its peers ----------------------------------------------------------


@dataclass
class RelayRig:
    """One relay with its fake platforms, proxies, publishers and every event it published."""

    ffmpeg: str
    clip: Path
    folder: Path
    relay: Relay | None = None
    platforms: dict[str, FakePlatform] = field(default_factory=dict)
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    bus: EventBus = field(default_factory=EventBus)
    publishers: list[Publisher] = field(default_factory=list)

    @property
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    async def platform(self, name: str, *, proxied: bool = False) -> FakePlatform:
        server = FakePlatform(self.ffmpeg, self.folder / name, key=f"{name}-key")
        await server.start()
        self.platforms[name] = server
        if proxied:
            proxy = FaultProxy(server.port)
            await proxy.listen()
            self.proxies[name] = proxy
        return server

    def target(self, name: str, **kwargs: Any) -> Target:
        """A custom target sending to platform ``name`` (through its proxy, if it has one)."""
        server = self.platforms[name]
        proxy = self.proxies.get(name)
        url = proxy.url(server.app) if proxy is not None else server.url
        return Target(id=name, url=url, key=server.key, **kwargs)

    async def start(
        self,
        groups: list[Group],
        *,
        max_lag_bytes: int = 8_000_000,
        ffmpeg: str | None = None,
        wait_listening_: bool = True,
    ) -> Relay:
        self.bus.add_listener(self.events.append)
        ingest = IngestSettings(port=free_port(), key=INGEST_KEY)
        self.relay = Relay(
            Profile(ingest=ingest, groups=groups),
            ffmpeg=ffmpeg or self.ffmpeg,
            bus=self.bus,
            push_config=FAST_PUSH,
            max_lag_bytes=max_lag_bytes,
        )
        await self.relay.start()
        if wait_listening_:
            await wait_listening(ingest.port)
        return self.relay

    def publisher(
        self, clip: Path | None = None, *, seconds: float | None = None, loop: bool = False
    ) -> Publisher:
        assert self.relay is not None
        url = f"{self.relay.profile.ingest.obs_url}/{INGEST_KEY}"
        publisher = Publisher(self.ffmpeg, clip or self.clip, url, seconds=seconds)
        if loop:  # endless: the clip again and again, timestamps running on
            at = publisher.argv.index("-i")
            publisher.argv[at:at] = ["-stream_loop", "-1"]
        self.publishers.append(publisher)
        return publisher

    async def wait_for(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            if loop.time() > deadline:
                ingest = self.relay.ingest.state.value if self.relay else None
                raise TimeoutError(
                    f"condition not met in time; ingest {ingest}, targets {self.states()}"
                )
            await asyncio.sleep(0.05)

    def states(self) -> dict[str, str]:
        """Every target's state now."""
        if self.relay is None:
            return {}
        return {
            t: runtime.pushes[t].state
            for runtime in self.relay.groups.values()
            for t in runtime.pushes
        }

    def target_state(self, target_id: str) -> str:
        assert self.relay is not None
        group, _ = self.relay.profile.target(target_id)
        return self.relay.groups[group.id].pushes[target_id].state

    def pid_of(self, name: str) -> int | None:
        """The pid of a running child: ``ingest``, ``encoder:GROUP`` or ``target:ID``."""
        assert self.relay is not None
        if name == "ingest":
            return self.relay.ingest.supervisor.pid
        kind, _, ident = name.partition(":")
        if kind == "encoder":
            encoder = self.relay.groups[ident].encoder
            return encoder.pid if encoder is not None else None
        group, _ = self.relay.profile.target(ident)
        return self.relay.groups[group.id].pushes[ident].supervisor.pid

    def dicts(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event as the WebSocket would send it (optionally of one ``type``)."""
        return [e.to_dict() for e in self.events if kind is None or e.kind == kind]

    def process(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.dicts("process.state") if e["name"] == name]

    def errors(self, source: str) -> list[dict[str, Any]]:
        return [e for e in self.dicts("error") if e["source"] == source]

    def target_states(self, target_id: str) -> list[str]:
        return [e["state"] for e in self.dicts("target.state") if e["target"] == target_id]

    async def close(self) -> None:
        for publisher in self.publishers:
            await publisher.stop()
        if self.relay is not None:
            await self.relay.stop()
        for proxy in self.proxies.values():
            await proxy.close()
        for server in self.platforms.values():
            await server.stop()


def video_of(info: dict[str, Any]) -> dict[str, Any]:
    return stream(info, "video")

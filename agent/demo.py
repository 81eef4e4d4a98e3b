"""``cascade demo``: a newcomer's first run, with no account and no stream key.

It starts the agent on a temporary config, publishes a synthetic 1080p30 test stream into its
ingest (as OBS would), fans it out to two passthrough outputs and one re-encoded 720p output on
local RTMP servers, shows live figures, then checks every received file and exits 0 only if
all of them are right.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from agent.core.agent import Agent
from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestSettings,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.settings import Settings
from agent.errors import CascadeError
from agent.media.probe_file import MediaInfo, probe_file

DURATION_TOLERANCE = 1.5  # seconds


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalSink:
    """A local stand-in for a platform: an RTMP server that records what it receives."""

    name: str
    path: Path
    port: int = field(default_factory=_free_port)
    key: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live"

    async def start(self, ffmpeg: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-listen", "1", "-i", f"{self.url}/{self.key}",
            "-c", "copy", "-f", "flv", "-y", str(self.path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def wait(self, timeout: float) -> None:
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@dataclass(frozen=True)
class Expectation:
    sink: LocalSink
    width: int
    height: int


def demo_profile(ingest_port: int, key: str, sinks: dict[str, LocalSink]) -> Profile:
    """Two passthrough outputs and one 720p re-encode, all to local sinks."""

    def target(name: str) -> Target:
        sink = sinks[name]
        return Target(id=name, name=f"Local {name}", url=sink.url, key=sink.key)

    return Profile(
        name="demo",
        ingest=IngestSettings(port=ingest_port, key=key),
        groups=[
            Group(id="main", name="Source quality", targets=[target("local-a"), target("local-b")]),
            Group(
                id="720p",
                name="720p copy",
                mode=GroupMode.REENCODE,
                video=VideoSettings(
                    width=1280, height=720, fps=30, bitrate_kbps=2500, preset="veryfast"
                ),
                audio=AudioSettings(codec="copy"),
                targets=[target("local-720p")],
            ),
        ],
    )


def publisher_argv(ffmpeg: str, url: str, seconds: float) -> list[str]:
    """A synthetic 1080p30 stream with tone, sent in real time like OBS would."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:g}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-b:v", "4500k", "-maxrate", "4500k", "-bufsize", "9000k", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
        "-f", "flv", url,
    ]  # fmt: skip


def check(info: MediaInfo, want: Expectation, seconds: float) -> list[str]:
    """What is wrong with a received file (empty when it is right)."""
    problems = []
    if info.video_codec != "h264":
        problems.append(f"video codec {info.video_codec}, expected h264")
    if (info.width, info.height) != (want.width, want.height):
        problems.append(f"size {info.width}x{info.height}, expected {want.width}x{want.height}")
    if info.audio_codec != "aac":
        problems.append(f"audio codec {info.audio_codec}, expected aac")
    if info.duration is None or abs(info.duration - seconds) > DURATION_TOLERANCE:
        problems.append(f"duration {info.duration}, expected about {seconds:g} s")
    return problems


async def run_demo(*, seconds: float = 10.0, out: TextIO = sys.stdout) -> int:
    """Run the demo; 0 if every output arrived right, 1 otherwise."""
    with tempfile.TemporaryDirectory(prefix="cascade-demo-") as tmp:
        return await _run(Path(tmp), seconds, out)


async def _run(folder: Path, seconds: float, out: TextIO) -> int:
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    sinks = {
        name: LocalSink(name, folder / f"{name}.flv")
        for name in ("local-a", "local-b", "local-720p")
    }
    key = secrets.token_urlsafe(12)
    profile = demo_profile(_free_port(), key, sinks)
    agent = Agent(folder / "config", settings=Settings(), profile=profile)
    publisher: asyncio.subprocess.Process | None = None
    try:
        await agent.start()
        if agent.ffmpeg is None or agent.relay is None:
            raise agent.ffmpeg_error or CascadeError("FFmpeg could not be started")
        ffmpeg = str(agent.ffmpeg.path)
        for sink in sinks.values():
            await sink.start(ffmpeg)
        relay = agent.relay
        await relay.start_all()
        ingest = f"{profile.ingest.obs_url}/{key}"
        say(f"Cascade demo: OBS would stream to {profile.ingest.obs_url}")
        say(
            "Publishing a synthetic 1080p30 test stream; outputs: 2 passthrough + 1 re-encoded 720p"
        )
        await asyncio.sleep(0.3)  # the listeners bind
        publisher = await asyncio.create_subprocess_exec(
            *publisher_argv(ffmpeg, ingest, seconds),
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        waiter = asyncio.ensure_future(publisher.communicate())
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=1.0)
            say(_status_line(relay.status()))
        _, err = waiter.result()
        if publisher.returncode != 0:
            say(f"the test publisher failed: {err.decode(errors='replace').strip()}")
            return 1
        for sink in sinks.values():
            with contextlib.suppress(TimeoutError):
                await sink.wait(timeout=15)
        await agent.stop()

        say()
        expectations = [
            Expectation(sinks["local-a"], 1920, 1080),
            Expectation(sinks["local-b"], 1920, 1080),
            Expectation(sinks["local-720p"], 1280, 720),
        ]
        failures = 0
        for want in expectations:
            try:
                info = probe_file(want.sink.path, ffmpeg=ffmpeg)
                problems = check(info, want, seconds)
            except CascadeError as exc:
                problems = [str(exc)]
                info = None
            if problems:
                failures += 1
                say(f"  FAIL {want.sink.name}: " + "; ".join(problems))
            else:
                assert info is not None
                say(
                    f"  ok   {want.sink.name}: {info.video_codec} {info.width}x{info.height} "
                    f"+ {info.audio_codec}, {info.duration:.1f} s"
                )
        say()
        if failures:
            say(f"{failures} of {len(expectations)} outputs were wrong.")
            return 1
        say("Every output arrived intact. Next: `cascade run`, then point OBS at the ingest URL.")
        return 0
    finally:
        if publisher is not None and publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        await agent.stop()
        for sink in sinks.values():
            await sink.kill()


def _status_line(status: dict[str, object]) -> str:
    ingest = status["ingest"]
    assert isinstance(ingest, dict)
    parts = [f"ingest {ingest['state']} {ingest['bitrate_kbps']:.0f} kbps"]
    groups = status["groups"]
    assert isinstance(groups, list)
    for group in groups:
        for target in group["targets"]:
            rate = target["bitrate_kbps"]
            fps = target["fps"]
            figures = f" {rate:.0f} kbps" if rate else ""
            figures += f" {fps:.0f} fps" if fps else ""
            parts.append(f"{target['id']} {target['state']}{figures}")
    return " | ".join(parts)

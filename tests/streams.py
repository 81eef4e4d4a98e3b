"""Real streaming peers for end-to-end tests: fake platforms, a publisher like OBS, ffprobe.

A fake platform is a real RTMP server: ``ffmpeg -listen 1`` writing what it receives to a file.
It serves one connection and then exits, so a :class:`FakePlatform` starts a fresh listener
after each one and keeps every session's file: a target that reconnected shows up as a second
session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FFPROBE = shutil.which("ffprobe")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc (no connection made:
    a probe connection would be taken as the one client of an ``ffmpeg -listen``)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(wanted) and parts[3] == "0A":
                    return True
    return False


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not is_listening(port):
        if loop.time() > deadline:
            raise TimeoutError(f"nothing listens on port {port}")
        await asyncio.sleep(0.02)


@dataclass
class FakePlatform:
    """An RTMP server on 127.0.0.1 that records each connection to its own FLV file."""

    ffmpeg: str
    folder: Path
    app: str = "live"
    key: str = "streamkey"
    port: int = field(default_factory=free_port)
    sessions: list[Path] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _proc: asyncio.subprocess.Process | None = None
    _out: Path | None = None
    _listeners: int = 0

    @property
    def url(self) -> str:
        return f"rtmp://127.0.0.1:{self.port}/{self.app}"

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._serve())
        await wait_listening(self.port)

    async def _serve(self) -> None:
        while True:
            self._listeners += 1
            out = self._out = self.folder / f"listener-{self._listeners}.flv"
            self._proc = await asyncio.create_subprocess_exec(
                self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning",
                "-listen", "1", "-i", f"{self.url}/{self.key}",
                "-c", "copy", "-f", "flv", "-y", str(out),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await self._proc.communicate()
            self.logs.append(err.decode(errors="replace"))
            self._keep(out)

    def _keep(self, out: Path) -> None:
        if out.exists() and out.stat().st_size > 13 and out not in self.sessions:
            self.sessions.append(out)

    async def stop(self) -> None:
        """Take the server down (a platform outage): the connection drops, nothing listens."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._out is not None:
            self._keep(self._out)  # the connection the outage cut short

    async def wait_sessions(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` connections have ended and been written."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.sessions) < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{self.url}: {len(self.sessions)} of {count} sessions")
            await asyncio.sleep(0.05)

    @property
    def connected(self) -> bool:
        """True while a client is streaming to the current listener."""
        return (
            self._proc is not None and self._proc.returncode is None and not is_listening(self.port)
        )


class Publisher:
    """A publisher like OBS: ``ffmpeg -re`` sending a clip to Cascade's ingest."""

    def __init__(self, ffmpeg: str, clip: Path, url: str, *, seconds: float | None = None) -> None:
        self.argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
        if seconds is not None:
            self.argv += ["-t", str(seconds)]
        self.argv += ["-i", str(clip), "-c", "copy", "-f", "flv", url]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )

    async def wait(self, timeout: float = 60.0) -> str:
        assert self.proc is not None
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        return err.decode(errors="replace")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def require_ffprobe() -> str:
    if FFPROBE is None:
        raise RuntimeError(
            "ffprobe is missing: install Debian's ffmpeg package (apt-get install ffmpeg); "
            ".ci/run does this"
        )
    return FFPROBE


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a received file: streams and format."""
    out = subprocess.run(
        [require_ffprobe(), "-v", "error", "-show_streams", "-show_format",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def video_packets(path: Path) -> list[tuple[float, bool]]:
    """(pts seconds, is keyframe) of every video packet in a received file."""
    out = subprocess.run(
        [require_ffprobe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    packets = []
    for line in out.stdout.splitlines():
        pts, _, flags = line.partition(",")
        if pts and pts != "N/A":
            packets.append((float(pts), "K" in flags))
    return packets


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def duration(info: dict[str, Any]) -> float:
    return float(info["format"]["duration"])


def max_gap(packets: list[tuple[float, bool]]) -> float:
    times = sorted(p for p, _ in packets)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

"""Cascade's real relay in a process of its own, so its CPU is that process plus its children.

``python -m benchmarks.cascade_runner CONFIG.json`` builds a profile in code (an RTMP ingest,
one passthrough or re-encode group with the configured targets), starts the
:class:`~agent.core.relay.Relay` and every group, and serves ``sessions`` publishes. It exits
once the last publisher has gone, every target and encoder has ended and the ingest listens
again. It prints one JSON line on stdout: per-target starts and dropped tags, and, when asked
for, the toggle measurement (disable one target while live, enable it again, and time its
first keyframe from the hub).

SIGTERM or SIGINT stop the relay cleanly (every FFmpeg child reaped) before the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.core.events import Event, EventBus, ProcessStateChanged
from agent.core.ingest import IngestState
from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestSettings,
    Profile,
    Target,
    VideoSettings,
)
from agent.core.relay import Relay
from agent.core.states import ProcessState

log = logging.getLogger("benchmarks.cascade_runner")


@dataclass
class ToggleProbe:
    """Disable ``target`` ``disable_at`` s into the first session, enable it ``gap`` s later."""

    target: str
    disable_at: float
    gap: float


@dataclass
class RunnerConfig:
    """What the runner builds and serves; written as JSON by ``benchmarks.relay``."""

    ffmpeg: str
    ingest_port: int
    ingest_key: str
    sink_url: str  # rtmp://127.0.0.1:PORT/sink; each target's key is its stream name
    targets: list[str]
    reencode: bool = False
    sessions: int = 1
    toggle: ToggleProbe | None = None
    session_timeout: float = 600.0

    @classmethod
    def load(cls, path: Path) -> RunnerConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        toggle = data.pop("toggle", None)
        return cls(**data, toggle=ToggleProbe(**toggle) if toggle else None)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def reencode_video() -> VideoSettings:
    """The benchmark's re-encode: 1280x720, 30 fps, libx264 veryfast, 3000k, keyframe 2 s."""
    return VideoSettings(
        codec="libx264",
        width=1280,
        height=720,
        fps=30,
        bitrate_kbps=3000,
        keyframe_interval_s=2.0,
        preset="veryfast",
    )


def build_group(config: RunnerConfig) -> Group:
    """One group holding every target: passthrough, or the re-encode with audio copied."""
    targets = [Target(id=name, url=config.sink_url, key=name) for name in config.targets]
    if config.reencode:
        return Group(
            id="720p",
            mode=GroupMode.REENCODE,
            video=reencode_video(),
            audio=AudioSettings(codec="copy"),
            targets=targets,
        )
    return Group(id="main", targets=targets)


def build_profile(config: RunnerConfig) -> Profile:
    ingest = IngestSettings(port=config.ingest_port, key=config.ingest_key)
    return Profile(name="benchmark", ingest=ingest, groups=[build_group(config)])


@dataclass
class Watch:
    """Counts each child's starts and wakes the runner whenever something changed."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    starts: dict[str, int] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        if isinstance(event, ProcessStateChanged) and event.new == "starting":
            self.starts[event.name] = self.starts.get(event.name, 0) + 1
        self.changed.set()

    async def until(self, check: Callable[[], bool], timeout: float) -> None:
        """Wait until ``check()`` holds, re-checking after every event (and each second)."""
        async with asyncio.timeout(timeout):
            while not check():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 1.0)


def _idle(state: ProcessState) -> bool:
    return not state.is_active and state is not ProcessState.STOPPING


def finished(relay: Relay, sessions: int) -> bool:
    """Every session served and over, every child ended, the ingest listening again."""
    group = next(iter(relay.groups.values()))
    children = [p.supervisor.state for p in group.pushes.values()]
    if group.encoder is not None:
        children.append(group.encoder.state)
    return (
        relay.ingest.sessions >= sessions
        and not relay.source.session_active
        and all(_idle(state) for state in children)
        and relay.ingest.state is IngestState.LISTENING
    )


async def toggle(relay: Relay, watch: Watch, probe: ToggleProbe) -> dict[str, Any]:
    """Disable then enable one target while live; time its first keyframe from the hub."""
    group = next(iter(relay.groups.values()))
    await watch.until(lambda: all(p.state == "live" for p in group.pushes.values()), 30)
    started = relay.source.session_started_at or time.monotonic()
    await asyncio.sleep(max(0.0, started + probe.disable_at - time.monotonic()))
    disabled_at = time.monotonic()
    await relay.disable_target(probe.target)
    await asyncio.sleep(probe.gap)
    push = group.pushes[probe.target]
    enable_called = time.monotonic()
    await relay.enable_target(probe.target)
    enable_returned = time.monotonic()
    first_keyframe: float | None = None
    deadline = enable_called + 10.0
    while time.monotonic() < deadline:
        sub = push.subscriber
        if sub is not None and sub.first_keyframe_at is not None:
            first_keyframe = sub.first_keyframe_at
            break
        await asyncio.sleep(0.002)
    return {
        "target": probe.target,
        "disabled_at": disabled_at,
        "enable_called_at": enable_called,
        "enable_returned_s": round(enable_returned - enable_called, 4),
        "first_keyframe_at": first_keyframe,
        "first_keyframe_s": None
        if first_keyframe is None
        else round(first_keyframe - enable_called, 4),
    }


async def serve(config: RunnerConfig) -> dict[str, Any]:
    bus = EventBus()
    watch = Watch()
    bus.add_listener(watch)
    relay = Relay(build_profile(config), ffmpeg=config.ffmpeg, bus=bus)
    report: dict[str, Any] = {"event": "done", "ok": False}
    try:
        await relay.start()
        await relay.start_all()
        if config.toggle is not None:
            await watch.until(lambda: relay.source.session_active, config.session_timeout)
            report["toggle"] = await toggle(relay, watch, config.toggle)
            await watch.until(lambda: not relay.source.session_active, config.session_timeout)
            report["starts_first_session"] = dict(watch.starts)
        await watch.until(lambda: finished(relay, config.sessions), config.session_timeout)
        report["ok"] = True
    finally:
        group = next(iter(relay.groups.values()))
        report["sessions"] = relay.ingest.sessions
        report["starts"] = dict(watch.starts)
        report["targets"] = {
            name: {
                "tags_dropped": push.stats().hub_tags_dropped,
                "hub_bytes": push.stats().hub_bytes_delivered,
                "restarts": push.supervisor.restarts,
            }
            for name, push in group.pushes.items()
        }
        await relay.stop()
    return report


async def _main(config: RunnerConfig) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    report = await serve(config)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.cascade_runner CONFIG.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    try:
        return asyncio.run(_main(RunnerConfig.load(Path(args[0]))))
    except asyncio.CancelledError:
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The load scenario: 20 targets in 4 groups live at once on a real agent, measured over time.

Used by ``test_load.py`` (a short run in the normal suite), by the ``soak``-marked test and by
``scripts/soak.py`` (minutes to an hour). What runs:

- ``cascade run --headless`` (the real agent, its API and WebSocket) on a temporary config
  directory holding one profile: groups ``g1``–``g3`` pass the source through to five targets
  each, ``g4`` re-encodes it once (256x144, ultrafast) for its five;
- one nginx-rtmp server receiving all 20 streams: application ``rec`` records each stream it
  receives to its own FLV (a new file per connection), application ``sink`` only receives;
- a publisher like OBS looping a small clip (320x180, 30 fps, ~350 kbit/s) without end;
- a watcher on the WebSocket keeping every ``stats``, ``target.state``, ``process.state`` and
  ``error`` event;
- every second, psutil's view of the agent's own process: RSS, open file descriptors,
  threads, children, CPU time.

After a warm-up the measured window starts. A *storm* (once, or every ``storm_every_s``):
``subscribers`` WebSocket clients connect (a tenth of them never read), ``toggles`` toggles of
target ``t5`` arrive in bursts of ten concurrent requests, the clients stay a few seconds and
leave. At the end every group is stopped, the agent gets SIGTERM, nginx closes its files and
each recording is read with ffprobe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from agent.core.model import (
    AudioSettings,
    Group,
    GroupMode,
    IngestSettings,
    Profile,
    Target,
    VideoSettings,
)
from agent.store.profiles import ProfileStore
from benchmarks.peers import find_nginx
from tests.agent_process import AgentProcess
from tests.reliability.harness import received
from tests.streams import free_port, wait_listening

TOKEN = "reliability-load-token-0123456789"
TOGGLED = "t5"  # in g1: its four siblings show that toggling it touches nobody
MB = 1024 * 1024

#: The bounds a run is held to (the soak's as well as the normal suite's).
RSS_MAX_MB = 90.0  # never above the agent's live budget
# The end of the window against its middle (medians of three samples): memory has levelled
# off. The first storm of 200 clients raises it once, by what they needed; that is the
# growth from the start, reported but not bounded.
RSS_LATE_GROWTH_MB = 3.0
FD_DRIFT = 4  # open files at the end against the start
STATS_MAX_GAP_S = 3.0  # between two stats events of one group (they come once a second)
NO_GAP_S = 0.1  # between two video timestamps of a received stream


@dataclass
class LoadPlan:
    """How big and how long; the defaults are the normal suite's run."""

    seconds: float = 60.0  # the measured window, after the warm-up
    groups: int = 4  # the last one re-encodes
    per_group: int = 5
    subscribers: int = 200
    toggles: int = 100  # an even number: the toggled target ends where it began
    warmup_s: float = 6.0
    storm_at_s: float = 3.0  # into the window
    storm_every_s: float | None = None  # None: one storm
    hold_s: float = 4.0  # subscribers stay connected this long after the toggles
    record: str = "all"  # "all", or "some": one target per group (long runs)


@dataclass
class Sample:
    at: float  # seconds into the window
    rss_mb: float
    fds: int
    threads: int
    children: int
    cpu_s: float


@dataclass
class LoadFigures:
    """Everything measured, JSON-ready (``asdict``)."""

    plan: dict[str, Any]
    targets: int
    groups: int
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    rss_growth_mb: float = 0.0
    rss_mid_mb: float = 0.0
    rss_late_growth_mb: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    fds_max: int = 0
    fds_settle_s: float = 0.0  # after the window, until the open files were back
    threads_start: int = 0
    threads_end: int = 0
    children_start: int = 0
    children_end: int = 0
    agent_cpu_percent: float = 0.0
    stats_max_gap_s: dict[str, float] = field(default_factory=dict)
    stats_count: dict[str, int] = field(default_factory=dict)
    storms: int = 0
    toggles_answered: int = 0
    toggle_ms_p50: float = 0.0
    toggle_ms_max: float = 0.0
    subscribers_connected: int = 0
    subscriber_events_min: int = 0
    targets_live_end: int = 0
    starts: dict[str, int] = field(default_factory=dict)  # "starting" events after the warm-up
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    agent_exit_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def profile_for(plan: LoadPlan, port: int, sink: int) -> Profile:
    groups = []
    number = 0
    for index in range(1, plan.groups + 1):
        targets = []
        for position in range(plan.per_group):
            number += 1
            recorded = plan.record == "all" or position == 0 or f"t{number}" == TOGGLED
            app = "rec" if recorded else "sink"
            targets.append(Target(id=f"t{number}", url=f"rtmp://127.0.0.1:{sink}/{app}/t{number}"))
        if index == plan.groups:
            groups.append(
                Group(
                    id=f"g{index}",
                    mode=GroupMode.REENCODE,
                    video=VideoSettings(
                        width=256,
                        height=144,
                        fps=30,
                        bitrate_kbps=200,
                        keyframe_interval_s=1.0,
                        preset="ultrafast",
                        profile=None,
                    ),
                    audio=AudioSettings(codec="copy"),
                    targets=targets,
                )
            )
        else:
            groups.append(Group(id=f"g{index}", targets=targets))
    return Profile(name="load", ingest=IngestSettings(port=port), groups=groups)


class NginxSink:
    """nginx-rtmp receiving every target: ``rec`` records each connection, ``sink`` drops."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        # nginx's worker writes as its unprivileged user, which cannot enter a test's private
        # temporary folders: the recordings go to a folder of their own, open to it.
        self.records = Path(tempfile.mkdtemp(prefix="cascade-load-records-"))
        os.chmod(self.records, 0o777)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        nginx = find_nginx()
        conf = "\n".join(
            [
                f"load_module {nginx.module};",
                "daemon off;",
                "master_process on;",
                "worker_processes 1;",
                f"pid {self.folder / 'nginx.pid'};",
                f"error_log {self.folder / 'error.log'} warn;",
                "events { worker_connections 1024; }",
                "rtmp {",
                "  server {",
                f"    listen 127.0.0.1:{self.port};",
                "    application sink { live on; }",
                f"    application rec {{ live on; record all; record_path {self.records}; "
                "record_unique on; }",
                "  }",
                "}",
            ]
        )
        (self.folder / "nginx.conf").write_text(conf + "\n")
        self.proc = subprocess.Popen(
            [nginx.binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
             "-e", str(self.folder / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def recordings(self, target: str) -> list[Path]:
        return sorted(self.records.glob(f"{target}-*.flv"))

    def stop(self) -> None:
        """SIGQUIT: a graceful stop, every recording closed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove_recordings(self) -> None:
        shutil.rmtree(self.records, ignore_errors=True)


class Sampler:
    """psutil's view of the agent's own process, every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[Sample] = []
        self.origin = time.monotonic()

    def take(self) -> Sample:
        p = self.process
        with p.oneshot():
            cpu = p.cpu_times()
            sample = Sample(
                at=round(time.monotonic() - self.origin, 2),
                rss_mb=round(p.memory_info().rss / MB, 2),
                fds=p.num_fds(),
                threads=p.num_threads(),
                children=len(p.children()),
                cpu_s=round(cpu.user + cpu.system, 3),
            )
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.take)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)


@dataclass
class Watcher:
    """One WebSocket client keeping the events the figures are made of."""

    events: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                event = json.loads(msg.data)
                event["seen_at"] = time.time()
                self.events.append(event)


async def _subscriber(
    http: aiohttp.ClientSession, url: str, reads: bool, counts: list[int], leave: asyncio.Event
) -> None:
    async with http.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
        counts.append(0)
        slot = len(counts) - 1
        if not reads:  # a client too slow to read: the agent must drop its oldest events
            await leave.wait()
            return
        while not leave.is_set():
            with contextlib.suppress(TimeoutError):
                msg = await ws.receive(timeout=0.5)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    counts[slot] += 1
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return


async def _storm(
    http: aiohttp.ClientSession, base: str, plan: LoadPlan, figures: LoadFigures
) -> None:
    leave = asyncio.Event()
    counts: list[int] = []
    url = f"{base}/api/v1/events?token={TOKEN}"
    clients = [
        asyncio.create_task(_subscriber(http, url, i % 10 != 0, counts, leave))
        for i in range(plan.subscribers)
    ]
    deadline = time.monotonic() + 30
    while len(counts) < plan.subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    figures.subscribers_connected = max(figures.subscribers_connected, len(counts))
    latencies: list[float] = []

    async def toggle() -> None:
        began = time.monotonic()
        async with http.post(f"{base}/api/v1/targets/{TOGGLED}/toggle") as answer:
            await answer.read()
            if answer.status == 200:
                latencies.append((time.monotonic() - began) * 1000)
            else:
                figures.errors.append(f"toggle answered {answer.status}")

    for _ in range(plan.toggles // 10):
        await asyncio.gather(*(toggle() for _ in range(10)))
    await asyncio.sleep(plan.hold_s)
    leave.set()
    await asyncio.gather(*clients, return_exceptions=True)
    reading = [c for i, c in enumerate(counts) if i % 10 != 0]
    figures.subscriber_events_min = min(reading, default=0)
    figures.storms += 1
    figures.toggles_answered += len(latencies)
    if latencies:
        figures.toggle_ms_p50 = round(statistics.median(latencies), 1)
        figures.toggle_ms_max = round(max(figures.toggle_ms_max, *latencies), 1)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


async def _until(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.25)


async def run_load(
    plan: LoadPlan,
    folder: Path,
    ffmpeg: str,
    clip: Path,
    *,
    progress: Callable[[str], None] = print,
) -> LoadFigures:
    """Run the scenario in ``folder``; the figures (raises only when it could not run)."""
    folder.mkdir(parents=True, exist_ok=True)
    sink = NginxSink(folder / "nginx")
    (folder / "nginx").mkdir(exist_ok=True)
    port = free_port()
    profile = profile_for(plan, port, sink.port)
    store = ProfileStore(folder / "config")
    store.save(profile)
    store.use(profile.name)
    targets = [t.id for g in profile.groups for t in g.targets]
    figures = LoadFigures(
        plan=asdict(plan), targets=len(targets), groups=len(profile.groups),
        minutes=round(plan.seconds / 60, 2),
    )  # fmt: skip
    agent = AgentProcess(folder / "config", token=TOKEN)
    publisher: asyncio.subprocess.Process | None = None
    stop_sampling = asyncio.Event()
    try:
        sink.start()
        await wait_listening(sink.port)
        agent.start()
        assert agent.proc is not None
        client = agent.client()
        await wait_listening(port)
        publisher = await asyncio.create_subprocess_exec(
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv",
            f"rtmp://127.0.0.1:{port}/live/obs",
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.to_thread(client.post, "/api/v1/start-all")
        await _until(
            lambda: client.get("/api/v1/status")["totals"]["targets_live"] == len(targets),
            60, "not every target went live",
        )  # fmt: skip
        progress(f"all {len(targets)} targets live; warming up {plan.warmup_s:g} s")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
            watcher = Watcher()
            kinds = "stats,target.state,process.state,group.state,error"
            ws = await http.ws_connect(f"{agent.url}/api/v1/events?kinds={kinds}", max_msg_size=0)
            watching = asyncio.create_task(watcher.run(ws))
            await asyncio.sleep(plan.warmup_s)

            sampler = Sampler(agent.proc.pid)
            window_start = time.time()
            sampling = asyncio.create_task(sampler.run(stop_sampling))
            next_storm: float | None = plan.storm_at_s
            end = sampler.origin + plan.seconds
            while time.monotonic() < end:
                into = time.monotonic() - sampler.origin
                if next_storm is not None and into >= next_storm and end - time.monotonic() > 30:
                    progress(f"{into:.0f} s: storm ({plan.subscribers} subscribers, "
                             f"{plan.toggles} toggles)")  # fmt: skip
                    await _storm(http, agent.url, plan, figures)
                    every = plan.storm_every_s
                    next_storm = next_storm + every if every else None
                    continue
                await asyncio.sleep(min(1.0, max(0.0, end - time.monotonic())))
            stop_sampling.set()
            await sampling
            window_end = time.time()
            # Connections of the storm's clients may take the WebSocket close timeout (10 s,
            # twice: the client's and the agent's) to end; the files must then be back.
            settle = time.monotonic()
            start_fds = sampler.samples[0].fds
            while abs(sampler.take().fds - start_fds) > FD_DRIFT and time.monotonic() - settle < 60:
                await asyncio.sleep(1.0)
            figures.fds_settle_s = round(time.monotonic() - settle, 1)
            status = await asyncio.to_thread(client.get, "/api/v1/status")
            figures.targets_live_end = status["totals"]["targets_live"]
            await asyncio.to_thread(client.post, "/api/v1/stop-all")
            await _until(
                lambda: client.get("/api/v1/status")["totals"]["targets_live"] == 0,
                30, "the targets did not stop",
            )  # fmt: skip
            await ws.close()
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        publisher.kill()
        await publisher.wait()
        figures.agent_exit_code = agent.stop()
    finally:
        stop_sampling.set()
        if publisher is not None and publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        agent.kill()
        sink.stop()

    _figures_from(figures, sampler.samples, watcher.events, window_start, window_end)
    try:
        for target in targets:
            files = sink.recordings(target)
            if files:
                figures.received[target] = [received(f).summary() for f in files]
    finally:
        sink.remove_recordings()
    return figures


def _figures_from(
    figures: LoadFigures,
    samples: list[Sample],
    events: list[dict[str, Any]],
    window_start: float,
    window_end: float,
) -> None:
    figures.samples = samples
    head, tail = samples[:3], samples[-3:]
    figures.rss_start_mb = _median([s.rss_mb for s in head])
    figures.rss_end_mb = _median([s.rss_mb for s in tail])
    figures.rss_max_mb = max(s.rss_mb for s in samples)
    figures.rss_growth_mb = round(figures.rss_end_mb - figures.rss_start_mb, 2)
    middle = len(samples) // 2
    figures.rss_mid_mb = _median([s.rss_mb for s in samples[max(0, middle - 1) : middle + 2]])
    figures.rss_late_growth_mb = round(figures.rss_end_mb - figures.rss_mid_mb, 2)
    figures.fds_start, figures.fds_end = samples[0].fds, samples[-1].fds
    figures.fds_max = max(s.fds for s in samples)
    figures.threads_start, figures.threads_end = samples[0].threads, samples[-1].threads
    figures.children_start, figures.children_end = samples[0].children, samples[-1].children
    span = samples[-1].at - samples[0].at
    if span > 0:
        figures.agent_cpu_percent = round((samples[-1].cpu_s - samples[0].cpu_s) / span * 100, 1)
    by_group: dict[str, list[float]] = {}
    for e in events:
        if e["type"] == "stats" and window_start <= e["at"] <= window_end:
            by_group.setdefault(e["group"], []).append(e["at"])
    for group, times in sorted(by_group.items()):
        edges = [window_start, *times, window_end]
        figures.stats_max_gap_s[group] = round(max(b - a for a, b in pairwise(edges)), 2)
        figures.stats_count[group] = len(times)
    for e in events:
        if e["type"] == "process.state" and e["new"] == "starting":
            name = e["name"].removeprefix("target:")
            figures.starts[name] = figures.starts.get(name, 0) + 1
        if e["type"] == "error":
            figures.errors.append(f"{e['source']}: {e['message']}")


def check(figures: LoadFigures) -> list[str]:
    """Every bound the run missed, in words (empty: it held)."""
    plan = LoadPlan(**figures.plan)
    missed = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            missed.append(what)

    need(
        figures.rss_max_mb <= RSS_MAX_MB,
        f"RSS reached {figures.rss_max_mb} MB (bound {RSS_MAX_MB} MB)",
    )
    need(
        figures.rss_late_growth_mb <= RSS_LATE_GROWTH_MB,
        f"RSS grew {figures.rss_late_growth_mb} MB in the second half of the window "
        f"(bound {RSS_LATE_GROWTH_MB} MB)",
    )
    need(
        abs(figures.fds_end - figures.fds_start) <= FD_DRIFT,
        f"open files went from {figures.fds_start} to {figures.fds_end}",
    )
    expected_children = figures.targets + 1 + 1  # the ingest and the encoder
    need(
        figures.children_start == figures.children_end == expected_children,
        f"children {figures.children_start} -> {figures.children_end}, "
        f"expected {expected_children}",
    )
    need(
        figures.targets_live_end == figures.targets,
        f"{figures.targets_live_end} of {figures.targets} targets live at the end",
    )
    for group in (f"g{i}" for i in range(1, figures.groups + 1)):
        gap = figures.stats_max_gap_s.get(group)
        need(
            gap is not None and gap <= STATS_MAX_GAP_S,
            f"stats of {group}: largest gap {gap} s (bound {STATS_MAX_GAP_S} s)",
        )
    need(
        figures.toggles_answered == plan.toggles * figures.storms,
        f"{figures.toggles_answered} of {plan.toggles * figures.storms} toggles answered",
    )
    need(
        figures.subscribers_connected == plan.subscribers,
        f"{figures.subscribers_connected} of {plan.subscribers} subscribers connected",
    )
    need(figures.subscriber_events_min > 0, "a reading subscriber received no event")
    for target, files in figures.received.items():
        if target == TOGGLED:
            continue
        need(len(files) == 1, f"{target} reconnected: {len(files)} recordings")
        for got in files:
            need(got["max_gap_s"] < NO_GAP_S, f"{target} has a {got['max_gap_s']} s hole")
            need(got["seconds"] >= plan.seconds, f"{target} received {got['seconds']} s")
        need(figures.starts.get(target, 0) == 0, f"{target} restarted during the run")
    need(figures.agent_exit_code == 0, f"the agent exited with {figures.agent_exit_code}")
    return missed

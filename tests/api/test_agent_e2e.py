"""A real running agent, driven only through its HTTP API and its WebSocket of events.

``python -m agent run --headless`` runs in a subprocess with its own config directory, a
forced API token and a private Secret Service for the stream keys. The test sets up the
ingest, a passthrough group and two custom targets over HTTP, publishes a clip into the
ingest like OBS, and follows the group from the WebSocket: live, stats, one target toggled
off and on again while the other keeps streaming, stopped. What the two fake platforms
received is checked with ffprobe; no answer, event or log line may hold a stream key; the
agent ends on SIGTERM with exit code 0 and leaves no FFmpeg behind.

A second test sends an action the moment ``/healthz`` first answers, before the agent has
found FFmpeg: it must be carried out, not refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from tests.keyring_session import SecretServiceSession
from tests.streams import (
    FakePlatform,
    Publisher,
    free_port,
    max_gap,
    probe,
    stream,
    video_packets,
    wait_listening,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-test-token-0123456789abcdef"
INGEST_KEY = "obs-ingest-key-e2e"
KEYS = {"alpha": "alpha-stream-key-5f3c9a", "beta": "beta-stream-key-7d21e4"}


@dataclass
class AgentProcess:
    """``python -m agent run --headless --port P`` in a subprocess, with its own config dir."""

    config_dir: Path
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--headless", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_healthy(self, session: aiohttp.ClientSession, timeout: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{self.base_url}/healthz") as answer:
                    if answer.status == 200:
                        return
            if loop.time() > deadline:
                raise TimeoutError(f"/healthz did not answer:\n{self.log()}")
            await asyncio.sleep(0.05)

    async def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL only if it hangs, and fail)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the agent did not end on SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def log_files(self) -> str:
        """Everything the agent logged: its output and its log directory."""
        texts = [self.log_path.read_text(errors="replace")]
        logs = self.config_dir / "logs"
        if logs.is_dir():
            texts += [p.read_text(errors="replace") for p in sorted(logs.rglob("*")) if p.is_file()]
        return "\n".join(texts)


@dataclass
class Client:
    """HTTP and WebSocket calls to the agent; every answer and event is kept for the key check."""

    session: aiohttp.ClientSession
    base_url: str
    seen: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, expect: int = 200
    ) -> Any:
        async with self.session.request(method, f"{self.base_url}{path}", json=body) as answer:
            text = await answer.text()
            self.seen.append(text)
            assert answer.status == expect, f"{method} {path}: {answer.status} {text}"
            return json.loads(text) if text else None

    async def listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.seen.append(msg.data)
                self.events.append(json.loads(msg.data))

    async def wait_event(
        self, check: Callable[[dict[str, Any]], bool], *, after: int = 0, timeout: float = 20.0
    ) -> int:
        """Wait for an event (from index ``after`` on) that ``check`` accepts; its index."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(after, len(self.events)):
                if check(self.events[index]):
                    return index
            if loop.time() > deadline:
                kinds = [(e.get("type"), e.get("target") or e.get("group"), e.get("state"))
                         for e in self.events[after:]]  # fmt: skip
                raise TimeoutError(f"no such event; got {kinds[-40:]}")
            await asyncio.sleep(0.05)


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def target_state(target: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "target.state" and e["target"] == target and e["state"] == state


def group_state(group: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == "group.state" and e["group"] == group and e["state"] == state


@pytest.fixture(scope="module")
def secret_service() -> Iterator[SecretServiceSession]:
    """A private, real Secret Service (dbus-daemon + gnome-keyring) for the agent's keys."""
    with SecretServiceSession() as session:
        yield session


@pytest.fixture
async def agent(
    tmp_path: Path, secret_service: SecretServiceSession
) -> AsyncIterator[AgentProcess]:
    config = tmp_path / "agent-config"
    config.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON_KEYRING_BACKEND",)}
    env.update(
        CASCADE_CONFIG_DIR=str(config),
        CASCADE_API_TOKEN=TOKEN,
        DBUS_SESSION_BUS_ADDRESS=secret_service.address,
    )
    env.pop("CASCADE_FFMPEG", None)
    process = AgentProcess(config, free_port(), env, tmp_path / "agent.log")
    process.start()
    try:
        yield process
    finally:
        process.kill()


async def test_a_running_agent_is_driven_through_http_and_the_websocket(
    agent: AgentProcess, ffmpeg_exe: str, relay_clip: Path, tmp_path: Path
) -> None:
    platforms = {
        name: FakePlatform(ffmpeg_exe, tmp_path / name, key=key) for name, key in KEYS.items()
    }
    for server in platforms.values():
        await server.start()
    alpha, beta = platforms["alpha"], platforms["beta"]
    ingest_port = free_port()
    publisher = Publisher(
        ffmpeg_exe, relay_clip, f"rtmp://127.0.0.1:{ingest_port}/live/{INGEST_KEY}"
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            await agent.wait_healthy(session)
            api = Client(session, agent.base_url)
            await drive(api, platforms, publisher, ingest_port)
        await publisher.stop()
        await wait_listening(ingest_port)  # the ingest's FFmpeg listens again: a child to check
        assert agent.proc is not None
        children = psutil.Process(agent.proc.pid).children(recursive=True)
        exit_code = await agent.terminate()
    finally:
        await publisher.stop()
        for server in platforms.values():
            await server.stop()

    assert exit_code == 0, agent.log()
    assert children, "the agent had no FFmpeg child (its ingest) to check"
    left = [p for p in children if alive(p)]
    assert not left, [p.cmdline() for p in left]

    # The other target kept streaming through the toggle: one session, no hole in it.
    assert len(alpha.sessions) == 1, "alpha reconnected"
    alpha_packets = video_packets(alpha.sessions[0])
    assert max_gap(alpha_packets) < 1.0, "alpha has a gap in its video"
    # The toggled target received again, from a keyframe.
    assert len(beta.sessions) == 2
    second = video_packets(beta.sessions[1])
    assert second and second[0][1], "the re-enabled target did not start at a keyframe"
    for server in (alpha, beta):
        for received in server.sessions:
            video = stream(probe(received), "video")
            assert video["codec_name"] == "h264"
            assert (video["width"], video["height"]) == (640, 360)
            assert len(video_packets(received)) >= 30, received

    everything = "\n".join(api.seen) + agent.log_files()
    for secret in (*KEYS.values(), INGEST_KEY):
        assert secret not in everything, "a stream key was shown"


async def drive(
    api: Client, platforms: dict[str, FakePlatform], publisher: Publisher, ingest_port: int
) -> None:
    """Everything the test does through the API, up to the group being stopped."""
    alpha, beta = platforms["alpha"], platforms["beta"]
    ingest = await api.call("PATCH", "/api/v1/ingest", {"port": ingest_port, "key": INGEST_KEY})
    assert ingest["port"] == ingest_port and ingest["has_key"] is True
    group = await api.call(
        "POST", "/api/v1/groups", {"id": "show", "name": "Show", "mode": "passthrough"}, expect=201
    )
    assert group["id"] == "show" and group["mode"] == "passthrough"
    for name, server in platforms.items():
        spec = {"id": name, "name": name.title(), "platform": "custom", "url": server.url}
        made = await api.call("POST", "/api/v1/groups/show/targets", spec, expect=201)
        assert made["has_key"] is False
        await api.call("PUT", f"/api/v1/targets/{name}/key", {"key": server.key}, expect=204)
        assert (await api.call("GET", f"/api/v1/targets/{name}"))["has_key"] is True

    ws_url = f"{api.base_url}/api/v1/events"
    async with api.session.ws_connect(ws_url) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        api.seen.append(json.dumps(hello))
        assert hello["type"] == "hello"
        show = next(g for g in hello["status"]["groups"] if g["id"] == "show")
        assert [t["id"] for t in show["targets"]] == ["alpha", "beta"]
        listener = asyncio.create_task(api.listen(ws))
        try:
            await wait_listening(ingest_port)
            await publisher.start()
            started = await api.call("POST", "/api/v1/groups/show/start")
            assert started["id"] == "show"
            await live_toggle_and_stop(api, alpha, beta)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


async def live_toggle_and_stop(api: Client, alpha: FakePlatform, beta: FakePlatform) -> None:
    await api.wait_event(group_state("show", "live"))
    alpha_live = await api.wait_event(target_state("alpha", "live"))
    await api.wait_event(target_state("beta", "live"))
    stats = await api.wait_event(
        lambda e: (
            e["type"] == "stats"
            and e["group"] == "show"
            and e["stats"]["targets_live"] == 2
            and e["stats"]["bitrate_kbps"] > 0
        )
    )
    assert {t["id"] for t in api.events[stats]["stats"]["targets"]} == {"alpha", "beta"}
    assert api.events[stats]["ingest"]["bitrate_kbps"] > 0  # what OBS sends, measured live

    mark = len(api.events)
    off = await api.call("POST", "/api/v1/targets/beta/toggle")
    assert off["id"] == "beta" and off["enabled"] is False and off["state"] == "disabled"
    await api.wait_event(target_state("beta", "disabled"), after=mark)
    await beta.wait_sessions(1)
    await asyncio.sleep(1.0)
    assert alpha.connected, "alpha's connection ended with beta's"

    mark = len(api.events)
    on = await api.call("POST", "/api/v1/targets/beta/toggle")
    assert on["id"] == "beta" and on["enabled"] is True
    await api.wait_event(target_state("beta", "live"), after=mark)
    await api.wait_event(
        lambda e: (
            e["type"] == "stats"
            and any(
                t["id"] == "beta" and (t["bitrate_kbps"] or 0) > 0 for t in e["stats"]["targets"]
            )
        ),
        after=mark,
    )

    mark = len(api.events)
    stopped = await api.call("POST", "/api/v1/groups/show/stop")
    assert stopped["id"] == "show" and stopped["live"] is False
    await api.wait_event(group_state("show", "idle"), after=mark)
    await alpha.wait_sessions(1)
    await beta.wait_sessions(2)

    # alpha went live once and stayed so until the group stopped.
    alpha_states = [
        e["state"]
        for e in api.events[alpha_live + 1 : mark]
        if e["type"] == "target.state" and e["target"] == "alpha"
    ]
    assert alpha_states == [], alpha_states
    starts = [
        e
        for e in api.events
        if e["type"] == "process.state" and e["name"] == "target:alpha" and e["new"] == "starting"
    ]
    assert len(starts) == 1, starts


async def test_an_action_sent_as_soon_as_healthz_answers_waits_for_the_agent_to_start(
    agent: AgentProcess,
) -> None:
    """The API answers before the agent has found FFmpeg and started its ingest (so /healthz
    is quick); an action arriving in that moment is carried out once the agent is ready,
    never refused with "FFmpeg is not available"."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:  # no pause between tries: the action follows the first answer at once
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{agent.base_url}/healthz") as answer:
                    if answer.status == 200:
                        break
            assert loop.time() < deadline, agent.log()
            await asyncio.sleep(0)
        api = Client(session, agent.base_url)
        started = await api.call("POST", "/api/v1/groups/main/start")
        assert started["id"] == "main" and started["state"] == "waiting", started
        status = await api.call("GET", "/api/v1/status")
        assert status["problem"] == "", status
    assert await agent.terminate() == 0, agent.log()

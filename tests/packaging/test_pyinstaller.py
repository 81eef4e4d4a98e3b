"""The Linux app that ``build/build.py`` makes with PyInstaller, doing real work.

The app is built once per session (the ``frozen_app`` fixture). Each test runs the frozen
executable the way a person would, from a folder outside the source tree, with its own config
directory: ``--version``; ``doctor``, which must name the FFmpeg inside the app folder and the
Secret Service (keyring's backends survived freezing); a headless relay from a publisher
through the frozen agent to a local RTMP server, whose recording ffprobe then reads; the
library path the agent's children inherit; and the tray, docked on a virtual X display
(pystray's backends survived freezing).

Needs what the rest of the suite needs (Debian's ffmpeg for ffprobe, dbus and gnome-keyring,
xvfb and trayer) plus ``pyinstaller`` from the test extras; missing, the tests fail saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

import agent
from agent.api.token import TOKEN_ENV
from agent.core.model import IngestSettings, Profile
from agent.store.profiles import ProfileStore
from scripts.tray_screenshots import XSession, XSessionError
from tests.agent_process import AgentProcess
from tests.keyring_session import SecretServiceSession
from tests.streams import (
    FakePlatform,
    Publisher,
    free_port,
    probe,
    stream,
    video_packets,
    wait_listening,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "frozen-app-test-token-6f0d2c81a9"
INGEST_KEY = "frozen-ingest-key-4c1e77"
TARGET_KEY = "frozen-target-key-9ab2d3"
WAIT = 20.0


class FrozenAgent(AgentProcess):
    """``<app>/cascade run --headless --port P``: an :class:`AgentProcess` running the frozen
    executable instead of ``python -m agent``, from its config directory."""

    def __init__(self, command: Path, config_dir: Path, **kwargs: Any) -> None:
        super().__init__(config_dir, **kwargs)
        self.command = command

    def start(self) -> FrozenAgent:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(self.command), "run", "--headless", "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=self.config_dir,
            env=self.env,
        )
        try:
            self.wait_healthy()
        except BaseException:
            self.kill()
            raise
        return self

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        found: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return found


def write_profile(config_dir: Path, ingest_port: int) -> None:
    """An active profile whose ingest listens on ``ingest_port`` (not the default 1935, which
    something else on the machine may hold)."""
    store = ProfileStore(config_dir)
    store.save(Profile(name="frozen", ingest=IngestSettings(port=ingest_port, key=INGEST_KEY)))
    store.use("frozen")


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def listeners(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The FFmpeg processes among ``processes`` that listen for a publisher (the ingest)."""
    found = []
    for process in processes:
        try:
            if "-listen" in process.cmdline():
                found.append(process)
        except psutil.NoSuchProcess:  # a short probe run that has just ended
            pass
    return found


def wait_until(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_the_frozen_command_says_the_package_version(frozen_app: Any, tmp_path: Path) -> None:
    answer = subprocess.run(
        [str(frozen_app.command), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == f"cascade {agent.__version__}"


def test_the_app_folder_holds_ffmpeg_the_dashboard_and_the_artwork(frozen_app: Any) -> None:
    internal = Path(frozen_app.app) / "_internal"
    [ffmpeg] = (internal / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*")
    assert os.access(ffmpeg, os.X_OK)
    assert (internal / "agent" / "dashboard" / "static" / "index.html").is_file()
    assert (internal / "agent" / "tray" / "cascade.json").is_file()


def test_doctor_names_the_bundled_ffmpeg_and_the_secret_service(
    frozen_app: Any, secret_service: SecretServiceSession, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CASCADE_CONFIG_DIR": str(tmp_path / "config"),
        "DBUS_SESSION_BUS_ADDRESS": secret_service.address,
    }
    env.pop("PYTHON_KEYRING_BACKEND", None)
    answer = subprocess.run(
        [str(frozen_app.command), "doctor", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    lines = answer.stdout.splitlines()
    assert lines[0] == f"Cascade {agent.__version__}"
    [ffmpeg] = [line for line in lines if line.startswith("FFmpeg: ")]
    bundled = Path(frozen_app.app) / "_internal" / "imageio_ffmpeg" / "binaries"
    assert f" at {bundled}{os.sep}ffmpeg-" in ffmpeg, ffmpeg
    [secrets] = [line for line in lines if line.startswith("Secret store: ")]
    assert "keyring.backends.SecretService.Keyring" in secrets, secrets


async def test_a_stream_relays_through_the_frozen_agent(
    frozen_app: Any,
    secret_service: SecretServiceSession,
    ffmpeg_exe: str,
    relay_clip: Path,
    tmp_path: Path,
) -> None:
    platform = FakePlatform(ffmpeg_exe, tmp_path / "platform", key=TARGET_KEY)
    ingest_port = free_port()
    publisher = Publisher(
        ffmpeg_exe, relay_clip, f"rtmp://127.0.0.1:{ingest_port}/live/{INGEST_KEY}"
    )
    frozen = FrozenAgent(
        frozen_app.command,
        tmp_path / "config",
        token=TOKEN,
        env={"DBUS_SESSION_BUS_ADDRESS": secret_service.address},
    )
    frozen.env.pop("PYTHON_KEYRING_BACKEND", None)
    await platform.start()
    try:
        await asyncio.to_thread(frozen.start)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(frozen.url, headers=headers) as http:
            async with http.get("/") as page:  # the dashboard, from the app folder
                assert page.status == 200
                assert "<title>Cascade</title>" in await page.text()
            await relay(http, platform, publisher, ingest_port)
        children = frozen.children()
        exit_code = await asyncio.to_thread(frozen.stop)
    finally:
        await publisher.stop()
        await platform.stop()
        frozen.kill()

    assert exit_code == 0, frozen.stderr_tail()
    assert children, "the frozen agent had no FFmpeg child to check"
    assert not [p for p in children if alive(p)], "an FFmpeg child outlived the agent"
    [received] = platform.sessions
    video = stream(probe(received), "video")
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (640, 360)
    assert len(video_packets(received)) >= 60, "under two seconds of video arrived"
    logs = frozen.stderr_tail(1_000_000)
    assert TARGET_KEY not in logs and INGEST_KEY not in logs


async def relay(
    http: aiohttp.ClientSession, platform: FakePlatform, publisher: Publisher, ingest_port: int
) -> None:
    """Set up the ingest and a custom target (its key into the Secret Service) through the
    API, publish, go live, let it run, stop the group."""

    async def call(method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with http.request(method, path, json=body) as answer:
            text = await answer.text()
            assert answer.status == expect, f"{method} {path}: {answer.status} {text}"
            return json.loads(text) if text else None

    await call("PATCH", "/api/v1/ingest", {"port": ingest_port, "key": INGEST_KEY})
    group = {"id": "show", "name": "Show", "mode": "passthrough"}
    await call("POST", "/api/v1/groups", group, expect=201)
    target = {"id": "platform", "name": "Platform", "platform": "custom", "url": platform.url}
    await call("POST", "/api/v1/groups/show/targets", target, expect=201)
    await call("PUT", "/api/v1/targets/platform/key", {"key": TARGET_KEY}, expect=204)
    assert (await call("GET", "/api/v1/targets/platform"))["has_key"] is True

    await wait_listening(ingest_port)
    await publisher.start()
    await call("POST", "/api/v1/groups/show/start")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while (state := (await call("GET", "/api/v1/targets/platform"))["state"]) != "live":
        assert loop.time() < deadline, f"the target stayed {state!r}"
        await asyncio.sleep(0.1)
    await asyncio.sleep(4.0)  # about 120 frames reach the platform
    await call("POST", "/api/v1/groups/show/stop")
    await platform.wait_sessions(1)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("/cascade-test/lib", id="the-persons-own"),
        pytest.param(None, id="none"),
    ],
)
def test_children_inherit_the_persons_library_path_not_the_apps(
    frozen_app: Any, tmp_path: Path, given: str | None
) -> None:
    config = tmp_path / "config"
    write_profile(config, free_port())
    frozen = FrozenAgent(frozen_app.command, config)
    frozen.env.pop("LD_LIBRARY_PATH", None)
    if given is not None:
        frozen.env["LD_LIBRARY_PATH"] = given
    with frozen:
        [ingest] = wait_until("the ingest's FFmpeg", lambda: listeners(frozen.children()))
        inherited = ingest.environ()
    assert inherited.get("LD_LIBRARY_PATH") == given
    assert "LD_LIBRARY_PATH_ORIG" not in inherited


def test_the_frozen_tray_docks_on_an_x_display(frozen_app: Any, tmp_path: Path) -> None:
    session = XSession()
    try:
        session.start()
    except XSessionError as exc:
        pytest.fail(str(exc))
    config = tmp_path / "config"
    write_profile(config, free_port())
    port = free_port()
    env = {
        **os.environ,
        "DISPLAY": session.name,
        "CASCADE_CONFIG_DIR": str(config),
        TOKEN_ENV: TOKEN,
    }
    for name in ("PYSTRAY_BACKEND", "WAYLAND_DISPLAY"):
        env.pop(name, None)  # pystray picks its backend itself, as for a person
    log = config / "logs" / "cascade.log"
    with (tmp_path / "stderr.log").open("wb") as stderr:
        proc = subprocess.Popen(
            [str(frozen_app.command), "run", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=config,
            env=env,
        )

    def said() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    try:
        wait_until("the tray icon", lambda: "tray icon shown" in said())
        # Without PyGObject in the build, pystray falls back to its X11 backend.
        assert "tray icon shown (xorg backend)" in said(), said()[-2000:]
        icons = wait_until("the docked icon", lambda: [i for i in session.icons() if i.docked])
        assert len(icons) == 1, icons
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0, (tmp_path / "stderr.log").read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        session.stop()

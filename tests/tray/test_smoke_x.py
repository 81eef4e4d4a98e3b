"""``cascade run`` with its tray under a real X display: Xvfb, with trayer as the system tray.

The agent runs as a child process, not headless, with pystray's ``xorg`` backend (the one it
falls back to on Linux without PyGObject; its icon is an X window that docks into any XEmbed
tray). The test looks at the X window tree for the icon, drives the agent through its API with
a publisher streaming, starts a second ``cascade run``, then quits with SIGTERM and checks that
every FFmpeg child is gone and the recording is whole.

Needs Debian's ``xvfb`` and ``trayer`` (``.ci/run`` installs them): without them the tests fail
saying so; they are never skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image

from agent.api.client import ApiClient
from agent.api.token import TOKEN_ENV
from agent.core.model import Group, IngestSettings, Platform, Profile, Target
from agent.store.profiles import ProfileStore
from agent.tray.icons import STATES
from scripts.tray_screenshots import XSession, XSessionError, find_icons
from tests.streams import Publisher, free_port, require_ffprobe

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tray-smoke-token-52e7c0a9d1f3"
INGEST_KEY = "smoke-ingest-key"
WAIT = 20.0


@pytest.fixture
def x_display() -> Iterator[XSession]:
    """A virtual X display with a system tray on it; fails (never skips) without them."""
    session = XSession()
    try:
        session.start()
    except XSessionError as exc:
        pytest.fail(str(exc))
    try:
        yield session
    finally:
        session.stop()


def wait_until(what: str, ok: Any, *, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = ok()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(json.loads(answer.read()).get("ok"))
    except OSError:
        return False


def frames(path: Path) -> int:
    """Video frames in a media file, as ffprobe counts them."""
    out = subprocess.run(
        [require_ffprobe(), "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    return int(out or 0)


class TrayAgent:
    """``python -m agent run --port P`` (with its tray) on the test's X display, profile
    ``studio`` (group ``main``: target ``rec`` recording into ``recordings``)."""

    def __init__(self, x_display: XSession, config_dir: Path, tmp_path: Path) -> None:
        self.x = x_display
        self.recordings = tmp_path / "recordings"
        self.ingest_port = free_port()
        store = ProfileStore(config_dir)
        store.save(
            Profile(
                name="studio",
                ingest=IngestSettings(port=self.ingest_port, key=INGEST_KEY),
                groups=[
                    Group(
                        id="main",
                        targets=[
                            Target(
                                id="rec", platform=Platform.RECORDING, url=f"{self.recordings}/"
                            ),
                        ],
                    )
                ],
            )
        )
        store.use("studio")
        self.port = free_port()
        self.env = {
            **os.environ,
            "DISPLAY": x_display.name,
            "PYSTRAY_BACKEND": "xorg",
            "CASCADE_CONFIG_DIR": str(config_dir),
            TOKEN_ENV: TOKEN,
        }
        self.env.pop("WAYLAND_DISPLAY", None)
        self.argv = [
            sys.executable, "-X", "faulthandler", "-m", "agent", "run", "--port", str(self.port)
        ]  # fmt: skip
        self.log = config_dir / "logs" / "cascade.log"
        self.stderr_path = tmp_path / "agent-stderr.log"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait(self, what: str, ok: Any) -> Any:
        return wait_until(what, ok, proc=self.proc)

    def wait_docked(self) -> Any:
        """The agent answers, says its icon is shown, and the icon is docked in the tray."""
        self.wait("/healthz", lambda: healthy(self.port))
        self.wait("'tray icon shown' in the log", lambda: "tray icon shown" in self.said())
        assert "tray icon shown (xorg backend)" in self.said()
        assert "running without a tray icon" not in self.said()
        icons = self.wait("the docked icon", lambda: [i for i in self.x.icons() if i.docked])
        assert len(icons) == 1, icons
        return icons[0]

    def quit(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(WAIT)

    def debug(self) -> None:
        """On failure: where every thread of the agent is (faulthandler), the X windows."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(WAIT)
        tree = [(i.name, i.docked, i.width, i.height) for i in find_icons(self.x.display(), "")]
        print("X windows:", tree, "\nagent log:", self.said()[-3000:], file=sys.stderr)
        print(self.stderr_path.read_text(errors="replace")[-6000:], file=sys.stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def tray_agent(x_display: XSession, config_dir: Path, tmp_path: Path) -> Iterator[TrayAgent]:
    agent = TrayAgent(x_display, config_dir, tmp_path)
    try:
        yield agent
    finally:
        if agent.proc.poll() is None:  # the test failed before it quit: show why
            agent.debug()
        agent.close()


def test_cascade_run_shows_its_tray_icon_and_quits_cleanly(
    tray_agent: TrayAgent, ffmpeg_exe: str, relay_clip: Path
) -> None:
    agent = tray_agent
    # The icon: pystray's window, named after the tooltip, docked into the tray.
    icon = agent.wait_docked()
    assert icon.name.startswith("Cascade - ")
    assert icon.width >= 16 and icon.height >= 16

    # Streaming: the icon follows the core's state.
    client = ApiClient(f"http://127.0.0.1:{agent.port}", TOKEN)
    client.post("/api/v1/groups/main/start")
    url = f"rtmp://127.0.0.1:{agent.ingest_port}/live/{INGEST_KEY}"
    publisher = subprocess.Popen(
        Publisher(ffmpeg_exe, relay_clip, url).argv,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def live() -> bool:
            target = client.get("/api/v1/status")["groups"][0]["targets"][0]
            return bool(target["state"] == "live" and (target["frames"] or 0) > 30)

        agent.wait("the recording target live", live)
        agent.wait(
            "the icon's tooltip to say Live",
            lambda: [i for i in agent.x.icons() if i.name == "Cascade - Live - 1 of 1 targets"],
        )
        children = psutil.Process(agent.proc.pid).children(recursive=True)
        names = [c.name() for c in children]
        assert sum("ffmpeg" in n for n in names) >= 2, names  # the ingest and the recording

        # A second cascade run asks this one to show itself and exits 0.
        second = subprocess.run(
            agent.argv,
            cwd=ROOT,
            env=agent.env,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout and "asked to show itself" in second.stdout
        assert second.stdout.count("\n") == 1, second.stdout
        assert agent.proc.poll() is None

        # Quit: SIGTERM, exit code 0, no FFmpeg child left, no icon left.
        code = agent.quit(signal.SIGTERM)
        assert code == 0, agent.said()[-3000:]
        left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert left == [], left
        assert agent.x.icons() == [], "the icon outlived the agent"
    finally:
        publisher.kill()
        publisher.wait()

    assert "stopping" in agent.said() and "agent stopped" in agent.said()
    recorded = sorted(agent.recordings.iterdir())
    assert len(recorded) == 1, recorded
    assert frames(recorded[0]) > 30


def test_an_idle_agent_stops_on_logout(tray_agent: TrayAgent) -> None:
    """SIGHUP (logout) while nothing happens on the display: the tray's loop waits in C for
    an X event that never comes, yet the agent stops at once, cleanly."""
    agent = tray_agent
    agent.wait_docked()
    agent.wait("the ingest listening", lambda: "ingest: STARTING -> RUNNING" in agent.said())
    children = psutil.Process(agent.proc.pid).children(recursive=True)
    assert children, "no FFmpeg child (the ingest) to check"
    assert agent.quit(signal.SIGHUP) == 0, agent.said()[-3000:]
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert agent.x.icons() == []


def test_the_display_dying_while_live_stops_every_output_cleanly(
    tray_agent: TrayAgent, ffmpeg_exe: str, relay_clip: Path
) -> None:
    """The tray backend fails (its X server is killed) while a group records: the agent
    stops every FFmpeg child, finishes the recording and exits; the core never hangs on an
    icon update that cannot be answered any more."""
    agent = tray_agent
    agent.wait_docked()
    client = ApiClient(f"http://127.0.0.1:{agent.port}", TOKEN)
    client.post("/api/v1/groups/main/start")
    url = f"rtmp://127.0.0.1:{agent.ingest_port}/live/{INGEST_KEY}"
    publisher = subprocess.Popen(
        Publisher(ffmpeg_exe, relay_clip, url).argv,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def live() -> bool:
            target = client.get("/api/v1/status")["groups"][0]["targets"][0]
            return bool(target["state"] == "live" and (target["frames"] or 0) > 30)

        agent.wait("the recording target live", live)
        children = psutil.Process(agent.proc.pid).children(recursive=True)
        assert sum("ffmpeg" in c.name() for c in children) >= 2
        agent.x.kill_server()
        code = agent.proc.wait(WAIT)
        left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert left == [], left
    finally:
        publisher.kill()
        publisher.wait()
    said = agent.said()
    assert "the tray failed; stopping every output" in said, said[-3000:]
    assert "agent stopped" in said
    assert code == 1, f"exit code {code}: a failed tray is reported as a failure"
    recorded = sorted(agent.recordings.iterdir())
    assert len(recorded) == 1 and frames(recorded[0]) > 30, recorded


def test_the_screenshot_script_grabs_every_state(tmp_path: Path) -> None:
    """scripts/tray_screenshots.py: one picture of the tray per state, all different, and a
    contact sheet (it starts its own Xvfb and tray)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYSTRAY_BACKEND")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tray_screenshots.py"), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pictures = {}
    for state in STATES:
        with Image.open(tmp_path / f"tray-{state}.png") as image:
            assert image.width >= 16 and image.height >= 16
            pictures[state] = image.tobytes()
    assert len(set(pictures.values())) == len(STATES), "two states look the same in the tray"
    with Image.open(tmp_path / "contact-sheet.png") as sheet:
        assert sheet.height > 5 * 24

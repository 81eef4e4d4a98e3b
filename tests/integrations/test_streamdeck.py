"""The Stream Deck plugin (``integrations/streamdeck``): its ``node --test`` suite against a
real running agent, and its images against the script that draws them.

The agent runs ``cascade run --headless`` with a profile of two groups (``main`` "Main":
recording ``rec``; ``backup``: recording ``rec2`` and custom ``site``, which points at a closed
port) and a publisher streaming a looped clip into its ingest, so a started group truly goes
live. The node suite then drives the real ``bin/plugin.js`` through a Stream Deck stand-in
(see ``integrations/streamdeck/test/helpers.js``): every action changes the agent's state, the
keys follow the agent's WebSocket events, an agent that cannot be reached shows "offline" and
alerts, and ``manifest.json`` holds every field the SDK requires.

The property inspector page runs in Debian's Chromium (driven by Playwright, with Stream
Deck's WebSocket played by a route): it lists what the plugin sends, saves the key's choice,
hands the URL and token to the plugin, and talks to nothing but Stream Deck.

Needs Node.js 18 or newer on PATH (Debian's ``nodejs``; ``.ci/run`` installs it where the
machine has none) and Debian's ``chromium``: without them the tests fail saying so; they are
never skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops
from playwright.sync_api import Page, WebSocketRoute, sync_playwright

from agent.core.model import Group, IngestSettings, Platform, Profile, Target
from agent.store.profiles import ProfileStore
from tests.agent_process import AgentProcess
from tests.streams import free_port, is_listening

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STREAMDECK = ROOT / "integrations" / "streamdeck"
PLUGIN = STREAMDECK / "io.cascade.relay.sdPlugin"
NODE_TESTS = sorted((STREAMDECK / "test").glob("*.test.js"))
TOKEN = "streamdeck-plugin-token-7d41c9e2b8a6"
INGEST_KEY = "deck-ingest-key"
WAIT = 20.0
CHROMIUM = Path("/usr/bin/chromium")
DECK_PORT = 28196  # any port: the page's WebSocket to Stream Deck is answered by a route


@pytest.fixture(scope="module")
def node() -> str:
    """``node`` from PATH, version 18 or newer; the test fails (never skips) without it."""
    found = shutil.which("node")
    if found is None:
        pytest.fail(
            "Node.js is missing: the Stream Deck plugin's tests run on it. Install Debian's "
            "nodejs package (apt-get install nodejs); .ci/run does this where node is absent"
        )
    version = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    major = int(re.match(r"v(\d+)", version).group(1))  # type: ignore[union-attr]
    assert major >= 18, f"Node.js {version} is too old: the plugin's tests need 18 or newer"
    return found


def call(agent: AgentProcess, path: str) -> Any:
    request = urllib.request.Request(
        f"{agent.url}/api/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_until(what: str, ok: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = ok()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str, relay_clip: Path
) -> Iterator[AgentProcess]:
    """A running agent with the profile the node suite expects, and OBS-like input."""
    config_dir = tmp_path_factory.mktemp("deck-agent")
    recordings = tmp_path_factory.mktemp("deck-recordings")
    ingest_port = free_port()
    closed_port = free_port()
    store = ProfileStore(config_dir)
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=ingest_port, key=INGEST_KEY),
            groups=[
                Group(
                    id="main",
                    name="Main",
                    targets=[
                        Target(id="rec", platform=Platform.RECORDING, url=f"{recordings}/main/")
                    ],
                ),
                Group(
                    id="backup",
                    targets=[
                        Target(id="rec2", platform=Platform.RECORDING, url=f"{recordings}/b/"),
                        Target(id="site", url=f"rtmp://127.0.0.1:{closed_port}/live"),
                    ],
                ),
            ],
        )
    )
    store.use("studio")
    with AgentProcess(config_dir, token=TOKEN) as running:
        wait_until("the ingest listening", lambda: is_listening(ingest_port))
        publisher = subprocess.Popen(
            [ffmpeg_exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
             "-stream_loop", "-1", "-i", str(relay_clip), "-c", "copy", "-f", "flv",
             f"rtmp://127.0.0.1:{ingest_port}/live/{INGEST_KEY}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(
                "the ingest receiving the publisher",
                lambda: call(running, "/status")["ingest"]["state"] == "receiving",
            )
            yield running
        finally:
            publisher.kill()
            publisher.wait()


def run_node(node: str, env: dict[str, str], files: list[Path]) -> tuple[int, str, dict[str, int]]:
    """``node --test`` with the TAP reporter; its exit code, output and summary counts."""
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", *map(str, files)],
        cwd=STREAMDECK,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    output = result.stdout + result.stderr
    summary = {
        name: int(count)
        for name, count in re.findall(
            r"^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M
        )
    }
    return result.returncode, output, summary


def declared_tests(files: list[Path]) -> int:
    """How many ``test(...)`` the files declare (each one is run exactly once)."""
    return sum(
        len(re.findall(r"^\s*test\(", path.read_text(encoding="utf-8"), re.M)) for path in files
    )


def node_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_AGENT_")}
    env.update(NO_COLOR="1", **extra)
    return env


def test_the_plugin_node_suite_passes_against_a_running_agent(
    node: str, agent: AgentProcess
) -> None:
    assert NODE_TESTS, "no integrations/streamdeck/test/*.test.js"
    env = node_env(CASCADE_AGENT_URL=agent.url, CASCADE_AGENT_TOKEN=TOKEN)
    code, output, summary = run_node(node, env, NODE_TESTS)

    assert code == 0, output[-12000:]
    expected = declared_tests(NODE_TESTS)
    assert summary.get("tests") == expected, (summary, expected, output[-4000:])
    assert summary.get("pass") == expected, summary
    for kind in ("fail", "cancelled", "skipped", "todo"):
        assert summary.get(kind) == 0, (kind, summary)
    assert TOKEN not in output, "the token was printed"


def test_the_node_suite_fails_without_an_agent_to_test_against(node: str) -> None:
    files = [STREAMDECK / "test" / "agent.test.js"]
    code, output, summary = run_node(node, node_env(), files)

    assert code != 0, output[-4000:]
    # Every test that needs the agent fails (none is skipped); the rest still pass.
    assert summary.get("fail", 0) >= 8, summary
    assert summary.get("fail", 0) + summary.get("pass", 0) == declared_tests(files), summary
    assert summary.get("skipped") == summary.get("todo") == 0, summary
    assert "CASCADE_AGENT_URL and CASCADE_AGENT_TOKEN must name a running Cascade agent" in output


def test_the_committed_images_are_what_make_images_draws(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(STREAMDECK / "make_images.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    drawn = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    committed = sorted(p.relative_to(PLUGIN) for p in PLUGIN.rglob("*.png"))
    assert drawn == committed
    for name in drawn:
        with Image.open(tmp_path / name) as fresh, Image.open(PLUGIN / name) as kept:
            assert fresh.size == kept.size, name
            difference = ImageChops.difference(fresh.convert("RGBA"), kept.convert("RGBA"))
            assert difference.getbbox() is None, f"{name} differs from make_images.py's drawing"


# -- the property inspector in a browser ----------------------------------------------------


@pytest.fixture
def page() -> Iterator[Page]:
    """A page in Debian's Chromium; the test fails (never skips) without it."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing: the property inspector is tested in it "
            "(apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser.new_page()
        finally:
            browser.close()


class StreamDeckRoute:
    """Stream Deck's side of the inspector's WebSocket: records what the page sends (and
    every URL the page requests, to show it reaches nothing else)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.socket: WebSocketRoute | None = None
        page.on("request", lambda request: self.requests.append(request.url))
        page.route_web_socket(f"ws://127.0.0.1:{DECK_PORT}/", self._connect)

    def _connect(self, socket: WebSocketRoute) -> None:
        self.socket = socket
        socket.on_message(lambda message: self.sent.append(json.loads(message)))

    def wait(self, what: str, match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for message in self.sent:
                if match(message):
                    return message
            self.page.wait_for_timeout(20)
        raise AssertionError(f"the page never sent {what}; it sent {self.sent}")

    def to_page(self, message: dict[str, Any]) -> None:
        assert self.socket is not None
        self.socket.send(json.dumps(message))


def choices(**change: Any) -> dict[str, Any]:
    payload = {
        "type": "choices",
        "agentUrl": "http://127.0.0.1:47830",
        "hasToken": False,
        "version": "0.1.0",
        "error": None,
        "groups": [{"id": "main", "name": "Main", "state": "idle"}],
        "targets": [{"id": "rec", "group": "main", "state": "idle"}],
    }
    return {"event": "sendToPropertyInspector", "context": "KEY", "payload": payload | change}


def open_inspector(page: Page, action: str, settings: dict[str, str]) -> StreamDeckRoute:
    deck = StreamDeckRoute(page)
    page.goto((PLUGIN / "ui" / "inspector.html").as_uri())
    about = {"action": action, "context": "KEY", "payload": {"settings": settings}}
    page.evaluate(
        "([port, about]) => connectElgatoStreamDeckSocket(port, 'KEY', "
        "'registerPropertyInspector', '{}', about)",
        [DECK_PORT, json.dumps(about)],
    )
    deck.wait(
        "its registration", lambda m: m == {"event": "registerPropertyInspector", "uuid": "KEY"}
    )
    return deck


def test_the_inspector_lists_the_agents_groups_from_the_plugin_and_saves_the_choice(
    page: Page,
) -> None:
    deck = open_inspector(page, "io.cascade.relay.toggle-group", {"group": "gone"})
    asked = deck.wait("a refresh request", lambda m: m.get("event") == "sendToPlugin")
    assert asked == {
        "action": "io.cascade.relay.toggle-group",
        "event": "sendToPlugin",
        "context": "KEY",
        "payload": {"request": "refresh"},
    }
    deck.to_page(
        choices(groups=[{"id": "main", "name": "Main"}, {"id": "backup", "name": "backup"}])
    )
    page.wait_for_function("document.querySelectorAll('#group option').length === 4")
    options = page.eval_on_selector_all("#group option", "os => os.map(o => [o.value, o.text])")
    assert options == [
        ["", "choose…"],
        ["main", "Main (main)"],
        ["backup", "backup"],
        ["gone", "gone (not found)"],
    ]
    assert page.input_value("#group") == "gone"
    assert page.is_visible("#group") and not page.is_visible("#target")
    assert page.input_value("#agent-url") == "http://127.0.0.1:47830"
    assert page.text_content("#message") == "Connected to Cascade 0.1.0"

    page.select_option("#group", "backup")
    saved = deck.wait("the key's new settings", lambda m: m.get("event") == "setSettings")
    assert saved == {
        "action": "io.cascade.relay.toggle-group",
        "event": "setSettings",
        "context": "KEY",
        "payload": {"group": "backup"},
    }
    assert deck.requests and all(url.startswith("file:") for url in deck.requests), deck.requests


def test_the_inspector_hands_url_and_token_to_the_plugin_and_shows_its_answer(
    page: Page,
) -> None:
    deck = open_inspector(page, "io.cascade.relay.toggle-target", {"target": "rec"})
    deck.wait("a refresh request", lambda m: m.get("event") == "sendToPlugin")
    deck.to_page(choices(hasToken=True))
    page.wait_for_function("document.querySelector('#target').value === 'rec'")
    assert page.is_visible("#target") and not page.is_visible("#group")
    assert page.get_attribute("#token", "placeholder") == "saved (type to replace)"
    assert page.input_value("#token") == "", "a saved token is never shown"

    page.fill("#agent-url", "http://127.0.0.1:5000")
    page.fill("#token", "a-new-token-from-cascade-token")
    page.click("#save")
    sent = deck.wait(
        "the connect request", lambda m: m.get("payload", {}).get("request") == "connect"
    )
    assert sent["payload"] == {
        "request": "connect",
        "agentUrl": "http://127.0.0.1:5000",
        "token": "a-new-token-from-cascade-token",
    }
    assert page.input_value("#token") == "", "the typed token is cleared at once"

    deck.to_page(choices(error="Cascade is not reachable at http://127.0.0.1:5000"))
    page.wait_for_function("document.querySelector('#message').classList.contains('error')")
    assert "not reachable" in (page.text_content("#message") or "")
    assert deck.requests and all(url.startswith("file:") for url in deck.requests), deck.requests

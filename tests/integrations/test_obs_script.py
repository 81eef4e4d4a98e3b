"""The OBS script (``integrations/obs/cascade_obs.py``) against a real running agent.

OBS is played by :class:`~tests.integrations.obspython_stub.FakeObs`: it loads the script the
way OBS does, builds its properties, presses its buttons, sends frontend events and ticks its
timers, and records everything the script asks of OBS. The agent is a real ``cascade run
--headless`` (:class:`~tests.agent_process.AgentProcess`) with profile ``studio``::

    main     passthrough   main-rec    recording
    720p     reencode      720p-rec    recording
    backup   passthrough   backup-rec  recording
    yt       passthrough   youtube     YouTube, no stream key set (Cascade refuses to start it)

Every test ends by checking OBS's rules: no call from the script took more than
:data:`OBS_BUDGET_S` on OBS's thread, the script called OBS only from OBS's threads, gave
OBS only plain functions as callbacks, released every ``obs_data`` it created, and its worker
thread ended once the script was unloaded.
"""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent.core.model import (
    Group,
    GroupMode,
    IngestSettings,
    Platform,
    Profile,
    Target,
    VideoSettings,
)
from agent.store.profiles import ProfileStore
from tests.agent_process import AgentProcess
from tests.integrations.obspython_stub import FakeObs, Property
from tests.streams import Publisher, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "integrations" / "obs" / "cascade_obs.py"
TOKEN = "obs-script-token-6d1f0b8e2a4c97"
WRONG_TOKEN = "not-the-token-0123456789abcdef"
INGEST_KEY = "obs-ingest-key"
OBS_BUDGET_S = 0.05  # the longest any call into the script may keep OBS's thread
POLL_S = 2.5  # a little over the script's status poll interval while connected
GROUPS = ("main", "720p", "backup", "yt")
CACHED = json.dumps([{"id": "main", "name": "Main"}, {"id": "720p", "name": "720p copy"}])

STARTING = FakeObs.OBS_FRONTEND_EVENT_STREAMING_STARTING
STARTED = FakeObs.OBS_FRONTEND_EVENT_STREAMING_STARTED
STOPPING = FakeObs.OBS_FRONTEND_EVENT_STREAMING_STOPPING
STOPPED = FakeObs.OBS_FRONTEND_EVENT_STREAMING_STOPPED
SHUTDOWN = FakeObs.OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN


# -- fixtures -------------------------------------------------------------------------------


def watch_workers(obs: FakeObs) -> list[Any]:
    """The worker of every script ``obs`` loads from now on."""
    workers: list[Any] = []
    obs.on_load.append(lambda script: workers.append(script._cascade.worker))
    return workers


def assert_workers_end(workers: list[Any]) -> None:
    """Each worker thread ends on its own once its script is unloaded (after the request
    under way, if any, timed out); nothing had to wait for it."""
    for worker in workers:
        assert worker.finished.wait(20), "the script's worker outlived the script"


@pytest.fixture
def obs() -> Iterator[FakeObs]:
    """OBS for one test, with a fresh ``obspython`` and script module. At the end the script
    is unloaded and OBS's rules are checked."""
    fake = FakeObs()
    workers = watch_workers(fake)
    try:
        yield fake
        fake.unload()
        assert_workers_end(workers)
        assert_never_blocked(fake)
        assert fake.foreign_calls == [], fake.foreign_calls
        assert fake.ignored == [], f"OBS would ignore these callbacks: {fake.ignored}"
        assert fake.leaked_data() == [], "obs_data created and never released"
        assert fake.timers == [] and fake.event_callbacks == [], "left registered at unload"
    finally:
        fake.unload()
        sys.modules.pop("obspython", None)


def make_profile(config_dir: Path, recordings: Path, ingest_port: int) -> None:
    def recording(target_id: str) -> Target:
        return Target(id=target_id, platform=Platform.RECORDING, url=f"{recordings}/")

    store = ProfileStore(config_dir)
    store.save(
        Profile(
            name="studio",
            ingest=IngestSettings(port=ingest_port, key=INGEST_KEY),
            groups=[
                Group(id="main", name="Main", targets=[recording("main-rec")]),
                Group(
                    id="720p",
                    name="720p copy",
                    mode=GroupMode.REENCODE,
                    video=VideoSettings(height=720),
                    targets=[recording("720p-rec")],
                ),
                Group(id="backup", targets=[recording("backup-rec")]),
                Group(
                    id="yt",
                    name="YouTube",
                    targets=[Target(id="youtube", platform=Platform.YOUTUBE)],
                ),
            ],
        )
    )
    store.use("studio")


class Cascade:
    """The agent under test, with the profile above."""

    def __init__(self, tmp_path: Path, port: int | None = None) -> None:
        self.recordings = tmp_path / "recordings"
        self.ingest_port = free_port()
        self.config_dir = tmp_path / "config"
        make_profile(self.config_dir, self.recordings, self.ingest_port)
        self.process = AgentProcess(self.config_dir, port=port, token=TOKEN)

    @property
    def url(self) -> str:
        return self.process.url

    def groups(self) -> dict[str, dict[str, Any]]:
        status = self.process.client().get("/api/v1/status")
        return {g["id"]: g for g in status["groups"]}

    def states(self) -> dict[str, str]:
        return {gid: g["state"] for gid, g in self.groups().items()}


@pytest.fixture
def cascade(tmp_path: Path) -> Iterator[Cascade]:
    running = Cascade(tmp_path)
    with running.process:
        yield running


# -- helpers --------------------------------------------------------------------------------


def connect(obs: FakeObs, url: str, token: str = TOKEN, **values: Any) -> ModuleType:
    """Load the script set to ``url`` and wait until it has read the agent's groups."""
    script = obs.load(SCRIPT, {"url": url, "token": token, **values})
    obs.run_until("the script to reach Cascade", lambda: "Connected to Cascade" in obs.log_text())
    return script


def state_line(obs: FakeObs) -> str:
    prop = obs.properties()["cascade_state"]
    assert prop.kind == "text" and prop.text_type == obs.OBS_TEXT_INFO
    return prop.description


def assert_token_never_shown(obs: FakeObs, *tokens: str) -> None:
    """Neither the log, nor any text set on a property, nor a setting the script wrote."""
    shown = [obs.log_text(), obs.description, *obs.texts]
    if obs.view is not None:
        shown += [p.description for p in obs.view.walk()]
        shown += [p.long_description for p in obs.view.walk()]
        shown += [label for p in obs.view.walk() for label, _ in p.items]
    for token in tokens:
        assert not [text for text in shown if token in text], "the token was shown"


def assert_never_blocked(obs: FakeObs) -> None:
    """No call into the script (event, button, timer, properties, load, unload) kept OBS's
    thread longer than the budget."""
    assert obs.durations, "OBS never called the script"
    index = max(range(len(obs.durations)), key=lambda i: obs.durations[i][1])
    (what, took), (_, wall) = obs.durations[index], obs.walls[index]
    assert took < OBS_BUDGET_S, (
        f"{what} kept OBS's thread {took * 1000:.0f} ms ({wall * 1000:.0f} ms by the wall clock)"
    )


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def quick(**constants: float) -> Callable[[ModuleType], None]:
    """Shorter timeouts or poll intervals for the script, set before OBS loads it."""

    def prepare(script: ModuleType) -> None:
        for name, value in constants.items():
            assert hasattr(script, name), name
            setattr(script, name, value)

    return prepare


# -- the stand-in itself --------------------------------------------------------------------


def test_the_stand_in_counts_a_wait_as_time_the_script_took(tmp_path: Path) -> None:
    """A busy machine is left out of the measure, a wait in the script is not."""
    obs = FakeObs()
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(
        "import time\n"
        "import obspython as obs\n"
        "def script_properties():\n"
        "    props = obs.obs_properties_create()\n"
        "    obs.obs_properties_add_button(props, 'nap', 'Nap', nap)\n"
        "    return props\n"
        "def nap(props, prop):\n"
        "    time.sleep(0.1)\n"
        "    return False\n"
    )
    try:
        obs.load(sleeper)
        assert obs.click("nap") is False
        assert dict(obs.durations)["button nap"] >= 0.1
    finally:
        sys.modules.pop("obspython", None)


# -- the script's source --------------------------------------------------------------------


def test_the_script_is_python_3_6_without_type_hints() -> None:
    """OBS runs scripts in its own Python, 3.6 on older Windows builds."""
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"), feature_version=(3, 6))
    annotated = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        or (isinstance(node, ast.arg) and node.annotation is not None)
        or (isinstance(node, ast.FunctionDef) and node.returns is not None)
    ]
    assert annotated == [], f"type hints on lines {annotated}"
    futures = [
        n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "__future__"
    ]
    assert futures == []


def test_the_script_imports_only_the_standard_library_and_obspython() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) if n.module}
    tops = {name.split(".")[0] for name in imported}
    assert "obspython" in tops
    foreign = sorted(t for t in tops - {"obspython"} if t not in sys.stdlib_module_names)
    assert foreign == []


# -- following OBS's streaming --------------------------------------------------------------


@pytest.mark.slow
def test_streaming_started_starts_the_ticked_groups_and_stopped_stops_them(
    obs: FakeObs, cascade: Cascade
) -> None:
    cascade.process.client().post("/api/v1/groups/backup/start")  # started by hand, not ticked
    connect(obs, cascade.url)
    obs.set("follow_main", True)
    obs.set("follow_720p", True)

    obs.fire(STARTING)
    obs.fire(STARTED)
    obs.run_until("main and 720p started", lambda: cascade.groups()["720p"]["live"])
    obs.run_until("main started", lambda: cascade.groups()["main"]["live"])
    groups = cascade.groups()
    assert groups["main"]["state"] == groups["720p"]["state"] == "waiting"  # for the stream
    assert not groups["main"]["armed"] and not groups["720p"]["armed"]
    assert groups["backup"]["live"] and groups["backup"]["state"] == "waiting"
    log = obs.log_text()
    assert "OBS started streaming: starting main, 720p in Cascade" in log
    obs.run_until("both answers", lambda: "Cascade: 720p is started" in obs.log_text())
    assert obs.log_text().count("Cascade: main is started") == 1, "STARTED sent a second start"

    obs.fire(STOPPING)
    assert cascade.groups()["main"]["live"], "stopped at STOPPING: the stream's end is cut"
    obs.fire(STOPPED)
    obs.run_until(
        "main and 720p stopped",
        lambda: (
            cascade.states() == {"main": "idle", "720p": "idle", "backup": "waiting", "yt": "idle"}
        ),
    )
    assert "OBS stopped streaming: stopping main, 720p in Cascade" in obs.log_text()
    assert cascade.groups()["backup"]["live"], "a group that does not follow OBS was touched"
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_arm_mode_arms_the_groups_and_the_stream_reaching_cascade_takes_them_live(
    obs: FakeObs, cascade: Cascade, ffmpeg_exe: str, relay_clip: Path
) -> None:
    connect(obs, cascade.url, mode="arm")
    obs.set("follow_main", True)
    assert "When OBS starts streaming: arm main" in state_line(obs)

    obs.fire(STARTING)
    obs.run_until("main armed", lambda: cascade.groups()["main"]["state"] == "armed")
    main = cascade.groups()["main"]
    assert main["armed"] and not main["live"]
    assert cascade.states()["720p"] == "idle"

    url = f"rtmp://127.0.0.1:{cascade.ingest_port}/live/{INGEST_KEY}"
    publisher = subprocess.Popen(
        Publisher(ffmpeg_exe, relay_clip, url).argv,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        obs.fire(STARTED)
        obs.run_until("main live", lambda: cascade.groups()["main"]["targets_live"] == 1)
        obs.run_until(
            "the state line to say main is live",
            lambda: "main: live (1 of 1 target)" in state_line(obs),
        )
        obs.fire(STOPPING)
    finally:
        publisher.kill()
        publisher.wait()
    obs.fire(STOPPED)
    obs.run_until("main stopped", lambda: cascade.states()["main"] == "idle")
    assert not cascade.groups()["main"]["armed"], "still armed after OBS stopped"
    recorded = [f for f in cascade.recordings.iterdir() if f.stat().st_size > 0]
    assert len(recorded) == 1, recorded
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_streaming_started_before_cascade_runs_starts_the_groups_once_it_answers(
    obs: FakeObs, tmp_path: Path
) -> None:
    port = free_port()
    later = Cascade(tmp_path, port=port)
    settings = {"url": later.url, "token": TOKEN, "cascade_groups": CACHED, "follow_main": True}
    obs.load(SCRIPT, settings, quick(POLL_AWAY_S=0.2))
    obs.fire(STARTING)
    obs.run_until("the start to be kept", lambda: "Cascade has not taken 'start main'" in
                  obs.log_text())  # fmt: skip
    with later.process:
        obs.run_until("main started", lambda: later.groups()["main"]["live"])
        assert later.states()["720p"] == "idle"
        obs.fire(STOPPED)
        obs.run_until("main stopped", lambda: later.states()["main"] == "idle")
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_the_script_loaded_while_obs_streams_starts_the_ticked_groups(
    obs: FakeObs, cascade: Cascade
) -> None:
    obs.streaming = True
    obs.load(SCRIPT, {"url": cascade.url, "token": TOKEN, "cascade_groups": CACHED,
                      "follow_main": True})  # fmt: skip
    obs.run_until("main started", lambda: cascade.groups()["main"]["live"])
    assert "OBS is streaming: starting main in Cascade" in obs.log_text()
    obs.fire(STOPPED)
    obs.run_until("main stopped", lambda: cascade.states()["main"] == "idle")
    assert cascade.states()["720p"] == "idle"


@pytest.mark.slow
def test_obs_exiting_while_streaming_stops_the_followed_groups(
    obs: FakeObs, cascade: Cascade
) -> None:
    connect(obs, cascade.url)
    obs.set("follow_main", True)
    obs.fire(STARTING)
    obs.run_until("main started", lambda: cascade.groups()["main"]["live"])

    obs.fire(SHUTDOWN)
    obs.unload()  # OBS unloads its scripts right after; nothing ticks any more
    deadline = time.monotonic() + 20
    while cascade.states()["main"] != "idle":
        assert time.monotonic() < deadline, "main was not stopped when OBS closed"
        time.sleep(0.05)


# -- the properties and their buttons -------------------------------------------------------


@pytest.mark.slow
def test_the_properties_offer_the_settings_a_state_line_and_each_group(
    obs: FakeObs, cascade: Cascade
) -> None:
    connect(obs, cascade.url)
    view = obs.properties()
    assert view["url"].kind == "text" and view["url"].text_type == obs.OBS_TEXT_DEFAULT
    assert obs.settings.defaults["url"] == "http://127.0.0.1:47830"
    assert view["token"].text_type == obs.OBS_TEXT_PASSWORD
    assert "cascade token" in view["token"].long_description
    assert [value for _, value in view["mode"].items] == ["start", "arm"]
    assert obs.settings.defaults["mode"] == "start"
    assert view["refresh"].kind == "button"
    assert view["show_buttons"].kind == "bool" and view["show_buttons"].modified is not None

    assert state_line(obs).startswith(
        "Connected — main: idle, 720p: idle, backup: idle, yt: idle\n"
    )
    assert "No group follows OBS yet" in state_line(obs)
    assert view["cascade_state"].info_type == obs.OBS_TEXT_INFO_NORMAL
    titles = {p.name: p.description for p in view.walk() if p.kind == "group"}
    assert titles == {
        "group_main": "Main (main) — idle",
        "group_720p": "720p copy (720p) — idle",
        "group_backup": "backup — idle",
        "group_yt": "YouTube (yt) — idle",
    }
    section = view["group_main"].content
    assert section is not None
    kinds = [(p.name, p.kind) for p in section.items]
    assert kinds == [
        ("follow_main", "bool"),
        ("start_main", "button"),
        ("stop_main", "button"),
        ("toggle_main", "button"),
    ]

    obs.set("follow_main", True)
    obs.set("follow_backup", True)
    assert "When OBS starts streaming: start main, backup" in state_line(obs)

    obs.set("show_buttons", False)  # the modified callback has the view drawn again
    assert obs.view is not None and obs.view.get("start_main") is None
    assert obs.view["follow_main"].kind == "bool"

    saved = json.loads(obs.save().values["cascade_groups"])
    assert [g["id"] for g in saved] == list(GROUPS), "the group list is kept for next time"
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_buttons_start_stop_and_toggle_one_group(obs: FakeObs, cascade: Cascade) -> None:
    connect(obs, cascade.url)
    obs.properties()

    def pressed(button: str, state: str, live: bool) -> None:
        assert obs.click(button) is True  # the view is drawn again
        obs.run_until(f"{button}: backup {state}", lambda: cascade.states()["backup"] == state)
        assert cascade.groups()["backup"]["live"] is live
        obs.run_until(
            f"the log to say backup is {state}",
            lambda: obs.log_text().rstrip().endswith(f"Cascade: backup is {words[state]}"),
        )

    words = {"waiting": "started (waiting for the stream)", "idle": "idle"}
    pressed("start_backup", "waiting", True)
    obs.run_until("the state line", lambda: "backup: started (waiting" in state_line(obs))
    pressed("stop_backup", "idle", False)
    pressed("toggle_backup", "waiting", True)
    pressed("toggle_backup", "idle", False)
    assert set(cascade.states().values()) == {"idle"}
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_a_group_cascade_refuses_to_start_is_reported_with_cascade_s_reason(
    obs: FakeObs, cascade: Cascade
) -> None:
    connect(obs, cascade.url)
    obs.set("follow_main", True)
    obs.set("follow_yt", True)
    obs.fire(STARTING)
    obs.run_until("main started", lambda: cascade.groups()["main"]["live"])
    obs.run_until("the refusal", lambda: "Cascade could not start yt: " in obs.log_text())
    reason = obs.log_text().split("Cascade could not start yt: ")[1].splitlines()[0]
    assert "youtube" in reason and "key" in reason, reason  # Cascade's own words: what to do
    assert cascade.states()["yt"] == "idle"
    obs.run_for(POLL_S)  # a refusal is not a lost connection: nothing is sent again
    assert obs.log_text().count("Cascade could not start yt") == 1
    assert "Connected — main: started" in state_line(obs)
    obs.fire(STOPPED)
    obs.run_until("main stopped", lambda: cascade.states()["main"] == "idle")


# -- when Cascade cannot be reached ---------------------------------------------------------


def test_an_agent_that_is_not_running_is_reported_and_never_blocks(obs: FakeObs) -> None:
    url = unreachable_url()
    settings = {"url": url, "token": TOKEN, "cascade_groups": CACHED, "follow_main": True}
    obs.load(SCRIPT, settings, quick(POLL_AWAY_S=0.1))
    message = f"Cascade is not running at {url} — start Cascade, then press Refresh"
    obs.run_until("the message", lambda: message in obs.log_text())
    assert message in state_line(obs)
    assert obs.view is not None
    assert obs.view["cascade_state"].info_type == obs.OBS_TEXT_INFO_WARNING
    # The groups Cascade had last time are still there, with their tick boxes.
    assert obs.view["follow_main"].kind == obs.view["follow_720p"].kind == "bool"

    obs.fire(STARTING)
    obs.fire(STARTED)
    assert obs.click("start_720p") is True
    assert obs.click("refresh") is True
    obs.run_until("the kept start", lambda: "Cascade has not taken 'start main'" in
                  obs.log_text())  # fmt: skip
    obs.fire(STOPPED)
    obs.run_for(1.0)  # polls every 0.1 s: the message is still said once
    assert obs.log_text().splitlines().count(f"[Cascade] {message}") == 1, obs.log_text()
    assert "Could not start 720p: " + message in obs.log_text()
    assert_never_blocked(obs)
    assert_token_never_shown(obs, TOKEN)


def test_an_agent_that_never_answers_is_reported_and_never_blocks(obs: FakeObs) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(32)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings = {"url": url, "token": TOKEN, "cascade_groups": CACHED, "follow_main": True}
        workers = watch_workers(obs)
        obs.load(SCRIPT, settings, quick(STATUS_TIMEOUT_S=0.5, ACTION_TIMEOUT_S=0.5))
        obs.fire(STARTING)
        obs.fire(STARTED)
        for button in ("start_main", "stop_main", "toggle_720p", "refresh"):
            assert obs.click(button) is True
        obs.fire(STOPPING)
        obs.fire(STOPPED)
        message = f"Cascade at {url} did not answer in time"
        obs.run_until("the message", lambda: message in obs.log_text())
        assert message in state_line(obs)
        obs.unload()  # with requests still queued for the silent agent: returns at once
        assert_never_blocked(obs)
        assert_workers_end(workers)
    assert_token_never_shown(obs, TOKEN)


@pytest.mark.slow
def test_a_wrong_token_is_reported_and_a_corrected_one_is_used(
    obs: FakeObs, cascade: Cascade
) -> None:
    obs.load(SCRIPT, {"url": cascade.url, "token": WRONG_TOKEN})
    message = (
        f"Cascade at {cascade.url} refused the API token — run 'cascade token' and paste "
        "what it prints into API token"
    )
    obs.run_until("the message", lambda: message in obs.log_text())
    assert message in state_line(obs)
    assert obs.view is not None
    assert obs.view["cascade_state"].info_type == obs.OBS_TEXT_INFO_ERROR

    obs.set("token", TOKEN)
    obs.run_until("the script to reach Cascade", lambda: "Connected to Cascade" in obs.log_text())
    assert state_line(obs).startswith("Connected — main: idle")
    assert_token_never_shown(obs, TOKEN, WRONG_TOKEN)


def test_no_token_says_where_to_get_one(obs: FakeObs) -> None:
    obs.load(SCRIPT, {"url": unreachable_url()})
    message = "No API token set — run 'cascade token' and paste what it prints into API token"
    obs.run_until("the message", lambda: message in obs.log_text())
    assert message in state_line(obs)
    assert obs.click("refresh") is True


def test_an_older_obs_without_info_texts_still_gets_a_state_line() -> None:
    """OBS before 27.1 has no OBS_TEXT_INFO (nor SCRIPTING_SHUTDOWN): a plain text instead."""
    old = FakeObs(
        missing=(
            "OBS_TEXT_INFO",
            "obs_property_text_set_info_type",
            "OBS_FRONTEND_EVENT_SCRIPTING_SHUTDOWN",
        )
    )
    workers = watch_workers(old)
    try:
        url = unreachable_url()
        old.load(SCRIPT, {"url": url, "token": TOKEN})
        old.run_until("the message", lambda: "Cascade is not running" in old.log_text())
        state: Property = old.properties()["cascade_state"]
        assert state.text_type == old.OBS_TEXT_DEFAULT
        assert state.description.startswith(f"Cascade is not running at {url}")
        old.fire(old.OBS_FRONTEND_EVENT_EXIT)
        old.unload()
        assert_workers_end(workers)
        assert_never_blocked(old)
        assert old.foreign_calls == [] and old.ignored == []
    finally:
        old.unload()
        sys.modules.pop("obspython", None)

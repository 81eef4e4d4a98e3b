"""Thread-safety: menu callbacks on other threads only schedule work on the core's loop.

pystray runs menu callbacks on its own thread (the main thread, or a backend's); the core runs
on its own. These tests click the real pystray items of a real agent's tray from several
threads at once while the agent is streaming and events pour in, and check:

- every :class:`Control` operation and every snapshot is taken on the core's thread;
- every snapshot the tray receives is whole (its totals are its groups' and targets', its
  groups and targets are the profile's), is never changed afterwards, and the menu and the
  tooltip built from it say what it says;
- the final state is the one the clicks imply: each target toggled N times, each group left
  as the last click left it, each operation run exactly once per click;
- with the core's loop blocked, callbacks still return at once and nothing has run.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.core.events import ShowRequested, StatsUpdated
from agent.tray.app import _title
from agent.tray.model import Action, TrayState, menu, overall
from tests.streams import Publisher
from tests.tray.conftest import (
    INGEST_KEY,
    WAIT,
    Desktop,
    Rig,
    group_of,
    pick,
    target_of,
    texts,
)

ARM = "Arm (live whenever OBS streams)"
PROFILE = {"main": ["rec", "site"], "alt": ["rec2", "cam"]}
OPERATIONS = ("group_action", "target_action", "start_all", "stop_all", "activate")
READS = ("status", "profiles")


class Spy:
    """Records which thread ran each Control call, and the snapshots the tray adopted."""

    def __init__(self, rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rig = rig
        self.calls: list[tuple[str, tuple[Any, ...], int]] = []
        self.shown: list[tuple[TrayState, dict[str, Any], int]] = []
        self.dispatched: list[tuple[str, Action]] = []
        self.problems: list[str] = []
        self.since = len(rig.icon.calls)  # icon updates before: showing it, on the test's thread
        control = rig.control
        for name in OPERATIONS:
            monkeypatch.setattr(control, name, self._async(name, getattr(control, name)))
        for name in READS:
            monkeypatch.setattr(control, name, self._sync(name, getattr(control, name)))
        tray = rig.tray
        show, dispatch = tray.show, tray.dispatch

        def shown(state: TrayState) -> None:
            show(state)
            # Checked right here, on the thread that called show(), before anything else
            # can change: the menu and tooltip the tray just built, from this snapshot.
            self.shown.append((state, copy.deepcopy(state.status), threading.get_ident()))
            self._check(state)

        def dispatched(action: Action) -> None:
            self.dispatched.append((threading.current_thread().name, action))
            dispatch(action)

        monkeypatch.setattr(tray, "show", shown)
        monkeypatch.setattr(tray, "dispatch", dispatched)

    def _async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def spied(*args: Any) -> Any:
            self.calls.append((name, args, threading.get_ident()))
            return await fn(*args)

        return spied

    def _sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def spied(*args: Any) -> Any:
            self.calls.append((name, args, threading.get_ident()))
            return fn(*args)

        return spied

    def _check(self, state: TrayState) -> None:
        try:
            whole(state.status)
            built = self.rig.icon.menu
            expected = menu(state)
            assert texts(built) == [e.label for e in expected], "menu != snapshot"
            assert self.rig.icon.title == _title(overall(state.status).summary), "tooltip"
        except AssertionError as exc:
            self.problems.append(f"{exc}: {state.status}")

    def ran(self, name: str, *args: Any) -> int:
        return sum(1 for n, a, _ in self.calls if n == name and a == args)


def whole(status: dict[str, Any]) -> None:
    """A snapshot is internally consistent: one moment of one profile."""
    assert status["profile"] == "studio"
    groups = status["groups"]
    assert {g["id"]: [t["id"] for t in g["targets"]] for g in groups} == PROFILE
    targets = [t for g in groups for t in g["targets"]]
    for group in groups:
        live = [t for t in group["targets"] if t["state"] == "live"]
        assert all(t["group"] == group["id"] for t in group["targets"])
        assert group["targets_live"] == len(live)
        assert group["bitrate_kbps"] == round(sum(t["bitrate_kbps"] or 0 for t in live), 1)
    for t in targets:
        assert t["state"] != "disabled" or not t["enabled"], t
    totals = status["totals"]
    assert totals["targets"] == len(targets)
    assert totals["targets_live"] == sum(1 for t in targets if t["state"] == "live")
    failing = sum(1 for t in targets if t["state"] in ("retrying", "failed"))
    assert totals["targets_failing"] == failing
    assert totals["groups_live"] == sum(1 for g in groups if g["state"] in ("live", "degraded"))
    assert totals["bitrate_kbps"] == round(sum(g["bitrate_kbps"] for g in groups), 1)


def run_threads(jobs: dict[str, Callable[[], None]]) -> None:
    """Run each job on its own thread, all released at once; re-raise the first failure."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def body(job: Callable[[], None]) -> None:
        try:
            start.wait(WAIT)
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(job,), name=name) for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
        assert not thread.is_alive(), f"{thread.name} is stuck"
    if errors:
        raise errors[0]


def click(rig: Rig, *path: str) -> None:
    """What pystray does on a click: call the item of the menu it shows now."""
    pick(rig.menu(), *path)(rig.icon)


@pytest.fixture
def publisher(rig: Rig, ffmpeg_exe: str, relay_clip: Path) -> Any:
    url = f"{rig.agent.profile.ingest.obs_url}/{INGEST_KEY}"
    argv = Publisher(ffmpeg_exe, relay_clip, url).argv
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rig.wait_tray("OBS streaming", lambda s: s.status["ingest"]["state"] == "receiving")
        yield proc
    finally:
        proc.kill()
        proc.wait()


SITE_TOGGLES = 25  # site: off at start, so on at the end
CAM_TOGGLES = 24  # cam: off at start, and off at the end
ALT_CLICKS = 11  # start, stop, ... start
ARM_CLICKS = 11
EVENTS = 300
COPIES = 20


def test_menu_callbacks_from_many_threads_while_events_arrive(
    rig: Rig, publisher: Any, fake_desktop: Desktop, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(rig, monkeypatch)
    core = rig.core.thread.ident
    bus = rig.agent.bus
    url = rig.agent.profile.ingest.obs_url

    def toggle_site() -> None:
        for _ in range(SITE_TOGGLES):
            click(rig, "Main", "site")

    def toggle_cam() -> None:  # as a person does: click, and see the menu change
        for n in range(CAM_TOGGLES):
            click(rig, "alt", "cam")
            on = n % 2 == 0
            rig.wait_for("cam toggled", lambda on=on: pick(rig.menu(), "alt", "cam").checked is on)

    def start_stop_alt() -> None:
        for n in range(ALT_CLICKS):
            rig.tray.dispatch(Action("stop_group" if n % 2 else "start_group", "alt"))

    def arm_main() -> None:  # as a person does: click, and see the menu change
        for n in range(ARM_CLICKS):
            click(rig, "Main", ARM)
            on = n % 2 == 0
            rig.wait_for("main armed", lambda on=on: pick(rig.menu(), "Main", ARM).checked is on)

    def events() -> None:
        for n in range(EVENTS):
            if n % 50 == 0:
                bus.publish_threadsafe(ShowRequested(reason="a second cascade run"))
            else:
                bus.publish_threadsafe(StatsUpdated(group="main", stats={"n": n}))

    def copy_url() -> None:
        for _ in range(COPIES):
            click(rig, "Copy ingest URL")

    run_threads(
        {
            "site": toggle_site,
            "cam": toggle_cam,
            "alt": start_stop_alt,
            "arm": arm_main,
            "events": events,
            "copy": copy_url,
        }
    )
    rig.settle()

    # Every operation ran once per click, on the core's thread; so did every snapshot.
    arms = [a.name for who, a in spy.dispatched if who == "arm"]
    assert arms == ["arm_group", "disarm_group"] * (ARM_CLICKS // 2) + ["arm_group"]
    assert spy.ran("target_action", "site", "toggle") == SITE_TOGGLES
    assert spy.ran("target_action", "cam", "toggle") == CAM_TOGGLES
    assert spy.ran("group_action", "alt", "start") == (ALT_CLICKS + 1) // 2
    assert spy.ran("group_action", "alt", "stop") == ALT_CLICKS // 2
    for action in ("arm", "disarm"):
        assert spy.ran("group_action", "main", action) == arms.count(f"{action}_group")
    threads = Counter(ident for _, _, ident in spy.calls)
    assert set(threads) == {core}, "a Control call ran off the core's thread"
    assert {ident for _, _, ident in spy.shown} == {core}
    calls = rig.icon.calls[spy.since :]
    updates = [ident for what, ident in calls if what in ("menu", "icon", "title")]
    assert updates and set(updates) == {core}, "the icon was updated off the core's thread"
    # The menu thread copied what the tray showed, and never touched the core for it.
    assert fake_desktop.copied == [url] * COPIES
    # A second cascade run asked the tray to show itself: said (it is the tray's own news).
    assert ("Cascade", "Cascade is already running: use this icon's menu.") in (
        rig.icon.notifications
    )

    # Main (armed) and alt (started) go live with what OBS sends.
    rig.wait_tray("rec and rec2 live", lambda s: s.status["totals"]["targets_live"] >= 2)

    # Every snapshot was whole, matched the menu and tooltip built from it, and none was
    # changed after the tray got it (the menu's thread may read it at any time).
    assert len(spy.shown) > EVENTS // 2
    assert spy.problems == []
    for state, frozen, _ in spy.shown:
        assert state.status == frozen
    seen = {g["state"] for state, _, _ in spy.shown for g in state.status["groups"]}
    assert {"idle", "live"} <= seen, seen

    # The final state is the one the clicks imply.
    publisher.kill()
    publisher.wait()
    armed = ARM_CLICKS % 2 == 1
    expected = {
        "site": SITE_TOGGLES % 2 == 1,
        "cam": CAM_TOGGLES % 2 == 1,
        "rec": True,
        "rec2": True,
    }

    def settled(state: TrayState) -> bool:
        status = state.status
        return (
            status["ingest"]["state"] != "receiving"
            and group_of(status, "main")["state"] == ("armed" if armed else "idle")
            and group_of(status, "alt")["state"] == "waiting"
        )

    final = rig.wait_tray("the final state", settled)
    fresh = rig.status()
    for status in (final.status, fresh):
        assert group_of(status, "main")["armed"] is armed
        assert group_of(status, "alt")["live"] is True
        assert group_of(status, "alt")["armed"] is False
        assert {t: target_of(status, t)["enabled"] for t in expected} == expected
    saved = rig.store.load("studio")
    assert saved.group("main").armed is armed
    assert {t.id: t.enabled for g in saved.groups for t in g.targets} == expected
    assert pick(rig.menu(), "Main", ARM).checked is armed
    assert pick(rig.menu(), "Main", "site").checked is expected["site"]
    assert pick(rig.menu(), "alt", "cam").checked is expected["cam"]
    assert pick(rig.menu(), "alt", "Stop").text == "Stop"


def test_callbacks_only_schedule_while_the_core_is_busy(rig: Rig, fake_desktop: Desktop) -> None:
    """With the core's loop blocked, clicks on other threads return at once and run nothing;
    once it is free, everything they scheduled runs, in order."""
    gate = threading.Event()
    blocked = threading.Event()

    def block() -> None:
        blocked.set()
        gate.wait(WAIT)

    rig.core.call(block)
    assert blocked.wait(WAIT)
    before = rig.tray.state
    try:
        run_threads(
            {
                "start": lambda: click(rig, "Main", "Start"),
                "toggle": lambda: click(rig, "alt", "cam"),
                "arm": lambda: click(rig, "alt", ARM),
                "copy": lambda: click(rig, "Copy API token"),
            }
        )
        # Every callback returned while the loop could run nothing at all.
        assert len(rig.scheduled) == 3
        assert not any(f.done() for f in rig.scheduled)
        assert rig.tray.state is before
        assert fake_desktop.copied == [rig.runner._token]  # local: done on the menu's thread
    finally:
        gate.set()
    rig.settle()
    status = rig.status()
    assert group_of(status, "main")["state"] == "waiting"
    assert target_of(status, "cam")["enabled"] is True
    assert group_of(status, "alt")["armed"] is True
    rig.wait_tray(
        "the three changes",
        lambda s: group_of(s, "alt")["armed"] and target_of(s, "cam")["enabled"],
    )


def test_quit_from_another_thread_while_the_core_works(rig: Rig) -> None:
    """Quit chosen while operations are queued: the core still stops every child and ends."""
    import psutil

    ffmpeg = [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]
    assert ffmpeg, "no FFmpeg child (the ingest) to check"
    run_threads(
        {
            "start": lambda: [click(rig, "Start all") for _ in range(5)],
            "quit": lambda: click(rig, "Quit Cascade"),
        }
    )
    rig.core.join(WAIT)
    assert not rig.core.thread.is_alive()
    assert rig.core.error is None
    for future in rig.scheduled:  # each ran before the stop, or was cancelled with the loop
        assert future.done()
    gone = [p for p in ffmpeg if not p.is_running() or p.status() == psutil.STATUS_ZOMBIE]
    assert gone == ffmpeg
    # A click after the core ended (the icon is still up for a moment) is dropped quietly.
    scheduled = len(rig.scheduled)
    click(rig, "Start all")
    click(rig, "Main", "Arm (live whenever OBS streams)")
    assert len(rig.scheduled) == scheduled

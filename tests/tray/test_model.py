"""The tray menu is a pure function of the agent's state, and each item does what it says.

First the model alone (:func:`overall`, :func:`menu`) on status dicts shaped like
:meth:`Control.status` answers for each overall state; then pystray's real menu (dummy backend)
built by :class:`Tray` from the same states; then every item chosen in the menu of a real agent
(``Rig``: real FFmpeg on a real core thread), checking the core's resulting state, the saved
profile, and the menu the tray rebuilt from the core's events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pystray  # type: ignore[import-untyped]  # the dummy backend (see conftest.py)
import pytest

from agent import __version__
from agent.control import Control
from agent.core.agent import Agent
from agent.core.egress import TargetStats
from agent.core.relay import key_from_target
from agent.core.settings import Settings
from agent.platform.autostart import for_this_machine
from agent.store.profiles import ProfileStore
from agent.tray.app import Tray, load_backend
from agent.tray.model import SEPARATOR, Action, Entry, TrayState, menu, overall
from tests.tray.conftest import (
    TOKEN,
    Desktop,
    Rig,
    find,
    group_of,
    pick,
    target_of,
    texts,
)

INGEST = "rtmp://127.0.0.1:1935/live"
ARM = "Arm (live whenever OBS streams)"
REFUSED = "rtmp://a.rtmp.youtube.com/live2/****: Connection refused"


# -- status dicts, shaped as Control.status() answers -------------------------------------------


def target(tid: str, group: str, state: str = "idle", *, enabled: bool = True, **figures: Any):
    return TargetStats(
        id=tid, group=group, state=state, enabled=enabled, destination=f"rtmp://x/{tid}", **figures
    ).to_dict()


def group(
    gid: str,
    state: str,
    targets: list[dict[str, Any]],
    *,
    name: str = "",
    armed: bool = False,
    live: bool | None = None,
    encoder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    on = [t for t in targets if t["state"] == "live"]
    return {
        "id": gid,
        "name": name or gid,
        "mode": "passthrough",
        "state": state,
        "armed": armed,
        "live": state not in ("idle", "armed") if live is None else live,
        "encoder": encoder,
        "targets": targets,
        "targets_live": len(on),
        "bitrate_kbps": round(sum(t["bitrate_kbps"] or 0 for t in on), 1),
    }


def status(
    groups: list[dict[str, Any]],
    *,
    ingest: str = "listening",
    reason: str = "",
    problem: str = "",
    profile: str = "studio",
) -> dict[str, Any]:
    targets = [t for g in groups for t in g["targets"]]
    return {
        "version": __version__,
        "profile": profile,
        "problem": problem,
        "ingest": {
            "kind": "rtmp",
            "url": INGEST,
            "state": ingest,
            "reason": reason,
            "stream": {"video_codec": "h264"} if ingest == "receiving" else {},
            "bitrate_kbps": 6000.0 if ingest == "receiving" else None,
        },
        "groups": groups,
        "totals": {
            "groups_live": sum(1 for g in groups if g["state"] in ("live", "degraded")),
            "targets": len(targets),
            "targets_live": sum(1 for t in targets if t["state"] == "live"),
            "targets_failing": sum(1 for t in targets if t["state"] in ("retrying", "failed")),
            "bitrate_kbps": round(sum(g["bitrate_kbps"] for g in groups), 1),
        },
    }


def idle() -> dict[str, Any]:
    return status(
        [
            group(
                "main",
                "idle",
                [target("yt", "main"), target("tw", "main", "disabled", enabled=False)],
                name="Main",
            ),
            group("alt", "idle", [target("rec", "alt")]),
        ]
    )


def waiting() -> dict[str, Any]:
    return status(
        [
            group(
                "main",
                "waiting",
                [target("yt", "main", "waiting"), target("tw", "main", "disabled", enabled=False)],
                name="Main",
            ),
            group("alt", "armed", [target("rec", "alt", "waiting")], armed=True),
        ]
    )


def live() -> dict[str, Any]:
    return status(
        [
            group(
                "main",
                "live",
                [
                    target("yt", "main", "live", bitrate_kbps=6012.4),
                    target("tw", "main", "disabled", enabled=False),
                ],
                name="Main",
            ),
            group("alt", "live", [target("rec", "alt", "live", bitrate_kbps=850.0)], armed=True),
        ],
        ingest="receiving",
    )


def degraded() -> dict[str, Any]:
    return status(
        [
            group(
                "main",
                "degraded",
                [
                    target("yt", "main", "retrying", last_error=REFUSED, retries=3),
                    target("tw", "main", "live", bitrate_kbps=3000.0),
                ],
                name="Main",
            ),
            group("alt", "idle", [target("rec", "alt")]),
        ],
        ingest="receiving",
    )


def error() -> dict[str, Any]:
    return status(
        [
            group("main", "idle", [target("yt", "main")], name="Main"),
            group("alt", "idle", [target("rec", "alt")]),
        ],
        ingest="failed",
        reason="could not listen on 127.0.0.1:1935: Address already in use",
    )


SAMPLES = {"idle": idle, "waiting": waiting, "live": live, "degraded": degraded, "error": error}


# -- the model ----------------------------------------------------------------------------------


def labels(entries: tuple[Entry, ...]) -> list[str]:
    return [e.label for e in entries]


def entry(entries: tuple[Entry, ...], label: str) -> Entry:
    for e in entries:
        if e.label == label or e.label.startswith(f"{label} — "):
            return e
    raise AssertionError(f"no entry {label!r} in {labels(entries)}")


def children(entries: tuple[Entry, ...], label: str) -> tuple[Entry, ...]:
    found = entry(entries, label).children
    assert found is not None, f"{label!r} has no submenu"
    return found


@pytest.mark.parametrize(
    ("sample", "state", "summary"),
    [
        (idle, "idle", "Idle"),
        (waiting, "waiting", "Waiting for OBS"),
        (live, "live", "Live — 2 of 2 targets"),
        (degraded, "degraded", "Live — 1 of 2 targets"),
        (error, "error", "Problem: Address already in use"),
    ],
)
def test_overall_state_and_summary(sample: Any, state: str, summary: str) -> None:
    head = overall(sample())
    assert (head.state, head.summary) == (state, summary)
    assert menu(TrayState(sample()))[0] == Entry(f"Cascade — {summary}", enabled=False)


def test_overall_corner_cases() -> None:
    # Armed and nothing else: waiting for OBS, even while OBS is not streaming yet.
    armed = status([group("alt", "armed", [target("rec", "alt", "waiting")], armed=True)])
    assert overall(armed).state == "waiting"
    # OBS streaming with every group stopped is still idle: nothing goes out.
    assert overall(status([group("main", "idle", [target("yt", "main")])], ingest="receiving")) == (
        overall(idle())
    )
    # A problem beats everything: the agent's own (FFmpeg missing) over a live stream.
    broken = {**live(), "problem": "FFmpeg was not found at /opt/ffmpeg: No such file"}
    assert overall(broken).state == "error"
    assert overall(broken).summary == "Problem: No such file"
    # Disabled targets do not count in "N of M".
    assert overall(live()).summary == "Live — 2 of 2 targets"
    # No groups at all: idle.
    assert overall(status([])).state == "idle"


def test_idle_menu_top_to_bottom() -> None:
    entries = menu(TrayState(idle(), profiles=("spare", "studio")))
    assert labels(entries) == [
        "Cascade — Idle",
        f"Ingest: {INGEST}",
        "Copy ingest URL",
        "-",
        "Start all",
        "Stop all",
        "-",
        "Main — idle",
        "alt — idle",
        "-",
        "Profile: studio",
        "Open dashboard",
        "Copy API token",
        "Launch at login",
        "Open logs folder",
        "-",
        "Quit Cascade",
    ]
    assert entries[0].enabled is False and entries[0].action is None
    assert entries[1].enabled is False
    assert entry(entries, "Copy ingest URL").action == Action("copy_ingest_url")
    assert entry(entries, "Copy ingest URL").enabled
    assert entry(entries, "Start all") == Entry("Start all", Action("start_all"), default=True)
    assert entry(entries, "Stop all").action == Action("stop_all")
    assert entry(entries, "Copy API token").action == Action("copy_token")
    assert entry(entries, "Open logs folder").action == Action("open_logs")
    assert entry(entries, "Quit Cascade").action == Action("quit")
    dashboard = entry(entries, "Open dashboard")
    assert (dashboard.action, dashboard.enabled) == (Action("open_dashboard"), False)
    login = entry(entries, "Launch at login")  # autostart is not available yet
    assert login.action == Action("toggle_autostart")
    assert (login.checked, login.enabled) == (False, False)

    main = children(entries, "Main")
    assert labels(main) == ["Idle", "Start", ARM, "-", "yt", "tw"]
    assert main[0].enabled is False
    assert entry(main, "Start").action == Action("start_group", "main")
    assert entry(main, ARM).action == Action("arm_group", "main")
    assert entry(main, ARM).checked is False
    assert entry(main, "yt") == Entry("yt", Action("toggle_target", "yt"), checked=True)
    assert entry(main, "tw") == Entry("tw", Action("toggle_target", "tw"), checked=False)

    profiles = children(entries, "Profile: studio")
    assert profiles == (
        Entry("spare", Action("activate_profile", "spare"), checked=False, radio=True),
        Entry("studio", Action("activate_profile", "studio"), checked=True, radio=True),
    )


def test_waiting_menu() -> None:
    entries = menu(TrayState(waiting(), profiles=("studio",)))
    assert entries[0].label == "Cascade — Waiting for OBS"
    main = children(entries, "Main")
    assert entry(entries, "Main").label == "Main — waiting"
    assert entry(main, "Stop").action == Action("stop_group", "main")
    assert entry(main, ARM).checked is False
    alt = children(entries, "alt")
    # Armed but not started by hand: Start is offered, and Arm is checked (choosing it disarms).
    assert entry(alt, "Start").action == Action("start_group", "alt")
    assert entry(alt, ARM) == Entry(ARM, Action("disarm_group", "alt"), checked=True)
    assert entry(alt, "rec").checked is True


def test_live_menu() -> None:
    entries = menu(TrayState(live(), profiles=("studio",)))
    assert entries[0].label == "Cascade — Live — 2 of 2 targets"
    assert entry(entries, "Main").label == "Main — live · 6.0 Mb/s"
    main = children(entries, "Main")
    assert labels(main) == ["Live · 6.0 Mb/s", "Stop", ARM, "-", "yt — live · 6.0 Mb/s", "tw"]
    assert entry(main, "yt").checked is True
    assert entry(main, "tw").checked is False
    alt = children(entries, "alt")
    # Armed and live because OBS streams: Stop ends it now.
    assert entry(alt, "Stop").action == Action("stop_group", "alt")
    assert entry(alt, "rec").label == "rec — live · 850 kb/s"


def test_degraded_menu_marks_the_target_in_trouble_with_its_short_error() -> None:
    entries = menu(TrayState(degraded(), profiles=("studio",)))
    assert entries[0].label == "Cascade — Live — 1 of 2 targets"
    main = children(entries, "Main")
    yt = entry(main, "yt")
    assert yt.label == "yt — retrying: Connection refused"
    assert yt.checked is True  # still switched on: the agent keeps trying
    assert yt.action == Action("toggle_target", "yt")
    assert entry(main, "tw").label == "tw — live · 3.0 Mb/s"
    failed = status(
        [
            group(
                "main",
                "degraded",
                [target("yt", "main", "failed", last_error="x" * 100)],
                encoder={"state": "backoff", "last_error": "encoder: h264_nvenc: No device"},
            )
        ],
        ingest="receiving",
    )
    main = children(menu(TrayState(failed)), "main")
    assert entry(main, "yt").label == f"yt — failed: {'x' * 39}…"
    assert "Encoder: No device" in labels(main)


def test_error_menu() -> None:
    entries = menu(TrayState(error(), profiles=("studio",)))
    assert entries[0].label == "Cascade — Problem: Address already in use"
    # Everything stays reachable: the person may fix the cause and start again.
    for label in ("Start all", "Stop all", "Copy API token", "Open logs folder", "Quit Cascade"):
        assert entry(entries, label).enabled


def test_menu_without_ingest_url_or_with_a_dashboard_and_autostart() -> None:
    bare = status([])
    bare["ingest"]["url"] = ""
    entries = menu(TrayState(bare))
    assert entry(entries, "Ingest: not set").enabled is False
    assert entry(entries, "Copy ingest URL").enabled is False
    # The active profile alone when the list of profiles is not known.
    assert children(entries, "Profile: studio") == (
        Entry("studio", Action("activate_profile", "studio"), checked=True, radio=True),
    )
    full = menu(TrayState(idle(), dashboard_url="http://127.0.0.1:47830/", autostart=True))
    assert entry(full, "Open dashboard").enabled
    login = entry(full, "Launch at login")
    assert (login.checked, login.enabled) == (True, True)


def test_menu_is_a_pure_function_of_state() -> None:
    for sample in SAMPLES.values():
        state = TrayState(sample(), profiles=("spare", "studio"))
        assert menu(state) == menu(TrayState(sample(), profiles=("spare", "studio")))
        before = repr(state)
        menu(state)
        assert repr(state) == before  # nothing in the state was touched


async def test_the_offline_status_control_gives_without_ffmpeg(
    store: ProfileStore, config_dir: Path, tmp_path: Path
) -> None:
    """FFmpeg missing: Control answers the set-up, all idle, with the problem; the tray says
    Problem and still lists every group and target."""
    missing = Settings(ffmpeg=str(tmp_path / "no-ffmpeg"))
    agent = Agent(config_dir, settings=missing, profile=store.load_active(), keys=key_from_target)
    control = Control(agent, store, secrets=_no_secrets, keys_for=lambda _: key_from_target)
    await agent.start()
    try:
        assert agent.relay is None and agent.ffmpeg_error is not None
        offline = control.status()
    finally:
        await agent.stop()
    head = overall(offline)
    assert head.state == "error"
    assert head.summary.startswith("Problem: ")
    entries = menu(TrayState(offline, profiles=("spare", "studio")))
    assert entries[0].label == f"Cascade — {head.summary}"
    main = children(entries, "Main")
    assert entry(main, "Start").action == Action("start_group", "main")
    assert entry(main, "rec") == Entry("rec", Action("toggle_target", "rec"), checked=True)
    assert entry(main, "site") == Entry("site", Action("toggle_target", "site"), checked=False)
    assert entry(children(entries, "alt"), "cam").checked is False
    mirror(pystray_menu(TrayState(offline)), menu(TrayState(offline)))


def _no_secrets() -> Any:
    raise AssertionError("no test here reads the secret store")


# -- pystray's menu, built by Tray ------------------------------------------------------------


def pystray_menu(state: TrayState) -> Any:
    backend, why = load_backend()
    assert backend is not None, why
    assert backend.icon is pystray.Icon  # the dummy one this process loaded
    tray = Tray(backend, operations={}, local={}, schedule=lambda coro: coro.close(), state=state)
    return tray.icon.menu


def mirror(items: Any, entries: tuple[Entry, ...]) -> None:
    """pystray's items say exactly what the entries say."""
    assert texts(items) == [e.label for e in entries]
    for item, e in zip(items.items, entries, strict=True):
        if e == SEPARATOR:
            continue
        assert item.checked == e.checked, e
        assert item.radio == (e.radio and e.checked is not None), e
        assert item.enabled == (e.enabled and (e.action is not None or e.children is not None)), e
        assert item.default == e.default, e
        if e.children is not None:
            assert item.submenu is not None, e
            mirror(item.submenu, e.children)
        else:
            assert item.submenu is None, e


@pytest.mark.parametrize("name", list(SAMPLES))
def test_pystray_menu_mirrors_the_model(name: str) -> None:
    state = TrayState(SAMPLES[name](), profiles=("spare", "studio"))
    mirror(pystray_menu(state), menu(state))


def test_pystray_menu_of_a_live_state_item_by_item() -> None:
    items = pystray_menu(TrayState(live(), profiles=("spare", "studio")))
    assert items.items[0].text == "Cascade — Live — 2 of 2 targets"
    assert not items.items[0].enabled
    assert pick(items, "Start all").default
    assert pick(items, "Main", "Stop").checked is None
    assert pick(items, "Main", ARM).checked is False
    assert pick(items, "alt", ARM).checked is True
    assert pick(items, "Main", "yt").checked is True
    assert pick(items, "Main", "tw").checked is False
    assert pick(items, "Profile: studio", "studio").checked is True
    assert pick(items, "Profile: studio", "studio").radio is True
    assert pick(items, "Profile: studio", "spare").checked is False
    assert pick(items, "Open dashboard").enabled is False
    assert pick(items, "Launch at login").enabled is False
    assert pick(items, "Launch at login").checked is False


def test_choosing_a_pystray_item_dispatches_its_action() -> None:
    chosen: list[tuple[str, str]] = []
    scheduled: list[Any] = []

    def operation(name: str) -> Any:
        async def run(arg: str) -> None:
            chosen.append((name, arg))

        return run

    def schedule(coro: Any) -> None:
        scheduled.append(coro)  # run below, as the core's loop would

    backend, _ = load_backend()
    assert backend is not None
    names = ("start_group", "toggle_target", "activate_profile", "start_all")
    local: list[tuple[str, str]] = []
    tray = Tray(
        backend,
        operations={n: operation(n) for n in names},
        local={"copy_token": lambda arg: local.append(("copy_token", arg))},
        schedule=schedule,
        state=TrayState(idle(), profiles=("spare", "studio")),
    )
    items = tray.icon.menu
    pick(items, "Main", "Start")(tray.icon)
    pick(items, "Main", "yt")(tray.icon)
    pick(items, "Profile: studio", "spare")(tray.icon)
    pick(items, "Start all")(tray.icon)
    pick(items, "Copy API token")(tray.icon)
    pick(items, "Open logs folder")(tray.icon)  # no handler: logged, nothing runs
    assert chosen == []  # only scheduled: operations run on the core's loop, not here
    assert local == [("copy_token", "")]

    async def core() -> None:
        for coro in scheduled:
            await coro

    asyncio.run(core())
    assert chosen == [
        ("start_group", "main"),
        ("toggle_target", "yt"),
        ("activate_profile", "spare"),
        ("start_all", ""),
    ]


# -- every item, on a real agent ----------------------------------------------------------------


def test_group_items_start_stop_and_arm_the_group(rig: Rig) -> None:
    rig.choose("Main", "Start")
    rig.settle()
    main = group_of(rig.status(), "main")
    assert (main["state"], main["live"], main["armed"]) == ("waiting", True, False)
    shown = rig.wait_tray("main waiting", lambda s: group_of(s, "main")["state"] == "waiting")
    assert overall(shown.status).state == "waiting"
    assert find(pick(rig.menu(), "Main").submenu, "Stop").text == "Stop"
    assert group_of(rig.status(), "alt")["state"] == "idle"  # nothing else moved

    rig.choose("Main", "Stop")
    rig.settle()
    assert group_of(rig.status(), "main")["state"] == "idle"
    rig.wait_tray("main idle", lambda s: group_of(s, "main")["state"] == "idle")
    assert overall(rig.tray.state.status).summary == "Idle"

    rig.choose("Main", ARM)
    rig.settle()
    main = group_of(rig.status(), "main")
    assert (main["state"], main["armed"], main["live"]) == ("armed", True, False)
    assert rig.store.load("studio").group("main").armed  # a standing order: saved
    rig.wait_tray("main armed", lambda s: group_of(s, "main")["armed"])
    assert pick(rig.menu(), "Main", ARM).checked is True
    assert pick(rig.menu(), "Main", "Start").text == "Start"

    rig.choose("Main", ARM)  # checked: choosing it disarms
    rig.settle()
    assert group_of(rig.status(), "main")["armed"] is False
    assert not rig.store.load("studio").group("main").armed
    rig.wait_tray("main disarmed", lambda s: not group_of(s, "main")["armed"])
    assert pick(rig.menu(), "Main", ARM).checked is False


def test_target_items_toggle_their_target(rig: Rig) -> None:
    assert pick(rig.menu(), "Main", "site").checked is False
    assert pick(rig.menu(), "Main", "rec").checked is True
    rig.choose("Main", "site")
    rig.choose("Main", "rec")
    rig.settle()
    assert target_of(rig.status(), "site")["enabled"] is True
    assert target_of(rig.status(), "rec")["enabled"] is False
    saved = rig.store.load("studio")
    assert [t.enabled for t in saved.group("main").targets] == [False, True]  # rec, site
    assert [t.enabled for t in saved.group("alt").targets] == [True, False]  # untouched
    rig.wait_tray(
        "site on and rec off",
        lambda s: target_of(s, "site")["enabled"] and not target_of(s, "rec")["enabled"],
    )
    assert pick(rig.menu(), "Main", "site").checked is True
    assert pick(rig.menu(), "Main", "rec").checked is False

    rig.choose("Main", "site")
    rig.settle()
    assert target_of(rig.status(), "site")["enabled"] is False
    rig.wait_tray("site off", lambda s: not target_of(s, "site")["enabled"])
    assert pick(rig.menu(), "Main", "site").checked is False


def test_start_all_and_stop_all(rig: Rig) -> None:
    rig.choose("Start all")
    rig.settle()
    assert [g["state"] for g in rig.status()["groups"]] == ["waiting", "waiting"]
    rig.wait_tray("both waiting", lambda s: overall(s.status).state == "waiting")
    assert pick(rig.menu(), "alt", "Stop").text == "Stop"
    rig.choose("Stop all")
    rig.settle()
    assert [g["state"] for g in rig.status()["groups"]] == ["idle", "idle"]
    rig.wait_tray("both idle", lambda s: overall(s.status).state == "idle")


def test_profile_items_switch_the_profile(rig: Rig) -> None:
    items = pick(rig.menu(), "Profile: studio").submenu
    assert [(i.text, i.checked, i.radio) for i in items.items] == [
        ("spare", False, True),
        ("studio", True, True),
    ]
    rig.choose("Profile: studio", "spare")
    rig.settle()
    assert rig.control.profile.name == "spare"
    assert rig.store.active_name == "spare"
    assert [g["id"] for g in rig.status()["groups"]] == ["backup"]
    rig.wait_tray("profile spare", lambda s: s.status["profile"] == "spare")
    assert [i.text for i in pick(rig.menu(), "Profile: spare").submenu.items] == ["spare", "studio"]
    assert pick(rig.menu(), "Profile: spare", "spare").checked is True
    assert texts(pick(rig.menu(), "backup").submenu)[-1] == "tape"


def test_a_refused_operation_is_shown_and_changes_nothing(rig: Rig) -> None:
    rig.choose("Main", "Start")
    rig.settle()
    rig.wait_tray("main waiting", lambda s: group_of(s, "main")["state"] == "waiting")
    rig.choose("Profile: studio", "spare")  # refused while a group is started
    rig.settle()  # the error is handled on the core, not raised into the menu
    assert rig.control.profile.name == "studio"
    title, message = rig.icon.notifications[-1]
    assert title == "Cascade could not do that"
    assert "a stream is live or a group is started or armed" in message


def test_local_items_copy_open_and_quit(rig: Rig, fake_desktop: Desktop) -> None:
    url = rig.agent.profile.ingest.obs_url
    assert pick(rig.menu(), "Cascade").enabled is False
    assert find(rig.menu(), f"Ingest: {url}").enabled is False
    rig.choose("Copy ingest URL")
    rig.choose("Copy API token")
    rig.choose("Open logs folder")
    assert fake_desktop.copied == [url, TOKEN]
    assert fake_desktop.folders == [rig.logs]
    assert pick(rig.menu(), "Open dashboard").enabled is False  # no dashboard yet
    login = pick(rig.menu(), "Launch at login")
    assert (login.enabled, login.checked) == (False, False)  # autostart is not available
    assert rig.scheduled == []  # none of these touched the core

    agent = psutil.Process()
    children = [p for p in agent.children(recursive=True) if "ffmpeg" in p.name().lower()]
    assert children, "the agent has no FFmpeg child (its ingest) to check"
    rig.choose("Quit Cascade")
    rig.core.join(20)
    assert not rig.core.thread.is_alive(), "quitting did not stop the core"
    assert rig.core.error is None
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_open_dashboard_opens_a_fresh_login_link_each_time(
    store: ProfileStore, config_dir: Path, fake_desktop: Desktop
) -> None:
    links = iter(["http://127.0.0.1:47830/login?code=one", "http://127.0.0.1:47830/login?code=two"])
    rig = Rig(
        config_dir,
        store,
        dashboard_url="http://127.0.0.1:47830/",
        dashboard_link=lambda: next(links),
    ).start()
    try:
        assert pick(rig.menu(), "Open dashboard").enabled
        rig.choose("Open dashboard")
        rig.choose("Open dashboard")
        assert fake_desktop.pages == [
            "http://127.0.0.1:47830/login?code=one",
            "http://127.0.0.1:47830/login?code=two",
        ]
        assert rig.scheduled == []  # the core was not involved
    finally:
        rig.stop()


def test_launch_at_login_writes_and_removes_the_autostart_entry(
    store: ProfileStore, config_dir: Path, fake_desktop: Desktop, tmp_path: Path
) -> None:
    """The real XDG implementation in a temporary home: the item's check mark follows the
    file on disk, and the menu is rebuilt after each choice."""
    entry = for_this_machine(config_dir, platform="linux", home=tmp_path / "home")
    desktop_file = tmp_path / "home" / ".config" / "autostart" / "cascade.desktop"
    rig = Rig(config_dir, store, autostart=entry).start()
    try:
        login = pick(rig.menu(), "Launch at login")
        assert (login.enabled, login.checked) == (True, False)
        rig.choose("Launch at login")
        assert desktop_file.is_file()
        assert "X-Cascade-Autostart=true" in desktop_file.read_text()
        rig.wait_for("the item checked", lambda: pick(rig.menu(), "Launch at login").checked)
        rig.choose("Launch at login")
        assert not desktop_file.exists()
        rig.wait_for("the item unchecked", lambda: not pick(rig.menu(), "Launch at login").checked)
    finally:
        rig.stop()


def test_launch_at_login_refused_is_shown_and_changes_nothing(
    store: ProfileStore, config_dir: Path, fake_desktop: Desktop, tmp_path: Path
) -> None:
    """A cascade.desktop that Cascade did not write is left alone; the person is told why."""
    desktop_file = tmp_path / "home" / ".config" / "autostart" / "cascade.desktop"
    desktop_file.parent.mkdir(parents=True)
    desktop_file.write_text("[Desktop Entry]\nType=Application\nExec=something-else\n")
    before = desktop_file.read_bytes()
    entry = for_this_machine(config_dir, platform="linux", home=tmp_path / "home")
    rig = Rig(config_dir, store, autostart=entry).start()
    try:
        rig.choose("Launch at login")
        assert desktop_file.read_bytes() == before
        assert not pick(rig.menu(), "Launch at login").checked
        notes = rig.icon.notifications
        assert notes and "launch at login" in notes[-1][1].lower(), notes
    finally:
        rig.stop()


def test_an_operation_without_ffmpeg_is_refused_with_a_notification(
    store: ProfileStore, config_dir: Path, tmp_path: Path
) -> None:
    rig = Rig(config_dir, store, settings=Settings(ffmpeg=str(tmp_path / "no-ffmpeg"))).start()
    try:
        assert overall(rig.tray.state.status).state == "error"
        rig.choose("Main", "Start")
        rig.settle()
        title, message = rig.icon.notifications[-1]
        assert title == "Cascade could not do that"
        assert "FFmpeg is not available" in message
        assert group_of(rig.status(), "main")["state"] == "idle"
    finally:
        rig.stop()

"""The tray menu as a pure function of the agent's state.

:func:`overall` says what the icon shows; :func:`menu` lays out every entry. Neither holds
state nor touches pystray: the tray turns the entries into pystray items
(:mod:`agent.tray.menu`) and each entry's :class:`Action` into a call on the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Action:
    """What choosing an entry does: an operation name and its argument."""

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One menu line: a label, and an action, a submenu, or neither (a caption)."""

    label: str
    action: Action | None = None
    checked: bool | None = None  # None: not a check item
    radio: bool = False
    enabled: bool = True
    default: bool = False
    children: tuple[Entry, ...] | None = None


SEPARATOR = Entry("-")


@dataclass(frozen=True, slots=True)
class Overall:
    """The icon's state (``idle``, ``waiting``, ``live``, ``degraded``, ``error``) and the
    one-line summary used in the header and the tooltip."""

    state: str
    summary: str


@dataclass(frozen=True, slots=True)
class TrayState:
    """Everything the menu shows, as the core reports it."""

    status: JsonObject
    profiles: tuple[str, ...] = ()
    autostart: bool | None = None  # None: launching at login is not available here
    dashboard_url: str = ""  # "": no dashboard to open


WANTS_OUTPUT = ("armed", "waiting", "starting", "live", "degraded")


def overall(status: JsonObject) -> Overall:
    """Idle, Waiting for OBS, Live — N of M targets, or Problem, and the icon to match."""
    ingest = status.get("ingest", {})
    problem = status.get("problem") or ""
    if problem or ingest.get("state") == "failed":
        return Overall("error", f"Problem: {_short(problem or ingest.get('reason', ''))}")
    groups = status.get("groups", [])
    active = [g for g in groups if g.get("state") in WANTS_OUTPUT]
    if not active:
        return Overall("idle", "Idle")
    if ingest.get("state") != "receiving":
        return Overall("waiting", "Waiting for OBS")
    wanted = [t for g in active for t in g.get("targets", []) if t.get("enabled")]
    live = sum(1 for t in wanted if t.get("state") == "live")
    summary = f"Live — {live} of {len(wanted)} targets"
    failing = any(g.get("state") == "degraded" for g in active)
    return Overall("degraded" if failing else "live", summary)


def menu(state: TrayState) -> tuple[Entry, ...]:
    """Every entry of the tray menu, top to bottom."""
    status = state.status
    ingest = status.get("ingest", {})
    ingest_url = str(ingest.get("url") or "")
    head = overall(status)
    entries: list[Entry] = [
        Entry(f"Cascade — {head.summary}", enabled=False),
        Entry(f"Ingest: {ingest_url or 'not set'}", enabled=False),
        Entry("Copy ingest URL", Action("copy_ingest_url"), enabled=bool(ingest_url)),
        SEPARATOR,
        Entry("Start all", Action("start_all"), default=True),
        Entry("Stop all", Action("stop_all")),
        SEPARATOR,
    ]
    groups = status.get("groups", [])
    entries.extend(_group(g) for g in groups)
    if groups:
        entries.append(SEPARATOR)
    profile = str(status.get("profile", ""))
    names = state.profiles or ((profile,) if profile else ())
    entries.append(
        Entry(
            f"Profile: {profile}",
            children=tuple(
                Entry(name, Action("activate_profile", name), checked=name == profile, radio=True)
                for name in names
            ),
        )
    )
    entries += [
        Entry("Open dashboard", Action("open_dashboard"), enabled=bool(state.dashboard_url)),
        Entry("Copy API token", Action("copy_token")),
        Entry(
            "Launch at login",
            Action("toggle_autostart"),
            checked=bool(state.autostart),
            enabled=state.autostart is not None,
        ),
        Entry("Open logs folder", Action("open_logs")),
        SEPARATOR,
        Entry("Quit Cascade", Action("quit")),
    ]
    return tuple(entries)


def _group(group: JsonObject) -> Entry:
    gid = str(group["id"])
    state = str(group.get("state", "idle"))
    running = state in WANTS_OUTPUT and (group.get("live") or state != "armed")
    rate = _rate(group.get("bitrate_kbps"))
    caption = f"{state.capitalize()}{f' · {rate}' if rate else ''}"
    children: list[Entry] = [
        Entry(caption, enabled=False),
        Entry(
            "Stop" if running else "Start", Action("stop_group" if running else "start_group", gid)
        ),
        Entry(
            "Arm (live whenever OBS streams)",
            Action("disarm_group" if group.get("armed") else "arm_group", gid),
            checked=bool(group.get("armed")),
        ),
    ]
    encoder = group.get("encoder") or {}
    if encoder.get("last_error"):
        children.append(Entry(f"Encoder: {_short(encoder['last_error'])}", enabled=False))
    targets = group.get("targets", [])
    if targets:
        children.append(SEPARATOR)
    children.extend(_target(t) for t in targets)
    label = f"{group.get('name') or gid} — {state}{f' · {rate}' if rate else ''}"
    return Entry(label, children=tuple(children))


def _target(target: JsonObject) -> Entry:
    tid = str(target["id"])
    state = str(target.get("state", ""))
    label = tid
    if state in ("retrying", "failed"):
        error = _short(str(target.get("last_error") or ""), 40)
        label = f"{tid} — {state}{f': {error}' if error else ''}"
    elif state == "live":
        rate = _rate(target.get("bitrate_kbps"))
        label = f"{tid} — live{f' · {rate}' if rate else ''}"
    return Entry(label, Action("toggle_target", tid), checked=bool(target.get("enabled")))


def _rate(kbps: object) -> str:
    if not isinstance(kbps, int | float) or kbps <= 0:
        return ""
    return f"{kbps / 1000:.1f} Mb/s" if kbps >= 1000 else f"{kbps:.0f} kb/s"


def _short(text: str, limit: int = 60) -> str:
    """The gist of an error for a menu line: its last clause, cut to ``limit``."""
    text = " ".join(text.split())
    tail = text.rsplit(": ", 1)[-1] if ": " in text else text
    return tail if len(tail) <= limit else tail[: limit - 1] + "…"

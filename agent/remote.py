"""The CLI commands that drive a running agent through its local API, like any integration.

``cascade status``, ``start|stop|toggle ID``, ``start-all``, ``stop-all`` call the API with
:class:`~agent.api.client.ApiClient` and print a person-friendly answer built from the
resulting state the API returns (``--json`` prints the answer itself). ``cascade token``
prints the API token, for pasting into an OBS script or a Stream Deck button;
``cascade token rotate`` replaces it (a running agent switches to the new one at once).
``cascade dashboard`` opens the running agent's dashboard in the browser, logged in by a
one-time link (``--print`` only prints the link).

An ``ID`` is a group or a target: for a group, start/stop/toggle act on the group; for a
target, start enables it, stop disables it and toggle flips it (no other target is touched).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from agent.api.client import ApiClient, running_holder
from agent.errors import CascadeError

Out = Callable[[str], None]
JsonObject = dict[str, Any]

API = "/api/v1"
COMMANDS = frozenset(
    {"status", "start", "stop", "toggle", "start-all", "stop-all", "token", "dashboard"}
)
TARGET_ACTIONS = {"start": "enable", "stop": "disable", "toggle": "toggle"}


def add_parsers(sub: Any) -> None:
    """Register the API client commands on the CLI's subparsers."""
    status = sub.add_parser("status", help="what the running agent is doing")
    _json_flag(status)
    for action, text in (
        ("start", "start a group, or enable a target"),
        ("stop", "stop a group, or disable a target"),
        ("toggle", "start/stop a group, or enable/disable a target"),
    ):
        parser = sub.add_parser(action, help=f"{text} (on the running agent)")
        parser.add_argument("id", metavar="ID", help="a group or target id")
        _json_flag(parser)
    _json_flag(sub.add_parser("start-all", help="start every group"))
    _json_flag(sub.add_parser("stop-all", help="stop every group"))
    dashboard = sub.add_parser(
        "dashboard", help="open the running agent's dashboard in the browser, logged in"
    )
    dashboard.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the one-time login link (valid for a minute) instead of opening it",
    )
    token = sub.add_parser(
        "token", help="print the local API token (for OBS scripts, Stream Deck, ...)"
    )
    token.add_argument(
        "token_action",
        nargs="?",
        choices=["rotate"],
        metavar="rotate",
        help="replace the token with a new one",
    )


def _dashboard(client: ApiClient, print_only: bool, out: Out) -> int:
    link = str(client.post(f"{API}/dashboard/link")["url"])
    if print_only:
        out(link)
        return 0
    from agent.platform import desktop

    if desktop.open_page(link):
        out(f"opened the dashboard ({link.split('/login', 1)[0]}/) in the browser")
    else:
        out(f"no browser could be started here; open this link within a minute: {link}")
    return 0


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def run(args: argparse.Namespace, cfg: Path, out: Out = print) -> int:
    """Run one of :data:`COMMANDS`; errors are raised as :class:`CascadeError`."""
    if args.command == "token":
        return _token(args, cfg, out)
    client = ApiClient.for_config(cfg)
    answer: JsonObject
    if args.command == "dashboard":
        return _dashboard(client, args.print_only, out)
    if args.command == "status":
        answer = client.get(f"{API}/status")
        out(_dump(answer) if args.json else "\n".join(format_status(answer)))
        return 0
    if args.command in ("start-all", "stop-all"):
        answer = client.post(f"{API}/{args.command}")
        verb = "started" if args.command == "start-all" else "stopped"
        out(_dump(answer) if args.json else all_line(answer, verb))
        return 0
    kind, path = _action_path(client, args.id, args.command)
    answer = client.post(path)
    if args.json:
        out(_dump(answer))
    else:
        out(group_line(answer) if kind == "group" else target_line(answer))
    return 0


def _dump(answer: Any) -> str:
    return json.dumps(answer, indent=2)


def _action_path(client: ApiClient, item: str, action: str) -> tuple[str, str]:
    """Whether ``item`` is a group or a target of the active profile, and the API path."""
    profile: JsonObject = client.get(f"{API}/profile")
    groups = profile.get("groups", [])
    slug = quote(item, safe="")
    if any(g["id"] == item for g in groups):
        return "group", f"{API}/groups/{slug}/{action}"
    targets = [t["id"] for g in groups for t in g.get("targets", [])]
    if item in targets:
        return "target", f"{API}/targets/{slug}/{TARGET_ACTIONS[action]}"
    raise CascadeError(
        f"there is no group or target '{item}' in profile '{profile.get('name', '?')}'",
        hint=(
            f"Known groups: {_known(g['id'] for g in groups)}; "
            f"known targets: {_known(targets)} ('cascade status' shows them)"
        ),
    )


def _known(ids: Any) -> str:
    names = sorted(ids)
    return ", ".join(names) if names else "none"


# -- the token ----------------------------------------------------------------------------------


def _token(args: argparse.Namespace, cfg: Path, out: Out) -> int:
    from agent.api.token import TokenStore

    store = TokenStore(cfg)
    if args.token_action != "rotate":
        out(store.get_or_create())  # the token alone: `cascade token | ...` pipes it
        return 0
    if running_holder(cfg) is not None:
        # The running agent stores the new token and accepts only it from now on.
        ApiClient.for_config(cfg).post(f"{API}/token/rotate")
        token = store.read()
        if token is None:
            raise CascadeError("the new token could not be read back", subject="API token")
        print("The running agent now accepts only the new token.", file=sys.stderr)
    else:
        token = store.rotate()
    out(token)
    return 0


# -- answers a person reads -----------------------------------------------------------------

_GROUP_STATES = {
    "idle": "stopped",
    "waiting": "started, waiting for the stream from OBS",
    "armed": "armed, goes live when OBS publishes",
    "starting": "starting",
    "live": "live",
    "degraded": "live with problems",
}


def _kbps(value: Any) -> str:
    return f"{float(value):.0f} kbps"


def _counts(group: JsonObject) -> str:
    targets = group.get("targets", [])
    if not targets:
        return "no targets"
    enabled = [t for t in targets if t.get("enabled", True)]
    live = sum(1 for t in enabled if t.get("state") == "live")
    text = f"{live} of {len(enabled)} target{'' if len(enabled) == 1 else 's'} live"
    disabled = len(targets) - len(enabled)
    if disabled:
        text += f", {disabled} disabled"
    return text


def group_line(group: JsonObject) -> str:
    """One line about a group: ``group 'main': live (2 of 2 targets live, 3000 kbps)``."""
    state = str(group.get("state", "?"))
    details = _counts(group)
    if state in ("live", "degraded") and group.get("bitrate_kbps"):
        details += f", {_kbps(group['bitrate_kbps'])}"
    line = f"group '{group.get('id')}': {_GROUP_STATES.get(state, state)} ({details})"
    failing = [t for t in group.get("targets", []) if t.get("state") in ("retrying", "failed")]
    for target in failing:
        line += f"; '{target['id']}' {target['state']}"
        if target.get("last_error"):
            line += f": {target['last_error']}"
    encoder = group.get("encoder") or {}
    if encoder.get("last_error"):
        line += f"; encoder: {encoder['last_error']}"
    return line


def target_line(target: JsonObject) -> str:
    """One line about a target: ``target 'twitch': disabled``."""
    name = f"target '{target.get('id')}'"
    state = str(target.get("state", "?"))
    if state == "disabled" or target.get("enabled") is False:
        return f"{name}: disabled"
    group = target.get("group", "?")
    group_state = target.get("group_state")
    if state == "live":
        bitrate = target.get("bitrate_kbps")
        return f"{name}: live" + (f" ({_kbps(bitrate)})" if bitrate else "")
    if state in ("retrying", "failed"):
        error = target.get("last_error")
        return f"{name}: {state}" + (f" ({error})" if error else "")
    if group_state == "idle" or state == "idle":
        return (
            f"{name}: enabled; its group '{group}' is stopped ('cascade start {group}' starts it)"
        )
    if state == "waiting":
        return f"{name}: enabled, waiting for the stream from OBS"
    return f"{name}: enabled, {state}"


def all_line(status: JsonObject, verb: str) -> str:
    """One line after start-all / stop-all, from the resulting status."""
    groups = status.get("groups", [])
    if not groups:
        profile = status.get("profile", "?")
        return f"there are no groups in profile '{profile}' ('cascade group add ID')"
    totals = status.get("totals", {})
    states = ", ".join(f"'{g['id']}' {_GROUP_STATES.get(g['state'], g['state'])}" for g in groups)
    live, count = totals.get("targets_live", 0), totals.get("targets", 0)
    return f"all groups {verb}: {states} ({live} of {count} targets live)"


def format_status(status: JsonObject) -> list[str]:
    """``cascade status``: the profile, the ingest and OBS URL, each group and target."""
    lines = [f"Cascade {status.get('version', '?')}, profile '{status.get('profile', '?')}'"]
    if status.get("problem"):
        lines.append(f"Problem: {status['problem']}")
    lines.append(_ingest_line(status.get("ingest", {})))
    groups = status.get("groups", [])
    if not groups:
        lines.append("No groups yet: add one with 'cascade group add ID'.")
    for group in groups:
        lines.extend(_group_lines(group))
    totals = status.get("totals")
    if totals:
        n_groups = len(groups)
        total = (
            f"Total: {totals.get('groups_live', 0)} of {n_groups} "
            f"group{'' if n_groups == 1 else 's'} live, "
            f"{totals.get('targets_live', 0)} of {totals.get('targets', 0)} targets live"
        )
        if totals.get("targets_failing"):
            total += f", {totals['targets_failing']} failing"
        if totals.get("bitrate_kbps"):
            total += f", {_kbps(totals['bitrate_kbps'])} out"
        lines.append(total)
    return lines


def _ingest_line(ingest: JsonObject) -> str:
    state = str(ingest.get("state", "?"))
    url = ingest.get("url") or "?"
    kind = ingest.get("kind", "rtmp")
    if state == "receiving":
        line = f"Ingest: receiving at {url}"
        stream = _stream_text(ingest.get("stream") or {}, ingest.get("bitrate_kbps"))
        return f"{line} ({stream})" if stream else line
    if state in ("listening", "ended"):
        if kind == "pull":
            return f"Ingest: connecting to {url}"
        return f"Ingest: waiting for OBS at {url} (OBS: Settings > Stream > Server)"
    reason = ingest.get("reason")
    return f"Ingest: {state} at {url}" + (f" ({reason})" if reason else "")


def _stream_text(stream: JsonObject, bitrate: Any) -> str:
    parts = []
    if stream.get("video_codec"):
        video = str(stream["video_codec"])
        if stream.get("width") and stream.get("height"):
            video += f" {stream['width']}x{stream['height']}"
        if stream.get("fps"):
            video += f" {float(stream['fps']):g} fps"
        parts.append(video)
    if stream.get("audio_codec"):
        parts.append(str(stream["audio_codec"]))
    text = " + ".join(parts)
    if bitrate:
        text = f"{text}, {_kbps(bitrate)}" if text else _kbps(bitrate)
    return text


def _group_lines(group: JsonObject) -> list[str]:
    state = str(group.get("state", "?"))
    label = f"Group '{group.get('id')}'"
    if group.get("name") and group.get("name") != group.get("id"):
        label += f' "{group["name"]}"'
    head = f"{label} ({group.get('mode', '?')}): {_GROUP_STATES.get(state, state)}"
    head += f", {_counts(group)}"
    if state in ("live", "degraded") and group.get("bitrate_kbps"):
        head += f", {_kbps(group['bitrate_kbps'])}"
    lines = [head]
    encoder = group.get("encoder") or {}
    if encoder:
        enc = f"  encoder: {encoder.get('state', '?')}"
        if encoder.get("fps"):
            enc += f", {float(encoder['fps']):g} fps"
        if encoder.get("speed"):
            enc += f", {float(encoder['speed']):g}x"
        if encoder.get("dropped_frames"):
            enc += f", {encoder['dropped_frames']} dropped frames"
        if encoder.get("last_error"):
            enc += f"; last error: {encoder['last_error']}"
        lines.append(enc)
    targets = group.get("targets", [])
    width = max((len(str(t.get("id", ""))) for t in targets), default=0)
    for target in targets:
        line = f"  {target.get('id')!s:<{width}}  {target.get('state', '?'):<10}"
        if target.get("state") == "live" and target.get("bitrate_kbps") is not None:
            line += f"  {_kbps(target['bitrate_kbps'])}"
        if target.get("retries"):
            line += f"  {target['retries']} retries"
        if target.get("last_error"):
            line += f"  last error: {target['last_error']}"
        lines.append(line.rstrip())
    return lines

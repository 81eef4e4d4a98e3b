"""Screenshots of Cascade's tray icon in every state, for a person to look at.

    python scripts/tray_screenshots.py OUT_DIR

Starts a virtual X display (Xvfb) with a small system tray (trayer) on it, shows Cascade's
real tray (:class:`agent.tray.app.Tray`, pystray's ``xorg`` backend) and walks it through the
overall states idle, waiting, live, degraded and error. For each state it waits until the icon
docked in the tray shows that state's image and tooltip, then saves

- ``tray-<state>.png``: the tray panel as the screen shows it, and
- ``icon-<state>.png``: the docked icon alone, magnified,

and at the end ``contact-sheet.png`` with every state side by side: the panel, the icon
magnified, the icon drawn at 64 px (with transparency, on a light and a dark background) and
its tooltip. With ``$DISPLAY`` already set, that display is used instead; it must have a system
tray that docks XEmbed icons (trayer, stalonetray, XFCE's, ...).

Needs Debian's ``xvfb`` and ``trayer`` (``.ci/run`` installs them). The images are for looking
at: nothing here is compared with stored pictures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Debian packages, by the binary each one gives.
BINARIES = {"Xvfb": "xvfb", "trayer": "trayer"}
TRAY_HEIGHT = 26  # trayer's panel: it docks icons 24 px square, a usual Linux tray size
WAIT = 15.0


class XSessionError(RuntimeError):
    """The virtual display or its tray could not be started."""


def missing_binaries() -> list[str]:
    found = {exe: shutil.which(exe) for exe in BINARIES}
    return [f"{exe} (Debian package {BINARIES[exe]})" for exe, path in found.items() if not path]


class XSession:
    """Xvfb on a free display number with trayer, a system tray, docked on top of it."""

    def __init__(self, *, size: str = "640x200", tray_height: int = TRAY_HEIGHT) -> None:
        self.size = size
        self.tray_height = tray_height
        self.name = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._display: Any = None

    def start(self) -> XSession:
        missing = missing_binaries()
        if missing:
            raise XSessionError(
                "cannot start a virtual X display with a system tray: missing "
                + ", ".join(missing)
                + " (apt-get install xvfb trayer; .ci/run installs them)"
            )
        read, write = os.pipe()
        try:
            xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{self.size}x24",
                 "-nolisten", "tcp", "-noreset"],
                pass_fds=(write,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self._procs.append(xvfb)
            os.close(write)
            write = -1
            number = self._read_display(read, xvfb)
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)
        self.name = f":{number}"
        try:
            self._start_tray()
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _read_display(fd: int, xvfb: subprocess.Popen[bytes]) -> int:
        """Xvfb writes the display number it chose to ``-displayfd`` once it accepts clients."""
        data = b""
        deadline = time.monotonic() + WAIT
        while not data.endswith(b"\n"):
            if time.monotonic() > deadline or xvfb.poll() is not None:
                raise XSessionError(f"Xvfb did not start (exit code {xvfb.poll()})")
            chunk = os.read(fd, 64)
            if not chunk:
                raise XSessionError(f"Xvfb did not start (exit code {xvfb.wait(WAIT)})")
            data += chunk
        return int(data.strip())

    def _start_tray(self) -> None:
        height = str(self.tray_height)
        tray = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "left", "--widthtype", "request",
             "--heighttype", "pixel", "--height", height, "--iconspacing", "6",
             "--padding", "6", "--margin", "0", "--SetDockType", "false",
             "--transparent", "true", "--alpha", "0", "--tint", "0x3c4043"],
            env={**os.environ, "DISPLAY": self.name},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._procs.append(tray)
        deadline = time.monotonic() + WAIT
        while not self.has_tray():
            if tray.poll() is not None:
                raise XSessionError(f"trayer exited with {tray.returncode} on {self.name}")
            if time.monotonic() > deadline:
                raise XSessionError(f"trayer did not take the system tray on {self.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._display is not None:
            with contextlib.suppress(Exception):
                self._display.close()
            self._display = None
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(WAIT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()

    def kill_server(self) -> None:
        """Kill Xvfb outright, the way a crashed X server or an ended session goes: every
        client's connection breaks at once."""
        if self._display is not None:
            with contextlib.suppress(Exception):
                self._display.close()
            self._display = None
        server = self._procs[0]
        server.kill()
        server.wait(WAIT)

    def __enter__(self) -> XSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- looking at the screen ----------------------------------------------------------------

    def display(self) -> Any:
        """A python-xlib connection to the display (one, kept)."""
        if self._display is None:
            from Xlib import display as xdisplay

            self._display = xdisplay.Display(self.name)
        return self._display

    def has_tray(self) -> bool:
        """Whether a system tray owns the ``_NET_SYSTEM_TRAY_S0`` selection."""
        from Xlib import X

        d = self.display()
        owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return bool(owner != X.NONE)

    def icons(self, prefix: str = "Cascade - ") -> list[Icon]:
        """Every window whose name starts with ``prefix``, and whether it is docked."""
        return find_icons(self.display(), prefix)


@dataclass(frozen=True)
class Icon:
    """A tray icon's X window: its name (pystray's tooltip), whether a tray docked it (its
    parent is not the root window), and where it is on the screen."""

    window: Any
    name: str
    docked: bool
    x: int
    y: int
    width: int
    height: int


def find_icons(display: Any, prefix: str) -> list[Icon]:
    from Xlib import error

    root = display.screen().root
    found: list[Icon] = []

    def walk(window: Any) -> Iterator[Any]:
        try:
            children = window.query_tree().children
        except error.XError:  # gone meanwhile
            return
        for child in children:
            yield child
            yield from walk(child)

    for window in walk(root):
        try:
            name = window.get_wm_name()
            if not isinstance(name, str) or not name.startswith(prefix):
                continue
            parent = window.query_tree().parent
            geometry = window.get_geometry()
            at = window.translate_coords(root, 0, 0)
        except error.XError:
            continue
        found.append(
            Icon(
                window,
                name,
                parent.id != root.id,
                -at.x,
                -at.y,
                geometry.width,
                geometry.height,
            )
        )
    return found


def grab(display: Any, x: int, y: int, width: int, height: int) -> Any:
    """The screen's pixels in a rectangle, as an RGB image."""
    from PIL import Image
    from Xlib import X

    root = display.screen().root
    raw = root.get_image(x, y, width, height, X.ZPixmap, 0xFFFFFFFF)
    return Image.frombytes("RGB", (width, height), raw.data, "raw", "BGRX")


# -- the states -------------------------------------------------------------------------------


def _target(tid: str, group: str, state: str, **more: Any) -> dict[str, Any]:
    from agent.core.egress import TargetStats

    enabled = more.pop("enabled", state != "disabled")
    return TargetStats(
        id=tid, group=group, state=state, enabled=enabled, destination=f"rtmp://…/{tid}", **more
    ).to_dict()


def _status(groups: list[tuple[str, str, list[dict[str, Any]]]], ingest: str, **more: Any) -> Any:
    targets = [t for _, _, ts in groups for t in ts]
    live = [t for t in targets if t["state"] == "live"]
    return {
        "profile": "studio",
        "problem": more.get("problem", ""),
        "ingest": {
            "kind": "rtmp",
            "url": "rtmp://127.0.0.1:1935/live",
            "state": ingest,
            "reason": more.get("reason", ""),
            "stream": {},
            "bitrate_kbps": None,
        },
        "groups": [
            {
                "id": gid,
                "name": gid,
                "mode": "passthrough",
                "state": state,
                "armed": False,
                "live": state != "idle",
                "encoder": None,
                "targets": ts,
                "targets_live": sum(1 for t in ts if t["state"] == "live"),
                "bitrate_kbps": sum(t["bitrate_kbps"] or 0 for t in ts if t["state"] == "live"),
            }
            for gid, state, ts in groups
        ],
        "totals": {
            "groups_live": sum(1 for _, s, _ in groups if s in ("live", "degraded")),
            "targets": len(targets),
            "targets_live": len(live),
            "targets_failing": sum(1 for t in targets if t["state"] in ("retrying", "failed")),
            "bitrate_kbps": sum(t["bitrate_kbps"] or 0 for t in live),
        },
    }


def sample_statuses() -> dict[str, Any]:
    """A status (as ``Control.status()`` answers) for each overall state."""
    yt, tw = "youtube", "twitch"
    return {
        "idle": _status([("main", "idle", [_target(yt, "main", "idle")])], "listening"),
        "waiting": _status([("main", "waiting", [_target(yt, "main", "waiting")])], "listening"),
        "live": _status(
            [
                (
                    "main",
                    "live",
                    [
                        _target(yt, "main", "live", bitrate_kbps=6000.0),
                        _target(tw, "main", "live", bitrate_kbps=6000.0),
                    ],
                )
            ],
            "receiving",
        ),
        "degraded": _status(
            [
                (
                    "main",
                    "degraded",
                    [
                        _target(yt, "main", "live", bitrate_kbps=6000.0),
                        _target(tw, "main", "retrying", last_error="Connection refused"),
                    ],
                )
            ],
            "receiving",
        ),
        "error": _status(
            [("main", "idle", [_target(yt, "main", "idle")])],
            "failed",
            reason="could not listen on 127.0.0.1:1935: Address already in use",
        ),
    }


# -- taking the pictures ----------------------------------------------------------------------


@dataclass
class Shot:
    state: str
    title: str
    panel: Any  # the tray panel (PIL image)
    icon: Any  # the docked icon alone


def expected_pixels(state: str, width: int, height: int) -> Any:
    """What pystray's xorg backend paints for ``state`` in a window of this size."""
    from PIL import Image

    from agent.tray.icons import render

    image = Image.new("RGB", (width, height))
    image.paste(render(state, 64).resize((width, height), Image.Resampling.LANCZOS))
    return image


def shoot(display_name: str) -> list[Shot]:
    """Show the tray on ``display_name``, walk it through every state, grab each."""
    from Xlib import display as xdisplay

    from agent.tray.app import Tray, load_backend
    from agent.tray.icons import STATES
    from agent.tray.model import TrayState, overall

    os.environ["DISPLAY"] = display_name
    os.environ.setdefault("PYSTRAY_BACKEND", "xorg")
    backend, why = load_backend()
    if backend is None:
        raise XSessionError(f"no tray backend: {why}")
    if backend.name != "xorg":
        raise XSessionError(
            f"pystray chose its {backend.name} backend: set PYSTRAY_BACKEND=xorg (the icon must "
            "be an X window to be found and grabbed)"
        )
    statuses = sample_statuses()
    tray = Tray(
        backend,
        operations={},
        local={},
        schedule=lambda coro: coro.close(),
        state=TrayState(statuses["idle"]),
    )
    shots: list[Shot] = []
    failure: list[BaseException] = []
    look = xdisplay.Display(display_name)

    def setup(icon: Any) -> None:
        icon.visible = True
        try:
            for state in STATES:
                status = statuses[state]
                assert overall(status).state == state
                tray.show(TrayState(status))
                shots.append(_wait_for(look, state, icon.title))
        except BaseException as exc:
            failure.append(exc)
        finally:
            icon.stop()

    worker = threading.Thread(target=tray.run, kwargs={"setup": setup})
    worker.start()  # pystray's loop: on another thread here, nothing else needs the main one
    worker.join(WAIT * 6)
    look.close()
    if worker.is_alive():
        raise XSessionError("the tray did not stop")
    if failure:
        raise failure[0]
    return shots


def _wait_for(display: Any, state: str, title: str) -> Shot:
    """Wait until the docked icon shows ``state``'s image and tooltip, twice in a row (the
    tray may repaint in between); grab the panel, and the icon from the same picture."""
    deadline = time.monotonic() + WAIT
    last = "no icon window yet"
    seen: bytes | None = None
    while time.monotonic() < deadline:
        icons = [i for i in find_icons(display, "Cascade - ") if i.docked]
        if len(icons) == 1:
            icon = icons[0]
            panel, (left, top) = _panel(display, icon)
            shown = panel.crop((left, top, left + icon.width, top + icon.height))
            wanted = expected_pixels(state, icon.width, icon.height)
            if icon.name == title and shown.tobytes() == wanted.tobytes():
                if seen == panel.tobytes():
                    return Shot(state, icon.name, panel, shown)
                seen = panel.tobytes()
            else:
                seen = None
            last = f"{icon.name!r} at {icon.width}x{icon.height}"
        else:
            last = f"{len(icons)} docked icons"
        time.sleep(0.05)
    raise XSessionError(f"the tray never showed the {state} icon ({last})")


def _panel(display: Any, icon: Icon) -> tuple[Any, tuple[int, int]]:
    """The tray panel around the icon (the root window's child that holds it), and where
    the icon is in it."""
    root = display.screen().root
    window = icon.window
    while True:
        parent = window.query_tree().parent
        if parent.id == root.id:
            break
        window = parent
    geometry = window.get_geometry()
    at = window.translate_coords(root, 0, 0)
    x, y = -at.x, -at.y
    return grab(display, x, y, geometry.width, geometry.height), (icon.x - x, icon.y - y)


def contact_sheet(shots: list[Shot]) -> Any:
    """Every state in a row: name, tray panel, icon magnified, icon at 64 px on light and
    dark, tooltip."""
    from PIL import Image, ImageDraw

    from agent.tray.icons import render

    zoom = 4
    pad = 16
    panel_w = max(s.panel.width for s in shots)
    panel_h = max(s.panel.height for s in shots)
    icon_w = max(s.icon.width for s in shots) * zoom
    icon_h = max(s.icon.height for s in shots) * zoom
    row_h = max(panel_h, icon_h, 64) + 2 * pad + 14
    col = [pad, pad + 90, pad + 90 + panel_w + pad]
    col.append(col[2] + icon_w + pad)
    col.append(col[3] + 64 + pad)
    width = col[4] + 64 + pad + 260
    sheet = Image.new("RGB", (width, row_h * len(shots) + pad), "#f1f3f4")
    draw = ImageDraw.Draw(sheet)
    for n, shot in enumerate(shots):
        top = pad + n * row_h
        draw.text((col[0], top + pad), shot.state, fill="#202124")
        sheet.paste(shot.panel, (col[1], top))
        big = shot.icon.resize((shot.icon.width * zoom, shot.icon.height * zoom), Image.NEAREST)
        sheet.paste(big, (col[2], top))
        drawn = render(shot.state, 64)
        light = Image.new("RGB", (64, 64), "#ffffff")
        light.paste(drawn, (0, 0), drawn)
        dark = Image.new("RGB", (64, 64), "#202124")
        dark.paste(drawn, (0, 0), drawn)
        sheet.paste(light, (col[3], top))
        sheet.paste(dark, (col[4], top))
        draw.text((col[4] + 64 + pad, top + pad), shot.title, fill="#202124")
    return sheet


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    session: XSession | None = None
    try:
        display_name = os.environ.get("DISPLAY", "")
        if not display_name:
            session = XSession().start()
            display_name = session.name
        shots = shoot(display_name)
    except XSessionError as exc:
        print(f"tray_screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        if session is not None:
            session.stop()
    written = []
    for shot in shots:
        for kind, image in (("tray", shot.panel), ("icon", shot.icon)):
            path = out / f"{kind}-{shot.state}.png"
            if kind == "icon":
                image = image.resize((image.width * 4, image.height * 4), 0)
            image.save(path)
            written.append(path)
    sheet = out / "contact-sheet.png"
    contact_sheet(shots).save(sheet)
    written.append(sheet)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

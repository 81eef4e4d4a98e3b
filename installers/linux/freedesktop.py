"""The freedesktop.org pieces every Linux package of Cascade carries: its menu entry and its
icons in the hicolor theme.

- :func:`desktop_entry`: ``cascade.desktop`` for ``/usr/share/applications`` (Desktop Entry
  Specification 1.4). It runs ``cascade run``: the agent comes up in the tray, or, when one
  is already running, that one is asked to show itself. ``Icon=cascade`` is the same name the
  launch-at-login entry uses (agent/platform/autostart.py).
- :func:`install_icons`: ``share/icons/hicolor/<n>x<n>/apps/cascade.png`` at each size of
  :data:`HICOLOR_SIZES`. The sizes ``icons/generate.py`` draws that the hicolor theme also
  lists are used as drawn (small sizes are drawn for their pixel grid, not scaled); the
  larger ones that app grids and launchers show are scaled down from its 1024 px app icon.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "build"))

import cascade_release as release  # noqa: E402

DESKTOP_FILE = f"{release.COMMAND}.desktop"
ICON_NAME = release.COMMAND
#: The ``apps`` sizes of the hicolor theme's index.theme that Cascade fills.
HICOLOR_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
APP_ICON = "cascade-1024.png"


def desktop_entry(
    *,
    exec_line: str = f"{release.COMMAND} run",
    try_exec: str | None = release.COMMAND,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The ``[Desktop Entry]`` of Cascade's menu item. ``extra`` adds keys (``X-...``)."""
    keys = {
        "Type": "Application",
        "Version": "1.4",  # desktop-file-utils 0.26 (Debian 12) validates up to 1.4
        "Name": release.APP_NAME,
        "GenericName": "Stream relay",
        "Comment": "Relay one stream from OBS to every platform at once",
        "Exec": exec_line,
        "TryExec": try_exec,
        "Icon": ICON_NAME,
        "Terminal": "false",
        "Categories": "AudioVideo;Video;",
        "Keywords": "OBS;RTMP;SRT;stream;restream;relay;Twitch;YouTube;",
        "StartupNotify": "false",
        **(extra or {}),
    }
    lines = ["[Desktop Entry]"] + [f"{k}={v}" for k, v in keys.items() if v is not None]
    return "\n".join(lines) + "\n"


def icon_image(icons: Path, size: int) -> Image.Image:
    """Cascade's app icon at ``size`` px from the folder ``icons/generate.py`` wrote."""
    drawn = icons / f"cascade-idle-{size}.png"
    if drawn.is_file():
        with Image.open(drawn) as image:
            return image.convert("RGBA")
    big = icons / APP_ICON
    if not big.is_file():
        raise FileNotFoundError(
            f"{big} is missing: run `python icons/generate.py {icons}` (build/build.py does)"
        )
    with Image.open(big) as image:
        return image.convert("RGBA").resize((size, size), Image.Resampling.LANCZOS)


def install_icons(icons: Path, share: Path) -> list[Path]:
    """Write ``share/icons/hicolor/<n>x<n>/apps/cascade.png`` for every size; their paths."""
    written = []
    for size in HICOLOR_SIZES:
        path = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        icon_image(icons, size).save(path, optimize=False)
        written.append(path)
    return written

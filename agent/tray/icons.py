"""The tray icons, drawn with Pillow from the source artwork in ``icons/cascade.json``.

One icon per overall state (idle, waiting, live, degraded, error): the Cascade glyph (three
cascading bars) with a badge in the corner. In colour for Windows and Linux; as a template
image (black with alpha, the state told by the badge's shape alone) for the macOS menu bar,
which tints it for light and dark mode. Shapes are drawn four times larger and scaled down,
so every size is smooth.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

STATES = ("idle", "waiting", "live", "degraded", "error")
#: Sizes the operating systems ask for: Windows 16-48 (and 64 for high DPI), GNOME 22-24,
#: macOS 16/32 (menu bar, @1x and @2x).
SIZES = (16, 20, 22, 24, 32, 40, 48, 64)
SUPERSAMPLE = 4


@dataclass(frozen=True, slots=True)
class Artwork:
    box: int
    glyph: tuple[tuple[tuple[float, float, float, float], float], ...]
    badge_center: tuple[float, float]
    badge_radius: float
    badge_gap: float
    states: dict[str, dict[str, Any]]
    #: Colour of a thin edge around the glyph's bars, so light bars stay readable on a light
    #: panel (Windows' light taskbar, a light GNOME top bar).
    outline: str | None


def _source() -> dict[str, Any]:
    """The artwork: ``icons/cascade.json`` from the source tree, or the copy in the package."""
    tree = Path(__file__).resolve().parents[2] / "icons" / "cascade.json"
    if tree.is_file():
        text = tree.read_text(encoding="utf-8")
    else:  # an installed package carries its own copy
        text = resources.files("agent.tray").joinpath("cascade.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def artwork() -> Artwork:
    data = _source()
    badge = data["badge"]
    return Artwork(
        box=int(data["box"]),
        glyph=tuple(
            ((float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(bar["radius"]))
            for bar in data["glyph"]
            for r in [bar["rect"]]
        ),
        badge_center=(float(badge["center"][0]), float(badge["center"][1])),
        badge_radius=float(badge["radius"]),
        badge_gap=float(badge["gap"]),
        states=dict(data["states"]),
        outline=data.get("outline"),
    )


@functools.cache
def render(state: str, size: int = 64, *, template: bool = False) -> Image.Image:
    """The icon of ``state`` at ``size`` pixels square (RGBA)."""
    if state not in STATES:
        raise ValueError(f"no icon for state {state!r}; states are {', '.join(STATES)}")
    art = artwork()
    style = art.states[state]
    big = size * SUPERSAMPLE
    scale = big / art.box
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    ink = "#000000" if template else style["glyph"]
    edge = None if template else art.outline
    edge_width = round(SUPERSAMPLE * max(1.0, size / 32))  # 1 px up to 32 px, 2 px at 64
    for (x, y, w, h), radius in art.glyph:
        box = (x * scale, y * scale, (x + w) * scale, (y + h) * scale)
        draw.rounded_rectangle(box, radius=radius * scale, fill=ink, outline=edge, width=edge_width)
    mark = style.get("mark")
    if mark:
        cx, cy = (c * scale for c in art.badge_center)
        r = art.badge_radius * scale
        gap = art.badge_gap * scale
        # A transparent moat keeps the badge readable over the glyph at 16 px.
        draw.ellipse((cx - r - gap, cy - r - gap, cx + r + gap, cy + r + gap), fill=(0, 0, 0, 0))
        colour = "#000000" if template else style["badge"]
        _badge(draw, str(mark), cx, cy, r, colour)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _badge(draw: ImageDraw.ImageDraw, mark: str, cx: float, cy: float, r: float, ink: str) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    width = max(1, round(r * 0.38))
    if mark == "dot":
        draw.ellipse(box, fill=ink)
    elif mark == "ring":
        draw.ellipse(box, outline=ink, width=width)
    elif mark == "half":
        draw.ellipse(box, outline=ink, width=width)
        draw.pieslice(box, 90, 270, fill=ink)
    elif mark == "cross":
        draw.ellipse(box, fill=ink)
        arm = r * 0.5
        clear = (0, 0, 0, 0)
        draw.line((cx - arm, cy - arm, cx + arm, cy + arm), fill=clear, width=width)
        draw.line((cx - arm, cy + arm, cx + arm, cy - arm), fill=clear, width=width)
    else:
        raise ValueError(f"unknown badge mark {mark!r}")

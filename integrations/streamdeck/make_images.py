"""Draw the Stream Deck plugin's images from Cascade's artwork, with Pillow.

    python integrations/streamdeck/make_images.py [PLUGIN_DIR]

Writes every PNG ``manifest.json`` names into ``io.cascade.relay.sdPlugin/imgs`` (or under
PLUGIN_DIR), each at its size and twice that (``@2x``), following Stream Deck's guidelines:

- ``plugin/icon``      256/512 px, the Cascade glyph live on a dark tile (the Marketplace icon)
- ``plugin/category``  28/56 px, the glyph in #DFDFDF on transparent (the actions list group)
- ``actions/*/icon``   20/40 px, monochrome #EFEFEF on transparent (the actions list)
- ``actions/*/off|on|key``  72/144 px key images, the picture in the upper part, leaving the
  lower part to the title the plugin sets ("Main\\nLIVE")

The group keys reuse the tray's drawing (``agent.tray.icons.render``); the rest are drawn here.
Shapes are drawn four times larger and scaled down. The output depends only on the artwork
and Pillow, so running the script again gives the same pictures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from agent.tray.icons import render  # noqa: E402

PLUGIN = HERE / "io.cascade.relay.sdPlugin"
SUPERSAMPLE = 4
KEY_BACKGROUND = "#16181c"
GREY = "#9aa0a6"
LIGHT = "#e8eaed"
RED = "#e53935"
GREEN = "#34a853"
ACTION_INK = "#efefef"
CATEGORY_INK = "#dfdfdf"

#: Paints a picture over the whole of a square RGBA image (already supersampled).
Painter = Callable[[Image.Image], None]


def _canvas(size: int, background: str | None) -> Image.Image:
    big = size * SUPERSAMPLE
    return Image.new("RGBA", (big, big), background if background is not None else (0, 0, 0, 0))


def _shrink(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _tinted(image: Image.Image, ink: str) -> Image.Image:
    """A monochrome copy of an RGBA image: ``ink`` everywhere, the original's alpha kept."""
    solid = Image.new("RGBA", image.size, ink)
    solid.putalpha(image.getchannel("A"))
    return solid


# -- pictures -------------------------------------------------------------------------------


def play(ink: str) -> Painter:
    def paint(image: Image.Image) -> None:
        s = image.width
        ImageDraw.Draw(image).polygon(
            [(0.22 * s, 0.12 * s), (0.22 * s, 0.88 * s), (0.86 * s, 0.5 * s)], fill=ink
        )

    return paint


def stop(ink: str) -> Painter:
    def paint(image: Image.Image) -> None:
        s = image.width
        ImageDraw.Draw(image).rounded_rectangle(
            (0.16 * s, 0.16 * s, 0.84 * s, 0.84 * s), 0.1 * s, fill=ink
        )

    return paint


def target(ring: str, dot: str) -> Painter:
    """A destination: a ring with a dot in it (lit when the target is on)."""

    def paint(image: Image.Image) -> None:
        s = image.width
        draw = ImageDraw.Draw(image)
        draw.ellipse((0.06 * s, 0.06 * s, 0.94 * s, 0.94 * s), outline=ring, width=round(0.12 * s))
        draw.ellipse((0.3 * s, 0.3 * s, 0.7 * s, 0.7 * s), fill=dot)

    return paint


def glyph(state: str) -> Painter:
    """Cascade's own glyph, drawn by the tray's renderer (in colour, with its state badge)."""

    def paint(image: Image.Image) -> None:
        image.alpha_composite(render(state, image.width))

    return paint


# -- image kinds ----------------------------------------------------------------------------


def key_image(paint: Painter, size: int) -> Image.Image:
    """A key: dark, the picture centred in the upper 60 %, room for a two-line title below."""
    image = _canvas(size, KEY_BACKGROUND)
    big = image.width
    side = round(big * 0.46)
    picture = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    paint(picture)
    image.alpha_composite(picture, ((big - side) // 2, round(big * 0.08)))
    return _shrink(image, size)


def icon_image(paint: Painter, size: int, ink: str) -> Image.Image:
    """A list icon: the shape alone, monochrome on transparent."""
    image = _canvas(size, None)
    paint(image)
    return _tinted(_shrink(image, size), ink)


def plugin_icon(size: int) -> Image.Image:
    image = _canvas(size, None)
    big = image.width
    ImageDraw.Draw(image).rounded_rectangle(
        (0, 0, big - 1, big - 1), radius=big * 0.18, fill=KEY_BACKGROUND
    )
    art = render("live", round(big * 0.72))
    offset = (big - art.width) // 2
    image.alpha_composite(art, (offset, offset))
    return _shrink(image, size)


def category_icon(size: int) -> Image.Image:
    return _tinted(render("idle", size, template=True), CATEGORY_INK)


# -- the set ------------------------------------------------------------------------------


def images() -> dict[str, Callable[[int], Image.Image]]:
    """Every image by its manifest path (no extension) and how to draw it at a size."""
    return {
        "imgs/plugin/icon": plugin_icon,
        "imgs/plugin/category": category_icon,
        "imgs/actions/toggle-group/icon": lambda n: icon_image(glyph("idle"), n, ACTION_INK),
        "imgs/actions/toggle-group/off": lambda n: key_image(glyph("idle"), n),
        "imgs/actions/toggle-group/on": lambda n: key_image(glyph("live"), n),
        "imgs/actions/toggle-target/icon": lambda n: icon_image(
            target("#000", "#000"), n, ACTION_INK
        ),
        "imgs/actions/toggle-target/off": lambda n: key_image(target(GREY, GREY), n),
        "imgs/actions/toggle-target/on": lambda n: key_image(target(LIGHT, RED), n),
        "imgs/actions/start-all/icon": lambda n: icon_image(play("#000"), n, ACTION_INK),
        "imgs/actions/start-all/key": lambda n: key_image(play(GREEN), n),
        "imgs/actions/stop-all/icon": lambda n: icon_image(stop("#000"), n, ACTION_INK),
        "imgs/actions/stop-all/key": lambda n: key_image(stop(RED), n),
    }


def base_size(name: str) -> int:
    """The @1x size of an image (its @2x file is twice as large)."""
    if name == "imgs/plugin/icon":
        return 256
    if name == "imgs/plugin/category":
        return 28
    return 20 if name.endswith("/icon") else 72


def generate(plugin: Path = PLUGIN) -> list[Path]:
    written: list[Path] = []
    for name, draw in images().items():
        size = base_size(name)
        for suffix, scale in (("", 1), ("@2x", 2)):
            path = plugin / f"{name}{suffix}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            draw(size * scale).save(path, optimize=False)
            written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else PLUGIN
    files = generate(out)
    print(f"wrote {len(files)} images under {out}")

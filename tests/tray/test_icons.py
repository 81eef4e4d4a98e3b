"""The tray icons: one per state at every size, template images for macOS, made reproducibly."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageColor

from agent.tray.icons import SIZES, STATES, artwork, render

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "icons" / "cascade.json"
PACKAGED = ROOT / "agent" / "tray" / "cascade.json"
# Read when the tests are collected, before icons/generate.py (which refreshes the packaged
# copy) has run in this session.
SOURCE_BYTES = SOURCE.read_bytes()
PACKAGED_BYTES = PACKAGED.read_bytes()


def test_the_packaged_artwork_is_the_source_artwork() -> None:
    assert PACKAGED_BYTES == SOURCE_BYTES, (
        "agent/tray/cascade.json differs from icons/cascade.json: run python icons/generate.py"
    )


@pytest.mark.parametrize("template", [False, True], ids=["colour", "template"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES)
def test_every_state_renders_at_every_size(state: str, size: int, template: bool) -> None:
    image = render(state, size, template=template)
    assert image.mode == "RGBA"
    assert image.size == (size, size)
    alpha = image.getchannel("A")
    low, high = alpha.getextrema()
    assert high == 255, "nothing opaque was drawn"
    assert low == 0, "no transparent background"


@pytest.mark.parametrize("template", [False, True], ids=["colour", "template"])
@pytest.mark.parametrize("size", SIZES)
def test_states_look_different_from_each_other(size: int, template: bool) -> None:
    images = {state: render(state, size, template=template).tobytes() for state in STATES}
    for a, b in itertools.combinations(STATES, 2):
        assert images[a] != images[b], f"{a} and {b} look the same at {size} px"


@pytest.mark.parametrize("state", STATES)
def test_colour_icons_use_the_artworks_colours(state: str) -> None:
    """The glyph in the state's colour, and the badge (all but idle) in its own."""
    style = artwork().states[state]
    image = render(state, 64)
    opaque = [(n, rgba[:3]) for n, rgba in image.getcolors(64 * 64) or [] if rgba[3] == 255]

    def near(colour: str) -> int:  # resampling shades edges: count pixels close to a colour
        rgb = ImageColor.getrgb(colour)
        return sum(
            n for n, seen in opaque if max(abs(a - b) for a, b in zip(seen, rgb, strict=True)) < 24
        )

    assert near(style["glyph"]) >= 400, f"hardly any {style['glyph']} glyph in the {state} icon"
    if style["badge"]:
        assert near(style["badge"]) >= 20, f"hardly any {style['badge']} in the {state} icon"
    if artwork().outline:
        assert near(str(artwork().outline)) >= 100, f"the {state} glyph has no edge"
    assert image.tobytes() != render(state, 64, template=True).tobytes()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES)
def test_template_images_are_black_with_alpha_only(state: str, size: int) -> None:
    image = render(state, size, template=True)
    red, green, blue, _ = image.split()
    for channel in (red, green, blue):
        assert channel.getextrema() == (0, 0), "a template image may only be black + alpha"


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="no icon for state 'sleeping'"):
        render("sleeping", 16)


def generate(out: Path) -> dict[str, bytes]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "icons" / "generate.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_generate_is_reproducible_and_writes_what_installers_need(tmp_path: Path) -> None:
    first = generate(tmp_path / "one")
    second = generate(tmp_path / "two")
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between two runs"

    expected = {f"cascade-{s}-{n}.png" for s in STATES for n in SIZES}
    expected |= {f"cascade-{s}-template-{n}.png" for s in STATES for n in (16, 32)}
    expected |= {"cascade.ico", "cascade-1024.png"}
    assert set(first) == expected
    # The files are the icons the tray draws in memory.
    for state in STATES:
        with Image.open(tmp_path / "one" / f"cascade-{state}-24.png") as png:
            assert png.mode == "RGBA"
            assert png.tobytes() == render(state, 24).tobytes()
        with Image.open(tmp_path / "one" / f"cascade-{state}-template-32.png") as png:
            assert png.tobytes() == render(state, 32, template=True).tobytes()
    with Image.open(tmp_path / "one" / "cascade.ico") as ico:
        assert {(16, 16), (24, 24), (32, 32), (48, 48), (64, 64)} <= set(ico.info["sizes"])
    with Image.open(tmp_path / "one" / "cascade-1024.png") as app:
        assert app.size == (1024, 1024)
    # Running it left the packaged artwork equal to the source.
    assert PACKAGED.read_bytes() == SOURCE.read_bytes()

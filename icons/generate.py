"""Write the icon files installers use, from the source artwork ``icons/cascade.json``.

    python icons/generate.py [OUT_DIR]     (default: icons/build)

Writes ``cascade-<state>-<size>.png`` for every state and size, ``cascade-<state>-template-
<size>.png`` (macOS menu bar), ``cascade.ico`` (Windows: the idle icon, 16-64 px) and
``cascade-1024.png`` (the app icon, for the macOS .icns). The output depends only on the
artwork and Pillow, so running it twice gives the same files. The tray itself draws its icons
in memory at start; these files are for installers and for a person to look at.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent.tray.icons import SIZES, STATES, render  # noqa: E402


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for state in STATES:
        for size in SIZES:
            path = out / f"cascade-{state}-{size}.png"
            render(state, size).save(path, optimize=False)
            written.append(path)
        for size in (16, 32):
            path = out / f"cascade-{state}-template-{size}.png"
            render(state, size, template=True).save(path, optimize=False)
            written.append(path)
    ico = out / "cascade.ico"
    render("idle", 64).save(ico, sizes=[(s, s) for s in (16, 20, 24, 32, 40, 48, 64)])
    written.append(ico)
    app = out / "cascade-1024.png"
    render("idle", 1024).save(app, optimize=False)
    written.append(app)
    # The package carries its own copy of the artwork (an installed agent has no icons/).
    shutil.copyfile(HERE / "cascade.json", HERE.parent / "agent" / "tray" / "cascade.json")
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "build"
    files = generate(target)
    print(f"wrote {len(files)} files to {target}")

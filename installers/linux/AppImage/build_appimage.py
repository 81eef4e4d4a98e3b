"""Build Cascade's AppImage: assemble the AppDir from the PyInstaller app folder, then pack it
with ``appimagetool``.

    python installers/linux/AppImage/build_appimage.py [--app dist/cascade]
        [--icons icons/build] [--out dist] [--appimagetool PATH] [--appdir-only]
        [-- EXTRA appimagetool ARGUMENTS, e.g. --runtime-file runtime-x86_64]

Run ``python build/build.py`` first. The AppDir (AppImage specification, "AppDir"):

- ``AppRun``: starts ``usr/lib/cascade/cascade``; with no arguments, ``cascade run``;
- ``cascade.desktop`` and ``cascade.png`` (256 px) at the top, which appimagetool requires,
  and ``.DirIcon``, the icon thumbnailers show;
- ``usr/lib/cascade/``: the app folder as PyInstaller made it, symbolic links kept;
- ``usr/share/applications/cascade.desktop`` and the hicolor icons, for desktop integration
  tools that install an AppImage's entry into the menu.

appimagetool (https://github.com/AppImage/appimagetool) is not a Debian package; give its
path with ``--appimagetool`` or put it on ``PATH``. Without it the AppDir is still made, and
the command that would pack it is printed. ``ARCH`` and ``VERSION`` are set for it: the file
is ``Cascade-<version>-<arch>.AppImage`` and the desktop entry gets ``X-AppImage-Version``.
Like the ``.deb``, the AppImage runs on distributions whose glibc is at least the builder's:
build on the oldest one you support.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ROOT / "build"))

import cascade_release as release  # noqa: E402
import freedesktop  # noqa: E402

APP_RUN = HERE / "AppRun"
LIB_DIR = Path("usr") / "lib" / release.COMMAND
TOP_ICON_SIZE = 256
TOOL_NAMES = ("appimagetool", "appimagetool-x86_64.AppImage", "appimagetool-aarch64.AppImage")
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class AppImageError(RuntimeError):
    """The AppDir or the AppImage could not be made; the message says what to do."""


def appimage_arch(machine: str | None = None) -> str:
    """The ``ARCH`` appimagetool wants for this machine (``x86_64``, ``aarch64``)."""
    name = (machine or platform.machine()).lower()
    if name not in _ARCHES:
        raise AppImageError(f"no AppImage architecture known for {name!r}")
    return _ARCHES[name]


def assemble(app: Path, icons: Path, appdir: Path) -> Path:
    """Make ``appdir`` (replacing an old one) from the app folder ``app``; returns it."""
    program = app / release.COMMAND
    if not (program.is_file() and os.access(program, os.X_OK)):
        raise AppImageError(f"{app} has no executable {release.COMMAND}: run build/build.py")
    if appdir.exists():
        shutil.rmtree(appdir)
    appdir.mkdir(parents=True)
    shutil.copytree(app, appdir / LIB_DIR, symlinks=True)
    shutil.copy2(APP_RUN, appdir / "AppRun")
    (appdir / "AppRun").chmod(0o755)

    # In an AppImage the command is not on PATH: no TryExec, and Exec names the command the
    # way integration tools expect to rewrite it (to the AppImage's own path).
    entry = freedesktop.desktop_entry(try_exec=None)
    (appdir / freedesktop.DESKTOP_FILE).write_text(entry, encoding="utf-8")
    share = appdir / "usr" / "share"
    (share / "applications").mkdir(parents=True)
    (share / "applications" / freedesktop.DESKTOP_FILE).write_text(entry, encoding="utf-8")
    freedesktop.install_icons(icons, share)

    top_icon = appdir / f"{freedesktop.ICON_NAME}.png"
    freedesktop.icon_image(icons, TOP_ICON_SIZE).save(top_icon, optimize=False)
    (appdir / ".DirIcon").symlink_to(top_icon.name)
    return appdir


def find_tool(explicit: Path | None) -> Path | None:
    """appimagetool: ``explicit``, else the first of :data:`TOOL_NAMES` on PATH."""
    if explicit is not None:
        return explicit
    for name in TOOL_NAMES:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    return None


def pack_command(
    tool: Path | str, appdir: Path, target: Path, extra: Sequence[str] = ()
) -> list[str]:
    """The appimagetool command that packs ``appdir`` into ``target``."""
    return [str(tool), *extra, str(appdir), str(target)]


def appimage_name(version: str, arch: str) -> str:
    """``Cascade-<version>-<arch>.AppImage``."""
    return f"{release.APP_NAME}-{version}-{arch}.AppImage"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / release.COMMAND)
    parser.add_argument("--icons", type=Path, default=ROOT / "icons" / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--appimagetool", type=Path, help="default: appimagetool on PATH")
    parser.add_argument("--appdir-only", action="store_true", help="make the AppDir, no image")
    parser.add_argument("extra", nargs="*", help="passed on to appimagetool (after --)")
    args = parser.parse_args(argv)

    version = release.version()
    try:
        arch = appimage_arch()
        appdir = assemble(args.app, args.icons, args.out / f"{release.APP_NAME}.AppDir")
    except (AppImageError, FileNotFoundError) as exc:
        print(f"build_appimage: {exc}", file=sys.stderr)
        return 1
    print(f"assembled {appdir}")
    target = args.out / appimage_name(version, arch)
    tool = find_tool(args.appimagetool)
    command = pack_command(tool or "appimagetool", appdir, target, args.extra)
    if args.appdir_only or tool is None:
        if tool is None and not args.appdir_only:
            print("appimagetool is not on PATH (see --appimagetool); to pack the AppDir, run:")
        print(f"ARCH={arch} VERSION={version} {shlex.join(command)}")
        return 0 if args.appdir_only else 1
    env = {**os.environ, "ARCH": arch, "VERSION": version}
    subprocess.run(command, check=True, env=env)
    print(f"built {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build Cascade's app for this operating system with PyInstaller.

    python build/build.py [--dist dist] [--work build/out] [--icons icons/build] [--clean]

1. Writes the icons (``icons/generate.py``) into ``--icons``;
2. runs PyInstaller on ``build/cascade.spec`` (``--noconfirm``, no UPX), output in ``--dist``,
   its work files in ``--work``;
3. runs the result's ``--version`` and says where it is: ``dist/cascade/`` (Linux, Windows)
   or ``dist/Cascade.app`` (macOS). ``build/cascade_release.py`` describes the layout.

Build from an environment that has Cascade's dependencies and ``pyinstaller>=6`` (``pip
install -e '.[dev]'``), on the oldest OS version the app should run on: the frozen app needs
a C library at least as new as the builder's. On macOS, ``CASCADE_CODESIGN_IDENTITY`` signs
it (installers/macos/SIGNING.md). The installers are made from the result:
``installers/linux/build_deb.py``, ``installers/linux/AppImage/build_appimage.py``,
``installers/windows/build_installer.py``, ``installers/macos/make_dmg.sh``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import cascade_release as release  # noqa: E402

SPEC = HERE / "cascade.spec"
GENERATE_ICONS = ROOT / "icons" / "generate.py"


class BuildError(RuntimeError):
    """A step of the build failed; the message says which and how."""


@dataclass(frozen=True, slots=True)
class Built:
    """What a build made: the deliverable (app folder or ``.app``) and its command line."""

    app: Path
    command: Path
    version: str
    seconds: float


def generate_icons(icons: Path) -> None:
    """Write the icon files into ``icons`` (the same files every time)."""
    subprocess.run([sys.executable, str(GENERATE_ICONS), str(icons)], check=True, cwd=ROOT)


def run_pyinstaller(
    dist: Path, work: Path, icons: Path, *, clean: bool = False, log_level: str = "WARN"
) -> None:
    """PyInstaller on the spec, with the icon folder passed through ``CASCADE_ICONS``."""
    argv = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        log_level,
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
    ]
    if clean:
        argv.append("--clean")
    env = {**os.environ, "CASCADE_ICONS": str(icons)}
    try:
        subprocess.run([*argv, str(SPEC)], check=True, cwd=ROOT, env=env)
    except subprocess.CalledProcessError as exc:
        raise BuildError(
            f"PyInstaller failed with exit code {exc.returncode} (output above); "
            "is it installed? pip install 'pyinstaller>=6'"
        ) from exc


def check_version(command: Path, expected: str) -> None:
    """The built command answers ``--version`` with this release's version."""
    answer = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    said = (answer.stdout + answer.stderr).strip()
    if answer.returncode != 0 or said != f"{release.COMMAND} {expected}":
        raise BuildError(f"{command} --version answered {said!r} (exit {answer.returncode})")


def build(
    dist: Path,
    work: Path,
    icons: Path,
    *,
    clean: bool = False,
    log_level: str = "WARN",
    check: bool = True,
) -> Built:
    """Icons, then PyInstaller, then the ``--version`` check; what was built."""
    started = time.monotonic()
    version = release.version(ROOT)
    generate_icons(icons)
    run_pyinstaller(dist, work, icons, clean=clean, log_level=log_level)
    command = release.command_path(dist)
    if not command.is_file():
        raise BuildError(f"PyInstaller finished but {command} is not there")
    if check:
        check_version(command, version)
    return Built(release.app_path(dist), command, version, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="default: dist/")
    parser.add_argument("--work", type=Path, default=HERE / "out", help="default: build/out/")
    parser.add_argument("--icons", type=Path, default=ROOT / "icons" / "build")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's caches first")
    parser.add_argument("--log-level", default="WARN", help="PyInstaller's (default WARN)")
    args = parser.parse_args(argv)
    try:
        built = build(
            args.dist.resolve(),
            args.work.resolve(),
            args.icons.resolve(),
            clean=args.clean,
            log_level=args.log_level,
        )
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    print(f"built Cascade {built.version} in {built.seconds:.0f} s: {built.app}")
    print(f"try: {built.command} doctor")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a Cascade release says about itself, in one place for the build and every installer.

The PyInstaller spec (``build/cascade.spec``), ``build/build.py`` and the installer scripts
under ``installers/`` read the product's names, its version (``agent.__version__``) and the
layout of the frozen app from here, so a release cannot be "0.2.0" in its Info.plist and
"0.1.0" in its ``.deb``. Nothing here imports PyInstaller: the installers use it on machines
(and in tests) where only the finished app folder exists.

The frozen app, one folder per OS (``onedir``; everything else lives in ``_internal/``):

- Linux: ``cascade/cascade``, one executable. A Linux program has no console of its own to
  hide, so the same binary serves the terminal (``cascade doctor``) and the tray
  (``cascade run`` from the menu entry or at login).
- Windows: ``cascade/cascade.exe`` (console subsystem: the command line, ``cascade doctor``
  prints) and ``cascade/cascadew.exe`` (windowed: the tray, the Start-menu entry and launch
  at login, so no console window opens), two executables sharing one ``_internal`` folder.
  The names differ by more than case because Windows file names ignore case.
- macOS: ``Cascade.app`` whose executable ``Contents/MacOS/Cascade`` is windowed and marked
  ``LSUIElement`` (menu bar only, no Dock icon). Run from a terminal, the same executable
  prints ``--version`` and ``doctor`` as usual.

A windowed executable started with no arguments (a double-click, the Start menu, Finder)
runs ``cascade run``; see ``build/cascade_main.py``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

APP_NAME = "Cascade"
"""The product's name, as people read it."""
COMMAND = "cascade"
"""The console command, the Debian package, the icon name and the app folder's name."""
BUNDLE_ID = "io.cascade.agent"
"""Reverse-DNS id: the macOS bundle, the launchd label (agent/platform/autostart.py)."""
SUMMARY = "One stream from OBS, every platform at once"
DESCRIPTION = (
    "A tray agent that takes one stream from OBS and relays it to YouTube, Twitch, Kick, "
    "Facebook, any RTMP/RTMPS/SRT server and local recordings at once."
)
PUBLISHER = "Cascade maintainers"
LICENSE = "GPL-3.0-or-later"
COPYRIGHT = "Cascade maintainers; GPL-3.0-or-later (the bundled FFmpeg is GPL)"

_VERSION_LINE = re.compile(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_RELEASE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?")


def version(root: Path = ROOT) -> str:
    """``agent.__version__``, read from ``agent/__init__.py`` without importing the package
    (the version is wanted where the agent's dependencies may not be installed)."""
    text = (root / "agent" / "__init__.py").read_text(encoding="utf-8")
    match = _VERSION_LINE.search(text)
    if match is None:
        raise ValueError(f"no __version__ = '...' line in {root / 'agent' / '__init__.py'}")
    return match.group(1)


def numeric_version(text: str) -> tuple[int, int, int, int]:
    """The four numbers Windows version resources and Inno Setup want: ``"0.1.0"`` →
    ``(0, 1, 0, 0)``, ``"1.2.3rc1"`` → ``(1, 2, 3, 0)``. Raises ValueError for a version
    that does not start with a number."""
    match = _RELEASE.match(text)
    if match is None:
        raise ValueError(f"version {text!r} does not start with a release number")
    parts = [int(part) if part is not None else 0 for part in match.groups()]
    if any(part > 0xFFFF for part in parts):
        raise ValueError(f"version {text!r} has a part above 65535 (Windows allows 16 bits)")
    return (parts[0], parts[1], parts[2], parts[3])


# --- the frozen app's layout ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Executable:
    """One executable of the frozen app: its file name (no ``.exe``) and whether it is a
    console program (True) or windowed (False)."""

    name: str
    console: bool


def executables(platform: str = sys.platform) -> tuple[Executable, ...]:
    """The executables the build makes for ``platform`` (a ``sys.platform`` value); the
    first is the one the command line uses."""
    if platform == "win32":
        return (Executable("cascade", console=True), Executable("cascadew", console=False))
    if platform == "darwin":
        return (Executable(APP_NAME, console=False),)
    return (Executable(COMMAND, console=True),)


def command_path(dist: Path, platform: str = sys.platform) -> Path:
    """Where the command-line executable of a build in ``dist`` is."""
    if platform == "darwin":
        return dist / f"{APP_NAME}.app" / "Contents" / "MacOS" / APP_NAME
    suffix = ".exe" if platform == "win32" else ""
    return dist / COMMAND / f"{executables(platform)[0].name}{suffix}"


def app_path(dist: Path, platform: str = sys.platform) -> Path:
    """What a build in ``dist`` delivers: the app folder, or ``Cascade.app`` on macOS."""
    if platform == "darwin":
        return dist / f"{APP_NAME}.app"
    return dist / COMMAND


# --- what PyInstaller cannot see by itself ----------------------------------------------------


def hidden_imports(platform: str = sys.platform) -> list[str]:
    """Modules that are imported by name at run time, so PyInstaller's analysis misses them.

    pystray picks its backend with ``importlib`` when it is imported, and its PyInstaller hook
    imports pystray to list them, which fails on a builder without a display: the backends
    of ``platform`` are listed here. keyring finds its backends through entry points (its
    hook collects them and the metadata); the modules each backend needs on ``platform`` are
    listed too, so a frozen Cascade never falls back to keyring's ``fail`` backend.
    """
    common = ["keyring.backends.chainer", "keyring.backends.fail", "keyring.backends.null"]
    if platform == "win32":
        return [
            *common,
            "pystray._win32",
            "pystray._util.win32",
            "keyring.backends.Windows",
            "win32ctypes.core",
            "win32ctypes.pywin32.pywintypes",
            "win32ctypes.pywin32.win32cred",
        ]
    if platform == "darwin":
        return [
            *common,
            "pystray._darwin",
            "keyring.backends.macOS",
            "keyring.backends.macOS.api",
        ]
    # Linux and the BSDs: pystray tries AppIndicator, then GTK, then plain X11. The first
    # two need PyGObject (gi); when the build environment has it, PyInstaller's gi hooks
    # bring its typelibs, and without it the frozen app uses the X11 backend.
    return [
        *common,
        "pystray._appindicator",
        "pystray._gtk",
        "pystray._xorg",
        "pystray._util.gtk",
        "pystray._util.notify_dbus",
        "keyring.backends.SecretService",
        "keyring.backends.libsecret",
        "keyring.backends.kwallet",
        "secretstorage",
        "jeepney",
        "jeepney.io.blocking",
    ]


EXCLUDES = [
    # The standard library's GUI toolkit: Pillow and pystray mention it, Cascade never uses it.
    "tkinter",
    "_tkinter",
    # Optional integrations of Cascade's dependencies that pull in whole toolchains when the
    # build environment has them (as CI's test environment does): yarl's pydantic support,
    # Pillow's numpy arrays, IPython displays, and the test and type-checking tools.
    "pydantic",
    "pydantic_core",
    "numpy",
    "IPython",
    "matplotlib",
    "mypy",
    "hypothesis",
    "pytest",
    "_pytest",
    "setuptools",
    "trio",
]
"""Modules the analysis must leave out of the app."""


# --- per-OS metadata --------------------------------------------------------------------------


def info_plist(release: str) -> dict[str, object]:
    """The ``Info.plist`` keys of ``Cascade.app`` (merged over PyInstaller's defaults).

    ``LSUIElement`` makes it an agent app: a menu-bar icon, no Dock icon, no app menu.
    """
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleShortVersionString": release,
        "CFBundleVersion": release,
        "CFBundlePackageType": "APPL",
        "LSUIElement": True,
        "NSHighResolutionCapable": True,
        "LSApplicationCategoryType": "public.app-category.video",
        "NSHumanReadableCopyright": COPYRIGHT,
    }


def windows_version_info(release: str, *, executable: str) -> str:
    """The version resource of ``executable.exe``, in the text form PyInstaller's ``version=``
    file takes (a ``VSVersionInfo(...)`` expression)."""
    quad = numeric_version(release)
    strings = {
        "CompanyName": PUBLISHER,
        "FileDescription": f"{APP_NAME}: {SUMMARY.lower()}",
        "FileVersion": release,
        "InternalName": executable,
        "LegalCopyright": COPYRIGHT,
        "OriginalFilename": f"{executable}.exe",
        "ProductName": APP_NAME,
        "ProductVersion": release,
    }
    entries = ",\n            ".join(f"StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(
    filevers={quad},
    prodvers={quad},
    mask=0x3f,
    flags=0x0,
    OS=0x40004,
    fileType=0x1,
    subtype=0x0,
    date=(0, 0)
  ),
  kids=[
    StringFileInfo([
      StringTable(
        '040904B0',
        [
            {entries}
        ])
    ]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""

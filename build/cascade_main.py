"""The frozen Cascade executable's entry point: PyInstaller runs this file as ``__main__``.

It does what ``python -m agent`` does (``agent.cli.main``), plus three things only a frozen
build needs, before anything heavy is imported:

1. ``--cascade-watchdog``: the containment sidecar on macOS is the agent's own executable
   with that flag (agent/platform/watchdog.py); it must start fast and import no tray.
2. A windowed executable (``cascadew.exe``, ``Cascade.app``) started with no arguments —
   a double-click, the Start menu, Finder — runs the agent (``run``) rather than printing
   the help to a console it does not have. Finder's old ``-psn_...`` argument is dropped.
3. Children get the system's library path back. On Linux the PyInstaller bootloader puts
   the app's ``_internal`` folder first on ``LD_LIBRARY_PATH`` and keeps the person's own
   value in ``LD_LIBRARY_PATH_ORIG``; every process the agent starts inherits it. The bundled
   FFmpeg is static and does not care, but an FFmpeg the person chose, ``xdg-open`` and the
   browser it opens would load our copies of libssl and friends instead of their own. The
   frozen interpreter itself is unaffected: the loader read the variable when it started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import PurePath, PurePosixPath, PureWindowsPath

WATCHDOG_FLAG = "--cascade-watchdog"  # agent.platform.watchdog.WATCHDOG_FLAG
_WINDOWED_NAMES = frozenset({"cascadew"})
_LIBRARY_PATH_VARIABLES = ("LD_LIBRARY_PATH", "LIBPATH")  # LIBPATH: AIX


def is_windowed(executable: str, platform: str) -> bool:
    """Whether ``executable`` is a windowed build: ``cascadew.exe``, or the executable of a
    macOS app bundle (``*.app/Contents/MacOS/...``)."""
    path: PurePath = (
        PureWindowsPath(executable) if platform == "win32" else PurePosixPath(executable)
    )
    if platform == "darwin":
        parts = path.parts
        return len(parts) >= 3 and parts[-2] == "MacOS" and parts[-3] == "Contents"
    return path.stem.lower() in _WINDOWED_NAMES


def arguments(argv: Sequence[str], *, executable: str, platform: str) -> list[str]:
    """The command line ``agent.cli.main`` gets (``argv`` without the program name)."""
    args = list(argv)
    if platform == "darwin":
        args = [arg for arg in args if not arg.startswith("-psn_")]
    if not args and is_windowed(executable, platform):
        return ["run"]
    return args


def restore_library_path(environ: MutableMapping[str, str], bundle: str) -> None:
    """Undo the bootloader's change to the library search path, for the children only.

    A variable is changed back only when its first folder is ``bundle`` (``sys._MEIPASS``):
    the bootloader put it there. The person's own value comes back from ``<NAME>_ORIG``;
    without one, the variable goes.
    """
    for name in _LIBRARY_PATH_VARIABLES:
        current = environ.get(name)
        if current is None or current.split(os.pathsep)[0] != bundle:
            continue
        original = environ.pop(f"{name}_ORIG", None)
        if original is not None:
            environ[name] = original
        else:
            del environ[name]


def main() -> int:
    """Run the ``cascade`` command line (or the watchdog sidecar) and return its exit code."""
    if sys.argv[1:2] == [WATCHDOG_FLAG]:
        from agent.platform.watchdog import main as watchdog_main

        return watchdog_main()
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None and sys.platform not in ("win32", "darwin"):
        restore_library_path(os.environ, bundle)
    args = arguments(sys.argv[1:], executable=sys.executable, platform=sys.platform)

    from agent.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    raise SystemExit(main())

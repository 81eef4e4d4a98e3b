"""Desktop chores behind one interface per OS: the clipboard, opening folders and pages.

Windows uses ``clip`` and ``os.startfile``; macOS ``pbcopy`` and ``open``; Linux
``wl-copy`` (Wayland) or ``xclip``/``xsel`` (X11) and ``xdg-open``. A missing tool is a
:class:`~agent.errors.CascadeError` saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import webbrowser
from pathlib import Path

from agent.errors import CascadeError


def clipboard_command(platform: str = sys.platform, env: dict[str, str] | None = None) -> list[str]:
    """The command that copies its stdin to the clipboard on this system."""
    env = dict(os.environ if env is None else env)
    if platform == "win32":
        return ["clip"]
    if platform == "darwin":
        return ["pbcopy"]
    candidates = []
    if env.get("WAYLAND_DISPLAY"):
        candidates.append(["wl-copy"])
    candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    for argv in candidates:
        if shutil.which(argv[0]):
            return argv
    raise CascadeError(
        "there is no clipboard tool on this system",
        subject="clipboard",
        hint="Install xclip (X11) or wl-clipboard (Wayland)",
    )


def copy_text(text: str) -> None:
    """Put ``text`` on the clipboard."""
    argv = clipboard_command()
    data = text.encode("utf-16-le") if sys.platform == "win32" else text.encode()
    try:
        subprocess.run(argv, input=data, check=True, timeout=5)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CascadeError(
            f"{argv[0]} could not copy ({exc})", subject="clipboard", hint="Copy it by hand"
        ) from exc


def open_folder(path: Path) -> None:
    """Show a folder in the file manager."""
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined,unused-ignore]
        return
    argv = ["open", str(path)] if sys.platform == "darwin" else ["xdg-open", str(path)]
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError as exc:
        raise CascadeError(
            f"the folder could not be opened ({exc})", subject=str(path), hint="Open it by hand"
        ) from exc


def open_page(url: str) -> bool:
    """Open a page in the default browser; False when no browser could be started."""
    return bool(webbrowser.open(url))

"""Launch at login: one interface, one implementation per operating system.

:func:`for_this_machine` picks the implementation once; ``cascade autostart``, the tray's
"Launch at login" item and the dashboard all go through it::

    autostart = for_this_machine(config_dir)
    autostart.status()    # AutostartStatus(supported, enabled, detail)
    autostart.enable()    # writes the entry; again is harmless
    autostart.disable()   # removes what enable wrote; harmless when there is nothing

- Linux and other freedesktop systems (:class:`XdgAutostart`): the file
  ``$XDG_CONFIG_HOME/autostart/cascade.desktop`` (default ``~/.config``), by the freedesktop
  Desktop Application Autostart Specification.
- macOS (:class:`LaunchAgentAutostart`): the LaunchAgent ``~/Library/LaunchAgents/
  io.cascade.agent.plist`` with ``RunAtLoad``. launchd reads that folder at each login, so no
  ``launchctl`` call is made: ``bootstrap`` would start a second agent at once (``RunAtLoad``),
  and ``bootout`` would stop the agent that launchd started at login — the one whose tray
  menu is being used to turn the entry off.
- Windows (:class:`WindowsRunAutostart`): the value ``Cascade`` under
  ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``. A user who turned Cascade off
  in Task Manager's Startup apps leaves the value but marks it in ``...\\Explorer\\
  StartupApproved\\Run``: status reports it off, and enabling clears that mark.

Every entry runs :func:`launch_command`: the installed ``cascade`` (a frozen build's own
executable, the console script, or the interpreter with ``-m agent``) with ``run``, which
comes up quietly in the tray. Each entry carries a sign that Cascade wrote it (a marker key,
the launchd label, a command that ends in ``run``); an entry at the same place without that
sign is someone else's and is never overwritten or removed.

:meth:`Autostart.enable` and :meth:`Autostart.disable` raise
:class:`~agent.errors.CascadeError` when the entry cannot be written or removed;
:meth:`Autostart.status` never raises, it says what went wrong in ``detail``. Creating an
implementation touches nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
import plistlib
import shlex
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import platformdirs

from agent.errors import CascadeError
from agent.paths import APP_NAME
from agent.store.atomic import write_bytes_atomic

log = logging.getLogger(__name__)

__all__ = [
    "DESKTOP_FILE",
    "DESKTOP_MARKER",
    "LAUNCHD_LABEL",
    "RUN_KEY",
    "RUN_VALUE",
    "STARTUP_APPROVED_KEY",
    "Autostart",
    "AutostartStatus",
    "LaunchAgentAutostart",
    "NoAutostart",
    "Registry",
    "WindowsRunAutostart",
    "WinregRegistry",
    "XdgAutostart",
    "desktop_entry",
    "desktop_exec",
    "for_this_machine",
    "launch_agent_plist",
    "launch_command",
]

DESKTOP_FILE = "cascade.desktop"
DESKTOP_MARKER = "X-Cascade-Autostart"
"""The key that marks a ``.desktop`` file as written by Cascade."""
LAUNCHD_LABEL = "io.cascade.agent"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
STARTUP_APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
RUN_VALUE = "Cascade"

_SUBJECT = "launch at login"
# sys.platform values with no desktop session to launch at.
_NO_DESKTOP = frozenset({"android", "cygwin", "emscripten", "ios", "wasi"})


@dataclass(frozen=True, slots=True)
class AutostartStatus:
    """Whether Cascade starts at login here.

    ``detail`` says where the entry is, or would be (``~/.config/autostart/cascade.desktop``),
    followed by ``; <note>`` when something is off (turned off in the system's settings,
    someone else's entry there), or why launching at login is not supported.
    """

    supported: bool
    enabled: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        """The status as the API and ``cascade autostart status --json`` give it."""
        return {"supported": self.supported, "enabled": self.enabled, "detail": self.detail}


class Autostart(Protocol):
    """Cascade's entry among the programs the system starts at login."""

    def status(self) -> AutostartStatus:
        """Whether the entry is there and in effect; never raises."""
        ...

    def enable(self) -> AutostartStatus:
        """Write the entry (nothing changes when it is already right). Raises
        :class:`~agent.errors.CascadeError` when it cannot be written, or when someone else's
        entry is in its place."""
        ...

    def disable(self) -> AutostartStatus:
        """Remove the entry that :meth:`enable` wrote; harmless when there is none. Someone
        else's entry in its place is left alone (``detail`` says so). Raises
        :class:`~agent.errors.CascadeError` when it cannot be removed."""
        ...


# --- what the entry runs ----------------------------------------------------------------------


def launch_command(config_dir: Path | None = None, *, platform: str | None = None) -> list[str]:
    """The argv the entry runs: this installation's ``cascade run``.

    A frozen build runs its own executable; otherwise the ``cascade`` console script next to
    the interpreter, or the interpreter with ``-m agent``. On Windows the windowless
    ``pythonw.exe`` comes first, so no console window opens at login. ``--config-dir`` (made
    absolute) is added only for a config directory other than the default one: the login
    session has no ``CASCADE_CONFIG_DIR``. ``platform`` is a ``sys.platform`` value.
    """
    program = _program(
        Path(sys.executable),
        frozen=bool(getattr(sys, "frozen", False)),
        platform=platform or sys.platform,
        appimage=os.environ.get("APPIMAGE"),
    )
    if config_dir is not None and not _same_folder(config_dir, _default_config_dir()):
        program += ["--config-dir", os.path.abspath(config_dir.expanduser())]
    return [*program, "run"]


def _program(
    executable: Path, *, frozen: bool, platform: str, appimage: str | None = None
) -> list[str]:
    """The argv that starts the ``cascade`` command line (without its arguments).

    Frozen: an AppImage's own file (the running executable sits in a mount that is gone at
    the next login); on Windows the windowed ``cascadew.exe`` beside the console
    ``cascade.exe``, so no console window opens at login.
    """
    if frozen:
        if appimage and platform.startswith("linux"):
            return [appimage]
        if platform == "win32":
            windowed = executable.with_name("cascadew.exe")
            if windowed.is_file():
                return [str(windowed)]
        return [str(executable)]
    folder = executable.parent
    if platform == "win32":
        windowless = folder / "pythonw.exe"
        if windowless.is_file():
            return [str(windowless), "-m", "agent"]
        scripts = [folder / "cascade.exe", folder / "Scripts" / "cascade.exe"]
    else:
        scripts = [folder / "cascade"]
    for script in scripts:
        if script.is_file():
            return [str(script)]
    return [str(executable), "-m", "agent"]


def _default_config_dir() -> Path:
    # agent.paths.config_dir() without its overrides: what a login session would use.
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def _same_folder(a: Path, b: Path) -> bool:
    def norm(path: Path) -> str:
        return os.path.normcase(os.path.abspath(path.expanduser()))

    return norm(a) == norm(b)


def _display(path: Path, home: Path | None) -> str:
    """``path`` as a person reads it: ``~/...`` inside the home folder."""
    if home is not None and path.is_relative_to(home):
        return str(Path("~") / path.relative_to(home))
    return str(path)


def _differs(detail: str, runs: str) -> str:
    return f"{detail}; it starts {runs} (turn launch at login on again to start this one instead)"


# --- files: XDG and launchd -------------------------------------------------------------------


class _EntryFile(ABC):
    """An entry that is one file: written atomically, removed only when it is ours."""

    def __init__(self, path: Path, command: Sequence[str], *, home: Path | None = None) -> None:
        self.path = path
        self.command = list(command)
        self._where = _display(path, home)

    @abstractmethod
    def render(self) -> bytes:
        """The file's bytes."""

    @abstractmethod
    def _is_ours(self, data: bytes) -> bool:
        """Whether a file at this place was written by Cascade."""

    @abstractmethod
    def _turned_off(self, data: bytes) -> str | None:
        """Where our entry was turned off, if it was."""

    @abstractmethod
    def _runs(self, data: bytes) -> str:
        """What the entry in ``data`` runs, as a person reads it."""

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def status(self) -> AutostartStatus:
        """Whether the file is there, ours, and not turned off."""
        try:
            data = self._read()
        except OSError as exc:
            return AutostartStatus(True, False, f"{self._where}; could not be read ({exc})")
        if data is None:
            return AutostartStatus(True, False, self._where)
        if not self._is_ours(data):
            return AutostartStatus(
                True, False, f"{self._where}; not written by Cascade, left alone"
            )
        off = self._turned_off(data)
        if off is not None:
            return AutostartStatus(True, False, f"{self._where}; turned off in {off}")
        runs = self._runs(data)
        if runs != self._runs(self.render()):
            return AutostartStatus(True, True, _differs(self._where, runs))
        return AutostartStatus(True, True, self._where)

    def enable(self) -> AutostartStatus:
        """Write the file; nothing is written when it already holds the same bytes."""
        wanted = self.render()
        try:
            data = self._read()
            if data is not None and not self._is_ours(data):
                raise CascadeError(
                    f"{self._where} is already there and was not written by Cascade",
                    subject=_SUBJECT,
                    hint="Remove or rename that file, then turn launch at login on again",
                )
            if data != wanted:
                write_bytes_atomic(self.path, wanted)
                log.info("launch at login on: %s runs %r", self.path, self.command)
        except OSError as exc:
            raise CascadeError(
                f"{self._where} could not be written ({exc.strerror or exc})",
                subject=_SUBJECT,
                hint=f"Check the permissions of {self.path.parent}",
            ) from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        """Delete the file if it is ours; leave anyone else's alone."""
        try:
            data = self._read()
            if data is not None and self._is_ours(data):
                self.path.unlink()
                log.info("launch at login off: %s removed", self.path)
        except FileNotFoundError:
            pass  # gone in between: that is what was asked
        except OSError as exc:
            raise CascadeError(
                f"{self._where} could not be removed ({exc.strerror or exc})",
                subject=_SUBJECT,
                hint="Remove it by hand",
            ) from exc
        return self.status()


# The Desktop Entry Specification's "Exec key": an argument holding any of these is quoted.
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
_EXEC_QUOTED_ESCAPES = frozenset('"`$\\')
# Its escapes for values of type string, applied after the quoting.
_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def desktop_exec(argv: Sequence[str]) -> str:
    """The ``Exec`` value (as written in the file) that runs ``argv``.

    By the Desktop Entry Specification: an argument with a reserved character is put in
    double quotes, where ``"``, `````, ``$`` and ``\\`` get a backslash; ``%`` is doubled
    (a single one starts a field code); then the string escapes apply to the whole value,
    so a literal backslash inside quotes is written as four.
    """
    words = []
    for arg in argv:
        if arg and not _EXEC_RESERVED.intersection(arg):
            word = arg
        else:
            word = '"' + "".join("\\" + c if c in _EXEC_QUOTED_ESCAPES else c for c in arg) + '"'
        words.append(word.replace("%", "%%"))
    return _string_value(" ".join(words))


def _string_value(text: str) -> str:
    return "".join(_STRING_ESCAPES.get(c, c) for c in text)


def desktop_entry(argv: Sequence[str]) -> str:
    """The ``cascade.desktop`` autostart file that runs ``argv``."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Name=Cascade",
        "Comment=Relays one stream from OBS to every platform",
        f"Exec={desktop_exec(argv)}",
        f"TryExec={_string_value(argv[0])}",
        "Icon=cascade",
        "Terminal=false",
        "NoDisplay=false",
        "X-GNOME-Autostart-enabled=true",
        f"{DESKTOP_MARKER}=true",
    ]
    return "\n".join(lines) + "\n"


def _desktop_keys(data: bytes) -> dict[str, str]:
    """The keys of a desktop file's ``[Desktop Entry]`` group, values as written."""
    keys: dict[str, str] = {}
    group = None
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif group == "Desktop Entry" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return keys


class XdgAutostart(_EntryFile):
    """``cascade.desktop`` in the freedesktop autostart folder, marked with
    :data:`DESKTOP_MARKER`. The desktop's startup settings turn it off with ``Hidden=true``
    or ``X-GNOME-Autostart-enabled=false``; enabling writes it afresh."""

    def render(self) -> bytes:
        """The file's bytes (UTF-8)."""
        return desktop_entry(self.command).encode("utf-8")

    def _is_ours(self, data: bytes) -> bool:
        return DESKTOP_MARKER in _desktop_keys(data)

    def _turned_off(self, data: bytes) -> str | None:
        keys = _desktop_keys(data)
        hidden = keys.get("Hidden") == "true"
        if hidden or keys.get("X-GNOME-Autostart-enabled") == "false":
            return "the desktop's startup settings"
        return None

    def _runs(self, data: bytes) -> str:
        return _desktop_keys(data).get("Exec", "another command")


def launch_agent_plist(argv: Sequence[str], *, label: str = LAUNCHD_LABEL) -> dict[str, Any]:
    """The LaunchAgent that runs ``argv`` once at each login.

    ``KeepAlive`` is false so a person's Quit is final until the next login; ``Interactive``
    and ``Aqua`` because it is a menu-bar app of the logged-in user. Its output goes nowhere:
    the agent writes its own rotating log, and a copy on launchd's side would only grow.
    """
    return {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
        "StandardOutPath": "/dev/null",
        "StandardErrorPath": "/dev/null",
    }


def _plist(data: bytes) -> dict[str, Any] | None:
    try:
        loaded = plistlib.loads(data)
    except Exception:  # malformed input surfaces as expat, value, type, attribute... errors
        return None
    return loaded if isinstance(loaded, dict) else None


class LaunchAgentAutostart(_EntryFile):
    """``io.cascade.agent.plist`` in ``~/Library/LaunchAgents``; the label marks it as ours.
    A legacy ``Disabled`` key turns it off; enabling writes it afresh."""

    def __init__(
        self,
        path: Path,
        command: Sequence[str],
        *,
        home: Path | None = None,
        label: str = LAUNCHD_LABEL,
    ) -> None:
        super().__init__(path, command, home=home)
        self.label = label

    def render(self) -> bytes:
        """The plist's bytes (XML)."""
        return plistlib.dumps(launch_agent_plist(self.command, label=self.label))

    def _is_ours(self, data: bytes) -> bool:
        plist = _plist(data)
        return plist is not None and plist.get("Label") == self.label

    def _turned_off(self, data: bytes) -> str | None:
        plist = _plist(data) or {}
        return "its Disabled key" if plist.get("Disabled") is True else None

    def _runs(self, data: bytes) -> str:
        argv = (_plist(data) or {}).get("ProgramArguments")
        return shlex.join(map(str, argv)) if isinstance(argv, list) else "another command"


# --- Windows: the Run key ---------------------------------------------------------------------


class Registry(Protocol):
    """Values under ``HKEY_CURRENT_USER``; absent values and keys read as None. Errors are
    OSError, as ``winreg`` raises them."""

    def get_value(self, key: str, name: str) -> object | None: ...

    def set_value(self, key: str, name: str, data: str) -> None:
        """Write a ``REG_SZ`` value, creating the key if needed."""
        ...

    def delete_value(self, key: str, name: str) -> None:
        """Delete a value; an absent one is fine."""
        ...


class WinregRegistry:
    """:class:`Registry` through ``winreg``, imported on first use (it exists only on
    Windows)."""

    @staticmethod
    def _winreg() -> Any:
        return importlib.import_module("winreg")

    def get_value(self, key: str, name: str) -> object | None:
        """The value's data, or None."""
        winreg = self._winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                data, _kind = winreg.QueryValueEx(handle, name)
        except FileNotFoundError:
            return None
        result: object = data
        return result

    def set_value(self, key: str, name: str, data: str) -> None:
        """Write a ``REG_SZ`` value."""
        winreg = self._winreg()
        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, data)

    def delete_value(self, key: str, name: str) -> None:
        """Delete a value; an absent one (or key) is fine."""
        winreg = self._winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            pass


def _is_cascade_command(data: object) -> bool:
    # Every command Cascade writes ends with its "run" argument.
    return isinstance(data, str) and data.rstrip().endswith(" run")


def _approval_off(data: object) -> bool:
    # Task Manager writes 12 bytes: the first is even when allowed (02, 06), odd when turned
    # off (03, 07), followed by when it was turned off.
    return isinstance(data, bytes) and len(data) > 0 and data[0] % 2 == 1


class WindowsRunAutostart:
    """The ``Cascade`` value in ``HKCU\\...\\CurrentVersion\\Run``: the command line, quoted
    with ``subprocess.list2cmdline``."""

    def __init__(self, command: Sequence[str], registry: Registry | None = None) -> None:
        self.command = list(command)
        self.registry: Registry = registry or WinregRegistry()
        self._where = f"HKCU\\{RUN_KEY}, value {RUN_VALUE}"

    def command_line(self) -> str:
        """The value's data."""
        return subprocess.list2cmdline(self.command)

    def status(self) -> AutostartStatus:
        """Whether the value is there, Cascade's, and not turned off in Task Manager."""
        try:
            data = self.registry.get_value(RUN_KEY, RUN_VALUE)
            approval = self.registry.get_value(STARTUP_APPROVED_KEY, RUN_VALUE)
        except OSError as exc:
            return AutostartStatus(True, False, f"{self._where}; could not be read ({exc})")
        if data is None:
            return AutostartStatus(True, False, self._where)
        if not _is_cascade_command(data):
            return AutostartStatus(
                True, False, f"{self._where}; does not start Cascade, left alone"
            )
        if _approval_off(approval):
            return AutostartStatus(
                True, False, f"{self._where}; turned off in Task Manager's Startup apps"
            )
        if data != self.command_line():
            return AutostartStatus(True, True, _differs(self._where, str(data)))
        return AutostartStatus(True, True, self._where)

    def enable(self) -> AutostartStatus:
        """Write the value, and clear Task Manager's "turned off" mark if there is one."""
        wanted = self.command_line()
        try:
            data = self.registry.get_value(RUN_KEY, RUN_VALUE)
            if data is not None and not _is_cascade_command(data):
                raise CascadeError(
                    f"{self._where} is already there and does not start Cascade",
                    subject=_SUBJECT,
                    hint="Remove that value (regedit), then turn launch at login on again",
                )
            if data != wanted:
                self.registry.set_value(RUN_KEY, RUN_VALUE, wanted)
                log.info("launch at login on: %s = %s", self._where, wanted)
            if _approval_off(self.registry.get_value(STARTUP_APPROVED_KEY, RUN_VALUE)):
                self.registry.delete_value(STARTUP_APPROVED_KEY, RUN_VALUE)
        except OSError as exc:
            raise CascadeError(
                f"{self._where} could not be written ({exc})",
                subject=_SUBJECT,
                hint="Check that this Windows account may change its own registry",
            ) from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        """Delete the value if it starts Cascade; leave anything else alone."""
        try:
            if _is_cascade_command(self.registry.get_value(RUN_KEY, RUN_VALUE)):
                self.registry.delete_value(RUN_KEY, RUN_VALUE)
                log.info("launch at login off: %s deleted", self._where)
        except OSError as exc:
            raise CascadeError(
                f"{self._where} could not be deleted ({exc})",
                subject=_SUBJECT,
                hint="Delete it by hand (regedit), or turn Cascade off in Task Manager",
            ) from exc
        return self.status()


# --- nowhere ----------------------------------------------------------------------------------


class NoAutostart:
    """A system where Cascade cannot launch at login: status says why, enabling refuses."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def status(self) -> AutostartStatus:
        """Unsupported, with the reason."""
        return AutostartStatus(False, False, self.reason)

    def enable(self) -> AutostartStatus:
        """Always refused."""
        raise CascadeError(self.reason, subject=_SUBJECT, hint="Start Cascade by hand")

    def disable(self) -> AutostartStatus:
        """Nothing to remove."""
        return self.status()


def for_this_machine(
    config_dir: Path | None = None, *, platform: str | None = None, home: Path | None = None
) -> Autostart:
    """The launch-at-login entry of this system, running :func:`launch_command`.

    ``platform`` is a ``sys.platform`` value (default: this one). ``home`` replaces the
    user's home folder (tests); given, it also replaces ``$XDG_CONFIG_HOME`` with
    ``home/.config``.
    """
    platform = platform or sys.platform
    command = launch_command(config_dir, platform=platform)
    if platform == "win32":
        return WindowsRunAutostart(command)
    if platform in _NO_DESKTOP:
        return NoAutostart(f"launching at login is not available on {platform}")
    try:
        base = Path.home() if home is None else home
    except RuntimeError:
        return NoAutostart("launching at login needs a home folder, and none is known")
    if platform == "darwin":
        path = base / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        return LaunchAgentAutostart(path, command, home=base)
    config_home = base / ".config"
    chosen = os.environ.get("XDG_CONFIG_HOME", "")
    if home is None and os.path.isabs(chosen):  # the spec ignores a relative one
        config_home = Path(chosen)
    return XdgAutostart(config_home / "autostart" / DESKTOP_FILE, command, home=base)

"""Launch at login: each system's entry, read back the way that system reads it.

The XDG entry round-trips for real in a temporary HOME, and ``cascade autostart`` runs as a
person runs it. The LaunchAgent is a file as well: it is written into a temporary home and
parsed back with plistlib. The Windows Run value goes to an in-memory registry, and the
command it holds is built by the same pure code as on Windows. ``launch_command`` is checked
for a frozen build, a console script and a bare interpreter.
"""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from agent.errors import CascadeError
from agent.platform.autostart import (
    DESKTOP_MARKER,
    LAUNCHD_LABEL,
    RUN_KEY,
    RUN_VALUE,
    STARTUP_APPROVED_KEY,
    AutostartStatus,
    LaunchAgentAutostart,
    NoAutostart,
    WindowsRunAutostart,
    XdgAutostart,
    desktop_entry,
    desktop_exec,
    for_this_machine,
    launch_agent_plist,
    launch_command,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- reading entries back ---------------------------------------------------------------------


def desktop_keys(path: Path) -> dict[str, str]:
    """The ``[Desktop Entry]`` keys of a desktop file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line)


def parse_exec(value: str) -> list[str]:
    """An ``Exec`` value as the Desktop Entry Specification reads it: string escapes first,
    then the quoting rules, then ``%%`` as a literal percent sign (written from the spec,
    independently of the code under test; GLib's ``gio launch`` reads the same)."""
    unescaped, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            escapes = {"s": " ", "n": "\n", "t": "\t", "r": "\r"}
            unescaped.append(escapes.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            unescaped.append(value[i])
            i += 1
    text = "".join(unescaped)
    args: list[str] = []
    current: list[str] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            if current is not None:
                args.append("".join(current))
            current = None
        elif char == '"':
            current = current or []
            i += 1
            while text[i] != '"':
                if text[i] == "\\":
                    assert text[i + 1] in '"`$\\', f"bad escape in {value!r}"
                    i += 1
                current.append(text[i])
                i += 1
        else:
            current = (current or []) + [char]
        i += 1
    if current is not None:
        args.append("".join(current))
    return [_percent(arg, value) for arg in args]


def _percent(arg: str, value: str) -> str:
    """``%%`` is a percent sign; any other ``%`` starts a field code, which Cascade never
    writes."""
    parts = arg.split("%%")
    assert not any("%" in part for part in parts), f"field code in {value!r}"
    return "%".join(parts)


# --- launch_command ---------------------------------------------------------------------------


@pytest.fixture
def interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in interpreter folder: sys.executable points into it, nothing is frozen."""
    folder = tmp_path / "venv bin"
    folder.mkdir()
    monkeypatch.delattr(sys, "frozen", raising=False)
    return folder


def make(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


class TestLaunchCommand:
    def test_a_frozen_build_runs_its_own_executable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        exe = make(tmp_path / "Cascade.app" / "Contents" / "MacOS" / "Cascade")
        make(exe.parent / "cascade")  # a console script beside it must not win
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        monkeypatch.setattr(sys, "executable", str(exe))
        assert launch_command() == [str(exe), "run"]

    def test_a_frozen_windows_build_starts_its_windowed_executable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        console = make(tmp_path / "Cascade" / "cascade.exe")
        windowed = make(tmp_path / "Cascade" / "cascadew.exe")
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        monkeypatch.setattr(sys, "executable", str(console))
        assert launch_command(platform="win32") == [str(windowed), "run"]
        windowed.unlink()  # a build without it: the console one, rather than nothing
        assert launch_command(platform="win32") == [str(console), "run"]

    def test_an_appimage_starts_its_own_file_not_its_temporary_mount(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        inside = make(tmp_path / "mount_abc" / "usr" / "bin" / "cascade")
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        monkeypatch.setattr(sys, "executable", str(inside))
        monkeypatch.setenv("APPIMAGE", "/home/me/Apps/Cascade-x86_64.AppImage")
        assert launch_command(platform="linux") == ["/home/me/Apps/Cascade-x86_64.AppImage", "run"]
        monkeypatch.delenv("APPIMAGE")
        assert launch_command(platform="linux") == [str(inside), "run"]

    def test_an_installed_console_script_next_to_the_interpreter_is_used(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python3")
        script = make(interpreter / "cascade")
        monkeypatch.setattr(sys, "executable", str(python))
        assert launch_command(platform="linux") == [str(script), "run"]

    def test_without_a_console_script_the_interpreter_runs_the_module(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python3")
        monkeypatch.setattr(sys, "executable", str(python))
        assert launch_command(platform="linux") == [str(python), "-m", "agent", "run"]

    def test_windows_prefers_the_windowless_pythonw_over_a_console_script(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python.exe")
        pythonw = make(interpreter / "pythonw.exe")
        make(interpreter / "Scripts" / "cascade.exe")
        monkeypatch.setattr(sys, "executable", str(python))
        assert launch_command(platform="win32") == [str(pythonw), "-m", "agent", "run"]

    def test_windows_without_pythonw_uses_the_scripts_folder_console_script(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python.exe")
        script = make(interpreter / "Scripts" / "cascade.exe")
        monkeypatch.setattr(sys, "executable", str(python))
        assert launch_command(platform="win32") == [str(script), "run"]

    def test_a_non_default_config_dir_is_passed_absolute_before_run(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python3")
        monkeypatch.setattr(sys, "executable", str(python))
        monkeypatch.chdir(interpreter)
        assert launch_command(Path("my config"), platform="linux") == [
            str(python), "-m", "agent", "--config-dir", str(interpreter / "my config"), "run"
        ]  # fmt: skip

    @pytest.mark.parametrize(
        "config_dir",
        [
            pytest.param(None, id="none"),
            pytest.param(
                Path(platformdirs.user_config_dir("Cascade", appauthor=False)), id="default"
            ),
        ],
    )
    def test_the_default_config_dir_adds_no_argument(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch, config_dir: Path | None
    ) -> None:
        python = make(interpreter / "python3")
        monkeypatch.setattr(sys, "executable", str(python))
        assert launch_command(config_dir, platform="linux") == [str(python), "-m", "agent", "run"]


# --- XDG --------------------------------------------------------------------------------------

AWKWARD = ["/opt/My Apps/cascade", "--config-dir", '/srv/100% "live" $HOME `x` back\\slash', "run"]


class TestDesktopEntry:
    def test_the_file_is_a_marked_application_entry_that_runs_the_command(self) -> None:
        text = desktop_entry(["/usr/bin/cascade", "run"])
        keys = dict(line.split("=", 1) for line in text.splitlines()[1:])
        assert text.startswith("[Desktop Entry]\n")
        assert keys == {
            "Type": "Application",
            "Name": "Cascade",
            "Comment": keys["Comment"],
            "Exec": "/usr/bin/cascade run",
            "TryExec": "/usr/bin/cascade",
            "Icon": "cascade",
            "Terminal": "false",
            "NoDisplay": "false",
            "X-GNOME-Autostart-enabled": "true",
            DESKTOP_MARKER: "true",
        }
        assert keys["Comment"]

    def test_exec_quotes_spaces_and_escapes_percent_quote_dollar_backtick_backslash(self) -> None:
        assert desktop_exec(AWKWARD) == (
            '"/opt/My Apps/cascade" --config-dir '
            '"/srv/100%% \\\\"live\\\\" \\\\$HOME \\\\`x\\\\` back\\\\\\\\slash" run'
        )

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(AWKWARD, id="specials"),
            pytest.param(["/a b/c", "", "x;y", "~home", "tab\there", "it's", "%u"], id="reserved"),
            pytest.param(["/usr/bin/cascade", "run"], id="plain"),
        ],
    )
    def test_exec_reads_back_as_the_same_arguments(self, argv: list[str]) -> None:
        assert parse_exec(desktop_exec(argv)) == argv


@pytest.fixture
def xdg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME with its own XDG_CONFIG_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg config"))
    return home


def xdg(config_dir: Path) -> XdgAutostart:
    entry = for_this_machine(config_dir, platform="linux")
    assert isinstance(entry, XdgAutostart)
    return entry


class TestXdgRoundTrip:
    def test_enable_writes_the_desktop_file_in_xdg_config_home(
        self, xdg_home: Path, tmp_path: Path
    ) -> None:
        cfg = tmp_path / "cfg 100%"
        entry = xdg(cfg)
        path = xdg_home / "xdg config" / "autostart" / "cascade.desktop"
        assert entry.status() == AutostartStatus(
            True, False, "~/xdg config/autostart/cascade.desktop"
        )
        state = entry.enable()
        assert state == AutostartStatus(True, True, "~/xdg config/autostart/cascade.desktop")
        keys = desktop_keys(path)
        assert parse_exec(keys["Exec"]) == launch_command(cfg)
        assert parse_exec(keys["Exec"])[-3:] == ["--config-dir", str(cfg), "run"]
        assert keys[DESKTOP_MARKER] == "true"
        leftovers = [p.name for p in path.parent.iterdir() if p != path]
        assert leftovers == []  # written through a temporary file, nothing left behind

    def test_enabling_again_leaves_the_same_file_untouched(self, xdg_home: Path) -> None:
        entry = xdg(xdg_home / "cfg")
        entry.enable()
        before = entry.path.stat()
        content = entry.path.read_bytes()
        assert entry.enable().enabled
        after = entry.path.stat()
        assert entry.path.read_bytes() == content
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    def test_disable_removes_the_file_and_again_is_harmless(self, xdg_home: Path) -> None:
        entry = xdg(xdg_home / "cfg")
        entry.enable()
        assert entry.disable() == AutostartStatus(
            True, False, "~/xdg config/autostart/cascade.desktop"
        )
        assert not entry.path.exists()
        assert entry.path.parent.is_dir()  # only the file goes
        assert entry.disable().enabled is False
        assert not entry.path.exists()

    def test_a_cascade_desktop_not_written_by_cascade_is_never_touched(
        self, xdg_home: Path
    ) -> None:
        entry = xdg(xdg_home / "cfg")
        foreign = b"[Desktop Entry]\nType=Application\nName=Cascade\nExec=/usr/bin/cascade run\n"
        entry.path.parent.mkdir(parents=True)
        entry.path.write_bytes(foreign)
        with pytest.raises(CascadeError) as refused:
            entry.enable()
        assert refused.value.subject == "launch at login"
        assert "not written by Cascade" in refused.value.what
        assert refused.value.hint is not None and "Remove or rename" in refused.value.hint
        state = entry.disable()
        assert entry.path.read_bytes() == foreign
        assert state.enabled is False
        assert state.detail.endswith("not written by Cascade, left alone")

    def test_turned_off_by_the_desktop_reads_off_and_enable_turns_it_back_on(
        self, xdg_home: Path
    ) -> None:
        entry = xdg(xdg_home / "cfg")
        entry.enable()
        entry.path.write_text(entry.path.read_text() + "Hidden=true\n")
        state = entry.status()
        assert (state.enabled, state.detail.split("; ")[1]) == (
            False,
            "turned off in the desktop's startup settings",
        )
        assert entry.enable().enabled
        assert "Hidden" not in desktop_keys(entry.path)

    def test_an_entry_for_another_command_is_on_and_says_what_it_starts(
        self, xdg_home: Path
    ) -> None:
        xdg(xdg_home / "old").enable()
        entry = xdg(xdg_home / "new")
        state = entry.status()
        assert state.enabled
        assert "it starts" in state.detail and "old" in state.detail
        entry.enable()
        assert parse_exec(desktop_keys(entry.path)["Exec"]) == launch_command(xdg_home / "new")
        assert entry.status().detail == "~/xdg config/autostart/cascade.desktop"

    def test_a_path_that_cannot_be_written_is_an_error_that_says_where(
        self, xdg_home: Path
    ) -> None:
        entry = xdg(xdg_home / "cfg")
        entry.path.parent.parent.mkdir(parents=True)
        entry.path.parent.write_text("a file where the autostart folder goes")
        with pytest.raises(CascadeError) as failed:
            entry.enable()
        assert "could not be written" in failed.value.what
        assert failed.value.hint == f"Check the permissions of {entry.path.parent}"

    def test_home_given_uses_its_dot_config_and_not_the_environment(
        self, xdg_home: Path, tmp_path: Path
    ) -> None:
        other = tmp_path / "other home"
        entry = for_this_machine(platform="linux", home=other)
        assert isinstance(entry, XdgAutostart)
        assert entry.path == other / ".config" / "autostart" / "cascade.desktop"

    def test_a_relative_xdg_config_home_is_ignored(
        self, xdg_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
        assert xdg(xdg_home / "cfg").path == xdg_home / ".config" / "autostart" / "cascade.desktop"


# --- macOS ------------------------------------------------------------------------------------


class TestLaunchAgent:
    def test_the_plist_runs_the_command_once_at_login_in_the_gui_session(self) -> None:
        argv = ["/Applications/Cascade.app/Contents/MacOS/Cascade", "run"]
        plist = plistlib.loads(plistlib.dumps(launch_agent_plist(argv)))
        assert plist == {
            "Label": "io.cascade.agent",
            "ProgramArguments": argv,
            "RunAtLoad": True,
            "KeepAlive": False,
            "ProcessType": "Interactive",
            "LimitLoadToSessionType": "Aqua",
            "StandardOutPath": "/dev/null",
            "StandardErrorPath": "/dev/null",
        }

    def test_enable_status_disable_in_a_temporary_home(self, tmp_path: Path) -> None:
        entry = for_this_machine(tmp_path / "cfg", platform="darwin", home=tmp_path)
        assert isinstance(entry, LaunchAgentAutostart)
        path = tmp_path / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        assert entry.path == path
        detail = "~/Library/LaunchAgents/io.cascade.agent.plist"
        assert entry.enable() == AutostartStatus(True, True, detail)
        written = plistlib.loads(path.read_bytes())
        assert written["ProgramArguments"] == launch_command(tmp_path / "cfg", platform="darwin")
        assert written["RunAtLoad"] is True
        content, mtime = path.read_bytes(), path.stat().st_mtime_ns
        assert entry.enable().enabled
        assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)
        assert entry.disable() == AutostartStatus(True, False, detail)
        assert not path.exists()

    @pytest.mark.parametrize(
        "foreign",
        [
            pytest.param(plistlib.dumps({"Label": "com.example.other"}), id="other-label"),
            pytest.param(b"not a plist", id="garbage"),
            pytest.param(b"<?xml version=", id="broken-xml"),
        ],
    )
    def test_a_plist_that_is_not_ours_is_left_alone(self, tmp_path: Path, foreign: bytes) -> None:
        entry = for_this_machine(platform="darwin", home=tmp_path)
        assert isinstance(entry, LaunchAgentAutostart)
        entry.path.parent.mkdir(parents=True)
        entry.path.write_bytes(foreign)
        with pytest.raises(CascadeError, match="not written by Cascade"):
            entry.enable()
        assert entry.disable().enabled is False
        assert entry.path.read_bytes() == foreign

    def test_a_disabled_key_reads_off_and_enable_clears_it(self, tmp_path: Path) -> None:
        entry = for_this_machine(platform="darwin", home=tmp_path)
        entry.enable()
        assert isinstance(entry, LaunchAgentAutostart)
        plist = plistlib.loads(entry.path.read_bytes())
        entry.path.write_bytes(plistlib.dumps({**plist, "Disabled": True}))
        assert entry.status().enabled is False
        assert entry.enable().enabled
        assert "Disabled" not in plistlib.loads(entry.path.read_bytes())


# --- Windows ----------------------------------------------------------------------------------


class FakeRegistry:
    """HKEY_CURRENT_USER in a dict, recording every write."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], object] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.fail: OSError | None = None

    def get_value(self, key: str, name: str) -> object | None:
        if self.fail is not None:
            raise self.fail
        return self.values.get((key, name))

    def set_value(self, key: str, name: str, data: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.writes.append(("set", key, name))
        self.values[(key, name)] = data

    def delete_value(self, key: str, name: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.writes.append(("delete", key, name))
        self.values.pop((key, name), None)


FROZEN_WINDOWS = [r"C:\Program Files\Cascade\Cascade.exe", "--config-dir", r"D:\my cfg", "run"]
RUN_LINE = r'"C:\Program Files\Cascade\Cascade.exe" --config-dir "D:\my cfg" run'


@pytest.fixture
def registry() -> FakeRegistry:
    reg = FakeRegistry()
    reg.values[(RUN_KEY, "OneDrive")] = r'"C:\OneDrive\OneDrive.exe" /background'
    return reg


class TestWindowsRun:
    def test_the_value_is_the_command_line_with_the_path_quoted(
        self, registry: FakeRegistry
    ) -> None:
        entry = WindowsRunAutostart(FROZEN_WINDOWS, registry)
        state = entry.enable()
        assert registry.values[(RUN_KEY, RUN_VALUE)] == RUN_LINE
        assert state == AutostartStatus(
            True, True, r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run, value Cascade"
        )

    def test_enabling_again_writes_nothing(self, registry: FakeRegistry) -> None:
        entry = WindowsRunAutostart(FROZEN_WINDOWS, registry)
        entry.enable()
        entry.enable()
        assert registry.writes == [("set", RUN_KEY, RUN_VALUE)]

    def test_disable_deletes_only_the_cascade_value(self, registry: FakeRegistry) -> None:
        entry = WindowsRunAutostart(FROZEN_WINDOWS, registry)
        entry.enable()
        assert entry.disable().enabled is False
        assert registry.values == {(RUN_KEY, "OneDrive"): r'"C:\OneDrive\OneDrive.exe" /background'}
        assert entry.disable().enabled is False  # again: harmless
        assert registry.writes == [("set", RUN_KEY, RUN_VALUE), ("delete", RUN_KEY, RUN_VALUE)]

    def test_a_cascade_value_that_does_not_start_cascade_is_left_alone(
        self, registry: FakeRegistry
    ) -> None:
        registry.values[(RUN_KEY, RUN_VALUE)] = r"C:\Games\Cascade\cascade-game.exe"
        entry = WindowsRunAutostart(FROZEN_WINDOWS, registry)
        with pytest.raises(CascadeError, match="does not start Cascade"):
            entry.enable()
        state = entry.disable()
        assert registry.values[(RUN_KEY, RUN_VALUE)] == r"C:\Games\Cascade\cascade-game.exe"
        assert (state.enabled, registry.writes) == (False, [])

    @pytest.mark.parametrize(
        ("approval", "enabled"),
        [
            pytest.param(bytes([3]) + bytes(11), False, id="turned-off-03"),
            pytest.param(bytes([7]) + bytes(11), False, id="turned-off-07"),
            pytest.param(bytes([2]) + bytes(11), True, id="allowed-02"),
            pytest.param(None, True, id="never-touched"),
        ],
    )
    def test_task_managers_startup_approval_decides_whether_it_is_on(
        self, registry: FakeRegistry, approval: bytes | None, enabled: bool
    ) -> None:
        registry.values[(RUN_KEY, RUN_VALUE)] = RUN_LINE
        if approval is not None:
            registry.values[(STARTUP_APPROVED_KEY, RUN_VALUE)] = approval
        state = WindowsRunAutostart(FROZEN_WINDOWS, registry).status()
        assert state.enabled is enabled
        assert ("Task Manager" in state.detail) is not enabled

    def test_enable_clears_task_managers_turned_off_mark(self, registry: FakeRegistry) -> None:
        registry.values[(RUN_KEY, RUN_VALUE)] = RUN_LINE
        registry.values[(STARTUP_APPROVED_KEY, RUN_VALUE)] = bytes([3]) + bytes(11)
        assert WindowsRunAutostart(FROZEN_WINDOWS, registry).enable().enabled
        assert registry.writes == [("delete", STARTUP_APPROVED_KEY, RUN_VALUE)]

    def test_registry_errors_are_reported_not_raised_by_status_and_raised_by_enable(
        self, registry: FakeRegistry
    ) -> None:
        registry.fail = PermissionError(5, "Access is denied")
        entry = WindowsRunAutostart(FROZEN_WINDOWS, registry)
        assert "could not be read" in entry.status().detail
        with pytest.raises(CascadeError) as failed:
            entry.enable()
        assert failed.value.subject == "launch at login"
        assert "Access is denied" in failed.value.what

    def test_the_module_command_runs_windowless_python(
        self, interpreter: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        python = make(interpreter / "python.exe")
        pythonw = make(interpreter / "pythonw.exe")
        monkeypatch.setattr(sys, "executable", str(python))
        entry = for_this_machine(platform="win32")
        assert isinstance(entry, WindowsRunAutostart)
        assert entry.command_line() == f'"{pythonw}" -m agent run'


# --- choosing one -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind"),
    [
        pytest.param("linux", XdgAutostart, id="linux"),
        pytest.param("freebsd14", XdgAutostart, id="freebsd"),
        pytest.param("darwin", LaunchAgentAutostart, id="macos"),
        pytest.param("win32", WindowsRunAutostart, id="windows"),
    ],
)
def test_each_system_gets_its_own_implementation(
    tmp_path: Path, platform: str, kind: type[object]
) -> None:
    assert isinstance(for_this_machine(platform=platform, home=tmp_path), kind)


def test_a_system_without_a_desktop_says_so_and_refuses_to_enable(tmp_path: Path) -> None:
    entry = for_this_machine(platform="emscripten", home=tmp_path)
    assert isinstance(entry, NoAutostart)
    state = entry.status()
    assert state.to_json() == {
        "supported": False,
        "enabled": False,
        "detail": "launching at login is not available on emscripten",
    }
    assert entry.disable() == state
    with pytest.raises(CascadeError, match="not available on emscripten"):
        entry.enable()
    assert list(tmp_path.iterdir()) == []


# --- the command line -------------------------------------------------------------------------


def cascade(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
    )


def entry_command(home: Path) -> tuple[str, list[str]]:
    """Where this system's entry is (as ``detail`` gives it) and what it runs."""
    if sys.platform == "darwin":
        where = "~/Library/LaunchAgents/io.cascade.agent.plist"
        argv = plistlib.loads((home / where[2:]).read_bytes())["ProgramArguments"]
        return where, argv
    where = "~/.config/autostart/cascade.desktop"
    return where, parse_exec(desktop_keys(home / where[2:])["Exec"])


@pytest.mark.skipif(sys.platform == "win32", reason="it would change this user's real Run key")
def test_cascade_autostart_enable_status_disable_end_to_end(tmp_path: Path) -> None:
    home, cfg = tmp_path / "home", tmp_path / "my config"

    enabled = cascade("--config-dir", str(cfg), "autostart", "enable", home=home)
    assert enabled.returncode == 0, enabled.stderr
    where, argv = entry_command(home)
    assert enabled.stdout == f"Launch at login is on: {where}\n"
    assert argv == launch_command(cfg)
    assert argv[-3:] == ["--config-dir", str(cfg), "run"]

    status = cascade("--config-dir", str(cfg), "autostart", "status", "--json", home=home)
    assert json.loads(status.stdout) == {"supported": True, "enabled": True, "detail": where}

    disabled = cascade("--config-dir", str(cfg), "autostart", "disable", home=home)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout == f"Launch at login is off: {where}\n"
    assert not (home / where[2:]).exists()

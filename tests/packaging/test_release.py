"""What the build says about a release, and what the frozen entry point does before the CLI:
the parts of ``build/`` that can be checked without running PyInstaller."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import agent
from tests.packaging.conftest import load


@dataclass
class Call:
    """One constructor call in a version resource's text."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _recorder(name: str) -> Any:
    return lambda *args, **kwargs: Call(name, args, kwargs)


VERSIONINFO: dict[str, Any] = {
    "__builtins__": {},
    **{
        name: _recorder(name)
        for name in (
            "VSVersionInfo",
            "FixedFileInfo",
            "StringFileInfo",
            "StringTable",
            "StringStruct",
            "VarFileInfo",
            "VarStruct",
        )
    },
}


@pytest.fixture(scope="module")
def entry() -> ModuleType:
    """``build/cascade_main.py``, the frozen executable's ``__main__``."""
    return load("build/cascade_main.py")


class TestVersion:
    def test_is_the_package_version(self, release: ModuleType) -> None:
        assert release.version() == agent.__version__

    @pytest.mark.parametrize(
        ("text", "quad"),
        [
            pytest.param("0.1.0", (0, 1, 0, 0), id="release"),
            pytest.param("2.3", (2, 3, 0, 0), id="two-parts"),
            pytest.param("1.2.3.4", (1, 2, 3, 4), id="four-parts"),
            pytest.param("1.0rc1", (1, 0, 0, 0), id="candidate"),
            pytest.param("3.1.0.dev2", (3, 1, 0, 0), id="development"),
        ],
    )
    def test_numeric_form_has_four_numbers(
        self, release: ModuleType, text: str, quad: tuple[int, int, int, int]
    ) -> None:
        assert release.numeric_version(text) == quad

    @pytest.mark.parametrize("text", ["dev", "1.70000"])
    def test_numeric_form_refuses_what_windows_cannot_hold(
        self, release: ModuleType, text: str
    ) -> None:
        with pytest.raises(ValueError, match=text):
            release.numeric_version(text)


class TestLayout:
    def test_linux_has_one_console_executable_named_cascade(self, release: ModuleType) -> None:
        [program] = release.executables("linux")
        assert (program.name, program.console) == ("cascade", True)
        dist = Path("dist")
        assert release.command_path(dist, "linux") == dist / "cascade" / "cascade"
        assert release.app_path(dist, "linux") == dist / "cascade"

    def test_windows_has_a_console_and_a_windowed_executable_side_by_side(
        self, release: ModuleType
    ) -> None:
        programs = release.executables("win32")
        assert [(p.name, p.console) for p in programs] == [
            ("cascade", True),
            ("cascadew", False),
        ]
        # Windows file names ignore case: the two must differ by more than that.
        assert len({p.name.lower() for p in programs}) == 2
        assert release.command_path(Path("dist"), "win32") == Path("dist/cascade/cascade.exe")

    def test_macos_has_a_windowed_app_bundle(self, release: ModuleType) -> None:
        [program] = release.executables("darwin")
        assert (program.name, program.console) == ("Cascade", False)
        assert release.app_path(Path("dist"), "darwin") == Path("dist/Cascade.app")
        assert release.command_path(Path("dist"), "darwin") == Path(
            "dist/Cascade.app/Contents/MacOS/Cascade"
        )


class TestHiddenImports:
    @pytest.mark.parametrize(
        ("platform", "wanted"),
        [
            pytest.param(
                "linux",
                {
                    "pystray._appindicator",
                    "pystray._gtk",
                    "pystray._xorg",
                    "keyring.backends.SecretService",
                    "secretstorage",
                    "jeepney",
                },
                id="linux",
            ),
            pytest.param(
                "win32",
                {"pystray._win32", "keyring.backends.Windows", "win32ctypes.pywin32.win32cred"},
                id="windows",
            ),
            pytest.param("darwin", {"pystray._darwin", "keyring.backends.macOS"}, id="macos"),
        ],
    )
    def test_name_the_tray_and_keyring_backends_of_each_system(
        self, release: ModuleType, platform: str, wanted: set[str]
    ) -> None:
        assert wanted <= set(release.hidden_imports(platform))

    def test_never_name_another_systems_tray_backend(self, release: ModuleType) -> None:
        assert "pystray._win32" not in release.hidden_imports("linux")
        assert "pystray._darwin" not in release.hidden_imports("win32")


class TestPlatformMetadata:
    def test_windows_version_resource_reads_back_as_pyinstaller_reads_it(
        self, release: ModuleType
    ) -> None:
        # PyInstaller eval()s the text with its versioninfo classes in scope (their module
        # needs pefile, a Windows-only package); records of the calls stand in for them.
        info = eval(release.windows_version_info("1.2.3", executable="cascadew"), VERSIONINFO)
        assert info.name == "VSVersionInfo"
        fixed = info.kwargs["ffi"]
        assert fixed.kwargs["filevers"] == fixed.kwargs["prodvers"] == (1, 2, 3, 0)
        string_info = next(kid for kid in info.kwargs["kids"] if kid.name == "StringFileInfo")
        [table] = string_info.args[0]
        language, strings = table.args
        assert language == "040904B0"
        values = {s.args[0]: s.args[1] for s in strings}
        assert values["ProductVersion"] == values["FileVersion"] == "1.2.3"
        assert values["OriginalFilename"] == "cascadew.exe"
        assert values["ProductName"] == "Cascade"

    def test_info_plist_makes_a_menu_bar_only_app_of_this_version(
        self, release: ModuleType
    ) -> None:
        plist = release.info_plist(agent.__version__)
        assert plist["LSUIElement"] is True
        assert plist["NSHighResolutionCapable"] is True
        assert plist["CFBundleIdentifier"] == "io.cascade.agent"
        assert plist["CFBundleShortVersionString"] == agent.__version__


class TestEntryPoint:
    @pytest.mark.parametrize(
        ("executable", "platform", "windowed"),
        [
            pytest.param(r"C:\Apps\cascade\cascadew.exe", "win32", True, id="cascadew"),
            pytest.param(r"C:\Apps\cascade\cascade.exe", "win32", False, id="cascade.exe"),
            pytest.param(
                "/Applications/Cascade.app/Contents/MacOS/Cascade", "darwin", True, id="app"
            ),
            pytest.param("/opt/cascade/cascade", "linux", False, id="linux"),
        ],
    )
    def test_knows_a_windowed_executable(
        self, entry: ModuleType, executable: str, platform: str, windowed: bool
    ) -> None:
        assert entry.is_windowed(executable, platform) is windowed

    def test_a_windowed_start_without_arguments_runs_the_agent(self, entry: ModuleType) -> None:
        exe = r"C:\Apps\cascade\cascadew.exe"
        assert entry.arguments([], executable=exe, platform="win32") == ["run"]
        assert entry.arguments(["doctor"], executable=exe, platform="win32") == ["doctor"]

    def test_finders_process_serial_number_is_dropped(self, entry: ModuleType) -> None:
        exe = "/Applications/Cascade.app/Contents/MacOS/Cascade"
        assert entry.arguments(["-psn_0_12345"], executable=exe, platform="darwin") == ["run"]

    def test_the_console_command_without_arguments_stays_the_help(self, entry: ModuleType) -> None:
        assert entry.arguments([], executable="/opt/cascade/cascade", platform="linux") == []

    def test_children_get_the_persons_library_path_back(self, entry: ModuleType) -> None:
        env = {
            "LD_LIBRARY_PATH": "/opt/cascade/_internal:/home/me/lib",
            "LD_LIBRARY_PATH_ORIG": "/home/me/lib",
        }
        entry.restore_library_path(env, "/opt/cascade/_internal")
        assert env == {"LD_LIBRARY_PATH": "/home/me/lib"}

    def test_children_get_no_library_path_when_the_person_had_none(self, entry: ModuleType) -> None:
        env = {"LD_LIBRARY_PATH": "/opt/cascade/_internal", "HOME": "/home/me"}
        entry.restore_library_path(env, "/opt/cascade/_internal")
        assert env == {"HOME": "/home/me"}

    def test_a_library_path_the_bootloader_did_not_set_is_left_alone(
        self, entry: ModuleType
    ) -> None:
        env = {"LD_LIBRARY_PATH": "/home/me/lib"}
        entry.restore_library_path(env, "/opt/cascade/_internal")
        assert env == {"LD_LIBRARY_PATH": "/home/me/lib"}

    def test_the_watchdog_flag_is_the_agents(self, entry: ModuleType) -> None:
        from agent.platform.watchdog import WATCHDOG_FLAG

        assert entry.WATCHDOG_FLAG == WATCHDOG_FLAG

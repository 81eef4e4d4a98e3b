"""The installers made from the frozen app: each checked as far as this Linux machine allows.

- Linux ``.deb`` (``installers/linux/build_deb.py``): built from the real frozen app, unpacked
  with ``dpkg-deb -x`` into a temporary root; the files, their owners and modes, the control
  fields, the md5sums, the menu entry (``desktop-file-validate``), the hicolor icons, and the
  unpacked command itself.
- AppImage (``installers/linux/AppImage``): the AppDir assembled from the real app, its
  ``AppRun`` run; appimagetool itself is not run here.
- Windows (``installers/windows``): the Inno Setup script rendered from its template, read back
  section by section; ISCC runs only on Windows.
- macOS (``installers/macos``): the entitlements, and ``make_dmg.sh`` run against stand-ins
  for Apple's tools that record what they were asked to do.

``desktop-file-validate`` is Debian's ``desktop-file-utils``: missing, the tests that need it
fail saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

import agent
from tests.packaging.conftest import ROOT, load

slow = [pytest.mark.slow, pytest.mark.timeout(300)]


def desktop_file_validate() -> str:
    found = shutil.which("desktop-file-validate")
    if found is None:
        pytest.fail(
            "desktop-file-validate is missing: apt-get install desktop-file-utils "
            "(.ci/run installs it)"
        )
    return found


def desktop_keys(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


def assert_valid_menu_entry(path: Path) -> dict[str, str]:
    answer = subprocess.run(
        [desktop_file_validate(), str(path)], capture_output=True, text=True, check=False
    )
    assert answer.returncode == 0 and not answer.stdout.strip(), answer.stdout + answer.stderr
    keys = desktop_keys(path)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "Cascade"
    assert keys["Icon"] == "cascade"
    assert keys["Terminal"] == "false"
    return keys


def assert_hicolor_icons(share: Path, sizes: tuple[int, ...]) -> None:
    for size in sizes:
        path = share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "cascade.png"
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (size, size), "RGBA"), path


# --- Debian package ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def build_deb() -> ModuleType:
    return load("installers/linux/build_deb.py")


@pytest.fixture(scope="session")
def deb(
    frozen_app: Any,
    icons_dir: Path,
    build_deb: ModuleType,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """The ``.deb`` of the frozen app, zstd-compressed (xz, the release default, takes 90 s)."""
    out = tmp_path_factory.mktemp("deb")
    built: Path = build_deb.build_deb(Path(frozen_app.app), icons_dir, out, compression="zstd")
    yield built
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package's files under a temporary root, as ``dpkg-deb -x`` puts them."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def deb_field(deb: Path, name: str) -> str:
    answer = subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
    )
    return answer.stdout.strip()


@pytest.mark.parametrize(
    ("python", "debian"),
    [
        pytest.param("0.1.0", "0.1.0", id="release"),
        pytest.param("1.0rc1", "1.0~rc1", id="candidate"),
        pytest.param("2.0.0.dev3", "2.0.0~dev3", id="development"),
        pytest.param("2.0.0b2", "2.0.0~b2", id="beta"),
    ],
)
def test_a_pre_release_sorts_before_its_release_in_debian(
    build_deb: ModuleType, python: str, debian: str
) -> None:
    assert build_deb.debian_version(python) == debian


def test_the_deb_builder_refuses_a_folder_that_is_no_cascade_build(
    build_deb: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(build_deb.DebError, match=r"build/build\.py"):
        build_deb.build_deb(tmp_path, tmp_path, tmp_path / "out")


def test_the_glibc_requirement_is_the_newest_symbol_version_needed(
    build_deb: ModuleType, tmp_path: Path
) -> None:
    shutil.copy2(sys.executable, tmp_path / "python")
    (tmp_path / "notes.txt").write_text("GLIBC_9.99 in a text file is not a need")
    required = build_deb.glibc_requirement(tmp_path)
    assert re.fullmatch(r"2\.\d+", required), required
    dumped = subprocess.run(
        ["objdump", "-p", sys.executable], capture_output=True, text=True, check=True
    )
    versions = re.findall(r"GLIBC_(2\.\d+)", dumped.stdout)
    assert required == max(versions, key=lambda v: tuple(map(int, v.split("."))))


class TestDebPackage:
    pytestmark = slow

    def test_is_named_for_the_version_and_the_architecture(
        self, deb: Path, build_deb: ModuleType
    ) -> None:
        arch = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
        version = build_deb.debian_version(agent.__version__)
        assert deb.name == f"cascade_{version}_{arch}.deb"
        assert deb_field(deb, "Architecture") == arch

    def test_control_says_what_the_package_is_and_needs(
        self, deb: Path, unpacked: Path, build_deb: ModuleType
    ) -> None:
        assert deb_field(deb, "Package") == "cascade"
        assert deb_field(deb, "Version") == build_deb.debian_version(agent.__version__)
        assert deb_field(deb, "Section") == "video"
        assert re.fullmatch(r"libc6 \(>= 2\.\d+\)", deb_field(deb, "Depends"))
        assert "gnome-keyring" in deb_field(deb, "Recommends")
        assert deb_field(deb, "Description").splitlines()[0] == (
            "One stream from OBS, every platform at once"
        )
        size = sum(p.lstat().st_size for p in unpacked.rglob("*") if not p.is_dir())
        assert int(deb_field(deb, "Installed-Size")) == -(-size // 1024)

    def test_the_app_lands_in_opt_with_its_symbolic_links(
        self, unpacked: Path, frozen_app: Any
    ) -> None:
        app = Path(frozen_app.app)
        installed = unpacked / "opt" / "cascade"

        def links(folder: Path) -> list[tuple[Path, str]]:
            found = [p for p in folder.rglob("*") if p.is_symlink()]
            return sorted((p.relative_to(folder), os.readlink(p)) for p in found)

        assert links(app), "a PyInstaller 6 app folder has symbolic links"
        assert links(installed) == links(app)
        answer = subprocess.run(
            [str(installed / "cascade"), "--version"], capture_output=True, text=True, check=True
        )
        assert answer.stdout.strip() == f"cascade {agent.__version__}"

    def test_the_command_on_path_is_a_link_to_the_app(self, unpacked: Path) -> None:
        command = unpacked / "usr" / "bin" / "cascade"
        assert command.is_symlink()
        assert os.readlink(command) == "/opt/cascade/cascade"

    def test_the_menu_entry_is_valid_and_starts_the_agent(self, unpacked: Path) -> None:
        keys = assert_valid_menu_entry(unpacked / "usr/share/applications/cascade.desktop")
        assert keys["Exec"] == "cascade run"
        assert keys["TryExec"] == "cascade"

    def test_icons_are_pngs_of_each_hicolor_size(self, unpacked: Path) -> None:
        sizes = load("installers/linux/freedesktop.py").HICOLOR_SIZES
        assert {16, 32, 48, 64, 128, 256} <= set(sizes)
        assert_hicolor_icons(unpacked / "usr" / "share", sizes)

    def test_everything_belongs_to_root_and_only_programs_are_executable(self, deb: Path) -> None:
        listing = subprocess.run(
            ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        # perms owner size date time path [-> target]
        entries = {fields[5]: fields for fields in map(str.split, listing)}
        assert all(fields[1] == "root/root" for fields in entries.values())
        writable = [p for p, f in entries.items() if f[0][8] == "w" and not f[0].startswith("l")]
        assert not writable, "world-writable files"
        assert entries["./opt/cascade/cascade"][0] == "-rwxr-xr-x"
        assert entries["./usr/share/applications/cascade.desktop"][0] == "-rw-r--r--"
        [ffmpeg] = [p for p in entries if "/imageio_ffmpeg/binaries/ffmpeg-" in p]
        assert entries[ffmpeg][0] == "-rwxr-xr-x"

    def test_md5sums_match_every_file(self, deb: Path, unpacked: Path, tmp_path: Path) -> None:
        subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path)], check=True)
        sums: dict[str, str] = {}
        for line in (tmp_path / "md5sums").read_text().splitlines():
            digest, name = line.split("  ", 1)
            sums[name] = digest
        files = {
            p.relative_to(unpacked).as_posix()
            for p in unpacked.rglob("*")
            if p.is_file() and not p.is_symlink()
        }
        assert set(sums) == files
        for name in ("opt/cascade/cascade", "usr/share/doc/cascade/copyright"):
            assert hashlib.md5((unpacked / name).read_bytes()).hexdigest() == sums[name]


# --- AppImage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_appimage() -> ModuleType:
    return load("installers/linux/AppImage/build_appimage.py")


def fake_app(folder: Path) -> Path:
    """An app folder whose ``cascade`` prints the arguments it was given."""
    (folder / "_internal").mkdir(parents=True)
    program = folder / "cascade"
    program.write_text('#!/bin/sh\necho "args: $*"\n')
    program.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("args", "seen"),
    [
        pytest.param([], "args: run", id="no-arguments-runs-the-agent"),
        pytest.param(["doctor"], "args: doctor", id="arguments-pass-through"),
    ],
)
def test_apprun_starts_the_app_inside_the_image(
    build_appimage: ModuleType, icons: Path, tmp_path: Path, args: list[str], seen: str
) -> None:
    appdir = build_appimage.assemble(fake_app(tmp_path / "app"), icons, tmp_path / "Cascade.AppDir")
    answer = subprocess.run(
        [str(appdir / "AppRun"), *args], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == seen


@pytest.fixture(scope="module")
def icons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The icons ``icons/generate.py`` writes, for installer tests that need no frozen app."""
    out = tmp_path_factory.mktemp("icons")
    subprocess.run([sys.executable, str(ROOT / "icons" / "generate.py"), str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def appdir(
    build_appimage: ModuleType,
    frozen_app: Any,
    icons_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """The AppImage's AppDir, assembled once from the frozen app."""
    out = tmp_path_factory.mktemp("appimage") / "Cascade.AppDir"
    built: Path = build_appimage.assemble(Path(frozen_app.app), icons_dir, out)
    yield built
    shutil.rmtree(out, ignore_errors=True)


class TestAppDir:
    pytestmark = slow

    def test_apprun_runs_the_frozen_app(self, appdir: Path) -> None:
        assert os.access(appdir / "AppRun", os.X_OK)
        answer = subprocess.run(
            [str(appdir / "AppRun"), "--version"], capture_output=True, text=True, check=True
        )
        assert answer.stdout.strip() == f"cascade {agent.__version__}"

    def test_the_top_level_has_the_entry_and_icon_appimagetool_wants(self, appdir: Path) -> None:
        keys = assert_valid_menu_entry(appdir / "cascade.desktop")
        assert "TryExec" not in keys, "the command is not on PATH inside an AppImage"
        assert [p.name for p in appdir.glob("*.desktop")] == ["cascade.desktop"]
        with Image.open(appdir / "cascade.png") as icon:
            assert (icon.format, icon.size) == ("PNG", (256, 256))
        assert os.readlink(appdir / ".DirIcon") == "cascade.png"

    def test_desktop_integration_finds_the_entry_and_the_icons(self, appdir: Path) -> None:
        share = appdir / "usr" / "share"
        assert_valid_menu_entry(share / "applications" / "cascade.desktop")
        assert_hicolor_icons(share, load("installers/linux/freedesktop.py").HICOLOR_SIZES)

    def test_without_appimagetool_the_command_to_pack_it_is_printed(
        self,
        build_appimage: ModuleType,
        frozen_app: Any,
        icons_dir: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        argv = ["--app", str(frozen_app.app), "--icons", str(icons_dir), "--out", str(tmp_path)]
        assert build_appimage.main([*argv, "--appdir-only"]) == 0
        printed = capsys.readouterr().out
        arch = build_appimage.appimage_arch()
        target = tmp_path / f"Cascade-{agent.__version__}-{arch}.AppImage"
        assert f"ARCH={arch} VERSION={agent.__version__} appimagetool " in printed
        assert printed.rstrip().endswith(f"{tmp_path / 'Cascade.AppDir'} {target}")


# --- Windows: Inno Setup ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_installer() -> ModuleType:
    return load("installers/windows/build_installer.py")


def split_entry(line: str) -> dict[str, str]:
    """An Inno Setup entry (``Name: "x"; Flags: a b``) as a dict, quotes removed."""
    fields = {}
    for part in re.findall(r'(?:[^;"]|"[^"]*")+', line):
        key, _, value = part.strip().partition(":")
        fields[key.strip()] = value.strip().strip('"')
    return fields


def sections(script: str) -> dict[str, list[str]]:
    """Each ``[Section]`` of a script: its lines, comments and blank lines left out (but
    ``[Code]`` keeps every line, for it is Pascal)."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in script.splitlines():
        header = re.fullmatch(r"\[(\w+)\]", line.strip())
        if header:
            current = header.group(1)
            found[current] = []
        elif current == "Code" or (line.strip() and not line.lstrip().startswith(";")):
            found.setdefault(current, []).append(line)
    return found


@pytest.fixture(scope="module")
def inno(build_installer: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("inno")
    path = build_installer.render_script(base / "cascade", base / "icons", base / "out")
    assert path == base / "out" / "cascade.iss"
    text = path.read_text(encoding="utf-8-sig")
    parts = sections(text)
    setup = dict(line.split("=", 1) for line in parts["Setup"])
    return {"base": base, "text": text, "sections": parts, "setup": setup}


class TestInnoSetupScript:
    def test_is_rendered_with_the_package_version_and_no_placeholder_left(
        self, inno: dict[str, Any]
    ) -> None:
        assert not re.search(r"@[A-Z_]+@", inno["text"])
        setup = inno["setup"]
        assert setup["AppVersion"] == agent.__version__
        assert setup["VersionInfoVersion"] == ".".join(
            [*agent.__version__.split("."), "0", "0", "0"][:4]
        )
        assert setup["OutputBaseFilename"] == f"Cascade-{agent.__version__}-windows-x64-setup"

    def test_keeps_one_app_id_for_every_release(
        self, inno: dict[str, Any], build_installer: ModuleType
    ) -> None:
        assert inno["setup"]["AppId"] == "{{53C21F44-F168-5531-A485-BA2E63D3B793}"
        assert build_installer.APP_GUID == "53C21F44-F168-5531-A485-BA2E63D3B793"

    def test_installs_for_this_user_without_administrator_rights(
        self, inno: dict[str, Any]
    ) -> None:
        setup = inno["setup"]
        assert setup["PrivilegesRequired"] == "lowest"
        assert "PrivilegesRequiredOverridesAllowed" not in setup
        assert setup["DefaultDirName"] == r"{autopf}\Cascade"
        assert setup["ArchitecturesInstallIn64BitMode"] == "x64compatible"

    def test_takes_the_whole_app_folder_of_this_build(self, inno: dict[str, Any]) -> None:
        [files] = [split_entry(line) for line in inno["sections"]["Files"]]
        app = str((inno["base"] / "cascade").resolve()).replace("/", "\\")
        assert files["Source"] == app + "\\*"
        assert files["DestDir"] == "{app}"
        assert set(files["Flags"].split()) >= {"recursesubdirs", "createallsubdirs"}
        assert inno["setup"]["SetupIconFile"].endswith("\\icons\\cascade.ico")

    def test_the_start_menu_entry_starts_the_windowed_agent(self, inno: dict[str, Any]) -> None:
        [icon] = [split_entry(line) for line in inno["sections"]["Icons"]]
        assert icon["Name"] == r"{autoprograms}\Cascade"
        assert (icon["Filename"], icon["Parameters"]) == (r"{app}\cascadew.exe", "run")

    def test_launch_at_login_is_an_optional_task_that_cascade_itself_sets_up(
        self, inno: dict[str, Any]
    ) -> None:
        [task] = [split_entry(line) for line in inno["sections"]["Tasks"]]
        assert task["Name"] == "autostart"
        assert "english.AutostartTask=Launch Cascade at login" in inno["sections"]["CustomMessages"]
        runs = [split_entry(line) for line in inno["sections"]["Run"]]
        [enable] = [r for r in runs if r.get("Tasks") == "autostart"]
        assert (enable["Filename"], enable["Parameters"]) == (
            r"{app}\cascadew.exe",
            "autostart enable",
        )

    def test_uninstall_turns_launch_at_login_off(self, inno: dict[str, Any]) -> None:
        [disable] = [split_entry(line) for line in inno["sections"]["UninstallRun"]]
        assert (disable["Filename"], disable["Parameters"]) == (
            r"{app}\cascadew.exe",
            "autostart disable",
        )
        assert disable["RunOnceId"]

    def test_uninstall_keeps_the_profiles_unless_the_person_says_otherwise(
        self, inno: dict[str, Any]
    ) -> None:
        code = "\n".join(inno["sections"]["Code"])
        assert "ExpandConstant('{localappdata}\\Cascade')" in code
        # Asked with No as the default button; silent uninstalls need /REMOVEPROFILES.
        assert "mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES" in code
        assert "DeleteProfiles := HasParam('/REMOVEPROFILES')" in code
        assert re.search(r"if DeleteProfiles then\s+DelTree\(ProfilesDir\(\)", code)

    def test_a_missing_value_stops_the_rendering(self, build_installer: ModuleType) -> None:
        with pytest.raises(build_installer.TemplateError, match="@APP_VERSION@"):
            build_installer.render("AppVersion=@APP_VERSION@", {})

    def test_a_value_that_would_break_the_script_is_refused(
        self, build_installer: ModuleType
    ) -> None:
        with pytest.raises(build_installer.TemplateError, match="APP_NAME"):
            build_installer.render("AppName=@APP_NAME@", {"APP_NAME": "Cascade\n[Run]"})


# --- macOS ------------------------------------------------------------------------------------

MACOS = ROOT / "installers" / "macos"


def test_entitlements_allow_only_what_libffi_closures_need() -> None:
    with (MACOS / "entitlements.plist").open("rb") as fh:
        entitlements = plistlib.load(fh)
    assert entitlements == {"com.apple.security.cs.allow-unsigned-executable-memory": True}


STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
record = {{"tool": name, "args": args}}
if name == "plutil":  # plutil -extract KEY raw -o - FILE
    import plistlib
    with open(args[-1], "rb") as fh:
        print(plistlib.load(fh)[args[1]])
elif name == "lipo":
    print("arm64")
elif name == "ditto":
    import shutil
    shutil.copytree(args[0], args[1], symlinks=True)
elif name == "hdiutil":
    folder = args[args.index("-srcfolder") + 1]
    record["staged"] = {{
        entry: os.readlink(os.path.join(folder, entry))
        if os.path.islink(os.path.join(folder, entry)) else "folder"
        for entry in os.listdir(folder)
    }}
    open(args[-1], "wb").close()
elif name == "codesign" and "--display" in args and os.environ.get("STUB_ADHOC"):
    print("Signature=adhoc", file=sys.stderr)
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
"""


class TestMakeDmg:
    @pytest.fixture
    def mac(self, tmp_path: Path, release: ModuleType) -> dict[str, Any]:
        """A Cascade.app skeleton, and Apple's tools replaced by recorders on PATH."""
        app = tmp_path / "dist" / "Cascade.app"
        (app / "Contents" / "MacOS").mkdir(parents=True)
        (app / "Contents" / "MacOS" / "Cascade").write_bytes(b"")
        plist = {**release.info_plist(agent.__version__), "CFBundleExecutable": "Cascade"}
        (app / "Contents" / "Info.plist").write_bytes(plistlib.dumps(plist))
        tools = tmp_path / "tools"
        tools.mkdir()
        for name in ("plutil", "lipo", "ditto", "hdiutil", "codesign", "xcrun", "spctl"):
            stub = tools / name
            stub.write_text(STUB.format(python=sys.executable))
            stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
        log = tmp_path / "calls.jsonl"
        env = {
            "PATH": f"{tools}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "STUB_LOG": str(log),
            "TMPDIR": str(tmp_path),
        }
        return {"app": app, "out": tmp_path / "dist", "env": env, "log": log}

    def run(
        self, mac: dict[str, Any], **env: str
    ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        answer = subprocess.run(
            ["bash", str(MACOS / "make_dmg.sh"), str(mac["app"]), str(mac["out"])],
            capture_output=True,
            text=True,
            env={**mac["env"], **env},
            timeout=60,
            check=False,
        )
        log = mac["log"]
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return answer, calls

    def test_an_unsigned_image_holds_the_app_and_a_link_to_applications(
        self, mac: dict[str, Any]
    ) -> None:
        answer, calls = self.run(mac)
        assert answer.returncode == 0, answer.stderr
        dmg = mac["out"] / f"Cascade-{agent.__version__}-macos-arm64.dmg"
        assert answer.stdout.strip().endswith(f"built {dmg}")
        [create] = [c for c in calls if c["tool"] == "hdiutil"]
        assert create["args"][0] == "create" and create["args"][-1] == str(dmg)
        assert (
            create["args"][create["args"].index("-volname") + 1] == f"Cascade {agent.__version__}"
        )
        assert create["staged"] == {"Cascade.app": "folder", "Applications": "/Applications"}
        assert not [c for c in calls if c["tool"] in ("codesign", "xcrun")]

    def test_a_signed_image_is_notarised_and_stapled(self, mac: dict[str, Any]) -> None:
        identity = "Developer ID Application: Cascade Test (TEAMID1234)"
        answer, calls = self.run(
            mac, CASCADE_CODESIGN_IDENTITY=identity, NOTARY_PROFILE="cascade-notary"
        )
        assert answer.returncode == 0, answer.stderr
        dmg = str(mac["out"] / f"Cascade-{agent.__version__}-macos-arm64.dmg")
        order = [
            (c["tool"], c["args"]) for c in calls if c["tool"] in ("codesign", "xcrun", "hdiutil")
        ]
        assert order[0] == (
            "codesign",
            ["--verify", "--deep", "--strict", "--verbose=2", str(mac["app"])],
        )
        tools = [tool for tool, _ in order]
        assert tools.index("hdiutil") < tools.index("xcrun")
        assert ("codesign", ["--force", "--timestamp", "--sign", identity, dmg]) in order
        assert (
            "xcrun",
            ["notarytool", "submit", dmg, "--keychain-profile", "cascade-notary", "--wait"],
        ) in order
        assert ("xcrun", ["stapler", "staple", dmg]) in order

    def test_an_app_signed_ad_hoc_is_refused(self, mac: dict[str, Any]) -> None:
        answer, calls = self.run(
            mac, CASCADE_CODESIGN_IDENTITY="Developer ID Application: X (T)", STUB_ADHOC="1"
        )
        assert answer.returncode == 1
        assert "signed ad hoc" in answer.stderr
        assert not [c for c in calls if c["tool"] == "hdiutil"]

    def test_notarising_an_unsigned_app_is_refused(self, mac: dict[str, Any]) -> None:
        answer, calls = self.run(mac, NOTARY_PROFILE="cascade-notary")
        assert answer.returncode == 1
        assert "CASCADE_CODESIGN_IDENTITY" in answer.stderr
        assert calls == []

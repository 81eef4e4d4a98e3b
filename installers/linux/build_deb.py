"""Build Cascade's ``.deb`` from the PyInstaller app folder, with ``dpkg-deb``.

    python installers/linux/build_deb.py [--app dist/cascade] [--icons icons/build]
                                         [--out dist] [--compression xz]

Run ``python build/build.py`` first: it makes the app folder and the icons. The package holds

- ``/opt/cascade/``: the app folder as PyInstaller made it (its own Python, the libraries and
  the bundled FFmpeg in ``_internal/``), symbolic links kept;
- ``/usr/bin/cascade`` → ``/opt/cascade/cascade``: the command on ``PATH``;
- ``/usr/share/applications/cascade.desktop``: the menu entry (``cascade run``);
- ``/usr/share/icons/hicolor/<n>x<n>/apps/cascade.png``: the icon the menu entry, the
  launch-at-login entry and notifications name;
- ``/usr/share/doc/cascade/copyright``.

``DEBIAN/control`` gets the version from ``agent.__version__`` (``1.0rc1`` becomes
``1.0~rc1``, so a release sorts after its candidates), the architecture of this machine, and
``Depends: libc6 (>= X)`` with the newest glibc symbol version any binary in the app needs
(read with ``objdump -p``): everything else is inside the app folder. No maintainer scripts:
Debian's triggers refresh the icon cache and the menu when files land in those folders.
Removing the package leaves each person's profiles and keys alone, as Debian wants for data in
home folders.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "build"))

import cascade_release as release  # noqa: E402
import freedesktop  # noqa: E402

PACKAGE = release.COMMAND
INSTALL_DIR = Path("opt") / release.COMMAND
MAINTAINER = "Cascade maintainers <maintainers@cascade.invalid>"
COMPRESSIONS = ("xz", "zstd", "gzip", "none")
# Where the keys and the tray come from on a desktop: a Secret Service provider, and a tray
# host for GNOME (which has none of its own).
RECOMMENDS = "gnome-keyring | kwalletmanager | keepassxc"
SUGGESTS = "gnome-shell-extension-appindicator"
_ELF_MAGIC = b"\x7fELF"
_GLIBC = re.compile(r"\bGLIBC_(\d+(?:\.\d+)+)\b")
_PRERELEASE = re.compile(r"^(\d+(?:\.\d+)*)[.-]?(a|b|rc|alpha|beta|c|pre|preview|dev)\.?(\d*)(.*)$")
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class DebError(RuntimeError):
    """The package could not be built; the message says what to do."""


def debian_version(version: str) -> str:
    """A Python package version as a Debian one: pre-releases sort before the release.

    ``"0.1.0"`` → ``"0.1.0"``; ``"1.0rc1"`` → ``"1.0~rc1"``; ``"2.0.0.dev3"`` → ``"2.0.0~dev3"``.
    """
    match = _PRERELEASE.match(version)
    if match is None:
        return version
    release_part, kind, number, rest = match.groups()
    return f"{release_part}~{kind}{number}{rest}"


def debian_architecture() -> str:
    """This machine's Debian architecture name (``amd64``, ``arm64``)."""
    dpkg = shutil.which("dpkg")
    if dpkg is not None:
        answer = subprocess.run(
            [dpkg, "--print-architecture"], capture_output=True, text=True, check=False
        )
        if answer.returncode == 0 and answer.stdout.strip():
            return answer.stdout.strip()
    machine = platform.machine().lower()
    if machine not in _MACHINES:
        raise DebError(f"no Debian architecture known for {machine!r}; pass --arch")
    return _MACHINES[machine]


def _is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == _ELF_MAGIC


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def glibc_requirement(folder: Path, objdump: str | None = None) -> str | None:
    """The newest ``GLIBC_x.y`` symbol version any ELF file under ``folder`` needs, or None
    when ``objdump`` (binutils) is not there to read them."""
    objdump = objdump or shutil.which("objdump")
    if objdump is None:
        return None
    newest: tuple[int, ...] = ()
    for path in sorted(folder.rglob("*")):
        if not _is_elf(path):
            continue
        answer = subprocess.run(
            [objdump, "-p", str(path)], capture_output=True, text=True, check=False
        )
        for found in _GLIBC.findall(answer.stdout):
            newest = max(newest, _version_key(found))
    return ".".join(map(str, newest)) if newest else None


@dataclass(frozen=True, slots=True)
class Control:
    """The fields of ``DEBIAN/control``."""

    version: str
    architecture: str
    installed_size_kib: int
    depends: str
    maintainer: str = MAINTAINER

    def render(self) -> str:
        description = "\n".join(
            f" {line}" if line else " ."
            for line in [
                *_wrap(release.DESCRIPTION),
                "",
                *_wrap(
                    "This package carries its own Python runtime and the GPL FFmpeg build "
                    "from the imageio-ffmpeg wheel; it needs nothing else to relay."
                ),
            ]
        )
        fields = {
            "Package": PACKAGE,
            "Version": self.version,
            "Architecture": self.architecture,
            "Maintainer": self.maintainer,
            "Installed-Size": str(self.installed_size_kib),
            "Depends": self.depends,
            "Recommends": RECOMMENDS,
            "Suggests": SUGGESTS,
            "Section": "video",
            "Priority": "optional",
            "Description": f"{release.SUMMARY}\n{description}",
        }
        return "".join(f"{key}: {value}\n" for key, value in fields.items())


def _wrap(text: str, width: int = 78) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def copyright_file() -> str:
    """``/usr/share/doc/cascade/copyright`` in the machine-readable format."""
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {release.APP_NAME}\n"
        "\n"
        "Files: *\n"
        f"Copyright: {release.PUBLISHER}\n"
        f"License: {release.LICENSE}\n"
        " The FFmpeg build under /opt/cascade/_internal/imageio_ffmpeg is GPL as well.\n"
        " On Debian systems, the full text of the GNU General Public License version 3\n"
        " is in /usr/share/common-licenses/GPL-3.\n"
    )


def _installed_size_kib(root: Path) -> int:
    total = sum(p.lstat().st_size for p in root.rglob("*") if p.is_symlink() or p.is_file())
    return max(1, math.ceil(total / 1024))


def _normalise_modes(root: Path) -> None:
    """Directories 0755, files 0644, anything executable 0755 (whatever the umask was)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if path.is_dir() or mode & 0o111:
            path.chmod(0o755)
        else:
            path.chmod(0o644)


def _md5sums(root: Path, files: Iterable[Path]) -> str:
    lines = []
    for path in sorted(files):
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {path.relative_to(root).as_posix()}\n")
    return "".join(lines)


def check_app(app: Path) -> Path:
    """The executable of the app folder ``app``; DebError if it is not a Cascade build."""
    program = app / release.COMMAND
    if not (program.is_file() and os.access(program, os.X_OK) and (app / "_internal").is_dir()):
        raise DebError(
            f"{app} is not a Cascade app folder (no executable {release.COMMAND} and "
            "_internal/ in it): run `python build/build.py` first"
        )
    return program


def stage(app: Path, icons: Path, root: Path, *, version: str, architecture: str) -> Control:
    """Lay the package's files out under ``root`` (``DEBIAN/`` included)."""
    check_app(app)
    shutil.copytree(app, root / INSTALL_DIR, symlinks=True)
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / release.COMMAND).symlink_to(Path("/") / INSTALL_DIR / release.COMMAND)
    share = root / "usr" / "share"
    applications = share / "applications"
    applications.mkdir(parents=True)
    (applications / freedesktop.DESKTOP_FILE).write_text(
        freedesktop.desktop_entry(), encoding="utf-8"
    )
    freedesktop.install_icons(icons, share)
    doc = share / "doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_file(), encoding="utf-8")

    glibc = glibc_requirement(root / INSTALL_DIR)
    control = Control(
        version=debian_version(version),
        architecture=architecture,
        installed_size_kib=_installed_size_kib(root),
        depends=f"libc6 (>= {glibc})" if glibc else "libc6",
    )
    _normalise_modes(root)
    debian = root / "DEBIAN"
    debian.mkdir()
    debian.chmod(0o755)  # dpkg-deb wants 0755..0775, whatever the umask
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    (debian / "md5sums").write_text(_md5sums(root, files), encoding="utf-8")
    (debian / "control").write_text(control.render(), encoding="utf-8")
    for name in ("md5sums", "control"):
        (debian / name).chmod(0o644)
    return control


def deb_name(version: str, architecture: str) -> str:
    """The file name Debian tools expect: ``cascade_<version>_<arch>.deb``."""
    return f"{PACKAGE}_{debian_version(version)}_{architecture}.deb"


def build_deb(
    app: Path,
    icons: Path,
    out: Path,
    *,
    version: str | None = None,
    architecture: str | None = None,
    compression: str = "xz",
) -> Path:
    """Build the package into ``out`` and return its path."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise DebError("dpkg-deb is not installed (Debian package dpkg)")
    if compression not in COMPRESSIONS:
        raise DebError(f"compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")
    version = version or release.version()
    architecture = architecture or debian_architecture()
    out.mkdir(parents=True, exist_ok=True)
    target = out / deb_name(version, architecture)
    with tempfile.TemporaryDirectory(prefix="cascade-deb-", dir=out) as work:
        root = Path(work) / "root"
        root.mkdir()
        stage(app, icons, root, version=version, architecture=architecture)
        subprocess.run(
            [dpkg_deb, "--root-owner-group", f"-Z{compression}", "--build", str(root), str(target)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / release.COMMAND)
    parser.add_argument("--icons", type=Path, default=ROOT / "icons" / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--version", help="default: agent.__version__")
    parser.add_argument("--arch", help="Debian architecture (default: this machine's)")
    parser.add_argument("--compression", choices=COMPRESSIONS, default="xz")
    args = parser.parse_args(argv)
    try:
        deb = build_deb(
            args.app,
            args.icons,
            args.out,
            version=args.version,
            architecture=args.arch,
            compression=args.compression,
        )
    except (DebError, FileNotFoundError) as exc:
        print(f"build_deb: {exc}", file=sys.stderr)
        return 1
    print(f"built {deb}")
    print(f"install: sudo apt install {deb.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build Cascade's Windows installer: fill in the Inno Setup template, then compile it.

    python installers\\windows\\build_installer.py [--app dist\\cascade] [--icons icons\\build]
                                                 [--out dist] [--iscc PATH] [--render-only]

Run ``python build\\build.py`` first (it makes ``dist\\cascade`` with ``cascade.exe`` and
``cascadew.exe``, and the icons). This writes ``<out>\\cascade.iss`` from ``cascade.iss.in``
with the version of ``agent.__version__`` and this build's absolute paths, then runs Inno
Setup 6's ``ISCC.exe`` on it: ``<out>\\Cascade-<version>-windows-x64-setup.exe``. Without
ISCC (``--render-only``, or not installed) the rendered script is still written.

The uninstaller it makes takes ``/REMOVEPROFILES`` beside the usual ``/SILENT`` or
``/VERYSILENT``: a silent uninstall keeps the person's profiles unless it is given.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "build"))

import cascade_release as release  # noqa: E402

TEMPLATE = HERE / "cascade.iss.in"
#: Inno Setup's AppId: fixed for ever, so upgrades and the uninstaller find earlier installs.
APP_GUID = str(uuid.uuid5(uuid.NAMESPACE_DNS, release.BUNDLE_ID)).upper()
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


class TemplateError(ValueError):
    """The template names a value that was not given, or a value is unfit for the script."""


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``@NAME@`` replaced by ``values[NAME]``.

    Raises :class:`TemplateError` for a placeholder without a value, and for a value holding a
    line break (it would end the directive) or ``@`` markers of its own.
    """
    for name, value in values.items():
        if "\n" in value or "\r" in value or _PLACEHOLDER.search(value):
            raise TemplateError(f"the value of @{name}@ cannot go into the script: {value!r}")
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise TemplateError("no value for " + ", ".join(f"@{name}@" for name in missing))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def installer_base(version: str) -> str:
    """The installer's file name without ``.exe``."""
    return f"{release.APP_NAME}-{version}-windows-x64-setup"


def values_for(app: Path, icons: Path, out: Path, version: str) -> dict[str, str]:
    """The template's values for this build (paths made absolute, Windows style)."""

    def win(path: Path) -> str:
        return str(path.resolve()).replace("/", "\\")

    return {
        "APP_GUID": APP_GUID,
        "APP_NAME": release.APP_NAME,
        "APP_VERSION": version,
        "APP_VERSION_QUAD": ".".join(map(str, release.numeric_version(version))),
        "PUBLISHER": release.PUBLISHER,
        "COPYRIGHT": release.COPYRIGHT,
        "SUMMARY": release.SUMMARY,
        "SOURCE_DIR": win(app),
        "ICON_FILE": win(icons / "cascade.ico"),
        "OUTPUT_DIR": win(out),
        "OUTPUT_BASE": installer_base(version),
    }


def render_script(app: Path, icons: Path, out: Path, version: str | None = None) -> Path:
    """Write ``out/cascade.iss`` for this build and return its path."""
    version = version or release.version()
    script = render(TEMPLATE.read_text(encoding="utf-8"), values_for(app, icons, out, version))
    out.mkdir(parents=True, exist_ok=True)
    target = out / "cascade.iss"
    # ISCC reads a script with a UTF-8 byte order mark as UTF-8 (otherwise as the ANSI code page).
    target.write_text(script, encoding="utf-8-sig")
    return target


def find_iscc(explicit: Path | None = None) -> Path | None:
    """Inno Setup 6's compiler: ``explicit``, ISCC on PATH, or its usual install folders."""
    if explicit is not None:
        return explicit
    found = shutil.which("ISCC") or shutil.which("iscc")
    if found:
        return Path(found)
    for base in ("ProgramFiles(x86)", "ProgramFiles", "LOCALAPPDATA"):
        root = os.environ.get(base)
        if not root:
            continue
        for sub in ("Inno Setup 6", os.path.join("Programs", "Inno Setup 6")):
            candidate = Path(root) / sub / "ISCC.exe"
            if candidate.is_file():
                return candidate
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / release.COMMAND)
    parser.add_argument("--icons", type=Path, default=ROOT / "icons" / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--iscc", type=Path, help="path of ISCC.exe (Inno Setup 6)")
    parser.add_argument("--render-only", action="store_true", help="write the .iss, no compile")
    args = parser.parse_args(argv)

    script = render_script(args.app, args.icons, args.out)
    print(f"wrote {script}")
    if args.render_only:
        return 0
    for needed in (args.app / "cascade.exe", args.app / "cascadew.exe", args.icons / "cascade.ico"):
        if not needed.is_file():
            print(f"build_installer: {needed} is missing: run build\\build.py", file=sys.stderr)
            return 1
    iscc = find_iscc(args.iscc)
    if iscc is None:
        print("build_installer: ISCC.exe (Inno Setup 6) not found; give --iscc", file=sys.stderr)
        return 1
    subprocess.run([str(iscc), "/Q", str(script)], check=True)
    print(f"built {args.out / (installer_base(release.version()) + '.exe')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The packaging tests' fixtures: the build scripts as modules, and one frozen Linux app per
test session (PyInstaller takes a while; every test that needs the app shares it).

The scripts under ``build/`` and ``installers/`` are programs, not packages: :func:`load`
imports one from its path. They put their own folders on ``sys.path`` to find each other;
that is undone once they are loaded, so nothing else in the suite imports from there.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.keyring_session import SecretServiceSession

ROOT = Path(__file__).resolve().parents[2]


def load(relative: str, name: str | None = None) -> ModuleType:
    """The script at ``ROOT/relative``, imported once per session as ``name`` (default: its
    file name, the name the scripts import each other by)."""
    path = ROOT / relative
    name = name or path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path[:] = saved
    return module


@pytest.fixture(scope="session")
def release() -> ModuleType:
    """``build/cascade_release.py``."""
    return load("build/cascade_release.py")


@pytest.fixture(scope="session")
def frozen_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The Linux app built by ``build/build.py`` (icons, PyInstaller, ``--version`` check):
    a ``Built`` with ``.app`` (the app folder), ``.command`` and ``.version``. Removed at the
    end of the session: it weighs a quarter of a gigabyte."""
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.fail("PyInstaller is not installed: pip install -e '.[test]' (it is in the extras)")
    builder = load("build/build.py", "cascade_build")
    base = tmp_path_factory.mktemp("frozen")
    try:
        built = builder.build(base / "dist", base / "work", base / "icons")
    except (builder.BuildError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"the PyInstaller build failed: {exc}")
    yield built
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def icons_dir(frozen_app: Any) -> Path:
    """The icons ``icons/generate.py`` wrote for the build."""
    icons = Path(frozen_app.app).parents[1] / "icons"
    assert (icons / "cascade-1024.png").is_file(), icons
    return icons


@pytest.fixture(scope="module")
def secret_service() -> Iterator[SecretServiceSession]:
    """A private, real Secret Service (dbus-daemon + gnome-keyring)."""
    with SecretServiceSession() as session:
        yield session

"""Lint and type checks are part of the suite: ruff and mypy (strict) must pass."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_file_is_collected(request: pytest.FixtureRequest) -> None:
    """No test folder is silently left out (pytest skips folders named like ``build`` or
    ``dist`` by default): every ``test_*.py`` under tests/ is one pytest collects."""
    ignored = request.config.getini("norecursedirs")
    tests = ROOT / "tests"
    for path in tests.rglob("test_*.py"):
        folders = path.relative_to(tests).parts[:-1]
        hidden = [f for f in folders if any(fnmatch.fnmatch(f, pattern) for pattern in ignored)]
        assert not hidden, f"{path.relative_to(ROOT)} is never collected: rename {hidden[0]}/"

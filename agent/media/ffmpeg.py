"""Finding the FFmpeg binary Cascade runs, and checking that it is one we can use.

The candidates, in order: the explicit setting (a path or a command on ``PATH``), else
``$CASCADE_FFMPEG``, else the FFmpeg bundled in the ``imageio-ffmpeg`` wheel, else ``ffmpeg``
on ``PATH``. A binary the person chose (the setting or ``CASCADE_FFMPEG``) must work: Cascade
never falls back silently from it to another one. Each candidate is run once with
``-hide_banner -version``; the version and the ``--enable-...`` flags are read from its answer.

:func:`run_command` is the one place a short-lived FFmpeg run goes through; the capability
probe takes it (or a recorder wrapping it) as its runner.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import FFmpegError

log = logging.getLogger(__name__)

MIN_VERSION: tuple[int, ...] = (5, 0)
ENV_VAR = "CASCADE_FFMPEG"
VERSION_TIMEOUT = 10.0  # seconds for ``-version``; a healthy binary answers in milliseconds

_MIN_TEXT = ".".join(str(part) for part in MIN_VERSION)
_VERSION_LINE = re.compile(r"^ffmpeg version (\S+)")
# "n9.0.2-17-g…", "5.1.6-0+deb12u1", "7.1"; git builds ("N-118000-g…", "2024-03-04-git-…")
# carry no release number and do not match.
_RELEASE = re.compile(r"^n?(\d+)\.(\d+)(?:\.(\d+))?(?![\d])")

if sys.platform == "win32":
    # A tray app must not flash a console window for every probe.
    _CREATION_FLAGS = subprocess.CREATE_NO_WINDOW
else:
    _CREATION_FLAGS = 0


@dataclass(frozen=True)
class RunResult:
    """What a short FFmpeg run left behind. ``returncode`` is None when it timed out."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        """True when the run was killed at its deadline."""
        return self.returncode is None


#: Runs an argument list with a timeout in seconds. Raises ``OSError`` if it cannot start.
Runner = Callable[[Sequence[str], float], RunResult]


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def run_command(argv: Sequence[str], timeout: float) -> RunResult:
    """Run ``argv`` to completion (stdin closed) and return its exit code and output.

    On timeout the child is killed and the result has ``returncode=None``. ``OSError`` (not
    found, not executable, bad format) propagates: the caller knows which candidate it was.
    """
    log.debug("running %r (timeout %.1f s)", list(argv), timeout)
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            creationflags=_CREATION_FLAGS,
        )
    except subprocess.TimeoutExpired as exc:
        return RunResult(None, _text(exc.stdout), _text(exc.stderr), time.monotonic() - started)
    return RunResult(
        done.returncode, _text(done.stdout), _text(done.stderr), time.monotonic() - started
    )


@dataclass(frozen=True)
class FFmpegBinary:
    """An FFmpeg executable that answered ``-version`` and is new enough."""

    path: Path
    version: str
    version_tuple: tuple[int, ...] | None
    configuration: tuple[str, ...]
    size: int
    mtime_ns: int

    @property
    def cache_key(self) -> str:
        """A key that changes when the file at ``path`` is replaced or rebuilt."""
        identity = f"{self.path}\0{self.size}\0{self.mtime_ns}"
        return hashlib.sha256(identity.encode("utf-8", errors="surrogateescape")).hexdigest()[:24]


def parse_version_tuple(version: str) -> tuple[int, ...] | None:
    """The release numbers in an FFmpeg version string, or None for a git build.

    ``"n9.0.2-17-g2a571b6068-20260930"`` → ``(9, 0, 2)``; ``"5.1.6-0+deb12u1"`` →
    ``(5, 1, 6)``; ``"7.1"`` → ``(7, 1)``; ``"N-118000-g…"`` → ``None``.
    """
    match = _RELEASE.match(version)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def parse_configuration(line: str) -> tuple[str, ...]:
    """The ``--enable-...`` flags of a ``configuration:`` line, in their order."""
    body = line.split(":", 1)[1] if ":" in line else line
    try:
        words = shlex.split(body)
    except ValueError:  # an unbalanced quote in some odd build: plain words are good enough
        words = body.split()
    return tuple(word for word in words if word.startswith("--enable-"))


def parse_version_output(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``(version, configuration)`` from ``ffmpeg -version`` output; None if it is not FFmpeg."""
    version: str | None = None
    configuration: tuple[str, ...] = ()
    for line in text.splitlines():
        stripped = line.strip()
        if version is None:
            match = _VERSION_LINE.match(stripped)
            if match:
                version = match.group(1)
        if stripped.startswith("configuration:"):
            configuration = parse_configuration(stripped)
            break
    if version is None:
        return None
    return version, configuration


class _Unusable(Exception):
    """One candidate failed; the message says why, naming its path."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _inspect(path: Path, runner: Runner) -> FFmpegBinary:
    if not path.exists():
        raise _Unusable(f"{path} does not exist")
    if path.is_dir():
        raise _Unusable(f"{path} is a directory, not a program")
    if os.name == "posix" and not os.access(path, os.X_OK):
        raise _Unusable(f"{path} is not executable")
    try:
        result = runner([str(path), "-hide_banner", "-version"], VERSION_TIMEOUT)
    except OSError as exc:
        raise _Unusable(f"{path} could not be started ({exc.strerror or exc})") from exc
    if result.timed_out:
        raise _Unusable(f"{path} -version did not answer within {VERSION_TIMEOUT:g} s")
    if result.returncode != 0:
        detail = _last_line(result.stderr) or _last_line(result.stdout)
        suffix = f": {detail}" if detail else ""
        raise _Unusable(f"{path} -version exited with code {result.returncode}{suffix}")
    parsed = parse_version_output(result.stdout) or parse_version_output(result.stderr)
    if parsed is None:
        first = (result.stdout.strip().splitlines() or [""])[0][:80]
        raise _Unusable(f"{path} does not look like FFmpeg (its -version printed {first!r})")
    version, configuration = parsed
    version_tuple = parse_version_tuple(version)
    if version_tuple is not None and version_tuple < MIN_VERSION:
        raise _Unusable(
            f"{path} is FFmpeg {version}, which is too old (Cascade needs {_MIN_TEXT} or newer)"
        )
    stat = path.stat()
    return FFmpegBinary(
        path=path,
        version=version,
        version_tuple=version_tuple,
        configuration=configuration,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )


@dataclass(frozen=True)
class _Candidate:
    """A place to look: ``label`` names it for a person; ``path`` is None if nothing is there."""

    label: str
    path: Path | None
    missing: str = ""


def _locate(setting: str, search_path: str) -> Path | None:
    """A path setting as an absolute path; a bare command name looked up on ``search_path``."""
    expanded = os.path.expanduser(setting)
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    if any(sep in expanded for sep in separators) or os.path.isabs(expanded):
        return Path(os.path.abspath(expanded))
    found = shutil.which(expanded, path=search_path)
    return Path(os.path.abspath(found)) if found else None


def _explicit_candidate(label: str, setting: str, search_path: str) -> _Candidate:
    path = _locate(setting, search_path)
    if path is None:
        return _Candidate(label, None, f"{setting!r} is not a path and is not found on PATH")
    return _Candidate(label, path)


def _bundled_candidate() -> _Candidate:
    # imageio-ffmpeg reads IMAGEIO_FFMPEG_EXE from the real process environment itself.
    override = os.environ.get("IMAGEIO_FFMPEG_EXE")
    label = (
        f"IMAGEIO_FFMPEG_EXE={override} (read by imageio-ffmpeg)"
        if override
        else "the FFmpeg bundled with imageio-ffmpeg"
    )
    try:
        import imageio_ffmpeg

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except ImportError:
        return _Candidate(label, None, "imageio-ffmpeg is not installed")
    except (RuntimeError, OSError) as exc:
        return _Candidate(label, None, f"imageio-ffmpeg found none ({exc})")
    path = _locate(exe, os.environ.get("PATH", os.defpath))
    if path is None:
        return _Candidate(label, None, f"imageio-ffmpeg named {exe!r}, which is not found")
    return _Candidate(label, path)


def _path_candidate(search_path: str) -> _Candidate:
    found = shutil.which("ffmpeg", path=search_path)
    if found is None:
        return _Candidate("'ffmpeg' on PATH", None, "not found")
    return _Candidate("'ffmpeg' on PATH", Path(os.path.abspath(found)))


def _try_explicit(candidate: _Candidate, hint: str) -> FFmpegBinary:
    """The person chose this binary: it works, or that is the error (no fallback)."""
    if candidate.path is None:
        raise FFmpegError(candidate.missing, subject=candidate.label, hint=hint)
    try:
        return _inspect(candidate.path, run_command)
    except _Unusable as exc:
        raise FFmpegError(str(exc), subject=candidate.label, hint=hint) from exc


def _try_defaults(search_path: str) -> FFmpegBinary:
    """The bundled binary, else ``ffmpeg`` on PATH; one error naming both if neither works."""
    problems: list[str] = []
    seen: set[Path] = set()
    for candidate in (_bundled_candidate(), _path_candidate(search_path)):
        if candidate.path is None:
            problems.append(f"{candidate.label}: {candidate.missing}")
            continue
        if candidate.path in seen:
            continue
        seen.add(candidate.path)
        try:
            return _inspect(candidate.path, run_command)
        except _Unusable as exc:
            log.info("skipping %s: %s", candidate.label, exc)
            problems.append(f"{candidate.label}: {exc}")
    raise FFmpegError(
        "no usable FFmpeg found; tried " + "; ".join(problems),
        subject="FFmpeg",
        hint=(
            f"Set {ENV_VAR} to the full path of ffmpeg {_MIN_TEXT} or newer, "
            "or reinstall cascade-agent so the bundled FFmpeg is present"
        ),
    )


_found: dict[tuple[str | None, ...], FFmpegBinary] = {}
_found_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every binary :func:`find_ffmpeg` found (tests, or after a settings change)."""
    with _found_lock:
        _found.clear()


def find_ffmpeg(
    setting: str | None = None, *, env: Mapping[str, str] | None = None
) -> FFmpegBinary:
    """Find the FFmpeg binary to use, check it, and remember it for the process lifetime.

    ``setting`` is the person's choice (a path or a command name on PATH); ``env`` replaces
    ``os.environ`` for ``CASCADE_FFMPEG`` and ``PATH``. Raises :class:`FFmpegError` naming
    every candidate tried and what went wrong with each.
    """
    environ = os.environ if env is None else env
    chosen_env = environ.get(ENV_VAR) or None
    search_path = environ.get("PATH", os.defpath)
    key = (setting or None, chosen_env, search_path, os.environ.get("IMAGEIO_FFMPEG_EXE"))
    with _found_lock:
        cached = _found.get(key)
    if cached is not None:
        return cached
    if setting:
        binary = _try_explicit(
            _explicit_candidate(f"the ffmpeg setting {setting!r}", setting, search_path),
            hint=(
                f"Point the ffmpeg setting at ffmpeg {_MIN_TEXT} or newer (a full path or a "
                "command on PATH), or clear it to use the bundled FFmpeg"
            ),
        )
    elif chosen_env:
        binary = _try_explicit(
            _explicit_candidate(f"{ENV_VAR}={chosen_env}", chosen_env, search_path),
            hint=(
                f"Set {ENV_VAR} to the full path of ffmpeg {_MIN_TEXT} or newer, "
                "or unset it to use the bundled FFmpeg"
            ),
        )
    else:
        binary = _try_defaults(search_path)
    log.info("using FFmpeg %s at %s", binary.version, binary.path)
    with _found_lock:
        _found[key] = binary
    return binary

"""Crash-safe JSON files: every write is atomic and keeps the previous version as a backup.

A write (:func:`write_json_atomic`) goes:

1. serialize first, so data that cannot be written as JSON raises before any file is touched;
2. write a temporary file in the same directory, flush it and fsync it;
3. keep the current file as ``<name>.bak``: a hard link to it, made under a temporary name and
   moved over the old backup with ``os.replace``;
4. ``os.replace`` the temporary file over ``<name>`` — one atomic step;
5. fsync the directory (POSIX), so the renames themselves survive a power cut.

Why a hard link and not a copy: ``<name>`` is never changed in place, only replaced, so a link
to it is a frozen copy of the previous version that costs no I/O and appears in one step. At
every instant ``<name>`` holds the old or the new version, complete, and ``<name>.bak`` a
complete earlier one. A plain copy would be written byte by byte, and a crash in the middle
would leave a torn backup. Filesystems without hard links (FAT, some network shares) get a copy
that goes through its own temporary file, fsync and rename instead.

A current file that is damaged (not a JSON object) never becomes the backup and is never
overwritten: it is kept aside as ``<name>.corrupt-YYYYmmdd-HHMMSS`` first.

A read (:func:`read_json`) tries ``<name>``, then ``<name>.bak``. A damaged file — unreadable,
not UTF-8, not JSON, not an object, larger than :data:`MAX_BYTES`, or refused by the caller's
``decode`` — is moved aside as ``<name>.corrupt-YYYYmmdd-HHMMSS`` (never deleted, never
overwritten) when the backup or the defaults are used instead, and :class:`ReadResult` says what
happened in a sentence a person can read.

Errors::

    CascadeError
    └── StoreError      a file could not be written (disk full, permissions, data that is
                        not JSON), or holds something this Cascade must not touch
                        (agent.store.codec.NewerSchema)
"""

from __future__ import annotations

import contextlib
import enum
import glob
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar, overload

from agent.errors import CascadeError, ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "MAX_BYTES",
    "ReadResult",
    "Source",
    "StoreError",
    "backup_path",
    "delete_json",
    "read_json",
    "write_json_atomic",
]

# Far above any real file (a rich profile is a few kB), far below what would hurt to parse.
MAX_BYTES = 4 * 1024 * 1024
BACKUP_SUFFIX = ".bak"
CORRUPT_MARK = ".corrupt-"
TEMP_SUFFIX = ".tmp"
# A temporary file older than this is a leftover of a crashed write, not one in progress.
STALE_TEMP_S = 60.0
# Windows refuses to replace a file another process has open (a reader, an antivirus scan);
# such a hold is brief, so a replace is retried for up to about a second there.
_WINDOWS_REPLACE_TRIES = 20

T = TypeVar("T")
JsonObject = dict[str, Any]


class StoreError(CascadeError):
    """Raised when a file cannot be written (disk full, no permission, data that is not JSON),
    or holds something this Cascade must not touch, such as a newer schema."""


class Source(enum.Enum):
    """Where the value of a :class:`ReadResult` came from."""

    FILE = "file"  # the file itself
    BACKUP = "backup"  # its backup: the file was missing or damaged
    DEFAULTS = "defaults"  # nothing usable (or a first run): the caller uses its defaults


@dataclass(frozen=True, slots=True)
class ReadResult(Generic[T]):
    """What :func:`read_json` found: the value, where it came from, and what went wrong.

    ``value`` is None when the caller should use its defaults. ``message`` is None when
    nothing went wrong (including a first run with no file), else one sentence for a person.
    ``kept`` lists the damaged files moved aside.
    """

    value: T | None
    source: Source
    message: str | None = None
    kept: tuple[Path, ...] = ()


class _Damaged(Exception):
    """A file exists but cannot be used; ``reason`` says why, for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Missing:
    """Neither a value nor damage: the file is not there."""


# --- paths ------------------------------------------------------------------------------------


def backup_path(path: Path) -> Path:
    """The backup that :func:`write_json_atomic` keeps for ``path``: ``<name>.bak``."""
    return path.with_name(path.name + BACKUP_SUFFIX)


def _aside_names(path: Path, now: datetime) -> Iterator[Path]:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    yield path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}")
    number = 2
    while True:  # two damaged files in the same second keep both
        yield path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}-{number}")
        number += 1


def _temp_name(path: Path, what: str) -> Path:
    # ".<name>.<what>-<random>.tmp": hidden, unique, and found again by _remove_stale_temps.
    return path.with_name(f".{path.name}.{what}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


# --- reading ----------------------------------------------------------------------------------


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.0f} MB"
    return f"{count / 1024:.0f} kB"


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "true/false value"
    if value is None:
        return "null"
    return "number"


def _load_object(path: Path) -> JsonObject:
    """The JSON object in ``path``; FileNotFoundError, or :class:`_Damaged` saying why not."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_BYTES:
                # Refused before reading: a runaway file must not stall the agent's start.
                raise _Damaged(f"it is {_size(size)}, far more than a Cascade file ever holds")
            raw = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise _Damaged("it is a folder, not a file") from None
    except OSError as exc:
        raise _Damaged(f"it could not be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise _Damaged(f"it is more than {_size(MAX_BYTES)}, far more than a Cascade file holds")
    if not raw.strip():
        raise _Damaged("it is empty")
    try:
        # utf-8-sig: a file saved by Notepad starts with a byte-order mark; that is not damage.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Damaged("it holds binary data, not text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Damaged(
            f"it is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise _Damaged("it is nested far too deeply to be a Cascade file") from None
    if not isinstance(data, dict):
        raise _Damaged(f"it holds a JSON {_json_kind(data)} where an object belongs")
    return data


def _attempt(path: Path, decode: Callable[[JsonObject], T]) -> T | _Missing | _Damaged:
    """Read and decode one file. A :class:`StoreError` from ``decode`` is not damage: it
    propagates (a newer schema must be refused, not moved aside)."""
    try:
        data = _load_object(path)
    except FileNotFoundError:
        return _Missing()
    except _Damaged as damage:
        return damage
    try:
        return decode(data)
    except (ValueError, ConfigError) as exc:
        # Only these mean "the content is wrong"; a TypeError or KeyError from decode is a bug
        # in Cascade, and must not send a good file aside.
        return _Damaged(str(exc))


def _when(moment: datetime, now: datetime) -> str:
    """'21 Nov 14:03', with the year when it is not this one."""
    day = f"{moment.day} {moment:%b}"
    if moment.year != now.year:
        day = f"{day} {moment.year}"
    return f"{day} {moment:%H:%M}"


def _identity(data: JsonObject) -> JsonObject:
    return data


@overload
def read_json(
    path: Path, *, label: str | None = None, now: datetime | None = None
) -> ReadResult[JsonObject]: ...


@overload
def read_json(
    path: Path,
    decode: Callable[[JsonObject], T],
    *,
    label: str | None = None,
    now: datetime | None = None,
) -> ReadResult[T]: ...


def read_json(
    path: Path,
    decode: Callable[[JsonObject], Any] | None = None,
    *,
    label: str | None = None,
    now: datetime | None = None,
) -> ReadResult[Any]:
    """Read the JSON object in ``path``, falling back to its backup, then to the defaults.

    ``decode`` turns the object into the caller's type; a ValueError or a
    :class:`~agent.errors.ConfigError` from it marks the file as damaged, like bad JSON does.
    A :class:`StoreError` from it (a newer schema) propagates and nothing is moved.

    A damaged file is moved aside as ``<name>.corrupt-YYYYmmdd-HHMMSS`` — only when the backup
    or the defaults are used instead — and the result's ``message`` says so. ``label`` names
    the file in that message (default: its name); ``now`` dates the moved file.
    """
    convert = decode or _identity
    primary = _attempt(path, convert)
    if not isinstance(primary, _Missing | _Damaged):
        return ReadResult(primary, Source.FILE)

    now = now or datetime.now()
    name = label or path.name
    spare_path = backup_path(path)
    spare = _attempt(spare_path, convert)
    kept: list[Path] = []
    notes: list[str] = []  # what could not be moved aside, and why

    def put_aside(damaged: Path) -> None:
        try:
            kept.append(_keep_aside(damaged, now, move=True))
        except OSError as exc:
            notes.append(
                f"{damaged} could not be moved aside ({exc.strerror or exc}) and was left as it "
                "is; Cascade will not overwrite it"
            )

    if isinstance(primary, _Damaged):
        put_aside(path)
        problem = f"{name} was damaged ({primary.reason})"
    else:
        problem = f"{name} was missing"

    if isinstance(spare, _Missing):
        if isinstance(primary, _Missing):
            return ReadResult(None, Source.DEFAULTS)  # a first run: nothing went wrong
        message = f"{problem} and has no backup; Cascade started from the defaults"
        value, source = None, Source.DEFAULTS
    elif isinstance(spare, _Damaged):
        put_aside(spare_path)
        joiner = "so was its backup" if isinstance(primary, _Damaged) else "its backup was damaged"
        message = f"{problem} and {joiner} ({spare.reason}); Cascade started from the defaults"
        value, source = None, Source.DEFAULTS
    else:
        saved = datetime.fromtimestamp(spare_path.stat().st_mtime)
        message = f"{problem}; Cascade started from the backup of {_when(saved, now)}"
        value, source = spare, Source.BACKUP

    if kept:
        things = "the damaged file" if len(kept) == 1 else "the damaged files"
        message += f" and kept {things} as {' and '.join(str(p) for p in kept)}"
    for note in notes:
        message += f"; {note}"
    return ReadResult(value, source, message + ".", tuple(kept))


# --- writing ----------------------------------------------------------------------------------


def write_json_atomic(path: Path, data: Any, *, now: datetime | None = None) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically, keeping the old version as ``.bak``.

    Raises :class:`StoreError` when ``data`` is not serializable or larger than
    :data:`MAX_BYTES` (nothing is touched), or when the disk refuses (the previous version is
    left as it was). A current file that is damaged is kept aside before it is replaced.
    """
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"could not save {path.name}: the data cannot be written as JSON ({exc})",
            hint="Nothing was changed on disk",
        ) from exc
    payload = (text + "\n").encode("utf-8")
    if len(payload) > MAX_BYTES:
        # A file Cascade would refuse to read back must never replace a good one.
        raise StoreError(
            f"could not save {path.name}: it would be {_size(len(payload))}, more than the "
            f"{_size(MAX_BYTES)} a Cascade file may hold",
            hint="Nothing was changed on disk",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        _write_new_version(path, payload, now or datetime.now())
    except OSError as exc:
        raise StoreError(
            f"could not save {path}: {exc.strerror or exc}",
            hint=(
                "The previous version is unchanged. Check the free space and the permissions "
                f"of {path.parent}"
            ),
        ) from exc
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step, keeping no backup (for files, such as the
    secrets vault, that must not leave an older copy behind). Created private to its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_new_version(path, data, None)
    _fsync_dir(path.parent)


def _write_new_version(path: Path, payload: bytes, now: datetime | None) -> None:
    """Write ``payload`` beside ``path`` and rename it over; with ``now``, the current
    version is kept as the backup first."""
    temp = _temp_name(path, "new")
    try:
        with _create_new(temp) as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        if now is not None:
            _back_up_current(path, now)
        _replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _back_up_current(path: Path, now: datetime) -> None:
    """Make the current version ``<name>.bak`` — or, if it is damaged, keep it aside."""
    try:
        _load_object(path)
    except FileNotFoundError:
        return
    except _Damaged as damage:
        kept = _keep_aside(path, now, move=False)
        log.warning(
            "%s was damaged (%s); kept it as %s before saving the new version",
            path,
            damage.reason,
            kept,
        )
        return
    staged = _temp_name(path, "bak")
    try:
        try:
            os.link(path, staged)
        except OSError:
            _copy_durably(path, staged)  # no hard links on this filesystem
        _replace(staged, backup_path(path))
    except BaseException:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise


def _create_new(path: Path) -> BinaryIO:
    """A new file open for writing. O_EXCL: never follow or reuse anything already at that
    name. 0o600: a profile holds the ingest key, and nothing here is anyone else's business."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return open(os.open(path, flags, 0o600), "wb")


def _copy_durably(source: Path, target: Path) -> None:
    with open(source, "rb") as src, _create_new(target) as dst:
        while chunk := src.read(1024 * 1024):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def _keep_aside(path: Path, now: datetime, *, move: bool) -> Path:
    """Give ``path`` a ``.corrupt-…`` name that nothing will overwrite; return that name.

    With ``move=False`` the original name stays too (a hard link), so a write that follows
    replaces it without a moment where the file is missing.
    """
    for candidate in _aside_names(path, now):
        if os.path.lexists(candidate):
            continue
        try:
            os.link(path, candidate)  # fails rather than overwrite: no clobbering
        except FileExistsError:
            continue
        except OSError:
            # No hard links here (FAT, a share) or a folder: a rename, after the check above.
            os.rename(path, candidate)
            return candidate
        if move:
            os.unlink(path)
        return candidate
    raise AssertionError("unreachable: _aside_names never ends")


def _replace(source: Path, target: Path) -> None:
    for attempt in range(_WINDOWS_REPLACE_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == _WINDOWS_REPLACE_TRIES - 1:
                raise
            time.sleep(0.05)


def _fsync_dir(directory: Path) -> None:
    """Flush the directory's entries (the renames) to disk. Windows has no such call; NTFS
    journals its renames itself."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # The new version is in place; only its survival of a power cut is in doubt, so this
        # is a warning, not a failed save.
        log.warning(
            "could not flush the folder %s to disk (%s); the last save may not survive a power cut",
            directory,
            exc.strerror or exc,
        )


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files that crashed writes of ``path`` left behind."""
    cutoff = time.time() - STALE_TEMP_S
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def delete_json(path: Path) -> None:
    """Delete ``path`` and its backup (a person asked for it); missing files are fine."""
    for victim in (path, backup_path(path)):
        try:
            victim.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                f"could not delete {victim}: {exc.strerror or exc}",
                hint=f"Check the permissions of {victim.parent}",
            ) from exc
    _fsync_dir(path.parent)

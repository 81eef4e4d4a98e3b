"""One agent per config directory: an exclusive lock on ``<config dir>/cascade.lock``.

How the agent uses it::

    lock = InstanceLock(config_dir)
    lock.acquire(port=settings.api_port)   # AlreadyRunning names the process holding it
    ...
    lock.release()                          # or: with InstanceLock(config_dir): ...

The holder writes its pid, start time and API port into the file, so a second agent can say
who holds it ("Cascade is already running for this config directory (process 1234, started
14:03)") and a client can find the running agent's API.

One lock primitive per operating system, chosen once (:func:`default_locker`):

- POSIX (:class:`PosixLocker`): ``fcntl.flock(LOCK_EX | LOCK_NB)`` on a descriptor kept open
  for the agent's lifetime.
- Windows (:class:`WindowsLocker`): ``msvcrt.locking(LK_NBLCK)`` on one byte far past the end
  of the file. Windows byte-range locks are mandatory — nobody else can read locked bytes — so
  locking the bytes that hold the holder's details would hide them from the agent that needs
  to name the holder; Windows allows locking past the end of a file, so a byte out there is
  locked instead.

Both kernels drop the lock when the process dies, however it dies, so a lock file left behind
by a crashed agent never blocks the next one: its stale details are simply overwritten. The
descriptor is not inherited by children (Python opens descriptors non-inheritable), so an
FFmpeg child that outlives the agent does not keep the lock. The file is never deleted:
deleting a lock file that another process has open and is about to lock would let two
processes each lock a different file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from agent.errors import CascadeError

__all__ = [
    "LOCK_FILE",
    "AlreadyRunning",
    "InstanceLock",
    "LockHolder",
    "Locker",
    "Msvcrt",
    "PosixLocker",
    "WindowsLocker",
    "default_locker",
    "read_holder",
]

LOCK_FILE = "cascade.lock"
MAX_HOLDER_BYTES = 4096
# How long a refused agent waits for the holder's details when it caught the holder between
# taking the lock and writing them.
_HOLDER_WAIT_S = 0.2


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds the lock: process id, when it took it (seconds since the epoch), API port."""

    pid: int
    started: float
    port: int | None = None

    def to_json(self) -> str:
        """The details as written into the lock file."""
        return json.dumps(asdict(self))

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The details in a lock file's text, or None if it holds none (empty, partly
        written, or not ours)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid, started, port = data.get("pid"), data.get("started"), data.get("port")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        if not isinstance(started, int | float) or isinstance(started, bool):
            return None
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
            return None
        return cls(pid, float(started), port)


def _clock_time(started: float, now: float) -> str:
    """'14:03' for today, '21 Nov 14:03' for another day."""
    moment, today = datetime.fromtimestamp(started), datetime.fromtimestamp(now)
    if moment.date() == today.date():
        return f"{moment:%H:%M}"
    return f"{moment.day} {moment:%b %H:%M}"


class AlreadyRunning(CascadeError):
    """Raised by :meth:`InstanceLock.acquire` when another process holds the lock.

    ``holder`` has its pid, start time and API port when the lock file says so.
    """

    def __init__(self, path: Path, holder: LockHolder | None, *, now: float | None = None) -> None:
        self.path = path
        self.holder = holder
        detail = ""
        if holder is not None:
            started = _clock_time(holder.started, time.time() if now is None else now)
            port = f", API on port {holder.port}" if holder.port else ""
            detail = f" (process {holder.pid}, started {started}{port})"
        super().__init__(
            f"Cascade is already running for this config directory{detail}",
            hint="Use that one, or stop it first.",
        )


# --- lock primitives --------------------------------------------------------------------------


class Locker(Protocol):
    """An exclusive, non-blocking lock on an open file, released when the process dies."""

    def try_lock(self, fd: int) -> bool:
        """Take the lock; False if another process (or another open of the file) holds it."""
        ...

    def unlock(self, fd: int) -> None:
        """Give the lock back."""
        ...


class PosixLocker:
    """``flock`` locks: one per open file description, dropped by the kernel on exit."""

    def __init__(self) -> None:
        import fcntl  # POSIX only; imported here so this module loads on Windows

        self._fcntl = fcntl

    def try_lock(self, fd: int) -> bool:
        """Take the lock without waiting; False if it is held elsewhere."""
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def unlock(self, fd: int) -> None:
        """Give the lock back."""
        self._fcntl.flock(fd, self._fcntl.LOCK_UN)


class Msvcrt(Protocol):
    """The part of Windows' ``msvcrt`` module that :class:`WindowsLocker` uses."""

    LK_NBLCK: int
    LK_UNLCK: int

    def locking(self, fd: int, mode: int, nbytes: int, /) -> None: ...


class WindowsLocker:
    """``msvcrt.locking`` on the byte at :attr:`OFFSET`, beyond anything the file holds."""

    # msvcrt.locking locks from the current position, which must fit a C long (31 bits).
    OFFSET = 1 << 30
    _HELD = frozenset({errno.EACCES, errno.EDEADLK, getattr(errno, "EDEADLOCK", errno.EDEADLK)})

    def __init__(self, msvcrt: Msvcrt) -> None:
        self._msvcrt = msvcrt

    def _at_offset(self, fd: int, mode: int) -> None:
        position = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, self.OFFSET, os.SEEK_SET)
        try:
            self._msvcrt.locking(fd, mode, 1)
        finally:
            os.lseek(fd, position, os.SEEK_SET)

    def try_lock(self, fd: int) -> bool:
        """Take the lock without waiting; False if it is held elsewhere."""
        try:
            self._at_offset(fd, self._msvcrt.LK_NBLCK)
        except OSError as exc:
            if exc.errno in self._HELD:
                return False
            raise
        return True

    def unlock(self, fd: int) -> None:
        """Give the lock back."""
        self._at_offset(fd, self._msvcrt.LK_UNLCK)


def default_locker() -> Locker:
    """The lock primitive of this operating system."""
    if sys.platform == "win32":
        import msvcrt

        return WindowsLocker(msvcrt)
    return PosixLocker()


# --- the lock ---------------------------------------------------------------------------------


def read_holder(path: Path) -> LockHolder | None:
    """The holder's details written in the lock file at ``path``, if any (they may be stale:
    only the lock itself says whether the holder still runs)."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_HOLDER_BYTES)
    except OSError:
        return None
    return LockHolder.parse(raw.decode("utf-8", errors="replace"))


class InstanceLock:
    """The single-instance lock of one config directory (see the module docstring).

    Creating it touches nothing; :meth:`acquire` takes it, :meth:`release` (safe twice) gives
    it back. Also a context manager.
    """

    def __init__(self, config_dir: Path, *, locker: Locker | None = None) -> None:
        self.path = config_dir / LOCK_FILE
        self._locker = locker
        self._fd: int | None = None
        self.holder: LockHolder | None = None  # this process's details while it holds the lock

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, *, port: int | None = None) -> LockHolder:
        """Take the lock and write this process's details; a no-op if already held.

        Raises :class:`AlreadyRunning` naming the holder when another process has it, or
        OSError when the lock file cannot be opened at all.
        """
        if self.holder is not None:
            return self.holder
        locker = self._locker = self._locker or default_locker()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No O_TRUNC: opening must not wipe the details of an agent that holds the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            if not locker.try_lock(fd):
                raise AlreadyRunning(self.path, self._holder_details())
            holder = LockHolder(os.getpid(), time.time(), port)
            _write_details(fd, holder)
        except BaseException:
            os.close(fd)  # closing also drops a lock this open took
            raise
        self._fd, self.holder = fd, holder
        return holder

    def set_port(self, port: int) -> None:
        """Record the API port once it is known (say, after binding port 0)."""
        if self._fd is None or self.holder is None:
            raise RuntimeError("set_port() needs the lock: call acquire() first")
        self.holder = LockHolder(self.holder.pid, self.holder.started, port)
        _write_details(self._fd, self.holder)

    def release(self) -> None:
        """Give the lock back and clear the details; safe to call twice."""
        fd, self._fd, self.holder = self._fd, None, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the next reader finds no stale details
            assert self._locker is not None
            with contextlib.suppress(OSError):
                self._locker.unlock(fd)
        finally:
            os.close(fd)

    def _holder_details(self) -> LockHolder | None:
        # The holder may be between taking the lock and writing its details: wait briefly.
        deadline = time.monotonic() + _HOLDER_WAIT_S
        while True:
            holder = read_holder(self.path)
            if holder is not None or time.monotonic() >= deadline:
                return holder
            time.sleep(0.02)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _write_details(fd: int, holder: LockHolder) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, holder.to_json().encode("utf-8"))

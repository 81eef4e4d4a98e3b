"""Child containment: when the agent dies, even by SIGKILL, every FFmpeg it started dies too.

One interface, :class:`Containment`, and one implementation per operating system, picked once
per process by :func:`default_containment`:

- Linux (:class:`LinuxContainment`): each child leads its own process group and carries a
  parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so the kernel kills it when
  the agent goes.
- Windows (:class:`WindowsContainment`): each child joins one Job Object with
  ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``; the kernel closes the agent's handle to it when
  the agent goes, which kills the job's processes.
- macOS and other POSIX systems (:class:`DarwinContainment`): no such kernel help, so a small
  watchdog sidecar (:mod:`agent.platform.watchdog`) holds a pipe from the agent and kills
  the registered process groups when the pipe reaches end-of-file.

How the launcher uses it::

    proc = await asyncio.create_subprocess_exec(*argv, **containment.popen_kwargs())
    containment.adopt(proc.pid)
    ...
    await proc.wait()
    containment.release(proc.pid)
    ...
    containment.close()  # at shutdown

Creating an implementation makes no system call; the first :meth:`~Containment.popen_kwargs`
or :meth:`~Containment.adopt` sets up what it needs. :meth:`~Containment.close` kills whatever
is still adopted and not released (normally nothing: the supervisor stopped it all first),
frees the OS resources and is safe twice; the object may be used again afterwards.

:class:`ContainmentError` (a :class:`~agent.errors.CascadeError`) is raised when a child could
not be contained; the child is then running without the guarantee and the caller should stop it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from agent.errors import CascadeError
from agent.platform import _win32_job
from agent.platform.watchdog import GRACE_SECONDS, signal_group, watchdog_command, watchdog_env

log = logging.getLogger(__name__)

__all__ = [
    "Containment",
    "ContainmentError",
    "DarwinContainment",
    "LinuxContainment",
    "WindowsContainment",
    "containment_for",
    "default_containment",
]


class ContainmentError(CascadeError):
    """Raised when a child cannot be put under containment (it would outlive a crashed agent)."""


class Containment(Protocol):
    """Makes the children of this process die with it. One per process; see the module doc."""

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for asyncio.create_subprocess_exec / subprocess.Popen.

        Call it right before each spawn, from the thread that spawns.
        """
        ...

    def adopt(self, pid: int, handle: object | None = None) -> None:
        """Called right after a child started. ``handle`` is unused by the current
        implementations (Windows opens the process by pid). Raises :class:`ContainmentError`."""
        ...

    def release(self, pid: int) -> None:
        """Called after the child was reaped."""
        ...

    def close(self) -> None:
        """Agent shutting down normally: kill anything still adopted, free OS resources."""
        ...


def containment_for(platform: str) -> Containment:
    """The containment for a ``sys.platform`` value (nothing is set up until first use)."""
    if platform.startswith("linux"):
        return LinuxContainment()
    if platform == "win32":
        return WindowsContainment()
    # macOS, and any other POSIX system: the watchdog needs only pipes, process groups and
    # signals, so it is the portable fallback.
    return DarwinContainment()


@functools.cache
def default_containment() -> Containment:
    """This process's containment, chosen once by ``sys.platform`` and shared by all callers."""
    return containment_for(sys.platform)


# ---------------------------------------------------------------------------------------------
# Linux


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_Prctl = Callable[[int, int, int, int, int], int]


def _load_prctl() -> _Prctl:
    """libc's ``prctl``, with ``errno`` kept so a failure can be reported."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    function: _Prctl = prctl
    return function


def _pdeathsig_preexec(prctl: _Prctl, parent_pid: int) -> Callable[[], None]:
    """The ``preexec_fn`` that makes a child die with ``parent_pid``.

    It runs in the child between fork and exec, where only the forking thread exists and other
    threads' locks may be held forever, so it uses only objects bound here: no imports, no
    logging, no new ctypes lookups.
    """
    sigkill = int(signal.SIGKILL)

    def die_with_parent() -> None:
        if prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
        # The parent may have died between fork and prctl; the signal would then never come.
        # Our parent is then init or a subreaper, no longer the pid captured before the fork.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sigkill)

    return die_with_parent


class LinuxContainment:
    """Own process group plus ``PR_SET_PDEATHSIG = SIGKILL`` for each child.

    The process group lets the launcher signal FFmpeg and anything it spawned at once, and keeps
    a terminal's Ctrl-C (sent to the foreground group) away from the children: the supervisor
    stops them in its own order.

    Caveat: the kernel sends the parent-death signal when the *thread* that forked the child
    exits, not the process. Children must therefore be spawned from a thread that lives as long
    as the agent: the asyncio loop thread (``asyncio.create_subprocess_exec`` forks in the
    calling thread), never a short-lived worker thread or ``run_in_executor``. The signal also
    does not survive exec of a set-user-ID binary, which FFmpeg is not, and reaches only the
    direct child: something the child itself spawned would survive the agent's death. FFmpeg
    spawns nothing; a normal stop takes the whole group anyway (the launcher uses ``killpg``).

    ``preexec_fn`` makes :mod:`subprocess` fork instead of using ``vfork``/``posix_spawn``; the
    function it runs is kept minimal for that reason (see :func:`_pdeathsig_preexec`).
    """

    def __init__(self) -> None:
        self._prctl: _Prctl | None = None
        self._lock = threading.Lock()
        self._adopted: set[int] = set()

    def popen_kwargs(self) -> dict[str, Any]:
        """``start_new_session`` and the parent-death ``preexec_fn``; call it per spawn."""
        if self._prctl is None:
            self._prctl = _load_prctl()
        # Captured now, in the parent, so the child can tell whether it was orphaned already.
        parent_pid = os.getpid()
        return {
            "start_new_session": True,
            "preexec_fn": _pdeathsig_preexec(self._prctl, parent_pid),
        }

    def adopt(self, pid: int, handle: object | None = None) -> None:
        """Remember the child so :meth:`close` can find it; the kernel does the rest."""
        with self._lock:
            self._adopted.add(pid)

    def release(self, pid: int) -> None:
        """Forget a reaped child."""
        with self._lock:
            self._adopted.discard(pid)

    def close(self) -> None:
        """Kill the process group of every child still adopted (normally there is none)."""
        with self._lock:
            leftovers, self._adopted = self._adopted, set()
        for pid in sorted(leftovers):
            log.warning("child %d was still running at shutdown; killing its process group", pid)
            signal_group(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Windows


class WindowsContainment:
    """Each child joins one kill-on-close Job Object, created at the first :meth:`adopt`.

    There is a short window between the child's start and :meth:`adopt` in which the child is
    outside the job; the launcher calls :meth:`adopt` right after the spawn to keep it small.
    ``kernel32`` is for tests (a recorder); by default the real one is loaded on first use.
    """

    def __init__(self, kernel32: _win32_job.Kernel32 | None = None) -> None:
        self._kernel32 = kernel32
        self._lock = threading.Lock()
        self._job: _win32_job.KillOnCloseJob | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        """``creationflags``: a new process group (no console Ctrl+C) and no console window."""
        return {"creationflags": _win32_job.CHILD_CREATION_FLAGS}

    def adopt(self, pid: int, handle: object | None = None) -> None:
        """Put the child in the job (creating the job first if needed)."""
        with self._lock:
            try:
                if self._job is None:
                    kernel32 = self._kernel32 or _win32_job.load_kernel32()
                    job = _win32_job.KillOnCloseJob(kernel32)
                    job.open()
                    self._job = job
                assigned = self._job.assign(pid)
            except OSError as exc:
                raise ContainmentError(
                    f"could not put the process in the agent's kill-on-close job ({exc})",
                    subject=f"child process {pid}",
                    hint="It would outlive a crash of the agent; stop it and report this.",
                ) from exc
        if not assigned:
            log.debug("child %d exited before it could join the job", pid)

    def release(self, pid: int) -> None:
        """Nothing to do: a process leaves its job when it exits."""

    def close(self) -> None:
        """Close the job handle; Windows kills whatever is still in the job."""
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            job.close()


# ---------------------------------------------------------------------------------------------
# macOS (and other POSIX systems)


class DarwinContainment:
    """Own process group for each child, plus one watchdog sidecar per agent.

    The sidecar (:mod:`agent.platform.watchdog`) starts at the first :meth:`adopt`. The agent
    keeps the write end of a pipe to its stdin and sends ``add <pid>`` / ``del <pid>``. When
    the agent dies the kernel closes that pipe; the sidecar reads end-of-file and terminates the
    process group of every pid still registered (SIGTERM, a grace, then SIGKILL).

    The pipe's write end is non-inheritable (Python's default), so no child holds it open; a
    bare ``os.fork()`` in the agent would, and for that case the sidecar also notices that its
    parent changed. If the sidecar dies, the next :meth:`adopt` or :meth:`release` starts a new
    one and registers every adopted pid again.
    """

    def __init__(self, command: list[str] | None = None) -> None:
        # ``command`` is for tests; the default is computed at start so a frozen build is seen.
        self._command = command
        self._lock = threading.Lock()
        self._adopted: set[int] = set()
        self._sidecar: subprocess.Popen[bytes] | None = None

    @property
    def sidecar_pid(self) -> int | None:
        """The running sidecar's pid, if one was started (for diagnostics and tests)."""
        sidecar = self._sidecar
        return sidecar.pid if sidecar is not None else None

    def popen_kwargs(self) -> dict[str, Any]:
        """``start_new_session``: the sidecar kills the group, and Ctrl-C does not reach it."""
        return {"start_new_session": True}

    def adopt(self, pid: int, handle: object | None = None) -> None:
        """Register the child with the sidecar (starting the sidecar if needed)."""
        with self._lock:
            self._adopted.add(pid)
            self._send(f"add {pid}\n")

    def release(self, pid: int) -> None:
        """Unregister a reaped child so the sidecar will not signal its (reusable) pid."""
        with self._lock:
            self._adopted.discard(pid)
            if self._sidecar is not None:
                self._send(f"del {pid}\n")

    def close(self) -> None:
        """Close the pipe and wait for the sidecar, which kills anything still registered."""
        with self._lock:
            sidecar, self._sidecar = self._sidecar, None
            self._adopted.clear()
        if sidecar is None:
            return
        assert sidecar.stdin is not None  # started with stdin=PIPE
        with contextlib.suppress(OSError):  # it died already; the wait below reaps it
            sidecar.stdin.close()
        try:
            sidecar.wait(timeout=GRACE_SECONDS + 2.0)
        except subprocess.TimeoutExpired:
            log.warning("watchdog sidecar %d is still stopping children; not waiting", sidecar.pid)

    def _send(self, line: str) -> None:
        """Write one line to the sidecar; restart it (with every adopted pid) if it died."""
        sidecar = self._sidecar
        if sidecar is None or sidecar.poll() is not None:
            self._restart()  # the new sidecar learns the current set, this change included
            return
        assert sidecar.stdin is not None
        try:
            sidecar.stdin.write(line.encode("ascii"))
            sidecar.stdin.flush()
        except OSError:
            self._restart()

    def _restart(self) -> None:
        old, self._sidecar = self._sidecar, None
        if old is not None:
            log.warning("watchdog sidecar %d died (%s); starting a new one", old.pid, old.poll())
            if old.stdin is not None:
                with contextlib.suppress(OSError):  # the broken pipe we already know about
                    old.stdin.close()
            try:
                old.wait(timeout=GRACE_SECONDS + 2.0)  # gone or going: reap it
            except subprocess.TimeoutExpired:
                old.kill()  # alive but deaf: its registrations move to the new sidecar
                old.wait()
        command = self._command or watchdog_command()
        log.debug("starting watchdog sidecar %r", command)
        try:
            sidecar = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=watchdog_env(os.getpid(), os.environ),
                cwd="/",  # pin no directory (e.g. a volume the user wants to eject)
                # Its own session: neither a terminal's Ctrl-C/hang-up nor a signal to the
                # agent's process group reaches it, so it outlives the agent long enough.
                start_new_session=True,
            )
        except OSError as exc:
            raise ContainmentError(
                f"could not start the watchdog sidecar {command!r} ({exc})",
                subject="child containment",
                hint="FFmpeg processes would outlive a crash of the agent; check the install.",
            ) from exc
        assert sidecar.stdin is not None
        registrations = "".join(f"add {pid}\n" for pid in sorted(self._adopted))
        try:
            sidecar.stdin.write(registrations.encode("ascii"))
            sidecar.stdin.flush()
        except OSError as exc:
            sidecar.kill()
            sidecar.wait()
            raise ContainmentError(
                f"the watchdog sidecar exited at once ({exc})",
                subject="child containment",
                hint="FFmpeg processes would outlive a crash of the agent; check the install.",
            ) from exc
        self._sidecar = sidecar

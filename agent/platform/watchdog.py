"""The watchdog sidecar: kills the agent's children when the agent dies, where no kernel will.

macOS has no parent-death signal, so :class:`~agent.platform.containment.DarwinContainment`
starts this small process once per agent and keeps a pipe to its stdin. Protocol, one ASCII
line each::

    add <pid>     the agent started a child that leads its own process group
    del <pid>     the agent reaped that child; forget it

When the pipe reaches end-of-file (the agent closed it, or died and the kernel closed it), or
when the sidecar's parent is no longer the agent, the sidecar sends SIGTERM to the process
group of every pid still registered, waits up to :data:`GRACE_SECONDS` for them to go, sends
SIGKILL to the rest, and exits. After a normal shutdown nothing is registered and it exits at
once. It uses only POSIX calls, so it runs (and is tested) on Linux too.

The sidecar ignores SIGINT and SIGHUP and leads its own process group: a terminal's Ctrl-C or
hang-up, which reaches the agent's whole foreground group, must not take the sidecar with it.

How it is started is :func:`watchdog_command`: ``python -m agent.platform.watchdog`` from
source, or, in a PyInstaller build (``sys.frozen``), the agent's own executable with
:data:`WATCHDOG_FLAG`. The frozen build's entry point must therefore dispatch that flag before
it imports anything heavy (tray, aiohttp)::

    if sys.argv[1:2] == [WATCHDOG_FLAG]:
        from agent.platform.watchdog import main
        raise SystemExit(main())

This module imports only the standard library, so the sidecar starts fast.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableSet
from pathlib import Path

WATCHDOG_FLAG = "--cascade-watchdog"
"""The argument that makes a frozen Cascade executable run as the watchdog sidecar."""

PARENT_ENV = "CASCADE_WATCHDOG_PARENT"
"""Environment variable holding the agent's pid, so the sidecar can tell when it is orphaned."""

GRACE_SECONDS = 1.0
"""How long the children get between SIGTERM and SIGKILL."""

# How often the sidecar checks that its parent is still the agent when the pipe is quiet.
_PARENT_POLL_SECONDS = 0.5
_KILL_POLL_SECONDS = 0.02

# The directory that holds the ``agent`` package (a source checkout or site-packages).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def watchdog_command() -> list[str]:
    """The argv that starts the sidecar, for a source install and a frozen build alike."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WATCHDOG_FLAG]
    return [sys.executable, "-m", "agent.platform.watchdog"]


def watchdog_env(parent_pid: int, base: Mapping[str, str]) -> dict[str, str]:
    """The sidecar's environment: ``base`` plus the agent's pid and, from source, an import
    path that finds this package even when the agent runs from an uninstalled checkout."""
    env = dict(base)
    env[PARENT_ENV] = str(parent_pid)
    if not getattr(sys, "frozen", False):
        paths = [str(_PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # first wins, no repeats
    return env


def apply_line(registered: MutableSet[int], line: bytes) -> None:
    """Apply one protocol line to the registered pids; a malformed line is reported and skipped."""
    words = line.split()
    if not words:
        return
    try:
        verb, pid = words[0].decode("ascii"), int(words[1])
        # 0, negative and 1 would make killpg/kill hit our own group, every process or init.
        if len(words) != 2 or pid <= 1 or pid == os.getpid():
            raise ValueError
    except (IndexError, UnicodeDecodeError, ValueError):
        print(f"cascade watchdog: ignoring malformed line {line!r}", file=sys.stderr)
        return
    if verb == "add":
        registered.add(pid)
    elif verb == "del":
        registered.discard(pid)
    else:
        print(f"cascade watchdog: ignoring unknown command {line!r}", file=sys.stderr)


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the group ``pid`` leads (or to ``pid`` alone); ``False`` if none is left.

    ``sig`` 0 only checks. A group whose members are all zombies still counts as present; it
    costs at most the grace period, after which SIGKILL is harmless.
    """
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        pass  # not a group leader (or gone): try the lone process
    except PermissionError:
        return False  # the pid was reused by someone else's process: not ours to touch
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_groups(
    pids: Iterable[int],
    grace: float = GRACE_SECONDS,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """SIGTERM each pid's process group, wait up to ``grace`` seconds, SIGKILL what is left."""
    alive = [pid for pid in sorted(set(pids)) if signal_group(pid, signal.SIGTERM)]
    deadline = clock() + grace
    while alive and clock() < deadline:
        sleep(_KILL_POLL_SECONDS)
        alive = [pid for pid in alive if signal_group(pid, 0)]
    for pid in alive:
        signal_group(pid, signal.SIGKILL)


def _detach() -> None:
    """Survive what is aimed at the agent's terminal or process group."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.getpgrp() != os.getpid():  # the agent normally starts us in a new session already
        try:
            os.setpgid(0, 0)
        except OSError as exc:
            print(f"cascade watchdog: could not leave the agent's group: {exc}", file=sys.stderr)


def watch(fd: int, parent_pid: int) -> set[int]:
    """Read protocol lines from ``fd`` until end-of-file or until ``parent_pid`` is no longer
    this process's parent; return the pids still registered."""
    registered: set[int] = set()
    pending = b""
    while True:
        readable, _, _ = select.select([fd], [], [], _PARENT_POLL_SECONDS)
        if not readable:
            # Quiet pipe: normally the agent is just busy. But if something forked from the
            # agent holds the pipe open, end-of-file never comes; a new parent (init or a
            # subreaper) says the agent is gone all the same. Checked only when nothing is
            # waiting to be read, so registrations already in the pipe are not lost.
            if os.getppid() != parent_pid:
                return registered
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return registered
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            apply_line(registered, line)


def main() -> int:
    """Run the sidecar on stdin until the agent is gone, then stop what it left behind."""
    _detach()
    try:
        parent_pid = int(os.environ[PARENT_ENV])
    except (KeyError, ValueError):
        parent_pid = os.getppid()
    leftovers = watch(sys.stdin.fileno(), parent_pid)
    terminate_groups(leftovers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

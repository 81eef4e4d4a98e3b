"""The benchmark's child processes: started contained, reaped with their CPU, stopped in stages.

CPU is read the way the kernel accounts it: :meth:`Child.reap` uses ``os.wait4``, whose
``rusage`` covers the child *and every descendant that was reaped by its parent* (the same
figure a ``getrusage(RUSAGE_CHILDREN)`` delta gives, but for that one child). A relay's
helpers are therefore counted once they have been reaped: FFmpeg children by Cascade's
supervisor, nginx's worker by its master on a graceful SIGQUIT.

Memory is sampled from outside with psutil (:class:`TreeSampler`): USS (memory only that
process holds) summed over the relay's process tree, and the root process's own RSS and USS.

Linux only: listening sockets are read from ``/proc/net/tcp``, and every child leads its own
process group (a terminal's Ctrl-C reaches only the benchmark, which stops them in order) and
carries a parent-death signal, so that nothing outlives a benchmark killed with SIGKILL.
nginx gets SIGTERM rather than SIGKILL there: its master then takes its worker down too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil

MB = 1024 * 1024
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class BenchmarkError(RuntimeError):
    """Something the benchmark needs did not happen (a relay did not start, a tool is missing)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_listening(port: int) -> bool:
    """Whether something listens on ``port``, read from /proc (no probe connection: it would
    be taken as the one client of an ``ffmpeg -listen``)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(wanted) and parts[3] == "0A":
                    return True
    return False


@dataclass
class Child:
    """One process the benchmark started; :meth:`reap` records its (and its tree's) CPU."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int
    log_path: Path | None
    rusage: resource.struct_rusage | None = None
    returncode: int | None = None
    exited_at: float | None = None  # time.monotonic() when reaped

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.returncode is None

    def reap(self, timeout: float | None = None, poll: float = 0.005) -> bool:
        """Wait (up to ``timeout`` seconds) for the child to exit; True once it is reaped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.exited_at = time.monotonic()
                self.rusage = usage
                self.returncode = os.waitstatus_to_exitcode(status)
                self.popen.returncode = self.returncode  # Popen must not reap it again
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds of the child and its reaped descendants."""
        if self.rusage is None:
            raise BenchmarkError(f"{self.name} has not been reaped yet")
        return float(self.rusage.ru_utime + self.rusage.ru_stime)

    def signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (it leads one)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def stop(self, grace: float = 8.0) -> None:
        """Polite signal, a deadline, then a kill; always reaped afterwards."""
        if not self.running:
            return
        self.signal(self.stop_signal)
        if not self.reap(grace):
            self.kill_group()
            self.reap(5.0)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's stderr log, for an error a person can act on."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _die_with_parent(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``signum`` to the child when we die.

    It runs between fork and exec, so it only calls what is bound here (see
    :func:`agent.platform.containment._pdeathsig_preexec` for the same pattern).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()
    kill, getpid, getppid = os.kill, os.getpid, os.getppid

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if getppid() != parent:  # we died between fork and prctl
            kill(getpid(), signum)

    return preexec


class Children:
    """Starts children and, on leaving the ``with`` block (even on Ctrl-C), stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []
        self._logs: list[IO[bytes]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stop_signal: int = signal.SIGTERM,
        death_signal: int = signal.SIGKILL,
        stdout: int | None = subprocess.DEVNULL,
        cwd: Path | None = None,
    ) -> Child:
        """Start ``argv`` in its own process group, stderr to ``<log_dir>/<name>.log``.

        ``stop_signal`` asks it to end; ``death_signal`` reaches it if the benchmark dies.
        """
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in close(), after the child
        self._logs.append(log)
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=log,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
        )
        child = Child(name, popen, stop_signal, log_path)
        self._children.append(child)
        return child

    def close(self) -> None:
        """Stop every child still running, newest first, then close the log files."""
        for child in reversed(self._children):
            child.stop()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_s(pid: int) -> float:
    """CPU seconds so far of a live process tree, reaped descendants included."""
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass(frozen=True)
class MemorySample:
    """One look at a relay's process tree."""

    at: float  # time.monotonic()
    uss: int  # summed over the tree
    root_rss: int
    root_uss: int
    processes: int


@dataclass
class TreeSampler:
    """Samples a process tree every ``period`` seconds in a thread (memory and CPU by process).

    ``label`` names a process for the CPU breakdown (``ingest``, ``target:t1``…). A process's
    CPU is its last sample before it exited, so the breakdown misses up to one period at the
    end of each process: it is approximate; totals come from :meth:`Child.reap`.
    """

    pid: int
    period: float = 0.5
    label: Callable[[psutil.Process], str] = lambda proc: proc.name()
    samples: list[MemorySample] = field(default_factory=list)
    cpu_by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sample:{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.period)

    def _sample(self) -> None:
        procs = _tree(self.pid)
        if not procs:
            return
        uss = root_rss = root_uss = 0
        counted = 0
        for proc in procs:
            try:
                mem = proc.memory_full_info()
                times = proc.cpu_times()
                if proc.pid not in self.cpu_by_pid:
                    self.cpu_by_pid[proc.pid] = (self.label(proc), 0.0)
            except psutil.Error:
                continue
            counted += 1
            uss += mem.uss
            if proc.pid == self.pid:
                root_rss, root_uss = mem.rss, mem.uss
            name, _ = self.cpu_by_pid[proc.pid]
            self.cpu_by_pid[proc.pid] = (name, times.user + times.system)
        self.samples.append(MemorySample(time.monotonic(), uss, root_rss, root_uss, counted))

    def cpu_breakdown(self) -> dict[str, float]:
        """Approximate CPU seconds by label (labels shared by several processes are summed)."""
        out: dict[str, float] = {}
        for name, cpu in self.cpu_by_pid.values():
            out[name] = round(out.get(name, 0.0) + cpu, 3)
        return out


@dataclass(frozen=True)
class MemoryFigures:
    """Peak and median (MB) of the samples taken while the stream was live."""

    uss_peak_mb: float
    uss_median_mb: float
    root_rss_peak_mb: float
    root_rss_median_mb: float
    root_uss_peak_mb: float
    root_uss_median_mb: float
    processes_max: int
    samples: int

    @classmethod
    def from_samples(cls, samples: Sequence[MemorySample]) -> MemoryFigures:
        if not samples:
            raise BenchmarkError("no memory sample was taken while the stream was live")

        def mb(values: list[int], pick: Callable[[list[int]], float]) -> float:
            return round(pick(values) / MB, 1)

        uss = [s.uss for s in samples]
        rss = [s.root_rss for s in samples]
        russ = [s.root_uss for s in samples]
        return cls(
            uss_peak_mb=mb(uss, max),
            uss_median_mb=mb(uss, statistics.median),
            root_rss_peak_mb=mb(rss, max),
            root_rss_median_mb=mb(rss, statistics.median),
            root_uss_peak_mb=mb(russ, max),
            root_uss_median_mb=mb(russ, statistics.median),
            processes_max=max(s.processes for s in samples),
            samples=len(samples),
        )

"""Child containment: the agent's children die with it, however the agent dies.

The Linux and watchdog (macOS) scenarios run for real: a stand-in agent process spawns
children under containment and reports their pids, the test SIGKILLs it, and the children
must be gone. Each scenario also spawns an uncontained (or released) sibling that must
survive, which shows the test can fail and that the kill came from containment. Windows is
tested on its pure parts: the Job Object structures and the kernel32 call sequence.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import psutil
import pytest

from agent.platform import _win32_job
from agent.platform.containment import (
    ContainmentError,
    DarwinContainment,
    LinuxContainment,
    WindowsContainment,
    _load_prctl,
    _pdeathsig_preexec,
    containment_for,
    default_containment,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN = 2.0  # seconds a contained child may take to die after the agent
SLEEPER = ["sleep", "60"]

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")


# --- process bookkeeping -----------------------------------------------------------------------


def is_running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(proc: psutil.Process, timeout: float = GONE_WITHIN) -> bool:
    deadline = time.monotonic() + timeout
    while is_running(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@dataclass
class Processes:
    """Everything a test started, killed at teardown whatever the test's outcome."""

    popens: list[subprocess.Popen[Any]] = field(default_factory=list)
    others: list[psutil.Process] = field(default_factory=list)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, **kwargs)
        self.popens.append(proc)
        return proc

    def track(self, pid: int) -> psutil.Process:
        """A process started by someone else (a grandchild); psutil guards against pid reuse."""
        proc = psutil.Process(pid)
        self.others.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.others:
            if is_running(proc):
                _kill_with_group(proc.pid)
        for popen in self.popens:
            if popen.poll() is None:
                _kill_with_group(popen.pid)
            popen.wait(timeout=5)
            for stream in (popen.stdin, popen.stdout, popen.stderr):
                if stream is not None:
                    stream.close()


def _kill_with_group(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.kill_all()


# --- a stand-in agent --------------------------------------------------------------------------

FAKE_AGENT = r"""
import asyncio, json, subprocess, sys, time
from agent.platform.containment import containment_for

spec = json.loads(sys.argv[1])
containment = containment_for(spec["platform"])
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def started(pid, child):
    if child["contained"]:
        containment.adopt(pid)
        if child.get("release"):
            containment.release(pid)
    return pid

def report(pids):
    sidecar = getattr(containment, "sidecar_pid", None)
    print(json.dumps({"children": pids, "sidecar": sidecar}), flush=True)

async def via_asyncio():
    pids = []
    for child in spec["children"]:
        kwargs = containment.popen_kwargs() if child["contained"] else {}
        proc = await asyncio.create_subprocess_exec(*child["argv"], **quiet, **kwargs)
        pids.append(started(proc.pid, child))
    report(pids)
    await asyncio.sleep(60)  # the loop, and the thread that forked, stay alive

if spec["via"] == "asyncio":
    asyncio.run(via_asyncio())
else:
    pids = []
    for child in spec["children"]:
        kwargs = containment.popen_kwargs() if child["contained"] else {}
        pids.append(started(subprocess.Popen(child["argv"], **quiet, **kwargs).pid, child))
    report(pids)
    time.sleep(60)
"""


@dataclass
class FakeAgent:
    process: subprocess.Popen[str]
    children: list[psutil.Process]
    sidecar: psutil.Process | None

    def die(self) -> None:
        """Die the hard way: no cleanup code of the agent runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)


def start_fake_agent(
    processes: Processes, platform: str, children: list[dict[str, Any]], via: str = "popen"
) -> FakeAgent:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    spec = json.dumps({"platform": platform, "via": via, "children": children})
    agent = processes.popen(
        [sys.executable, "-c", FAKE_AGENT, spec],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert agent.stdout is not None and agent.stderr is not None
    readable, _, _ = select.select([agent.stdout], [], [], 10.0)
    line = agent.stdout.readline() if readable else ""
    if not line:
        agent.kill()
        pytest.fail(f"the fake agent reported nothing; stderr:\n{agent.stderr.read()}")
    report = json.loads(line)
    return FakeAgent(
        process=agent,
        children=[processes.track(pid) for pid in report["children"]],
        sidecar=processes.track(report["sidecar"]) if report["sidecar"] else None,
    )


def contained(argv: list[str], *, release: bool = False) -> dict[str, Any]:
    return {"argv": argv, "contained": True, "release": release}


def uncontained(argv: list[str]) -> dict[str, Any]:
    return {"argv": argv, "contained": False}


def ffmpeg_forever() -> list[str]:
    """A real FFmpeg that runs until stopped: silence, in real time, to nowhere."""
    return [
        imageio_ffmpeg.get_ffmpeg_exe(),
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-re"),
        *("-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"),
    ]


# --- choosing an implementation ----------------------------------------------------------------


class TestContainmentFor:
    @pytest.mark.parametrize(
        ("platform", "expected"),
        [
            pytest.param("linux", LinuxContainment, id="linux"),
            pytest.param("win32", WindowsContainment, id="windows"),
            pytest.param("darwin", DarwinContainment, id="macos"),
            pytest.param("freebsd14", DarwinContainment, id="other-posix-uses-the-watchdog"),
        ],
    )
    def test_platform_gets_its_implementation(self, platform: str, expected: type) -> None:
        assert type(containment_for(platform)) is expected

    def test_default_is_chosen_once_by_sys_platform(self) -> None:
        first = default_containment()
        assert default_containment() is first
        assert type(first) is type(containment_for(sys.platform))


# --- Linux: process group + parent-death signal ------------------------------------------------


@linux_only
class TestLinuxContainment:
    def test_child_leads_its_own_session_and_process_group(self, processes: Processes) -> None:
        child = processes.popen(SLEEPER, **LinuxContainment().popen_kwargs())
        assert os.getpgid(child.pid) == child.pid
        assert os.getsid(child.pid) == child.pid
        assert os.getpgid(child.pid) != os.getpgrp()

    @pytest.mark.parametrize(
        ("via", "argv"),
        [
            pytest.param("popen", SLEEPER, id="popen-sleep"),
            pytest.param("asyncio", None, id="asyncio-ffmpeg"),
        ],
    )
    def test_child_dies_when_agent_is_killed(
        self, processes: Processes, via: str, argv: list[str] | None
    ) -> None:
        agent = start_fake_agent(
            processes, "linux", [contained(argv or ffmpeg_forever()), uncontained(SLEEPER)], via
        )
        child, control = agent.children
        assert is_running(child)

        agent.die()

        assert wait_until_gone(child), "the contained child outlived the agent"
        assert is_running(control), "an uncontained child dies too: the test proves nothing"

    def test_child_orphaned_before_prctl_kills_itself(self, processes: Processes) -> None:
        # Pretend the parent captured before the fork was someone else: to the child it looks
        # as if its parent died between fork and prctl, so no death signal would ever come.
        not_the_parent = os.getppid()
        preexec = _pdeathsig_preexec(_load_prctl(), not_the_parent)
        child = processes.popen(SLEEPER, start_new_session=True, preexec_fn=preexec)
        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGKILL

    def test_child_dies_with_the_thread_that_spawned_it(self, processes: Processes) -> None:
        # The documented caveat: PDEATHSIG follows the forking thread, not the process.
        kwargs = LinuxContainment().popen_kwargs()
        spawned: list[subprocess.Popen[Any]] = []
        worker = threading.Thread(target=lambda: spawned.append(processes.popen(SLEEPER, **kwargs)))
        worker.start()
        worker.join()
        assert spawned[0].wait(timeout=GONE_WITHIN) == -signal.SIGKILL

    def test_close_kills_children_still_adopted(self, processes: Processes) -> None:
        containment = LinuxContainment()
        child = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(child.pid)
        containment.close()
        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGKILL

    def test_close_spares_released_children(self, processes: Processes) -> None:
        containment = LinuxContainment()
        released = processes.popen(SLEEPER, **containment.popen_kwargs())
        adopted = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(released.pid)
        containment.adopt(adopted.pid)
        containment.release(released.pid)
        containment.close()
        assert adopted.wait(timeout=GONE_WITHIN) == -signal.SIGKILL
        assert released.poll() is None


# --- macOS and other POSIX: the watchdog sidecar (runs for real here) --------------------------


def reap_in_background(child: subprocess.Popen[Any]) -> None:
    """Reap as the agent's asyncio child watcher would, so no zombie lingers in the group."""
    threading.Thread(target=child.wait, daemon=True).start()


@posix_only
class TestDarwinContainment:
    def test_child_leads_its_own_process_group(self, processes: Processes) -> None:
        child = processes.popen(SLEEPER, **DarwinContainment().popen_kwargs())
        assert os.getpgid(child.pid) == child.pid != os.getpgrp()

    def test_child_and_its_group_die_when_agent_is_killed(self, processes: Processes) -> None:
        shell_with_a_child = ["sh", "-c", "sleep 60 & wait"]
        agent = start_fake_agent(
            processes, "darwin", [contained(shell_with_a_child), uncontained(SLEEPER)]
        )
        child, control = agent.children
        grandchild = only_child_of(child, processes)

        agent.die()

        assert wait_until_gone(child), "the contained child outlived the agent"
        assert wait_until_gone(grandchild), "the child's process group was not killed"
        assert agent.sidecar is not None and wait_until_gone(agent.sidecar)
        assert is_running(control), "an uncontained child dies too: the test proves nothing"

    def test_released_child_survives_agent_death(self, processes: Processes) -> None:
        agent = start_fake_agent(
            processes, "darwin", [contained(SLEEPER, release=True), contained(SLEEPER)]
        )
        released, adopted = agent.children

        agent.die()

        assert wait_until_gone(adopted)
        assert agent.sidecar is not None and wait_until_gone(agent.sidecar)
        assert is_running(released)

    def test_one_sidecar_serves_every_child(self, processes: Processes) -> None:
        containment = DarwinContainment()
        sidecars = set()
        try:
            for _ in range(2):
                child = processes.popen(SLEEPER, **containment.popen_kwargs())
                reap_in_background(child)
                containment.adopt(child.pid)
                sidecars.add(containment.sidecar_pid)
        finally:
            watchdogs = [p.pid for p in _watchdogs_of(os.getpid())]
            containment.close()
        assert None not in sidecars
        assert watchdogs == list(sidecars)

    def test_close_with_nothing_left_ends_the_sidecar_at_once(self, processes: Processes) -> None:
        containment = DarwinContainment()
        child = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(child.pid)
        assert containment.sidecar_pid is not None
        sidecar = processes.track(containment.sidecar_pid)
        containment.release(child.pid)

        started = time.monotonic()
        containment.close()

        assert time.monotonic() - started < 0.5
        assert not is_running(sidecar)
        assert child.poll() is None
        containment.close()  # twice is fine

    def test_close_terminates_children_still_adopted(self, processes: Processes) -> None:
        containment = DarwinContainment()
        child = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(child.pid)
        reap_in_background(child)
        containment.close()
        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGTERM

    def test_dead_sidecar_is_replaced_and_told_every_child(self, processes: Processes) -> None:
        containment = DarwinContainment()
        first = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(first.pid)
        assert containment.sidecar_pid is not None
        old_sidecar = processes.track(containment.sidecar_pid)
        old_sidecar.kill()
        assert wait_until_gone(old_sidecar)

        second = processes.popen(SLEEPER, **containment.popen_kwargs())
        containment.adopt(second.pid)
        assert containment.sidecar_pid not in (None, old_sidecar.pid)
        reap_in_background(first)
        reap_in_background(second)
        containment.close()

        assert first.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert second.wait(timeout=GONE_WITHIN) == -signal.SIGTERM

    def test_sidecar_that_cannot_start_is_a_containment_error(self, processes: Processes) -> None:
        containment = DarwinContainment(command=[str(REPO_ROOT / "no-such-watchdog")])
        child = processes.popen(SLEEPER, **containment.popen_kwargs())
        with pytest.raises(ContainmentError, match="could not start the watchdog sidecar"):
            containment.adopt(child.pid)


def only_child_of(parent: psutil.Process, processes: Processes) -> psutil.Process:
    deadline = time.monotonic() + GONE_WITHIN
    while not (children := parent.children()):
        assert time.monotonic() < deadline, "the child never started its own child"
        time.sleep(0.02)
    (child,) = children
    return processes.track(child.pid)


def _watchdogs_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if "agent.platform.watchdog" in p.cmdline()]


# --- Windows: pure parts -----------------------------------------------------------------------


class RecordingKernel32:
    """Stands in for kernel32: records each call, returns handles, fails where told."""

    JOB = 0x100
    PROCESS = 0x200

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail = fail or {}  # call name -> Win32 error it fails with
        self.error = 0

    def _call(self, name: str, args: tuple[Any, ...], result: int) -> int:
        self.calls.append((name, args))
        if name in self.fail:
            self.error = self.fail[name]
            return 0
        return result

    def CreateJobObjectW(self, attributes: Any, name: str | None) -> int:
        return self._call("CreateJobObjectW", (attributes, name), self.JOB)

    def SetInformationJobObject(self, job: int, info_class: int, info: Any, length: int) -> int:
        # Keep the structure itself: byref() points into it.
        return self._call("SetInformationJobObject", (job, info_class, info._obj, length), 1)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        return self._call("OpenProcess", (access, inherit, pid), self.PROCESS + pid)

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        return self._call("AssignProcessToJobObject", (job, process), 1)

    def CloseHandle(self, handle: int) -> int:
        return self._call("CloseHandle", (handle,), 1)

    def GetLastError(self) -> int:
        return self.error

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class TestWindowsJobStructures:
    def test_limits_ask_for_kill_on_job_close(self) -> None:
        limits = _win32_job.kill_on_close_limits()
        assert limits.BasicLimitInformation.LimitFlags == 0x2000

    @pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="64-bit layout")
    def test_structures_have_the_64_bit_windows_layout(self) -> None:
        assert ctypes.sizeof(_win32_job.JOBOBJECT_BASIC_LIMIT_INFORMATION) == 64
        assert ctypes.sizeof(_win32_job.IO_COUNTERS) == 48
        assert ctypes.sizeof(_win32_job.JOBOBJECT_EXTENDED_LIMIT_INFORMATION) == 144

    def test_children_get_a_new_process_group_and_no_window(self) -> None:
        assert WindowsContainment(RecordingKernel32()).popen_kwargs() == {
            "creationflags": 0x00000200 | 0x08000000
        }


class TestWindowsContainment:
    def test_first_adopt_creates_the_job_and_assigns_the_child(self) -> None:
        kernel32 = RecordingKernel32()
        WindowsContainment(kernel32).adopt(1234)

        job, process = RecordingKernel32.JOB, RecordingKernel32.PROCESS + 1234
        assert kernel32.names() == [
            "CreateJobObjectW",
            "SetInformationJobObject",
            "OpenProcess",
            "AssignProcessToJobObject",
            "CloseHandle",
        ]
        create, set_info, open_process, assign, close = (args for _, args in kernel32.calls)
        assert create == (None, None)  # no inheritable handle, no name
        job_arg, info_class, limits, length = set_info
        assert (job_arg, info_class) == (job, 9)  # JobObjectExtendedLimitInformation
        assert limits.BasicLimitInformation.LimitFlags & 0x2000
        assert length == ctypes.sizeof(_win32_job.JOBOBJECT_EXTENDED_LIMIT_INFORMATION)
        assert open_process == (0x0100 | 0x0001, False, 1234)  # SET_QUOTA | TERMINATE
        assert assign == (job, process)
        assert close == (process,)  # the process handle, not the job

    def test_job_is_created_once_for_every_child(self) -> None:
        kernel32 = RecordingKernel32()
        containment = WindowsContainment(kernel32)
        containment.adopt(1)
        containment.adopt(2)
        assert kernel32.names().count("CreateJobObjectW") == 1
        assert kernel32.names().count("AssignProcessToJobObject") == 2

    def test_close_closes_the_job_handle_once(self) -> None:
        kernel32 = RecordingKernel32()
        containment = WindowsContainment(kernel32)
        containment.adopt(1)
        containment.close()
        containment.close()
        assert kernel32.calls[-1] == ("CloseHandle", (RecordingKernel32.JOB,))
        assert kernel32.calls.count(("CloseHandle", (RecordingKernel32.JOB,))) == 1

    def test_child_that_already_exited_is_skipped(self) -> None:
        kernel32 = RecordingKernel32(fail={"OpenProcess": 87})  # ERROR_INVALID_PARAMETER
        WindowsContainment(kernel32).adopt(1234)
        assert "AssignProcessToJobObject" not in kernel32.names()

    def test_failed_assignment_names_the_child_and_closes_its_handle(self) -> None:
        kernel32 = RecordingKernel32(fail={"AssignProcessToJobObject": 5})  # ACCESS_DENIED
        with pytest.raises(ContainmentError, match=r"child process 1234: .*Windows error 5"):
            WindowsContainment(kernel32).adopt(1234)
        assert kernel32.calls[-1] == ("CloseHandle", (RecordingKernel32.PROCESS + 1234,))

    def test_failed_job_setup_closes_the_job_and_is_a_containment_error(self) -> None:
        kernel32 = RecordingKernel32(fail={"SetInformationJobObject": 5})
        with pytest.raises(ContainmentError, match="SetInformationJobObject"):
            WindowsContainment(kernel32).adopt(1234)
        assert kernel32.names() == ["CreateJobObjectW", "SetInformationJobObject", "CloseHandle"]
        assert kernel32.calls[-1] == ("CloseHandle", (RecordingKernel32.JOB,))

    @pytest.mark.skipif(sys.platform == "win32", reason="kernel32 exists there")
    def test_off_windows_adopting_fails_clearly_but_creating_does_not(self) -> None:
        containment = containment_for("win32")
        with pytest.raises(ContainmentError, match="only on Windows"):
            containment.adopt(1234)

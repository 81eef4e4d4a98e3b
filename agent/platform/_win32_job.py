"""A Windows Job Object that kills every process in it when its last handle closes.

Windows has no parent-death signal. Instead the agent creates one Job Object with
``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`` and puts each child in it. The only handle to the job
lives in the agent; when the agent exits for any reason, even ``TerminateProcess``, the kernel
closes that handle and kills everything still in the job.

The module imports on every platform. Only :func:`load_kernel32` touches ``ctypes.WinDLL``,
and only when called. Everything else is pure so tests on Linux can check it: the structure
layout (:func:`kill_on_close_limits`), the constants, and the call sequence of
:class:`KillOnCloseJob` against any object that looks like :class:`Kernel32`, such as a recorder.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any, Protocol, cast

log = logging.getLogger(__name__)

# subprocess.CREATE_NEW_PROCESS_GROUP: Ctrl+C in the agent's console does not reach FFmpeg,
# so the supervisor decides how to stop it. CREATE_NO_WINDOW: no console window flashes up
# for each FFmpeg when the agent runs windowless from the tray.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
CHILD_CREATION_FLAGS = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
# JOBOBJECTINFOCLASS.JobObjectExtendedLimitInformation
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9

# The least access AssignProcessToJobObject needs.
PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001

ERROR_INVALID_PARAMETER = 87  # OpenProcess: no such process (it has already exited)

# Windows types, spelled with fixed-size ctypes. ctypes.wintypes.DWORD is c_ulong, which is
# 8 bytes on 64-bit Linux, so these layouts would be wrong when tested there.
_DWORD = ctypes.c_uint32
_LARGE_INTEGER = ctypes.c_int64
_ULONGLONG = ctypes.c_uint64
_SIZE_T = ctypes.c_size_t  # also ULONG_PTR: pointer-sized on both Windows and Linux


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    """The Win32 structure of the same name (64 bytes on 64-bit Windows)."""

    _fields_ = (
        ("PerProcessUserTimeLimit", _LARGE_INTEGER),
        ("PerJobUserTimeLimit", _LARGE_INTEGER),
        ("LimitFlags", _DWORD),
        ("MinimumWorkingSetSize", _SIZE_T),
        ("MaximumWorkingSetSize", _SIZE_T),
        ("ActiveProcessLimit", _DWORD),
        ("Affinity", _SIZE_T),
        ("PriorityClass", _DWORD),
        ("SchedulingClass", _DWORD),
    )


class IO_COUNTERS(ctypes.Structure):
    """The Win32 structure of the same name (48 bytes)."""

    _fields_ = (
        ("ReadOperationCount", _ULONGLONG),
        ("WriteOperationCount", _ULONGLONG),
        ("OtherOperationCount", _ULONGLONG),
        ("ReadTransferCount", _ULONGLONG),
        ("WriteTransferCount", _ULONGLONG),
        ("OtherTransferCount", _ULONGLONG),
    )


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    """The Win32 structure of the same name (144 bytes on 64-bit Windows)."""

    _fields_ = (
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", _SIZE_T),
        ("JobMemoryLimit", _SIZE_T),
        ("PeakProcessMemoryUsed", _SIZE_T),
        ("PeakJobMemoryUsed", _SIZE_T),
    )


def kill_on_close_limits() -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION:
    """The limits for a job whose processes all die when its last handle is closed."""
    info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    return info


class Kernel32(Protocol):
    """The few kernel32 calls the job needs, with Win32 names and raw return values.

    Handles are ints (``0``/``None`` on failure), BOOLs are ints. ``GetLastError`` returns the
    error of the last failed call (on Windows it is ``ctypes.get_last_error``, which is reliable
    where calling the real ``GetLastError`` through ctypes is not).
    """

    def CreateJobObjectW(self, attributes: Any, name: str | None) -> int | None:
        """Create an unnamed job; returns its handle."""

    def SetInformationJobObject(self, job: int, info_class: int, info: Any, length: int) -> int:
        """Set one class of limits on the job."""

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int | None:
        """Open a process by pid; returns a handle."""

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        """Put the process in the job."""

    def CloseHandle(self, handle: int) -> int:
        """Close a handle."""

    def GetLastError(self) -> int:
        """The Win32 error code of the last failed call."""


class _WinDLLKernel32:
    """The real kernel32, with argument types declared so 64-bit handles are not truncated."""

    def __init__(self, dll: Any) -> None:
        handle, dword, boolean = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        signatures: dict[str, tuple[tuple[Any, ...], Any]] = {
            "CreateJobObjectW": ((ctypes.c_void_p, ctypes.c_wchar_p), handle),
            "SetInformationJobObject": ((handle, ctypes.c_int, ctypes.c_void_p, dword), boolean),
            "OpenProcess": ((dword, boolean, dword), handle),
            "AssignProcessToJobObject": ((handle, handle), boolean),
            "CloseHandle": ((handle,), boolean),
        }
        for name, (argtypes, restype) in signatures.items():
            function = getattr(dll, name)
            function.argtypes = argtypes
            function.restype = restype
            setattr(self, name, function)

    def GetLastError(self) -> int:
        """The error saved by ctypes right after the last call (``use_last_error=True``)."""
        if sys.platform == "win32":
            return ctypes.get_last_error()
        return 0


def load_kernel32() -> Kernel32:
    """The real kernel32; raises ``OSError`` anywhere but Windows."""
    if sys.platform != "win32":
        raise OSError(f"kernel32 exists only on Windows, not on {sys.platform}")
    return cast(Kernel32, _WinDLLKernel32(ctypes.WinDLL("kernel32", use_last_error=True)))


class JobError(OSError):
    """A kernel32 call failed; ``winerror`` holds the Win32 error code."""

    def __init__(self, call: str, winerror: int) -> None:
        super().__init__(f"{call} failed with Windows error {winerror}")
        self.call = call
        self.winerror = winerror


class KillOnCloseJob:
    """One kill-on-close Job Object: created by :meth:`open`, emptied by :meth:`close`.

    Creating the object makes no system call; :meth:`open` does, and :meth:`close` is safe
    twice. Closing the job's only handle kills every process still in it, which is the point.
    """

    def __init__(self, kernel32: Kernel32) -> None:
        self._kernel32 = kernel32
        self._job: int | None = None

    @property
    def is_open(self) -> bool:
        """Whether the job exists."""
        return self._job is not None

    def open(self) -> None:
        """Create the job and set the kill-on-close limit on it (once)."""
        if self._job is not None:
            return
        k32 = self._kernel32
        # No security attributes: the handle is not inheritable, so no child keeps the job
        # alive after the agent is gone.
        job = k32.CreateJobObjectW(None, None)
        if not job:
            raise JobError("CreateJobObjectW", k32.GetLastError())
        limits = kill_on_close_limits()
        ok = k32.SetInformationJobObject(
            job,
            JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
            ctypes.byref(limits),
            ctypes.sizeof(limits),
        )
        if not ok:
            error = k32.GetLastError()
            k32.CloseHandle(job)
            raise JobError("SetInformationJobObject", error)
        self._job = job

    def assign(self, pid: int) -> bool:
        """Put process ``pid`` in the job; ``False`` if it has already exited.

        There is a short window between the child's start and this call when it is outside the
        job; the supervisor calls :meth:`assign` right after the spawn to keep it small.
        """
        self.open()
        assert self._job is not None  # for mypy: open() set it or raised
        k32 = self._kernel32
        process = k32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
        if not process:
            error = k32.GetLastError()
            if error == ERROR_INVALID_PARAMETER:
                return False  # already exited and reaped: nothing left to contain
            raise JobError("OpenProcess", error)
        try:
            if not k32.AssignProcessToJobObject(self._job, process):
                raise JobError("AssignProcessToJobObject", k32.GetLastError())
        finally:
            k32.CloseHandle(process)
        return True

    def close(self) -> None:
        """Close the job handle, which kills every process still in the job."""
        job, self._job = self._job, None
        if job is not None and not self._kernel32.CloseHandle(job):
            log.warning(
                "CloseHandle(job) failed with Windows error %d", self._kernel32.GetLastError()
            )

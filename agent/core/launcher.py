"""How the supervisor spawns, signals and kills children: one small interface.

The supervisor decides; a :class:`Launcher` does. The real launcher starts children with
asyncio under the platform's containment (so they die with the agent); tests can replace it with
a recorder.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from agent.platform.containment import Containment, default_containment


class ChildProcess(Protocol):
    """The parts of :class:`asyncio.subprocess.Process` the supervisor uses."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...


class Launcher(Protocol):
    """Spawns children and delivers signals to them."""

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: bool,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> ChildProcess:
        """Start ``argv`` with piped stdout/stderr (and stdin if asked). Raises OSError."""
        ...

    def interrupt(self, proc: ChildProcess) -> bool:
        """Ask politely by signal (SIGINT); False where the platform cannot."""
        ...

    def kill(self, proc: ChildProcess) -> None:
        """Kill the child (and its process group) at once."""
        ...

    def reaped(self, proc: ChildProcess) -> None:
        """The child has been waited for; forget it."""
        ...


class AsyncioLauncher:
    """The real launcher: asyncio subprocesses inside the platform's containment."""

    def __init__(self, containment: Containment | None = None) -> None:
        self._containment = containment or default_containment()

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: bool,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> ChildProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            **self._containment.popen_kwargs(),
        )
        try:
            self._containment.adopt(proc.pid)
        except BaseException:
            # An uncontained child could outlive the agent: never leave it running.
            self.kill(proc)
            await proc.wait()
            raise
        return proc

    def interrupt(self, proc: ChildProcess) -> bool:
        if sys.platform == "win32" or proc.returncode is not None:
            return False
        try:
            os.kill(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def kill(self, proc: ChildProcess) -> None:
        if proc.returncode is not None:
            return
        try:
            if sys.platform == "win32":
                os.kill(proc.pid, signal.SIGTERM)  # TerminateProcess on Windows
            elif os.getpgid(proc.pid) == proc.pid:
                # The child leads its own process group: take anything it spawned too.
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def reaped(self, proc: ChildProcess) -> None:
        self._containment.release(proc.pid)

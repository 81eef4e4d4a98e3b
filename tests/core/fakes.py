"""A recording launcher for supervisor decision tests: fake children a test ends at will."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(eq=False)
class FakeChild:
    """A child whose exit, stderr and stdout the test controls."""

    pid: int
    argv: list[str]
    returncode: int | None = None
    stdin: asyncio.StreamWriter | None = None
    stdout: asyncio.StreamReader = field(default_factory=asyncio.StreamReader)
    stderr: asyncio.StreamReader = field(default_factory=asyncio.StreamReader)
    _exited: asyncio.Event = field(default_factory=asyncio.Event)

    def exit(self, code: int, stderr: str = "") -> None:
        if stderr:
            self.stderr.feed_data(stderr.encode())
        self.stderr.feed_eof()
        self.stdout.feed_eof()
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class RecordingLauncher:
    """Records every call the supervisor makes; spawns :class:`FakeChild` objects."""

    def __init__(self, *, spawn_error: OSError | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.children: list[FakeChild] = []
        self.spawned = asyncio.Queue[FakeChild]()
        self.spawn_error = spawn_error

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: bool,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> FakeChild:
        if self.spawn_error is not None:
            raise self.spawn_error
        child = FakeChild(pid=1000 + len(self.children), argv=list(argv))
        self.children.append(child)
        self.calls.append(("spawn", child.pid))
        self.spawned.put_nowait(child)
        return child

    def interrupt(self, proc: FakeChild) -> bool:
        self.calls.append(("interrupt", proc.pid))
        return True

    def kill(self, proc: FakeChild) -> None:
        self.calls.append(("kill", proc.pid))
        if proc.returncode is None:
            proc.exit(-9)

    def reaped(self, proc: FakeChild) -> None:
        self.calls.append(("reaped", proc.pid))

    async def next_child(self, timeout: float = 2.0) -> FakeChild:
        return await asyncio.wait_for(self.spawned.get(), timeout)

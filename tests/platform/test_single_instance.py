"""Single instance: one agent per config directory, across real processes.

The POSIX lock runs for real: a second process is refused and told which process holds the
lock, and a holder killed by SIGKILL leaves a stale lock file that does not block. Windows is
tested on its pure parts: where the byte lock sits and how contention is recognised.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.platform.single_instance import (
    LOCK_FILE,
    AlreadyRunning,
    InstanceLock,
    LockHolder,
    WindowsLocker,
    read_holder,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock and SIGKILL")

# A stand-in agent: takes the lock, says so, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from agent.platform.single_instance import InstanceLock

lock = InstanceLock(Path(sys.argv[1]))
lock.acquire(port=47999)
print("locked", flush=True)
time.sleep(60)
"""

# A second agent: tries the lock and reports what happened as JSON.
CONTENDER = """
import json, sys
from pathlib import Path
from agent.platform.single_instance import AlreadyRunning, InstanceLock

try:
    InstanceLock(Path(sys.argv[1])).acquire()
except AlreadyRunning as exc:
    holder = exc.holder.pid if exc.holder else None
    print(json.dumps({"refused": str(exc), "holder": holder}))
else:
    print(json.dumps({"refused": None}))
"""

# An agent that starts a child (inheriting every descriptor it may), then waits to be killed.
PARENT_WITH_CHILD = """
import subprocess, sys, time
from pathlib import Path
from agent.platform.single_instance import InstanceLock

InstanceLock(Path(sys.argv[1])).acquire()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
print(child.pid, flush=True)
time.sleep(60)
"""


def python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )


def contend(config: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CONTENDER, str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on ``tmp_path``."""
    proc = python(HOLDER, str(tmp_path))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class TestInThisProcess:
    def test_acquire_writes_pid_start_time_and_port(self, tmp_path: Path) -> None:
        lock = InstanceLock(tmp_path)
        before = time.time()

        held = lock.acquire(port=47830)

        try:
            assert held == read_holder(tmp_path / LOCK_FILE)
            assert (held.pid, held.port) == (os.getpid(), 47830)
            assert before <= held.started <= time.time()
            assert lock.held
        finally:
            lock.release()

    def test_the_port_can_be_recorded_once_known(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path) as lock:
            lock.set_port(51234)
            found = read_holder(tmp_path / LOCK_FILE)
            assert found is not None and found.port == 51234

    def test_a_second_lock_object_is_refused_too(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path), pytest.raises(AlreadyRunning) as caught:
            InstanceLock(tmp_path).acquire()
        assert caught.value.holder is not None
        assert caught.value.holder.pid == os.getpid()

    def test_acquire_twice_is_a_no_op(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path) as lock:
            assert lock.acquire() is lock.acquire()

    def test_release_is_idempotent_and_frees_the_lock(self, tmp_path: Path) -> None:
        lock = InstanceLock(tmp_path)
        lock.acquire()

        lock.release()
        lock.release()

        assert not lock.held
        assert read_holder(tmp_path / LOCK_FILE) is None  # no stale details left
        with InstanceLock(tmp_path) as again:
            assert again.held

    def test_the_context_manager_releases_on_error(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError), InstanceLock(tmp_path):
            raise RuntimeError("boom")
        with InstanceLock(tmp_path) as again:
            assert again.held

    def test_the_config_dir_is_created(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path / "new" / "config") as lock:
            assert lock.path.is_file()


@posix_only
class TestAcrossProcesses:
    def test_a_second_process_is_refused_and_told_who_holds_it(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path):
            result = contend(tmp_path)

        assert result["holder"] == os.getpid()
        refused = result["refused"]
        assert isinstance(refused, str)
        assert refused.startswith(
            f"Cascade is already running for this config directory (process {os.getpid()}, started "
        )
        assert refused.endswith("). Use that one, or stop it first.")

    def test_after_release_another_process_gets_it(self, tmp_path: Path) -> None:
        with InstanceLock(tmp_path):
            pass
        assert contend(tmp_path) == {"refused": None}

    def test_this_process_is_refused_while_another_holds_it(
        self, tmp_path: Path, holder: subprocess.Popen[str]
    ) -> None:
        with pytest.raises(AlreadyRunning) as caught:
            InstanceLock(tmp_path).acquire()

        assert caught.value.holder is not None
        assert (caught.value.holder.pid, caught.value.holder.port) == (holder.pid, 47999)
        assert f"(process {holder.pid}, started " in str(caught.value)
        assert "API on port 47999" in str(caught.value)

    def test_a_lock_left_by_a_killed_process_does_not_block(
        self, tmp_path: Path, holder: subprocess.Popen[str]
    ) -> None:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        stale = read_holder(tmp_path / LOCK_FILE)
        assert stale is not None and stale.pid == holder.pid  # the file is still there

        with InstanceLock(tmp_path) as lock:
            assert lock.holder is not None
            assert read_holder(tmp_path / LOCK_FILE) == lock.holder
            assert lock.holder.pid == os.getpid()

    def test_a_child_that_outlives_the_agent_does_not_keep_the_lock(self, tmp_path: Path) -> None:
        agent = python(PARENT_WITH_CHILD, str(tmp_path))
        assert agent.stdout is not None
        child_pid = int(agent.stdout.readline())
        try:
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            os.kill(child_pid, 0)  # the child is still alive...

            with InstanceLock(tmp_path) as lock:  # ...and the lock is free all the same
                assert lock.held
        finally:
            agent.stdout.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(child_pid, signal.SIGKILL)


class TestHolderDetails:
    def test_details_round_trip_through_the_file_text(self) -> None:
        holder = LockHolder(pid=1234, started=1_700_000_000.5, port=47830)
        assert LockHolder.parse(holder.to_json()) == holder

    @pytest.mark.parametrize(
        "text",
        [
            "",
            '{"pid": 12',  # caught mid-write
            "[]",
            '{"pid": "1234", "started": 1.0}',
            '{"pid": 0, "started": 1.0}',
            '{"pid": 1234}',
            '{"pid": 1234, "started": 1.0, "port": "http"}',
        ],
    )
    def test_anything_else_holds_no_details(self, text: str) -> None:
        assert LockHolder.parse(text) is None

    def test_the_message_names_the_process_and_when_it_started(self) -> None:
        started = datetime(2024, 11, 21, 14, 3).timestamp()
        now = datetime(2024, 11, 21, 18, 0).timestamp()

        error = AlreadyRunning(Path("cascade.lock"), LockHolder(1234, started), now=now)

        assert str(error) == (
            "Cascade is already running for this config directory (process 1234, started "
            "14:03). Use that one, or stop it first."
        )

    def test_a_start_on_another_day_gives_the_date(self) -> None:
        started = datetime(2024, 11, 21, 14, 3).timestamp()
        now = datetime(2024, 11, 23, 9, 0).timestamp()

        error = AlreadyRunning(Path("cascade.lock"), LockHolder(1234, started, 47830), now=now)

        assert "(process 1234, started 21 Nov 14:03, API on port 47830)" in str(error)

    def test_without_details_the_message_still_helps(self) -> None:
        assert str(AlreadyRunning(Path("cascade.lock"), None)) == (
            "Cascade is already running for this config directory. Use that one, or stop it first."
        )


class FakeMsvcrt:
    """Records msvcrt.locking calls with the file position each was made at."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self, refuse_errno: int | None = None) -> None:
        self.calls: list[tuple[int, int, int]] = []  # (mode, nbytes, position)
        self.refuse_errno = refuse_errno

    def locking(self, fd: int, mode: int, nbytes: int, /) -> None:
        self.calls.append((mode, nbytes, os.lseek(fd, 0, os.SEEK_CUR)))
        if mode == self.LK_NBLCK and self.refuse_errno is not None:
            raise OSError(self.refuse_errno, "Resource deadlock avoided")


class TestWindowsLocker:
    @pytest.fixture
    def fd(self, tmp_path: Path) -> Iterator[int]:
        fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        os.write(fd, b'{"pid": 1}')
        os.lseek(fd, 3, os.SEEK_SET)
        try:
            yield fd
        finally:
            os.close(fd)

    def test_it_locks_one_byte_past_the_details_and_keeps_the_position(self, fd: int) -> None:
        msvcrt = FakeMsvcrt()
        locker = WindowsLocker(msvcrt)

        assert locker.try_lock(fd)
        locker.unlock(fd)

        assert msvcrt.calls == [
            (FakeMsvcrt.LK_NBLCK, 1, WindowsLocker.OFFSET),
            (FakeMsvcrt.LK_UNLCK, 1, WindowsLocker.OFFSET),
        ]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 3
        assert WindowsLocker.OFFSET < 2**31  # msvcrt's position is a C long

    @pytest.mark.parametrize("code", [errno.EACCES, errno.EDEADLK])
    def test_contention_is_reported_as_held(self, fd: int, code: int) -> None:
        assert not WindowsLocker(FakeMsvcrt(refuse_errno=code)).try_lock(fd)

    def test_other_failures_are_raised(self, fd: int) -> None:
        with pytest.raises(OSError):
            WindowsLocker(FakeMsvcrt(refuse_errno=errno.EBADF)).try_lock(fd)

    def test_an_instance_lock_refuses_through_it(self, tmp_path: Path) -> None:
        (tmp_path / LOCK_FILE).write_text(LockHolder(4321, time.time()).to_json())
        lock = InstanceLock(tmp_path, locker=WindowsLocker(FakeMsvcrt(errno.EACCES)))

        with pytest.raises(AlreadyRunning, match=r"\(process 4321, started"):
            lock.acquire()
        assert not lock.held

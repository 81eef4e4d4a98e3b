"""The watchdog sidecar, run for real: the test plays the agent that holds its pipe.

The sidecar is POSIX-generic, so everything here runs on Linux as it would on macOS.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from agent.platform.watchdog import (
    GRACE_SECONDS,
    PARENT_ENV,
    WATCHDOG_FLAG,
    apply_line,
    watchdog_command,
    watchdog_env,
)
from tests.platform.test_containment import (  # shared process bookkeeping
    GONE_WITHIN,
    REPO_ROOT,
    SLEEPER,
    Processes,
    is_running,
    only_child_of,
    reap_in_background,
    wait_until_gone,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the sidecar is POSIX-only")


class TestWatchdogCommand:
    def test_from_source_runs_the_module_with_this_interpreter(self) -> None:
        assert watchdog_command() == [sys.executable, "-m", "agent.platform.watchdog"]

    def test_frozen_build_runs_its_own_executable_with_the_flag(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        assert watchdog_command() == [sys.executable, WATCHDOG_FLAG]


class TestWatchdogEnv:
    def test_carries_the_agents_pid(self) -> None:
        assert watchdog_env(4321, {"HOME": "/home/me"})[PARENT_ENV] == "4321"

    def test_from_source_puts_the_package_root_first_on_the_import_path(self) -> None:
        base = {"PYTHONPATH": os.pathsep.join(["/elsewhere", str(REPO_ROOT)])}
        assert watchdog_env(1, base)["PYTHONPATH"].split(os.pathsep) == [
            str(REPO_ROOT),
            "/elsewhere",
        ]

    def test_frozen_build_leaves_the_import_path_alone(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
        assert "PYTHONPATH" not in watchdog_env(1, {"HOME": "/home/me"})


class TestProtocol:
    def test_add_registers_and_del_forgets(self) -> None:
        registered: set[int] = set()
        apply_line(registered, b"add 100")
        apply_line(registered, b"add 200")
        apply_line(registered, b"del 100")
        assert registered == {200}

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(b"add banana", id="not-a-number"),
            pytest.param(b"add", id="no-pid"),
            pytest.param(b"add 5 6", id="extra-words"),
            pytest.param(b"add 0", id="pid-0-is-our-own-group"),
            pytest.param(b"add -1", id="pid-minus-1-is-everyone"),
            pytest.param(b"add 1", id="pid-1-is-init"),
            pytest.param(b"kill 500", id="unknown-verb"),
        ],
    )
    def test_malformed_line_is_reported_and_changes_nothing(
        self, line: bytes, capsys: pytest.CaptureFixture[str]
    ) -> None:
        registered = {300}
        apply_line(registered, line)
        assert registered == {300}
        assert "cascade watchdog: ignoring" in capsys.readouterr().err

    def test_own_pid_is_never_registered(self) -> None:
        registered: set[int] = set()
        apply_line(registered, f"add {os.getpid()}".encode())
        assert registered == set()


# --- the sidecar as a real process --------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.kill_all()


StartSidecar = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_sidecar(processes: Processes) -> StartSidecar:
    """Start the sidecar as :class:`DarwinContainment` does, with this test as the agent."""

    def start(**overrides: Any) -> subprocess.Popen[bytes]:
        kwargs: dict[str, Any] = {
            "stdin": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "env": watchdog_env(os.getpid(), os.environ),
            "start_new_session": True,
            **overrides,
        }
        return processes.popen(watchdog_command(), **kwargs)

    return start


def send(sidecar: subprocess.Popen[bytes], text: str) -> None:
    assert sidecar.stdin is not None
    sidecar.stdin.write(text.encode("ascii"))
    sidecar.stdin.flush()


def hang_up(sidecar: subprocess.Popen[bytes]) -> None:
    """What the kernel does to the pipe when the agent dies."""
    assert sidecar.stdin is not None
    sidecar.stdin.close()


def group_leader(processes: Processes, argv: list[str] = SLEEPER) -> subprocess.Popen[bytes]:
    """A child in its own session, as containment starts FFmpeg; reaped as the agent would."""
    child = processes.popen(argv, start_new_session=True)
    reap_in_background(child)
    return child


class TestSidecar:
    def test_end_of_file_terminates_every_registered_group(
        self, processes: Processes, start_sidecar: StartSidecar
    ) -> None:
        sidecar = start_sidecar()
        child = group_leader(processes, ["sh", "-c", "sleep 60 & wait"])
        grandchild = only_child_of(psutil.Process(child.pid), processes)
        send(sidecar, f"add {child.pid}\n")

        hang_up(sidecar)

        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert wait_until_gone(grandchild)
        assert sidecar.wait(timeout=GONE_WITHIN) == 0

    def test_child_that_ignores_sigterm_is_killed_after_the_grace(
        self, processes: Processes, start_sidecar: StartSidecar
    ) -> None:
        sidecar = start_sidecar()
        stubborn = processes.popen(
            [
                sys.executable,
                "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " print('ready', flush=True); time.sleep(60)",
            ],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        reap_in_background(stubborn)
        send(sidecar, f"add {stubborn.pid}\n")

        started = time.monotonic()
        hang_up(sidecar)

        assert stubborn.wait(timeout=GRACE_SECONDS + GONE_WITHIN) == -signal.SIGKILL
        assert time.monotonic() - started >= GRACE_SECONDS * 0.9

    def test_deleted_pid_is_spared(self, processes: Processes, start_sidecar: StartSidecar) -> None:
        sidecar = start_sidecar()
        kept, stopped = group_leader(processes), group_leader(processes)
        send(sidecar, f"add {kept.pid}\nadd {stopped.pid}\ndel {kept.pid}\n")

        hang_up(sidecar)

        assert stopped.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert sidecar.wait(timeout=GONE_WITHIN) == 0
        assert kept.poll() is None

    def test_with_nothing_registered_it_exits_at_once(self, start_sidecar: StartSidecar) -> None:
        sidecar = start_sidecar()
        send(sidecar, "")
        started = time.monotonic()
        hang_up(sidecar)
        assert sidecar.wait(timeout=GONE_WITHIN) == 0
        assert time.monotonic() - started < 0.5

    def test_lines_split_across_writes_are_joined(
        self, processes: Processes, start_sidecar: StartSidecar
    ) -> None:
        sidecar = start_sidecar()
        child = group_leader(processes)
        send(sidecar, "ad")
        time.sleep(0.1)  # let the sidecar read the first half on its own
        send(sidecar, f"d {child.pid}\n")

        hang_up(sidecar)

        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGTERM

    def test_malformed_line_is_reported_and_the_rest_still_works(
        self, processes: Processes, start_sidecar: StartSidecar
    ) -> None:
        sidecar = start_sidecar()
        child = group_leader(processes)
        send(sidecar, f"add banana\nadd {child.pid}\n")

        hang_up(sidecar)

        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert sidecar.wait(timeout=GONE_WITHIN) == 0
        assert sidecar.stderr is not None
        assert b"ignoring malformed line b'add banana'" in sidecar.stderr.read()

    def test_ctrl_c_does_not_stop_it(
        self, processes: Processes, start_sidecar: StartSidecar
    ) -> None:
        sidecar = start_sidecar()
        child = group_leader(processes)
        send(sidecar, f"add {child.pid}\n")
        time.sleep(0.3)  # past start-up, so the sidecar's own SIGINT handling is in place

        os.killpg(sidecar.pid, signal.SIGINT)  # as a terminal sends it: to the whole group
        time.sleep(0.1)
        hang_up(sidecar)

        assert child.wait(timeout=GONE_WITHIN) == -signal.SIGTERM
        assert sidecar.wait(timeout=GONE_WITHIN) == 0

    def test_leaves_the_agents_process_group_by_itself(self, start_sidecar: StartSidecar) -> None:
        sidecar = start_sidecar(start_new_session=False)  # started naively, in our group
        deadline = time.monotonic() + GONE_WITHIN
        while os.getpgid(sidecar.pid) != sidecar.pid:
            assert time.monotonic() < deadline, "the sidecar stayed in the agent's group"
            time.sleep(0.02)
        assert os.getpgid(sidecar.pid) != os.getpgrp()

    def test_agent_death_counts_even_when_the_pipe_stays_open(self, processes: Processes) -> None:
        agent = processes.popen(
            [sys.executable, "-c", AGENT_WITH_A_FORKED_HOLDER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert agent.stdout is not None and agent.stderr is not None
        readable, _, _ = select.select([agent.stdout], [], [], 10.0)
        line = agent.stdout.readline() if readable else ""
        assert line, f"the agent reported nothing; stderr:\n{agent.stderr.read()}"
        child, sidecar, holder = (processes.track(pid) for pid in json.loads(line))

        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=5)

        assert wait_until_gone(child), "the sidecar did not notice its parent died"
        assert wait_until_gone(sidecar)
        assert is_running(holder), "the holder died, so end-of-file could have been the cause"


AGENT_WITH_A_FORKED_HOLDER = r"""
import json, os, subprocess, time
from agent.platform.watchdog import watchdog_command, watchdog_env

child = subprocess.Popen(["sleep", "60"], start_new_session=True)
read_end, write_end = os.pipe()
sidecar = subprocess.Popen(
    watchdog_command(), stdin=read_end, env=watchdog_env(os.getpid(), os.environ),
    start_new_session=True,
)
os.close(read_end)
# Another process holds the pipe's write end, as a bare os.fork() of the agent would: the
# sidecar will never read end-of-file while it lives.
holder = subprocess.Popen(["sleep", "60"], pass_fds=[write_end], start_new_session=True)
os.write(write_end, f"add {child.pid}\n".encode())
print(json.dumps([child.pid, sidecar.pid, holder.pid]), flush=True)
time.sleep(60)
"""

"""The supervisor with real FFmpeg children: restarts, FATAL, stalls, staged stops, no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from agent.core.backoff import BackoffPolicy
from agent.core.events import Event, EventBus, ProcessStateChanged
from agent.core.states import ProcessState
from agent.core.supervisor import (
    ChildSpec,
    RestartPolicy,
    StdinMode,
    Supervisor,
    SupervisorConfig,
)
from agent.media.flv_hub import FlvHub

S = ProcessState
QUIET = ["-hide_banner", "-nostats", "-loglevel", "error"]


def recorder(bus: EventBus) -> list[ProcessStateChanged]:
    changes: list[ProcessStateChanged] = []

    def keep(event: Event) -> None:
        if isinstance(event, ProcessStateChanged):
            changes.append(event)

    bus.add_listener(keep)
    return changes


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_child_that_exits_is_restarted_with_growing_delays(ffmpeg_exe: str) -> None:
    bus = EventBus()
    changes = recorder(bus)
    argv = [
        ffmpeg_exe,
        *QUIET,
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=10",
        "-t",
        "0.3",
        "-f",
        "null",
        "-",
    ]
    sup = Supervisor(
        ChildSpec(name="short-lived", argv=argv, stdin=StdinMode.NONE),
        bus=bus,
        config=SupervisorConfig(
            backoff=BackoffPolicy(initial=0.2, factor=2, cap=5, jitter=0, reset_after=60),
            start_window=5.0,  # each short run counts as a failed start
            max_start_failures=None,
            restart=RestartPolicy.ALWAYS,
        ),
    )
    await sup.start()
    while sup.restarts < 3:
        await sup.wait_for(S.BACKOFF, timeout=10)
        await sup.wait_for(S.STARTING, timeout=10)
    await sup.stop()

    backoffs = [c for c in changes if c.new == "backoff"]
    assert [c.retry_in for c in backoffs[:3]] == pytest.approx([0.2, 0.4, 0.8])
    restarts = [c for c in changes if c.old == "backoff" and c.new == "starting"]
    waited = [r.at - b.at for b, r in zip(backoffs, restarts, strict=False)]
    assert waited[0] >= 0.18 and waited[1] >= 0.38 and waited[2] >= 0.78
    assert waited[0] < waited[1] < waited[2]


async def test_a_child_that_keeps_failing_at_start_reaches_fatal_with_its_reason(
    ffmpeg_exe: str, unused_tcp_port: int
) -> None:
    bus = EventBus()
    argv = [
        ffmpeg_exe,
        *QUIET,
        "-i",
        f"rtmp://127.0.0.1:{unused_tcp_port}/live/x",
        "-f",
        "null",
        "-",
    ]
    sup = Supervisor(
        ChildSpec(name="target custom", argv=argv, stdin=StdinMode.NONE),
        bus=bus,
        config=SupervisorConfig(
            backoff=BackoffPolicy(initial=0.05, cap=0.1, jitter=0),
            start_window=3.0,
            max_start_failures=3,
        ),
    )
    await sup.start()
    await sup.wait_for(S.FATAL, timeout=30)
    assert "Connection refused" in sup.reason or "Cannot open connection" in sup.reason
    assert "gave up after 3 failed starts" in sup.reason


async def test_invalid_arguments_are_fatal_without_retrying(ffmpeg_exe: str) -> None:
    bus = EventBus()
    changes = recorder(bus)
    sup = Supervisor(
        ChildSpec(name="bad-args", argv=[ffmpeg_exe, "-no-such-option", "1"], stdin=StdinMode.NONE),
        bus=bus,
    )
    await sup.start()
    await sup.wait_for(S.FATAL, timeout=10)
    assert "no-such-option" in sup.reason
    assert [c.new for c in changes] == ["starting", "fatal"]


async def test_a_missing_binary_is_fatal_and_named(tmp_path: Path) -> None:
    bus = EventBus()
    missing = str(tmp_path / "ffmpeg")
    sup = Supervisor(ChildSpec(name="ingest", argv=[missing, "-version"]), bus=bus)
    await sup.start()
    await sup.wait_for(S.FATAL, timeout=5)
    assert sup.reason.startswith(f"could not start {missing}")


async def test_a_stalled_child_is_detected_and_restarted(ffmpeg_exe: str, flv_clip: Path) -> None:
    data = flv_clip.read_bytes()
    feeds = 0

    async def feed_then_hang(stdin: asyncio.StreamWriter) -> None:
        nonlocal feeds
        feeds += 1
        stdin.write(data[: len(data) // 3])  # about a second of media, then nothing more
        await stdin.drain()
        await asyncio.Event().wait()  # the pipe stays open: FFmpeg is alive but starved

    bus = EventBus()
    changes = recorder(bus)
    argv = [
        ffmpeg_exe,
        *QUIET,
        "-re",
        "-f",
        "flv",
        "-i",
        "pipe:0",
        "-f",
        "null",
        "-",
        "-progress",
        "pipe:2",
        "-stats_period",
        "0.2",
    ]
    sup = Supervisor(
        ChildSpec(name="starved", argv=argv, stdin=StdinMode.DATA, feed_stdin=feed_then_hang),
        bus=bus,
        config=SupervisorConfig(
            backoff=BackoffPolicy(initial=0.1, jitter=0), start_window=0.2, stall_timeout=1.0
        ),
    )
    await sup.start()
    await sup.wait_for(S.BACKOFF, timeout=20)
    first_pid = next(c.pid for c in changes if c.new == "running")
    await sup.wait_for(S.RUNNING, timeout=10)
    await sup.stop()

    backoff = next(c for c in changes if c.new == "backoff")
    assert backoff.reason == "stalled: no progress for 1 s"
    assert first_pid is not None and gone(first_pid)
    assert feeds == 2  # the restarted child was fed again


async def test_output_its_reader_refuses_fails_the_child_at_once_with_the_reason(
    ffmpeg_exe: str,
) -> None:
    """A child whose stdout is not what its reader expects (raw video where FLV belongs) is
    failed at once with the reader's words, not left blocked on a full pipe until a stall."""
    hub = FlvHub("source")
    pids: list[int] = []

    async def into_hub(chunk: bytes) -> None:
        if sup.pid is not None:
            pids.append(sup.pid)
        hub.feed(chunk)

    bus = EventBus()
    changes = recorder(bus)
    argv = [ffmpeg_exe, *QUIET, "-re", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30",
            "-f", "rawvideo", "pipe:1"]  # fmt: skip
    sup = Supervisor(
        ChildSpec(name="not-flv", argv=argv, stdin=StdinMode.NONE, on_stdout=into_hub),
        bus=bus,
        config=SupervisorConfig(
            backoff=BackoffPolicy(initial=5.0, jitter=0), start_window=0.2, stall_timeout=30.0
        ),
    )
    began = time.monotonic()
    await sup.start()
    await sup.wait_for(S.BACKOFF, timeout=10)
    took = time.monotonic() - began
    await sup.stop()

    backoff = next(c for c in changes if c.new == "backoff")
    assert "where an FLV header ('FLV') should start" in backoff.reason
    assert took < 5.0  # not the 30 s stall timeout
    assert pids and gone(pids[0])
    assert not hub.session_active


async def test_stop_with_q_ends_ffmpeg_cleanly(ffmpeg_exe: str) -> None:
    bus = EventBus()
    argv = [
        ffmpeg_exe,
        *QUIET,
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=10",
        "-f",
        "null",
        "-",
    ]
    sup = Supervisor(
        ChildSpec(name="polite", argv=argv, stdin=StdinMode.CONTROL),
        bus=bus,
        config=SupervisorConfig(start_window=0.2, stop_timeout=5.0),
    )
    await sup.start()
    await sup.wait_for(S.RUNNING, timeout=10)
    began = time.monotonic()
    await sup.stop()
    assert time.monotonic() - began < 3.0
    assert sup.last_exit_code == 0


async def test_stop_escalates_to_kill_when_the_child_ignores_q(ffmpeg_exe: str) -> None:
    bus = EventBus()
    # -nostdin: this FFmpeg never reads the "q" the supervisor sends.
    argv = [
        ffmpeg_exe,
        "-nostdin",
        *QUIET,
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=10",
        "-f",
        "null",
        "-",
    ]
    sup = Supervisor(
        ChildSpec(name="deaf", argv=argv, stdin=StdinMode.CONTROL),
        bus=bus,
        config=SupervisorConfig(start_window=0.2, stop_timeout=0.7),
    )
    await sup.start()
    await sup.wait_for(S.RUNNING, timeout=10)
    pid = sup.pid
    began = time.monotonic()
    await sup.stop()
    took = time.monotonic() - began
    assert 0.7 <= took < 3.0
    assert sup.last_exit_code == -signal.SIGKILL
    assert pid is not None and gone(pid)
    assert sup.state is S.STOPPED


AGENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from agent.core.events import EventBus
    from agent.core.states import ProcessState
    from agent.core.supervisor import ChildSpec, StdinMode, Supervisor, SupervisorConfig

    async def main():
        argv = [sys.argv[1], "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
                "-i", "testsrc=s=64x64:r=10", "-f", "null", "-"]
        sup = Supervisor(ChildSpec(name="orphan-candidate", argv=argv, stdin=StdinMode.NONE),
                         bus=EventBus(), config=SupervisorConfig(start_window=0.2))
        await sup.start()
        await sup.wait_for(ProcessState.RUNNING, timeout=10)
        print(sup.pid, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_of_the_supervising_process_leaves_no_ffmpeg_behind(ffmpeg_exe: str) -> None:
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT_SCRIPT, ffmpeg_exe],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    child_pid = 0
    try:
        assert agent.stdout is not None
        child_pid = int(agent.stdout.readline())
        assert psutil.Process(child_pid).name().startswith("ffmpeg")
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(5)
        deadline = time.monotonic() + 5
        while not gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child_pid), "the FFmpeg child outlived its supervisor"
    finally:
        agent.kill()
        agent.wait(5)
        assert agent.stdout is not None
        agent.stdout.close()
        if child_pid and not gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)

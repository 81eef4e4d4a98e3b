"""What the supervisor decides, read back from a recording launcher (no real processes)."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.backoff import BackoffPolicy
from agent.core.events import Event, EventBus, ProcessStateChanged
from agent.core.redact import Redactor
from agent.core.states import ProcessState
from agent.core.supervisor import (
    ChildSpec,
    RestartPolicy,
    StdinMode,
    Supervisor,
    SupervisorConfig,
)
from agent.errors import CascadeError
from tests.core.fakes import RecordingLauncher

S = ProcessState
FAST = BackoffPolicy(initial=0.05, factor=2, cap=0.2, jitter=0, reset_after=0.3)


def make(
    launcher: RecordingLauncher,
    *,
    argv: object = ("ffmpeg", "-i", "x"),
    redactor: Redactor | None = None,
    **config: object,
) -> tuple[Supervisor, list[ProcessStateChanged]]:
    bus = EventBus()
    changes: list[ProcessStateChanged] = []

    def keep(event: Event) -> None:
        if isinstance(event, ProcessStateChanged):
            changes.append(event)

    bus.add_listener(keep)
    defaults: dict[str, object] = {"backoff": FAST, "start_window": 0.05, "stop_timeout": 0.2}
    defaults.update(config)
    sup = Supervisor(
        ChildSpec(name="target youtube", argv=argv, stdin=StdinMode.NONE),  # type: ignore[arg-type]
        bus=bus,
        config=SupervisorConfig(**defaults),  # type: ignore[arg-type]
        launcher=launcher,
        redactor=redactor or Redactor(),
    )
    return sup, changes


def edges(changes: list[ProcessStateChanged]) -> list[str]:
    return [f"{c.old}->{c.new}" for c in changes]


async def test_start_goes_running_after_the_start_window() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    await sup.wait_for(S.RUNNING, timeout=2)
    assert edges(changes) == ["stopped->starting", "starting->running"]
    await sup.stop()
    assert sup.state is S.STOPPED


async def test_a_child_that_exits_while_running_backs_off_then_starts_again() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    child.exit(1, "rtmp://example/app: Broken pipe\n")
    second = await launcher.next_child()
    assert second.pid != child.pid
    backoff = next(c for c in changes if c.new == "backoff")
    assert backoff.reason == "exited with code 1: rtmp://example/app: Broken pipe"
    assert backoff.retry_in == pytest.approx(0.05)
    assert ("reaped", child.pid) in launcher.calls
    await sup.stop()


async def test_delays_grow_with_consecutive_failures_and_reset_after_a_stable_run() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    for _ in range(3):
        child = await launcher.next_child()
        await sup.wait_for(S.RUNNING, timeout=2)
        child.exit(1)
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    await asyncio.sleep(FAST.reset_after + 0.05)  # a stable run
    child.exit(1)
    await launcher.next_child()
    delays = [c.retry_in for c in changes if c.new == "backoff"]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.05])
    await sup.stop()


async def test_repeated_failures_during_start_end_in_fatal_with_the_reason() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher, start_window=5.0, max_start_failures=3)
    await sup.start()
    for _ in range(3):
        child = await launcher.next_child()
        child.exit(1, "Connection to tcp://127.0.0.1:9 failed: Connection refused\n")
    await sup.wait_for(S.FATAL, timeout=2)
    assert "Connection refused" in sup.reason
    assert "gave up after 3 failed starts" in sup.reason
    assert edges(changes)[-1] == "starting->fatal"
    assert len(launcher.children) == 3


async def test_a_permanent_error_goes_fatal_at_once() -> None:
    launcher = RecordingLauncher()
    sup, _ = make(launcher)
    await sup.start()
    child = await launcher.next_child()
    child.exit(
        8, "Unrecognized option 'bogus'.\nError splitting the argument list: Option not found\n"
    )
    await sup.wait_for(S.FATAL, timeout=2)
    assert sup.reason == "exited with code 8: Unrecognized option 'bogus'."
    assert len(launcher.children) == 1


async def test_a_binary_that_cannot_be_spawned_goes_fatal_naming_it() -> None:
    launcher = RecordingLauncher(spawn_error=FileNotFoundError(2, "No such file or directory"))
    sup, changes = make(launcher, argv=("/opt/missing/ffmpeg", "-version"))
    await sup.start()
    await sup.wait_for(S.FATAL, timeout=2)
    assert sup.reason == "could not start /opt/missing/ffmpeg: No such file or directory"
    assert edges(changes) == ["stopped->starting", "starting->fatal"]


async def test_an_argv_that_cannot_be_built_goes_fatal_with_the_error_redacted() -> None:
    def argv() -> list[str]:
        raise CascadeError("variable TWITCH_KEY is not set", subject="target 'twitch'")

    launcher = RecordingLauncher()
    sup, _ = make(launcher, argv=argv)
    await sup.start()
    await sup.wait_for(S.FATAL, timeout=2)
    assert sup.reason == "target 'twitch': variable TWITCH_KEY is not set"
    assert launcher.children == []


async def test_clean_exit_under_on_failure_policy_is_exited_not_restarted() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher, restart=RestartPolicy.ON_FAILURE)
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    child.exit(0)
    await sup.wait_for(S.EXITED, timeout=2)
    assert edges(changes)[-1] == "running->exited"
    await sup.stop()
    assert sup.state is S.STOPPED


async def test_a_clean_exit_after_a_good_run_restarts_at_once() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    child.exit(0)
    await launcher.next_child(timeout=0.5)
    backoff = next(c for c in changes if c.new == "backoff")
    assert backoff.retry_in == 0.0 and backoff.reason == "finished"
    assert sup.attempt == 0
    await sup.stop()


async def test_stop_during_backoff_stops_without_a_new_child() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher, backoff=BackoffPolicy(initial=5, cap=5, jitter=0))
    await sup.start()
    child = await launcher.next_child()
    child.exit(1)
    await sup.wait_for(S.BACKOFF, timeout=2)
    await asyncio.wait_for(sup.stop(), 1)
    assert edges(changes)[-1] == "backoff->stopped"
    assert len(launcher.children) == 1


async def test_stop_asks_politely_then_kills_a_child_that_does_not_exit() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    await sup.stop()
    assert launcher.calls == [
        ("spawn", child.pid),
        ("interrupt", child.pid),
        ("kill", child.pid),
        ("reaped", child.pid),
    ]
    assert edges(changes)[-2:] == ["running->stopping", "stopping->stopped"]


async def test_fail_kills_the_child_and_restarts_it_with_that_reason() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher)
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    sup.fail("fell 8 s behind the source; cut off")
    await launcher.next_child()
    assert ("kill", child.pid) in launcher.calls
    backoff = next(c for c in changes if c.new == "backoff")
    assert backoff.reason == "fell 8 s behind the source; cut off"
    await sup.stop()


async def test_stderr_tail_and_events_are_redacted() -> None:
    launcher = RecordingLauncher()
    sup, changes = make(launcher, redactor=Redactor(["live_123_SECRETKEY"]))
    await sup.start()
    child = await launcher.next_child()
    await sup.wait_for(S.RUNNING, timeout=2)
    child.exit(1, "rtmp://a.rtmp.youtube.com/live2/live_123_SECRETKEY: I/O error\n")
    await sup.wait_for(S.BACKOFF, timeout=2)
    assert "SECRETKEY" not in sup.reason and "[redacted]" in sup.reason
    assert all("SECRETKEY" not in line for line in sup.stderr_tail())
    assert all("SECRETKEY" not in c.reason for c in changes)
    await sup.stop()


async def test_start_is_idempotent_while_active() -> None:
    launcher = RecordingLauncher()
    sup, _ = make(launcher)
    await sup.start()
    await sup.start()
    await sup.wait_for(S.RUNNING, timeout=2)
    await sup.start()
    assert len(launcher.children) == 1
    await sup.stop()

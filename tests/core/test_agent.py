"""The agent core: finds FFmpeg, probes it, and stops every child it supervises."""

from __future__ import annotations

from pathlib import Path

import psutil

from agent.core.agent import Agent
from agent.core.events import ErrorRaised, Event
from agent.core.settings import Settings
from agent.core.states import ProcessState
from agent.core.supervisor import ChildSpec, StdinMode, SupervisorConfig


async def test_start_finds_ffmpeg_and_probes_libx264(tmp_path: Path) -> None:
    agent = Agent(tmp_path, settings=Settings())
    await agent.start()
    caps = await agent.refresh_capabilities()
    assert agent.ffmpeg is not None
    assert caps is not None and "libx264" in caps.usable_video_encoders()
    assert (tmp_path / "cache" / "capabilities.json").exists()
    await agent.stop()


async def test_a_missing_ffmpeg_is_published_and_the_agent_keeps_running(tmp_path: Path) -> None:
    agent = Agent(tmp_path, settings=Settings(ffmpeg=str(tmp_path / "nope")))
    seen: list[Event] = []
    agent.bus.add_listener(seen.append)
    await agent.start()
    assert agent.ffmpeg is None and agent.ffmpeg_error is not None
    errors = [e for e in seen if isinstance(e, ErrorRaised)]
    assert errors and errors[0].source == "ffmpeg" and str(tmp_path / "nope") in errors[0].message
    await agent.stop()


async def test_stop_stops_and_reaps_every_supervised_child(tmp_path: Path, ffmpeg_exe: str) -> None:
    agent = Agent(tmp_path, settings=Settings())
    argv = [
        ffmpeg_exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=64x64:r=10",
        "-f",
        "null",
        "-",
    ]
    sups = [
        agent.supervise(
            ChildSpec(name=f"child-{n}", argv=argv, stdin=StdinMode.CONTROL),
            SupervisorConfig(start_window=0.2),
        )
        for n in range(3)
    ]
    for sup in sups:
        await sup.start()
    pids = []
    for sup in sups:
        await sup.wait_for(ProcessState.RUNNING, timeout=10)
        assert sup.pid is not None
        pids.append(sup.pid)
    await agent.stop()
    assert all(sup.state is ProcessState.STOPPED for sup in sups)
    assert all(sup.last_exit_code == 0 for sup in sups)  # each one stopped politely
    assert not any(psutil.pid_exists(pid) for pid in pids)
